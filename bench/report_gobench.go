package main

import (
	"bufio"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The report reads `go test -bench` output that bench/run.sh and
// bench/matrix.sh save as out/gobench-<label>.txt. Their first line is a
// comment with the command that produced them:
//
//	# command: go test -run '^$' -bench . -benchtime=1s -count=3 .
//
// Further "# key: value" lines are kept as header too. The rest is go test's
// own output: "goos:"-style configuration lines, one line per benchmark run
// (several with -count), "--- SKIP:" and "--- FAIL:" blocks, PASS/ok.

// goBench is one parsed gobench-<label>.txt.
type goBench struct {
	Label   string
	Command string            // from the "# command:" line (or the first comment)
	Config  map[string]string // goos, goarch, pkg, cpu, and "# key: value" lines
	Benches []*benchStat      // in order of first appearance
	Skips   map[string]string // benchmark name -> reason it was skipped
	Fails   []string          // benchmarks (or the package) that failed
}

// benchStat is one benchmark's figures, the median of its samples per unit.
type benchStat struct {
	Name    string
	Samples int
	Units   []string // in order of first appearance
	Values  map[string]float64
	samples map[string][]float64
}

func (b *goBench) find(name string) *benchStat {
	for _, s := range b.Benches {
		if s.Name == name {
			return s
		}
	}
	return nil
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// benchName strips the -GOMAXPROCS suffix go test appends.
func benchName(s string) string { return procsSuffix.ReplaceAllString(s, "") }

// fileLinePrefix matches the "file_test.go:123: " that t.Log and t.Skip put
// before a message.
var fileLinePrefix = regexp.MustCompile(`^[\w./-]+\.go:\d+: `)

func parseGoBench(label string, r io.Reader) (*goBench, error) {
	gb := &goBench{Label: label, Config: map[string]string{}, Skips: map[string]string{}}
	byName := map[string]*benchStat{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var pending string  // a benchmark name printed alone, its figures to follow
	var lastLog string  // the last log line since pending was printed (-v: a skip's reason comes before "--- SKIP:")
	var skipName string // the last "--- SKIP:" name, waiting for its reason (without -v it follows)
	var indentSkip int  // indentation of that "--- SKIP:" line
	first := true
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		if skipName != "" {
			if trimmed != "" && indent > indentSkip && !strings.HasPrefix(trimmed, "---") {
				if gb.Skips[skipName] == "" {
					gb.Skips[skipName] = fileLinePrefix.ReplaceAllString(trimmed, "")
				}
				continue
			}
			skipName = ""
		}
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "#"):
			c := strings.TrimSpace(strings.TrimPrefix(trimmed, "#"))
			if k, v, ok := strings.Cut(c, ":"); ok && !strings.ContainsAny(k, " \t'\"") {
				k, v = strings.TrimSpace(k), strings.TrimSpace(v)
				if k == "command" {
					gb.Command = v
				} else {
					gb.Config[k] = v
				}
			} else if first && gb.Command == "" {
				gb.Command = c
			}
		case strings.HasPrefix(trimmed, "--- SKIP: "):
			skipName = benchName(strings.Fields(strings.TrimPrefix(trimmed, "--- SKIP: "))[0])
			indentSkip = indent
			if skipName == pending && lastLog != "" {
				gb.Skips[skipName] = lastLog
			} else {
				gb.Skips[skipName] = gb.Skips[skipName] // "" until a reason is seen
			}
		case strings.HasPrefix(trimmed, "--- FAIL: "):
			gb.Fails = append(gb.Fails, benchName(strings.Fields(strings.TrimPrefix(trimmed, "--- FAIL: "))[0]))
		case trimmed == "FAIL" || strings.HasPrefix(trimmed, "FAIL\t") || strings.HasPrefix(trimmed, "panic:"):
			gb.Fails = append(gb.Fails, trimmed)
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) == 1 {
				pending = benchName(f[0])
				lastLog = ""
				continue
			}
			pending = ""
			addBenchLine(gb, byName, benchName(f[0]), f[1:])
		case pending != "" && isCount(strings.Fields(trimmed)):
			addBenchLine(gb, byName, pending, strings.Fields(trimmed))
			pending = ""
		case indent > 0 && pending != "" && !strings.HasPrefix(trimmed, "---"):
			lastLog = fileLinePrefix.ReplaceAllString(trimmed, "")
		default:
			if k, v, ok := strings.Cut(line, ": "); ok && indent == 0 && !strings.Contains(k, " ") {
				switch k {
				case "goos", "goarch", "pkg", "cpu":
					gb.Config[k] = strings.TrimSpace(v)
				}
			}
		}
		first = false
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, b := range gb.Benches {
		b.Values = map[string]float64{}
		for u, xs := range b.samples {
			b.Values[u] = median(xs)
		}
	}
	// A benchmark that ran is not skipped (sub-benchmarks may have been).
	for name := range gb.Skips {
		if byName[name] != nil {
			delete(gb.Skips, name)
		}
	}
	return gb, nil
}

func isCount(f []string) bool {
	if len(f) < 3 {
		return false
	}
	_, err := strconv.ParseInt(f[0], 10, 64)
	return err == nil
}

// addBenchLine adds "N value unit value unit ..." to the named benchmark.
func addBenchLine(gb *goBench, byName map[string]*benchStat, name string, f []string) {
	if !isCount(f) {
		return
	}
	b := byName[name]
	if b == nil {
		b = &benchStat{Name: name, samples: map[string][]float64{}}
		byName[name] = b
		gb.Benches = append(gb.Benches, b)
	}
	b.Samples++
	for i := 1; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		u := f[i+1]
		if _, ok := b.samples[u]; !ok {
			b.Units = append(b.Units, u)
		}
		b.samples[u] = append(b.samples[u], v)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
