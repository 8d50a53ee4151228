package stores

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func value(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*131 + i*7 + i>>8)
	}
	return b
}

func openKind(t *testing.T, k Kind, cfg Config) Store {
	t.Helper()
	if k.Name == "memcached" {
		if _, err := memcachedBinary(); err != nil {
			t.Skip(err)
		}
	}
	s, err := k.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", k.Name, err)
	}
	return s
}

func mustGet(t *testing.T, s Store, key string, want []byte, buf []byte) {
	t.Helper()
	got, err := s.Get(context.Background(), key, buf)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %q: %d bytes, want %d (equal prefix: %v)", key, len(got), len(want), len(got) > 0 && len(want) > 0 && got[0] == want[0])
	}
}

func mustMiss(t *testing.T, s Store, key string) {
	t.Helper()
	got, err := s.Get(context.Background(), key, make([]byte, 0, 16))
	if !errors.Is(err, ErrMiss) {
		t.Fatalf("get %q: %d bytes, err %v; want ErrMiss", key, len(got), err)
	}
}

func TestRegistry(t *testing.T) {
	var names []string
	for _, k := range All() {
		names = append(names, k.Name)
		if k.Open == nil || k.Note == "" {
			t.Errorf("%s: Open or Note missing", k.Name)
		}
		if got, ok := ByName(k.Name); !ok || got.Name != k.Name {
			t.Errorf("ByName(%q) = %v, %v", k.Name, got.Name, ok)
		}
	}
	if want := "[raw possum squirrel diskv bbolt memcached]"; fmt.Sprint(names) != want {
		t.Errorf("All() = %v, want %v", names, want)
	}
	if _, ok := ByName("nope"); ok {
		t.Error("ByName(nope) found something")
	}
}

