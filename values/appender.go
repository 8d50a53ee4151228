package values

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// An Appender is the exclusive right to append to one value file: it holds
// an OFD write lock on [End, ∞) of the file, taken without waiting, so no
// other writer (in this process or another) appends to the file, and no
// reclaimer truncates or punches past its committed end, while it is held.
//
// An Appender is used by one goroutine at a time.
type Appender struct {
	f   *os.File
	id  int64
	end int64 // next free byte; the lock covers [end, ∞)
	dir *Dir
}

// ID is the file's id.
func (a *Appender) ID() int64 { return a.id }

// End is the file's committed end: the offset the next value is placed from.
func (a *Appender) End() int64 { return a.end }

// File is the file itself, open for reading and writing.
func (a *Appender) File() *os.File { return a.f }

// WriteAt writes p at off, which must be at or past End.
func (a *Appender) WriteAt(p []byte, off int64) (int, error) {
	if off < a.end {
		return 0, fmt.Errorf("values: write at %d below the committed end %d", off, a.end)
	}
	return a.f.WriteAt(p, off)
}

// Reserve makes the file at least end bytes long (the new bytes are a
// hole, taking no space), so that a large value's footprint, which runs to
// a block boundary past its last byte, is part of the file: whoever takes
// the file over next starts after it.
func (a *Appender) Reserve(end int64) error {
	fi, err := a.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < end {
		return a.f.Truncate(end)
	}
	return nil
}

// Commit moves the committed end to end (the manifest now refers to the bytes
// before it) and shrinks the tail lock to [end, ∞): what is below is
// published and immutable, and readers and the reclaimer may lock it.
func (a *Appender) Commit(end int64) error {
	if end <= a.end {
		return nil
	}
	old := a.end
	a.end = end
	return LockRange(a.f, Unlock, old, end-old)
}

// Abort gives back what was written past the committed end, while the file
// is still held: nothing uncommitted is left behind.
func (a *Appender) Abort() error { return a.TruncateTo(a.end) }

// TruncateTo cuts the file back to pos (at or past End): what a failed
// write had added after pos is given back.
func (a *Appender) TruncateTo(pos int64) error {
	if pos < a.end {
		return fmt.Errorf("values: truncate to %d below the committed end %d", pos, a.end)
	}
	fi, err := a.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > pos {
		return a.f.Truncate(pos)
	}
	return nil
}

// Close releases the file (and its lock) without touching its contents.
func (a *Appender) Close() error { return a.f.Close() }

// openAppender opens file id and tries to take its tail. It returns
// ErrLocked if another writer holds it, fs.ErrNotExist if it is gone.
func (d *Dir) openAppender(id int64, create bool) (*Appender, error) {
	flag := os.O_RDWR | NoFollow
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(d.FileName(id), flag, d.perm)
	if err != nil {
		return nil, err
	}
	if create {
		noPrealloc(f, d.align)
	}
	a, err := d.takeTail(f, id)
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// takeTail locks [size, ∞) of f and then reads the size again: the lock is
// taken before the end is trusted, because a writer that held the file may
// have appended and let go between a first fstat and the lock. A file that
// was unlinked meanwhile (a reclaimer removes files only while it holds the
// whole file) is refused.
func (d *Dir) takeTail(f *os.File, id int64) (*Appender, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	start := fi.Size()
	if err := LockRange(f, WriteLock, start, 0); err != nil {
		return nil, err
	}
	fi, err = f.Stat()
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return nil, fs.ErrNotExist
	}
	end := fi.Size()
	switch {
	case end > start: // the last holder appended before letting go
		if err := LockRange(f, Unlock, start, end-start); err != nil {
			return nil, err
		}
	case end < start:
		// A reclaimer cut the tail off between the two fstats: the lock
		// must reach down to the new end, or bytes written there would be
		// unprotected.
		if err := LockRange(f, WriteLock, end, 0); err != nil {
			return nil, err
		}
	}
	return &Appender{f: f, id: id, end: end, dir: d}, nil
}

