package possum

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/snapshot"
	"github.com/seed475afdc4/possum/values"
)

// ErrCorrupt is returned at the end of a streamed read of a value whose
// bytes do not match its checksum (damage from outside: a power loss, a
// hand edit). The entry is dropped.
var ErrCorrupt = errors.New("value damaged: checksum mismatch")

// A Value is a stored value held open: its bytes never change while it is
// open, even if its key is replaced, deleted, evicted or expired and its
// region reclaimed, by this process or another. Close it when done: until
// then, on filesystems that cannot clone, its space cannot be given back.
//
// A Value is an io.ReaderAt (safe for concurrent use), an io.ReadSeeker and
// an io.WriterTo (one goroutine at a time for those), and an io.Closer.
type Value struct {
	c    *Cache
	info Info
	mem  []byte         // a small value, read whole
	view *snapshot.View // a large value, pinned
	pos  int64

	// Sequential reads from the start hash as they go, to check the
	// checksum at the end.
	sum     uint64
	sumKind manifest.ChecksumKind
	keyID   int64
	h       hash.Hash64
	hashed  int64
	mu      sync.Mutex // guards mapping
	mapping []byte
}

// Open opens key's value for reading. A missing or expired key is
// ErrNotFound.
//
// Values under 64 KiB are read into memory (and checked against their
// checksum) at once. Larger ones are pinned: on xfs and btrfs their blocks
// are cloned into an anonymous file, which costs tens of microseconds
// whatever the size and vanishes on Close or if the process dies; elsewhere
// a shared lock on their region keeps the reclaimer away until Close.
func (c *Cache) Open(ctx context.Context, key string) (*Value, error) {
	if err := checkKey(key); err != nil {
		return nil, opErr("open", key, err)
	}
	if err := c.enter(); err != nil {
		return nil, opErr("open", key, err)
	}
	defer c.mu.RUnlock()
	v, err := c.openValue(ctx, key)
	return v, opErr("open", key, err)
}

func (c *Cache) openValue(ctx context.Context, key string) (*Value, error) {
	h := keyHash(key)
	si := stripeOf(h)
	for range maxReadRetries {
		s1 := c.stripes.Load(si)
		e, err := c.locate(ctx, key, h, s1)
		if err != nil {
			return nil, err
		}
		if e.neg {
			c.stats.misses.Add(1)
			return nil, ErrNotFound
		}
		v, err := c.pin(key, &e.loc, s1, si)
		if errors.Is(err, errRetry) {
			c.stats.retries.Add(1)
			continue
		}
		return v, err
	}
	return nil, errContended
}

// errRetry says the value changed while it was being pinned.
var errRetry = errors.New("retry")

// locInfo describes the value at loc.
func locInfo(key string, loc *manifest.Location) Info {
	i := Info{Key: key, Size: loc.Length, Created: time.Unix(0, loc.Created), LastUsed: time.Unix(0, loc.LastUsed)}
	if loc.Expires != 0 {
		i.Expires = time.Unix(0, loc.Expires)
	}
	return i
}

// pin makes a Value of key's value at loc, found while key's stripe (si)
// read s1.
func (c *Cache) pin(key string, loc *manifest.Location, s1 uint64, si int) (*Value, error) {
	if loc.Expires != 0 && loc.Expires <= c.opts.now().UnixNano() {
		c.stats.misses.Add(1)
		c.stats.expired.Add(1)
		return nil, ErrNotFound
	}
	v := &Value{c: c, info: locInfo(key, loc), sum: loc.Checksum, sumKind: loc.ChecksumKind, keyID: loc.KeyID}
	if loc.Length < values.LargeValue {
		mem, err := c.readEntry(key, loc, s1, si)
		if err != nil {
			return nil, err
		}
		v.mem = mem
		return v, nil
	}
	view, err := c.pinView(loc)
	switch {
	case err != nil && c.stripes.Load(si) != s1:
		// The value changed while it was being pinned: freed, its file
		// cut short (a clone then fails with EINVAL) or removed.
		err = errRetry
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, snapshot.ErrBusy):
		err = errRetry // the file or region went: the stripe will say so
	}
	if err == nil && c.stripes.Load(si) != s1 {
		view.Close()
		err = errRetry // freed before the pin took hold, maybe: look again
	}
	if err != nil {
		return nil, err
	}
	v.view = view
	c.access.record(loc.KeyID, c.opts.now().UnixNano())
	c.stats.hits.Add(1)
	return v, nil
}

// readEntry reads the bytes at loc, valid if key's stripe still reads s1
// afterwards (else errRetry) and they match the checksum (else the entry is
// dropped and the read is a miss).
func (c *Cache) readEntry(key string, loc *manifest.Location, s1 uint64, si int) ([]byte, error) {
	p := make([]byte, loc.Length)
	var err error
	if loc.Length > 0 {
		err = c.files.ReadAt(loc.FileID, p, loc.Offset)
	}
	if c.stripes.Load(si) != s1 || errors.Is(err, os.ErrClosed) {
		return nil, errRetry
	}
	if err == nil && checksum(loc.ChecksumKind, p) != loc.Checksum {
		err = errChecksum
	}
	if err != nil {
		c.dropDamaged(key, *loc, err)
		c.stats.misses.Add(1)
		return nil, ErrNotFound
	}
	c.access.record(loc.KeyID, c.opts.now().UnixNano())
	c.stats.hits.Add(1)
	return p, nil
}

