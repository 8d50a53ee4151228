package possum_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
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

// How TestMultiProcessStress talks to its workers: it re-executes the test
// binary to run only TestStressWorker, with these variables set.
const (
	envStressDir     = "POSSUM_STRESS_DIR"     // the cache directory
	envStressWorker  = "POSSUM_STRESS_WORKER"  // the worker's number, 1..
	envStressSeconds = "POSSUM_STRESS_SECONDS" // how long to run; also read by the parent
	envStressStart   = "POSSUM_STRESS_START"   // when to open the cache, in Unix nanoseconds
	envStressOut     = "POSSUM_STRESS_OUT"     // where to write the worker's stressResult, as JSON
	envStressKeep    = "POSSUM_STRESS_KEEP"    // if set, the parent keeps the cache under this directory, for post-mortems
	// POSSUM_STRESS_CAPACITY, in bytes: if set, the parent creates the
	// cache with this capacity (kept in the manifest, so shared by the
	// workers) and the workers expect evictions. Also read by the parent.
	envStressCapacity = "POSSUM_STRESS_CAPACITY"
)

// stressCapacityDefault is the capacity of
// TestMultiProcessStressUnderCapacity unless POSSUM_STRESS_CAPACITY says
// otherwise: a few times the largest value, and far less than the workers
// write, so that eviction, punching and reclaiming never stop.
const stressCapacityDefault = 8 << 20

// capacitySlack is how far over its capacity the directory may be at the
// end: the WAL's checkpoint allowance and a value or two in flight.
const capacitySlack = 4 << 20

const (
	stressWorkers    = 4 // OS processes
	stressGoroutines = 4 // goroutines in each
)

// stressDuration is POSSUM_STRESS_SECONDS if set (CI may shorten the run,
// for example under -race or on extra filesystems), else 2 s with -short,
// else 10 s.
func stressDuration(t *testing.T) time.Duration {
	if s := os.Getenv(envStressSeconds); s != "" {
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil || secs <= 0 {
			t.Fatalf("%s=%q: want a positive number of seconds", envStressSeconds, s)
		}
		return time.Duration(secs * float64(time.Second))
	}
	if testing.Short() {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// stressCapacity is POSSUM_STRESS_CAPACITY if set, else def (0: none).
func stressCapacity(t *testing.T, def int64) int64 {
	s := os.Getenv(envStressCapacity)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number of bytes", envStressCapacity, s)
	}
	return n
}

// TestMultiProcessStress runs stressWorkers processes that put, replace,
// get, delete, batch, rename, move prefixes, list, open and hold values,
// take snapshots and put values with a TTL, on random keys with
// self-describing values, in one directory at once. Every read is
// validated by the reader (see checkRead), every goroutine checks
// read-your-writes on its private keys (and expiry on its private TTL
// keys), values and snapshots held open must keep their bytes, and at the
// end the manifest must agree with the files (Verify), with Stats and with
// the workers' private models.
//
// The directory does not exist beforehand and all workers open it at the
// same instant, so they also race to create the cache (unless
// POSSUM_STRESS_CAPACITY is set: see runMultiProcessStress).
func TestMultiProcessStress(t *testing.T) {
	runMultiProcessStress(t, stressCapacity(t, 0))
}

// TestMultiProcessStressUnderCapacity is TestMultiProcessStress in a cache
// far smaller than what the workers write (8 MiB, or
// POSSUM_STRESS_CAPACITY): values are evicted at any time, holes punched and
// files truncated and removed under the readers, and the private models
// accept misses, never other bytes. At the end the directory must hold no
// more than the capacity plus capacitySlack, and the workers must have
// evicted.
func TestMultiProcessStressUnderCapacity(t *testing.T) {
	n := stressCapacity(t, stressCapacityDefault)
	if n == 0 {
		n = stressCapacityDefault
	}
	runMultiProcessStress(t, n)
}

// runMultiProcessStress runs the multi-process simulation; with a capacity
// (> 0), the parent creates the cache with it first, and the run checks
// evictions and the space used at the end.
func runMultiProcessStress(t *testing.T, capacity int64) {
	d := stressDuration(t)
	dir := filepath.Join(t.TempDir(), "cache")
	if keep := os.Getenv(envStressKeep); keep != "" {
		dir = filepath.Join(keep, fmt.Sprintf("cache-%d", time.Now().UnixNano()))
		t.Logf("cache directory (kept): %s", dir)
	}
	outDir := t.TempDir()
	if capacity > 0 {
		c, err := possum.Open(dir, &possum.Options{Capacity: capacity})
		if err != nil {
			t.Fatalf("Open with capacity %d: %v", capacity, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		t.Logf("capacity %d MiB", capacity>>20)
	}
	start := time.Now().Add(500 * time.Millisecond)

	// The workers time themselves out (with a goroutine dump) well before
	// this: it only catches a worker that hangs harder than that.
	ctx, cancel := context.WithTimeout(context.Background(), 2*d+3*time.Minute)
	defer cancel()
	outs := make([]*bytes.Buffer, stressWorkers)
	errs := make([]error, stressWorkers)
	var wg sync.WaitGroup
	for i := range stressWorkers {
		cmd := stressWorkerCmd(ctx, i+1, dir, outDir, start, d, capacity)
		outs[i] = new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting worker %d: %v", i+1, err)
		}
		wg.Go(func() { errs[i] = cmd.Wait() })
	}
	peak := samplePeak(t, dir)
	wg.Wait()
	peakBytes := peak()

	results := make([]stressResult, stressWorkers)
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v; its output:\n%s", i+1, err, outs[i])
			continue
		}
		results[i] = readStressResult(t, filepath.Join(outDir, fmt.Sprint(i+1)))
	}
	if t.Failed() {
		return
	}
	logCounts(t, d, results)
	if capacity > 0 {
		checkCapacityEnd(t, dir, capacity, results)
		t.Logf("at most %d bytes allocated while the workers ran (values in flight and held regions come on top of the capacity)", peakBytes)
	}

	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open after the workers: %v", err)
	}
	defer c.Close()
	if capacity > 0 {
		// Evict what is over capacity now, so that the checks' own
		// commits evict nothing under them.
		if err := c.Trim(stressCtx); err != nil {
			t.Errorf("Trim: %v", err)
		}
	}
	checkStressEnd(t, c, results, capacity > 0)
	t.Logf("directory: %d MiB in files, %d MiB allocated", dirBytes(dir)>>20, allocated(t, dir)>>20)
}

