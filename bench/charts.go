package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Charts for RESULTS.md, as PNG: throughput per workload against value size
// (one line per store), the capacity runs (disk used against bytes written),
// and possum's throughput per filesystem.

// writeCharts writes the charts it has data for into dir and returns them
// by key ("throughput-put", "capacity", "fs-matrix") -> file name.
func writeCharts(in *reportInput, dir string) (map[string]string, error) {
	out := map[string]string{}
	save := func(key string, p *plot.Plot, w, h vg.Length) error {
		name := key + ".png"
		if err := savePNG(p, w, h, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("chart %s: %w", name, err)
		}
		out[key] = name
		return nil
	}
	if peers := in.peers(); peers != nil {
		gs := groups(peers)
		for _, wl := range workloadsOf(gs) {
			g := chartGroup(gs, wl)
			if g == nil {
				continue
			}
			if p := throughputPlot(g, storeColor); p != nil {
				if err := save("throughput-"+wl, p, 7*vg.Inch, 4.5*vg.Inch); err != nil {
					return nil, err
				}
			}
		}
	}
	var capRun *Run
	if p := in.peers(); p != nil && len(p.Capacity) > 0 {
		capRun = p
	} else {
		for _, r := range in.Runs {
			if len(r.Capacity) > 0 {
				capRun = r
				break
			}
		}
	}
	if capRun != nil {
		if p := capacityPlot(capRun); p != nil {
			if err := save("capacity", p, 7*vg.Inch, 4.5*vg.Inch); err != nil {
				return nil, err
			}
		}
	}
	if ps := fsMatrixPlots(in.matrix()); len(ps) > 0 {
		name := "fs-matrix.png"
		if err := saveTiled(ps, 5*vg.Inch*vg.Length(len(ps)), 4.5*vg.Inch, filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("chart %s: %w", name, err)
		}
		out["fs-matrix"] = name
	}
	return out, nil
}

func workloadsOf(gs []*group) []string {
	var ws []string
	for _, g := range gs {
		if !slices.Contains(ws, g.Workload) {
			ws = append(ws, g.Workload)
		}
	}
	return ws
}

// chartGroup picks the group a workload's chart shows: 1 goroutine (in the
// fewest processes) if there is one, else the least concurrent.
func chartGroup(gs []*group, workload string) *group {
	var best *group
	for _, g := range gs {
		if g.Workload != workload {
			continue
		}
		if best == nil || less(g, best) {
			best = g
		}
	}
	return best
}

func less(a, b *group) bool {
	if (a.Goroutines == 1) != (b.Goroutines == 1) {
		return a.Goroutines == 1
	}
	if a.Goroutines*a.Processes != b.Goroutines*b.Processes {
		return a.Goroutines*a.Processes < b.Goroutines*b.Processes
	}
	return a.Processes < b.Processes
}

// metric says what a workload's chart plots: MB/s, except for misses,
// which move no bytes.
func metric(g *group) (label string, f func(*Result) float64) {
	if g.Workload == "get-miss" {
		return "ops/s", func(r *Result) float64 { return r.OpsPerSec }
	}
	return "MB/s", func(r *Result) float64 { return r.MBPerSec }
}

func throughputPlot(g *group, colorOf func(string, int) color.Color) *plot.Plot {
	ylabel, y := metric(g)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: throughput by value size (%s, log scales)", g.title(), ylabel)
	p.X.Label.Text = "value size"
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	var xs, ys []float64
	n := 0
	for i, st := range g.Stores {
		var pts plotter.XYs
		for _, s := range g.Sizes {
			r := g.cell(st, s)
			if valid(r) && y(r) > 0 {
				pts = append(pts, plotter.XY{X: float64(s), Y: y(r)})
				ys = append(ys, y(r))
			}
		}
		if len(pts) == 0 {
			continue
		}
		for _, pt := range pts {
			xs = append(xs, pt.X)
		}
		if err := addLine(p, st, pts, colorOf(st, i), styleIndex(st, i)); err != nil {
			return nil
		}
		n++
	}
	if n == 0 {
		return nil
	}
	logAxis(&p.X, xs, sizeTicks(g.Sizes))
	logAxis(&p.Y, ys, siLogTicks{})
	return p
}

// addLine adds a line with points; i picks the dashes and the glyph.
func addLine(p *plot.Plot, name string, pts plotter.XYs, c color.Color, i int) error {
	l, sc, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	l.Dashes = plotutil.Dashes(i)
	sc.Color = c
	sc.Shape = plotutil.Shape(i)
	p.Add(l, sc)
	p.Legend.Add(name, l, sc)
	return nil
}

// logAxis sets a log scale on the axis, with a range that keeps a single
// value (or equal values) drawable.
func logAxis(a *plot.Axis, vs []float64, t plot.Ticker) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 0) {
		return
	}
	a.Scale = plot.LogScale{}
	a.Tick.Marker = t
	a.Min, a.Max = lo/1.25, hi*1.25
}

// sizeTicks labels the value sizes themselves.
func sizeTicks(sizes []int) plot.Ticker {
	var ts plot.ConstantTicks
	for _, s := range sizes {
		ts = append(ts, plot.Tick{Value: float64(s), Label: sizeName(s)})
	}
	return ts
}

// siLogTicks labels decades as 1, 10, 100, 1k, ..., with minor ticks.
type siLogTicks struct{}

