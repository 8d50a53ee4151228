package stores

import (
	"context"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Raw is the physical limit every other store is measured against: one
// plain file of fixed-size slots, Put one pwrite into a fresh slot and Get
// one pread of exactly the value's bytes, served from the page cache. Which
// slot a key has and how long its value is live only in the opening
// process's memory, so nothing is shared or persisted. A slot is never
// rewritten, so a Get racing a Put of the same key reads one value or the
// other, whole.
var Raw = Kind{
	Name:         "raw",
	Open:         openRaw,
	MultiProcess: false,
	Bounded:      false,
	Note: "the physical limit: one plain file of fixed slots (MaxValue rounded up to 4 KiB); " +
		"Put = one pwrite into a fresh slot, Get = one pread of the value; slots and lengths kept in process memory only; " +
		"no fsync, slots never reused",
}

const rawShards = 64

type rawEntry struct {
	slot int64
	size int64
}

type rawShard struct {
	mu      sync.RWMutex
	entries map[string]rawEntry
	_       [32]byte // keep shards' locks on separate cache lines
}

type rawStore struct {
	fd       int
	slotSize int64
	next     atomic.Int64
	seed     maphash.Seed
	closed   atomic.Bool
	shards   [rawShards]rawShard
}

func openRaw(_ context.Context, cfg Config) (Store, error) {
	maxValue := cfg.MaxValue
	if maxValue <= 0 {
		maxValue = 1 << 20
	}
	slot := (int64(maxValue) + 4095) &^ 4095
	path := filepath.Join(cfg.Dir, "raw.data")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	s := &rawStore{fd: fd, slotSize: slot, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].entries = make(map[string]rawEntry)
	}
	return s, nil
}

func (s *rawStore) shard(key string) *rawShard {
	return &s.shards[maphash.String(s.seed, key)%rawShards]
}

func (s *rawStore) Put(_ context.Context, key string, value []byte) error {
	if s.closed.Load() {
		return os.ErrClosed
	}
	if int64(len(value)) > s.slotSize {
		return fmt.Errorf("raw: value of %d bytes exceeds the slot of %d (MaxValue)", len(value), s.slotSize)
	}
	// Every put takes a fresh slot and the map switches to it only once the
	// bytes are written: a concurrent Get reads the old slot or the new
	// one, never a half-written value (slots are never rewritten).
	sh := s.shard(key)
	e := rawEntry{slot: s.next.Add(1) - 1}
	for done := 0; done < len(value); {
		n, err := unix.Pwrite(s.fd, value[done:], e.slot*s.slotSize+int64(done))
		if err != nil {
			return fmt.Errorf("raw: pwrite: %w", err)
		}
		done += n
	}
	e.size = int64(len(value))
	sh.mu.Lock()
	sh.entries[key] = e
	sh.mu.Unlock()
	return nil
}

func (s *rawStore) Get(_ context.Context, key string, buf []byte) ([]byte, error) {
	if s.closed.Load() {
		return buf[:0], os.ErrClosed
	}
	sh := s.shard(key)
	sh.mu.RLock()
	e, ok := sh.entries[key]
	sh.mu.RUnlock()
	if !ok {
		return buf[:0], ErrMiss
	}
	if int64(cap(buf)) < e.size {
		buf = make([]byte, e.size)
	}
	buf = buf[:e.size]
	off := e.slot * s.slotSize
	for got := 0; got < len(buf); {
		n, err := unix.Pread(s.fd, buf[got:], off+int64(got))
		if err != nil {
			return buf[:0], fmt.Errorf("raw: pread: %w", err)
		}
		if n == 0 {
			return buf[:0], fmt.Errorf("raw: value cut short at %d of %d bytes", got, len(buf))
		}
		got += n
	}
	return buf, nil
}

func (s *rawStore) Delete(_ context.Context, key string) error {
	if s.closed.Load() {
		return os.ErrClosed
	}
	sh := s.shard(key)
	sh.mu.Lock()
	delete(sh.entries, key)
	sh.mu.Unlock()
	return nil
}

func (s *rawStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return unix.Close(s.fd)
}
