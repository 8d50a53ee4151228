package possum_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed475afdc4/possum"
)

var ctx = context.Background()

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustGet(t *testing.T, c *possum.Cache, key string) []byte {
	t.Helper()
	v, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func TestPutGetSizes(t *testing.T) {
	c := openCache(t, "", nil)
	sizes := []int{0, 1, 100, 4095, 4096, 65535, 65536, 65537, 1<<20 + 3, 5 << 20}
	for i, n := range sizes {
		key := "size/" + string(rune('a'+i))
		v := randBytes(n, uint64(i))
		got, err := c.Put(ctx, key, bytes.NewReader(v))
		if err != nil || got != int64(n) {
			t.Fatalf("Put %d bytes: %d, %v", n, got, err)
		}
		if back := mustGet(t, c, key); !bytes.Equal(back, v) {
			t.Fatalf("Get of a %d-byte value returned %d different bytes", n, len(back))
		}
		info, err := c.Stat(ctx, key)
		if err != nil || info.Size != int64(n) || info.Key != key {
			t.Fatalf("Stat: %+v, %v", info, err)
		}
	}
	st := c.Stats()
	if st.Entries != int64(len(sizes)) || st.Err != nil {
		t.Fatalf("Stats: %+v", st)
	}
}

func TestGetAppendReusesBuffer(t *testing.T) {
	c := openCache(t, "", nil)
	c.PutBytes(ctx, "k", []byte("value"))
	buf := make([]byte, 0, 64)
	out, err := c.GetAppend(ctx, buf, "k")
	if err != nil || string(out) != "value" || &out[0] != &buf[:1][0] {
		t.Fatalf("GetAppend: %q, %v (reused buffer: %v)", out, err, err == nil && &out[0] == &buf[:1][0])
	}
}

func TestMissIsErrNotExist(t *testing.T) {
	c := openCache(t, "", nil)
	_, err := c.Get(ctx, "absent")
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, possum.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	var pe *possum.Error
	if !errors.As(err, &pe) || pe.Op != "get" || pe.Key != "absent" {
		t.Fatalf("error %v is not a *possum.Error for get \"absent\"", err)
	}
	if err := c.Delete(ctx, "absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if _, err := c.Stat(ctx, "absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of a missing key: %v", err)
	}
	if st := c.Stats(); st.Misses != 1 {
		t.Fatalf("Stats.Misses = %d, want 1", st.Misses)
	}
}

func TestBinaryKeys(t *testing.T) {
	c := openCache(t, "", nil)
	keys := []string{"\x00", "\x00\x00", "a\x00b", "\xff", "\xff\xff", "a\xff", "a", "ab", "b", "\x80\x81 not utf-8"}
	for i, k := range keys {
		if err := c.PutBytes(ctx, k, []byte{byte(i)}); err != nil {
			t.Fatalf("PutBytes(%q): %v", k, err)
		}
	}
	for i, k := range keys {
		if v := mustGet(t, c, k); len(v) != 1 || v[0] != byte(i) {
			t.Fatalf("Get(%q) = %v, want [%d]", k, v, i)
		}
	}
	var listed []string
	for info, err := range c.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, info.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("List order %q, want %q", listed, want)
	}
	got := listKeys(t, c, "a")
	if !slices.Equal(got, []string{"a", "a\x00b", "ab", "a\xff"}) {
		t.Fatalf("List(\"a\") = %q", got)
	}
	if got := listKeys(t, c, "\xff"); !slices.Equal(got, []string{"\xff", "\xff\xff"}) {
		t.Fatalf("List(\"\\xff\") = %q", got)
	}
}

func listKeys(t *testing.T, c *possum.Cache, prefix string) []string {
	t.Helper()
	var out []string
	for info, err := range c.List(ctx, prefix) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info.Key)
	}
	return out
}

