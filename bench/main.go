// Command bench compares possum with its peers (see stores) on a set of
// workloads and writes the results as JSON (result.go) for the report step.
//
//	go run -C bench . -quick              # about a minute
//	go run -C bench .                     # the full run
//	go run -C bench . -report             # RESULTS.md and charts from out/*.json
//
// How each figure is measured is written at the top of run.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seed475afdc4/possum/bench/stores"
)

// allWorkloads are the workload names, in the order they run.
var allWorkloads = []string{"put", "get-hot", "get-miss", "mixed", "mixed-proc", "capacity", "get-hot-paired"}

// scale is what -quick changes.
type scale struct {
	sizes     []int         // default -sizes
	duration  time.Duration // default -duration
	dataBytes int64         // keys*size aimed at per (store, size)
	minKeys   int
	maxKeys   int
	capSizes  []int // value sizes of the capacity workload
}

var (
	fullScale = scale{
		sizes:     []int{100, 4096, 65536, 1 << 20},
		duration:  1 * time.Second,
		dataBytes: 64 << 20,
		minKeys:   256,
		maxKeys:   100_000,
		capSizes:  []int{4096, 65536},
	}
	quickScale = scale{
		sizes:     []int{100, 4096, 65536},
		duration:  100 * time.Millisecond,
		dataBytes: 8 << 20,
		minKeys:   128,
		// Not 20000: loading 20000 100-byte values costs possum, diskv and
		// squirrel 3-8 s each here, and the whole -quick run must stay
		// around a minute. 4096 keys still fill several pages of every
		// index.
		maxKeys:  4096,
		capSizes: []int{4096},
	}
)

// capFloor is the least capacity a capacity run gets, however small the
// data: possum counts its manifest and WAL (a few MiB) against the capacity,
// so a smaller bound would leave almost no room for values.
const capFloor = 8 << 20

// keys is how many keys a (store, size) gets: dataBytes/size, clamped.
func (s scale) keys(size int) int {
	n := int(s.dataBytes / int64(size))
	return min(max(n, s.minKeys), s.maxKeys)
}

type config struct {
	scale
	quick      bool
	kinds      []stores.Kind
	sizes      []int
	workloads  []string
	goroutines []int
	dir        string // base directory; created (and removed) if empty
	label      string
	out        string
}

