package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/seed475afdc4/possum/bench/stores"
)

// The -report step: read every out/*.json (Run) and out/gobench-*.txt and
// write RESULTS.md and charts/*.png. bench/run.sh is the one command that
// produces all of them; see there for how each input is made.

// Orders used everywhere in the report; names not listed sort after, by name.
var (
	workloadOrder = []string{"put", "get-hot", "get-miss", "mixed", "mixed-proc"}
	storeOrder    = []string{"raw", "possum", "squirrel", "diskv", "bbolt", "memcached"}
	fsOrder       = []string{"ext4", "xfs", "btrfs", "tmpfs"}
)

// peersLabel is the label of the peer comparison run; runs with any other
// label make up the filesystem matrix.
const peersLabel = "peers"

// defaultGoBench is the label of the gobench file with possum's full Go
// benchmark set on the default filesystem (bench/run.sh writes it).
const defaultGoBench = "default"

// possumDiskBound is what possum's disk use after puts may be, relative to
// the live data.
const possumDiskBound = 1.05

func writeReport(outDir string) error {
	return writeReportTo(reportPaths{
		Out:        outDir,
		Results:    "RESULTS.md",
		Charts:     "charts",
		Commentary: "commentary.md",
	})
}

// reportPaths says where the report reads and writes, so tests can use
// temporary directories.
type reportPaths struct {
	Out        string // the runner's output: *.json and gobench-*.txt
	Results    string // the markdown file to write
	Charts     string // directory for the PNGs
	Commentary string // hand-written markdown included verbatim ("" or missing: none)
}

// reportInput is everything read from the output directory.
type reportInput struct {
	Runs    []*Run
	Files   map[*Run]string // run -> file it came from
	GoBench []*goBench
}

func loadReportInput(outDir string) (*reportInput, error) {
	in := &reportInput{Files: map[*Run]string{}}
	jsons, err := filepath.Glob(filepath.Join(outDir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range jsons {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Run
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		// The runner writes LABEL.json; the file name is what counts.
		r.Label = strings.TrimSuffix(filepath.Base(p), ".json")
		in.Runs = append(in.Runs, &r)
		in.Files[&r] = p
	}
	sort.SliceStable(in.Runs, func(i, j int) bool {
		return labelLess(in.Runs[i].Label, in.Runs[j].Label)
	})
	txts, err := filepath.Glob(filepath.Join(outDir, "gobench-*.txt"))
	if err != nil {
		return nil, err
	}
	for _, p := range txts {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		label := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "gobench-"), ".txt")
		gb, err := parseGoBench(label, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		in.GoBench = append(in.GoBench, gb)
	}
	sort.SliceStable(in.GoBench, func(i, j int) bool {
		return labelLess(in.GoBench[i].Label, in.GoBench[j].Label)
	})
	if len(in.Runs) == 0 && len(in.GoBench) == 0 {
		return nil, fmt.Errorf("no results in %s (*.json, gobench-*.txt): run bench/run.sh", outDir)
	}
	return in, nil
}

// labelLess orders peers, default, then filesystems in fsOrder, then the rest.
func labelLess(a, b string) bool {
	rank := func(s string) int {
		switch s {
		case peersLabel:
			return -2
		case defaultGoBench:
			return -1
		}
		if i := slices.Index(fsOrder, s); i >= 0 {
			return i
		}
		return len(fsOrder)
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra < rb
	}
	return a < b
}

func orderedLess(order []string) func(a, b string) bool {
	return func(a, b string) bool {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		if ia < 0 {
			ia = len(order)
		}
		if ib < 0 {
			ib = len(order)
		}
		if ia != ib {
			return ia < ib
		}
		return a < b
	}
}

func (in *reportInput) peers() *Run {
	for _, r := range in.Runs {
		if r.Label == peersLabel {
			return r
		}
	}
	return nil
}

// matrix returns the runs of the filesystem matrix: every run not labelled
// peers, in fsOrder.
func (in *reportInput) matrix() []*Run {
	var rs []*Run
	for _, r := range in.Runs {
		if r.Label != peersLabel {
			rs = append(rs, r)
		}
	}
	return rs
}

func (in *reportInput) goBench(label string) *goBench {
	for _, g := range in.GoBench {
		if g.Label == label {
			return g
		}
	}
	return nil
}

// matrixGoBench returns the gobench files of the filesystem matrix: every
// one but the default.
func (in *reportInput) matrixGoBench() []*goBench {
	var gs []*goBench
	for _, g := range in.GoBench {
		if g.Label != defaultGoBench {
			gs = append(gs, g)
		}
	}
	return gs
}

// group is the cells of one workload at one concurrency: store -> value
// size -> result.
type group struct {
	Workload   string
	Goroutines int
	Processes  int
	Cells      map[string]map[int]*Result
	Stores     []string
	Sizes      []int
}

func (g *group) title() string {
	gs := plural(g.Goroutines, "goroutine")
	if g.Processes > 1 {
		return fmt.Sprintf("%s, %d processes × %s", g.Workload, g.Processes, gs)
	}
	return fmt.Sprintf("%s, %s", g.Workload, gs)
}

func (g *group) cell(store string, size int) *Result {
	return g.Cells[store][size]
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// groups splits a run's results by (workload, goroutines, processes), in
// workload order then by concurrency.
func groups(r *Run) []*group {
	type key struct {
		w    string
		g, p int
	}
	m := map[key]*group{}
	var gs []*group
	for i := range r.Results {
		res := &r.Results[i]
		p := max(res.Processes, 1)
		k := key{res.Workload, res.Goroutines, p}
		g := m[k]
		if g == nil {
			g = &group{Workload: res.Workload, Goroutines: res.Goroutines, Processes: p, Cells: map[string]map[int]*Result{}}
			m[k] = g
			gs = append(gs, g)
		}
		if g.Cells[res.Store] == nil {
			g.Cells[res.Store] = map[int]*Result{}
			g.Stores = append(g.Stores, res.Store)
		}
		if _, ok := g.Cells[res.Store][res.ValueSize]; !ok && !slices.Contains(g.Sizes, res.ValueSize) {
			g.Sizes = append(g.Sizes, res.ValueSize)
		}
		g.Cells[res.Store][res.ValueSize] = res
	}
	wl := orderedLess(workloadOrder)
	sort.SliceStable(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.Workload != b.Workload {
			return wl(a.Workload, b.Workload)
		}
		if a.Processes != b.Processes {
			return a.Processes < b.Processes
		}
		return a.Goroutines < b.Goroutines
	})
	sl := orderedLess(storeOrder)
	for _, g := range gs {
		sort.SliceStable(g.Stores, func(i, j int) bool { return sl(g.Stores[i], g.Stores[j]) })
		sort.Ints(g.Sizes)
	}
	return gs
}

// valid says whether a result's figures can be used: it ran, and without
// errors.
func valid(r *Result) bool {
	return r != nil && r.Skipped == "" && r.Errors == 0 && r.OpsPerSec > 0
}

// ratio formats a/b as "0.70x"; "" when either is unusable.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 || math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return ""
	}
	r := a / b
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	case r >= 0.1:
		return fmt.Sprintf("%.2fx", r)
	case r >= 0.01:
		return fmt.Sprintf("%.3fx", r)
	}
	return fmt.Sprintf("%.2gx", r)
}

