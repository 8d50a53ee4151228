package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// res builds a result; ops/s given, MB/s derived.
func res(store, workload string, size, goroutines int, ops float64) Result {
	return Result{
		Store: store, Workload: workload, ValueSize: size, Goroutines: goroutines, Processes: 1,
		Ops: int64(ops * 2), Seconds: 2, OpsPerSec: ops, MBPerSec: ops * float64(size) / 1e6,
		P50Nanos: int64(1e9 / ops), P99Nanos: int64(3e9 / ops),
		BytesWrittenPerOp: float64(size) * 1.1, DiskUsed: int64(size) * 1000, DataBytes: int64(size) * 1000,
	}
}

func syntheticPeers() Run {
	r := Run{
		Label: "peers", FS: "ext4", Dir: "/tmp/x", Command: "possum-bench -label peers -quick", Quick: true,
		Started: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Seconds: 61,
		Machine: Machine{CPU: "Test CPU", Cores: 2, MemBytes: 8 << 30, Kernel: "6.18", GoVersion: "go1.26.8", OS: "Debian"},
	}
	sizes := []int{100, 4 << 10, 64 << 10, 1 << 20}
	for _, wl := range []string{"put", "get-hot", "get-miss"} {
		for _, g := range []int{1, 8} {
			for _, s := range sizes {
				r.Results = append(r.Results,
					res("raw", wl, s, g, 100),
					res("possum", wl, s, g, 70),
					res("memcached", wl, s, g, 150),
					res("diskv", wl, s, g, 35),
				)
				sq := res("squirrel", wl, s, g, 50)
				if s == 1<<20 {
					sq = Result{Store: "squirrel", Workload: wl, ValueSize: s, Goroutines: g, Processes: 1, Skipped: "values over 512 KiB are not supported"}
				}
				r.Results = append(r.Results, sq)
				if wl == "get-miss" && s == 100 && g == 1 {
					r.Results[len(r.Results)-4].Errors = 1 // memcached
				}
				bb := res("bbolt", wl, s, g, 20)
				if wl == "get-hot" && s == 4<<10 && g == 1 {
					bb.Errors = 3
				}
				r.Results = append(r.Results, bb)
			}
		}
	}
	mp := res("possum", "mixed-proc", 4<<10, 1, 500)
	mp.Processes = 4
	r.Results = append(r.Results, mp)
	// possum's disk use over the bound in one cell.
	for i := range r.Results {
		x := &r.Results[i]
		if x.Store == "possum" && x.Workload == "put" && x.ValueSize == 100 && x.Goroutines == 8 {
			x.DiskUsed = x.DataBytes * 2
		}
	}
	var samples []CapacitySample
	for i := range 20 {
		samples = append(samples, CapacitySample{Seconds: float64(i), Written: int64(i) << 20, DiskUsed: min(int64(i)<<20, 10<<20)})
	}
	r.Capacity = []CapacityRun{
		{Store: "possum", ValueSize: 64 << 10, Capacity: 10 << 20, DataBytes: 20 << 20, Samples: samples, HotKeys: 10, HotSurvived: 10},
		{Store: "squirrel", ValueSize: 64 << 10, Capacity: 10 << 20, DataBytes: 20 << 20, Samples: samples, HotKeys: 10, HotSurvived: 8},
		{Store: "memcached", ValueSize: 64 << 10, Skipped: "memory only"},
	}
	r.Paired = []PairedRun{
		syntheticPaired(100, 0.9),
		syntheticPaired(4<<10, 0.8),
	}
	return r
}

// syntheticPaired is a paired run of 3 pairs whose ratios are x-0.1, x and
// x+0.05.
func syntheticPaired(size int, x float64) PairedRun {
	return PairedRun{Store: "possum", Against: "raw", ValueSize: size, Keys: 100, SliceSeconds: 0.25,
		StoreOps: []float64{(x - 0.1) * 1000, x * 1000, (x + 0.05) * 1000}, AgainstOps: []float64{1000, 1000, 1000},
		StoreP50: 1200, StoreP99: 2500, AgainstP50: 1000, AgainstP99: 2000}
}

