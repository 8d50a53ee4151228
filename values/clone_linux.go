package values

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// TempFile opens an anonymous file in dir (O_TMPFILE): it has no name, so
// it vanishes when closed, or when its process dies, leaving nothing behind.
func TempFile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL {
		return nil, errUnsupported("O_TMPFILE", err)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open(O_TMPFILE)", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(anonymous)"), nil
}

// CloneRange makes dst share n bytes of src at off, placed at dst's offset
// 0 (FICLONERANGE): no data is copied, and later changes to either file do
// not show in the other. off must be a multiple of the filesystem's block
// size, and n too unless the range ends at src's end. Filesystems without
// reflinks (ext4, tmpfs) report ErrUnsupported.
func CloneRange(dst, src *os.File, off, n int64) error {
	err := unix.IoctlFileCloneRange(int(dst.Fd()), &unix.FileCloneRange{
		Src_fd: int64(src.Fd()), Src_offset: uint64(off), Src_length: uint64(n), Dest_offset: 0})
	switch err {
	case nil:
		return nil
	case unix.EOPNOTSUPP, unix.EXDEV, unix.ENOTTY, unix.ENOSYS, unix.EPERM:
		return errUnsupported("clone", err)
	}
	return &os.PathError{Op: "ioctl(FICLONERANGE)", Path: src.Name(), Err: err}
}

// CloneAt makes dst, at offset doff, share n bytes of src from soff
// (FICLONERANGE). soff and doff must be block-aligned; n too, unless the
// range runs to src's end.
func CloneAt(dst *os.File, doff int64, src *os.File, soff, n int64) error {
	err := unix.IoctlFileCloneRange(int(dst.Fd()), &unix.FileCloneRange{
		Src_fd: int64(src.Fd()), Src_offset: uint64(soff), Src_length: uint64(n), Dest_offset: uint64(doff)})
	switch err {
	case nil:
		return nil
	case unix.EOPNOTSUPP, unix.EXDEV, unix.ENOTTY, unix.ENOSYS, unix.EPERM, unix.EINVAL:
		return errUnsupported("clone", err)
	}
	return &os.PathError{Op: "ioctl(FICLONERANGE)", Path: src.Name(), Err: err}
}

// ProbeClone reports whether the filesystem of dir can clone ranges.
func ProbeClone(dir string) bool {
	a, err := TempFile(dir)
	if err != nil {
		return false
	}
	defer a.Close()
	b, err := TempFile(dir)
	if err != nil {
		return false
	}
	defer b.Close()
	if _, err := a.Write(make([]byte, 4096)); err != nil {
		return false
	}
	return unix.IoctlFileClone(int(b.Fd()), int(a.Fd())) == nil
}

// CopyRange copies n bytes of src at *soff to dst at *doff (or at dst's
// current offset if doff is nil) with copy_file_range: a reflink on xfs and
// btrfs when the offsets are aligned, an in-kernel copy elsewhere. It
// advances the offsets and returns how many bytes it copied;
// ErrUnsupported if the kernel cannot copy between these two files, before
// anything was copied.
func CopyRange(dst *os.File, doff *int64, src *os.File, soff *int64, n int64) (int64, error) {
	var done int64
	for done < n {
		m, err := unix.CopyFileRange(int(src.Fd()), soff, int(dst.Fd()), doff, int(min(n-done, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if done == 0 && (err == unix.EXDEV || err == unix.EINVAL || err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EBADF) {
				return 0, errUnsupported("copy_file_range", err)
			}
			return done, &os.PathError{Op: "copy_file_range", Path: src.Name(), Err: err}
		}
		if m == 0 {
			return done, errors.New("copy_file_range: unexpected end of source")
		}
		done += int64(m)
	}
	return done, nil
}

// Sendfile sends up to n bytes of src at *off to the descriptor fd (a socket
// or pipe), advancing *off. It returns what it sent; EAGAIN is returned as
// is, for the caller's poller.
func Sendfile(fd int, src *os.File, off *int64, n int64) (int, error) {
	return unix.Sendfile(fd, int(src.Fd()), off, int(min(n, 1<<30)))
}

// IsEAGAIN reports whether err means "try again when ready".
func IsEAGAIN(err error) bool { return err == unix.EAGAIN }

// MapReadOnly maps n bytes of f from off (a multiple of the page size),
// read-only and shared.
func MapReadOnly(f *os.File, off, n int64) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
}

// Unmap undoes MapReadOnly.
func Unmap(b []byte) error { return unix.Munmap(b) }

// MayVanish reports whether mapped pages of files at path can vanish under
// a mapping (FUSE drops them and faults), so nothing there may be mapped.
func MayVanish(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) != nil || st.Type == unix.FUSE_SUPER_MAGIC
}
