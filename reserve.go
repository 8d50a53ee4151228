package possum

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/seed475afdc4/possum/values"
)

// reserveName is a file of reserveSize allocated bytes kept in the cache
// directory, so that a full filesystem never leaves the cache unable to
// shrink: on a full disk even a Delete fails, because SQLite must grow the
// WAL to commit it. When a commit fails for want of space, the committer
// gives the reserve back and tries once more; the background pass
// allocates it again once there is room. It counts against the capacity.
const reserveName = "reserve"

// reserveSize is the reserve's size: a sixteenth of the capacity, at least
// 64 KiB (room for a batch of deletes: a few pages of WAL each) and at most
// 1 MiB or a WAL's worth (walLimit), whichever is less: deletes need a few
// pages each, and a checkpoint after them mostly reuses the pages they
// freed.
func (c *Cache) reserveSize() int64 {
	return min(max(c.capacity.Load()/16, 64<<10), 1<<20, c.walLimit())
}

func (c *Cache) reservePath() string { return filepath.Join(c.dir, reserveName) }

// ensureReserve allocates the reserve if it is missing or short; a full
// disk is not an error (it is what the reserve is for).
func (c *Cache) ensureReserve() error {
	size := c.reserveSize()
	var cur int64
	if fi, err := os.Lstat(c.reservePath()); err == nil {
		if allocatedBytes(fi) == size && fi.Size() == size {
			return nil
		}
		cur = fi.Size()
	}
	f, err := os.OpenFile(c.reservePath(), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, c.opts.Perm)
	if err != nil {
		return err
	}
	defer f.Close()
	if cur > size { // the capacity shrank
		if err := f.Truncate(size); err != nil {
			return err
		}
	}
	err = values.Allocate(f, size)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, values.ErrUnsupported) {
		return nil
	}
	return err
}

// releaseReserve gives the reserve's space back to the filesystem; it
// reports whether there was any.
func (c *Cache) releaseReserve() bool {
	fi, err := os.Lstat(c.reservePath())
	if err != nil || allocatedBytes(fi) == 0 {
		return false
	}
	if err := os.Truncate(c.reservePath(), 0); err != nil {
		return false
	}
	c.log.Warn("possum: the disk is full; released the space reserve so that the cache can shrink")
	c.refreshFixed()
	return true
}

func allocatedBytes(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
