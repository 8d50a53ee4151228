package evict

import (
	"context"
	"os"
	"syscall"
)

// Disk is what the value files hold on disk.
type Disk struct {
	Allocated int64 // st_blocks of every value file, in bytes: what du counts
	Tails     int64 // bytes past the committed end of files (puts in progress)
	Files     int
}

// MeasureDisk stats every value file.
func (r *Reclaimer) MeasureDisk(ctx context.Context) (Disk, error) {
	var d Disk
	ids, _, err := r.Dir.List()
	if err != nil {
		return d, err
	}
	for _, id := range ids {
		fi, err := os.Lstat(r.Dir.FileName(id))
		if err != nil {
			continue // removed meanwhile
		}
		d.Files++
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			d.Allocated += st.Blocks * 512
		}
		end, err := r.M.CommittedEnd(ctx, id)
		if err != nil {
			return d, err
		}
		d.Tails += max(0, fi.Size()-end)
	}
	return d, nil
}

// Overhead is what the files hold beyond what the manifest accounts for:
// blocks a dead value shares with a live neighbour (they cannot be punched
// until the neighbour dies too), filesystem metadata and preallocation.
// Puts in progress are left out.
func Overhead(d Disk, liveFootprint, deadFootprint int64) int64 {
	return max(0, d.Allocated-d.Tails-liveFootprint-deadFootprint)
}