func TestListPagesAndBreak(t *testing.T) {
	c := openCache(t, "", nil)
	b := c.NewBatch()
	for i := range 1000 {
		b.PutBytes(ctx, "n/"+strings.Repeat("x", i%7)+string(rune('0'+i%10))+itoa(i), []byte("v"))
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(listKeys(t, c, "n/")); n != 1000 {
		t.Fatalf("listed %d keys, want 1000", n)
	}
	seen := 0
	for range c.List(ctx, "n/") {
		seen++
		if seen == 300 {
			break
		}
	}
	// Writes inside the loop must not deadlock.
	for info := range c.List(ctx, "n/x") {
		if err := c.Delete(ctx, info.Key); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(listKeys(t, c, "n/x")); n != 0 {
		t.Fatalf("%d keys left after deleting inside the listing", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestBadKeys(t *testing.T) {
	c := openCache(t, "", nil)
	long := strings.Repeat("k", possum.MaxKeySize+1)
	for _, k := range []string{"", long} {
		if err := c.PutBytes(ctx, k, []byte("v")); !errors.Is(err, possum.ErrInvalidKey) {
			t.Errorf("PutBytes(%d-byte key): %v, want ErrInvalidKey", len(k), err)
		}
		if _, err := c.Get(ctx, k); !errors.Is(err, possum.ErrInvalidKey) {
			t.Errorf("Get(%d-byte key): %v", len(k), err)
		}
		if err := c.Rename(ctx, "x", k); !errors.Is(err, possum.ErrInvalidKey) {
			t.Errorf("Rename to a %d-byte key: %v", len(k), err)
		}
	}
	if err := c.PutBytes(ctx, strings.Repeat("k", possum.MaxKeySize), []byte("v")); err != nil {
		t.Errorf("a key of exactly MaxKeySize: %v", err)
	}
	if st := c.Stats(); st.Entries != 1 {
		t.Errorf("entries = %d, want 1", st.Entries)
	}
}

func TestReplaceAndDeleteGiveSpaceBack(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	c.PutBytes(ctx, "a", randBytes(100_000, 1))
	c.PutBytes(ctx, "a", randBytes(200_000, 2))
	// The replaced value's blocks were punched by the commit that freed
	// them, before PutBytes returned.
	st := c.Stats()
	if st.Punches == 0 || st.PunchedBytes < 98_304 || st.Entries != 1 {
		t.Fatalf("after a replace: %+v", st)
	}
	if err := c.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	st = c.Stats()
	if st.DeadExtents != 0 || st.Entries != 0 || st.LiveBytes != 0 {
		t.Fatalf("after a delete and Trim: %+v", st)
	}
	if st.DiskBytes-st.ManifestBytes > 4096 {
		t.Fatalf("value files still hold %d bytes", st.DiskBytes-st.ManifestBytes)
	}
}

func TestRename(t *testing.T) {
	c := openCache(t, "", nil)
	c.PutBytes(ctx, "from", []byte("one"))
	c.PutBytes(ctx, "to", []byte("two"))
	before, _ := c.Stat(ctx, "from")
	if err := c.Rename(ctx, "from", "to"); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, "to"); string(v) != "one" {
		t.Fatalf("to = %q after rename over it", v)
	}
	if _, err := c.Get(ctx, "from"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("from still there: %v", err)
	}
	after, _ := c.Stat(ctx, "to")
	if !after.Created.Equal(before.Created) {
		t.Fatalf("rename changed the creation time: %v -> %v", before.Created, after.Created)
	}
	if err := c.Rename(ctx, "from", "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rename of a missing key: %v", err)
	}
	if err := c.Rename(ctx, "to", "to"); err != nil {
		t.Fatalf("rename onto itself: %v", err)
	}
	if st := c.Stats(); st.Entries != 1 || st.LiveBytes != 3 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestPrefixOps(t *testing.T) {
	c := openCache(t, "", nil)
	for _, k := range []string{"a/1", "a/2", "a/3", "ab", "b/1", "a/x/y"} {
		c.PutBytes(ctx, k, []byte(k))
	}
	// Overlapping move: the destination starts with the source.
	n, err := c.MovePrefix(ctx, "a/", "a/a/")
	if err != nil || n != 4 {
		t.Fatalf("MovePrefix: %d, %v", n, err)
	}
	if got := listKeys(t, c, "a/"); !slices.Equal(got, []string{"a/a/1", "a/a/2", "a/a/3", "a/a/x/y"}) {
		t.Fatalf("after move: %q", got)
	}
	if v := mustGet(t, c, "a/a/x/y"); string(v) != "a/x/y" {
		t.Fatalf("moved value = %q", v)
	}
	// A move that replaces an existing key.
	c.PutBytes(ctx, "b/2", []byte("old"))
	c.PutBytes(ctx, "c/2", []byte("new"))
	if n, err := c.MovePrefix(ctx, "c/", "b/"); err != nil || n != 1 {
		t.Fatalf("MovePrefix c/ -> b/: %d, %v", n, err)
	}
	if v := mustGet(t, c, "b/2"); string(v) != "new" {
		t.Fatalf("b/2 = %q", v)
	}
	n, err = c.DeletePrefix(ctx, "a/")
	if err != nil || n != 4 {
		t.Fatalf("DeletePrefix: %d, %v", n, err)
	}
	if got := listKeys(t, c, ""); !slices.Equal(got, []string{"ab", "b/1", "b/2"}) {
		t.Fatalf("left: %q", got)
	}
	if _, err := c.MovePrefix(ctx, "b", strings.Repeat("z", possum.MaxKeySize)); !errors.Is(err, possum.ErrInvalidKey) {
		t.Fatalf("a move making keys too long: %v", err)
	}
	if got := listKeys(t, c, ""); len(got) != 3 {
		t.Fatalf("a failed move changed keys: %q", got)
	}
}

func valueFileBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	ents, _ := os.ReadDir(filepath.Join(dir, "values"))
	for _, e := range ents {
		fi, err := e.Info()
		if err == nil {
			total += fi.Size()
		}
	}
	return total
}

func TestBatch(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	c.PutBytes(ctx, "gone", []byte("x"))
	b := c.NewBatch()
	b.PutBytes(ctx, "a", randBytes(1000, 1))
	b.Put(ctx, "big", bytes.NewReader(randBytes(300_000, 2)))
	b.Delete("gone")
	b.Delete("never-existed")
	b.Rename("a", "renamed")
	if _, err := c.Get(ctx, "big"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a staged value is visible before Commit: %v", err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, "renamed"); !bytes.Equal(v, randBytes(1000, 1)) {
		t.Fatal("renamed value differs")
	}
	if v := mustGet(t, c, "big"); !bytes.Equal(v, randBytes(300_000, 2)) {
		t.Fatal("big value differs")
	}
	if got := listKeys(t, c, ""); !slices.Equal(got, []string{"big", "renamed"}) {
		t.Fatalf("keys after the batch: %q", got)
	}
	if err := b.Commit(ctx); !errors.Is(err, possum.ErrBatchDone) {
		t.Fatalf("second Commit: %v", err)
	}
}

func TestBatchAbortLeavesNoGarbage(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	c.PutBytes(ctx, "keep", randBytes(5000, 9))
	before := valueFileBytes(t, dir)
	b := c.NewBatch()
	b.PutBytes(ctx, "x", randBytes(70_000, 1))
	b.PutBytes(ctx, "y", randBytes(10, 1))
	if valueFileBytes(t, dir) <= before {
		t.Fatal("the batch wrote nothing before Commit")
	}
	b.Abort()
	if after := valueFileBytes(t, dir); after != before {
		t.Fatalf("value files hold %d bytes after Abort, %d before the batch", after, before)
	}
	if _, err := c.Get(ctx, "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("aborted value visible: %v", err)
	}
	if err := b.PutBytes(ctx, "z", nil); !errors.Is(err, possum.ErrBatchDone) {
		t.Fatalf("Put after Abort: %v", err)
	}
}

func TestBatchFailingRenameCommitsNothing(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	before := valueFileBytes(t, dir)
	b := c.NewBatch()
	b.PutBytes(ctx, "x", []byte("1"))
	b.Rename("missing", "y")
	if err := b.Commit(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Commit: %v, want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("part of a failed batch is visible: %v", err)
	}
	if after := valueFileBytes(t, dir); after != before {
		t.Fatalf("a failed batch left %d bytes", after-before)
	}
}

// failingReader yields n bytes, then an error.
type failingReader struct{ n int }

var errBoom = errors.New("boom")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errBoom
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'z'
	}
	r.n -= k
	return k, nil
}

func TestPutReaderFailsKeepsOldValue(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	c.PutBytes(ctx, "k", []byte("old"))
	before := valueFileBytes(t, dir)
	for _, n := range []int{0, 10, 100_000, 3 << 20} {
		if _, err := c.Put(ctx, "k", &failingReader{n: n}); !errors.Is(err, errBoom) {
			t.Fatalf("Put from a reader failing after %d bytes: %v", n, err)
		}
		if v := mustGet(t, c, "k"); string(v) != "old" {
			t.Fatalf("value after a failed put: %q", v)
		}
		if after := valueFileBytes(t, dir); after != before {
			t.Fatalf("a failed put of %d bytes left %d bytes behind", n, after-before)
		}
	}
}

type cancelReader struct {
	cancel func()
	n      int
}

func (r *cancelReader) Read(p []byte) (int, error) {
	r.n += len(p)
	if r.n > 2<<20 {
		r.cancel()
	}
	return len(p), nil
}

func TestPutCancelled(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	cctx, cancel := context.WithCancel(ctx)
	if _, err := c.Put(cctx, "k", &cancelReader{cancel: cancel}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with ctx cancelled mid-stream: %v", err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a cancelled put was published: %v", err)
	}
	if n := valueFileBytes(t, dir); n != 0 {
		t.Fatalf("a cancelled put left %d bytes", n)
	}
}

