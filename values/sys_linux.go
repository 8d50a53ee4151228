package values

import (
	"os"

	"golang.org/x/sys/unix"
)

// LockRange takes (typ F_RDLCK or F_WRLCK) or releases (F_UNLCK) an OFD lock
// on [start, start+n) of f, without waiting; n == 0 means "to infinity".
// OFD locks belong to the open file description, not the process: separate
// opens of a file exclude each other even inside one process, and closing
// some other descriptor of the file does not drop them (POSIX F_SETLK locks
// are dropped then, which is why they are never used here).
// A conflicting lock is reported as ErrLocked.
func LockRange(f *os.File, typ int16, start, n int64) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: n}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return ErrLocked
		default:
			return &os.PathError{Op: "fcntl(F_OFD_SETLK)", Path: f.Name(), Err: err}
		}
	}
}

// Punch frees the whole blocks of [off, off+n) of f, keeping its size.
func Punch(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		return errUnsupported("punch", err)
	}
	if err != nil {
		return &os.PathError{Op: "fallocate(PUNCH_HOLE)", Path: f.Name(), Err: err}
	}
	return nil
}

// blockSize is the filesystem's allocation unit at path (statfs f_bsize,
// which is what clone and punch align to; st_blksize is not).
func blockSize(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return int64(st.Bsize), nil
}

// DataStart returns the offset of the first byte at or after off that is
// not in a hole (SEEK_DATA), or -1 if there is none before the end of f.
func DataStart(f *os.File, off int64) (int64, error) {
	n, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if err == unix.ENXIO {
		return -1, nil
	}
	if err == unix.EINVAL || err == unix.EOPNOTSUPP {
		return off, nil // no hole support: assume data
	}
	return n, err
}