func (siLogTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= 0 {
		return nil
	}
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		d := math.Pow(10, e)
		for i := 1; i < 10; i++ {
			v := d * float64(i)
			if v < lo/1.0001 || v > hi*1.0001 {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 {
				t.Label = decadeLabel(v)
			}
			ts = append(ts, t)
		}
	}
	// A range inside one decade would have no label: label its ends.
	labelled := 0
	for _, t := range ts {
		if t.Label != "" {
			labelled++
		}
	}
	if labelled < 2 {
		ts = append(ts, plot.Tick{Value: lo, Label: si(lo)}, plot.Tick{Value: hi, Label: si(hi)})
	}
	return ts
}

func decadeLabel(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.0fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}

// styleIndex is a store's index for dashes and glyphs, the same in every
// chart.
func styleIndex(name string, i int) int {
	if j := slices.Index(storeOrder, name); j >= 0 {
		return j
	}
	return len(storeOrder) + i
}

// storeColor gives each known store the same color in every chart.
func storeColor(name string, i int) color.Color {
	if j := slices.Index(storeOrder, name); j >= 0 {
		return plotutil.Color(j)
	}
	return plotutil.Color(len(storeOrder) + i)
}

func capacityPlot(r *Run) *plot.Plot {
	caps := append([]CapacityRun(nil), r.Capacity...)
	sl := orderedLess(storeOrder)
	sort.SliceStable(caps, func(i, j int) bool { return sl(caps[i].Store, caps[j].Store) })
	p := plot.New()
	p.Title.Text = "Capacity runs: disk used while writing twice the capacity"
	p.X.Label.Text = "value bytes written (MiB)"
	p.Y.Label.Text = "disk used (MiB); thin dotted: capacity"
	// The lines rise from the bottom left to their capacity: the legend goes
	// bottom right.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.YOffs = vg.Points(10)
	const mib = 1 << 20
	maxY := 0.0
	n := 0
	maxX := 0.0
	for _, c := range caps {
		for _, s := range c.Samples {
			maxX = max(maxX, float64(s.Written)/mib)
		}
	}
	for i, c := range caps {
		if c.Skipped != "" {
			continue
		}
		var pts plotter.XYs
		for _, s := range c.Samples {
			if s.DiskUsed >= 0 {
				pts = append(pts, plotter.XY{X: float64(s.Written) / mib, Y: float64(s.DiskUsed) / mib})
				maxY = max(maxY, float64(s.DiskUsed)/mib)
			}
		}
		if len(pts) == 0 {
			continue
		}
		col := storeColor(c.Store, i)
		l, err := plotter.NewLine(pts)
		if err != nil {
			continue
		}
		l.Color = col
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(styleIndex(c.Store, i))
		p.Add(l)
		maxY = max(maxY, float64(c.Capacity)/mib)
		p.Legend.Add(fmt.Sprintf("%s (%s values)", c.Store, sizeName(c.ValueSize)), l)
		if c.Capacity > 0 && maxX > 0 {
			cl, err := plotter.NewLine(plotter.XYs{{X: 0, Y: float64(c.Capacity) / mib}, {X: maxX, Y: float64(c.Capacity) / mib}})
			if err == nil {
				cl.Color = col
				cl.Width = vg.Points(0.75)
				cl.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
				p.Add(cl)
			}
		}
		n++
	}
	if n == 0 {
		return nil
	}
	p.Y.Min = 0
	p.X.Min = 0
	p.Y.Max = maxY * 1.15
	return p
}

// fsMatrixPlots draws possum's throughput per filesystem, one panel per
// workload (put and get-hot, at the chart concurrency).
func fsMatrixPlots(runs []*Run) []*plot.Plot {
	if len(runs) == 0 {
		return nil
	}
	var ps []*plot.Plot
	for _, wl := range []string{"put", "get-hot"} {
		p := plot.New()
		var xs, ys []float64
		var sizes []int
		n := 0
		var title string
		for i, r := range runs {
			g := chartGroup(groups(r), wl)
			if g == nil {
				continue
			}
			title = g.title()
			var pts plotter.XYs
			for _, s := range g.Sizes {
				res := g.cell("possum", s)
				if valid(res) && res.MBPerSec > 0 {
					pts = append(pts, plotter.XY{X: float64(s), Y: res.MBPerSec})
					xs = append(xs, float64(s))
					ys = append(ys, res.MBPerSec)
					if !slices.Contains(sizes, s) {
						sizes = append(sizes, s)
					}
				}
			}
			if len(pts) == 0 {
				continue
			}
			idx := i
			if j := slices.Index(fsOrder, r.Label); j >= 0 {
				idx = j
			}
			if err := addLine(p, r.Label, pts, plotutil.Color(idx), idx); err != nil {
				continue
			}
			n++
		}
		if n == 0 {
			continue
		}
		sort.Ints(sizes)
		p.Title.Text = "possum per filesystem: " + title
		p.X.Label.Text = "value size"
		p.Y.Label.Text = "MB/s"
		p.Legend.Top = true
		p.Legend.Left = true
		logAxis(&p.X, xs, sizeTicks(sizes))
		logAxis(&p.Y, ys, siLogTicks{})
		ps = append(ps, p)
	}
	return ps
}

func savePNG(p *plot.Plot, w, h vg.Length, path string) error {
	return saveTiled([]*plot.Plot{p}, w, h, path)
}

// saveTiled draws plots side by side into one PNG.
func saveTiled(ps []*plot.Plot, w, h vg.Length, path string) (err error) {
	// gonum/plot panics on some degenerate data; a chart is not worth the
	// whole report.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing: %v", r)
		}
	}()
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	if len(ps) == 1 {
		ps[0].Draw(dc)
	} else {
		tiles := draw.Tiles{Rows: 1, Cols: len(ps), PadX: vg.Millimeter * 4, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
		cs := plot.Align([][]*plot.Plot{ps}, tiles, dc)
		for i, p := range ps {
			p.Draw(cs[0][i])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