// samplePeak measures dir's allocation every 50 ms until the function it
// returns is called, which returns the most it saw.
func samplePeak(t *testing.T, dir string) func() int64 {
	done := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, allocated(t, dir))
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	})
	return func() int64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// checkCapacityEnd checks a run under capacity pressure, once every worker
// has closed the cache: the directory's files hold (st_blocks) no more than
// the capacity plus capacitySlack, and the workers evicted.
func checkCapacityEnd(t *testing.T, dir string, capacity int64, results []stressResult) {
	t.Helper()
	evictions := 0
	for _, r := range results {
		evictions += r.Counts["stats.evictions"]
	}
	if evictions == 0 {
		t.Errorf("capacity %d: the workers evicted nothing", capacity)
	}
	du := allocated(t, dir)
	if du > capacity+capacitySlack {
		t.Errorf("capacity %d: the directory holds %d bytes at the end, over the capacity plus %d\n%s",
			capacity, du, capacitySlack, describeDir(dir))
	}
	t.Logf("capacity %d: %d evictions; %d bytes allocated at the end", capacity, evictions, du)
}

// stressWorkerCmd re-executes this test binary as worker w.
func stressWorkerCmd(ctx context.Context, w int, dir, outDir string, start time.Time, d time.Duration, capacity int64) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-test.run=^TestStressWorker$", "-test.count=1", "-test.v",
		"-test.timeout="+(2*d+2*time.Minute).String())
	cmd.Env = append(os.Environ(),
		envStressDir+"="+dir,
		envStressWorker+"="+strconv.Itoa(w),
		envStressSeconds+"="+strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		envStressStart+"="+strconv.FormatInt(start.UnixNano(), 10),
		envStressOut+"="+filepath.Join(outDir, strconv.Itoa(w)),
		envStressCapacity+"="+strconv.FormatInt(capacity, 10),
	)
	// On the backstop timeout, ask for a goroutine dump before killing.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// TestStressWorker is one process of TestMultiProcessStress; run alone, it
// skips.
func TestStressWorker(t *testing.T) {
	dir := os.Getenv(envStressDir)
	if dir == "" {
		t.Skip("runs only as a child process of TestMultiProcessStress")
	}
	worker, err := strconv.Atoi(os.Getenv(envStressWorker))
	if err != nil || worker < 1 || worker > 255 {
		t.Fatalf("%s=%q: want 1..255", envStressWorker, os.Getenv(envStressWorker))
	}
	d := stressDuration(t)
	capacity := stressCapacity(t, 0)
	startNS, err := strconv.ParseInt(os.Getenv(envStressStart), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", envStressStart, err)
	}
	time.Sleep(time.Until(time.Unix(0, startNS)))

	opened := time.Now()
	c, err := possum.Open(dir, &possum.Options{Logger: warnLogger()}) // every worker at once: a cold-start race
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	took := time.Since(opened)
	if capacity > 0 {
		if got, err := c.Capacity(stressCtx); err != nil || got != capacity {
			t.Errorf("Capacity = %d, %v; the parent set %d", got, err, capacity)
		}
	}
	res := runStress(t, c, worker, stressGoroutines, d, capacity > 0)
	res.OpenTook = took
	checkReadStats(t, c, res)
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Logf("worker %d:%s", worker, formatCounts(res.Counts))
	b, err := json.Marshal(res)
	if err == nil {
		err = os.WriteFile(os.Getenv(envStressOut), b, 0o600)
	}
	if err != nil {
		t.Fatalf("writing the result: %v", err)
	}
}

