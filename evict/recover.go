package evict

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// Recover repairs what killed processes left in the value files: in every
// file no writer holds, bytes past the last committed region (the tail of a
// put or batch that never committed) are cut off, and a file with nothing
// committed in it is removed. Dead extents are left to Pass.
//
// A file the manifest lists but that does not exist is left alone: a writer
// allocates a file's id in the manifest a moment before it creates the file,
// so a missing file may be one about to appear. Recover is safe while other
// processes use the cache: it only touches what it holds a lock on.
func (r *Reclaimer) Recover(ctx context.Context) error {
	onDisk, _, err := r.Dir.List()
	if err != nil {
		return err
	}
	var removed []int64
	for _, id := range onDisk {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		gone, err := r.recoverFile(ctx, id)
		if err != nil {
			r.Log.Warn("possum: recover", "file", id, "err", err)
		}
		if gone {
			removed = append(removed, id)
		}
	}
	if len(removed) == 0 {
		return nil
	}
	return r.Commit(ctx, func(tx *manifest.Tx) error {
		for _, id := range removed {
			if err := tx.ForgetFileIfUnused(id); err != nil {
				return err
			}
		}
		return nil
	})
}

// recoverFile cuts file id back to its committed end if no writer holds it.
func (r *Reclaimer) recoverFile(ctx context.Context, id int64) (gone bool, err error) {
	f, err := os.OpenFile(r.Dir.FileName(id), os.O_RDWR|values.NoFollow, 0)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist), nil
	}
	defer f.Close()
	end, err := r.M.CommittedEnd(ctx, id)
	if err != nil {
		return false, err
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() <= end && end > 0 {
		return false, err
	}
	if err := values.LockRange(f, values.WriteLock, end, 0); err != nil {
		if errors.Is(err, values.ErrLocked) {
			return false, nil // a writer is at work there
		}
		return false, err
	}
	defer values.LockRange(f, values.Unlock, end, 0)
	// Holding the lock, ask again: a writer may have committed meanwhile.
	if end, err = r.M.CommittedEnd(ctx, id); err != nil {
		return false, err
	}
	if end == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
			return true, nil
		}
		if err := os.Remove(r.Dir.FileName(id)); err != nil {
			return false, err
		}
		r.Dir.Forget(id)
		r.Stats.FilesRemoved.Add(1)
		return true, nil
	}
	if fi, err = f.Stat(); err == nil && fi.Size() > end {
		err = f.Truncate(end)
		r.Stats.Truncations.Add(1)
	}
	return false, err
}