// Pool hands out Appenders to the goroutines of one process. It keeps a few
// idle ones (still locked, so that small writes need no new lock), takes
// over files other writers left, and makes new files when none is free.
type Pool struct {
	dir *Dir
	// NewID allocates a file id in the manifest.
	NewID func(context.Context) (int64, error)
	// Candidates lists existing files worth trying to take over, best first.
	Candidates func(context.Context) ([]int64, error)
	// MaxIdle is how many idle Appenders are kept; more are closed.
	MaxIdle int
	// MaxFileSize retires a file from appending once it is this large, so
	// that files full of dead values can be given back whole.
	MaxFileSize int64

	mu     sync.Mutex
	idle   []*Appender
	held   map[int64]bool // ids held by this process, idle or busy
	closed bool
}

// NewPool returns a pool of appenders for d.
func NewPool(d *Dir) *Pool {
	return &Pool{dir: d, MaxIdle: 4, MaxFileSize: 1 << 30, held: map[int64]bool{}}
}

// ErrPoolClosed is returned by Get after Close.
var ErrPoolClosed = errors.New("values: pool closed")

// Get returns an Appender for the caller's exclusive use.
func (p *Pool) Get(ctx context.Context) (*Appender, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if n := len(p.idle); n > 0 {
		a := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return a, nil
	}
	p.mu.Unlock()
	if a := p.takeOver(ctx); a != nil {
		return a, nil
	}
	return p.create(ctx)
}

// takeOverTries bounds how many existing files a Get tries to lock before it
// makes a new one: a short-lived process (one CLI put) should reuse a file
// rather than add one, but not scan a directory of thousands.
const takeOverTries = 8

func (p *Pool) takeOver(ctx context.Context) *Appender {
	if p.Candidates == nil {
		return nil
	}
	ids, err := p.Candidates(ctx)
	if err != nil {
		return nil
	}
	tries := 0
	for _, id := range ids {
		if tries == takeOverTries {
			break
		}
		p.mu.Lock()
		mine := p.held[id]
		p.mu.Unlock()
		if mine {
			continue
		}
		tries++
		a, err := p.dir.openAppender(id, false)
		if err != nil {
			continue
		}
		if a.end >= p.MaxFileSize {
			a.Close()
			continue
		}
		if p.hold(a) {
			return a
		}
	}
	return nil
}

func (p *Pool) hold(a *Appender) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.held[a.id] {
		a.Close()
		return false
	}
	p.held[a.id] = true
	return true
}

func (p *Pool) create(ctx context.Context) (*Appender, error) {
	for range 8 {
		id, err := p.NewID(ctx)
		if err != nil {
			return nil, err
		}
		a, err := p.dir.openAppender(id, true)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, ErrLocked) || errors.Is(err, fs.ErrNotExist) {
			// A stray file with a fresh id (left to recovery); or, between
			// the file's creation and our lock, another writer took it over
			// or a reclaimer removed it as empty (its id is in the manifest
			// from the moment it is allocated): either way, another id.
			continue
		}
		if err != nil {
			return nil, err
		}
		if !p.hold(a) {
			return nil, ErrPoolClosed
		}
		return a, nil
	}
	return nil, fmt.Errorf("values: could not create a value file")
}

// Put gives a back to the pool after use. Its uncommitted tail must have
// been committed or aborted.
func (p *Pool) Put(a *Appender) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.MaxIdle || a.end >= p.MaxFileSize {
		delete(p.held, a.id)
		a.Close()
		return
	}
	p.idle = append(p.idle, a)
}

// Discard closes a without returning it (after an error on its file).
func (p *Pool) Discard(a *Appender) {
	p.mu.Lock()
	delete(p.held, a.id)
	p.mu.Unlock()
	a.Close()
}

// Close closes the idle Appenders; busy ones are closed when put back.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, a := range p.idle {
		delete(p.held, a.id)
		a.Close()
	}
	p.idle = nil
	return nil
}

var _ io.WriterAt = (*Appender)(nil)
