package possum

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zeebo/xxh3"

	"github.com/seed475afdc4/possum/internal/crashpoint"
	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// copyBufSize is the chunk a streamed value is copied in: large enough that
// the per-call costs (a read, a pwrite, a hash update) vanish against the
// bytes moved, small enough to stay in the CPU caches.
const copyBufSize = 1 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// Put stores the bytes read from r under key, replacing any value the key
// had, and returns how many bytes it stored. The length need not be known up
// front: the bytes stream straight into a value file while no lock of the
// manifest is held, and the key is published only once they are all written.
// If r fails, ctx ends, or the disk fills up, nothing is published and the
// bytes written so far are given back; the key keeps its old value.
func (c *Cache) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	return c.PutWith(ctx, key, r, nil)
}

// PutBytes stores v under key, replacing any value the key had. Unlike
// Put's, a large v's bytes (256 KiB to 4 MiB) are written while the commit
// that publishes them is already under way, holding the manifest's write
// lock for at most 2 ms more (see stagedPut); they are still published
// only once they are all written.
func (c *Cache) PutBytes(ctx context.Context, key string, v []byte) error {
	_, err := c.PutWith(ctx, key, &bytesReader{b: v}, nil)
	return err
}

// bytesReader is a bytes.Reader whose bytes a stream can take whole (see
// stream.ReadFrom): one write into the value file, no copy through a
// buffer.
type bytesReader struct {
	b   []byte
	off int
}

func (r *bytesReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// PutWith is Put with options; nil opts means none.
func (c *Cache) PutWith(ctx context.Context, key string, r io.Reader, opts *PutOptions) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, opErr("put", key, err)
	}
	if err := c.enter(); err != nil {
		return 0, opErr("put", key, err)
	}
	defer c.mu.RUnlock()
	if b, ok := r.(*bytesReader); ok && b.off == 0 && len(b.b) >= stageMin && len(b.b) <= stageMax {
		return c.putStaged(ctx, key, b, opts)
	}
	var a *values.Appender
	getA := func() (*values.Appender, error) {
		var err error
		a, err = c.pool.Get(ctx)
		return a, err
	}
	e, end, err := c.writeValue(ctx, getA, 0, key, r, opts)
	if err == nil {
		crashpoint.Hit("put:written")
		err = c.commits.doGrow(ctx, func(tx *manifest.Tx) error { return tx.Insert(e) })
	}
	if a != nil {
		c.settle(a, end, err == nil)
	}
	if err != nil {
		return 0, opErr("put", key, err)
	}
	return e.Length, nil
}

// putStaged is PutWith for a large value whose bytes are in memory: its
// length, and so its place in a value file, is known before it is written,
// and its commit request goes to the committer before the write, so that
// the transaction's statements run while the kernel copies the bytes (see
// stagedPut). The row is committed only once the bytes are written.
func (c *Cache) putStaged(ctx context.Context, key string, b *bytesReader, opts *PutOptions) (int64, error) {
	n := int64(len(b.b))
	if limit := c.capacity.Load(); limit > 0 && n > limit {
		return 0, opErr("put", key, fmt.Errorf("%w: %d bytes, more than the cache's capacity of %d", ErrTooLarge, n, limit))
	}
	if err := ctx.Err(); err != nil {
		return 0, opErr("put", key, err)
	}
	a, err := c.pool.Get(ctx)
	if err != nil {
		return 0, opErr("put", key, err)
	}
	s := c.newStream(ctx, func() (*values.Appender, error) { return a, nil }, 0)
	defer s.release()
	if err := s.place(n); err != nil {
		c.settle(a, 0, false)
		return 0, opErr("put", key, err)
	}
	_, fp := c.files.Placement(s.pos, n)
	p := &stagedPut{e: manifest.NewEntry{Key: []byte(key), FileID: a.ID(), Offset: s.w.off, Length: n, Footprint: fp, Expires: c.expiry(opts)}}
	// Hash first, on this core (XXH3: about 23 µs a MiB), then send the
	// request: the committer begins the transaction, inserts the row and
	// runs the capacity check on the other core while the kernel copies the
	// bytes, and parks the transaction for this goroutine to commit once
	// they are in (committer.written).
	p.e.Checksum = xxh3.Hash(b.b)
	req := &commitReq{stage: p, grows: true, done: make(chan struct{})}
	queued := c.commits.offer(req)
	hook := c.stagedHook
	var m int
	if hook != nil {
		err = hook(key, "write")
	}
	if err == nil {
		m, err = a.WriteAt(b.b, s.w.off)
		if m < len(b.b) && err == nil {
			err = io.ErrShortWrite
		}
	}
	s.w.n = int64(m)
	var e manifest.NewEntry
	var end int64
	if err == nil {
		e, end, err = s.finish()
		e.Checksum = p.e.Checksum
	}
	if err == nil && (e.FileID != p.e.FileID || e.Offset != p.e.Offset || e.Footprint != fp) {
		err = fmt.Errorf("possum: internal error: value placed at %d+%d in file %d, staged at %d+%d in file %d",
			e.Offset, e.Footprint, e.FileID, p.e.Offset, p.e.Footprint, p.e.FileID)
	}
	if err != nil {
		err = errors.Join(err, s.abort())
	} else {
		crashpoint.Hit("put:written")
	}
	p.err = err
	if queued {
		c.commits.written(p)
		<-req.done
	}
	switch {
	case err != nil:
	case queued && req.err != nil:
		err = req.err
	case !queued || p.retry:
		e.Key, e.Expires = p.e.Key, p.e.Expires
		err = c.commits.doGrow(ctx, func(tx *manifest.Tx) error { return tx.Insert(e) })
	}
	c.settle(a, end, err == nil)
	if err != nil {
		return 0, opErr("put", key, err)
	}
	return n, nil
}

