package evict

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"

	"github.com/seed475afdc4/possum/internal/crashpoint"
	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// Counters are a reclaimer's event counts.
type Counters struct {
	Punches       atomic.Int64 // holes punched
	PunchedBytes  atomic.Int64 // bytes in them
	PunchFailures atomic.Int64 // punches the filesystem refused (reclaiming went on by other means)
	Truncations   atomic.Int64 // dead tails cut off
	FilesRemoved  atomic.Int64 // value files removed, nothing live in them
	Skipped       atomic.Int64 // regions left for later: locked by a reader or writer
}

// Reclaimer gives the space of dead extents back to the filesystem. Any
// process may reclaim what any other left: every step is safe to repeat, and
// a dead row is deleted only after its region is given back, so a crash at
// any point loses nothing but time.
//
// The order of each step is what keeps readers correct (DESIGN.md,
// invariant 3): the region's row is already gone (it is a dead extent); the
// stripe counters of the keys that owned it are bumped; an exclusive OFD
// lock is taken on the region, without waiting (a reader pinning it, or a
// writer still appending there, makes it fail and the region waits for the
// next pass); then, holding the lock, the manifest is asked again whether
// anything live is in the region; only then is it punched or cut off.
type Reclaimer struct {
	M    *manifest.Manifest
	Dir  *values.Dir
	Bump func(stripe int)
	// Announced, if set, reports whether the stripe of a dead extent was
	// bumped after the commit that deleted its row (by this process, which
	// knows): then Bump is not called again for it. Invariant 3 asks for
	// one bump after the delete; a second only invalidates other keys'
	// cached locations.
	Announced func(extentID int64) bool
	// Commit runs a manifest change and waits for it to be committed.
	Commit func(context.Context, func(*manifest.Tx) error) error
	Log    *slog.Logger
	Stats  *Counters
	// NoPunch disables hole punching: dead space then only comes back by
	// truncating tails and removing files.
	NoPunch bool
}

// Reclaim gives back what it can of ds. It returns the dead extents it is
// done with (also others it found inside the regions it freed), whose rows
// the caller deletes, and the files it removed, which the caller forgets.
// Extents it must leave for later are not returned.
func (r *Reclaimer) Reclaim(ctx context.Context, ds []manifest.DeadExtent) (done, removed []int64) {
	byFile := map[int64][]manifest.DeadExtent{}
	for _, d := range ds {
		byFile[d.FileID] = append(byFile[d.FileID], d)
	}
	for id, fds := range byFile {
		if ctx.Err() != nil {
			break
		}
		ids, gone, err := r.reclaimFile(ctx, id, fds)
		if err != nil {
			r.Log.Warn("possum: reclaim", "file", id, "err", err)
		}
		done = append(done, ids...)
		if gone {
			removed = append(removed, id)
		}
	}
	return done, removed
}

// Forget deletes the rows Reclaim is done with, in tx.
func Forget(tx *manifest.Tx, done, removed []int64) error {
	if err := tx.DeleteDead(done); err != nil {
		return err
	}
	for _, id := range removed {
		if err := tx.ForgetFileIfUnused(id); err != nil {
			return err
		}
	}
	return nil
}

// Pass drains up to limit rows of the dead-extent table, oldest first, and
// commits the deletion of those it is done with.
func (r *Reclaimer) Pass(ctx context.Context, limit int) error {
	ds, err := r.M.DeadExtents(ctx, limit)
	if err != nil || len(ds) == 0 {
		return err
	}
	done, removed := r.Reclaim(ctx, ds)
	if len(done) == 0 && len(removed) == 0 {
		return nil
	}
	return r.Commit(ctx, func(tx *manifest.Tx) error { return Forget(tx, done, removed) })
}

// gap is a run of a file with nothing live in it: [lo, hi), hi < 0 meaning
// to the end of the file.
type gap struct{ lo, hi int64 }

