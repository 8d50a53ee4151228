package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/seed475afdc4/possum/bench/stores"
)

// How a cell is measured (the report relies on this):
//
//   - get-hot starts with an untimed, checked pass over every key (the
//     warm-up), then waits warmPause, for every store alike, so that what
//     the pass set off in the background (possum writes the last use of
//     values read in the older half of its span to its manifest; SQLite
//     stores checkpoint) is not counted as hot reads. Those costs show in
//     the mixed cells, where reads and writes interleave.
//   - get-hot-paired (paired.go) is possum's 1-goroutine get-hot against
//     raw's in alternating slices of one pair of stores, loaded and warmed
//     alike: a ratio per pair of adjacent slices, free of the drift between
//     cells that run minutes apart. The hot-read targets use its median.
//   - Latency: each single store call is timed with time.Now/time.Since
//     (monotonic) around the call only; encoding the value before a put and
//     checking it after a get are outside. Every call goes into an HDR
//     histogram (1 ns .. 100 s, 3 significant digits); P50Nanos and P99Nanos
//     come from the merged histogram of all goroutines (and processes).
//   - Seconds: per goroutine, the sum of its call durations; the cell's
//     Seconds is the max over goroutines (and over processes for mixed-proc).
//     So key generation, encoding and checking are excluded, but concurrency
//     counts: 8 goroutines busy for 1 s each is Seconds=1.
//   - OpsPerSec = Ops / Seconds; MBPerSec = Ops*ValueSize / Seconds / 1e6
//     (0 for get-miss). Ops counts failed calls too (they are in Errors).
//   - BytesWrittenPerOp: delta of write_bytes in /proc/self/io over the cell,
//     plus the store's server (stores.Server) and, for mixed-proc, each
//     child's own delta over its run; divided by Ops. -1 if unreadable.
//     The kernel counts write_bytes when a clean page becomes dirty, so every
//     cell starts after a syncfs of the store's filesystem (settle), and a
//     page written twice within one cell (a WAL header, a B-tree root, a
//     meta page) counts once: the figure is a lower bound on what reaches the
//     disk, without the filesystem's journal. It includes the writes of the
//     store's background goroutines during the cell. tmpfs counts nothing.
//   - DiskUsed: sum of st_blocks*512 over the store's directory after the
//     cell; -1 for memcached (its data is in the server's memory).
//   - DataBytes: live logical bytes, keys*ValueSize (every workload keeps
//     all keys present).

