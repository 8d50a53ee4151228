// Package evict holds possum's capacity policy and its reclaimer.
//
// The policy runs inside every committing transaction: when the space the
// cache holds is over its capacity, it deletes entries, expired ones first
// and then the least recently used, until the cache is a little under
// capacity. Deleted entries become dead extents, which the reclaimer gives
// back to the filesystem by punching holes, truncating dead tails and
// removing files with nothing live in them.
package evict

import (
	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// Headroom is the share of the capacity eviction frees beyond what is
// needed, so that not every put evicts: over capacity, the cache evicts down
// to capacity minus capacity/Headroom (5%).
const Headroom = 20

// victimBatch is how many victims are read at a time.
const victimBatch = 64

// Result counts what Evict did.
type Result struct {
	FirstVictim int   // index in tx.Freed of the first victim's dead extent
	Capacity    int64 // the capacity the transaction saw
	Evicted     int   // entries evicted for space, expired ones included
	Expired     int   // of those, entries that had expired
}

// Immediate reports whether the committer reclaims d right after the commit
// that freed it, before the writer's call returns: a large value, which owns
// whole blocks. A small value packed between others frees at most a block
// or two, and punching one block costs as much as punching a megabyte on
// some filesystems (about 100 µs on ext4); it waits for the background
// pass, which reclaims whole runs of dead neighbours at once. Victims of
// eviction are reclaimed at once whatever their size (see Evict).
func Immediate(d manifest.DeadExtent) bool { return d.Footprint >= values.LargeValue }

// Used is the space the cache holds by the manifest's account: live values
// (large ones rounded to whole blocks), dead extents not yet given back
// (except large ones tx freed, which the committer reclaims right after
// committing), the measured overhead, and fixed: the manifest, its WAL and
// the cache's other small files, measured by the caller.
func Used(tx *manifest.Tx, u manifest.Usage, fixed int64) int64 {
	var freedNow int64
	for _, d := range tx.Freed {
		if Immediate(d) {
			freedNow += d.Footprint
		}
	}
	return u.LiveFootprint + u.DeadFootprint - freedNow + u.Overhead + fixed
}

// Evict deletes entries inside tx until the cache fits its capacity, if it
// is over. fixed is as for Used. The victims' dead extents are
// tx.Freed[Result.FirstVictim:]: the committer reclaims them all right
// after the commit. Least recently used values were mostly written
// together, so they lie in runs that punch well even when small.
//
// beforeVictims, if not nil, runs once the cache is known to be over
// capacity, before any victim is chosen: the place to bring the access
// times up to date, so that the least recently used are really that.
func Evict(tx *manifest.Tx, fixed int64, beforeVictims func() error) (Result, error) {
	var r Result
	u, err := tx.Usage()
	r.Capacity = u.Capacity
	r.FirstVictim = len(tx.Freed)
	if err != nil || u.Capacity <= 0 {
		return r, err
	}
	used := Used(tx, u, fixed)
	r.FirstVictim = len(tx.Freed)
	if used <= u.Capacity {
		return r, nil
	}
	if beforeVictims != nil {
		if err := beforeVictims(); err != nil {
			return r, err
		}
	}
	target := u.Capacity - u.Capacity/Headroom
	for used > target {
		vs, err := tx.Victims(victimBatch)
		if err != nil {
			return r, err
		}
		if len(vs) == 0 {
			break
		}
		for _, v := range vs {
			if err := tx.DeleteEntry(v.KeyID); err != nil {
				return r, err
			}
			used -= v.Footprint
			r.Evicted++
			if v.Expired {
				r.Expired++
			}
			if used <= target {
				break
			}
		}
	}
	return r, nil
}
