package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed475afdc4/possum/bench/stores"
)

func TestMain(m *testing.M) {
	// mixed-proc re-executes the test binary as a child.
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// fakeStore is an in-memory Store. With capacity > 0 it evicts the oldest
// keys beyond it; with corrupt set it flips a byte of every value it returns.
type fakeStore struct {
	mu       sync.Mutex
	m        map[string][]byte
	order    []string
	bytes    int64
	capacity int64
	corrupt  bool
}

func (s *fakeStore) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[key]; ok {
		s.bytes -= int64(len(old))
	} else {
		s.order = append(s.order, key)
	}
	s.m[key] = slices.Clone(value)
	s.bytes += int64(len(value))
	for s.capacity > 0 && s.bytes > s.capacity && len(s.order) > 0 {
		k := s.order[0]
		s.order = s.order[1:]
		s.bytes -= int64(len(s.m[k]))
		delete(s.m, k)
	}
	return nil
}

func (s *fakeStore) Get(_ context.Context, key string, buf []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return buf[:0], stores.ErrMiss
	}
	buf = append(buf[:0], v...)
	if s.corrupt {
		buf[len(buf)/2] ^= 1
	}
	return buf, nil
}

func (s *fakeStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		s.bytes -= int64(len(v))
		delete(s.m, key)
		s.order = slices.DeleteFunc(s.order, func(k string) bool { return k == key })
	}
	return nil
}

func (s *fakeStore) Close() error { return nil }

func fakeKind(name string, corrupt bool) stores.Kind {
	return stores.Kind{
		Name: name,
		Open: func(_ context.Context, cfg stores.Config) (stores.Store, error) {
			return &fakeStore{m: map[string][]byte{}, capacity: cfg.Capacity, corrupt: corrupt}, nil
		},
		Bounded: true,
		Note:    "in-memory fake",
	}
}

func TestCodec(t *testing.T) {
	pool := newPool(4096)
	if !bytes.Equal(pool, newPool(4096)) || !bytes.Equal(newPool(100), pool[:poolSize(100)]) {
		t.Fatal("the pool is not deterministic")
	}
	for _, size := range []int{headerLen, 17, 100, 4096} {
		c := newCodec(pool, size)
		for _, version := range []uint64{0, 1, 1 << 50} {
			key := keyName(42)
			v := c.encode(nil, key, version)
			if len(v) != size {
				t.Fatalf("size %d: encoded %d bytes", size, len(v))
			}
			got, err := c.check(key, v)
			if err != nil || got != version {
				t.Fatalf("size %d version %d: check = %d, %v", size, version, got, err)
			}
			if _, err := c.check(keyName(43), v); err == nil {
				t.Errorf("size %d: value of another key passed", size)
			}
			if _, err := c.check(key, v[:size-1]); err == nil {
				t.Errorf("size %d: short value passed", size)
			}
			for _, i := range []int{0, 7, 8, 15, size / 2, size - 1} {
				bad := slices.Clone(v)
				bad[i] ^= 0x40
				if _, err := c.check(key, bad); err == nil {
					t.Errorf("size %d version %d: corrupt byte %d passed", size, version, i)
				}
			}
		}
	}
	// Different versions of one key differ (when the body has room to).
	c := newCodec(pool, 100)
	if bytes.Equal(c.encode(nil, "k", 1)[headerLen:], c.encode(nil, "k", 2)[headerLen:]) {
		t.Error("versions 1 and 2 have the same body")
	}
}