// si formats v with three significant digits and k/M/G.
func si(v float64) string {
	av := math.Abs(v)
	switch {
	case av >= 1e9:
		return sig3(v/1e9) + " G"
	case av >= 1e6:
		return sig3(v/1e6) + " M"
	case av >= 1e3:
		return sig3(v/1e3) + " k"
	}
	return sig3(v) + " "
}

func sig3(v float64) string {
	av := math.Abs(v)
	switch {
	case av >= 100:
		return fmt.Sprintf("%.0f", v)
	case av >= 10:
		return fmt.Sprintf("%.1f", v)
	case av >= 1:
		return fmt.Sprintf("%.2f", v)
	case av == 0:
		return "0"
	}
	return fmt.Sprintf("%.3g", v)
}

func opsRate(v float64) string { return si(v) + "/s" }

func mbRate(v float64) string { return sig3(v) + " MB/s" }

// dur formats nanoseconds.
func dur(ns float64) string {
	switch {
	case ns >= 1e9:
		return sig3(ns/1e9) + " s"
	case ns >= 1e6:
		return sig3(ns/1e6) + " ms"
	case ns >= 1e3:
		return sig3(ns/1e3) + " µs"
	}
	return sig3(ns) + " ns"
}

// iec formats a byte count.
func iec(n float64) string {
	an := math.Abs(n)
	switch {
	case an >= 1<<30:
		return sig3(n/(1<<30)) + " GiB"
	case an >= 1<<20:
		return sig3(n/(1<<20)) + " MiB"
	case an >= 1<<10:
		return sig3(n/(1<<10)) + " KiB"
	}
	return fmt.Sprintf("%.0f B", n)
}

