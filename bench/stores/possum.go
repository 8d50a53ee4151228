package stores

import (
	"context"
	"errors"
	"io/fs"

	"github.com/seed475afdc4/possum"
)

// Possum is this repository's cache with its default options (no fsync).
var Possum = Kind{
	Name:         "possum",
	Open:         openPossum,
	MultiProcess: true,
	Bounded:      true,
	Note: "default Options (no fsync: a power loss may lose recent puts, checksums turn them into misses); " +
		"Put = PutBytes, Get = GetAppend; Capacity 0 runs with 1 TiB so nothing is evicted",
}

// possumUnbounded is the capacity of an unbounded run: large enough that the
// benchmark never evicts.
const possumUnbounded = 1 << 40

type possumStore struct{ c *possum.Cache }

func openPossum(_ context.Context, cfg Config) (Store, error) {
	capacity := cfg.Capacity
	if capacity <= 0 {
		capacity = possumUnbounded
	}
	c, err := possum.Open(cfg.Dir, &possum.Options{Capacity: capacity})
	if err != nil {
		return nil, err
	}
	return possumStore{c}, nil
}

func (s possumStore) Put(ctx context.Context, key string, value []byte) error {
	return s.c.PutBytes(ctx, key, value)
}

func (s possumStore) Get(ctx context.Context, key string, buf []byte) ([]byte, error) {
	v, err := s.c.GetAppend(ctx, buf[:0], key)
	if errors.Is(err, fs.ErrNotExist) {
		return v, ErrMiss
	}
	return v, err
}

func (s possumStore) Delete(ctx context.Context, key string) error {
	err := s.c.Delete(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s possumStore) Close() error { return s.c.Close() }
