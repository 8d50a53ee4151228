package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/seed475afdc4/possum/bench/stores"
)

// The paired get-hot measurement (workload "get-hot-paired").
//
// The get-hot cells of different stores run minutes apart, one store after
// the other, and this machine's speed drifts over minutes: raw's own
// 1-goroutine 4 KiB cell has measured 580k to 1.03M reads/s in runs of the
// same code. A ratio of two such cells carries that drift. So the ratios of
// the hot-read targets come from a paired measurement instead: possum and
// its reference (raw) are both opened, loaded and warmed as for get-hot,
// then read on one goroutine in alternating slices (raw, possum; then
// possum, raw; ...), the same uniformly random keys in every slice. Each
// pair of adjacent slices gives one ratio, and the report takes the median
// of them, with their range. Each slice is measured exactly like a get-hot
// cell (cellGetHot: per-call timing, values checked).

// pairedRef is the store possum is paired with.
const pairedRef = "raw"

// pairedPlan is how many pairs of slices, and how long each slice.
func (c *config) pairedPlan() (pairs int, slice time.Duration) {
	if c.quick {
		return 4, 50 * time.Millisecond
	}
	return 12, 250 * time.Millisecond
}

// wantsPaired says whether the run makes paired measurements: the workload
// is selected and both possum and its reference are among the stores.
func (c *config) wantsPaired() bool {
	has := func(name string) bool {
		return slices.ContainsFunc(c.kinds, func(k stores.Kind) bool { return k.Name == name })
	}
	return c.wants("get-hot-paired") && has("possum") && has(pairedRef)
}

// openFresh opens a store of kind in a new directory under the run's base;
// close closes it and removes the directory.
func (r *runner) openFresh(ctx context.Context, kind stores.Kind, size int) (st stores.Store, dir string, closeFn func(), err error) {
	dir, err = os.MkdirTemp(r.base, fmt.Sprintf("%s-%d-", kind.Name, size))
	if err != nil {
		return nil, "", nil, fmt.Errorf("could not make its directory: %w", err)
	}
	st, err = kind.Open(ctx, stores.Config{Dir: dir, MaxValue: size})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, fmt.Errorf("could not open: %w", err)
	}
	closeFn = func() {
		if err := st.Close(); err != nil {
			r.prog.logf("ERROR %s %dB: close: %v", kind.Name, size, err)
		}
		os.RemoveAll(dir)
	}
	return st, dir, closeFn, nil
}

// paired measures possum against pairedRef at one value size.
func (r *runner) paired(ctx context.Context, size int) PairedRun {
	n := r.cfg.keys(size)
	pairs, slice := r.cfg.pairedPlan()
	pr := PairedRun{Store: "possum", Against: pairedRef, ValueSize: size, Keys: n, SliceSeconds: slice.Seconds()}
	done := func() PairedRun {
		line := "skipped: " + pr.Skipped
		if pr.Skipped == "" {
			line = pr.summary()
		}
		r.prog.cellDone(fmt.Sprintf("possum get-hot-paired %dB g=1: %s", size, line))
		runtime.GC()
		return pr
	}
	codec := newCodec(r.pool, size)
	// sides[0] is the reference, sides[1] possum.
	type side struct {
		st   stores.Store
		dir  string
		errs *errLog
		ops  []float64 // reads/s of each slice
		hist *hdrhistogram.Histogram
	}
	var sides []*side
	for _, name := range []string{pairedRef, "possum"} {
		kind, _ := stores.ByName(name)
		st, dir, closeFn, err := r.openFresh(ctx, kind, size)
		if err != nil {
			r.prog.logf("ERROR %s %dB: %v", name, size, err)
			pr.Skipped = name + ": " + err.Error()
			return done()
		}
		defer closeFn()
		sides = append(sides, &side{st: st, dir: dir, hist: newHist(),
			errs: &errLog{logf: r.prog.logf, prefix: fmt.Sprintf("%s get-hot-paired %dB g=1", name, size)}})
	}
	// Load and warm both, as storeSize does for get-hot.
	for _, s := range sides {
		settle(s.dir)
		pr.Errors += cellLoad(ctx, s.st, codec, s.errs, n).errors
		runtime.GC()
		settle(s.dir)
		pr.Errors += warm(ctx, s.st, codec, s.errs, n)
		settle(s.dir)
	}
	time.Sleep(r.cfg.warmPause())
	for i := range pairs {
		order := sides
		if i%2 == 1 {
			order = []*side{sides[1], sides[0]}
		}
		for _, s := range order {
			o := cellGetHot(ctx, s.st, codec, s.errs, n, 1, slice)
			rate := 0.0
			if o.seconds > 0 {
				rate = float64(o.ops) / o.seconds
			}
			s.ops = append(s.ops, rate)
			s.hist.Merge(o.hist)
			pr.Errors += o.errors
		}
	}
	ref, p := sides[0], sides[1]
	pr.AgainstOps, pr.StoreOps = ref.ops, p.ops
	if ref.hist.TotalCount() > 0 && p.hist.TotalCount() > 0 {
		pr.AgainstP50, pr.AgainstP99 = ref.hist.ValueAtQuantile(50), ref.hist.ValueAtQuantile(99)
		pr.StoreP50, pr.StoreP99 = p.hist.ValueAtQuantile(50), p.hist.ValueAtQuantile(99)
	}
	if ctx.Err() != nil {
		pr.Skipped = "interrupted"
	}
	return done()
}

// summary is one line about a paired run, for the log.
func (p *PairedRun) summary() string {
	med, lo, hi := p.Ratio()
	s := fmt.Sprintf("%d pairs of %s: %.2fx %s (%.2fx to %.2fx); possum %.0f ops/s p50 %s p99 %s, %s %.0f ops/s p50 %s p99 %s",
		len(p.StoreOps), time.Duration(p.SliceSeconds*float64(time.Second)), med, p.Against, lo, hi,
		median(p.StoreOps), time.Duration(p.StoreP50), time.Duration(p.StoreP99),
		p.Against, median(p.AgainstOps), time.Duration(p.AgainstP50), time.Duration(p.AgainstP99))
	if p.Errors > 0 {
		s += fmt.Sprintf(" ERRORS %d", p.Errors)
	}
	return s
}

// Ratios are the per-pair ratios of possum's reads/s to the reference's,
// for the pairs where both slices measured something.
func (p *PairedRun) Ratios() []float64 {
	var rs []float64
	for i := range min(len(p.StoreOps), len(p.AgainstOps)) {
		if p.StoreOps[i] > 0 && p.AgainstOps[i] > 0 {
			rs = append(rs, p.StoreOps[i]/p.AgainstOps[i])
		}
	}
	return rs
}

// Ratio is the median of Ratios and their range; zeros when there are none.
func (p *PairedRun) Ratio() (med, lo, hi float64) {
	rs := p.Ratios()
	if len(rs) == 0 {
		return 0, 0, 0
	}
	return median(rs), slices.Min(rs), slices.Max(rs)
}