// sizeName names a value size exactly: "100 B", "4 KiB", "1 MiB".
func sizeName(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// notes collects footnotes; the same text gets the same number.
type notes struct {
	ids  map[string]int
	list []string
	next *int // shared numbering across sections
}

func newNotes(counter *int) *notes { return &notes{ids: map[string]int{}, next: counter} }

func (n *notes) ref(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	id, ok := n.ids[text]
	if !ok {
		*n.next++
		id = *n.next
		n.ids[text] = id
		n.list = append(n.list, text)
	}
	return fmt.Sprintf("[^%d]", id)
}

// flush writes the footnote definitions collected so far.
func (n *notes) flush(w *bytes.Buffer) {
	if len(n.list) == 0 {
		return
	}
	w.WriteString("\n")
	for _, t := range n.list {
		fmt.Fprintf(w, "[^%d]: %s\n", n.ids[t], t)
	}
	n.ids = map[string]int{}
	n.list = nil
}

// cellText renders the throughput of one cell with its ratios, or why it
// has none.
func cellText(g *group, store string, size int, fn *notes) string {
	r := g.cell(store, size)
	switch {
	case r == nil:
		return "·"
	case r.Skipped != "":
		return "—" + fn.ref(store+": "+r.Skipped)
	case r.Errors > 0:
		return fmt.Sprintf("**⚠ %d errors** (%d ops: not a valid figure)", r.Errors, r.Ops)
	case r.OpsPerSec <= 0:
		return "**⚠ no operations**"
	}
	parts := []string{opsRate(r.OpsPerSec)}
	if size >= 64<<10 && r.MBPerSec > 0 {
		parts[0] += " (" + mbRate(r.MBPerSec) + ")"
	}
	for _, base := range []string{"raw", "possum"} {
		if b := g.cell(base, size); valid(b) {
			if s := ratio(r.OpsPerSec, b.OpsPerSec); s != "" {
				parts = append(parts, s+" "+base)
			}
		}
	}
	return strings.Join(parts, " · ")
}

func latencyText(g *group, store string, size int, fn *notes) string {
	r := g.cell(store, size)
	switch {
	case r == nil:
		return "·"
	case r.Skipped != "":
		return "—" + fn.ref(store+": "+r.Skipped)
	case r.Errors > 0:
		return fmt.Sprintf("**⚠ %d errors**", r.Errors)
	case r.P50Nanos <= 0 && r.P99Nanos <= 0:
		return "?"
	}
	return dur(float64(r.P50Nanos)) + " / " + dur(float64(r.P99Nanos))
}

// ioText renders bytes written per op and disk used against data.
func ioText(g *group, store string, size int, fn *notes) string {
	r := g.cell(store, size)
	switch {
	case r == nil:
		return "·"
	case r.Skipped != "":
		return "—" + fn.ref(store+": "+r.Skipped)
	}
	var parts []string
	if r.BytesWrittenPerOp >= 0 {
		s := iec(r.BytesWrittenPerOp) + "/op"
		if r.BytesWrittenPerOp > 0 && size > 0 {
			s += " (" + ratio(r.BytesWrittenPerOp, float64(size)) + " value)"
		}
		parts = append(parts, s)
	} else {
		parts = append(parts, "writes ?")
	}
	switch {
	case strings.HasPrefix(g.Workload, "get"):
		// Disk use after reads is the data the reads were set up with.
	case r.DiskUsed >= 0 && r.DataBytes > 0:
		parts = append(parts, "disk "+ratio(float64(r.DiskUsed), float64(r.DataBytes))+" data")
	case r.DiskUsed >= 0:
		parts = append(parts, "disk "+iec(float64(r.DiskUsed)))
	}
	s := strings.Join(parts, " · ")
	if r.Errors > 0 {
		s = fmt.Sprintf("**⚠ %d errors** ", r.Errors) + s
	}
	return s
}

func hasIO(g *group) bool {
	for _, m := range g.Cells {
		for _, r := range m {
			if r.Skipped == "" && (r.BytesWrittenPerOp > 0 || r.DiskUsed > 0) {
				return true
			}
		}
	}
	return false
}

// table writes a markdown table.
func table(w *bytes.Buffer, header []string, rows [][]string) {
	w.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		w.WriteString("---|")
	}
	w.WriteString("\n")
	for _, r := range rows {
		for i := range r {
			r[i] = strings.ReplaceAll(r[i], "|", `\|`)
		}
		w.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
}

func groupTable(w *bytes.Buffer, g *group, cell func(*group, string, int, *notes) string, fn *notes) {
	header := []string{"store"}
	for _, s := range g.Sizes {
		header = append(header, sizeName(s))
	}
	var rows [][]string
	for _, st := range g.Stores {
		row := []string{"**" + st + "**"}
		for _, s := range g.Sizes {
			row = append(row, cell(g, st, s, fn))
		}
		rows = append(rows, row)
	}
	table(w, header, rows)
}

func writeReportTo(p reportPaths) error {
	in, err := loadReportInput(p.Out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.Charts, 0o755); err != nil {
		return err
	}
	charts, err := writeCharts(in, p.Charts)
	if err != nil {
		return err
	}
	var commentary []byte
	if p.Commentary != "" {
		commentary, err = os.ReadFile(p.Commentary)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	rel, err := filepath.Rel(filepath.Dir(p.Results), p.Charts)
	if err != nil {
		rel = p.Charts
	}
	md := renderReport(in, charts, filepath.ToSlash(rel), commentary)
	tmp := p.Results + ".tmp"
	if err := os.WriteFile(tmp, md, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.Results); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "report: wrote %s and %d charts in %s\n", p.Results, len(charts), p.Charts)
	return nil
}

func renderReport(in *reportInput, charts map[string]string, chartsRel string, commentary []byte) []byte {
	w := &bytes.Buffer{}
	counter := 0
	fn := newNotes(&counter)
	chart := func(key, alt string) {
		if name, ok := charts[key]; ok {
			fmt.Fprintf(w, "\n![%s](%s/%s)\n", alt, chartsRel, name)
		}
	}

	w.WriteString("<!-- Generated by bench/run.sh (its last step: go run -C bench . -report) from bench/out/. Do not edit by hand. -->\n")
	w.WriteString("# possum benchmark results\n\n")
	w.WriteString("Generated by `bench/run.sh` from the files in `bench/out/`; do not edit by hand " +
		"(the prose at the end comes from `bench/commentary.md`). Rerun `bench/run.sh` to reproduce it; " +
		"`bench/run.sh -quick` for a fast, noisy check.\n\n")

	peers := in.peers()
	matrix := in.matrix()

	// How and where.
	w.WriteString("## How these figures were made\n\n")
	machines := map[Machine][]string{}
	var morder []Machine
	for _, r := range in.Runs {
		if _, ok := machines[r.Machine]; !ok {
			morder = append(morder, r.Machine)
		}
		machines[r.Machine] = append(machines[r.Machine], r.Label)
	}
	for _, m := range morder {
		if len(morder) > 1 {
			fmt.Fprintf(w, "Machine of %s:\n\n", strings.Join(machines[m], ", "))
		} else {
			w.WriteString("Machine:\n\n")
		}
		fmt.Fprintf(w, "- CPU: %s, %s\n", orUnknown(m.CPU), plural(m.Cores, "core"))
		if m.MemBytes > 0 {
			fmt.Fprintf(w, "- memory: %s\n", iec(float64(m.MemBytes)))
		}
		fmt.Fprintf(w, "- OS: %s, kernel %s\n", orUnknown(m.OS), orUnknown(m.Kernel))
		fmt.Fprintf(w, "- Go: %s\n\n", orUnknown(m.GoVersion))
	}
	if len(in.Runs) > 0 {
		var rows [][]string
		anyQuick := false
		for _, r := range in.Runs {
			q := "no"
			if r.Quick {
				q = "**yes**"
				anyQuick = true
			}
			rows = append(rows, []string{
				r.Label, orUnknown(r.FS), r.Started.UTC().Format("2006-01-02 15:04 MST"),
				fmt.Sprintf("%.0f s", r.Seconds), q, "`" + r.Command + "`",
			})
		}
		w.WriteString("Runs of the workload runner (`bench/`; `-label peers` from `bench/run.sh`, the filesystem ones from `bench/matrix.sh`):\n\n")
		table(w, []string{"run", "filesystem", "started", "took", "quick", "command"}, rows)
		if anyQuick {
			w.WriteString("\n> **Quick run:** short runs with few operations; the figures are noisy and only show the pipeline works.\n")
		}
		w.WriteString("\n")
	}
	if len(in.GoBench) > 0 {
		var rows [][]string
		for _, g := range in.GoBench {
			rows = append(rows, []string{"`gobench-" + g.Label + ".txt`", "`" + orUnknown(g.Command) + "`",
				orUnknown(g.Config["date"]), orUnknown(g.Config["filesystem"]), orUnknown(g.Config["cpu"])})
		}
		w.WriteString("possum's Go benchmarks (the root package's `*_test.go`; `gobench-default.txt` from `bench/run.sh`, the filesystem ones from `bench/matrix.sh`):\n\n")
		table(w, []string{"file", "command", "date", "filesystem", "cpu"}, rows)
		w.WriteString("\n")
	}
	if len(in.Runs) > 0 {
		w.WriteString("The stores (`bench/stores`):\n\n")
		var rows [][]string
		for _, k := range stores.All() {
			rows = append(rows, []string{"**" + k.Name + "**", k.Note})
		}
		table(w, []string{"store", "how it is set up"}, rows)
		w.WriteString("\nHow each figure is measured is written at the top of `bench/run.go`.\n\n")
	}
	w.WriteString("Throughput cells read \"ops/s (MB/s from 64 KiB) · ratio to raw · ratio to possum\" (ops/s over ops/s). " +
		"**raw** is the baseline: what the disk and page cache give without any store around them. " +
		"Latencies are of single operations, p50 / p99. " +
		"A cell with errors is not a valid figure and takes part in no ratio; \"—\" is a cell that was not run (see its note), \"·\" one the run did not include.\n\n")

	// Errors, prominently.
	var errs []string
	for _, r := range in.Runs {
		for _, res := range r.Results {
			if res.Errors > 0 {
				errs = append(errs, fmt.Sprintf("%s: %s %s %s, %s: **%d errors** in %d ops",
					r.Label, res.Store, res.Workload, sizeName(res.ValueSize), plural(res.Goroutines, "goroutine"), res.Errors, res.Ops))
			}
		}
		for _, c := range r.Capacity {
			if c.Errors > 0 {
				errs = append(errs, fmt.Sprintf("%s: capacity run of %s: **%d errors**", r.Label, c.Store, c.Errors))
			}
		}
	}
	for _, g := range in.GoBench {
		for _, f := range g.Fails {
			errs = append(errs, fmt.Sprintf("gobench-%s.txt: **failed**: %s", g.Label, f))
		}
	}
	if len(errs) > 0 {
		w.WriteString("> [!WARNING]\n> These cells had errors (failed operations or values that did not check out); their figures are not valid:\n>\n")
		for _, e := range errs {
			w.WriteString("> - " + e + "\n")
		}
		w.WriteString("\n")
	}

	// Contents.
	w.WriteString("Contents:\n\n")
	w.WriteString("- [Hot-path targets](#hot-path-targets)\n")
	if peers != nil {
		w.WriteString("- [Peer comparison](#peer-comparison)\n")
		w.WriteString("- [Bytes written and disk use](#bytes-written-and-disk-use)\n")
	}
	if hasCapacity(in) {
		w.WriteString("- [Capacity](#capacity)\n")
	}
	if len(matrix) > 0 || len(in.matrixGoBench()) > 0 {
		w.WriteString("- [Filesystem matrix](#filesystem-matrix)\n")
	}
	if in.goBench(defaultGoBench) != nil {
		w.WriteString("- [possum's Go benchmarks](#possums-go-benchmarks)\n")
	}
	if peers != nil {
		w.WriteString("- [Where possum is slower than a peer](#where-possum-is-slower-than-a-peer)\n")
	}
	if len(commentary) > 0 {
		w.WriteString("- [Commentary](#commentary)\n")
	}
	w.WriteString("\n")

	writeTargets(w, in)

	if peers != nil {
		gs := groups(peers)
		w.WriteString("## Peer comparison\n\n")
		fmt.Fprintf(w, "Run `%s` on %s (`%s`).\n", peers.Label, orUnknown(peers.FS), peers.Dir)
		lastW := ""
		for _, g := range gs {
			if g.Workload != lastW {
				fmt.Fprintf(w, "\n### %s\n", g.Workload)
				chart("throughput-"+g.Workload, g.Workload+" throughput")
				lastW = g.Workload
			}
			fmt.Fprintf(w, "\n#### %s\n\nThroughput:\n\n", g.title())
			groupTable(w, g, cellText, fn)
			w.WriteString("\nLatency, p50 / p99:\n\n")
			groupTable(w, g, latencyText, fn)
		}
		fn.flush(w)
		writePaired(w, peers)

		w.WriteString("\n## Bytes written and disk use\n\n")
		w.WriteString("Cells: storage bytes written per operation (`/proc/<pid>/io` write_bytes, a store's server included; ÷ the value size) · " +
			"disk the store's directory occupies after the workload (st_blocks) ÷ the live data it holds.\n")
		writeDiskCheck(w, gs)
		w.WriteString("\nEvery concurrency for puts; for the other workloads only the least concurrent (reads write too: possum flushes the access times of what was read about once a second).\n")
		for _, g := range gs {
			if !hasIO(g) || (g.Workload != "put" && chartGroup(gs, g.Workload) != g) {
				continue
			}
			fmt.Fprintf(w, "\n### %s\n\n", g.title())
			groupTable(w, g, ioText, fn)
		}
		fn.flush(w)
	}

	if hasCapacity(in) {
		w.WriteString("\n## Capacity\n\n")
		w.WriteString("Each bounded store is filled with twice its capacity while a hot set is re-read throughout; " +
			"disk used is the directory's st_blocks, sampled as the writes go.\n\n")
		writeCapacity(w, in)
		chart("capacity", "disk used against bytes written, bounded stores")
	}

	if len(matrix) > 0 || len(in.matrixGoBench()) > 0 {
		w.WriteString("\n## Filesystem matrix\n\n")
		w.WriteString("possum (and the raw baseline) run by `bench/matrix.sh` on each filesystem: a directory on ext4, " +
			"loop-mounted xfs (`mkfs.xfs -m reflink=1`) and btrfs images, tmpfs. Cells: possum's ops/s · ratio to raw on the same filesystem.\n")
		chart("fs-matrix", "possum throughput per filesystem")
		writeMatrix(w, matrix, fn)
		fn.flush(w)
		writeFSBench(w, in.matrixGoBench(), fn)
		fn.flush(w)
	}

	if g := in.goBench(defaultGoBench); g != nil {
		w.WriteString("\n## possum's Go benchmarks\n\n")
		fmt.Fprintf(w, "`%s` on the default filesystem (median of the samples when `-count` > 1).\n\n", orUnknown(g.Command))
		writeGoBench(w, g, fn)
		fn.flush(w)
	}

	if peers != nil {
		w.WriteString("\n## Where possum is slower than a peer\n\n")
		writeSlower(w, groups(peers))
	}

	if len(commentary) > 0 {
		w.WriteString("\n## Commentary\n\n")
		w.WriteString("<!-- From bench/commentary.md, included verbatim. -->\n\n")
		c := bytes.TrimSpace(commentary)
		// Its own top-level heading is replaced by this section's.
		if bytes.HasPrefix(c, []byte("# ")) {
			if i := bytes.IndexByte(c, '\n'); i >= 0 {
				c = bytes.TrimSpace(c[i:])
			} else {
				c = nil
			}
		}
		w.Write(demoteHeadings(c))
		w.WriteString("\n")
	}
	return w.Bytes()
}

// demoteHeadings puts the commentary's headings one level down, under the
// report's own "## Commentary".
func demoteHeadings(md []byte) []byte {
	lines := strings.Split(string(md), "\n")
	fence := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fence = !fence
		}
		if !fence && strings.HasPrefix(l, "#") && len(l) < 200 {
			lines[i] = "#" + l
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func hasCapacity(in *reportInput) bool {
	for _, r := range in.Runs {
		if len(r.Capacity) > 0 {
			return true
		}
	}
	return false
}

// writeDiskCheck states whether possum's disk use after puts stayed within
// possumDiskBound of the data.
func writeDiskCheck(w *bytes.Buffer, gs []*group) {
	var checked, over []string
	for _, g := range gs {
		if g.Workload != "put" {
			continue
		}
		for _, s := range g.Sizes {
			r := g.cell("possum", s)
			if r == nil || r.Skipped != "" || r.DiskUsed < 0 || r.DataBytes <= 0 {
				continue
			}
			x := float64(r.DiskUsed) / float64(r.DataBytes)
			c := fmt.Sprintf("%s %s: %s (%s for %s of data)", g.title(), sizeName(s), ratio(float64(r.DiskUsed), float64(r.DataBytes)),
				iec(float64(r.DiskUsed)), iec(float64(r.DataBytes)))
			checked = append(checked, c)
			if x > possumDiskBound {
				over = append(over, c)
			}
		}
	}
	switch {
	case len(checked) == 0:
		w.WriteString("\npossum's disk use after puts was not measured.\n")
	case len(over) == 0:
		fmt.Fprintf(w, "\n**possum's disk used after puts ≤ %.2fx the data: yes**, in all %d put cells (largest: %s).\n",
			possumDiskBound, len(checked), maxDisk(gs))
	default:
		fmt.Fprintf(w, "\n**possum's disk used after puts ≤ %.2fx the data: no**, in %d of %d put cells:\n\n", possumDiskBound, len(over), len(checked))
		for _, c := range over {
			w.WriteString("- " + c + "\n")
		}
	}
}

func maxDisk(gs []*group) string {
	best, desc := -1.0, ""
	for _, g := range gs {
		if g.Workload != "put" {
			continue
		}
		for _, s := range g.Sizes {
			r := g.cell("possum", s)
			if r == nil || r.Skipped != "" || r.DiskUsed < 0 || r.DataBytes <= 0 {
				continue
			}
			if x := float64(r.DiskUsed) / float64(r.DataBytes); x > best {
				best = x
				desc = fmt.Sprintf("%s at %s, %s", ratio(float64(r.DiskUsed), float64(r.DataBytes)), sizeName(s), g.title())
			}
		}
	}
	return desc
}

// writeSlower lists every cell where a peer (not raw) has a higher ops/s than
// possum: one row per cell, the faster peers in it.
func writeSlower(w *bytes.Buffer, gs []*group) {
	var rows [][]string
	compared, slower := 0, 0
	for _, g := range gs {
		for _, s := range g.Sizes {
			p := g.cell("possum", s)
			if !valid(p) {
				continue
			}
			var faster []string
			for _, st := range g.Stores {
				if st == "raw" || st == "possum" {
					continue
				}
				r := g.cell(st, s)
				if !valid(r) {
					continue
				}
				compared++
				if r.OpsPerSec > p.OpsPerSec {
					slower++
					faster = append(faster, fmt.Sprintf("%s **%s** (%s)", st, ratio(r.OpsPerSec, p.OpsPerSec), opsRate(r.OpsPerSec)))
				}
			}
			if len(faster) > 0 {
				rows = append(rows, []string{g.title(), sizeName(s), opsRate(p.OpsPerSec), strings.Join(faster, ", ")})
			}
		}
	}
	if compared == 0 {
		w.WriteString("No cell has valid figures for both possum and a peer.\n")
		return
	}
	if slower == 0 {
		fmt.Fprintf(w, "Nowhere: possum's ops/s is at least every peer's in all %d comparable cells (raw, the baseline, is not a peer).\n", compared)
		return
	}
	fmt.Fprintf(w, "Computed from the tables above: a peer's ops/s beats possum's in %d of %d comparisons "+
		"(a peer and possum in one cell, both valid; raw, the baseline, is not counted). "+
		"Each faster peer is given as its ops/s over possum's, and its ops/s. The commentary below says why.\n\n", slower, compared)
	table(w, []string{"workload", "value size", "possum", "faster peers (× possum)"}, rows)
}

func writeCapacity(w *bytes.Buffer, in *reportInput) {
	multi := 0
	for _, r := range in.Runs {
		if len(r.Capacity) > 0 {
			multi++
		}
	}
	header := []string{"store", "value size", "capacity", "written", "max disk used", "max / capacity", "final disk used", "final / capacity", "hot set survived", "errors"}
	if multi > 1 {
		header = append([]string{"run"}, header...)
	}
	var rows [][]string
	for _, r := range in.Runs {
		caps := append([]CapacityRun(nil), r.Capacity...)
		sl := orderedLess(storeOrder)
		sort.SliceStable(caps, func(i, j int) bool { return sl(caps[i].Store, caps[j].Store) })
		for _, c := range caps {
			var row []string
			if c.Skipped != "" {
				capacity := "—"
				if c.Capacity > 0 {
					capacity = iec(float64(c.Capacity))
				}
				row = []string{"**" + c.Store + "**", sizeName(c.ValueSize), capacity, "—", "—", "—", "—", "—", "—", "skipped: " + c.Skipped}
			} else {
				var maxUsed, final int64 = -1, -1
				for _, s := range c.Samples {
					if s.DiskUsed > maxUsed {
						maxUsed = s.DiskUsed
					}
					final = s.DiskUsed
				}
				errs := "0"
				if c.Errors > 0 {
					errs = fmt.Sprintf("**⚠ %d**", c.Errors)
				}
				hot := fmt.Sprintf("%d of %d", c.HotSurvived, c.HotKeys)
				if c.HotSurvived < c.HotKeys {
					hot = "**" + hot + "**"
				}
				row = []string{"**" + c.Store + "**", sizeName(c.ValueSize), iec(float64(c.Capacity)), iec(float64(c.DataBytes)),
					bytesOrUnknown(maxUsed), capRatio(maxUsed, c.Capacity), bytesOrUnknown(final), capRatio(final, c.Capacity), hot, errs}
			}
			if multi > 1 {
				row = append([]string{r.Label}, row...)
			}
			rows = append(rows, row)
		}
	}
	table(w, header, rows)
}

func bytesOrUnknown(n int64) string {
	if n < 0 {
		return "?"
	}
	return iec(float64(n))
}

func capRatio(used, capacity int64) string {
	if used < 0 || capacity <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.3f", float64(used)/float64(capacity))
}

// writeMatrix shows possum's figures per filesystem, one column each.
func writeMatrix(w *bytes.Buffer, runs []*Run, fn *notes) {
	if len(runs) == 0 {
		return
	}
	type key struct {
		w    string
		g, p int
	}
	per := map[*Run]map[key]*group{}
	var keys []key
	var templ []*group
	for _, r := range runs {
		per[r] = map[key]*group{}
		for _, g := range groups(r) {
			k := key{g.Workload, g.Goroutines, g.Processes}
			per[r][k] = g
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
				templ = append(templ, g)
			}
		}
	}
	wl := orderedLess(workloadOrder)
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		if ka.w != kb.w {
			return wl(ka.w, kb.w)
		}
		if ka.p != kb.p {
			return ka.p < kb.p
		}
		return ka.g < kb.g
	})
	header := []string{"value size"}
	for _, r := range runs {
		h := r.Label
		if r.FS != "" && r.FS != r.Label {
			h += " (" + r.FS + ")"
		}
		if r.Quick {
			h += ", quick"
		}
		header = append(header, h)
	}
	for _, i := range idx {
		k := keys[i]
		var sizes []int
		for _, r := range runs {
			if g := per[r][k]; g != nil {
				for _, s := range g.Sizes {
					if !slices.Contains(sizes, s) {
						sizes = append(sizes, s)
					}
				}
			}
		}
		sort.Ints(sizes)
		fmt.Fprintf(w, "\n### %s\n\n", templ[i].title())
		var rows [][]string
		for _, s := range sizes {
			row := []string{sizeName(s)}
			for _, r := range runs {
				g := per[r][k]
				if g == nil {
					row = append(row, "·")
					continue
				}
				c := cellText(g, "possum", s, fn)
				// Drop the ratio to possum itself.
				c = strings.TrimSuffix(c, " · 1.00x possum")
				if g.Workload == "put" {
					if p := g.cell("possum", s); p != nil && p.Skipped == "" && p.DiskUsed >= 0 && p.DataBytes > 0 {
						c += " · disk " + ratio(float64(p.DiskUsed), float64(p.DataBytes)) + " data"
					}
				}
				row = append(row, c)
			}
			rows = append(rows, row)
		}
		table(w, header, rows)
	}
	writeMatrixPaired(w, runs, header)
}