// warnLogger sends possum's warnings (a value dropped as damaged, a failed
// commit) to stderr: a worker's output, which the parent shows if the
// worker fails, or the test's.
func warnLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func readStressResult(t *testing.T, path string) stressResult {
	t.Helper()
	var r stressResult
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		t.Errorf("reading a worker's result: %v", err)
	}
	return r
}

// TestConcurrentGoroutines is the in-process variant: many goroutines on
// one Cache, the same workload and checks. openCache verifies the
// directory again after Close.
func TestConcurrentGoroutines(t *testing.T) {
	d := 2 * time.Second
	if testing.Short() {
		d = time.Second
	}
	c := openCache(t, "", &possum.Options{Logger: warnLogger()})
	res := runStress(t, c, 0, 16, d, false)
	checkReadStats(t, c, res)
	if t.Failed() {
		return
	}
	logCounts(t, d, []stressResult{res})
	checkStressEnd(t, c, []stressResult{res}, false)
}

// checkReadStats adds this process's read figures to res's counts and
// fails if any read met damaged bytes: nothing damages this cache from
// outside, so a checksum failure means a live value's region was punched or
// overwritten (Get hides that as a miss, so only Stats shows it).
func checkReadStats(t *testing.T, c *possum.Cache, res stressResult) {
	t.Helper()
	st := c.Stats()
	res.Counts["stats.hits"] = int(st.Hits)
	res.Counts["stats.misses"] = int(st.Misses)
	res.Counts["stats.readretries"] = int(st.ReadRetries)
	res.Counts["stats.expired"] = int(st.Expired)
	res.Counts["stats.expirations"] = int(st.Expirations)
	res.Counts["stats.evictions"] = int(st.Evictions)
	res.Counts["stats.punches"] = int(st.Punches)
	res.Counts["stats.truncations"] = int(st.Truncations)
	res.Counts["stats.filesremoved"] = int(st.FilesRemoved)
	res.Counts["stats.openedbyclone"] = int(st.OpenedByClone)
	res.Counts["stats.openedbylock"] = int(st.OpenedByLock)
	res.Counts["bytes.copyrange"] = int(st.CopyRangeBytes)
	res.Counts["bytes.sendfile"] = int(st.SendfileBytes)
	if st.ChecksumFailures != 0 {
		t.Errorf("Stats: %d checksum failures: live values were damaged", st.ChecksumFailures)
	}
}

// newOps are the count prefixes of the operations on held values,
// snapshots, expiry and capacity pressure, summed up on a line of their own.
var newOps = []string{"open", "snapshot", "via.", "ttl.", "evicted.", "fill.", "stats.evictions", "stats.expire", "stats.punches", "stats.openedby"}

// logCounts shows how much each kind of operation was exercised. The
// operation total leaves out byte counts, key counts, the ways held values
// were read again (via.) and the Stats figures (stats.).
func logCounts(t *testing.T, d time.Duration, results []stressResult) {
	total := map[string]int{}
	for i, r := range results {
		if len(results) > 1 {
			t.Logf("worker %d (Open took %v):%s", i+1, r.OpenTook, formatCounts(r.Counts))
		}
		for k, n := range r.Counts {
			total[k] += n
		}
	}
	ops := 0
	newCounts := map[string]int{}
	for k, n := range total {
		if !strings.HasPrefix(k, "bytes.") && !strings.HasSuffix(k, ".keys") &&
			!strings.HasPrefix(k, "via.") && !strings.HasPrefix(k, "stats.") {
			ops += n
		}
		for _, p := range newOps {
			if strings.HasPrefix(k, p) {
				newCounts[k] = n
			}
		}
	}
	t.Logf("total in %v: %d operations (%.0f/s):%s", d, ops, float64(ops)/d.Seconds(), formatCounts(total))
	t.Logf("held values, snapshots, expiry, eviction:%s", formatCounts(newCounts))
}

