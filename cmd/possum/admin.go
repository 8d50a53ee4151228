package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/seed475afdc4/possum"
)

// capacityCmd is "possum capacity".
var capacityCmd = &command{
	name:    "capacity",
	args:    "[SIZE]",
	summary: "show the cache's capacity, or set it to SIZE",
	doc: `Capacity, with no SIZE, shows the most the cache may hold on disk, for
every process that shares it.

With SIZE, it sets the capacity, and evicts at once, least recently used
first, what no longer fits. SIZE is in bytes, or a number with a unit,
binary (KiB, MiB, GiB, TiB) or decimal (kB, MB, GB, TB), as in 512MiB,
10GiB or 1.5GB. A bare K, M, G or T is decimal: 1T is 10^12 bytes. Units
are not case-sensitive.
`,
	run: runCapacity,
}

// runCapacity runs "possum capacity".
func runCapacity(ctx context.Context, e *env, args []string) error {
	ops, err := e.parse(e.flags(), args, 0, 1)
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return e.withCache(func(c *possum.Cache) error {
			n, err := c.Capacity(ctx)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, size(n))
			return err
		})
	}
	n, err := parseSize(ops[0])
	if err != nil {
		return e.usageError(e.cmd, err.Error())
	}
	return e.withCache(func(c *possum.Cache) error { return c.SetCapacity(ctx, n) })
}

// trimCmd is "possum trim".
var trimCmd = &command{
	name:    "trim",
	summary: "evict what is over capacity and give back freed space now",
	doc: `Trim evicts what is over the capacity and gives back to the filesystem
the space of deleted, replaced and evicted values that is still held (dead
extents), instead of leaving it to the processes that use the cache. Space
a reader still holds stays held.

It shows the cache's figures before and after.
`,
	run: runTrim,
}

// runTrim runs "possum trim".
func runTrim(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(e.flags(), args, 0, 0); err != nil {
		return err
	}
	return e.withCache(func(c *possum.Cache) error {
		before := c.Stats()
		if before.Err != nil {
			return before.Err
		}
		if err := c.Trim(ctx); err != nil {
			return err
		}
		after := c.Stats()
		if after.Err != nil {
			return after.Err
		}
		return printTrim(e.stdout, before, after)
	})
}

// printTrim prints the figures trim changes, before and after it.
func printTrim(w io.Writer, b, a possum.Stats) error {
	count := func(x, y int64) string { return fmt.Sprintf("%d -> %d", x, y) }
	sizes := func(x, y int64) string { return size(x) + " -> " + size(y) }
	return printTable(w, [][2]any{
		{"entries", count(b.Entries, a.Entries)},
		{"evicted", a.Evictions - b.Evictions},
		{"dead extents", count(b.DeadExtents, a.DeadExtents)},
		{"dead bytes", sizes(b.DeadBytes, a.DeadBytes)},
		{"used", sizes(b.Used, a.Used)},
		{"on disk", sizes(b.DiskBytes, a.DiskBytes)},
	})
}

// verifyCmd is "possum verify".
var verifyCmd = &command{
	name:    "verify",
	args:    "[-repair] [-sample FRACTION]",
	summary: "check every value and the manifest; with -repair, fix them",
	doc: `Verify reads every value and checks it against its checksum and its
value file, checks that no two values overlap, that the manifest's running
totals match its rows, and that the values directory holds no file the
manifest does not know. It prints one line per problem, then a summary. It
reads the whole cache, and may run while other processes use it.

It also compares each value file's data with its holes (SEEK_DATA,
SEEK_HOLE): data that no value accounts for is leaked space.

With -repair, it drops damaged values (they become misses), punches leaked
space, corrects the totals, and removes unknown files. Without it, nothing
changes. -sample 0.1 reads only a tenth of the values (chosen at random)
for the checksum check, for caches too large to read whole. On a terminal,
a progress bar shows the bytes read.

Verify exits 1 if problems remain: found, and not repaired.
`,
	run: runVerify,
}

// runVerify runs "possum verify".
func runVerify(ctx context.Context, e *env, args []string) error {
	fs := e.flags()
	repair := fs.Bool("repair", false, "fix what is found")
	sample := fs.Float64("sample", 0, "read only this `fraction` of the values (0 < f <= 1)")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *sample < 0 || *sample > 1 {
		return e.usageError(e.cmd, "-sample must be between 0 and 1")
	}
	return e.withCache(func(c *possum.Cache) error {
		opts := possum.VerifyOptions{Repair: *repair, Sample: *sample}
		bar := progressBar(e.stderr)
		if bar != nil {
			opts.Progress = func(done, total int64) {
				bar.ChangeMax64(total)
				bar.Set64(done)
			}
		}
		r, err := c.VerifyWith(ctx, opts)
		if bar != nil {
			bar.Finish()
			fmt.Fprintln(e.stderr)
		}
		for _, p := range r.Problems {
			fmt.Fprintln(e.stdout, p)
		}
		if err != nil {
			return err // the summary would count a part as the whole
		}
		if err := printReport(e.stdout, r); err != nil {
			return err
		}
		if len(r.Problems) > r.Repaired {
			return &exitError{code: 1, err: fmt.Errorf("verify: problems remain: %d found, %d repaired", len(r.Problems), r.Repaired)}
		}
		return nil
	})
}

// printReport prints the summary of what verify found and did.
func printReport(w io.Writer, r possum.Report) error {
	return printTable(w, [][2]any{
		{"entries", r.Entries},
		{"bytes checked", size(r.BytesChecked)},
		{"files", r.Files},
		{"problems", len(r.Problems)},
		{"repaired", r.Repaired},
	})
}

// progressBar returns a bar drawn on w if w is a terminal, else nil.
func progressBar(w io.Writer) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription("verifying"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish())
}
