package possum_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
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
)

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

// TestMultiProcessStress runs stressWorkers processes that put, replace,
// get, delete, batch, rename and list random keys with self-describing
// values in one directory at once. Every read is validated by the reader
// (see checkRead), every goroutine checks read-your-writes on its private
// keys, and at the end the manifest must agree with the files (Verify),
// with Stats and with the workers' private models.
//
// The directory does not exist beforehand and all workers open it at the
// same instant, so they also race to create the cache.
func TestMultiProcessStress(t *testing.T) {
	d := stressDuration(t)
	dir := filepath.Join(t.TempDir(), "cache")
	if keep := os.Getenv(envStressKeep); keep != "" {
		dir = filepath.Join(keep, fmt.Sprintf("cache-%d", time.Now().UnixNano()))
		t.Logf("cache directory (kept): %s", dir)
	}
	outDir := t.TempDir()
	start := time.Now().Add(500 * time.Millisecond)

	// The workers time themselves out (with a goroutine dump) well before
	// this: it only catches a worker that hangs harder than that.
	ctx, cancel := context.WithTimeout(context.Background(), 2*d+3*time.Minute)
	defer cancel()
	outs := make([]*bytes.Buffer, stressWorkers)
	errs := make([]error, stressWorkers)
	var wg sync.WaitGroup
	for i := range stressWorkers {
		cmd := stressWorkerCmd(ctx, i+1, dir, outDir, start, d)
		outs[i] = new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting worker %d: %v", i+1, err)
		}
		wg.Go(func() { errs[i] = cmd.Wait() })
	}
	wg.Wait()

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

	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open after the workers: %v", err)
	}
	defer c.Close()
	checkStressEnd(t, c, results)
	t.Logf("directory: %d MiB in files", dirBytes(dir)>>20)
}

// stressWorkerCmd re-executes this test binary as worker w.
func stressWorkerCmd(ctx context.Context, w int, dir, outDir string, start time.Time, d time.Duration) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-test.run=^TestStressWorker$", "-test.count=1", "-test.v",
		"-test.timeout="+(2*d+2*time.Minute).String())
	cmd.Env = append(os.Environ(),
		envStressDir+"="+dir,
		envStressWorker+"="+strconv.Itoa(w),
		envStressSeconds+"="+strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		envStressStart+"="+strconv.FormatInt(start.UnixNano(), 10),
		envStressOut+"="+filepath.Join(outDir, strconv.Itoa(w)),
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
	startNS, err := strconv.ParseInt(os.Getenv(envStressStart), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", envStressStart, err)
	}
	time.Sleep(time.Until(time.Unix(0, startNS)))

	opened := time.Now()
	c, err := possum.Open(dir, nil) // every worker at once: a cold-start race
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	took := time.Since(opened)
	res := runStress(t, c, worker, stressGoroutines, d)
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
	c := openCache(t, "", nil)
	res := runStress(t, c, 0, 16, d)
	checkReadStats(t, c, res)
	if t.Failed() {
		return
	}
	logCounts(t, d, []stressResult{res})
	checkStressEnd(t, c, []stressResult{res})
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
	if st.ChecksumFailures != 0 {
		t.Errorf("Stats: %d checksum failures: live values were damaged", st.ChecksumFailures)
	}
}

// logCounts shows how much each kind of operation was exercised.
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
	for k, n := range total {
		if !strings.HasPrefix(k, "bytes.") && !strings.HasSuffix(k, ".keys") {
			ops += n
		}
	}
	t.Logf("total in %v: %d operations (%.0f/s):%s", d, ops, float64(ops)/d.Seconds(), formatCounts(total))
}

// checkStressEnd checks a cache that nobody writes any more:
//   - Verify finds no problem: every row's bytes are in its file with its
//     checksum, nothing overlaps, the running sums match the rows;
//   - Stats agrees with a full listing (entries and bytes);
//   - every listed key reads back whole, as a valid value of its size;
//   - the private keys hold exactly what their goroutines last committed,
//     and none is missing.
func checkStressEnd(t *testing.T, c *possum.Cache, results []stressResult) {
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
		t.Errorf("private key %q is missing; its goroutine last committed %s", k, want)
	}
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
