package possum

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// A Batch groups puts, deletes and renames that Commit publishes atomically:
// other readers and processes see all of them or none. The values' bytes are
// written as they are put, into a value file the batch holds for itself;
// nothing is visible before Commit, and Abort gives every byte back.
//
// A Batch is safe for concurrent use; its puts are written one after
// another. After Commit or Abort, its methods return ErrBatchDone.
type Batch struct {
	c   *Cache
	mu  sync.Mutex
	a   *values.Appender // taken on the first non-empty put
	pos int64            // end of what the batch has written
	ops []func(*manifest.Tx) error
	// renames says whether a rename is staged: one may find its source
	// gone at Commit, after the batch's other changes, so the batch then
	// commits in a savepoint.
	renames bool
	done    bool
}

// NewBatch starts a batch.
func (c *Cache) NewBatch() *Batch { return &Batch{c: c} }

// Put writes r's bytes now and stages them under key; they are published by
// Commit. It returns how many bytes were written.
func (b *Batch) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	return b.PutWith(ctx, key, r, nil)
}

// PutBytes stages v under key.
func (b *Batch) PutBytes(ctx context.Context, key string, v []byte) error {
	_, err := b.PutWith(ctx, key, bytes.NewReader(v), nil)
	return err
}

// PutWith is Put with options; nil opts means none.
func (b *Batch) PutWith(ctx context.Context, key string, r io.Reader, opts *PutOptions) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, opErr("batch put", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, opErr("batch put", key, ErrBatchDone)
	}
	c := b.c
	if err := c.enter(); err != nil {
		return 0, opErr("batch put", key, err)
	}
	defer c.mu.RUnlock()
	getA := func() (*values.Appender, error) {
		if b.a == nil {
			a, err := c.pool.Get(ctx)
			if err != nil {
				return nil, err
			}
			b.a, b.pos = a, a.End()
		}
		return b.a, nil
	}
	e, end, err := c.writeValue(ctx, getA, b.pos, key, r, opts)
	if err != nil {
		return 0, opErr("batch put", key, err)
	}
	if e.FileID != 0 {
		b.pos = end
	}
	b.ops = append(b.ops, func(tx *manifest.Tx) error { return tx.Insert(e) })
	return e.Length, nil
}

// Delete stages the removal of key. Unlike Cache.Delete, a key that does not
// exist at Commit is not an error.
func (b *Batch) Delete(key string) error {
	return b.stage("batch delete", key, func(tx *manifest.Tx) error {
		if err := tx.Delete([]byte(key)); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
}

// Rename stages a rename, with Cache.Rename's meaning. It applies after the
// batch's earlier operations, so it may rename a key put by the same batch.
// If from does not exist at Commit, the whole batch fails with ErrNotFound.
func (b *Batch) Rename(from, to string) error {
	if err := checkKey(to); err != nil {
		return opErr("batch rename", to, err)
	}
	err := b.stage("batch rename", from, func(tx *manifest.Tx) error {
		return opErr("rename", from, tx.Rename([]byte(from), []byte(to)))
	})
	if err == nil {
		b.mu.Lock()
		b.renames = true
		b.mu.Unlock()
	}
	return err
}

func (b *Batch) stage(op, key string, apply func(*manifest.Tx) error) error {
	if err := checkKey(key); err != nil {
		return opErr(op, key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return opErr(op, key, ErrBatchDone)
	}
	b.ops = append(b.ops, apply)
	return nil
}

// Len is the number of operations staged.
func (b *Batch) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ops)
}

// Commit publishes every staged operation in one transaction, in the order
// they were staged. If it fails, none is published and the batch's bytes are
// given back, as by Abort.
func (b *Batch) Commit(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return opErr("batch commit", "", ErrBatchDone)
	}
	b.done = true
	c := b.c
	if err := c.enter(); err != nil {
		b.release(false)
		return opErr("batch commit", "", err)
	}
	defer c.mu.RUnlock()
	ops := b.ops
	apply := func(tx *manifest.Tx) error {
		for _, op := range ops {
			if err := op(tx); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch {
	case b.renames:
		err = c.commits.doAtomic(ctx, apply, b.a != nil)
	case b.a != nil: // it puts values
		err = c.commits.doGrow(ctx, apply)
	default:
		err = c.commits.do(ctx, apply)
	}
	b.release(err == nil)
	return opErr("batch commit", "", err)
}

// Abort drops the batch: nothing is published, and what it wrote is cut
// from its value file. Abort after Commit does nothing.
func (b *Batch) Abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	b.release(false)
}

func (b *Batch) release(ok bool) {
	b.ops = nil
	if b.a != nil {
		b.c.settle(b.a, b.pos, ok)
		b.a = nil
	}
}
