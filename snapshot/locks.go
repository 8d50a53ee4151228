package snapshot

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/seed475afdc4/possum/values"
)

// maxIdleLockFiles bounds the descriptors Locks keeps open between views.
const maxIdleLockFiles = 64

// Locks pins values by shared range locks, each view through an open file
// description of its own (so that views of overlapping regions never merge
// or release each other's locks). A closed view's description is unlocked
// and kept for the next view of the same file, which saves an open and a
// close per view: most of the cost of a lock pin.
//
// The zero value is not usable; make one with NewLocks. Its methods are safe
// for concurrent use.
type Locks struct {
	d      *values.Dir
	mu     sync.Mutex
	idle   map[int64][]*os.File // by file id
	n      int                  // idle descriptors in all
	closed bool
}

// NewLocks returns a Locks for the value files of d.
func NewLocks(d *values.Dir) *Locks {
	return &Locks{d: d, idle: make(map[int64][]*os.File)}
}

// Lock takes a shared lock on [off, off+footprint) of file id.
func (l *Locks) Lock(id, off, size, footprint int64) (*View, error) {
	f, err := l.take(id)
	if err != nil {
		return nil, err
	}
	n := max(footprint, 1)
	for range lockTries {
		err = values.LockRange(f, values.ReadLock, off, n)
		if !errors.Is(err, values.ErrLocked) {
			break
		}
		time.Sleep(lockWait)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, values.ErrLocked) {
			return nil, ErrBusy
		}
		return nil, err
	}
	return &View{f: f, off: off, size: size, kind: Locked, locks: l, id: id, lockLen: n}, nil
}

// take returns an unlocked descriptor of file id: an idle one, or a new one.
func (l *Locks) take(id int64) (*os.File, error) {
	if values.DescriptorLocks {
		l.mu.Lock()
		if fs := l.idle[id]; len(fs) > 0 {
			f := fs[len(fs)-1]
			if len(fs) == 1 {
				delete(l.idle, id)
			} else {
				l.idle[id] = fs[:len(fs)-1]
			}
			l.n--
			l.mu.Unlock()
			return f, nil
		}
		l.mu.Unlock()
	}
	return os.OpenFile(l.d.FileName(id), os.O_RDONLY|values.NoFollow, 0)
}

// release unlocks v's region and keeps its descriptor for reuse, or closes
// it.
func (l *Locks) release(v *View) error {
	if !values.DescriptorLocks {
		return v.f.Close()
	}
	if err := values.LockRange(v.f, values.Unlock, v.off, v.lockLen); err != nil {
		return errors.Join(err, v.f.Close()) // closing releases the lock too
	}
	l.mu.Lock()
	if l.closed || l.n >= maxIdleLockFiles {
		l.mu.Unlock()
		return v.f.Close()
	}
	l.idle[v.id] = append(l.idle[v.id], v.f)
	l.n++
	l.mu.Unlock()
	return nil
}

// Forget closes the idle descriptors of file id, which has been removed.
func (l *Locks) Forget(id int64) {
	l.mu.Lock()
	fs := l.idle[id]
	delete(l.idle, id)
	l.n -= len(fs)
	l.mu.Unlock()
	for _, f := range fs {
		f.Close()
	}
}

// Sweep closes the idle descriptors of files that have been removed (by
// another process's reclaimer, say): they would keep the files' blocks
// allocated.
func (l *Locks) Sweep() {
	var gone []*os.File
	l.mu.Lock()
	for id, fs := range l.idle {
		if len(fs) > 0 && values.Unlinked(fs[0]) {
			gone = append(gone, fs...)
			l.n -= len(fs)
			delete(l.idle, id)
		}
	}
	l.mu.Unlock()
	for _, f := range gone {
		f.Close()
	}
}

// Close closes the idle descriptors. Views still open stay valid; their
// descriptors are closed when they are.
func (l *Locks) Close() error {
	l.mu.Lock()
	idle := l.idle
	l.idle, l.n, l.closed = map[int64][]*os.File{}, 0, true
	l.mu.Unlock()
	for _, fs := range idle {
		for _, f := range fs {
			f.Close()
		}
	}
	return nil
}
