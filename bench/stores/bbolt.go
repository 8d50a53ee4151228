package stores

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bbolt is go.etcd.io/bbolt: an mmapped copy-on-write B+tree in one file.
var Bbolt = Kind{
	Name:         "bbolt",
	Open:         openBbolt,
	MultiProcess: false,
	Bounded:      false,
	Note: "one bucket, one db.Update per Put (bbolt has one writer at a time), db.View + copy per Get; " +
		"NoSync=true (no fsync, like the other stores; an OS crash or power loss may corrupt the file), " +
		"NoFreelistSync, map freelist; exclusive flock: one process; the file never shrinks",
}

var bboltBucket = []byte("values")

type bboltStore struct{ db *bolt.DB }

func openBbolt(_ context.Context, cfg Config) (Store, error) {
	path := filepath.Join(cfg.Dir, "bbolt.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// Another process holding the file: fail instead of waiting forever.
		Timeout:        2 * time.Second,
		NoSync:         true,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bbolt: %s is held by another process (bbolt takes an exclusive lock): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bbolt: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bboltBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bbolt: %w", err)
	}
	return bboltStore{db}, nil
}

func (s bboltStore) Put(_ context.Context, key string, value []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bboltBucket).Put([]byte(key), value)
	})
}

func (s bboltStore) Get(_ context.Context, key string, buf []byte) ([]byte, error) {
	out := buf[:0]
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		// The value lives in the mmap only while the transaction is open.
		v := tx.Bucket(bboltBucket).Get([]byte(key))
		if v != nil {
			found = true
			out = append(out, v...)
		}
		return nil
	})
	if err != nil {
		return buf[:0], err
	}
	if !found {
		return buf[:0], ErrMiss
	}
	return out, nil
}

func (s bboltStore) Delete(_ context.Context, key string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bboltBucket).Delete([]byte(key))
	})
}

func (s bboltStore) Close() error { return s.db.Close() }