func syntheticFS(label string, scale float64) Run {
	r := Run{Label: label, FS: label, Command: "possum-bench -label " + label, Started: time.Date(2026, 5, 1, 13, 0, 0, 0, time.UTC),
		Machine: Machine{CPU: "Test CPU", Cores: 2, MemBytes: 8 << 30, Kernel: "6.18", GoVersion: "go1.26.8", OS: "Debian"}}
	for _, wl := range []string{"put", "get-hot"} {
		for _, s := range []int{100, 64 << 10} {
			r.Results = append(r.Results, res("raw", wl, s, 1, 100*scale), res("possum", wl, s, 1, 50*scale))
		}
	}
	r.Paired = []PairedRun{syntheticPaired(100, 0.5*scale)}
	return r
}

const gobenchDefault = `# command: go test -run '^$' -bench . -benchtime=100x -count=3 .
goos: linux
goarch: amd64
pkg: github.com/seed475afdc4/possum
cpu: Intel(R) Xeon(R) Processor
BenchmarkGet/100B-2              	     100	     15500 ns/op	   6.45 MB/s	      0 B/op	       0 allocs/op
BenchmarkGet/100B-2              	     100	     15000 ns/op	   6.60 MB/s	      0 B/op	       0 allocs/op
BenchmarkGet/100B-2              	     100	     99999 ns/op	   1.00 MB/s	      0 B/op	       0 allocs/op
BenchmarkPut/1MiB/goroutines=8-2 	     100	    666403 ns/op	1573.49 MB/s	   2048 B/op	      12 allocs/op
BenchmarkOpen1MiB-2
    bench_test.go:250: some log line
     100	     23723 ns/op	         0 clone-share
--- SKIP: BenchmarkFSReflink
    fs_test.go:12: reflink needs xfs or btrfs
PASS
ok  	github.com/seed475afdc4/possum	8.2s
`

// -v output: a skip's reason comes before "--- SKIP:".
const gobenchVerbose = `goos: linux
BenchmarkFSOpen1MiB
    bench_fs_test.go:95: filesystem: ext4 (/tmp/BenchmarkFSOpen1MiB2117012459/001)
BenchmarkFSOpen1MiB-2    	       5	     26540 ns/op	         0 clones/op	         1.000 locks/op
BenchmarkFSClone1MiB
BenchmarkFSClone1MiB/tmpfile
    bench_fs_test.go:129: no clone on ext4: clone: unsupported operation (operation not supported)
--- SKIP: BenchmarkFSClone1MiB/tmpfile
BenchmarkFSClone1MiB/same-dst
    bench_fs_test.go:147: no clone on ext4
--- SKIP: BenchmarkFSClone1MiB/same-dst
PASS
`

const gobenchXFS = `# command: TMPDIR=/mnt GOTMPDIR=/mnt go test -run '^$' -bench BenchmarkFS -benchtime=100x .
goos: linux
BenchmarkFSClone/1MiB-2   	     100	     37600 ns/op
BenchmarkFSPunch-2        	     100	    120000 ns/op
`