func (c *config) wants(w string) bool { return slices.Contains(c.workloads, w) }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		os.Exit(childMain())
	}
	quick := flag.Bool("quick", false, "small key counts and short cells (about a minute in all)")
	storesFlag := flag.String("stores", "", "comma-separated stores (default: all: "+strings.Join(kindNames(stores.All()), ",")+")")
	sizesFlag := flag.String("sizes", "", "comma-separated value sizes in bytes (default 100,4096,65536,1048576; -quick: 100,4096,65536)")
	workloadsFlag := flag.String("workloads", strings.Join(allWorkloads, ","), "comma-separated workloads")
	goroutinesFlag := flag.String("goroutines", "1,2,8", "comma-separated goroutine counts")
	duration := flag.Duration("duration", 0, "length of each timed cell (default 1s; -quick: 100ms)")
	dir := flag.String("dir", "", "base directory for the stores' directories (default: a new directory in "+os.TempDir()+", removed at the end)")
	label := flag.String("label", "peers", "name of the run: writes OUT/LABEL.json")
	out := flag.String("out", "out", "directory for the JSON results (and the report's input)")
	report := flag.Bool("report", false, "do not run: write the report from OUT/*.json")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %q", flag.Args())
	}
	if *report {
		if err := writeReport(*out); err != nil {
			fatalf("report: %v", err)
		}
		return
	}

	cfg := config{quick: *quick, scale: fullScale, dir: *dir, label: *label, out: *out}
	if *quick {
		cfg.scale = quickScale
	}
	var err error
	if cfg.kinds, err = parseKinds(*storesFlag); err != nil {
		fatalf("-stores: %v", err)
	}
	cfg.sizes = cfg.scale.sizes
	if *sizesFlag != "" {
		if cfg.sizes, err = parseInts(*sizesFlag, headerLen); err != nil {
			fatalf("-sizes: %v", err)
		}
	}
	if cfg.workloads, err = parseWorkloads(*workloadsFlag); err != nil {
		fatalf("-workloads: %v", err)
	}
	if cfg.goroutines, err = parseInts(*goroutinesFlag, 1); err != nil {
		fatalf("-goroutines: %v", err)
	}
	if *duration > 0 {
		cfg.scale.duration = *duration
	}
	if cfg.label == "" || strings.ContainsAny(cfg.label, `/\`) {
		fatalf("-label %q: want a plain file name", cfg.label)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Only a complete run is written: a partial one would replace the
	// previous complete OUT/LABEL.json.
	run, err := benchmark(ctx, cfg, newProgress(os.Stderr))
	if err != nil {
		fatalf("%v (nothing written)", err)
	}
	path, err := writeRun(cfg.out, run)
	if err != nil {
		fatalf("%v", err)
	}
	var errs int64
	for _, r := range run.Results {
		errs += r.Errors
	}
	for _, c := range run.Capacity {
		errs += c.Errors
	}
	for _, p := range run.Paired {
		errs += p.Errors
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d results, %d capacity runs, %d errors, %.1fs)\n", path, len(run.Results), len(run.Capacity), errs, run.Seconds)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func kindNames(ks []stores.Kind) []string {
	var names []string
	for _, k := range ks {
		names = append(names, k.Name)
	}
	return names
}

func kindByName(name string) (stores.Kind, error) {
	k, ok := stores.ByName(name)
	if !ok {
		return k, fmt.Errorf("unknown store %q (know %s)", name, strings.Join(kindNames(stores.All()), ","))
	}
	return k, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseKinds(s string) ([]stores.Kind, error) {
	if s == "" {
		return stores.All(), nil
	}
	var ks []stores.Kind
	for _, name := range splitList(s) {
		k, err := kindByName(name)
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

func parseInts(s string, least int) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		if n < least {
			return nil, fmt.Errorf("%d is below %d", n, least)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func parseWorkloads(s string) ([]string, error) {
	var out []string
	for _, w := range splitList(s) {
		if !slices.Contains(allWorkloads, w) {
			return nil, fmt.Errorf("unknown workload %q (know %s)", w, strings.Join(allWorkloads, ","))
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// commandLine is how the run was invoked, as one would retype it.
func commandLine() string {
	prog := os.Args[0]
	if strings.Contains(prog, "go-build") { // go run's temporary binary
		prog = "go run -C bench ."
	}
	parts := []string{prog}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// writeRun writes run as OUT/LABEL.json and returns the path.
func writeRun(out string, run *Run) (string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(run, "", "\t")
	if err != nil {
		return "", err
	}
	path := filepath.Join(out, run.Label+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// benchmark runs every cell of cfg.
func benchmark(ctx context.Context, cfg config, prog *progress) (*Run, error) {
	started := time.Now()
	base := cfg.dir
	if base == "" {
		d, err := os.MkdirTemp("", "possum-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		base = d
	} else if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	maxSize := slices.Max(cfg.sizes)
	for _, s := range cfg.capSizes {
		maxSize = max(maxSize, s)
	}
	r := &runner{
		cfg:  cfg,
		base: base,
		pool: newPool(maxSize),
		prog: prog,
	}
	run := &Run{
		Label:   cfg.label,
		FS:      fsType(base),
		Dir:     base,
		Command: commandLine(),
		Quick:   cfg.quick,
		Started: started,
		Machine: machineInfo(),
	}
	prog.start(r.cellCount())
	defer prog.finish()
	for _, kind := range cfg.kinds {
		for _, size := range cfg.sizes {
			if ctx.Err() != nil {
				break
			}
			run.Results = append(run.Results, r.storeSize(ctx, kind, size)...)
		}
		if cfg.wants("capacity") {
			for _, size := range cfg.capSizes {
				if ctx.Err() != nil {
					break
				}
				run.Capacity = append(run.Capacity, r.capacity(ctx, kind, size))
			}
		}
	}
	if cfg.wantsPaired() {
		for _, size := range cfg.sizes {
			if ctx.Err() != nil {
				break
			}
			run.Paired = append(run.Paired, r.paired(ctx, size))
		}
	}
	run.Seconds = time.Since(started).Seconds()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	return run, nil
}

type runner struct {
	cfg  config
	base string
	pool []byte
	prog *progress
}

// cellCount is how many Result rows and capacity runs cfg makes.
func (r *runner) cellCount() int {
	perSize := 0
	g := len(r.cfg.goroutines)
	for _, w := range r.cfg.workloads {
		switch w {
		case "put", "get-hot", "mixed":
			perSize += g
		case "get-miss", "mixed-proc":
			perSize++
		}
	}
	n := len(r.cfg.kinds) * len(r.cfg.sizes) * perSize
	if r.cfg.wants("capacity") {
		n += len(r.cfg.kinds) * len(r.cfg.capSizes)
	}
	if r.cfg.wantsPaired() {
		n += len(r.cfg.sizes)
	}
	return n
}

// storeSize runs every workload but capacity on a fresh store of one kind
// with values of one size.
//
// The "put" cells: the 1-goroutine cell is the load (each key put once, in
// order, into the empty store, however long that takes); the cells with more
// goroutines are re-puts of the loaded keys with new versions (each goroutine
// its own share of the key range, in order, each key at most once) for
// -duration. When 1 is not among -goroutines, the load still happens, untimed.
func (r *runner) storeSize(ctx context.Context, kind stores.Kind, size int) []Result {
	cfg := r.cfg
	n := cfg.keys(size)
	var results []Result
	skip := func(workload string, g, procs int, why string) {
		results = append(results, Result{
			Store: kind.Name, Workload: workload, ValueSize: size,
			Goroutines: g, Processes: procs,
			BytesWrittenPerOp: -1, DiskUsed: -1, Skipped: why,
		})
		r.prog.cellDone(fmt.Sprintf("%s %s %dB g=%d: skipped: %s", kind.Name, workload, size, g, why))
	}
	skipAll := func(why string) {
		for _, w := range cfg.workloads {
			switch w {
			case "put", "get-hot", "mixed":
				for _, g := range cfg.goroutines {
					skip(w, g, 1, why)
				}
			case "get-miss":
				skip(w, 1, 1, why)
			case "mixed-proc":
				skip(w, 1, childProcs, why)
			}
		}
	}
	if !slices.ContainsFunc(cfg.workloads, func(w string) bool { return w != "capacity" && w != "get-hot-paired" }) {
		return nil
	}

	st, dir, closeFn, err := r.openFresh(ctx, kind, size)
	if err != nil {
		r.prog.logf("ERROR %s %dB: %v", kind.Name, size, err)
		skipAll(err.Error())
		return results
	}
	defer closeFn()
	codec := newCodec(r.pool, size)
	newErrs := func(workload string, g int) *errLog {
		return &errLog{logf: r.prog.logf, prefix: fmt.Sprintf("%s %s %dB g=%d", kind.Name, workload, size, g)}
	}
	emit := func(workload string, g, procs int, o *cellOutcome) {
		res := o.result(kind, workload, size, g, procs)
		res.DiskUsed = storeDiskUsed(st, dir)
		res.DataBytes = int64(n) * int64(size)
		results = append(results, res)
		r.prog.cellDone(summary(res))
		runtime.GC()
		settle(dir)
	}

	// Every cell starts with the filesystem's dirty pages written back (see
	// settle); the load after the open, too.
	settle(dir)
	// put (and the load)
	if cfg.wants("put") && slices.Contains(cfg.goroutines, 1) {
		emit("put", 1, 1, cellLoad(ctx, st, codec, newErrs("put", 1), n))
	} else {
		cellLoad(ctx, st, codec, newErrs("load", 1), n)
		runtime.GC()
		settle(dir)
	}
	if cfg.wants("put") {
		for _, g := range cfg.goroutines {
			if g != 1 {
				emit("put", g, 1, cellReput(ctx, st, codec, newErrs("put", g), n, g, cfg.duration))
			}
		}
	}
	if cfg.wants("get-hot") {
		warmErrs := warm(ctx, st, codec, newErrs("get-hot warm-up", 1), n)
		settle(dir)
		time.Sleep(cfg.warmPause()) // see run.go, "How a cell is measured"
		for i, g := range cfg.goroutines {
			o := cellGetHot(ctx, st, codec, newErrs("get-hot", g), n, g, cfg.duration)
			if i == 0 {
				o.errors += warmErrs // the warm-up's reads are checked too
			}
			emit("get-hot", g, 1, o)
		}
	}
	if cfg.wants("get-miss") {
		emit("get-miss", 1, 1, cellGetMiss(ctx, st, codec, newErrs("get-miss", 1), n, cfg.duration))
	}
	if cfg.wants("mixed") {
		for _, g := range cfg.goroutines {
			emit("mixed", g, 1, cellMixed(ctx, st, codec, newErrs("mixed", g), n, g, cfg.duration))
		}
	}
	if cfg.wants("mixed-proc") {
		if !kind.MultiProcess {
			skip("mixed-proc", 1, childProcs, "one process per store: "+singleProcessWhy(kind))
		} else {
			spec := childSpec{
				Store: kind.Name, Dir: dir, MaxValue: size, ValueSize: size,
				Keys: n, PoolSize: len(r.pool), Duration: cfg.duration,
			}
			emit("mixed-proc", 1, childProcs, cellMixedProc(ctx, st, spec, r.prog.logf))
		}
	}
	return results
}

// singleProcessWhy says why a store cannot be shared by processes.
func singleProcessWhy(kind stores.Kind) string {
	switch kind.Name {
	case "raw":
		return "the key-to-slot map lives in the opening process's memory"
	case "bbolt":
		return "bbolt takes an exclusive flock on its file; a second process blocks in Open"
	}
	return "the adapter says it is not multi-process (Kind.MultiProcess false)"
}

// summary is one line about a result, for the log.
func summary(r Result) string {
	s := fmt.Sprintf("%s %s %dB g=%d", r.Store, r.Workload, r.ValueSize, r.Goroutines)
	if r.Processes > 1 {
		s += fmt.Sprintf(" p=%d", r.Processes)
	}
	s += fmt.Sprintf(": %d ops %.0f ops/s %.1f MB/s p50 %s p99 %s",
		r.Ops, r.OpsPerSec, r.MBPerSec, time.Duration(r.P50Nanos), time.Duration(r.P99Nanos))
	if r.Errors > 0 {
		s += fmt.Sprintf(" ERRORS %d", r.Errors)
	}
	return s
}

// capacity fills a bounded store with twice its capacity while re-reading a
// hot set.
//
// Capacity is half the data of a (store, size) run (keys(size)*size/2), but
// at least capFloor (8 MiB) so possum's fixed overhead (manifest and WAL)
// fits; the run then puts 2*capacity/size keys, in order, the hot set (the
// first 10% of keys) first. After every put it gets one hot key, round-robin
// over the hot keys put so far (a miss there is eviction, not an error; a
// wrong value is an error). DiskUsed is sampled about every 2% of the puts
// (and before the first): st_blocks of the store's directory, except for a
// store with a server (memcached), where it is the server's VmRSS from
// /proc/PID/status. HotSurvived counts the hot keys that read back correct at
// the end.
func (r *runner) capacity(ctx context.Context, kind stores.Kind, size int) CapacityRun {
	cr := CapacityRun{Store: kind.Name, ValueSize: size}
	done := func(line string) CapacityRun {
		r.prog.cellDone(fmt.Sprintf("%s capacity %dB: %s", kind.Name, size, line))
		runtime.GC()
		return cr
	}
	if !kind.Bounded {
		cr.Skipped = "unbounded: the store does not evict, so it has no capacity to fill"
		return done("skipped: " + cr.Skipped)
	}
	capacity := max(int64(r.cfg.keys(size))*int64(size)/2, capFloor)
	n := int((2*capacity + int64(size) - 1) / int64(size))
	hot := max(1, n/10)
	cr.Capacity = capacity
	cr.DataBytes = int64(n) * int64(size)
	cr.HotKeys = hot

	dir, err := os.MkdirTemp(r.base, fmt.Sprintf("%s-cap-%d-", kind.Name, size))
	if err != nil {
		cr.Skipped = "could not make its directory: " + err.Error()
		return done("skipped: " + cr.Skipped)
	}
	defer os.RemoveAll(dir)
	st, err := kind.Open(ctx, stores.Config{Dir: dir, Capacity: capacity, MaxValue: size})
	if err != nil {
		r.prog.logf("ERROR %s capacity %dB: open: %v", kind.Name, size, err)
		cr.Skipped = "could not open: " + err.Error()
		return done("skipped: " + cr.Skipped)
	}
	defer st.Close()
	pid := serverPID(st)
	used := func() int64 {
		if pid > 0 {
			return rssBytes(pid)
		}
		return diskUsed(dir)
	}
	errs := &errLog{logf: r.prog.logf, prefix: fmt.Sprintf("%s capacity %dB", kind.Name, size)}
	w := newWorker(ctx, st, newCodec(r.pool, size), errs, 7, 0)
	t0 := time.Now()
	sample := func(written int64) {
		cr.Samples = append(cr.Samples, CapacitySample{
			Seconds: time.Since(t0).Seconds(), Written: written, DiskUsed: used(),
		})
	}
	settle(dir)
	sample(0)
	every := max(1, n/50)
	hotHits := 0
	for i := 0; i < n && ctx.Err() == nil; i++ {
		w.put(keyName(i), 0)
		if res, _ := w.get(keyName(i % min(i+1, hot))); res == found {
			hotHits++
		}
		if (i+1)%every == 0 || i == n-1 {
			sample(int64(i+1) * int64(size))
		}
	}
	for j := 0; j < hot; j++ {
		if res, _ := w.get(keyName(j)); res == found {
			cr.HotSurvived++
		}
	}
	cr.Errors = w.errors
	last := cr.Samples[len(cr.Samples)-1]
	return done(fmt.Sprintf("capacity %d, %d keys, used at end %d, hot gets hit %d of %d, hot survived %d of %d, errors %d",
		capacity, n, last.DiskUsed, hotHits, n, cr.HotSurvived, hot, cr.Errors))
}
