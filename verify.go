package possum

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/values"
)

// Report is what Verify found.
type Report struct {
	Entries      int64 // rows checked
	BytesChecked int64 // value bytes read and checksummed
	Files        int   // value files on disk
	Problems     []Problem
	Repaired     int // problems fixed (with repair)
}

// OK reports whether Verify found nothing wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind   string // "missing file", "short file", "checksum", "overlap", "leaked space", "totals", "orphan file", "stray file"
	Key    string // the key concerned, if any
	FileID int64  // the value file concerned, if any
	Detail string
}

func (p Problem) String() string {
	s := p.Kind
	if p.Key != "" {
		s += " key " + quoteKey(p.Key)
	}
	if p.FileID != 0 {
		s += fmt.Sprintf(" file %016x", p.FileID)
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// Verify checks the manifest against the value files: every value's bytes
// are inside its file and match its checksum, no two live values (nor a
// dead extent and a live value) overlap, no block of data in a value file
// is outside every live value and dead extent (SEEK_DATA/SEEK_HOLE: space
// leaked), the running byte sums equal the rows, and no value file is
// unknown to the manifest. It reads every value,
// so it takes about as long as reading the whole cache once. It may run
// while other processes use the cache: values that change under it are
// skipped, not reported.
//
// With repair, damaged values are dropped, leaked space punched, the sums
// corrected and unknown files removed; without it nothing changes.
func (c *Cache) Verify(ctx context.Context, repair bool) (Report, error) {
	return c.VerifyWith(ctx, VerifyOptions{Repair: repair})
}

// VerifyOptions qualify VerifyWith.
type VerifyOptions struct {
	// Repair drops damaged values, punches leaked space, corrects the sums
	// and removes unknown files. Zero (false) changes nothing.
	Repair bool
	// Sample, between 0 and 1, reads only that share of the values
	// (chosen at random) to check their checksums; every other check still
	// covers everything. Zero (or 1) reads them all.
	Sample float64
	// Progress, if set, is called as values are checked, with the bytes
	// read so far and the total to read (an estimate when sampling).
	Progress func(done, total int64)
}

// VerifyWith is Verify with options.
func (c *Cache) VerifyWith(ctx context.Context, opts VerifyOptions) (Report, error) {
	var r Report
	if err := c.enter(); err != nil {
		return r, err
	}
	defer c.mu.RUnlock()
	v := &verifier{c: c, opts: opts}
	if t, err := c.m.Totals(ctx); err == nil {
		v.total = t.LiveBytes
		if opts.Sample > 0 && opts.Sample < 1 {
			v.total = int64(float64(v.total) * opts.Sample)
		}
	}
	steps := []func(context.Context, *Report, bool) error{v.entries, c.verifyOverlaps, c.verifyFiles, c.verifyHoles, c.verifyTotals}
	for _, step := range steps {
		if err := step(ctx, &r, opts.Repair); err != nil {
			return r, err
		}
	}
	return r, nil
}

// verifier carries the state of one VerifyWith's value checks.
type verifier struct {
	c     *Cache
	opts  VerifyOptions
	total int64
}

func (v *verifier) entries(ctx context.Context, r *Report, repair bool) error {
	return v.c.verifyEntries(ctx, r, repair, v)
}

func (c *Cache) verifyEntries(ctx context.Context, r *Report, repair bool, v *verifier) error {
	var after int64
	for {
		page, err := c.m.EntriesAfter(ctx, after, 512)
		if err != nil {
			return err
		}
		for i := range page {
			e := &page[i]
			r.Entries++
			if v.opts.Sample > 0 && v.opts.Sample < 1 && rand.Float64() >= v.opts.Sample {
				continue
			}
			p, ok := c.verifyEntry(ctx, e, r)
			if v.opts.Progress != nil {
				v.opts.Progress(r.BytesChecked, max(v.total, r.BytesChecked))
			}
			if !ok {
				r.Problems = append(r.Problems, p)
				if repair {
					if _, err := c.m.Update(ctx, func(tx *manifest.Tx) error { return tx.DeleteEntry(e.KeyID) }); err != nil {
						return err
					}
					c.bump([]int{stripeOf(keyHash(string(e.Key)))})
					r.Repaired++
				}
			}
		}
		if len(page) < 512 {
			return nil
		}
		after = page[len(page)-1].KeyID
	}
}

// verifyEntry reads e's value under the read protocol. A value that changed
// while it was read is reported as fine: it is not what was checked.
func (c *Cache) verifyEntry(ctx context.Context, e *manifest.Entry, r *Report) (Problem, bool) {
	key := string(e.Key)
	si := stripeOf(keyHash(key))
	s1 := c.stripes.Load(si)
	cur, err := c.m.Lookup(ctx, e.Key)
	if err != nil || cur.KeyID != e.KeyID || e.Length == 0 {
		return Problem{}, true
	}
	buf := make([]byte, e.Length)
	err = c.files.ReadAt(e.FileID, buf, e.Offset)
	if c.stripes.Load(si) != s1 {
		return Problem{}, true
	}
	r.BytesChecked += e.Length
	p := Problem{Key: key, FileID: e.FileID}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.Kind = "missing file"
	case err != nil:
		p.Kind, p.Detail = "short file", fmt.Sprintf("value [%d,%d): %v", e.Offset, e.Offset+e.Length, err)
	case checksum(e.SumKind, buf) != uint64(e.Checksum):
		p.Kind = "checksum"
	default:
		return Problem{}, true
	}
	return p, false
}

func (c *Cache) verifyOverlaps(ctx context.Context, r *Report, _ bool) error {
	ids, err := c.m.EntryFiles(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		found, err := c.m.Overlaps(ctx, id)
		if err != nil {
			return err
		}
		for _, s := range found {
			r.Problems = append(r.Problems, Problem{Kind: "overlap", FileID: id, Detail: s})
		}
	}
	return nil
}

// verifyFiles looks for value files the manifest does not know, and for
// other files in the values directory.
func (c *Cache) verifyFiles(ctx context.Context, r *Report, repair bool) error {
	onDisk, strays, err := c.files.List()
	if err != nil {
		return err
	}
	r.Files = len(onDisk)
	known, err := c.m.Files(ctx)
	if err != nil {
		return err
	}
	for _, id := range onDisk {
		if _, ok := slices.BinarySearch(known, id); ok {
			continue
		}
		orphan, removed, err := c.checkOrphan(ctx, id, repair)
		if err != nil {
			return err
		}
		if orphan {
			r.Problems = append(r.Problems, Problem{Kind: "orphan file", FileID: id, Detail: "not in the manifest"})
		}
		if removed {
			r.Repaired++
		}
	}
	for _, name := range strays {
		r.Problems = append(r.Problems, Problem{Kind: "stray file", Detail: filepath.Join("values", name)})
		if repair && os.Remove(filepath.Join(c.files.Path(), name)) == nil {
			r.Repaired++
		}
	}
	return nil
}

// checkOrphan decides whether value file id, which the manifest did not
// list, is an orphan: nobody holds any lock on it (a reclaimer removing it
// holds the whole file), and the manifest still does not know it once the
// file is locked. With repair it is removed, still locked.
func (c *Cache) checkOrphan(ctx context.Context, id int64, repair bool) (orphan, removed bool, err error) {
	f, err := os.OpenFile(c.files.FileName(id), os.O_RDWR|values.NoFollow, 0)
	if err != nil {
		return false, false, nil // gone meanwhile
	}
	defer f.Close()
	if values.LockRange(f, values.WriteLock, 0, 0) != nil {
		return false, false, nil // in use: not an orphan, or not yet
	}
	known, err := c.m.Files(ctx)
	if err != nil {
		return false, false, err
	}
	if _, ok := slices.BinarySearch(known, id); ok {
		return false, false, nil
	}
	if repair && os.Remove(c.files.FileName(id)) == nil {
		removed = true
	}
	return true, removed, nil
}

func (c *Cache) verifyTotals(ctx context.Context, r *Report, repair bool) error {
	kept, counted, err := c.m.CheckTotals(ctx)
	if err != nil || kept == counted {
		return err
	}
	r.Problems = append(r.Problems, Problem{Kind: "totals", Detail: fmt.Sprintf("running sums %+v, rows say %+v", kept, counted)})
	if repair {
		if _, err := c.m.Update(ctx, func(tx *manifest.Tx) error { return tx.FixTotals() }); err != nil {
			return err
		}
		r.Repaired++
	}
	return nil
}
