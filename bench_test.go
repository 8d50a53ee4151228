package possum_test

// Benchmarks of every public operation, with raw baselines (BenchmarkRawPread,
// BenchmarkRawPwrite) at the same sizes so that ratios can be computed within
// one run. Filesystem-specific costs are in bench_fs_test.go (BenchmarkFS*).
//
// Conventions:
//   - Sizes are 100B, 4KiB, 64KiB, 1MiB and 64MiB; "goroutines=N" runs the
//     operation from exactly N goroutines (not a multiple of GOMAXPROCS, as
//     b.RunParallel would).
//   - MB/s (b.SetBytes) counts the bytes of the values the operation moves.
//   - Get benchmarks use GetAppend into a reused buffer and report
//     allocations; keys are built before the timed loop, so allocs/op is
//     the library's own (except GetMiss/distinct_keys, which builds a key
//     per op: one allocation of its own).
//   - Setup is untimed: everything before b.Loop, or before the timer is
//     reset in benchConcurrent.

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/seed475afdc4/possum"
)

type benchSize struct {
	name string
	n    int
}

var benchSizes = []benchSize{
	{"100B", 100}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"64MiB", 64 << 20},
}

// benchGoroutines are the concurrency levels of the Get, Put and raw
// benchmarks.
var benchGoroutines = []int{1, 8}

var (
	benchDataMu sync.Mutex
	benchDataM  = map[int][]byte{}
)

// benchData returns n pseudo-random bytes, the same slice for every caller
// (never modify it): 64 MiB take a while to make.
func benchData(n int) []byte {
	benchDataMu.Lock()
	defer benchDataMu.Unlock()
	if v, ok := benchDataM[n]; ok {
		return v
	}
	v := make([]byte, n)
	var seed [32]byte
	seed[0] = byte(n)
	rand.NewChaCha8(seed).Read(v)
	benchDataM[n] = v
	return v
}

// benchSink keeps the compiler from dropping reads.
var benchSink byte

// benchKeys returns prefix0 .. prefix(n-1).
func benchKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

// readKeys is how many values the read benchmarks cycle through: 256, or
// fewer so that they hold at most 256 MiB.
func readKeys(size int) int { return max(1, min(256, (256<<20)/size)) }

// putKeys is how many keys the put benchmarks cycle through: 1024 (the
// first puts insert, later ones replace), 8 for 64 MiB values.
func putKeys(size int) int {
	if size > 1<<20 {
		return 8
	}
	return 1024
}

func benchCache(b *testing.B, opts *possum.Options) (*possum.Cache, string) {
	b.Helper()
	dir := b.TempDir()
	if opts == nil {
		opts = &possum.Options{}
	}
	if opts.Capacity == 0 {
		opts.Capacity = 8 << 30
	}
	c, err := possum.Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, dir
}

// fill puts v under every key, in batches of at most 256 MiB.
func fill(b *testing.B, c *possum.Cache, keys []string, v []byte) {
	b.Helper()
	batch := c.NewBatch()
	size := 0
	for _, k := range keys {
		if err := batch.PutBytes(ctx, k, v); err != nil {
			b.Fatal(err)
		}
		if size += len(v); size >= 256<<20 {
			if err := batch.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			batch, size = c.NewBatch(), 0
		}
	}
	if err := batch.Commit(ctx); err != nil {
		b.Fatal(err)
	}
}

// warm reads every key once, so that the timed reads find the values in
// the page cache and their locations in the location cache: the hot path.
func warm(b *testing.B, c *possum.Cache, keys []string) {
	b.Helper()
	var buf []byte
	for _, k := range keys {
		var err error
		if buf, err = c.GetAppend(ctx, buf[:0], k); err != nil {
			b.Fatal(err)
		}
	}
}

