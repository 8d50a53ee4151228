package possum

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// A Writer writes one value under a key: its bytes go straight into a value
// file as they are written, and the key is published only by Commit. Abort,
// or a failed Commit, gives every byte back. A Writer is used by one
// goroutine at a time; its Commit and Abort are safe to call more than once.
type Writer struct {
	c    *Cache
	key  string
	opts *PutOptions
	s    *stream
	a    *values.Appender
	mu   sync.Mutex
	done bool
	n    int64
}

// Create starts writing key's value; nil opts means none.
func (c *Cache) Create(ctx context.Context, key string, opts *PutOptions) (*Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, opErr("create", key, err)
	}
	if err := c.enter(); err != nil {
		return nil, opErr("create", key, err)
	}
	defer c.mu.RUnlock()
	w := &Writer{c: c, key: key, opts: opts}
	getA := func() (*values.Appender, error) {
		var err error
		w.a, err = c.pool.Get(ctx)
		return w.a, err
	}
	w.s = c.newStream(ctx, getA, 0)
	return w, nil
}

// Write appends p to the value.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, opErr("write", w.key, ErrBatchDone)
	}
	n, err := w.s.Write(p)
	w.n += int64(n)
	return n, opErr("write", w.key, err)
}

// ReadFrom appends what r yields to the value. From a regular file, the
// bytes are brought in by the kernel: cloned on xfs and btrfs (the value
// shares the file's blocks), copied by copy_file_range elsewhere.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.done {
		return 0, opErr("write", w.key, ErrBatchDone)
	}
	n, err := w.s.ReadFrom(r)
	w.n += n
	return n, opErr("write", w.key, err)
}

// Commit publishes the value and returns its length. If it fails, nothing is
// published and the bytes are given back.
func (w *Writer) Commit(ctx context.Context) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, opErr("commit", w.key, ErrBatchDone)
	}
	w.done = true
	defer w.s.release()
	c := w.c
	if err := c.enter(); err != nil {
		w.abortLocked()
		return 0, opErr("commit", w.key, err)
	}
	defer c.mu.RUnlock()
	e, end, err := w.s.finish()
	if err == nil {
		e.Key, e.Expires = []byte(w.key), c.expiry(w.opts)
		err = c.commits.doGrow(ctx, func(tx *manifest.Tx) error { return tx.Insert(e) })
	}
	if err != nil {
		err = errors.Join(err, w.s.abort())
	}
	if w.a != nil {
		c.settle(w.a, end, err == nil)
	}
	return e.Length, opErr("commit", w.key, err)
}

// Abort drops the value: nothing is published and its bytes are given back.
func (w *Writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	w.abortLocked()
	w.s.release()
}

func (w *Writer) abortLocked() {
	err := w.s.abort()
	if w.a != nil {
		w.c.settle(w.a, 0, false)
		if err != nil {
			w.c.log.Warn("possum: abort", "key", quoteKey(w.key), "err", err)
		}
	}
}

// PutFile stores the file at path under key. On xfs and btrfs the value
// shares the file's blocks (a reflink clone: no data is copied, no space is
// used until one of them changes); elsewhere the kernel copies it
// (copy_file_range). Either way the file is then read once to compute the
// value's checksum.
func (c *Cache) PutFile(ctx context.Context, key, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, opErr("put file", key, err)
	}
	defer f.Close()
	return c.Put(ctx, key, f)
}

var (
	_ io.Writer     = (*Writer)(nil)
	_ io.ReaderFrom = (*Writer)(nil)
)
