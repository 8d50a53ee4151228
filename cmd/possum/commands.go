package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/seed475afdc4/possum"
)

// putCmd is "possum put".
var putCmd = &command{
	name:    "put",
	args:    "KEY [FILE|-]",
	summary: "store FILE, or standard input, under KEY",
	doc: `Put stores the contents of FILE under KEY, replacing any value KEY had.
With no FILE, or with "-", it stores standard input. KEY keeps its old value
if reading fails or possum is interrupted.
`,
	run: runPut,
}

// runPut runs "possum put".
func runPut(ctx context.Context, e *env, args []string) error {
	ops, err := e.parse(e.flags(), args, 1, 2)
	if err != nil {
		return err
	}
	key := ops[0]
	if len(ops) == 2 && ops[1] != "-" {
		path := ops[1]
		return e.withCache(func(c *possum.Cache) error {
			_, err := c.PutFile(ctx, key, path)
			return fileErr(err, path)
		})
	}
	return e.withCache(func(c *possum.Cache) error {
		_, err := c.Put(ctx, key, e.stdin)
		return err
	})
}

// getCmd is "possum get".
var getCmd = &command{
	name:    "get",
	args:    "[-o FILE] KEY",
	summary: "write KEY's value to standard output, or to FILE",
	doc: `Get writes the value of KEY to standard output.

With -o FILE, it writes it to FILE instead, through a temporary file in the
same directory renamed to FILE once complete: FILE is either written in full
or left as it was.
`,
	run: runGet,
}

// runGet runs "possum get". It streams the value, never holding it whole in
// memory: into a regular file (standard output or -o) the kernel copies it
// (copy_file_range), into a pipe or socket it sends it (sendfile).
func runGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags()
	out := fs.String("o", "", "write the value to `FILE`")
	ops, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	key := ops[0]
	return e.withCache(func(c *possum.Cache) (err error) {
		v, err := c.Open(ctx, key)
		if err != nil {
			return miss("get", key, err)
		}
		defer func() {
			if cerr := v.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}()
		if *out == "" || *out == "-" {
			_, err = io.Copy(e.stdout, v) // v's WriteTo: stdout as it is
			return stdoutErr(e.stdout, err)
		}
		return writeFile(*out, v)
	})
}

// lsCmd is "possum ls".
var lsCmd = &command{
	name:    "ls",
	args:    "[-l] [PREFIX]",
	summary: "list the keys that start with PREFIX",
	doc: `Ls lists the keys that start with PREFIX (all keys without one), one a
line, in byte order. With -l, each line is the value's size in bytes, its
last use (RFC 3339) and the key, separated by tabs.

Keys that are not printable UTF-8 are printed quoted: see "possum help".
`,
	run: runLs,
}

// runLs runs "possum ls".
func runLs(ctx context.Context, e *env, args []string) error {
	fs := e.flags()
	long := fs.Bool("l", false, "also print sizes and last uses")
	ops, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	var prefix string
	if len(ops) == 1 {
		prefix = ops[0]
	}
	return e.withCache(func(c *possum.Cache) error {
		w := bufio.NewWriter(e.stdout)
		for info, err := range c.List(ctx, prefix) {
			if err != nil {
				return err
			}
			if *long {
				fmt.Fprintf(w, "%d\t%s\t", info.Size, info.LastUsed.Format(time.RFC3339))
			}
			if _, err := fmt.Fprintln(w, showKey(info.Key)); err != nil {
				return err // stdout is gone: stop listing
			}
		}
		return w.Flush()
	})
}

// statCmd is "possum stat".
var statCmd = &command{
	name:    "stat",
	args:    "[KEY]",
	summary: "show capacity, use and totals, or KEY's size and times",
	doc: `Stat, with no KEY, shows the cache's directory, its capacity, and what
counts against it (used), also as a percentage. Used is the live values'
disk space (large values are rounded up to whole blocks), plus the dead
bytes, the overhead and the manifest. On disk is what the directory's files
take now, as du counts them. Then come the live entries and the bytes of
their values; the regions freed but not yet given back to the filesystem
(dead extents) and their bytes; what the value files hold beyond their
values (overhead, as last measured); and the manifest with its WAL and the
other small files. Sizes are in binary units, with the exact bytes.

With KEY, it shows that value's size in bytes and when it was created, last
used and expires. Stat does not count as a use.
`,
	run: runStat,
}

// runStat runs "possum stat".
func runStat(ctx context.Context, e *env, args []string) error {
	ops, err := e.parse(e.flags(), args, 0, 1)
	if err != nil {
		return err
	}
	return e.withCache(func(c *possum.Cache) error {
		if len(ops) == 0 {
			return printStats(e.stdout, c)
		}
		info, err := c.Stat(ctx, ops[0])
		if err != nil {
			return miss("stat", ops[0], err)
		}
		return printInfo(e.stdout, info)
	})
}

// rmCmd is "possum rm".
var rmCmd = &command{
	name:    "rm",
	args:    "KEY...",
	summary: "delete keys",
	doc: `Rm deletes each KEY. A KEY that does not exist is reported, and makes rm
exit 1 once it has deleted the others.
`,
	run: runRm,
}

// runRm runs "possum rm".
func runRm(ctx context.Context, e *env, args []string) error {
	keys, err := e.parse(e.flags(), args, 1, -1)
	if err != nil {
		return err
	}
	return e.withCache(func(c *possum.Cache) error {
		var errs []error
		for _, key := range keys {
			if err := c.Delete(ctx, key); err != nil {
				errs = append(errs, miss("rm", key, err))
			}
			if ctx.Err() != nil {
				break
			}
		}
		return errors.Join(errs...)
	})
}

// mvCmd is "possum mv".
var mvCmd = &command{
	name:    "mv",
	args:    "FROM TO",
	summary: "rename key FROM to TO",
	doc: `Mv gives the value of FROM to the key TO, atomically, replacing TO's
value if it has one. The value keeps its creation and last use times.
`,
	run: runMv,
}

// runMv runs "possum mv".
func runMv(ctx context.Context, e *env, args []string) error {
	ops, err := e.parse(e.flags(), args, 2, 2)
	if err != nil {
		return err
	}
	return e.withCache(func(c *possum.Cache) error {
		return miss("mv", ops[0], c.Rename(ctx, ops[0], ops[1]))
	})
}

// printStats prints the cache's directory, capacity and shared totals.
func printStats(w io.Writer, c *possum.Cache) error {
	s := c.Stats()
	if s.Err != nil {
		return s.Err
	}
	return printTable(w, [][2]any{
		{"dir", c.Dir()},
		{"capacity", size(s.Capacity)},
		{"used", size(s.Used) + ", " + percent(s.Used, s.Capacity) + " of capacity"},
		{"on disk", size(s.DiskBytes)},
		{"entries", s.Entries},
		{"live bytes", size(s.LiveBytes)},
		{"live on disk", size(s.LiveBlocks)},
		{"dead extents", s.DeadExtents},
		{"dead bytes", size(s.DeadBytes)},
		{"overhead", size(s.Overhead)},
		{"manifest", size(s.ManifestBytes)},
	})
}

// printInfo prints what Stat tells of one value.
func printInfo(w io.Writer, i possum.Info) error {
	expires := "never"
	if !i.Expires.IsZero() {
		expires = i.Expires.Format(time.RFC3339)
	}
	return printTable(w, [][2]any{
		{"key", showKey(i.Key)},
		{"size", i.Size},
		{"created", i.Created.Format(time.RFC3339)},
		{"last used", i.LastUsed.Format(time.RFC3339)},
		{"expires", expires},
	})
}
