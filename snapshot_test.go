package possum_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seed475afdc4/possum"
	"github.com/seed475afdc4/possum/values"
)

// TestSnapshotPrefix takes a snapshot of a prefix, then replaces, deletes
// and adds keys under it: the snapshot keeps every value and the listing
// as they were.
func TestSnapshotPrefix(t *testing.T) {
	c := openCache(t, "", nil)
	want := map[string][]byte{}
	for i := range 12 {
		k := "piece/" + strconv.Itoa(i)
		want[k] = randBytes(1000+i*40_000, uint64(i)) // small and large
		c.PutBytes(ctx, k, want[k])
	}
	c.PutBytes(ctx, "other", []byte("not in the prefix"))
	s, err := c.SnapshotPrefix(ctx, "piece/")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 12 {
		k := "piece/" + strconv.Itoa(i)
		if i%2 == 0 {
			c.Delete(ctx, k)
		} else {
			c.PutBytes(ctx, k, []byte("replaced"))
		}
	}
	c.PutBytes(ctx, "piece/new", []byte("added after"))
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, info := range s.List() {
		keys = append(keys, info.Key)
		v, err := s.Value(info.Key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(v, 0, v.Size()))
		if err != nil || !bytes.Equal(got, want[info.Key]) {
			t.Fatalf("%s changed in the snapshot (%v)", info.Key, err)
		}
	}
	wantKeys := slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("snapshot lists %q, want %q", keys, wantKeys)
	}
	if _, err := s.Value("other"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a key outside the prefix: %v", err)
	}
}

func TestSnapshotKeys(t *testing.T) {
	c := openCache(t, "", nil)
	c.PutBytes(ctx, "a", []byte("A"))
	c.PutBytes(ctx, "b", randBytes(200_000, 1))
	s, err := c.Snapshot(ctx, "a", "b", "missing")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.Delete(ctx, "b")
	if s.Len() != 2 {
		t.Fatalf("%d values, want 2", s.Len())
	}
	v, _ := s.Value("b")
	b, err := v.Bytes()
	if err != nil || !bytes.Equal(b, randBytes(200_000, 1)) {
		t.Fatalf("b in the snapshot: %v", err)
	}
	if _, err := s.Value("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestWriterCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	w, err := c.Create(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := randBytes(300_000, 5)
	for chunk := range slices.Chunk(want, 7777) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("visible before Commit")
	}
	if n, err := w.Commit(ctx); err != nil || n != int64(len(want)) {
		t.Fatalf("Commit: %d, %v", n, err)
	}
	if got := mustGet(t, c, "k"); !bytes.Equal(got, want) {
		t.Fatal("committed value differs")
	}
	before := valueFilesAllocated(t, dir)
	w, _ = c.Create(ctx, "k", nil)
	w.ReadFrom(bytes.NewReader(randBytes(500_000, 6)))
	w.Abort()
	w.Abort()
	if got := mustGet(t, c, "k"); !bytes.Equal(got, want) {
		t.Fatal("an aborted writer changed the value")
	}
	if after := valueFilesAllocated(t, dir); after > before {
		t.Fatalf("an aborted writer left %d bytes", after-before)
	}
	if _, err := w.Commit(ctx); !errors.Is(err, possum.ErrBatchDone) {
		t.Fatalf("Commit after Abort: %v", err)
	}
}

// TestPutFile brings a file in: on xfs and btrfs the value shares the
// file's extents (FIEMAP says so); elsewhere copy_file_range copies it.
// The file is 1 GiB on reflink filesystems (cloning costs nothing), 64 MiB
// elsewhere, 8 MiB with -short.
func TestPutFile(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, &possum.Options{Capacity: 4 << 30})
	reflink := values.ProbeClone(t.TempDir())
	size := int64(64 << 20)
	if reflink {
		size = 1 << 30
	}
	if testing.Short() {
		size = 8 << 20
	}
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, size)
	n, err := c.PutFile(ctx, "f", src)
	if err != nil || n != size {
		t.Fatalf("PutFile: %d, %v", n, err)
	}
	st := c.Stats()
	if reflink {
		if st.PutCloneBytes != size {
			t.Fatalf("cloned %d bytes of %d", st.PutCloneBytes, size)
		}
		ents, _ := os.ReadDir(filepath.Join(dir, "values"))
		shared := sharedBytes(t, filepath.Join(dir, "values", ents[0].Name()))
		if shared < size {
			t.Fatalf("the value file shares %d bytes with the source, want %d", shared, size)
		}
		t.Logf("FIEMAP: %d bytes shared", shared)
	} else if st.PutCopyBytes != size {
		t.Fatalf("copy_file_range copied %d bytes of %d", st.PutCopyBytes, size)
	}
	v, err := c.Open(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Verify(); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes size pseudo-random bytes to path, 1 MiB at a time.
func writeFile(t *testing.T, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := randBytes(1<<20, 42)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		chunk[0], chunk[1] = byte(off>>20), byte(off>>28) // no two chunks alike
		if _, err := f.Write(chunk[:min(int64(len(chunk)), size-off)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// sharedBytes sums the extents of path that FIEMAP marks shared.
func sharedBytes(t *testing.T, path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const (
		fsIOCFiemap  = 0xC020660B
		flagSync     = 1
		extentLast   = 0x1
		extentShared = 0x2000
		perCall      = 256
	)
	type extent struct {
		Logical, Physical, Length uint64
		_                         [2]uint64
		Flags                     uint32
		_                         [3]uint32
	}
	type fiemap struct {
		Start, Length           uint64
		Flags, Mapped, Count, _ uint32
		Extents                 [perCall]extent
	}
	var shared int64
	for start := uint64(0); ; {
		m := fiemap{Start: start, Length: ^uint64(0) - start, Flags: flagSync, Count: perCall}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIOCFiemap, uintptr(unsafe.Pointer(&m))); e != 0 {
			t.Fatalf("FIEMAP: %v", e)
		}
		if m.Mapped == 0 {
			return shared
		}
		for _, e := range m.Extents[:m.Mapped] {
			if e.Flags&extentShared != 0 {
				shared += int64(e.Length)
			}
			if e.Flags&extentLast != 0 {
				return shared
			}
			start = e.Logical + e.Length
		}
	}
}