// pinView clones or locks loc's region, whichever the filesystem allows.
func (c *Cache) pinView(loc *manifest.Location) (*snapshot.View, error) {
	if c.canClone() {
		view, err := snapshot.Clone(c.files, loc.FileID, loc.Offset, loc.Length, loc.Footprint)
		if err == nil {
			c.stats.clones.Add(1)
			return view, nil
		}
		if !errors.Is(err, values.ErrUnsupported) {
			// Not a filesystem that cannot clone: this value could not be
			// cloned (its file cut short meanwhile, say). The lock path
			// pins it, or fails in turn.
			c.log.Debug("possum: clone failed; pinning with a range lock", "file", loc.FileID, "err", err)
			return c.lockView(loc)
		}
		c.log.Debug("possum: clone unsupported; pinning with range locks", "err", err)
		c.cloneOK.Store(false)
	}
	return c.lockView(loc)
}

// lockView pins loc's region with a shared range lock.
func (c *Cache) lockView(loc *manifest.Location) (*snapshot.View, error) {
	view, err := c.locks.Lock(loc.FileID, loc.Offset, loc.Length, loc.Footprint)
	if err == nil {
		c.stats.locks.Add(1)
	}
	return view, err
}

// canClone reports whether the values directory can clone ranges, probing
// it the first time.
func (c *Cache) canClone() bool {
	c.cloneProbe.Do(func() { c.cloneOK.Store(values.ProbeClone(c.files.Path())) })
	return c.cloneOK.Load()
}

// Info describes the value.
func (v *Value) Info() Info { return v.info }

// Size is the value's length.
func (v *Value) Size() int64 { return v.info.Size }

// ReadAt reads len(p) bytes at off. It does not check the checksum: see
// Read and Verify.
func (v *Value) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("possum: negative offset")
	}
	if off >= v.info.Size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := v.info.Size - off; int64(n) > rest {
		n = int(rest)
	}
	var err error
	if v.mem != nil {
		copy(p[:n], v.mem[off:])
	} else if v.view != nil {
		n, err = v.view.File().ReadAt(p[:n], v.view.Offset()+off)
	} else {
		return 0, ErrClosed
	}
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// Read reads from the current position. A value read from start to end by
// Read alone is checked against its checksum: the last Read returns
// ErrCorrupt instead of io.EOF if it does not match.
func (v *Value) Read(p []byte) (int, error) {
	n, err := v.ReadAt(p, v.pos)
	if v.hashed == v.pos && v.view != nil {
		if v.h == nil {
			v.h = newDigest(v.sumKind)
		}
		v.h.Write(p[:n])
		v.hashed += int64(n)
	}
	v.pos += int64(n)
	if err == io.EOF && v.hashed == v.info.Size && v.view != nil && v.h.Sum64() != v.sum {
		return n, v.corrupt()
	}
	return n, err
}

func (v *Value) corrupt() error {
	v.c.stats.corrupt.Add(1)
	v.c.access.drop(v.keyID)
	return &Error{Op: "read", Key: v.info.Key, Err: ErrCorrupt}
}

// Seek sets the position of the next Read.
func (v *Value) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += v.pos
	case io.SeekEnd:
		offset += v.info.Size
	default:
		return v.pos, fmt.Errorf("possum: bad whence %d", whence)
	}
	if offset < 0 {
		return v.pos, errors.New("possum: negative position")
	}
	v.pos = offset
	return offset, nil
}

// Verify reads the whole value and checks it against its checksum.
func (v *Value) Verify() error {
	if v.mem != nil {
		return nil // checked when read
	}
	h := newDigest(v.sumKind)
	if _, err := io.Copy(h, io.NewSectionReader(v, 0, v.info.Size)); err != nil {
		return err
	}
	if h.Sum64() != v.sum {
		return v.corrupt()
	}
	return nil
}

// Bytes returns the value's bytes without copying them where it can: a
// small value's buffer, or a read-only mapping of a large one (valid until
// Close, never written to). Where a mapping could fault (FUSE), it reads the
// value into memory instead.
func (v *Value) Bytes() ([]byte, error) {
	if v.mem != nil || v.info.Size == 0 {
		return v.mem, nil
	}
	if v.view == nil {
		return nil, ErrClosed
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mapping != nil {
		return v.mapping, nil
	}
	if values.MayVanish(v.c.files.Path()) {
		b := make([]byte, v.info.Size)
		_, err := v.ReadAt(b, 0)
		return b, err
	}
	m, err := values.MapReadOnly(v.view.File(), v.view.Offset(), v.info.Size)
	if err != nil {
		return nil, err
	}
	v.mapping = m
	return m, nil
}

// Close releases the value. It is safe to call more than once.
func (v *Value) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	var err error
	if v.mapping != nil {
		err = values.Unmap(v.mapping)
		v.mapping = nil
	}
	if v.view != nil {
		err = errors.Join(err, v.view.Close())
		v.view = nil
	}
	v.mem = nil
	return err
}

var (
	_ io.ReaderAt   = (*Value)(nil)
	_ io.ReadSeeker = (*Value)(nil)
	_ io.WriterTo   = (*Value)(nil)
	_ io.Closer     = (*Value)(nil)
)
