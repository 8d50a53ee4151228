// Package stores adapts possum and its peers to one small interface, so the
// workload runner can drive them all the same way.
package stores

import (
	"context"
	"errors"
)

// ErrMiss is returned by Get when the key is not in the store.
var ErrMiss = errors.New("miss")

// Store is one key-value store under test. Implementations must be safe for
// concurrent use by many goroutines (wrap with a mutex where the peer is not).
type Store interface {
	// Put stores value under key, replacing any earlier value.
	Put(ctx context.Context, key string, value []byte) error
	// Get appends the value of key to buf[:0] and returns it, or ErrMiss.
	// The runner passes a reused buffer so stores that can avoid allocating do.
	Get(ctx context.Context, key string, buf []byte) ([]byte, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Close releases everything the store holds (servers it started included).
	Close() error
}

// Config is what the runner asks of a store when opening it.
type Config struct {
	// Dir is an empty directory the store may use for its files.
	Dir string
	// Capacity bounds the store's disk use in bytes; 0 means unbounded (or as
	// large as the store allows). Stores without a bound ignore it; see
	// Kind.Bounded.
	Capacity int64
	// MaxValue is the largest value the run will write, for stores that need
	// to be told (memcached's item size limit).
	MaxValue int
}

// Kind describes one store: how to open it and what it supports.
type Kind struct {
	// Name is short and stable: "raw", "possum", "squirrel", "diskv", "bbolt",
	// "memcached". It names the store in tables, charts and flags.
	Name string
	// Open opens (or creates) the store in cfg.Dir. Several OS processes may
	// Open the same Dir at once when MultiProcess is true.
	Open func(ctx context.Context, cfg Config) (Store, error)
	// MultiProcess says whether several OS processes can share one store.
	MultiProcess bool
	// Bounded says whether Capacity is honoured (the store evicts).
	Bounded bool
	// Note is one line for RESULTS.md about how the store is configured.
	Note string
}
