package possum_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seed475afdc4/possum"
)

// walAllowance is what the manifest's WAL may grow by inside one commit,
// beyond what the capacity check measured before it: a few pages per
// commit, and a checkpoint's worth at most.
const walAllowance = 1 << 20

// allocated is what du -B1 says of dir: the st_blocks of every file and
// directory under it, in bytes.
func allocated(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed meanwhile
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return nil
	})
	return n
}

// describeDir lists dir's files with their sizes and allocations.
func describeDir(dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if fi, err := d.Info(); err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			fmt.Fprintf(&b, "  %-40s size %10d allocated %10d\n", strings.TrimPrefix(path, dir), fi.Size(), st.Blocks*512)
		}
		return nil
	})
	return b.String()
}

// valueFilesAllocated is the st_blocks of the value files alone, in bytes.
func valueFilesAllocated(t testing.TB, dir string) int64 {
	return allocated(t, filepath.Join(dir, "values")) - dirBlocks(t, filepath.Join(dir, "values"))
}

func dirBlocks(t testing.TB, dir string) int64 {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

const (
	hotKeys   = 8
	hotSize   = 16 << 10
	maxValue  = 256 << 10
	testCap   = 16 << 20
	writeLoad = 4 * testCap
)

func hotKey(i int) string { return "hot/" + strconv.Itoa(i) }

func putHotSet(t testing.TB, c *possum.Cache) {
	for i := range hotKeys {
		if err := c.PutBytes(ctx, hotKey(i), randBytes(hotSize, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// readHotSet reads the hot set; every key must be there with its bytes.
func readHotSet(t testing.TB, c *possum.Cache) {
	for i := range hotKeys {
		v, err := c.Get(ctx, hotKey(i))
		if err != nil {
			t.Fatalf("hot key %d: %v\nstats %+v\n%s", i, err, c.Stats(), describeDir(c.Dir()))
		}
		if !bytes.Equal(v, randBytes(hotSize, uint64(i))) {
			t.Fatalf("hot key %d: wrong bytes", i)
		}
	}
}

// writeCold writes load bytes of cold values of random sizes (1 KiB to
// maxValue) under prefix, reading the hot set between writes and checking
// after every commit that the directory holds no more than the capacity,
// plus values in flight (inFlight of them at most maxValue each), plus the
// WAL allowance.
func writeCold(t testing.TB, c *possum.Cache, dir, prefix string, load int64, inFlight int, seed uint64) int {
	r := rand.New(rand.NewPCG(seed, 7))
	limit := int64(testCap + inFlight*maxValue + walAllowance)
	n := 0
	for written := int64(0); written < load; n++ {
		size := 1<<10 + r.IntN(maxValue-1<<10)
		if err := c.PutBytes(ctx, prefix+strconv.Itoa(n), randBytes(size, seed+uint64(n))); err != nil {
			t.Fatalf("put %d: %v", n, err)
		}
		written += int64(size)
		if du := allocated(t, dir); du > limit {
			st := c.Stats()
			t.Fatalf("after %d puts (%d bytes) the directory holds %d bytes, over the limit %d (capacity %d)\nstats %+v\n%s",
				n+1, written, du, limit, testCap, st, describeDir(dir))
		}
		readHotSet(t, c)
	}
	return n
}

// TestCapacityBoundWithHotSet writes four times the capacity while reading a
// small hot set between writes: after every commit the directory stays
// within capacity plus one value plus the WAL allowance, the hot set
// survives, and the oldest cold keys are evicted.
func TestCapacityBoundWithHotSet(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, &possum.Options{Capacity: testCap})
	putHotSet(t, c)
	n := writeCold(t, c, dir, "cold/", writeLoad, 1, 1)
	readHotSet(t, c)
	st := c.Stats()
	if st.Evictions == 0 || st.Punches == 0 {
		t.Fatalf("nothing was evicted or punched: %+v", st)
	}
	if _, err := c.Get(ctx, "cold/0"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the oldest cold key survived: %v", err)
	}
	if _, err := c.Get(ctx, "cold/"+strconv.Itoa(n-1)); err != nil {
		t.Fatalf("the newest cold key was evicted: %v", err)
	}
	if st.Used > st.Capacity {
		t.Fatalf("used %d over capacity %d", st.Used, st.Capacity)
	}
	t.Logf("%d cold puts; %d evictions, %d punches (%d bytes); du %d, used %d of %d",
		n, st.Evictions, st.Punches, st.PunchedBytes, allocated(t, dir), st.Used, st.Capacity)
}

func TestValueOverCapacityIsRefused(t *testing.T) {
	dir := t.TempDir()
	// A capacity well above what the manifest and its WAL hold alone.
	c := openCache(t, dir, &possum.Options{Capacity: 8 << 20})
	c.PutBytes(ctx, "small", []byte("keep me"))
	before := valueFilesAllocated(t, dir)
	err := c.PutBytes(ctx, "huge", make([]byte, 16<<20))
	if !errors.Is(err, possum.ErrTooLarge) {
		t.Fatalf("a value over capacity: %v", err)
	}
	if v := mustGet(t, c, "small"); string(v) != "keep me" {
		t.Fatal("a refused value evicted another")
	}
	if st := c.Stats(); st.Evictions != 0 {
		t.Fatalf("evictions: %d", st.Evictions)
	}
	if after := valueFilesAllocated(t, dir); after > before {
		t.Fatalf("a refused value left %d bytes", after-before)
	}
}

func TestSetCapacityEvictsAtOnce(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, &possum.Options{Capacity: 64 << 20})
	for i := range 40 {
		c.PutBytes(ctx, "k"+strconv.Itoa(i), randBytes(200_000, uint64(i)))
	}
	other, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.SetCapacity(ctx, 4<<20); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Capacity(ctx); got != 4<<20 {
		t.Fatalf("the other process sees capacity %d", got)
	}
	if du := allocated(t, dir); du > 4<<20+walAllowance {
		t.Fatalf("%d bytes on disk after lowering the capacity to 4 MiB", du)
	}
	if _, err := c.Get(ctx, "k39"); err != nil {
		t.Fatalf("the newest key was evicted: %v", err)
	}
	if err := c.SetCapacity(ctx, 0); err == nil {
		t.Fatal("SetCapacity(0) was accepted")
	}
}

// TestSpaceComesBack deletes and replaces values, then waits, writing
// nothing: the value files' allocation falls back to what is live.
func TestSpaceComesBack(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	for i := range 60 {
		c.PutBytes(ctx, "k"+strconv.Itoa(i), randBytes(100_000+i*1000, uint64(i)))
	}
	full := valueFilesAllocated(t, dir)
	for i := range 60 {
		switch i % 3 {
		case 0:
			c.Delete(ctx, "k"+strconv.Itoa(i))
		case 1:
			c.PutBytes(ctx, "k"+strconv.Itoa(i), randBytes(5000, uint64(i)))
		}
	}
	st := waitForReclaim(t, c)
	got := valueFilesAllocated(t, dir)
	slack := int64(64 << 10)
	if got > st.LiveBlocks+slack {
		t.Fatalf("value files hold %d bytes for %d live (was %d before the deletes)", got, st.LiveBlocks, full)
	}
	t.Logf("value files: %d bytes before, %d after, %d live", full, got, st.LiveBlocks)
}

// waitForReclaim polls until no dead extent is left, for up to 10 s.
func waitForReclaim(t testing.TB, c *possum.Cache) possum.Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := c.Stats()
		if st.DeadExtents == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead extents left after 10 s: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCapacityMultiProcess runs the capacity workload in four processes at
// once on one directory. Each process may have one value in flight, so the
// bound allows four.
func TestCapacityMultiProcess(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, &possum.Options{Capacity: testCap})
	putHotSet(t, c)
	cmds := make([]*exec.Cmd, 4)
	for i := range cmds {
		cmds[i] = childCmd(t, "capacity", "POSSUM_DIR="+dir, "POSSUM_WORKER="+strconv.Itoa(i))
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, cmd.Stdout)
		}
	}
	readHotSet(t, c)
	if du := allocated(t, dir); du > testCap+walAllowance {
		t.Fatalf("%d bytes on disk at the end", du)
	}
}