// histogram bounds, in nanoseconds.
const (
	histMin    = 1
	histMax    = int64(100 * time.Second)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// errLog prints the first few errors of a cell to stderr with details.
type errLog struct {
	mu      sync.Mutex
	printed int
	logf    func(format string, args ...any)
	prefix  string
}

const errorsShown = 5

func (e *errLog) report(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.printed++
	if e.printed > errorsShown {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if e.printed == errorsShown {
		msg += " (further errors of this cell not shown)"
	}
	e.logf("ERROR %s: %s", e.prefix, msg)
}

// worker is one goroutine's view of a cell.
type worker struct {
	ctx   context.Context
	st    stores.Store
	codec *valueCodec
	errs  *errLog
	rng   *rand.Rand

	hist   *hdrhistogram.Histogram
	ops    int64
	errors int64
	busy   time.Duration

	val []byte // put buffer
	buf []byte // get buffer
}

func newWorker(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, seed uint64, id int) *worker {
	return &worker{
		ctx: ctx, st: st, codec: codec, errs: errs,
		rng:  rand.New(rand.NewPCG(seed, uint64(id)+1)),
		hist: newHist(),
	}
}

func (w *worker) record(d time.Duration) {
	w.ops++
	w.busy += d
	w.hist.RecordValue(max(int64(d), histMin))
}

func (w *worker) fail(format string, args ...any) {
	w.errors++
	w.errs.report(format, args...)
}

// put writes (key, version) and returns when the call ended.
func (w *worker) put(key string, version uint64) time.Time {
	w.val = w.codec.encode(w.val, key, version)
	t0 := time.Now()
	err := w.st.Put(w.ctx, key, w.val)
	t1 := time.Now()
	w.record(t1.Sub(t0))
	if err != nil {
		w.fail("put %s (version %d): %v", key, version, err)
	}
	return t1
}

// getResult is what a get found.
type getResult int

const (
	found getResult = iota
	missed
	failed
)

// get reads key and checks the value. A miss is not counted as an error
// here: whether it is one depends on the workload.
func (w *worker) get(key string) (getResult, time.Time) {
	t0 := time.Now()
	v, err := w.st.Get(w.ctx, key, w.buf)
	t1 := time.Now()
	w.record(t1.Sub(t0))
	if v != nil {
		w.buf = v[:0]
	}
	if errors.Is(err, stores.ErrMiss) {
		return missed, t1
	}
	if err != nil {
		w.fail("get %s: %v", key, err)
		return failed, t1
	}
	if _, err := w.codec.check(key, v); err != nil {
		w.fail("get %s: bad value: %v", key, err)
		return failed, t1
	}
	return found, t1
}

// getPresent reads a key that must be there: a miss is an error.
func (w *worker) getPresent(key string) time.Time {
	r, t := w.get(key)
	if r == missed {
		w.fail("get %s: miss, but the key was written", key)
	}
	return t
}

// getAbsent reads a key that was never written: anything but a miss is an
// error.
func (w *worker) getAbsent(key string) time.Time {
	t0 := time.Now()
	v, err := w.st.Get(w.ctx, key, w.buf)
	t1 := time.Now()
	w.record(t1.Sub(t0))
	if v != nil {
		w.buf = v[:0]
	}
	switch {
	case errors.Is(err, stores.ErrMiss):
	case err != nil:
		w.fail("get %s (never written): %v", key, err)
	default:
		w.fail("get %s (never written): found a %d-byte value", key, len(v))
	}
	return t1
}

// cellOutcome is the merged measurement of a cell.
type cellOutcome struct {
	ops, errors int64
	seconds     float64
	hist        *hdrhistogram.Histogram
	writeBytes  int64 // -1: unknown
}

func (o *cellOutcome) addWorker(w *worker) {
	o.ops += w.ops
	o.errors += w.errors
	o.seconds = max(o.seconds, w.busy.Seconds())
	o.hist.Merge(w.hist)
}

// runWorkers runs fn on g goroutines started together and merges them.
// fn returns when its worker is done (deadline or work exhausted).
func runWorkers(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, seed uint64, g int, fn func(w *worker, i int)) *cellOutcome {
	ws := make([]*worker, g)
	for i := range ws {
		ws[i] = newWorker(ctx, st, codec, errs, seed, i)
	}
	io := startIO(st)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, w := range ws {
		wg.Go(func() {
			<-start
			fn(w, i)
		})
	}
	close(start)
	wg.Wait()
	o := &cellOutcome{hist: newHist(), writeBytes: io.delta()}
	for _, w := range ws {
		o.addWorker(w)
	}
	return o
}

// until says whether a time-bound loop goes on at time t.
type until struct {
	ctx      context.Context
	deadline time.Time
}

func (u until) more(t time.Time) bool { return t.Before(u.deadline) && u.ctx.Err() == nil }

// versions hands out versions for puts, so re-puts write different bytes.
var versions atomic.Uint64

// Workloads on an open, loaded store. Each returns the outcome of one cell.

// cellLoad puts keys [0, n) once, in order, on one goroutine: the load, and
// the "put" cell at 1 goroutine.
func cellLoad(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, n int) *cellOutcome {
	return runWorkers(ctx, st, codec, errs, 1, 1, func(w *worker, _ int) {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			w.put(keyName(i), 0)
		}
	})
}

// cellReput re-puts the loaded keys on g goroutines, each going in order
// through its own share of the key range with a new version, until d has
// passed or its share is done (each key at most once per cell).
func cellReput(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, n, g int, d time.Duration) *cellOutcome {
	u := until{ctx, time.Now().Add(d)}
	return runWorkers(ctx, st, codec, errs, 2, g, func(w *worker, id int) {
		lo, hi := n*id/g, n*(id+1)/g
		for i := lo; i < hi; i++ {
			if !u.more(w.put(keyName(i), versions.Add(1))) {
				break
			}
		}
	})
}

// warm reads every key once (untimed use: brings the values into the page
// cache and the stores' caches) and returns the errors.
func warm(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, n int) int64 {
	o := runWorkers(ctx, st, codec, errs, 3, 1, func(w *worker, _ int) {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			w.getPresent(keyName(i))
		}
	})
	return o.errors
}

