package possum

import (
	"context"
	"errors"
	"slices"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// A Snapshot holds several values, and the listing of a prefix, as they all
// were at one instant: the torrent client's pattern of reading every chunk
// of a piece at once, while other processes go on writing. Its values stay
// readable and unchanged until Close, like those of Cache.Open.
type Snapshot struct {
	vals  map[string]*Value
	infos []Info // in key order
}

// Snapshot opens the values of keys at one instant. Keys that do not exist
// then are absent from it (Snapshot.Value reports ErrNotFound).
func (c *Cache) Snapshot(ctx context.Context, keys ...string) (*Snapshot, error) {
	raw := make([][]byte, len(keys))
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, opErr("snapshot", k, err)
		}
		raw[i] = []byte(k)
	}
	return c.snapshot(ctx, raw, false, "")
}

// SnapshotPrefix opens every value whose key starts with prefix, and their
// listing, at one instant.
func (c *Cache) SnapshotPrefix(ctx context.Context, prefix string) (*Snapshot, error) {
	return c.snapshot(ctx, nil, true, prefix)
}

func (c *Cache) snapshot(ctx context.Context, keys [][]byte, withRange bool, prefix string) (*Snapshot, error) {
	if err := c.enter(); err != nil {
		return nil, opErr("snapshot", prefix, err)
	}
	defer c.mu.RUnlock()
	s1 := make([]uint64, values.StripeCount)
	for range maxSnapshotTries {
		for i := range s1 { // before the manifest is read: see pin
			s1[i] = c.stripes.Load(i)
		}
		es, err := c.m.Consistent(ctx, keys, withRange, []byte(prefix), prefixEnd(prefix))
		if err != nil {
			return nil, opErr("snapshot", prefix, err)
		}
		s, err := c.pinAll(ctx, es, s1)
		if errors.Is(err, errRetry) {
			c.stats.retries.Add(1)
			continue
		}
		return s, opErr("snapshot", prefix, err)
	}
	return nil, opErr("snapshot", prefix, errContended)
}

// maxSnapshotTries bounds how often a snapshot starts over because one of
// its values changed while it was being pinned.
const maxSnapshotTries = 100

// pinAll pins every entry of es, each valid if its key's stripe still reads
// what s1 says; errRetry if one does not.
func (c *Cache) pinAll(ctx context.Context, es []manifest.Entry, s1 []uint64) (*Snapshot, error) {
	s := &Snapshot{vals: make(map[string]*Value, len(es))}
	now := c.opts.now().UnixNano()
	for i := range es {
		e := &es[i]
		if _, dup := s.vals[string(e.Key)]; dup || e.Expires.Valid && e.Expires.Int64 <= now {
			continue
		}
		si := stripeOf(keyHash(string(e.Key)))
		loc := e.Location()
		v, err := c.pin(string(e.Key), &loc, s1[si], si)
		if errors.Is(err, ErrNotFound) {
			continue // damaged: dropped
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		s.vals[string(e.Key)] = v
		s.infos = append(s.infos, v.info)
	}
	slices.SortFunc(s.infos, func(a, b Info) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return s, nil
}

// Value returns the snapshot's value of key, or ErrNotFound. The Value
// belongs to the snapshot: Close the snapshot, not the value.
func (s *Snapshot) Value(key string) (*Value, error) {
	if v := s.vals[key]; v != nil {
		return v, nil
	}
	return nil, opErr("snapshot value", key, ErrNotFound)
}

// List describes the snapshot's values in key order.
func (s *Snapshot) List() []Info { return slices.Clone(s.infos) }

// Len is the number of values in the snapshot.
func (s *Snapshot) Len() int { return len(s.vals) }

// Close releases every value of the snapshot.
func (s *Snapshot) Close() error {
	var errs []error
	for _, v := range s.vals {
		errs = append(errs, v.Close())
	}
	return errors.Join(errs...)
}