// reclaimFile reclaims the dead extents ds of file id. It returns the ids of
// the extents it is done with, and whether the file is gone.
func (r *Reclaimer) reclaimFile(ctx context.Context, id int64, ds []manifest.DeadExtent) ([]int64, bool, error) {
	f, err := os.OpenFile(r.Dir.FileName(id), os.O_RDWR|values.NoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// Gone already (another reclaimer removed it, or a hand did): its
		// dead rows only need forgetting, once their readers are warned.
		r.bumpAll(ds)
		return extentIDs(ds), true, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	gaps, finished, err := r.gaps(ctx, id, ds)
	if err != nil {
		return nil, false, err
	}
	r.bumpAll(finished)
	done := extentIDs(finished)
	gone := false
	for _, g := range gaps {
		ids, removed, err := r.reclaimGap(ctx, f, id, g)
		if err != nil {
			return done, gone, err
		}
		done = append(done, ids...)
		gone = gone || removed
	}
	return done, gone, nil
}

// gaps finds the gap around each dead extent, merging those that share one.
// An extent that overlaps a live value is stale: its region was cut off
// with the file's tail and has been written again since. It is returned in
// stale, never to be punched. So is an extent whose gap holds no whole block
// to punch (a small value between live neighbours): it is done, and its
// bytes come back when a neighbour dies and the gap grows.
func (r *Reclaimer) gaps(ctx context.Context, id int64, ds []manifest.DeadExtent) (gs []gap, done []manifest.DeadExtent, err error) {
	found, err := r.M.Gaps(ctx, id, extentIDs(ds))
	if err != nil {
		return nil, nil, err
	}
	a := r.Dir.Align()
	for _, g := range found {
		switch {
		case g.Lo > g.Offset || (g.Hi >= 0 && g.Hi < g.Offset+g.Footprint):
			done = append(done, g.DeadExtent) // stale
		case g.Hi >= 0 && values.AlignDown(g.Hi, a) <= values.AlignUp(g.Lo, a):
			done = append(done, g.DeadExtent) // nothing whole to punch
		default:
			gs = append(gs, gap{lo: g.Lo, hi: g.Hi})
		}
	}
	slices.SortFunc(gs, func(a, b gap) int { return cmp.Compare(a.lo, b.lo) })
	return slices.Compact(gs), done, nil
}

// reclaimGap gives back the gap g of file f: a tail (hi < 0) is cut off if
// no writer holds the file, or the whole file removed if nothing in it is
// live; otherwise the whole blocks inside the gap are punched. It returns
// the dead extents it is done with.
func (r *Reclaimer) reclaimGap(ctx context.Context, f *os.File, id int64, g gap) ([]int64, bool, error) {
	if g.hi < 0 {
		ids, removed, ok, err := r.cutTail(ctx, f, id, g.lo)
		if ok || err != nil {
			return ids, removed, err
		}
		// A writer holds the tail: punch what is dead below its lock.
		ds, err := r.M.DeadIn(ctx, id, g.lo, -1)
		if err != nil || len(ds) == 0 {
			return nil, false, err
		}
		g.hi = ds[len(ds)-1].Offset + ds[len(ds)-1].Footprint
		if fi, err := f.Stat(); err == nil {
			g.hi = min(g.hi, fi.Size())
		}
		// Only up to the last whole block: the writer may pack its next
		// value into the block the dead run ends in. An extent that
		// reaches into that block keeps its row, so that it is looked at
		// again once the gap's end is known (the next value placed, or the
		// tail cut off); deleting it now would leak the block if the next
		// value starts at the following boundary.
		hi := values.AlignDown(g.hi, r.Dir.Align())
		ds, err = r.punchGap(ctx, f, id, g.lo, hi, g.hi)
		return extentIDs(slices.DeleteFunc(ds, func(d manifest.DeadExtent) bool { return d.Offset+d.Footprint > hi })), false, err
	}
	ds, err := r.punchGap(ctx, f, id, g.lo, g.hi, g.hi)
	return extentIDs(ds), false, err
}

// punchGap punches the whole blocks of [lo, hi) and returns the dead
// extents that start in [lo, rowsHi), which it is done with; nil if it had
// to leave the gap for later.
func (r *Reclaimer) punchGap(ctx context.Context, f *os.File, id, lo, hi, rowsHi int64) ([]manifest.DeadExtent, error) {
	a := r.Dir.Align()
	s, e := values.AlignUp(lo, a), values.AlignDown(hi, a)
	if e <= s {
		// Nothing but partial blocks shared with live neighbours: nothing
		// to give back until they die too. The extents are done.
		return r.M.DeadIn(ctx, id, lo, rowsHi)
	}
	if err := values.LockRange(f, values.WriteLock, s, e-s); err != nil {
		if errors.Is(err, values.ErrLocked) {
			r.Stats.Skipped.Add(1)
			return nil, nil
		}
		return nil, err
	}
	defer values.LockRange(f, values.Unlock, s, e-s)
	// Holding the lock, look again: no writer can be adding here now.
	if live, err := r.M.LiveIn(ctx, id, s, e); err != nil || live {
		return nil, err
	}
	ds, err := r.M.DeadIn(ctx, id, lo, rowsHi)
	if err != nil {
		return nil, err
	}
	r.bumpAll(ds)
	crashpoint.Hit("reclaim:locked")
	// A long dead run is reclaimed piece by piece as its values die, and
	// its start is already a hole: punch from the first data onwards.
	if d, err := values.DataStart(f, s); err == nil {
		if d < 0 || d >= e {
			return ds, nil
		}
		s = values.AlignDown(d, a)
	}
	if err := r.punch(f, s, e-s); err != nil {
		return nil, err
	}
	return ds, nil
}

func (r *Reclaimer) punch(f *os.File, off, n int64) error {
	if r.NoPunch {
		return nil
	}
	err := values.Punch(f, off, n)
	if err != nil {
		r.Stats.PunchFailures.Add(1)
		if errors.Is(err, values.ErrUnsupported) {
			return nil // the rows go; the space comes back by truncation or removal
		}
		return err
	}
	r.Stats.Punches.Add(1)
	r.Stats.PunchedBytes.Add(n)
	return nil
}

// cutTail truncates file f at lo, or removes it if lo is 0, provided no
// writer holds its tail and nothing live lies past lo. ok reports whether it
// could.
//
// Unlike a punch, a cut gives the offsets back for reuse: the next writer
// appends from lo. So the dead rows past lo are deleted (committed) before
// the cut, never after: a dead row left over a reused offset would one day
// have a live value punched.
func (r *Reclaimer) cutTail(ctx context.Context, f *os.File, id, lo int64) (ids []int64, removed, ok bool, err error) {
	if err := values.LockRange(f, values.WriteLock, lo, 0); err != nil {
		if errors.Is(err, values.ErrLocked) {
			return nil, false, false, nil
		}
		return nil, false, false, err
	}
	defer values.LockRange(f, values.Unlock, lo, 0)
	if live, err := r.M.LiveIn(ctx, id, lo, -1); err != nil || live {
		return nil, false, false, err
	}
	ds, err := r.M.DeadIn(ctx, id, lo, -1)
	if err != nil {
		return nil, false, false, err
	}
	r.bumpAll(ds)
	err = r.Commit(ctx, func(tx *manifest.Tx) error {
		if err := tx.DeleteDead(extentIDs(ds)); err != nil || lo > 0 {
			return err
		}
		return tx.ForgetFileIfUnused(id)
	})
	if err != nil {
		return nil, false, false, err
	}
	crashpoint.Hit("reclaim:truncate")
	if lo == 0 {
		// A crash before this leaves a file the manifest does not know
		// and nothing refers to: Recover removes it.
		if err := os.Remove(r.Dir.FileName(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, false, err
		}
		r.Dir.Forget(id)
		r.Stats.FilesRemoved.Add(1)
		return nil, false, true, nil
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > lo {
		if err := f.Truncate(lo); err != nil {
			return nil, false, false, err
		}
		r.Stats.Truncations.Add(1)
	}
	return nil, false, true, nil
}

func (r *Reclaimer) bumpAll(ds []manifest.DeadExtent) {
	for _, d := range ds {
		if r.Announced != nil && r.Announced(d.ExtentID) {
			continue
		}
		r.Bump(int(d.Stripe))
	}
}

func extentIDs(ds []manifest.DeadExtent) []int64 {
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.ExtentID
	}
	return ids
}
