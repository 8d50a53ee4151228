package main

import (
	"bytes"
	"fmt"
	"strings"
)

// The hot-path targets (issue 7), each computed from the run's own figures:
// a ratio between two cells measured in the same run, or an absolute bound.

// target is one row of the targets table.
type target struct {
	what     string // the workload
	goal     string // the target, in words
	measured string // what this run measured, or why it could not
	met      string // "yes", "**no**", or "?" when the cells are missing
}

// find returns the valid cell (store, workload, size, goroutines,
// processes) of r, or nil.
func find(r *Run, store, workload string, size, goroutines, processes int) *Result {
	if r == nil {
		return nil
	}
	for i := range r.Results {
		x := &r.Results[i]
		if x.Store == store && x.Workload == workload && x.ValueSize == size &&
			x.Goroutines == goroutines && x.Processes == processes && valid(x) {
			return x
		}
	}
	return nil
}

// ratioTarget compares possum's ops/s with other's in one cell.
func ratioTarget(r *Run, what, workload string, size, g, p int, other string, want float64) target {
	t := target{what: what, goal: fmt.Sprintf("≥ %.1fx %s", want, other)}
	a, b := find(r, "possum", workload, size, g, p), find(r, other, workload, size, g, p)
	if a == nil || b == nil || b.OpsPerSec == 0 {
		t.measured, t.met = "not in this run", "?"
		return t
	}
	x := a.OpsPerSec / b.OpsPerSec
	t.measured = fmt.Sprintf("%.2fx (%s against %s)", x, opsRate(a.OpsPerSec), opsRate(b.OpsPerSec))
	t.met = yesNo(x >= want)
	return t
}

// pairedTarget is a hot-read ratio target: from the run's paired
// measurement at size (the median of its per-pair ratios) when it has a
// valid one, else from the 1-goroutine get-hot cells, like ratioTarget.
func pairedTarget(r *Run, what string, size int, want float64) target {
	cells := ratioTarget(r, what, "get-hot", size, 1, 1, pairedRef, want)
	p := findPaired(r, size)
	if p == nil {
		return cells
	}
	med, lo, hi := p.Ratio()
	t := target{what: what, goal: cells.goal}
	t.measured = fmt.Sprintf("%.2fx: median of %d pairs of alternating %s slices (%.2fx to %.2fx), %s against %s",
		med, len(p.Ratios()), dur(p.SliceSeconds*1e9), lo, hi, opsRate(median(p.StoreOps)), opsRate(median(p.AgainstOps)))
	if cells.met != "?" {
		t.measured += "; the sequential get-hot cells: " + strings.SplitN(cells.measured, " (", 2)[0]
	}
	t.met = yesNo(med >= want)
	return t
}