func TestStores(t *testing.T) {
	for _, k := range All() {
		t.Run(k.Name, func(t *testing.T) {
			ctx := context.Background()
			s := openKind(t, k, Config{Dir: t.TempDir(), MaxValue: 1 << 20})
			closed := false
			defer func() {
				if !closed {
					s.Close()
				}
			}()

			for i, n := range []int{100, 4 << 10, 1 << 20} {
				key := fmt.Sprintf("k%08d", i)
				v := value(i, n)
				if err := s.Put(ctx, key, v); err != nil {
					t.Fatalf("put %d bytes: %v", n, err)
				}
				mustGet(t, s, key, v, nil)                    // buffer grown
				mustGet(t, s, key, v, make([]byte, 0, n))     // exactly enough
				mustGet(t, s, key, v, make([]byte, 7, 2<<20)) // plenty, not empty
			}

			// Replace, with a shorter and then a longer value.
			key := "k00000000"
			for _, n := range []int{10, 5000} {
				v := value(n, n)
				if err := s.Put(ctx, key, v); err != nil {
					t.Fatal(err)
				}
				mustGet(t, s, key, v, make([]byte, 0, 64))
			}

			mustMiss(t, s, "k99999999")
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("delete: %v", err)
			}
			mustMiss(t, s, key)
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("delete of a missing key: %v", err)
			}
			if err := s.Delete(ctx, "never-there"); err != nil {
				t.Fatalf("delete of a missing key: %v", err)
			}

			// Keys no file system or protocol likes still work.
			for i, odd := range []string{"a/b", "../x", "with space", "é\x00\n", string(bytes.Repeat([]byte("x"), 300)), "#k", "=k", ".hidden"} {
				v := value(i, 50+i)
				if err := s.Put(ctx, odd, v); err != nil {
					t.Fatalf("put %q: %v", odd, err)
				}
				mustGet(t, s, odd, v, nil)
			}
			mustMiss(t, s, "#")

			// Many goroutines, distinct keys.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 0, 8<<10)
					for i := 0; i < 30; i++ {
						key := fmt.Sprintf("g%d-%06d", g, i)
						v := value(g*1000+i, 100+i*50)
						if err := s.Put(ctx, key, v); err != nil {
							errs <- fmt.Errorf("put %s: %w", key, err)
							return
						}
						got, err := s.Get(ctx, key, buf)
						if err != nil {
							errs <- fmt.Errorf("get %s: %w", key, err)
							return
						}
						if !bytes.Equal(got, v) {
							errs <- fmt.Errorf("get %s: wrong value", key)
							return
						}
						buf = got
						if i%5 == 0 {
							if err := s.Delete(ctx, key); err != nil {
								errs <- fmt.Errorf("delete %s: %w", key, err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			closed = true
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

// duBytes is what dir's files occupy on disk.
func duBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

func TestBounded(t *testing.T) {
	for _, k := range All() {
		if !k.Bounded {
			continue
		}
		t.Run(k.Name, func(t *testing.T) {
			ctx := context.Background()
			capacity, size := 8<<20, 64<<10
			if k.Name == "memcached" {
				capacity, size = 64<<20, 256<<10 // memcached's least -m here is 64 MB
			}
			dir := t.TempDir()
			s := openKind(t, k, Config{Dir: dir, Capacity: int64(capacity), MaxValue: size})
			defer s.Close()
			n := 4 * capacity / size
			// k00000000 is read after every put: an LRU store keeps it.
			for i := 0; i < n; i++ {
				if err := s.Put(ctx, fmt.Sprintf("k%08d", i), value(i, size)); err != nil {
					t.Fatalf("put %d: %v", i, err)
				}
				if _, err := s.Get(ctx, "k00000000", nil); err != nil && !errors.Is(err, ErrMiss) {
					t.Fatalf("get: %v", err)
				}
			}
			_, err := s.Get(ctx, "k00000000", nil)
			t.Logf("%s: the hot key after %d puts: %v", k.Name, n, err)
			// possum records reads about once a second, longer than this
			// test; memcached bumps an item at most once a minute.
			if k.Name == "squirrel" && err != nil {
				t.Errorf("squirrel evicted the key read after every put: %v", err)
			}
			hits := 0
			buf := make([]byte, 0, size)
			for i := 0; i < n; i++ {
				_, err := s.Get(ctx, fmt.Sprintf("k%08d", i), buf)
				switch {
				case err == nil:
					hits++
				case !errors.Is(err, ErrMiss):
					t.Fatalf("get %d: %v", i, err)
				}
			}
			t.Logf("%s kept %d of %d values (%d MiB of %d)", k.Name, hits, n, hits*size>>20, n*size>>20)
			if hits == n {
				t.Errorf("kept all %d values (%d MiB) with a capacity of %d MiB", n, n*size>>20, capacity>>20)
			}
			if hits == 0 {
				t.Errorf("kept nothing")
			}
			if k.Name == "possum" {
				// Loosely: the bound plus a few values and a WAL checkpoint.
				if du := duBytes(t, dir); du > 3*int64(capacity) {
					t.Errorf("possum directory holds %d MiB with a capacity of %d MiB", du>>20, capacity>>20)
				}
			}
		})
	}
}

func TestMemcachedShared(t *testing.T) {
	if _, err := memcachedBinary(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{Dir: dir, MaxValue: 1 << 20}
	a, err := Memcached.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr, err := os.ReadFile(filepath.Join(dir, memcachedAddrFile))
	if err != nil {
		t.Fatal(err)
	}
	pid := a.(Server).ServerPID()
	if pid <= 0 {
		t.Fatalf("ServerPID = %d", pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/io", pid)); err != nil && !errors.Is(err, fs.ErrPermission) {
		t.Errorf("server process: %v", err)
	}

	b, err := Memcached.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.(Server).ServerPID(); got != pid {
		t.Errorf("second store's ServerPID = %d, want %d", got, pid)
	}
	v := value(1, 1000)
	if err := a.Put(ctx, "shared", v); err != nil {
		t.Fatal(err)
	}
	mustGet(t, b, "shared", v, nil)
	if err := b.Delete(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, a, "shared")
	// Closing a joiner leaves the server running.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "after", v); err != nil {
		t.Fatalf("put after the joiner closed: %v", err)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, memcachedAddrFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("address file after close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", string(bytes.TrimSpace(addr)), time.Second); err == nil {
		c.Close()
		t.Errorf("server at %s still accepts connections after Close", addr)
	}
}

// A second Store on the same directory (as another process would open it)
// sees the first one's values, for the stores that share.
func TestSharedDir(t *testing.T) {
	for _, k := range All() {
		if !k.MultiProcess || k.Name == "memcached" {
			continue
		}
		t.Run(k.Name, func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{Dir: t.TempDir(), MaxValue: 64 << 10}
			a := openKind(t, k, cfg)
			defer a.Close()
			b := openKind(t, k, cfg)
			defer b.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for g, s := range []Store{a, b, a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 40; i++ {
						key := fmt.Sprintf("s%d-%d", g, i)
						v := value(i, 1000)
						if err := s.Put(ctx, key, v); err != nil {
							errs <- fmt.Errorf("put %s: %w", key, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for g, s := range []Store{b, a, b, a} {
				for i := 0; i < 40; i++ {
					mustGet(t, s, fmt.Sprintf("s%d-%d", g, i), value(i, 1000), nil)
				}
			}
		})
	}
}

func TestRawGetAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instruments allocations")
	}
	ctx := context.Background()
	s := openKind(t, Raw, Config{Dir: t.TempDir(), MaxValue: 64 << 10})
	defer s.Close()
	v := value(3, 4096)
	if err := s.Put(ctx, "k1", v); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 64<<10)
	allocs := testing.AllocsPerRun(100, func() {
		got, err := s.Get(ctx, "k1", buf)
		if err != nil || len(got) != len(v) {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("raw Get allocates %v times per call", allocs)
	}
}

// TestMultiProcess has child processes (this test binary again) put into
// one directory at once, then reads everything they wrote, for every store
// that says it can be shared between processes.
func TestMultiProcess(t *testing.T) {
	if child := os.Getenv("STORES_TEST_CHILD"); child != "" {
		t.Skip("in a child")
	}
	for _, k := range All() {
		if !k.MultiProcess {
			continue
		}
		t.Run(k.Name, func(t *testing.T) {
			cfg := Config{Dir: t.TempDir(), MaxValue: 64 << 10}
			// The parent holds a store open too (for memcached: it starts the server).
			s := openKind(t, k, cfg)
			defer s.Close()
			const children, perChild = 3, 60
			var wg sync.WaitGroup
			outs := make([][]byte, children)
			errs := make([]error, children)
			for c := 0; c < children; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := exec.Command(os.Args[0], "-test.run=^TestMultiProcessChild$", "-test.v")
					cmd.Env = append(os.Environ(), fmt.Sprintf("STORES_TEST_CHILD=%s|%s|%d|%d", k.Name, cfg.Dir, c, perChild))
					outs[c], errs[c] = cmd.CombinedOutput()
				}()
			}
			wg.Wait()
			for c := range errs {
				if errs[c] != nil {
					t.Fatalf("child %d: %v\n%s", c, errs[c], outs[c])
				}
			}
			for c := 0; c < children; c++ {
				for i := 0; i < perChild; i++ {
					mustGet(t, s, fmt.Sprintf("p%d-%d", c, i), value(c*1000+i, 2000+i), nil)
				}
			}
		})
	}
}

func TestMultiProcessChild(t *testing.T) {
	child := os.Getenv("STORES_TEST_CHILD")
	if child == "" {
		t.Skip("run by TestMultiProcess")
	}
	var name, dir string
	var c, n int
	f := strings.Split(child, "|")
	name, dir = f[0], f[1]
	c, _ = strconv.Atoi(f[2])
	n, _ = strconv.Atoi(f[3])
	k, _ := ByName(name)
	ctx := context.Background()
	s, err := k.Open(ctx, Config{Dir: dir, MaxValue: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("p%d-%d", c, i)
		v := value(c*1000+i, 2000+i)
		if err := s.Put(ctx, key, v); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		// Read back something another child may be writing.
		other := fmt.Sprintf("p%d-%d", (c+1)%3, i)
		if _, err := s.Get(ctx, other, nil); err != nil && !errors.Is(err, ErrMiss) {
			t.Fatalf("get %s: %v", other, err)
		}
	}
}
