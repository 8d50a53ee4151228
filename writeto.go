package possum

import (
	"errors"
	"io"
	"os"
	"syscall"

	"github.com/seed475afdc4/possum/values"
)

// WriteTo writes the value from the current position to its end into w,
// through the kernel where it can: copy_file_range into a regular file (a
// reflink on xfs and btrfs when the offsets line up), sendfile into a
// socket or pipe; otherwise through a buffer. Bytes that do not pass through
// possum are not checked against the checksum: call Verify first when that
// matters more than the copy.
func (v *Value) WriteTo(w io.Writer) (int64, error) {
	if v.mem != nil || v.info.Size == 0 {
		if v.pos >= int64(len(v.mem)) {
			return 0, nil
		}
		n, err := w.Write(v.mem[v.pos:])
		v.pos += int64(n)
		return int64(n), err
	}
	if v.view == nil {
		return 0, ErrClosed
	}
	n, err := v.writeToKernel(w)
	v.pos += n
	if err != nil || v.pos >= v.info.Size {
		return n, err
	}
	m, err := io.CopyBuffer(w, onlyReader{io.NewSectionReader(v, v.pos, v.info.Size-v.pos)}, make([]byte, 256<<10))
	v.pos += m
	return n + m, err
}

// writeToKernel copies what it can with copy_file_range or sendfile.
func (v *Value) writeToKernel(w io.Writer) (int64, error) {
	src := v.view.File()
	off := v.view.Offset() + v.pos
	rest := v.info.Size - v.pos
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			n, err := values.CopyRange(f, nil, src, &off, rest)
			v.c.stats.copyRangeBytes.Add(n)
			if !errors.Is(err, values.ErrUnsupported) {
				return n, err
			}
		}
	}
	sc, ok := w.(syscall.Conn)
	if !ok {
		return 0, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, nil
	}
	var sent int64
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for sent < rest {
			n, err := values.Sendfile(int(fd), src, &off, rest-sent)
			if n > 0 {
				sent += int64(n)
			}
			switch {
			case values.IsEAGAIN(err):
				return false // wait until fd is writable
			case err == syscall.EINTR:
				continue
			case err != nil:
				if sent > 0 || !errors.Is(err, values.ErrUnsupported) && err != syscall.EINVAL && err != syscall.ENOSYS {
					serr = err
				}
				return true
			case n == 0:
				return true
			}
		}
		return true
	})
	v.c.stats.sendfileBytes.Add(sent)
	if serr == nil {
		serr = err
	}
	return sent, serr
}
