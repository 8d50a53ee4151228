// Package values holds possum's value files: sparse, append-only files under
// <dir>/values, each written by one writer at a time (the holder of an OFD
// write lock on its tail) and read by anyone with pread. It also holds the
// layout rules (which values are packed and which aligned), the stripes file
// readers validate against, and the OS primitives (locks, punch, clone) split
// per OS.
package values

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// LargeValue is the size from which a value starts at a multiple of the
// alignment unit and owns its blocks outright, so that it can be punched
// exactly and cloned. Below it, values are packed back to back: 4 KiB of
// padding and a clone's fixed cost of tens of microseconds are not worth it
// for small values, which a pread serves in about a microsecond.
const LargeValue = 64 << 10

// ErrLocked reports a byte-range lock held by someone else.
var ErrLocked = errors.New("range is locked")

// ErrUnsupported matches errors.ErrUnsupported: the filesystem cannot do it.
var ErrUnsupported = errors.ErrUnsupported

func errUnsupported(op string, cause error) error {
	if cause == nil {
		return fmt.Errorf("%s: %w", op, ErrUnsupported)
	}
	return fmt.Errorf("%s: %w (%v)", op, ErrUnsupported, cause)
}

// Dir is the values directory of one open cache. Its read side keeps one
// read-only descriptor per file, shared by every goroutine (pread needs no
// lock).
type Dir struct {
	path  string
	align int64
	perm  fs.FileMode

	mu    sync.RWMutex
	files map[int64]*os.File // read descriptors, opened on demand
}

// maxReadFiles bounds the read descriptors kept open. Past it, one is closed
// at random (a read in flight on it finishes first: os.File counts its users).
const maxReadFiles = 1024

// OpenDir opens (creating if needed) the values directory at path, with
// files created at perm.
func OpenDir(path string, perm fs.FileMode) (*Dir, error) {
	if err := os.Mkdir(path, DirPerm(perm)); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if fi, err := os.Lstat(path); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", path)
	}
	bs, err := blockSize(path)
	if err != nil {
		return nil, err
	}
	align := max(4096, bs)
	NoPreallocDir(path)
	return &Dir{path: path, align: align, perm: perm, files: map[int64]*os.File{}}, nil
}

// Align is the alignment unit A = max(4096, statfs f_bsize).
func (d *Dir) Align() int64 { return d.align }

// Path is the directory's name.
func (d *Dir) Path() string { return d.path }

// FileName returns the path of value file id.
func (d *Dir) FileName(id int64) string {
	return filepath.Join(d.path, fmt.Sprintf("%016x.val", id))
}

// ParseFileName returns the id of a value file's base name.
func ParseFileName(name string) (int64, bool) {
	hex, ok := strings.CutSuffix(name, ".val")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 63)
	return int64(id), err == nil
}

// DirPerm is the mode of a directory holding files of mode perm: each class
// that may read the files may also search the directory.
func DirPerm(perm fs.FileMode) fs.FileMode { return perm | (perm&0o444)>>2 }

// AlignUp rounds n up to a multiple of a (a power of two).
func AlignUp(n, a int64) int64 { return (n + a - 1) &^ (a - 1) }

// AlignDown rounds n down to a multiple of a (a power of two).
func AlignDown(n, a int64) int64 { return n &^ (a - 1) }

// Placement says where a value of length n goes in a file whose next free
// byte is end, and how many bytes of the file it then owns (its footprint):
// large values start aligned and own whole blocks; small ones are packed.
func (d *Dir) Placement(end, n int64) (off, footprint int64) {
	if n >= LargeValue {
		return AlignUp(end, d.align), AlignUp(n, d.align)
	}
	return end, n
}

// ReadAt reads len(p) bytes of file id at off. A file that does not exist
// is fs.ErrNotExist; a short read (the file was truncated) is
// io.ErrUnexpectedEOF. Callers validate what they read (DESIGN.md, Reads):
// this is only the pread.
func (d *Dir) ReadAt(id int64, p []byte, off int64) error {
	f, err := d.reader(id)
	if err != nil {
		return err
	}
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == io.EOF || err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Reader returns the shared read descriptor of file id. Callers must not
// close it.
func (d *Dir) Reader(id int64) (*os.File, error) { return d.reader(id) }

func (d *Dir) reader(id int64) (*os.File, error) {
	d.mu.RLock()
	f := d.files[id]
	d.mu.RUnlock()
	if f != nil {
		return f, nil
	}
	f, err := os.OpenFile(d.FileName(id), os.O_RDONLY|NoFollow, 0)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if g := d.files[id]; g != nil {
		f.Close()
		return g, nil
	}
	if len(d.files) >= maxReadFiles {
		for k, g := range d.files {
			g.Close()
			delete(d.files, k)
			break
		}
	}
	d.files[id] = f
	return f, nil
}

// Forget closes the read descriptor of file id, if any: the file is gone.
func (d *Dir) Forget(id int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f := d.files[id]; f != nil {
		f.Close()
		delete(d.files, id)
	}
}

// Sweep closes the read descriptors of files that have been removed (by
// another process's reclaimer, say): an open descriptor would keep a removed
// file's blocks allocated.
func (d *Dir) Sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, f := range d.files {
		if Unlinked(f) {
			f.Close()
			delete(d.files, id)
		}
	}
}

// Close closes the read descriptors.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, f := range d.files {
		f.Close()
		delete(d.files, id)
	}
	return nil
}

// List returns the ids of the value files present in the directory, and the
// names of other entries (strays).
func (d *Dir) List() (ids []int64, strays []string, err error) {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if id, ok := ParseFileName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		} else {
			strays = append(strays, e.Name())
		}
	}
	return ids, strays, nil
}
