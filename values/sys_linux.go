package values

import (
	"os"
	"unsafe"

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

// fsxattr is struct fsxattr of <linux/fs.h>, for FS_IOC_FS{GET,SET}XATTR.
type fsxattr struct {
	xflags, extsize, nextents, projid, cowextsize uint32
	pad                                           [8]byte
}

const (
	fsIOCGetXattr       = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsIOCSetXattr       = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsXflagExtsize      = 0x800      // FS_XFLAG_EXTSIZE
	fsXflagExtszInherit = 0x1000     // FS_XFLAG_EXTSZINHERIT
)

// noPrealloc stops xfs from preallocating space past the end of f while it
// grows. xfs's speculative preallocation can hold several times a growing
// file's size until the file is closed or minutes pass, and it counts in
// st_blocks and du: it would make the cache's disk use overshoot its
// capacity. An extent size hint of one block turns it off and changes
// nothing else. Other filesystems do not preallocate; f is left alone.
func noPrealloc(f *os.File, block int64) { setExtsize(f, fsXflagExtsize, block) }

// NoPreallocDir makes files created in the directory dir inherit
// noPrealloc's hint on xfs, including those possum does not create itself
// (the manifest's WAL, which grows by appends and is recreated by SQLite).
func NoPreallocDir(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	bs, err := blockSize(dir)
	if err != nil {
		return
	}
	setExtsize(f, fsXflagExtszInherit, max(4096, bs))
}

// setExtsize sets an extent size hint on f, on xfs only.
func setExtsize(f *os.File, flag uint32, block int64) {
	var st unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &st) != nil || st.Type != unix.XFS_SUPER_MAGIC {
		return
	}
	var a fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIOCGetXattr, uintptr(unsafe.Pointer(&a))); e != 0 {
		return
	}
	a.xflags |= flag
	a.extsize = uint32(block)
	unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIOCSetXattr, uintptr(unsafe.Pointer(&a)))
}

// HoleStart returns the offset of the first hole at or after off
// (SEEK_HOLE); the end of the file counts as a hole.
func HoleStart(f *os.File, off int64) (int64, error) {
	n, err := unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE)
	if err == unix.EINVAL || err == unix.EOPNOTSUPP {
		fi, serr := f.Stat()
		if serr != nil {
			return 0, serr
		}
		return fi.Size(), nil
	}
	return n, err
}

// Allocate gives f n bytes of real disk blocks from offset 0 (fallocate),
// so that they can be handed back when the disk is full. ENOSPC is
// returned as is.
func Allocate(f *os.File, n int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, n)
	if err == unix.EOPNOTSUPP {
		return errUnsupported("fallocate", err)
	}
	return err
}

// DescriptorLocks says whether LockRange's locks belong to the open file
// description (OFD locks): then releasing one descriptor's lock leaves other
// descriptors' locks alone, and descriptors can be reused for new locks.
const DescriptorLocks = true

// lockRangeWait is LockRange that waits for a conflicting lock to go.
func lockRangeWait(f *os.File, typ int16, start, n int64) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: n}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLKW, &lk)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		default:
			return &os.PathError{Op: "fcntl(F_OFD_SETLKW)", Path: f.Name(), Err: err}
		}
	}
}
