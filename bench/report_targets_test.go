package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReportTargets(t *testing.T) {
	cell := func(store, workload string, size, g, p int, ops float64) Result {
		return Result{Store: store, Workload: workload, ValueSize: size, Goroutines: g, Processes: p,
			Ops: 1000, Seconds: 1, OpsPerSec: ops, P50Nanos: 1000, P99Nanos: 5000,
			DiskUsed: 1060, DataBytes: 1000}
	}
	run := &Run{Label: peersLabel, Results: []Result{
		cell("raw", "get-hot", 4096, 1, 1, 1000),
		cell("possum", "get-hot", 4096, 1, 1, 800), // 0.80x: met
		cell("squirrel", "put", 4096, 8, 1, 100),
		cell("possum", "put", 4096, 8, 1, 300), // 3x of 5x: not met
		cell("possum", "put", 4096, 1, 1, 50),  // disk 1.06x: not met
	}}
	in := &reportInput{Runs: []*Run{run}}
	ts := hotTargets(in)
	get := func(what, goal string) target {
		for _, x := range ts {
			if x.what == what && strings.Contains(x.goal, goal) {
				return x
			}
		}
		t.Fatalf("no target %q %q", what, goal)
		return target{}
	}
	if x := get("Get 4 KiB, hot, 1 goroutine", "raw"); x.met != "yes" || !strings.HasPrefix(x.measured, "0.80x") {
		t.Errorf("Get 4 KiB: %+v", x)
	}
	if x := get("Put 4 KiB, 8 goroutines", "squirrel"); x.met != "**no**" || !strings.HasPrefix(x.measured, "3.00x") {
		t.Errorf("Put 4 KiB: %+v", x)
	}
	if x := get("Get 100 B, hot, 1 goroutine", "raw"); x.met != "?" {
		t.Errorf("a target without cells: %+v", x)
	}
	if x := get("disk used after puts, 4 KiB values", "1.05"); x.met != "**no**" {
		t.Errorf("disk: %+v", x)
	}
	// A paired measurement, when there is one, decides the hot-read ratio:
	// the median of its pairs (0.60x), not the cells (0.80x).
	run.Paired = []PairedRun{{Store: "possum", Against: "raw", ValueSize: 4096, Keys: 16, SliceSeconds: 0.25,
		StoreOps:   []float64{500, 600, 700, 300},
		AgainstOps: []float64{1000, 1000, 1000, 1000}, // ratios 0.5 0.6 0.7 0.3
		StoreP50:   1000, StoreP99: 2000, AgainstP50: 900, AgainstP99: 1800}}
	ts = hotTargets(in)
	if x := get("Get 4 KiB, hot, 1 goroutine", "raw"); x.met != "**no**" ||
		!strings.HasPrefix(x.measured, "0.55x: median of 4 pairs") || !strings.Contains(x.measured, "(0.30x to 0.70x)") ||
		!strings.Contains(x.measured, "sequential get-hot cells: 0.80x") {
		t.Errorf("Get 4 KiB, paired: %+v", x)
	}
	run.Paired[0].Errors = 1 // an invalid paired run falls back to the cells
	ts = hotTargets(in)
	if x := get("Get 4 KiB, hot, 1 goroutine", "raw"); x.met != "yes" || !strings.HasPrefix(x.measured, "0.80x (") {
		t.Errorf("Get 4 KiB, paired run with errors: %+v", x)
	}
	var pw bytes.Buffer
	writePaired(&pw, run)
	if !strings.Contains(pw.String(), "### get-hot, paired with raw") || !strings.Contains(pw.String(), "**⚠ 1 errors**") {
		t.Errorf("paired section:\n%s", pw.String())
	}
	run.Paired[0].Errors = 0
	pw.Reset()
	writePaired(&pw, run)
	if !strings.Contains(pw.String(), "| 4 KiB | 4 × 250 ms | 16 | **0.55x** (0.30x to 0.70x) |") {
		t.Errorf("paired section:\n%s", pw.String())
	}

	var w bytes.Buffer
	writeTargets(&w, in)
	if !strings.Contains(w.String(), "## Hot-path targets") || !strings.Contains(w.String(), "| Get 4 KiB, hot, 1 goroutine |") {
		t.Errorf("targets table:\n%s", w.String())
	}
}