// cellGetHot reads uniformly random loaded keys on g goroutines for d.
func cellGetHot(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, n, g int, d time.Duration) *cellOutcome {
	u := until{ctx, time.Now().Add(d)}
	return runWorkers(ctx, st, codec, errs, 4, g, func(w *worker, _ int) {
		for u.more(w.getPresent(keyName(w.rng.IntN(n)))) {
		}
	})
}

// cellGetMiss reads keys that were never written, on one goroutine, for d.
func cellGetMiss(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, n int, d time.Duration) *cellOutcome {
	u := until{ctx, time.Now().Add(d)}
	return runWorkers(ctx, st, codec, errs, 5, 1, func(w *worker, _ int) {
		for u.more(w.getAbsent(missKey(w.rng, n))) {
		}
	})
}

// mixedLoop is one goroutine of the mixed workload: 90% gets, 10% puts of
// new versions, keys Zipf-distributed over the loaded set. A get must find
// some valid version of its key.
func mixedLoop(w *worker, n int, u until) {
	z := newZipfPicker(w.rng, n)
	for {
		key := keyName(z.next())
		var t time.Time
		if w.rng.IntN(10) == 0 {
			t = w.put(key, versions.Add(1))
		} else {
			t = w.getPresent(key)
		}
		if !u.more(t) {
			return
		}
	}
}

// cellMixed runs the mixed workload on g goroutines for d.
func cellMixed(ctx context.Context, st stores.Store, codec *valueCodec, errs *errLog, n, g int, d time.Duration) *cellOutcome {
	u := until{ctx, time.Now().Add(d)}
	return runWorkers(ctx, st, codec, errs, 6, g, func(w *worker, _ int) {
		mixedLoop(w, n, u)
	})
}

// result turns an outcome into a Result row.
func (o *cellOutcome) result(kind stores.Kind, workload string, size, g, procs int) Result {
	r := Result{
		Store: kind.Name, Workload: workload, ValueSize: size,
		Goroutines: g, Processes: procs,
		Ops: o.ops, Errors: o.errors, Seconds: o.seconds,
		BytesWrittenPerOp: -1, DiskUsed: -1,
	}
	if o.seconds > 0 {
		r.OpsPerSec = float64(o.ops) / o.seconds
		if workload != "get-miss" {
			r.MBPerSec = float64(o.ops) * float64(size) / o.seconds / 1e6
		}
	}
	if o.hist != nil && o.hist.TotalCount() > 0 {
		r.P50Nanos = o.hist.ValueAtQuantile(50)
		r.P99Nanos = o.hist.ValueAtQuantile(99)
	}
	if o.writeBytes >= 0 && o.ops > 0 {
		r.BytesWrittenPerOp = float64(o.writeBytes) / float64(o.ops)
	}
	return r
}

// warmPause is how long get-hot waits after its warm-up pass (a tenth of it
// with -quick): see "How a cell is measured" above.
const warmPause = 2 * time.Second

// warmPause is the pause get-hot takes after its warm-up pass in this run.
func (c *config) warmPause() time.Duration {
	if c.quick {
		return warmPause / 10
	}
	return warmPause
}
