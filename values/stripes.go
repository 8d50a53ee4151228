package values

import (
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// StripeCount is the number of stripe counters. A key's stripe is its hash
// modulo StripeCount. A writer bumps the stripe of every key it changes, and
// a reader retries (or refills its location cache) when its key's stripe
// moved under it, so the count trades the size of the shared file (8 bytes a
// stripe: 64 KiB, one mapping, always in RAM) against false retries: with
// 8192 stripes a write invalidates 1/8192 of every process's cached
// locations.
const StripeCount = 8192

// StripesSize is the size of the stripes file.
const StripesSize = StripeCount * 8

// Stripes is the shared-memory array of stripe counters in <dir>/stripes,
// mapped by every process that opens the cache. It is only coordination:
// losing it (a reboot of a tmpfs, a hand deletion) loses nothing, because
// readers only compare a counter with itself.
type Stripes struct {
	mem []byte
	c   []uint64
}

// OpenStripes maps the stripes file at path, creating it if needed.
func OpenStripes(path string, perm fs.FileMode) (*Stripes, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|NoFollow, perm)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: not a regular file", path)
	case fi.Size() < StripesSize:
		// Growing with zeros is harmless even while another process maps it:
		// counters only ever move forward from zero.
		if err := f.Truncate(StripesSize); err != nil {
			return nil, err
		}
	case fi.Size() > StripesSize:
		return nil, fmt.Errorf("%s: %d bytes, want %d", path, fi.Size(), StripesSize)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, StripesSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	return &Stripes{mem: mem, c: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), StripeCount)}, nil
}

// Load reads stripe i.
func (s *Stripes) Load(i int) uint64 { return atomic.LoadUint64(&s.c[i]) }

// Bump increments stripe i and returns its new value.
func (s *Stripes) Bump(i int) uint64 { return atomic.AddUint64(&s.c[i], 1) }

// Close unmaps the file. The Stripes must not be used afterwards.
func (s *Stripes) Close() error {
	if s.mem == nil {
		return nil
	}
	err := unix.Munmap(s.mem)
	s.mem, s.c = nil, nil
	return err
}
