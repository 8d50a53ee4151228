package possum

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// verifyHoles compares each value file's data and holes (SEEK_DATA,
// SEEK_HOLE) with its rows: a whole block of data that no live value or
// dead extent accounts for is space leaked (repair punches it); a hole
// inside a live value is data lost (the checksum check reports that value
// too). Only the committed part of each file is looked at, and a leak is
// confirmed under an exclusive lock on it, so writers and reclaimers at
// work are not mistaken for damage.
func (c *Cache) verifyHoles(ctx context.Context, r *Report, repair bool) error {
	ids, _, err := c.files.List()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.verifyFileHoles(ctx, id, r, repair); err != nil {
			return err
		}
	}
	return nil
}

// region is a span a row accounts for.
type region struct{ lo, hi int64 }

func (c *Cache) fileRegions(ctx context.Context, id int64) ([]region, int64, error) {
	live, err := c.m.FileEntries(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	dead, err := c.m.DeadIn(ctx, id, 0, -1)
	if err != nil {
		return nil, 0, err
	}
	var rs []region
	var end int64
	for _, e := range live {
		rs = append(rs, region{e.Offset, e.Offset + e.Footprint})
		end = max(end, e.Offset+e.Footprint)
	}
	for _, d := range dead {
		rs = append(rs, region{d.Offset, d.Offset + d.Footprint})
		end = max(end, d.Offset+d.Footprint)
	}
	slices.SortFunc(rs, func(a, b region) int { return int(a.lo - b.lo) })
	return rs, end, nil
}

func (c *Cache) verifyFileHoles(ctx context.Context, id int64, r *Report, repair bool) error {
	f, err := os.OpenFile(c.files.FileName(id), os.O_RDWR|values.NoFollow, 0)
	if err != nil {
		return nil // removed meanwhile
	}
	defer f.Close()
	rs, end, err := c.fileRegions(ctx, id)
	if err != nil {
		return err
	}
	a := c.files.Align()
	for _, gap := range uncovered(rs, end) {
		lo, hi := values.AlignUp(gap.lo, a), values.AlignDown(gap.hi, a)
		for lo < hi {
			d, err := values.DataStart(f, lo)
			if err != nil || d < 0 || d >= hi {
				break
			}
			h, err := values.HoleStart(f, d)
			if err != nil {
				return err
			}
			leak := region{values.AlignDown(d, a), min(values.AlignUp(h, a), hi)}
			if err := c.confirmLeak(ctx, f, id, leak, r, repair); err != nil {
				return err
			}
			lo = leak.hi
		}
	}
	return nil
}

// uncovered returns the spans of [0, end) that no region covers.
func uncovered(rs []region, end int64) []region {
	var out []region
	var at int64
	for _, x := range rs {
		if x.lo > at {
			out = append(out, region{at, x.lo})
		}
		at = max(at, x.hi)
	}
	if at < end {
		out = append(out, region{at, end})
	}
	return out
}

// confirmLeak locks leak exclusively and, if still no row accounts for it,
// reports it (and with repair punches it).
func (c *Cache) confirmLeak(ctx context.Context, f *os.File, id int64, leak region, r *Report, repair bool) error {
	if err := values.LockRange(f, values.WriteLock, leak.lo, leak.hi-leak.lo); err != nil {
		if errors.Is(err, values.ErrLocked) {
			return nil // someone is at work there
		}
		return err
	}
	defer values.LockRange(f, values.Unlock, leak.lo, leak.hi-leak.lo)
	if live, err := c.m.LiveIn(ctx, id, leak.lo, leak.hi); err != nil || live {
		return err
	}
	if dead, err := c.m.DeadIn(ctx, id, leak.lo-manifestMaxFootprint, leak.hi); err != nil {
		return err
	} else if overlaps(dead, leak) {
		return nil
	}
	r.Problems = append(r.Problems, Problem{Kind: "leaked space", FileID: id,
		Detail: fmt.Sprintf("%d bytes of data at [%d,%d) that no value accounts for", leak.hi-leak.lo, leak.lo, leak.hi)})
	if repair && values.Punch(f, leak.lo, leak.hi-leak.lo) == nil {
		r.Repaired++
	}
	return nil
}

// manifestMaxFootprint bounds how far before a region a dead extent that
// overlaps it may start: values are at most this large.
const manifestMaxFootprint = 1 << 62

func overlaps(ds []manifest.DeadExtent, x region) bool {
	for _, d := range ds {
		if d.Offset < x.hi && x.lo < d.Offset+d.Footprint {
			return true
		}
	}
	return false
}
