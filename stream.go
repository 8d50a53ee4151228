package possum

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/zeebo/xxh3"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// heldBufs hold a value's first bytes until it is known whether the value is
// small (packed) or large (aligned).
var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, values.LargeValue); return &b }}

// A stream writes one value into a value file as its bytes arrive, of a
// length not known in advance. Its first LargeValue bytes are held back:
// if the value ends before that, it is small and packed at the file's end;
// otherwise it is placed at the next block boundary and streamed there.
// Every byte is hashed on its way. Nothing is published: finish says what
// to publish, abort gives the bytes back.
type stream struct {
	c    *Cache
	ctx  context.Context
	getA func() (*values.Appender, error)
	pos  int64 // where the value may start; 0 until the appender is known
	a    *values.Appender
	hp   *[]byte
	held []byte
	w    *valueWriter // set once placed
}

// newStream starts a value at or after pos (0: the appender's end), in the
// appender getA supplies the first time one is needed (an empty value needs
// none).
func (c *Cache) newStream(ctx context.Context, getA func() (*values.Appender, error), pos int64) *stream {
	hp := heldBufs.Get().(*[]byte)
	return &stream{c: c, ctx: ctx, getA: getA, pos: pos, hp: hp, held: (*hp)[:0]}
}

// release returns the stream's buffer. The stream must not be used after.
func (s *stream) release() {
	*s.hp = s.held[:0]
	heldBufs.Put(s.hp)
	s.hp, s.held = nil, nil
}

func (s *stream) Write(p []byte) (int, error) {
	if s.w != nil {
		return s.w.Write(p)
	}
	if len(s.held)+len(p) < values.LargeValue {
		s.held = append(s.held, p...)
		return len(p), nil
	}
	if err := s.place(values.LargeValue); err != nil {
		return 0, err
	}
	if _, err := s.w.Write(s.held); err != nil {
		return 0, err
	}
	s.held = s.held[:0]
	return s.w.Write(p)
}

// place decides where the value goes, knowing it is at least size bytes.
func (s *stream) place(size int64) error {
	a, err := s.getA()
	if err != nil {
		return err
	}
	s.a = a
	if s.pos == 0 {
		s.pos = a.End()
	}
	off, _ := s.c.files.Placement(s.pos, size)
	s.w = &valueWriter{ctx: s.ctx, a: a, off: off, h: xxh3.New(), limit: s.c.capacity.Load()}
	return nil
}

// ReadFrom copies r into the value. A regular file of LargeValue bytes or
// more is brought in by the kernel: cloned where the filesystem can (xfs,
// btrfs: the value then shares the file's blocks), copied with
// copy_file_range elsewhere.
func (s *stream) ReadFrom(r io.Reader) (int64, error) {
	if f, ok := r.(*os.File); ok && s.w == nil && len(s.held) == 0 {
		if n, done, err := s.readFile(f); done {
			return n, err
		}
	}
	if b, ok := r.(*bytesReader); ok && s.w == nil && len(s.held) == 0 && b.off == 0 {
		// Bytes in memory (PutBytes): a large value goes to the file in
		// one write, with its length known for placement.
		if len(b.b) >= values.LargeValue {
			if err := s.place(int64(len(b.b))); err != nil {
				return 0, err
			}
		}
		n, err := s.Write(b.b)
		b.off = n
		return int64(n), err
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(onlyWriter{s}, onlyReader{r}, *bp)
}

// readFile brings in the rest of f from its current offset through the
// kernel, if f is a regular file and the rest is large. done says whether
// it did (or failed trying); if not, nothing was written.
func (s *stream) readFile(f *os.File) (int64, bool, error) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false, nil
	}
	cur, err := f.Seek(0, io.SeekCurrent)
	n := fi.Size() - cur
	if err != nil || n < values.LargeValue {
		return 0, false, nil
	}
	if limit := s.c.capacity.Load(); limit > 0 && n > limit {
		return 0, true, fmt.Errorf("%w: %d bytes, more than the cache's capacity of %d", ErrTooLarge, n, limit)
	}
	if err := s.place(n); err != nil {
		return 0, true, err
	}
	dst, doff := s.a.File(), s.w.off
	if cur%s.c.files.Align() == 0 && values.CloneAt(dst, doff, f, cur, n) == nil {
		s.c.stats.putCloneBytes.Add(n)
	} else {
		soff := cur
		m, err := values.CopyRange(dst, &doff, f, &soff, n)
		if errors.Is(err, values.ErrUnsupported) {
			return s.copyFile(f, cur, n)
		}
		if err != nil {
			return m, true, err
		}
		s.c.stats.putCopyBytes.Add(n)
	}
	if _, err := f.Seek(cur+n, io.SeekStart); err != nil {
		return n, true, err
	}
	return n, true, s.hashBack(n)
}

// copyFile copies n bytes of f from cur through memory, when the kernel
// cannot (another filesystem).
func (s *stream) copyFile(f *os.File, cur, n int64) (int64, bool, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	m, err := io.CopyBuffer(onlyWriter{s.w}, onlyReader{io.NewSectionReader(f, cur, n)}, *bp)
	if err == nil {
		_, err = f.Seek(cur+m, io.SeekStart)
	}
	return m, true, err
}

// hashBack hashes the n bytes the kernel put in the value file (from the
// page cache, usually), so that the value has its checksum like any other.
func (s *stream) hashBack(n int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for done := int64(0); done < n; {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		k := min(int64(len(buf)), n-done)
		if _, err := s.a.File().ReadAt(buf[:k], s.w.off+done); err != nil {
			return err
		}
		s.w.h.Write(buf[:k])
		done += k
	}
	s.w.n = n
	return nil
}

// finish ends the value and returns the entry to publish (without its key
// and expiry) and the file's new end. An empty value has no file.
func (s *stream) finish() (manifest.NewEntry, int64, error) {
	var e manifest.NewEntry
	if s.w == nil {
		if len(s.held) == 0 {
			e.Checksum = xxh3.Hash(nil)
			return e, s.pos, nil
		}
		if err := s.place(int64(len(s.held))); err != nil {
			return e, 0, err
		}
		if _, err := s.w.Write(s.held); err != nil {
			return e, 0, err
		}
	}
	w, a := s.w, s.a
	_, fp := s.c.files.Placement(s.pos, w.n)
	var err error
	if fp > w.n {
		err = a.Reserve(w.off + fp)
	}
	if err == nil && s.c.opts.Sync {
		err = a.File().Sync()
	}
	e.FileID, e.Offset, e.Length, e.Footprint, e.Checksum = a.ID(), w.off, w.n, fp, w.h.Sum64()
	return e, w.off + fp, err
}

// abort cuts off whatever the stream wrote.
func (s *stream) abort() error {
	if s.a == nil {
		return nil
	}
	return s.a.TruncateTo(s.pos)
}

// onlyWriter hides a writer's ReadFrom, so io.CopyBuffer uses its Write.
type onlyWriter struct{ io.Writer }