func TestTTL(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var opts possum.Options
	possum.SetClock(&opts, clock)
	c := openCache(t, "", &opts)
	c.PutWith(ctx, "short", strings.NewReader("s"), &possum.PutOptions{TTL: time.Minute})
	c.PutBytes(ctx, "forever", []byte("f"))
	info, err := c.Stat(ctx, "short")
	if err != nil || !info.Expires.Equal(now.Add(time.Minute)) {
		t.Fatalf("Stat: %+v, %v", info, err)
	}
	mustGet(t, c, "short")
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := c.Get(ctx, "short"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of an expired value: %v", err)
	}
	if got := listKeys(t, c, ""); !slices.Equal(got, []string{"forever"}) {
		t.Fatalf("List shows %q", got)
	}
	if st := c.Stats(); st.Expired != 1 {
		t.Fatalf("Stats.Expired = %d", st.Expired)
	}
}

func TestTwoHandlesSeeEachOther(t *testing.T) {
	dir := t.TempDir()
	a := openCache(t, dir, nil)
	b := openCache(t, dir, nil)
	if _, err := b.Get(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	a.PutBytes(ctx, "k", []byte("1"))
	if v := mustGet(t, b, "k"); string(v) != "1" { // a cached miss must not hide it
		t.Fatalf("b sees %q", v)
	}
	a.PutBytes(ctx, "k", []byte("2"))
	if v := mustGet(t, b, "k"); string(v) != "2" { // nor a cached location
		t.Fatalf("b sees %q after a replace", v)
	}
	a.Delete(ctx, "k")
	if _, err := b.Get(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("b still sees a deleted key: %v", err)
	}
}

func TestLastUsedFlushedOnClose(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	c.PutBytes(ctx, "k", []byte("v"))
	before, _ := c.Stat(ctx, "k")
	time.Sleep(2 * time.Millisecond)
	mustGet(t, c, "k")
	other, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := other.Stat(ctx, "k")
	if err != nil || !after.LastUsed.After(before.LastUsed) {
		t.Fatalf("last use not flushed at Close: before %v, after %v (%v)", before.LastUsed, after.LastUsed, err)
	}
}

func TestClosed(t *testing.T) {
	c, err := possum.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, possum.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := c.PutBytes(ctx, "k", nil); !errors.Is(err, possum.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	for _, err := range c.List(ctx, "") {
		if !errors.Is(err, possum.ErrClosed) {
			t.Fatalf("List after Close: %v", err)
		}
	}
}

func TestColdStartRace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "cache")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			c, err := possum.Open(dir, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.PutBytes(ctx, "k"+itoa(i), []byte{byte(i)}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := openCache(t, dir, nil)
	if n := len(listKeys(t, c, "k")); n != 16 {
		t.Fatalf("%d keys, want 16", n)
	}
}

func TestReadAfterReopen(t *testing.T) {
	dir := t.TempDir()
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.PutBytes(ctx, "k", randBytes(123_456, 5))
	c.Close()
	c = openCache(t, dir, nil)
	if v := mustGet(t, c, "k"); !bytes.Equal(v, randBytes(123_456, 5)) {
		t.Fatal("value differs after reopening")
	}
	var r io.Reader = bytes.NewReader(nil)
	if n, err := c.Put(ctx, "empty", r); err != nil || n != 0 {
		t.Fatal(n, err)
	}
	if v := mustGet(t, c, "empty"); len(v) != 0 {
		t.Fatalf("empty value read back as %d bytes", len(v))
	}
}

// TestHotPathAllocations pins what the hot path allocates: a hit into a
// buffer of enough capacity nothing, a cached miss only its error (the
// *possum.Error that names the key).
func TestHotPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	ctx := context.Background()
	c := openCache(t, t.TempDir(), nil)
	if err := c.PutBytes(ctx, "k", bytes.Repeat([]byte("v"), 4096)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	for range 2 { // fill the location cache, the miss included
		if _, err := c.GetAppend(ctx, buf, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetAppend(ctx, buf, "absent"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("miss: %v", err)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { c.GetAppend(ctx, buf, "k") }); n != 0 {
		t.Errorf("a hit allocates %.1f times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { c.GetAppend(ctx, buf, "absent") }); n > 1 {
		t.Errorf("a cached miss allocates %.1f times, want at most 1 (its error)", n)
	}
}
