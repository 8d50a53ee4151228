package values

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// writerLockOffset is the byte of the stripes file that the writer lock
// locks: far past its end, where nothing else locks.
const writerLockOffset = 1 << 40

// WriterLock serialises the cache's write transactions across processes
// with an OFD lock, so that writers queue in the kernel, each woken the
// moment the previous one is done, instead of polling SQLite's lock with
// its busy handler, which sleeps for milliseconds at a time once several
// processes write at once.
//
// It does not exclude writers within one process: the caller does that
// (the manifest holds a mutex). Where locks belong to processes, not open
// file descriptions (not Linux), it does nothing, and SQLite's own locking
// alone serialises writers.
//
// The zero value is not usable; see OpenWriterLock.
type WriterLock struct {
	path   string
	mu     sync.Mutex
	idle   []*os.File // descriptions not holding the lock
	closed bool
}

// OpenWriterLock returns a WriterLock on the file at path (the stripes
// file), which must exist.
func OpenWriterLock(path string) *WriterLock { return &WriterLock{path: path} }

// Lock waits until this process holds the writer lock, or ctx is done, or
// timeout passes. It returns the function that releases the lock.
func (w *WriterLock) Lock(ctx context.Context, timeout time.Duration) (unlock func(), err error) {
	if !DescriptorLocks {
		return func() {}, nil
	}
	f, err := w.take()
	if err != nil {
		return nil, err
	}
	err = LockRange(f, WriteLock, writerLockOffset, 1)
	if err == nil {
		return func() { w.release(f) }, nil
	}
	if !errors.Is(err, ErrLocked) {
		w.put(f)
		return nil, err
	}
	// Held by another process: wait in the kernel, from a goroutine so
	// that ctx and the timeout can still end the wait. A wait given up on
	// keeps its own description, and releases the lock if it gets it.
	done := make(chan error, 1)
	go func() { done <- lockRangeWait(f, WriteLock, writerLockOffset, 1) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, err
		}
		return func() { w.release(f) }, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("waited %v for another process's write transaction", timeout)
	}
	go func() {
		if <-done == nil {
			w.release(f)
		} else {
			f.Close()
		}
	}()
	return nil, err
}

func (w *WriterLock) take() (*os.File, error) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		f := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		return f, nil
	}
	w.mu.Unlock()
	return os.OpenFile(w.path, os.O_RDWR|NoFollow, 0)
}

func (w *WriterLock) put(f *os.File) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		f.Close()
		return
	}
	w.idle = append(w.idle, f)
}

// release unlocks the lock f holds and keeps f for the next Lock.
func (w *WriterLock) release(f *os.File) {
	if err := LockRange(f, Unlock, writerLockOffset, 1); err != nil {
		f.Close() // closing releases it too
		return
	}
	w.put(f)
}

// Close closes the idle descriptions. A lock still held is released by its
// unlock function, which then closes its description.
func (w *WriterLock) Close() error {
	w.mu.Lock()
	idle := w.idle
	w.idle, w.closed = nil, true
	w.mu.Unlock()
	for _, f := range idle {
		f.Close()
	}
	return nil
}