// checkStressEnd checks a cache that nobody writes any more:
//   - Verify finds no problem: every row's bytes are in its file with its
//     checksum, nothing overlaps, the running sums match the rows;
//   - Stats agrees with a full listing (entries and bytes);
//   - every listed key reads back whole, as a valid value of its size;
//   - the private keys hold exactly what their goroutines last committed,
//     and none is missing (unless evictable: then some may be);
//   - the TTL keys (t/, pt/) that have not expired read back as valid
//     values. They are then deleted: their rows may outlive their expiry
//     until a reclaim pass drops them, so Stats would count keys that List
//     leaves out.
func checkStressEnd(t *testing.T, c *possum.Cache, results []stressResult, evictable bool) {
	t.Helper()
	rep, err := c.Verify(stressCtx, false)
	if err != nil {
		t.Errorf("Verify: %v", err)
	}
	for _, p := range rep.Problems {
		t.Errorf("Verify: %v", p)
	}
	t.Logf("Verify: %d entries, %d bytes checked, %d files, %d problems",
		rep.Entries, rep.BytesChecked, rep.Files, len(rep.Problems))

	checkExpiringEnd(t, c)
	infos := listAll(t, c)
	checkStats(t, c, infos)

	private := map[string]string{}
	for _, r := range results {
		maps.Copy(private, r.Private)
	}
	for _, info := range infos {
		v, err := c.Get(stressCtx, info.Key)
		if err != nil {
			t.Errorf("listed key %q: Get: %v", info.Key, err)
			continue
		}
		if int64(len(v)) != info.Size {
			t.Errorf("listed key %q: List says %d bytes, Get returned %d", info.Key, info.Size, len(v))
		}
		if _, err := checkRead(info.Key, v); err != nil {
			t.Errorf("listed key %q holds a bad value: %v", info.Key, err)
		}
		if !strings.HasPrefix(info.Key, "p/") {
			continue
		}
		if want, got := private[info.Key], identOf(v); got != want {
			t.Errorf("private key %q holds %s; its goroutine last committed %q", info.Key, got, want)
		}
		delete(private, info.Key)
	}
	for k, want := range private {
		if !evictable {
			t.Errorf("private key %q is missing; its goroutine last committed %s", k, want)
		}
	}
}

// checkExpiringEnd reads every TTL key that is listed: each is valid for
// its key, or has expired since it was listed. Then it deletes them all.
func checkExpiringEnd(t *testing.T, c *possum.Cache) {
	t.Helper()
	live, expired := 0, 0
	for _, prefix := range []string{"t/", "pt/"} {
		began := time.Now()
		for info, err := range c.List(stressCtx, prefix) {
			if err != nil {
				t.Fatalf("List %q: %v", prefix, err)
			}
			if err := checkListedInfo(info); err != nil {
				t.Error(err)
			}
			if err := checkNotExpired(info, began); err != nil {
				t.Error(err)
			}
			v, err := c.Get(stressCtx, info.Key)
			switch {
			case errors.Is(err, fs.ErrNotExist) && !info.Expires.IsZero() && !time.Now().Before(info.Expires):
				expired++
			case err != nil:
				t.Errorf("listed TTL key %q (expires %v): Get: %v", info.Key, info.Expires, err)
			default:
				if _, err := checkRead(info.Key, v); err != nil {
					t.Errorf("listed TTL key %q holds a bad value: %v", info.Key, err)
				}
				live++
			}
		}
		if _, err := c.DeletePrefix(stressCtx, prefix); err != nil {
			t.Errorf("DeletePrefix %q: %v", prefix, err)
		}
	}
	t.Logf("TTL keys at the end: %d live, %d expired between List and Get", live, expired)
}

// listAll lists every key, checking order and sizes.
func listAll(t *testing.T, c *possum.Cache) []possum.Info {
	t.Helper()
	var infos []possum.Info
	for info, err := range c.List(stressCtx, "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if n := len(infos); n > 0 && info.Key <= infos[n-1].Key {
			t.Errorf("List yielded %q after %q: out of order or twice", info.Key, infos[n-1].Key)
		}
		if err := checkListedInfo(info); err != nil {
			t.Error(err)
		}
		infos = append(infos, info)
	}
	return infos
}

// checkStats proves the manifest's running sums match its rows as List
// sees them.
func checkStats(t *testing.T, c *possum.Cache, infos []possum.Info) {
	t.Helper()
	st := c.Stats()
	if st.Err != nil {
		t.Errorf("Stats: %v", st.Err)
		return
	}
	var bytes int64
	for _, info := range infos {
		bytes += info.Size
	}
	if st.Entries != int64(len(infos)) || st.LiveBytes != bytes {
		t.Errorf("Stats says %d entries of %d bytes; List finds %d of %d", st.Entries, st.LiveBytes, len(infos), bytes)
	}
	t.Logf("Stats: %d entries, %d live bytes, %d live blocks bytes, %d dead extents of %d bytes",
		st.Entries, st.LiveBytes, st.LiveBlocks, st.DeadExtents, st.DeadBytes)
}

// dirBytes is the apparent size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
