package stores

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/anacrolix/squirrel"
	sqlite "github.com/go-llsqlite/adapter"
)

// Squirrel is github.com/anacrolix/squirrel: values as SQLite blobs, LRU
// eviction by the database's page count.
var Squirrel = Kind{
	Name:         "squirrel",
	Open:         openSquirrel,
	MultiProcess: true,
	Bounded:      true,
	Note: "file-backed SQLite (cgo, crawshaw), journal_mode=WAL, synchronous=OFF (squirrel's default: no fsync), " +
		"Capacity counts live database pages (not the WAL, the file never shrinks); " +
		"Get reads a pinned blob in a read transaction that then writes last_used (LRU), so Gets queue for SQLite's write lock like Puts",
}

// squirrelBusyWait bounds how long an operation retries SQLITE_BUSY.
// crawshaw's connections already wait on a busy lock (a busy handler with no
// time limit); SQLite still answers SQLITE_BUSY at once where waiting cannot
// help, as when a read transaction must write but another connection
// committed since it began (squirrel's LRU update and trim inside a Get).
const squirrelBusyWait = 30 * time.Second

type squirrelStore struct{ c *squirrel.Cache }

func openSquirrel(ctx context.Context, cfg Config) (Store, error) {
	path := filepath.Join(cfg.Dir, "squirrel.db")
	base := squirrel.NewCacheOpts{}
	base.Path = path
	base.SetJournalMode = "wal"
	if cfg.MaxValue >= 1<<30 {
		return nil, fmt.Errorf("squirrel: values of %d bytes exceed SQLite's limits", cfg.MaxValue)
	}

	// Create the schema and set the capacity once, with a connection of its
	// own. The cache's own connections then skip that write transaction:
	// squirrel opens a connection lazily for each goroutine that finds none
	// free, and the schema write would queue behind the running writer.
	first := base
	first.Capacity = cfg.Capacity
	if first.Capacity <= 0 {
		first.Capacity = -1 // unlimited
	}
	err := squirrelRetry(ctx, func() error {
		c, err := squirrel.NewCache(first)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("squirrel: creating %s: %w", path, err)
	}

	opts := base
	opts.DontInitSchema = true
	var c *squirrel.Cache
	err = squirrelRetry(ctx, func() (err error) {
		c, err = squirrel.NewCache(opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("squirrel: opening %s: %w", path, err)
	}
	return squirrelStore{c}, nil
}

// squirrelRetry runs f again while it fails with SQLITE_BUSY, for up to
// squirrelBusyWait.
func squirrelRetry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(squirrelBusyWait)
	wait := 100 * time.Microsecond
	for {
		err := f()
		if !squirrelBusy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

func squirrelBusy(err error) bool {
	if err == nil {
		return false
	}
	var journal squirrel.ErrUnexpectedJournalMode
	return sqlite.IsPrimaryResultCodeErr(err, sqlite.ResultCodeBusy) ||
		// Switching a new database to WAL needs an exclusive lock; without it
		// the pragma answers with the old mode.
		errors.As(err, &journal)
}

func (s squirrelStore) Put(ctx context.Context, key string, value []byte) error {
	return squirrelRetry(ctx, func() error { return s.c.Put(key, value) })
}

// Get reads through a pinned blob inside one read transaction, as squirrel's
// Blob.ReadAt does: that read marks the key used, so eviction is least
// recently used. (Cache.ReadAll would skip that and leave eviction in order
// of last write.)
func (s squirrelStore) Get(ctx context.Context, key string, buf []byte) ([]byte, error) {
	var v []byte
	err := squirrelRetry(ctx, func() error {
		return s.c.Tx(func(tx *squirrel.Tx) error {
			pb, err := tx.OpenPinnedReadOnly(key)
			if err != nil {
				return err
			}
			defer pb.Close()
			size, err := pb.LengthErr()
			if err != nil {
				return err
			}
			v = buf[:0]
			if size == 0 {
				return nil
			}
			if int64(cap(buf)) < size {
				v = make([]byte, size)
			} else {
				v = buf[:size]
			}
			n, err := pb.ReadAt(v, 0)
			if err != nil && !(errors.Is(err, io.EOF) && int64(n) == size) {
				return err
			}
			if int64(n) != size {
				return fmt.Errorf("squirrel: read %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
			}
			return nil
		})
	})
	if errors.Is(err, squirrel.ErrNotFound) {
		return buf[:0], ErrMiss
	}
	if err != nil {
		return buf[:0], err
	}
	return v, nil
}

func (s squirrelStore) Delete(ctx context.Context, key string) error {
	// Cache has no Delete (Blob.Delete names a table that does not exist);
	// Tx.Delete is the working one.
	err := squirrelRetry(ctx, func() error {
		return s.c.TxImmediate(func(tx *squirrel.Tx) error { return tx.Delete(key) })
	})
	if errors.Is(err, squirrel.ErrNotFound) {
		return nil
	}
	return err
}

func (s squirrelStore) Close() error { return s.c.Close() }
