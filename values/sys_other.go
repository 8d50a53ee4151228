//go:build unix && !linux

package values

import (
	"os"

	"golang.org/x/sys/unix"
)

// LockRange falls back to POSIX record locks where OFD locks do not exist.
// They exclude other processes, but not other descriptors of the same
// process, and closing any descriptor of the file drops them: enough for one
// process per cache directory, not for several opens of one directory in a
// process.
func LockRange(f *os.File, typ int16, start, n int64) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: n}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return ErrLocked
		default:
			return &os.PathError{Op: "fcntl(F_SETLK)", Path: f.Name(), Err: err}
		}
	}
}

// Punch is not supported here; reclaiming falls back to truncation.
func Punch(f *os.File, off, n int64) error {
	return errUnsupported("punch", nil)
}

func blockSize(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return int64(st.Bsize), nil
}

// DataStart assumes data everywhere where SEEK_DATA is not known to work.
func DataStart(f *os.File, off int64) (int64, error) { return off, nil }

// TempFile is not supported here: snapshots use range locks.
func TempFile(dir string) (*os.File, error) { return nil, errUnsupported("O_TMPFILE", nil) }

// CloneRange is not supported here.
func CloneRange(dst, src *os.File, off, n int64) error { return errUnsupported("clone", nil) }

// CloneAt is not supported here.
func CloneAt(dst *os.File, doff int64, src *os.File, soff, n int64) error {
	return errUnsupported("clone", nil)
}

// ProbeClone reports false here.
func ProbeClone(dir string) bool { return false }

// CopyRange is not supported here: callers copy through memory.
func CopyRange(dst *os.File, doff *int64, src *os.File, soff *int64, n int64) (int64, error) {
	return 0, errUnsupported("copy_file_range", nil)
}

// Sendfile is not supported here.
func Sendfile(fd int, src *os.File, off *int64, n int64) (int, error) {
	return 0, errUnsupported("sendfile", nil)
}

// IsEAGAIN reports whether err means "try again when ready".
func IsEAGAIN(err error) bool { return err == unix.EAGAIN }

// MapReadOnly maps n bytes of f from off, read-only and shared.
func MapReadOnly(f *os.File, off, n int64) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
}

// Unmap undoes MapReadOnly.
func Unmap(b []byte) error { return unix.Munmap(b) }

// MayVanish reports false here.
func MayVanish(path string) bool { return false }

// noPrealloc does nothing here.
func noPrealloc(f *os.File, block int64) {}

// NoPreallocDir does nothing here.
func NoPreallocDir(dir string) {}

// HoleStart reports the end of the file: no hole support assumed.
func HoleStart(f *os.File, off int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Allocate is not supported here: there is no space reserve.
func Allocate(f *os.File, n int64) error { return errUnsupported("fallocate", nil) }

// DescriptorLocks says whether LockRange's locks belong to the open file
// description. POSIX record locks belong to the process: unlocking one
// descriptor's range would release another's.
const DescriptorLocks = false

// lockRangeWait is not used where locks belong to processes (see
// WriterLock).
func lockRangeWait(f *os.File, typ int16, start, n int64) error {
	return errUnsupported("lock wait", nil)
}
