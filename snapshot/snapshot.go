// Package snapshot gives stable views of stored values: bytes that do not
// change while the view is open, whatever other processes do to the key.
//
// Two ways, chosen per cache directory:
//
//   - Clone (xfs, btrfs): the value's blocks are cloned (FICLONERANGE) into
//     an anonymous O_TMPFILE. The clone shares the blocks, costs tens of
//     microseconds whatever the size, and vanishes when closed or when its
//     process dies. The original may be punched meanwhile; the blocks stay
//     allocated until the clone is closed.
//   - Locks.Lock (ext4, tmpfs, anything that cannot clone): a shared OFD lock on
//     the value's region, on a descriptor of the view's own. The reclaimer
//     only frees a region it holds an exclusive lock on, so the region
//     stays; its space is counted (a dead extent) until the view is closed
//     and the next reclaim pass gives it back.
//
// Either way the caller must check, after pinning, that the value was not
// freed before the pin took hold (DESIGN.md, Reads: the stripe check).
package snapshot

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/seed475afdc4/possum/values"
)

// Kind says how a View pins its bytes.
type Kind int

const (
	Cloned Kind = iota + 1 // a reflink clone in an anonymous file
	Locked                 // a shared range lock on the value file
)

func (k Kind) String() string {
	switch k {
	case Cloned:
		return "clone"
	case Locked:
		return "lock"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// View is a pinned value: its bytes are [Offset, Offset+Size) of File.
type View struct {
	f    *os.File
	off  int64
	size int64
	kind Kind

	locks   *Locks // the Locks that made a Locked view, which takes its descriptor back
	id      int64
	lockLen int64
}

// File is the file holding the bytes: the clone, or the value file.
func (v *View) File() *os.File { return v.f }

// Offset is where the bytes start in File.
func (v *View) Offset() int64 { return v.off }

// Size is the value's length.
func (v *View) Size() int64 { return v.size }

// Kind says how the view is pinned.
func (v *View) Kind() Kind { return v.kind }

// Close releases the view: the clone vanishes, or the lock goes.
func (v *View) Close() error {
	if v.locks != nil {
		return v.locks.release(v)
	}
	return v.f.Close()
}

// Clone clones the value at [off, off+footprint) of file id (off aligned,
// footprint a multiple of the block size) into an anonymous file. It
// returns an error matching values.ErrUnsupported if the filesystem cannot
// clone.
func Clone(d *values.Dir, id, off, size, footprint int64) (*View, error) {
	src, err := d.Reader(id)
	if err != nil {
		return nil, err
	}
	dst, err := values.TempFile(d.Path())
	if err != nil {
		return nil, err
	}
	if err := values.CloneRange(dst, src, off, footprint); err != nil {
		dst.Close()
		return nil, err
	}
	if footprint > size {
		if err := dst.Truncate(size); err != nil {
			dst.Close()
			return nil, err
		}
	}
	return &View{f: dst, off: 0, size: size, kind: Cloned}, nil
}

// lockTries and lockWait bound how long Lock waits for a conflicting
// exclusive lock to go: a writer narrowing its tail lock just after its
// commit, or a reclaimer checking a region, each holds it for microseconds.
// A region still locked after that is being reclaimed: the value is gone.
const (
	lockTries = 50
	lockWait  = 100 * time.Microsecond
)

// ErrBusy reports a region that stayed locked exclusively.
var ErrBusy = errors.New("value region locked by a reclaimer")