func TestKeyName(t *testing.T) {
	for _, i := range []int{0, 7, 123456789, 999999999} {
		if got, want := keyName(i), fmt.Sprintf("k%09d", i); got != want {
			t.Errorf("keyName(%d) = %q, want %q", i, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		k := missKey(r, 100_000)
		if len(k) != 10 || k <= keyName(100_000) {
			t.Fatalf("miss key %q inside the key set", k)
		}
	}
}

func TestZipfPicker(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 10, 128, 1000, 100_000} {
		p := newZipfPicker(r, n)
		counts := map[int]int{}
		const picks = 20000
		for range picks {
			k := p.next()
			if k < 0 || k >= n {
				t.Fatalf("n=%d: picked %d", n, k)
			}
			counts[k]++
		}
		if n >= 1000 {
			// Skewed: the hottest key gets far more than a uniform share,
			// and not every key is picked.
			top := 0
			for _, c := range counts {
				top = max(top, c)
			}
			if top < 20*picks/n || len(counts) == n {
				t.Errorf("n=%d: hottest key %d of %d picks, %d distinct keys: not skewed", n, top, picks, len(counts))
			}
		}
	}
}

// tinyConfig is a run small enough for a test.
func tinyConfig(t *testing.T, kinds ...stores.Kind) config {
	return config{
		scale: scale{
			sizes:     []int{100, 4096},
			duration:  50 * time.Millisecond,
			dataBytes: 64 << 10,
			minKeys:   16,
			maxKeys:   300,
			capSizes:  []int{4096},
		},
		quick:      true,
		kinds:      kinds,
		sizes:      []int{100, 4096},
		workloads:  allWorkloads,
		goroutines: []int{1, 2},
		dir:        t.TempDir(),
		label:      "test",
		out:        t.TempDir(),
	}
}

// runTiny runs cfg and checks the JSON round-trips into a Run.
func runTiny(t *testing.T, cfg config) *Run {
	t.Helper()
	var log bytes.Buffer
	run, err := benchmark(context.Background(), cfg, newProgress(&log))
	t.Logf("log:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	path, err := writeRun(cfg.out, run)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(cfg.out, "test.json") {
		t.Errorf("wrote %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.MarshalIndent(&back, "", "\t")
	if !bytes.Equal(bytes.TrimSpace(b), again) {
		t.Error("the JSON does not round-trip")
	}
	// Store directories are removed after use.
	if ents, _ := os.ReadDir(cfg.dir); len(ents) != 0 {
		t.Errorf("left %d entries in -dir", len(ents))
	}
	return &back
}

// checkResults checks the shape of a run: every cell there, run or skipped
// with a reason, and no errors unless wantErrors.
func checkResults(t *testing.T, cfg config, run *Run, wantErrors bool) {
	t.Helper()
	perSize := 3*len(cfg.goroutines) + 2
	if got, want := len(run.Results), len(cfg.kinds)*len(cfg.sizes)*perSize; got != want {
		t.Errorf("%d results, want %d", got, want)
	}
	if got, want := len(run.Capacity), len(cfg.kinds)*len(cfg.capSizes); got != want {
		t.Errorf("%d capacity runs, want %d", got, want)
	}
	if run.FS == "" || run.Machine.Cores == 0 || run.Command == "" || !run.Quick || run.Seconds <= 0 {
		t.Errorf("run header: %+v", run)
	}
	errs := int64(0)
	for _, r := range run.Results {
		errs += r.Errors
		if r.Skipped != "" {
			continue
		}
		if r.Ops == 0 || r.Seconds <= 0 || r.OpsPerSec <= 0 || r.P50Nanos <= 0 || r.P99Nanos < r.P50Nanos {
			t.Errorf("empty cell: %+v", r)
		}
		if (r.Workload == "get-miss") != (r.MBPerSec == 0) {
			t.Errorf("MBPerSec %v for %s", r.MBPerSec, r.Workload)
		}
		if r.DataBytes != int64(cfg.keys(r.ValueSize)*r.ValueSize) {
			t.Errorf("DataBytes %d for %s %d", r.DataBytes, r.Workload, r.ValueSize)
		}
		if r.Workload == "mixed-proc" && r.Processes != childProcs {
			t.Errorf("mixed-proc with %d processes", r.Processes)
		}
	}
	for _, c := range run.Capacity {
		errs += c.Errors
		if c.Skipped != "" {
			continue
		}
		if len(c.Samples) < 10 || c.HotKeys == 0 || c.HotSurvived > c.HotKeys || c.DataBytes < 2*c.Capacity {
			t.Errorf("capacity run: %+v", c)
		}
	}
	if (errs > 0) != wantErrors {
		t.Errorf("%d errors, want errors: %v", errs, wantErrors)
	}
}

func TestRunFake(t *testing.T) {
	cfg := tinyConfig(t, fakeKind("fake", false))
	run := runTiny(t, cfg)
	checkResults(t, cfg, run, false)
	for _, r := range run.Results {
		if r.Workload == "mixed-proc" && !strings.Contains(r.Skipped, "one process") {
			t.Errorf("mixed-proc of a single-process store: %+v", r)
		}
	}
	c := run.Capacity[0]
	if c.Skipped != "" || c.Capacity != capFloor || c.HotSurvived != 0 {
		// The fake evicts the oldest first, and the hot keys are the oldest.
		t.Errorf("capacity run: %+v", c)
	}
}

func TestRunCorrupt(t *testing.T) {
	cfg := tinyConfig(t, fakeKind("corrupt", true))
	cfg.sizes = []int{100}
	cfg.workloads = []string{"get-hot", "mixed"}
	cfg.goroutines = []int{1}
	run := runTiny(t, cfg)
	for _, r := range run.Results {
		if r.Errors == 0 || r.Ops == 0 {
			t.Errorf("corrupt values not caught, or the cell stopped: %+v", r)
		}
	}
}

func TestRunReal(t *testing.T) {
	var kinds []stores.Kind
	for _, name := range []string{"raw", "possum"} {
		k, err := kindByName(name)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, k)
	}
	cfg := tinyConfig(t, kinds...)
	run := runTiny(t, cfg)
	checkResults(t, cfg, run, false)
	for _, r := range run.Results {
		if r.Store == "possum" && r.Workload == "mixed-proc" && (r.Skipped != "" || r.Ops == 0) {
			t.Errorf("possum mixed-proc: %+v", r)
		}
		if r.Store == "possum" && r.Skipped == "" && r.DiskUsed <= 0 {
			t.Errorf("possum DiskUsed %d", r.DiskUsed)
		}
	}
	pairs, _ := cfg.pairedPlan()
	if len(run.Paired) != len(cfg.sizes) {
		t.Fatalf("%d paired runs, want one per size (%d)", len(run.Paired), len(cfg.sizes))
	}
	for i, p := range run.Paired {
		if p.ValueSize != cfg.sizes[i] || p.Store != "possum" || p.Against != "raw" || p.Skipped != "" || p.Errors != 0 ||
			len(p.Ratios()) != pairs || p.StoreP50 <= 0 || p.AgainstP99 < p.AgainstP50 || p.Keys != cfg.keys(p.ValueSize) {
			t.Errorf("paired run: %+v", p)
		}
	}
}

func TestRunPairedNeedsBoth(t *testing.T) {
	possum, _ := kindByName("possum")
	cfg := tinyConfig(t, possum)
	cfg.workloads = []string{"get-hot-paired"}
	run := runTiny(t, cfg)
	if len(run.Paired) != 0 || len(run.Results) != 0 {
		t.Errorf("without raw, a paired-only run measured %d paired runs and %d cells", len(run.Paired), len(run.Results))
	}
}