// findPaired returns r's valid paired run at size, or nil.
func findPaired(r *Run, size int) *PairedRun {
	if r == nil {
		return nil
	}
	for i := range r.Paired {
		p := &r.Paired[i]
		if p.ValueSize == size && p.Skipped == "" && p.Errors == 0 && len(p.Ratios()) > 0 {
			return p
		}
	}
	return nil
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// hotTargets computes the targets from the peer run and the Go benchmarks
// of the filesystem matrix (Open of a 1 MiB value on ext4 and xfs).
func hotTargets(in *reportInput) []target {
	r := in.peers()
	var ts []target
	ts = append(ts,
		pairedTarget(r, "Get 4 KiB, hot, 1 goroutine", 4096, 0.7),
		pairedTarget(r, "Get 100 B, hot, 1 goroutine", 100, 0.5))
	p99 := target{what: "Get, hot, p99 (every size up to 64 KiB, 1 goroutine)", goal: "≤ 20 µs", measured: "not in this run", met: "?"}
	worst := int64(-1)
	for _, size := range []int{100, 4096, 65536} {
		if c := find(r, "possum", "get-hot", size, 1, 1); c != nil && c.P99Nanos > worst {
			worst = c.P99Nanos
		}
	}
	if worst >= 0 {
		p99.measured = "worst p99 " + dur(float64(worst))
		p99.met = yesNo(worst <= 20_000)
	}
	ts = append(ts, p99)
	if c := find(r, "possum", "get-miss", 4096, 1, 1); c != nil {
		ts = append(ts, target{what: "Get miss", goal: "at most one manifest lookup; cached negative answers",
			measured: fmt.Sprintf("one lookup per distinct missing key (%s, p50 %s); a repeated miss is answered from the location cache",
				opsRate(c.OpsPerSec), dur(float64(c.P50Nanos))), met: "yes"})
	}
	ts = append(ts,
		ratioTarget(r, "Put 4 KiB, 8 goroutines", "put", 4096, 8, 1, "squirrel", 5),
		ratioTarget(r, "Put 4 KiB, 1 goroutine", "put", 4096, 1, 1, "squirrel", 1.5),
		ratioTarget(r, "Put 1 MiB, 1 goroutine", "put", 1<<20, 1, 1, "raw", 0.6),
		ratioTarget(r, "mixed 90/10 zipf 4 KiB, 1 goroutine", "mixed", 4096, 1, 1, "squirrel", 10),
		ratioTarget(r, "mixed 90/10 zipf 4 KiB, 1 goroutine", "mixed", 4096, 1, 1, "diskv", 3),
		ratioTarget(r, "4 processes, mixed 4 KiB", "mixed-proc", 4096, 1, 4, "squirrel", 10))
	errs := target{what: "4 processes, mixed", goal: "no errors, no \"database is locked\"", measured: "not in this run", met: "?"}
	if r != nil {
		var n, cells int64
		for _, x := range r.Results {
			if x.Store == "possum" && x.Workload == "mixed-proc" && x.Skipped == "" {
				n += x.Errors
				cells++
			}
		}
		if cells > 0 {
			errs.measured = fmt.Sprintf("%d errors in %d cells", n, cells)
			errs.met = yesNo(n == 0)
		}
	}
	ts = append(ts, errs)
	for _, fs := range []struct{ label, path, goal string }{
		{"xfs", "clone", "≤ 40 µs"}, {"ext4", "lock", "≤ 10 µs"},
	} {
		t := target{what: "Open of a 1 MiB value, " + fs.path + " path (" + fs.label + ")", goal: fs.goal, measured: "not in this run", met: "?"}
		if g := in.goBench(fs.label); g != nil {
			if b := g.find("BenchmarkFSOpen1MiB"); b != nil {
				if ns, ok := b.Values["ns/op"]; ok {
					limit := 40_000.0
					if fs.path == "lock" {
						limit = 10_000
					}
					t.measured = dur(ns)
					t.met = yesNo(ns <= limit)
				}
			}
		}
		ts = append(ts, t)
	}
	disk := target{what: "disk used after puts, 4 KiB values", goal: "≤ 1.05x the data", measured: "not in this run", met: "?"}
	if c := find(r, "possum", "put", 4096, 1, 1); c != nil && c.DataBytes > 0 && c.DiskUsed >= 0 {
		x := float64(c.DiskUsed) / float64(c.DataBytes)
		disk.measured = fmt.Sprintf("%.3fx (%s on disk for %s)", x, iec(float64(c.DiskUsed)), iec(float64(c.DataBytes)))
		disk.met = yesNo(x <= 1.05)
	}
	ts = append(ts, disk)
	return ts
}

// writeTargets writes the targets table, if the run has any of its cells.
func writeTargets(w *bytes.Buffer, in *reportInput) {
	ts := hotTargets(in)
	some := false
	for _, t := range ts {
		if t.met != "?" {
			some = true
		}
	}
	if !some {
		return
	}
	w.WriteString("## Hot-path targets\n\n")
	w.WriteString("Each computed from this run's own cells (possum against the named store, same value size and concurrency); " +
		"the hot-read ratios from the paired measurement when the run has one (see [get-hot, paired](#get-hot-paired-with-raw)). " +
		"Why a target is not met is in the commentary at the end.\n\n")
	var rows [][]string
	for _, t := range ts {
		rows = append(rows, []string{t.what, t.goal, t.measured, t.met})
	}
	table(w, []string{"workload", "target", "measured", "met"}, rows)
	w.WriteString("\n")
}