// benchConcurrent times op, called with 0, 1, 2, ... as i. With one
// goroutine it runs in a b.Loop loop. With more, it spreads b.N calls over
// exactly g goroutines, each with the op newOp made for it (its own
// buffers), the way b.RunParallel does but without rounding g to a multiple
// of GOMAXPROCS; the function is then called several times with growing
// b.N, so setup belongs to the caller's parent benchmark where it is
// costly.
func benchConcurrent(b *testing.B, g int, newOp func() func(i int) error) {
	b.Helper()
	if g == 1 {
		op := newOp()
		i := 0
		for b.Loop() {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
			i++
		}
		return
	}
	ops := make([]func(int) error, g)
	for w := range ops {
		ops[w] = newOp()
	}
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, op := range ops {
		wg.Go(func() {
			for !failed.Load() {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(int(i)); err != nil {
					failed.Store(true)
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
}

// reportStats reports per-op counts of what c's Stats counted between
// before and now.
func reportStats(b *testing.B, c *possum.Cache, before possum.Stats, n int, metrics ...string) {
	b.Helper()
	after := c.Stats()
	get := map[string]func(s possum.Stats) int64{
		"clones/op":        func(s possum.Stats) int64 { return s.OpenedByClone },
		"locks/op":         func(s possum.Stats) int64 { return s.OpenedByLock },
		"evictions/op":     func(s possum.Stats) int64 { return s.Evictions },
		"punches/op":       func(s possum.Stats) int64 { return s.Punches },
		"retries/op":       func(s possum.Stats) int64 { return s.ReadRetries },
		"clone-bytes/op":   func(s possum.Stats) int64 { return s.PutCloneBytes },
		"copy-bytes/op":    func(s possum.Stats) int64 { return s.PutCopyBytes },
		"copyrange-B/op":   func(s possum.Stats) int64 { return s.CopyRangeBytes },
		"truncations/op":   func(s possum.Stats) int64 { return s.Truncations },
		"files-removed/op": func(s possum.Stats) int64 { return s.FilesRemoved },
	}
	for _, m := range metrics {
		f := get[m]
		if f == nil {
			b.Fatalf("reportStats: no metric %q", m)
		}
		b.ReportMetric(float64(f(after)-f(before))/float64(max(n, 1)), m)
	}
}

// --- Get ---

// BenchmarkGet reads hot values (page cache and location cache warm) with
// GetAppend into a reused buffer, from 1 and 8 goroutines, and with the
// allocating Get for comparison ("allocating").
func BenchmarkGet(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			c, _ := benchCache(b, nil)
			keys := benchKeys("k", readKeys(s.n))
			fill(b, c, keys, benchData(s.n))
			warm(b, c, keys)
			for _, g := range benchGoroutines {
				b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(s.n))
					benchConcurrent(b, g, func() func(int) error {
						buf := make([]byte, 0, s.n)
						return func(i int) (err error) {
							buf, err = c.GetAppend(ctx, buf[:0], keys[i%len(keys)])
							return err
						}
					})
				})
			}
			b.Run("allocating", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(s.n))
				i := 0
				for b.Loop() {
					if _, err := c.Get(ctx, keys[i%len(keys)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

func BenchmarkGetMiss(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, benchKeys("k", 256), benchData(100))
	b.Run("same key", func(b *testing.B) { // a cached negative answer
		c.Get(ctx, "absent")
		b.ReportAllocs()
		for b.Loop() {
			c.Get(ctx, "absent")
		}
	})
	b.Run("distinct keys", func(b *testing.B) { // one manifest lookup each
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Get(ctx, "absent"+strconv.Itoa(i)) // one allocation of the benchmark's own
			i++
		}
	})
}

// BenchmarkGetWhileWriteLocked reads while another connection holds the
// manifest's write lock (an open BEGIN IMMEDIATE transaction that has
// written): reads must not wait for it. "cold" disables the location cache,
// so every Get asks the manifest.
func BenchmarkGetWhileWriteLocked(b *testing.B) {
	for _, locked := range []bool{false, true} {
		for _, cold := range []bool{false, true} {
			name := fmt.Sprintf("locked=%v/cold=%v", locked, cold)
			b.Run(name, func(b *testing.B) {
				opts := &possum.Options{}
				if cold {
					opts.LocationCacheSize = -1
				}
				c, dir := benchCache(b, opts)
				keys := benchKeys("k", 256)
				fill(b, c, keys, benchData(4<<10))
				warm(b, c, keys)
				if locked {
					release := holdWriteLock(b, dir)
					defer release()
				}
				b.ReportAllocs()
				b.SetBytes(4 << 10)
				buf := make([]byte, 0, 4<<10)
				i := 0
				for b.Loop() {
					var err error
					if buf, err = c.GetAppend(ctx, buf[:0], keys[i%len(keys)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// holdWriteLock takes the manifest's write lock from another connection
// and keeps it until release is called.
func holdWriteLock(b *testing.B, dir string) (release func()) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "manifest.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"BEGIN IMMEDIATE", "INSERT INTO settings (name, value) VALUES ('bench-lock', 1)"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	return func() {
		conn.ExecContext(ctx, "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

// BenchmarkStat describes a value without reading it.
func BenchmarkStat(b *testing.B) {
	c, _ := benchCache(b, nil)
	keys := benchKeys("k", 256)
	fill(b, c, keys, benchData(4<<10))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Stat(ctx, keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// --- Put ---

// BenchmarkPut puts values over putKeys keys (the first puts insert, the
// rest replace), each sub-benchmark into a fresh cache. Concurrent puts
// share commits (group commit).
func BenchmarkPut(b *testing.B) {
	for _, s := range benchSizes {
		for _, g := range benchGoroutines {
			b.Run(fmt.Sprintf("%s/goroutines=%d", s.name, g), func(b *testing.B) {
				c, _ := benchCache(b, nil)
				keys := benchKeys("k", putKeys(s.n))
				v := benchData(s.n)
				b.SetBytes(int64(s.n))
				benchConcurrent(b, g, func() func(int) error {
					return func(i int) error { return c.PutBytes(ctx, keys[i%len(keys)], v) }
				})
			})
		}
	}
}

// BenchmarkPutStream64MiB streams a value through Put from an io.Reader.
func BenchmarkPutStream64MiB(b *testing.B) {
	c, _ := benchCache(b, nil)
	v := benchData(64 << 20)
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := c.Put(ctx, "big", bytes.NewReader(v)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate4KiB writes a value through a Writer: Create, Write,
// Commit.
func BenchmarkCreate4KiB(b *testing.B) {
	c, _ := benchCache(b, nil)
	keys := benchKeys("k", 1024)
	v := benchData(4 << 10)
	b.SetBytes(int64(len(v)))
	i := 0
	for b.Loop() {
		w, err := c.Create(ctx, keys[i%len(keys)], nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(v); err != nil {
			b.Fatal(err)
		}
		if _, err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// --- Batches ---

func benchBatch(b *testing.B, n, size int) {
	c, _ := benchCache(b, nil)
	keys := benchKeys("b", n)
	v := benchData(size)
	b.SetBytes(int64(n * size))
	for b.Loop() {
		batch := c.NewBatch()
		for _, k := range keys {
			if err := batch.PutBytes(ctx, k, v); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatch100x4KiB puts 100 values of 4 KiB in one batch (replacing
// the previous iteration's).
func BenchmarkBatch100x4KiB(b *testing.B) { benchBatch(b, 100, 4<<10) }

// BenchmarkBatch1000x100B puts 1000 values of 100 B in one batch.
func BenchmarkBatch1000x100B(b *testing.B) { benchBatch(b, 1000, 100) }

// --- Listings ---

// BenchmarkList100 reads the first 100 keys of a prefix that has 1111
// (k1, k10.., k100.., k1000..) among 10,000.
func BenchmarkList100(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, benchKeys("k", 10_000), benchData(10))
	for b.Loop() {
		n := 0
		for _, err := range c.List(ctx, "k1") {
			if err != nil {
				b.Fatal(err)
			}
			n++
			if n == 100 {
				break
			}
		}
	}
}

// BenchmarkListAll10k lists all of a cache's 10,000 keys.
func BenchmarkListAll10k(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, benchKeys("k", 10_000), benchData(10))
	for b.Loop() {
		n := 0
		for _, err := range c.List(ctx, "") {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10_000 {
			b.Fatalf("listed %d keys, want 10000", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10_000), "ns/key")
}

// --- Open and snapshots ---

// benchOpen opens and closes a value of size bytes: values under 64 KiB
// are read into memory; larger ones are pinned, by a clone on xfs and
// btrfs, by a range lock elsewhere (clones/op, locks/op).
func benchOpen(b *testing.B, size int) {
	c, _ := benchCache(b, nil)
	b.ReportAllocs()
	benchOpenIn(b, c, size)
}

// benchOpenIn times Open and Close of a value of size bytes in c, and
// reports how many Opens cloned and how many locked.
func benchOpenIn(b *testing.B, c *possum.Cache, size int) {
	if err := c.PutBytes(ctx, "v", benchData(size)); err != nil {
		b.Fatal(err)
	}
	before := c.Stats()
	for b.Loop() {
		v, err := c.Open(ctx, "v")
		if err != nil {
			b.Fatal(err)
		}
		v.Close()
	}
	reportStats(b, c, before, b.N, "clones/op", "locks/op")
}

func BenchmarkOpen100B(b *testing.B)  { benchOpen(b, 100) }
func BenchmarkOpen1MiB(b *testing.B)  { benchOpen(b, 1<<20) }
func BenchmarkOpen64MiB(b *testing.B) { benchOpen(b, 64<<20) }

// BenchmarkSnapshot10 opens 10 keys at one instant (Snapshot), and closes
// them.
func BenchmarkSnapshot10(b *testing.B) {
	for _, s := range []benchSize{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}} {
		b.Run(s.name, func(b *testing.B) {
			c, _ := benchCache(b, nil)
			keys := benchKeys("s", 10)
			fill(b, c, keys, benchData(s.n))
			before := c.Stats()
			for b.Loop() {
				snap, err := c.Snapshot(ctx, keys...)
				if err != nil || snap.Len() != 10 {
					b.Fatal(snap.Len(), err)
				}
				snap.Close()
			}
			reportStats(b, c, before, b.N, "clones/op", "locks/op")
		})
	}
}

// BenchmarkSnapshotPrefix100 opens the 100 values (4 KiB) of a prefix and
// their listing at one instant, and closes them.
func BenchmarkSnapshotPrefix100(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, benchKeys("k", 100), benchData(4<<10))
	for b.Loop() {
		s, err := c.SnapshotPrefix(ctx, "k")
		if err != nil || s.Len() != 100 {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkValue1MiB reads an open 1 MiB value: Read to the end (checksum
// checked), ReadAt (no checksum), WriteTo into a regular file
// (copy_file_range), and Open+Bytes+Close (a mapping where it can).
func BenchmarkValue1MiB(b *testing.B) {
	const size = 1 << 20
	c, _ := benchCache(b, nil)
	if err := c.PutBytes(ctx, "v", benchData(size)); err != nil {
		b.Fatal(err)
	}
	open := func(b *testing.B) *possum.Value {
		v, err := c.Open(ctx, "v")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { v.Close() })
		return v
	}
	b.Run("Read", func(b *testing.B) {
		v := open(b)
		buf := make([]byte, 256<<10)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				m, err := v.Read(buf)
				n += m
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if n != size {
				b.Fatalf("read %d bytes", n)
			}
		}
	})
	b.Run("ReadAt", func(b *testing.B) {
		v := open(b)
		buf := make([]byte, size)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.ReadAt(buf, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WriteToFile", func(b *testing.B) {
		v := open(b)
		dst, err := os.Create(filepath.Join(b.TempDir(), "dst"))
		if err != nil {
			b.Fatal(err)
		}
		defer dst.Close()
		b.SetBytes(size)
		before := c.Stats()
		for b.Loop() {
			if _, err := v.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			if _, err := dst.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			if n, err := v.WriteTo(dst); err != nil || n != size {
				b.Fatal(n, err)
			}
		}
		reportStats(b, c, before, b.N, "copyrange-B/op")
	})
	b.Run("OpenBytes", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			v, err := c.Open(ctx, "v")
			if err != nil {
				b.Fatal(err)
			}
			p, err := v.Bytes()
			if err != nil || len(p) != size {
				b.Fatal(len(p), err)
			}
			for j := 0; j < len(p); j += 4096 { // touch every page
				benchSink += p[j]
			}
			v.Close()
		}
	})
}

// --- Delete, rename, prefixes ---

// BenchmarkDelete deletes a 4 KiB value (put again, untimed, before each).
func BenchmarkDelete(b *testing.B) {
	c, _ := benchCache(b, nil)
	v := benchData(4 << 10)
	for b.Loop() {
		b.StopTimer()
		if err := c.PutBytes(ctx, "d", v); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := c.Delete(ctx, "d"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRename renames a 4 KiB value back and forth between two keys
// (the target never exists).
func BenchmarkRename(b *testing.B) {
	c, _ := benchCache(b, nil)
	if err := c.PutBytes(ctx, "a", benchData(4<<10)); err != nil {
		b.Fatal(err)
	}
	names := [2]string{"a", "b"}
	i := 0
	for b.Loop() {
		if err := c.Rename(ctx, names[i%2], names[(i+1)%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDeletePrefix100 deletes a prefix of 100 values of 4 KiB (put
// again, untimed, before each).
func BenchmarkDeletePrefix100(b *testing.B) {
	c, _ := benchCache(b, nil)
	keys := benchKeys("p/", 100)
	v := benchData(4 << 10)
	for b.Loop() {
		b.StopTimer()
		fill(b, c, keys, v)
		b.StartTimer()
		if n, err := c.DeletePrefix(ctx, "p/"); err != nil || n != 100 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkMovePrefix100 moves a prefix of 100 keys back and forth.
func BenchmarkMovePrefix100(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, benchKeys("m/", 100), benchData(4<<10))
	prefixes := [2]string{"m/", "n/"}
	i := 0
	for b.Loop() {
		if n, err := c.MovePrefix(ctx, prefixes[i%2], prefixes[(i+1)%2]); err != nil || n != 100 {
			b.Fatal(n, err)
		}
		i++
	}
}

// --- Eviction and reclaim ---

// BenchmarkEvict puts 256 KiB values into a cache filled (untimed) to its
// 16 MiB capacity, so that every put makes room: a commit that finds the
// cache over capacity evicts down to 5% under it, several values at once,
// and punches them before returning. evictions/op and punches/op say how
// much of that each put pays; evictions/s is the eviction throughput.
func BenchmarkEvict(b *testing.B) {
	c, _ := benchCache(b, &possum.Options{Capacity: 16 << 20})
	v := benchData(256 << 10)
	i := 0
	for ; i < 80; i++ { // fill it: 20 MiB
		if err := c.PutBytes(ctx, "e"+strconv.Itoa(i), v); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(v)))
	before := c.Stats()
	for b.Loop() {
		if err := c.PutBytes(ctx, "e"+strconv.Itoa(i), v); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportStats(b, c, before, b.N, "evictions/op", "punches/op")
	b.ReportMetric(float64(c.Stats().Evictions-before.Evictions)/b.Elapsed().Seconds(), "evictions/s")
}

// benchReclaim times giving back the space of n values: one DeletePrefix
// of them, then Trim. Values of 64 KiB and more are punched by the
// deleting commit itself; smaller ones by Trim's reclaim pass (the
// background reclaimer's work, done at once). Before each round, untimed,
// the n values are put in one batch followed by a live value, so that the
// dead run is not the file's tail. MB/s counts the deleted values' bytes;
// MB/s-punched the bytes holes were punched for.
func benchReclaim(b *testing.B, c *possum.Cache, n, size int) {
	keys := benchKeys("r/", n)
	v := benchData(size)
	b.SetBytes(int64(n * size))
	before := c.Stats()
	round := 0
	for b.Loop() {
		b.StopTimer()
		batch := c.NewBatch()
		for _, k := range keys {
			if err := batch.PutBytes(ctx, k, v); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.PutBytes(ctx, "anchor/"+strconv.Itoa(round), v[:100]); err != nil {
			b.Fatal(err)
		}
		if err := batch.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		round++
		b.StartTimer()
		if m, err := c.DeletePrefix(ctx, "r/"); err != nil || m != n {
			b.Fatal(m, err)
		}
		if err := c.Trim(ctx); err != nil {
			b.Fatal(err)
		}
	}
	after := c.Stats()
	b.ReportMetric(float64(after.PunchedBytes-before.PunchedBytes)/1e6/b.Elapsed().Seconds(), "MB/s-punched")
	reportStats(b, c, before, b.N, "punches/op", "truncations/op", "files-removed/op")
	if after.DeadBytes != 0 {
		b.Logf("%d dead bytes left after Trim", after.DeadBytes)
	}
}

// BenchmarkReclaim deletes 256 values and trims (see benchReclaim).
func BenchmarkReclaim(b *testing.B) {
	for _, s := range []benchSize{{"4KiB", 4 << 10}, {"64KiB", 64 << 10}} {
		b.Run(s.name, func(b *testing.B) {
			c, _ := benchCache(b, nil)
			benchReclaim(b, c, 256, s.n)
		})
	}
}

// --- Whole cache ---

// BenchmarkOpenCache opens and closes an existing cache (what every run of
// a command-line tool pays).
func BenchmarkOpenCache(b *testing.B) {
	c, dir := benchCache(b, nil)
	fill(b, c, benchKeys("k", 100), benchData(4<<10))
	b.ReportAllocs()
	for b.Loop() {
		c2, err := possum.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := c2.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStats reads the cache's figures (which measure the directory's
// disk use).
func BenchmarkStats(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, benchKeys("k", 100), benchData(4<<10))
	for b.Loop() {
		if st := c.Stats(); st.Err != nil {
			b.Fatal(st.Err)
		}
	}
}

// BenchmarkVerify100x4KiB checks a cache of 100 values of 4 KiB.
func BenchmarkVerify100x4KiB(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, benchKeys("k", 100), benchData(4<<10))
	b.SetBytes(100 * 4 << 10)
	for b.Loop() {
		r, err := c.Verify(ctx, false)
		if err != nil || !r.OK() {
			b.Fatal(r.Problems, err)
		}
	}
}

// --- Raw baselines ---

// benchRawFile is one plain file of readKeys(size) slots of size bytes,
// written (so in the page cache).
func benchRawFile(b *testing.B, size int) (*os.File, int) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	slots := readKeys(size)
	v := benchData(size)
	for i := range slots {
		if _, err := f.WriteAt(v, int64(i*size)); err != nil {
			b.Fatal(err)
		}
	}
	return f, slots
}

// BenchmarkRawPread is the physical limit Get is measured against: pread
// of a value's size from one plain file in the page cache.
func BenchmarkRawPread(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			f, slots := benchRawFile(b, s.n)
			for _, g := range benchGoroutines {
				b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
					b.SetBytes(int64(s.n))
					benchConcurrent(b, g, func() func(int) error {
						buf := make([]byte, s.n)
						return func(i int) error {
							_, err := f.ReadAt(buf, int64(i%slots*s.n))
							return err
						}
					})
				})
			}
		})
	}
}

// BenchmarkRawPwrite is Put's physical limit: pwrite of a value's size
// into one plain file, over pages already in the page cache.
func BenchmarkRawPwrite(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			f, slots := benchRawFile(b, s.n)
			v := benchData(s.n)
			for _, g := range benchGoroutines {
				b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
					b.SetBytes(int64(s.n))
					benchConcurrent(b, g, func() func(int) error {
						return func(i int) error {
							_, err := f.WriteAt(v, int64(i%slots*s.n))
							return err
						}
					})
				})
			}
		})
	}
}
