package possum_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/seed475afdc4/possum"
)

var benchSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}}

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

// fill puts n values of size bytes under keys k0..k(n-1).
func fill(b *testing.B, c *possum.Cache, n, size int) {
	batch := c.NewBatch()
	v := randBytes(size, 1)
	for i := range n {
		batch.PutBytes(context.Background(), "k"+strconv.Itoa(i), v)
	}
	if err := batch.Commit(context.Background()); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkGet(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			c, _ := benchCache(b, nil)
			const keys = 256
			fill(b, c, keys, s.n)
			buf := make([]byte, 0, s.n)
			b.SetBytes(int64(s.n))
			i := 0
			for b.Loop() {
				var err error
				if buf, err = c.GetAppend(context.Background(), buf[:0], "k"+strconv.Itoa(i%keys)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkGetMiss(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, 256, 100)
	b.Run("same key", func(b *testing.B) { // a cached negative answer
		for b.Loop() {
			c.Get(context.Background(), "absent")
		}
	})
	b.Run("distinct keys", func(b *testing.B) { // one manifest lookup each
		i := 0
		for b.Loop() {
			c.Get(context.Background(), "absent"+strconv.Itoa(i))
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
				fill(b, c, 256, 4<<10)
				if locked {
					release := holdWriteLock(b, dir)
					defer release()
				}
				buf := make([]byte, 0, 4<<10)
				i := 0
				for b.Loop() {
					var err error
					if buf, err = c.GetAppend(context.Background(), buf[:0], "k"+strconv.Itoa(i%256)); err != nil {
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
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"BEGIN IMMEDIATE", "INSERT INTO settings (name, value) VALUES ('bench-lock', 1)"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
	return func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

func BenchmarkPut(b *testing.B) {
	for _, s := range benchSizes {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", s.name, par), func(b *testing.B) {
				c, _ := benchCache(b, nil)
				v := randBytes(s.n, 2)
				b.SetBytes(int64(s.n))
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if err := c.PutBytes(context.Background(), "k"+strconv.Itoa(i%1024), v); err != nil {
							b.Fatal(err)
						}
						i++
					}
				})
			})
		}
	}
}

func BenchmarkPutStream64MiB(b *testing.B) {
	c, _ := benchCache(b, nil)
	v := randBytes(64<<20, 3)
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := c.Put(context.Background(), "big", bytes.NewReader(v)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatch100x4KiB(b *testing.B) {
	c, _ := benchCache(b, nil)
	v := randBytes(4<<10, 4)
	b.SetBytes(100 * int64(len(v)))
	for b.Loop() {
		batch := c.NewBatch()
		for i := range 100 {
			batch.PutBytes(context.Background(), "b"+strconv.Itoa(i), v)
		}
		if err := batch.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList100(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, 10_000, 10)
	for b.Loop() {
		n := 0
		for _, err := range c.List(context.Background(), "k1") { // k1, k10.., k100.., k1000..: 1111 keys
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

func BenchmarkDelete(b *testing.B) {
	c, _ := benchCache(b, nil)
	v := randBytes(4<<10, 5)
	i := 0
	for b.Loop() {
		b.StopTimer()
		c.PutBytes(context.Background(), "d", v)
		b.StartTimer()
		if err := c.Delete(context.Background(), "d"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEvict measures puts into a full cache: every put evicts and
// punches what it evicted.
func BenchmarkEvict(b *testing.B) {
	c, _ := benchCache(b, &possum.Options{Capacity: 16 << 20})
	v := randBytes(256<<10, 6)
	b.SetBytes(int64(len(v)))
	i := 0
	for b.Loop() {
		if err := c.PutBytes(context.Background(), "e"+strconv.Itoa(i), v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkOpen1MiB opens and closes a 1 MiB value: the clone path on xfs
// and btrfs, the lock path elsewhere.
func BenchmarkOpen1MiB(b *testing.B) {
	c, _ := benchCache(b, nil)
	c.PutBytes(context.Background(), "v", randBytes(1<<20, 7))
	for b.Loop() {
		v, err := c.Open(context.Background(), "v")
		if err != nil {
			b.Fatal(err)
		}
		v.Close()
	}
	st := c.Stats()
	b.ReportMetric(float64(st.OpenedByClone)/float64(st.OpenedByClone+st.OpenedByLock), "clone-share")
}

func BenchmarkSnapshotPrefix100(b *testing.B) {
	c, _ := benchCache(b, nil)
	fill(b, c, 100, 4<<10)
	for b.Loop() {
		s, err := c.SnapshotPrefix(context.Background(), "k")
		if err != nil || s.Len() != 100 {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkRawPread is the physical limit Get is measured against: pread
// of a value's size from one plain file in the page cache.
func BenchmarkRawPread(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			const keys = 256
			for i := range keys {
				f.WriteAt(randBytes(s.n, 1), int64(i*s.n))
			}
			buf := make([]byte, s.n)
			b.SetBytes(int64(s.n))
			i := 0
			for b.Loop() {
				if _, err := f.ReadAt(buf, int64(i%keys*s.n)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