const gobenchExt4 = `# command: TMPDIR=/mnt GOTMPDIR=/mnt go test -run '^$' -bench BenchmarkFS -benchtime=100x .
BenchmarkFSPunch-2        	     100	     99000 ns/op
--- SKIP: BenchmarkFSClone/1MiB
    fs_test.go:40: no reflink on ext4
`

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, filepath.Join(out, "peers.json"), syntheticPeers())
	writeJSON(t, filepath.Join(out, "ext4.json"), syntheticFS("ext4", 1))
	writeJSON(t, filepath.Join(out, "xfs.json"), syntheticFS("xfs", 2))
	for name, text := range map[string]string{"default": gobenchDefault, "xfs": gobenchXFS, "ext4": gobenchExt4} {
		if err := os.WriteFile(filepath.Join(out, "gobench-"+name+".txt"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commentary := "# Commentary\n\nmemcached keeps its values in RAM.\n"
	if err := os.WriteFile(filepath.Join(dir, "commentary.md"), []byte(commentary), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := reportPaths{
		Out:        out,
		Results:    filepath.Join(dir, "RESULTS.md"),
		Charts:     filepath.Join(dir, "charts"),
		Commentary: filepath.Join(dir, "commentary.md"),
	}
	if err := writeReportTo(paths); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(paths.Results)
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	if testing.Verbose() {
		t.Log("\n" + md)
	}
	first, _, _ := strings.Cut(md, "\n")
	if !strings.Contains(first, "Generated by bench/run.sh") || !strings.Contains(first, "Do not edit by hand") {
		t.Errorf("first line does not say it is generated: %q", first)
	}
	for _, want := range []string{
		"Test CPU, 2 cores",
		"`possum-bench -label peers -quick`",
		"**Quick run:**",
		"### put", "#### put, 1 goroutine", "#### get-hot, 8 goroutines", "mixed-proc, 4 processes × 1 goroutine",
		"| store | 100 B | 4 KiB | 64 KiB | 1 MiB |",
		// possum 70 ops/s against raw 100: 0.70x raw, 1.00x possum.
		"| **possum** | 70.0 /s · 0.70x raw · 1.00x possum |",
		"| **raw** | 100 /s · 1.00x raw · 1.43x possum |",
		// MB/s from 64 KiB on.
		"70.0 /s (73.4 MB/s) · 0.70x raw",
		// Latencies: p50 / p99.
		"14.3 ms / 42.9 ms",
		// Errors: in the cell, and in the warning at the top.
		"**⚠ 3 errors**", "**⚠ 1 errors**", "> [!WARNING]", "peers: bbolt get-hot 4 KiB, 1 goroutine: **3 errors**",
		// Skipped: a dash with a footnote giving the reason.
		"]: squirrel: values over 512 KiB are not supported",
		// Bytes written and disk use.
		"## Bytes written and disk use", "110 B/op (1.10x value) · disk 1.00x data",
		"**possum's disk used after puts ≤ 1.05x the data: no**", "put, 8 goroutines 100 B: 2.00x",
		// Slower than a peer: memcached (150) beats possum (70); diskv does not.
		"## Where possum is slower than a peer",
		"| put, 1 goroutine | 100 B | 70.0 /s | memcached **2.14x** (150 /s) |",
		"| get-miss, 1 goroutine | 4 KiB | 70.0 /s | memcached **2.14x** (150 /s) |",
		// Capacity.
		"## Capacity", "| **possum** | 64 KiB | 10.0 MiB | 20.0 MiB | 10.0 MiB | 1.000 | 10.0 MiB | 1.000 | 10 of 10 | 0 |",
		"**8 of 10**", "skipped: memory only",
		// Filesystem matrix.
		"## Filesystem matrix", "| value size | ext4 | xfs |", "| 100 B | 50.0 /s · 0.50x raw · disk 1.00x data | 100 /s · 0.50x raw · disk 1.00x data |",
		// Paired get-hot: in the peer comparison, the targets and the matrix.
		"### get-hot, paired with raw", "| 4 KiB | 3 × 250 ms | 100 | **0.80x** (0.70x to 0.85x) | 800 /s · 1.20 µs / 2.50 µs | 1.00 k/s · 1.00 µs / 2.00 µs |",
		"| Get 4 KiB, hot, 1 goroutine | ≥ 0.7x raw | 0.80x: median of 3 pairs of alternating 250 ms slices (0.70x to 0.85x), 800 /s against 1.00 k/s; the sequential get-hot cells: 0.70x | yes |",
		"| 100 B | **0.50x** (0.40x to 0.55x) | **1.00x** (0.90x to 1.05x) |",
		"### Filesystem costs (Go benchmarks)", "| `BenchmarkFSPunch` | 99.0 µs | 120 µs |",
		"ext4, BenchmarkFSClone/1MiB: no reflink on ext4",
		// Go benchmarks: the median of three samples, a split line, a custom metric, a skip.
		"## possum's Go benchmarks", "| `BenchmarkGet/100B` | 15.5 µs | 6.45 MB/s | 0 B | 0 |  |",
		"| `BenchmarkPut/1MiB/goroutines=8` | 666 µs | 1573 MB/s | 2.00 KiB | 12 |  |",
		"| `BenchmarkOpen1MiB` | 23.7 µs |  |  |  | 0 clone-share |",
		"BenchmarkFSReflink: reflink needs xfs or btrfs",
		// Commentary, verbatim, its own title dropped.
		"## Commentary", "memcached keeps its values in RAM.",
		// Charts linked relative to RESULTS.md.
		"(charts/throughput-put.png)", "(charts/capacity.png)", "(charts/fs-matrix.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "\n# Commentary\n") {
		t.Error("commentary's own title was kept")
	}
	// A cell with errors takes part in no ratio, and diskv (slower) is not listed.
	if strings.Contains(md, "diskv **") || strings.Contains(md, "bbolt **") {
		t.Error("diskv listed as faster than possum")
	}
	if strings.Contains(md, "| get-miss, 1 goroutine | 100 B |") {
		t.Error("a cell with errors is listed as faster than possum")
	}
	// Footnotes: every reference has a definition.
	for i := 1; strings.Contains(md, "[^"+strconv.Itoa(i)+"]"); i++ {
		if !strings.Contains(md, "[^"+strconv.Itoa(i)+"]: ") {
			t.Errorf("footnote %d has no definition", i)
		}
	}
	for _, name := range []string{"throughput-put.png", "throughput-get-hot.png", "throughput-get-miss.png", "throughput-mixed-proc.png", "capacity.png", "fs-matrix.png"} {
		f, err := os.Open(filepath.Join(paths.Charts, name))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
			t.Errorf("%s: %v is too small", name, b)
		}
	}
}

func TestReportRatio(t *testing.T) {
	for _, c := range []struct {
		a, b float64
		want string
	}{{70, 100, "0.70x"}, {100, 70, "1.43x"}, {1234, 100, "12.3x"}, {4, 100, "0.040x"}, {3, 1000, "0.003x"}, {1, 2000, "0.0005x"}, {0, 100, ""}, {100, 0, ""}} {
		if got := ratio(c.a, c.b); got != c.want {
			t.Errorf("ratio(%v, %v) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestReportGoBenchParse(t *testing.T) {
	gb, err := parseGoBench("default", strings.NewReader(gobenchDefault))
	if err != nil {
		t.Fatal(err)
	}
	if gb.Command != "go test -run '^$' -bench . -benchtime=100x -count=3 ." {
		t.Errorf("command %q", gb.Command)
	}
	if gb.Config["cpu"] != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpu %q", gb.Config["cpu"])
	}
	get := gb.find("BenchmarkGet/100B")
	if get == nil || get.Samples != 3 || get.Values["ns/op"] != 15500 {
		t.Errorf("BenchmarkGet/100B: %+v", get)
	}
	open := gb.find("BenchmarkOpen1MiB")
	if open == nil || open.Values["ns/op"] != 23723 || open.Values["clone-share"] != 0 {
		t.Errorf("BenchmarkOpen1MiB (name and figures on separate lines): %+v", open)
	}
	if gb.Skips["BenchmarkFSReflink"] != "reflink needs xfs or btrfs" {
		t.Errorf("skips %q", gb.Skips)
	}
	if len(gb.Fails) != 0 {
		t.Errorf("fails %q", gb.Fails)
	}
	v, err := parseGoBench("ext4", strings.NewReader(gobenchVerbose))
	if err != nil {
		t.Fatal(err)
	}
	if o := v.find("BenchmarkFSOpen1MiB"); o == nil || o.Values["ns/op"] != 26540 || o.Values["locks/op"] != 1 {
		t.Errorf("-v: BenchmarkFSOpen1MiB: %+v", o)
	}
	if v.Skips["BenchmarkFSClone1MiB/tmpfile"] != "no clone on ext4: clone: unsupported operation (operation not supported)" ||
		v.Skips["BenchmarkFSClone1MiB/same-dst"] != "no clone on ext4" || len(v.Skips) != 2 {
		t.Errorf("-v: skips %q", v.Skips)
	}
	fail, _ := parseGoBench("x", strings.NewReader("--- FAIL: BenchmarkX-2\n    x_test.go:1: boom\nFAIL\n"))
	if len(fail.Fails) == 0 || fail.Fails[0] != "BenchmarkX" {
		t.Errorf("fails %q", fail.Fails)
	}
}

func TestReportEmpty(t *testing.T) {
	dir := t.TempDir()
	err := writeReportTo(reportPaths{Out: dir, Results: filepath.Join(dir, "R.md"), Charts: filepath.Join(dir, "c")})
	if err == nil {
		t.Error("no error for an empty output directory")
	}
}