// settle ends a writer's use of a: on success its committed end moves to
// end; otherwise what it wrote is cut off. Either way a goes back to the pool
// (or is dropped if its file misbehaves).
func (c *Cache) settle(a *values.Appender, end int64, ok bool) {
	var err error
	if ok {
		err = a.Commit(end)
	} else {
		err = a.Abort()
	}
	if err != nil {
		c.log.Warn("possum: value file trouble; dropping it from the pool", "file", a.ID(), "err", err)
		c.pool.Discard(a)
		return
	}
	c.pool.Put(a)
}

// writeValue copies r into a value file, starting at or after pos (0 means
// the appender's committed end), and returns the entry to publish and the
// file's new end. getA supplies the appender the first time one is needed:
// an empty value needs none. On error, nothing past pos is kept.
func (c *Cache) writeValue(ctx context.Context, getA func() (*values.Appender, error), pos int64,
	key string, r io.Reader, opts *PutOptions) (manifest.NewEntry, int64, error) {
	s := c.newStream(ctx, getA, pos)
	defer s.release()
	_, err := s.ReadFrom(r)
	var e manifest.NewEntry
	var end int64
	if err == nil {
		e, end, err = s.finish()
	}
	if err != nil {
		return e, 0, errors.Join(err, s.abort())
	}
	e.Key, e.Expires = []byte(key), c.expiry(opts)
	return e, end, nil
}

func (c *Cache) expiry(opts *PutOptions) int64 {
	if opts == nil || opts.TTL <= 0 {
		return 0
	}
	return c.opts.now().Add(opts.TTL).UnixNano()
}

// valueWriter writes a value's bytes at consecutive offsets of a value file,
// hashing them as they go, and checks ctx between chunks.
type valueWriter struct {
	ctx   context.Context
	a     *values.Appender
	off   int64
	n     int64
	h     *xxh3.Hasher
	limit int64 // the capacity: a larger value is refused; 0 for none
}

func (w *valueWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if w.limit > 0 && w.n+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("%w: more than the cache's capacity of %d bytes", ErrTooLarge, w.limit)
	}
	m, err := w.a.WriteAt(p, w.off+w.n)
	w.h.Write(p[:m])
	w.n += int64(m)
	return m, err
}

// onlyReader hides everything but Read, so io.CopyBuffer uses our buffer
// and our writer (which hashes) rather than a WriterTo that bypasses it.
type onlyReader struct{ io.Reader }

// Delete removes key. A missing key is ErrNotFound.
func (c *Cache) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return opErr("delete", key, err)
	}
	return c.change(ctx, "delete", key, func(tx *manifest.Tx) error { return tx.Delete([]byte(key)) })
}

// DeletePrefix removes every key that starts with prefix, atomically, and
// returns how many it removed. The empty prefix removes every key.
func (c *Cache) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	var n int
	err := c.change(ctx, "delete prefix", prefix, func(tx *manifest.Tx) error {
		var err error
		n, err = tx.DeleteRange([]byte(prefix), prefixEnd(prefix))
		return err
	})
	c.locs.dropPrefix(prefix)
	return n, err
}

// Rename gives the value of from to the key to, atomically, like
// os.Rename: if to exists, its value is replaced (and its space freed). The
// value keeps its bytes, its creation time and its last use. A missing from
// is ErrNotFound, and then nothing changes.
func (c *Cache) Rename(ctx context.Context, from, to string) error {
	for _, k := range []string{from, to} {
		if err := checkKey(k); err != nil {
			return opErr("rename", k, err)
		}
	}
	return c.change(ctx, "rename", from, func(tx *manifest.Tx) error { return tx.Rename([]byte(from), []byte(to)) })
}

// MovePrefix renames every key that starts with from to the same key with
// from replaced by to, atomically, replacing keys that already exist there,
// and returns how many keys it moved. Moves that overlap (to starting with
// from, or the reverse) are fine: each key moves exactly once.
func (c *Cache) MovePrefix(ctx context.Context, from, to string) (int, error) {
	if from == to {
		return 0, nil
	}
	var n int
	err := c.change(ctx, "move prefix", from, func(tx *manifest.Tx) error {
		var err error
		n, err = tx.MovePrefix([]byte(from), prefixEnd(from), []byte(from), []byte(to))
		if errors.Is(err, manifest.ErrKeyTooLong) || errors.Is(err, manifest.ErrKeyEmpty) {
			err = fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		return err
	})
	c.locs.dropPrefix(from) // see DeletePrefix
	return n, err
}

// change runs one manifest change through the committer; key names what
// it is about in errors.
func (c *Cache) change(ctx context.Context, op, key string, apply func(*manifest.Tx) error) error {
	if err := c.enter(); err != nil {
		return opErr(op, key, err)
	}
	defer c.mu.RUnlock()
	return opErr(op, key, c.commits.do(ctx, apply))
}

// prefixEnd is the smallest key greater than every key with the prefix, or
// nil if there is none (the prefix is empty or all 0xFF bytes).
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