func childCapacity(t *testing.T) {
	dir := os.Getenv("POSSUM_DIR")
	w, _ := strconv.Atoi(os.Getenv("POSSUM_WORKER"))
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := writeCold(t, c, dir, fmt.Sprintf("cold/%d/", w), writeLoad/4, 4, uint64(w)<<32)
	fmt.Printf("worker %d: %d puts, %+v\n", w, n, c.Stats())
}

// childCmd re-executes the test binary as a child process running the child
// named name (see TestChild).
func childCmd(t testing.TB, name string, env ...string) *exec.Cmd {
	args := []string{"-test.run=^TestChild$", "-test.v"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "POSSUM_CHILD="+name), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd
}

// TestChild is the entry point of child processes; it does nothing in a
// normal run.
func TestChild(t *testing.T) {
	children := map[string]func(*testing.T){
		"capacity":  childCapacity,
		"slow-put":  childSlowPut,
		"churn":     childChurn,
		"churn-big": childChurnBig,
		"hold":      childHold,
		"crash":     childCrash,
	}
	name := os.Getenv("POSSUM_CHILD")
	if name == "" {
		t.Skip("only runs as a child process")
	}
	children[name](t)
}

// TestAccessTimesFlushInSlices reads more keys than one flush transaction
// writes: at Close every read's time is in the manifest all the same.
func TestAccessTimesFlushInSlices(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var opts possum.Options
	possum.SetClock(&opts, clock)
	c := openCache(t, dir, &opts)
	const n = 200 // a few slices (idleTouchRows)
	b := c.NewBatch()
	for i := range n {
		b.PutBytes(ctx, fmt.Sprintf("k%05d", i), []byte("v"))
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	read := now
	mu.Unlock()
	for i := range n {
		mustGet(t, c, fmt.Sprintf("k%05d", i))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCache(t, dir, nil)
	for i := range n {
		info, err := c.Stat(ctx, fmt.Sprintf("k%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		if info.LastUsed.Before(read) {
			t.Fatalf("k%05d: last used %v, read at %v", i, info.LastUsed, read)
		}
	}
}

// TestAccessTimesHeldWhileQuiet: in a cache far from full, read times are
// held back (up to quietHold) instead of written every second; once the
// hold is over, or in a cache past half its capacity, they reach the
// manifest within a flush or two. Another Cache on the directory sees what
// the manifest has.
func TestAccessTimesHeldWhileQuiet(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int64
		held     bool
	}{
		{"unbounded", 0, true},
		{"far from full", 64 << 20, true},
		{"past half full", 2 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var mu sync.Mutex
			now := time.Unix(1_800_000_000, 0)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) time.Time {
				mu.Lock()
				defer mu.Unlock()
				now = now.Add(d)
				return now
			}
			opts := possum.Options{Capacity: tc.capacity}
			possum.SetClock(&opts, clock)
			c := openCache(t, dir, &opts)
			const n = 10
			for i := range n {
				if err := c.PutBytes(ctx, fmt.Sprintf("k%d", i), make([]byte, 112<<10)); err != nil {
					t.Fatal(err)
				}
			}
			read := advance(time.Hour)
			for i := range n {
				mustGet(t, c, fmt.Sprintf("k%d", i))
			}
			written := func() int {
				// A Cache of its own each time: Stat answers from the
				// location cache once it has looked a key up.
				other, err := possum.Open(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				got := 0
				for i := range n {
					info, err := other.Stat(ctx, fmt.Sprintf("k%d", i))
					if err != nil {
						t.Fatal(err)
					}
					if !info.LastUsed.Before(read) {
						got++
					}
				}
				return got
			}
			waitWritten := func(what string) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for written() < n {
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d of %d read times in the manifest after 10 s", what, written(), n)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			if !tc.held {
				waitWritten("past half full")
				return
			}
			time.Sleep(2500 * time.Millisecond) // two flushes
			if got := written(); got != 0 {
				t.Fatalf("%d of %d read times written while the cache is quiet, before the hold is over", got, n)
			}
			advance(31 * time.Second) // past quietHold
			waitWritten("after the hold")
		})
	}
}