// writeMatrixPaired shows the paired get-hot ratios per filesystem, if any
// run has them.
func writeMatrixPaired(w *bytes.Buffer, runs []*Run, header []string) {
	var sizes []int
	for _, r := range runs {
		for _, p := range r.Paired {
			if !slices.Contains(sizes, p.ValueSize) {
				sizes = append(sizes, p.ValueSize)
			}
		}
	}
	if len(sizes) == 0 {
		return
	}
	sort.Ints(sizes)
	fmt.Fprintf(w, "\n### get-hot, paired with %s\n\nMedian of the per-pair ratios (possum ÷ %s), and their range; see [get-hot, paired](#get-hot-paired-with-raw).\n\n", pairedRef, pairedRef)
	var rows [][]string
	for _, s := range sizes {
		row := []string{sizeName(s)}
		for _, r := range runs {
			c := "·"
			for i := range r.Paired {
				if r.Paired[i].ValueSize == s {
					c = pairedRatioText(&r.Paired[i])
				}
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	table(w, header, rows)
}

// pairedRatioText is a paired run's median ratio and range, or why it has
// none.
func pairedRatioText(p *PairedRun) string {
	switch {
	case p.Skipped != "":
		return "skipped: " + p.Skipped
	case p.Errors > 0:
		return fmt.Sprintf("**⚠ %d errors**", p.Errors)
	case len(p.Ratios()) == 0:
		return "—"
	}
	med, lo, hi := p.Ratio()
	return fmt.Sprintf("**%.2fx** (%.2fx to %.2fx)", med, lo, hi)
}

// writeFSBench shows the Go benchmarks run on each filesystem (BenchmarkFS*),
// one column per filesystem.
func writeFSBench(w *bytes.Buffer, gbs []*goBench, fn *notes) {
	if len(gbs) == 0 {
		return
	}
	w.WriteString("\n### Filesystem costs (Go benchmarks)\n\n")
	var cmds []string
	same := true
	for _, g := range gbs {
		cmds = append(cmds, fmt.Sprintf("%s: `%s`", g.Label, orUnknown(g.Command)))
		same = same && g.Command == gbs[0].Command
	}
	w.WriteString("Time per operation (and MB/s, other metrics) of the root package's `BenchmarkFS*` benchmarks, run with `TMPDIR` and `GOTMPDIR` on each filesystem " +
		"(\"·\": not in that file, \"—\": skipped, see the note). ")
	if same {
		fmt.Fprintf(w, "Command, on each: `%s`.\n\n", orUnknown(gbs[0].Command))
	} else {
		w.WriteString("Commands: " + strings.Join(cmds, "; ") + ".\n\n")
	}
	var names []string
	for _, g := range gbs {
		for _, b := range g.Benches {
			if !slices.Contains(names, b.Name) {
				names = append(names, b.Name)
			}
		}
		for n := range g.Skips {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		w.WriteString("No benchmarks in these files.\n")
		return
	}
	sort.Strings(names)
	// A skipped parent whose sub-benchmarks ran or were listed is redundant.
	header := []string{"benchmark"}
	for _, g := range gbs {
		header = append(header, g.Label)
	}
	var rows [][]string
	for _, n := range names {
		row := []string{"`" + n + "`"}
		for _, g := range gbs {
			b := g.find(n)
			switch {
			case b != nil:
				row = append(row, benchCell(b))
			case hasKey(g.Skips, n):
				reason := g.Skips[n]
				if reason == "" {
					reason = "skipped"
				}
				row = append(row, "—"+fn.ref(g.Label+", "+n+": "+reason))
			default:
				row = append(row, "·")
			}
		}
		rows = append(rows, row)
	}
	table(w, header, rows)
	for _, g := range gbs {
		for _, f := range g.Fails {
			fmt.Fprintf(w, "\n**⚠ gobench-%s.txt: failed: %s**\n", g.Label, f)
		}
	}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func benchCell(b *benchStat) string {
	var parts []string
	if v, ok := b.Values["ns/op"]; ok {
		parts = append(parts, dur(v))
	}
	if v, ok := b.Values["MB/s"]; ok {
		parts = append(parts, mbRate(v))
	}
	for _, u := range b.Units {
		switch u {
		case "ns/op", "MB/s", "B/op", "allocs/op":
			continue
		}
		parts = append(parts, metricValue(b.Values[u])+" "+u)
	}
	return strings.Join(parts, " · ")
}

// metricValue formats a custom benchmark metric: three significant digits,
// k/M/G from 10000 on.
func metricValue(v float64) string {
	if math.Abs(v) >= 1e4 {
		return strings.TrimSpace(si(v))
	}
	return sig3(v)
}

func writeGoBench(w *bytes.Buffer, g *goBench, fn *notes) {
	var rows [][]string
	for _, b := range g.Benches {
		row := []string{"`" + b.Name + "`", "?", "", "", "", ""}
		if v, ok := b.Values["ns/op"]; ok {
			row[1] = dur(v)
		}
		if v, ok := b.Values["MB/s"]; ok {
			row[2] = mbRate(v)
		}
		if v, ok := b.Values["B/op"]; ok {
			row[3] = iec(v)
		}
		if v, ok := b.Values["allocs/op"]; ok {
			row[4] = fmt.Sprintf("%.0f", v)
		}
		var other []string
		for _, u := range b.Units {
			switch u {
			case "ns/op", "MB/s", "B/op", "allocs/op":
				continue
			}
			other = append(other, metricValue(b.Values[u])+" "+u)
		}
		row[5] = strings.Join(other, ", ")
		rows = append(rows, row)
	}
	var skipped []string
	for n := range g.Skips {
		skipped = append(skipped, n)
	}
	sort.Strings(skipped)
	for _, n := range skipped {
		reason := g.Skips[n]
		if reason == "" {
			reason = "skipped"
		}
		rows = append(rows, []string{"`" + n + "`", "—" + fn.ref(n+": "+reason), "", "", "", ""})
	}
	if len(rows) == 0 {
		w.WriteString("No benchmark results in the file.\n")
	} else {
		table(w, []string{"benchmark", "time/op", "MB/s", "B/op", "allocs/op", "other"}, rows)
	}
	for _, f := range g.Fails {
		fmt.Fprintf(w, "\n**⚠ failed: %s**\n", f)
	}
}

// writePaired writes the paired get-hot measurements of r, if any.
func writePaired(w *bytes.Buffer, r *Run) {
	if len(r.Paired) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### get-hot, paired with %s\n\n", r.Paired[0].Against)
	w.WriteString("possum and raw both loaded and warmed, then read on one goroutine in alternating slices " +
		"(raw then possum, possum then raw, ...), the same random keys in each; a ratio per pair of adjacent slices. " +
		"Unlike the cells above, which ran minutes apart, each ratio compares two stores measured within a second of each other " +
		"(`bench/paired.go`).\n\n")
	var rows [][]string
	for i := range r.Paired {
		p := &r.Paired[i]
		if p.Skipped != "" || p.Errors > 0 || len(p.Ratios()) == 0 {
			rows = append(rows, []string{sizeName(p.ValueSize), "—", "—", pairedRatioText(p), "—", "—"})
			continue
		}
		rows = append(rows, []string{
			sizeName(p.ValueSize),
			fmt.Sprintf("%d × %s", len(p.Ratios()), dur(p.SliceSeconds*1e9)),
			fmt.Sprintf("%d", p.Keys),
			pairedRatioText(p),
			fmt.Sprintf("%s · %s / %s", opsRate(median(p.StoreOps)), dur(float64(p.StoreP50)), dur(float64(p.StoreP99))),
			fmt.Sprintf("%s · %s / %s", opsRate(median(p.AgainstOps)), dur(float64(p.AgainstP50)), dur(float64(p.AgainstP99))),
		})
	}
	table(w, []string{"value size", "pairs × slice", "keys", "possum ÷ " + r.Paired[0].Against + ", median (range)",
		"possum: median slice · p50 / p99", r.Paired[0].Against + ": median slice · p50 / p99"}, rows)
}
