package possum_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/seed475afdc4/possum/values"

	"github.com/seed475afdc4/possum"
)

// crashCase is a named crash point (internal/crashpoint), what a child
// process does to reach it, and what must be true once the cache has
// recovered.
type crashCase struct {
	point string
	fresh bool // the child opens a directory that does not exist yet
	check func(t *testing.T, c *possum.Cache)
}

var seedValues = map[string][]byte{
	"seed/small": randBytes(3000, 11),
	"seed/large": randBytes(700_000, 12),
	"seed/tail":  randBytes(300_000, 13),
}

func newValue() []byte { return randBytes(400_000, 14) }

// childCrash does what reaches its case's crash point; the point kills it.
func childCrash(t *testing.T) {
	c, err := possum.Open(os.Getenv("POSSUM_DIR"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Wait out the recovery every Open starts in the background: it locks
	// each file's tail while it looks, and a Delete's inline reclaim that
	// finds the tail locked leaves it for later instead of cutting it, so
	// reclaim:truncate would not be reached.
	possum.WaitRecovered(c)
	switch os.Getenv("POSSUM_CRASH_AT") {
	case "put:written", "commit:committed":
		c.PutBytes(ctx, "new", newValue())
	case "reclaim:locked":
		c.PutBytes(ctx, "seed/large", newValue()) // frees the old value: punched at once
	case "reclaim:truncate":
		c.Delete(ctx, "seed/tail") // the last value of a file nobody holds: cut off
	}
	t.Fatalf("the crash point was not reached; stats %+v", c.Stats())
}

func TestCrashPoints(t *testing.T) {
	notNew := func(t *testing.T, c *possum.Cache) {
		if _, err := c.Get(ctx, "new"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("an uncommitted value is visible: %v", err)
		}
	}
	isNew := func(key string) func(*testing.T, *possum.Cache) {
		return func(t *testing.T, c *possum.Cache) {
			if v, err := c.Get(ctx, key); err != nil || !bytes.Equal(v, newValue()) {
				t.Errorf("%s after the crash: %v", key, err)
			}
		}
	}
	cases := []crashCase{
		{point: "put:written", check: notNew},
		{point: "commit:committed", check: isNew("new")},
		{point: "reclaim:locked", check: isNew("seed/large")},
		{point: "reclaim:truncate", check: func(t *testing.T, c *possum.Cache) {
			if _, err := c.Get(ctx, "seed/tail"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a committed delete was lost: %v", err)
			}
		}},
		{point: "migrate:before", fresh: true},
		{point: "migrate:after", fresh: true},
	}
	for _, cc := range cases {
		t.Run(cc.point, func(t *testing.T) { runCrashCase(t, cc) })
	}
}

func runCrashCase(t *testing.T, cc crashCase) {
	dir := filepath.Join(t.TempDir(), "cache")
	if !cc.fresh {
		seedCache(t, dir)
	}
	cmd := childCmd(t, "crash", "POSSUM_DIR="+dir, "POSSUM_CRASH_AT="+cc.point)
	if err := cmd.Run(); !isKilled(err) {
		t.Fatalf("the child did not die at %s: %v\n%s", cc.point, err, cmd.Stdout)
	}
	checkRecovered(t, dir)
	c := openCache(t, dir, nil)
	if !cc.fresh {
		for k, want := range seedValues {
			if k == "seed/large" && cc.point == "reclaim:locked" || k == "seed/tail" && cc.point == "reclaim:truncate" {
				continue // the child changed these, as checked below
			}
			if v, err := c.Get(ctx, k); err != nil || !bytes.Equal(v, want) {
				t.Errorf("%s was damaged by a crash at %s: %v", k, cc.point, err)
			}
		}
	}
	if cc.check != nil {
		cc.check(t, c)
	}
	if err := c.PutBytes(ctx, "after", []byte("works")); err != nil {
		t.Fatalf("the cache does not work after a crash at %s: %v", cc.point, err)
	}
}

// seedCache writes the seed values and closes the cache, so that no
// process holds its files.
func seedCache(t *testing.T, dir string) {
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seed/small", "seed/large", "seed/tail"} {
		if err := c.PutBytes(ctx, k, seedValues[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPowerLoss simulates value bytes that never reached the disk before a
// power cut: the manifest says the value is there, its blocks are zeros or
// a hole. Every way of reading it reports a miss or damage, never the bytes.
func TestPowerLoss(t *testing.T) {
	for _, how := range []string{"zeros", "hole"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			c := openCache(t, dir, nil)
			c.PutBytes(ctx, "small", randBytes(5000, 1))
			c.PutBytes(ctx, "large", randBytes(1<<20, 2))
			c.Close()
			loseBytes(t, dir, how)
			c = openCache(t, dir, nil)
			v, err := c.Open(ctx, "large")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(v); !errors.Is(err, possum.ErrCorrupt) {
				t.Fatalf("streaming a lost value: %v, want ErrCorrupt", err)
			}
			if err := v.Verify(); !errors.Is(err, possum.ErrCorrupt) {
				t.Fatalf("Verify of a lost value: %v", err)
			}
			v.Close()
			for _, k := range []string{"small", "large"} {
				if _, err := c.Get(ctx, k); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Get of lost value %s: %v", k, err)
				}
			}
			c.PutBytes(ctx, "large", []byte("written again"))
			if v := mustGet(t, c, "large"); string(v) != "written again" {
				t.Fatal("the cache does not work after the loss")
			}
		})
	}
}

// loseBytes zeroes (or punches) the whole of the only value file.
func loseBytes(t *testing.T, dir, how string) {
	ents, _ := os.ReadDir(filepath.Join(dir, "values"))
	if len(ents) != 1 {
		t.Fatalf("%d value files", len(ents))
	}
	f, err := os.OpenFile(filepath.Join(dir, "values", ents[0].Name()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if how == "zeros" {
		f.WriteAt(make([]byte, fi.Size()), 0)
		return
	}
	if err := punchAll(f, fi.Size()); err != nil {
		t.Skipf("cannot punch here: %v", err)
	}
}

func punchAll(f *os.File, n int64) error {
	return values.Punch(f, 0, n)
}
