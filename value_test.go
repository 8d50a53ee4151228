package possum_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/seed475afdc4/possum"
	"github.com/seed475afdc4/possum/values"
)

// bigValue is the size of the large values of these tests: 64 MiB, as
// the issue asks; 16 MiB with -short (CI's race run, where generating and
// hashing 64 MiB is slow).
func bigValue() int {
	if testing.Short() {
		return 16 << 20
	}
	return 64 << 20
}

func TestOpenSmallValue(t *testing.T) {
	c := openCache(t, "", nil)
	c.PutBytes(ctx, "s", []byte("small value"))
	v, err := c.Open(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Size() != 11 || v.Info().Key != "s" {
		t.Fatalf("info %+v", v.Info())
	}
	p := make([]byte, 5)
	if n, err := v.ReadAt(p, 6); n != 5 || err != nil || string(p) != "value" {
		t.Fatalf("ReadAt: %d %v %q", n, err, p)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, v); err != nil || buf.String() != "small value" {
		t.Fatalf("copy: %q %v", buf.String(), err)
	}
	b, _ := v.Bytes()
	if string(b) != "small value" {
		t.Fatalf("Bytes: %q", b)
	}
	if _, err := c.Open(ctx, "absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing key: %v", err)
	}
}

func TestOpenLargeValueReadSeek(t *testing.T) {
	c := openCache(t, "", nil)
	want := randBytes(3<<20+17, 9)
	c.PutBytes(ctx, "big", want)
	v, err := c.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got, err := io.ReadAll(v) // Read from start to end: checksummed
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	if _, err := v.Seek(-17, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(v)
	if !bytes.Equal(tail, want[len(want)-17:]) {
		t.Fatal("Seek/Read tail differs")
	}
	b, err := v.Bytes()
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("Bytes: %v", err)
	}
	if err := v.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// expectPinKind checks that Stats show the clone path where the filesystem
// can clone and the lock path where it cannot.
func expectPinKind(t *testing.T, dir string, st possum.Stats) {
	t.Helper()
	if values.ProbeClone(filepath.Join(dir, "values")) {
		if st.OpenedByClone == 0 || st.OpenedByLock != 0 {
			t.Errorf("a reflink filesystem, but clones %d, locks %d", st.OpenedByClone, st.OpenedByLock)
		}
	} else if st.OpenedByLock == 0 || st.OpenedByClone != 0 {
		t.Errorf("no reflinks, but clones %d, locks %d", st.OpenedByClone, st.OpenedByLock)
	}
	t.Logf("pinned by clone %d, by lock %d", st.OpenedByClone, st.OpenedByLock)
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// TestValueStableAcrossProcesses opens a 64 MiB value, then has another
// process replace it, delete it, evict everything and force a reclaim: the
// open value stays byte for byte what it was, and once it is closed its
// space is given back.
func TestValueStableAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, &possum.Options{Capacity: 512 << 20})
	want := randBytes(bigValue(), 1)
	c.PutBytes(ctx, "big", want)
	v, err := c.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	cmd := childCmd(t, "churn-big", "POSSUM_DIR="+dir)
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, cmd.Stdout)
	}
	got := make([]byte, bigValue())
	if _, err := v.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if sum(got) != sum(want) {
		t.Fatal("the open value changed under another process's replace, delete, eviction and reclaim")
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, v); err != nil || sum(buf.Bytes()) != sum(want) {
		t.Fatalf("streamed value differs (%v)", err)
	}
	expectPinKind(t, dir, c.Stats())
	v.Close()
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if got := valueFilesAllocated(t, dir); got > st.LiveBlocks+1<<20 {
		t.Fatalf("after Close and Trim the value files hold %d bytes, %d live", got, st.LiveBlocks)
	}
}

// childChurnBig replaces "big", deletes it, fills the cache past a small
// capacity so that everything old is evicted, and trims.
func childChurnBig(t *testing.T) {
	c, err := possum.Open(os.Getenv("POSSUM_DIR"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.PutBytes(ctx, "big", randBytes(bigValue(), 2)))
	must(c.Delete(ctx, "big"))
	must(c.SetCapacity(ctx, 16<<20))
	for i := range 16 {
		must(c.PutBytes(ctx, "filler"+string(rune('a'+i)), randBytes(1<<20, uint64(i))))
	}
	must(c.Trim(ctx))
}

// TestWriteToZeroCopy copies a value to a file and to a socket: the bytes
// go through copy_file_range and sendfile, not through the process.
func TestWriteToZeroCopy(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	want := randBytes(8<<20, 3)
	c.PutBytes(ctx, "v", want)

	v, err := c.Open(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(f, v); err != nil || n != int64(len(want)) {
		t.Fatalf("copy to a file: %d, %v", n, err)
	}
	f.Close()
	if got, _ := os.ReadFile(f.Name()); sum(got) != sum(want) {
		t.Fatal("the file copy differs")
	}
	v.Close()
	if st := c.Stats(); st.CopyRangeBytes != int64(len(want)) {
		t.Fatalf("copy_file_range moved %d bytes, want %d", st.CopyRangeBytes, len(want))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	received := make(chan []byte)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			received <- nil
			return
		}
		b, _ := io.ReadAll(conn)
		conn.Close()
		received <- b
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	v, err = c.Open(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(conn, v); err != nil || n != int64(len(want)) {
		t.Fatalf("copy to a socket: %d, %v", n, err)
	}
	conn.Close()
	v.Close()
	if got := <-received; sum(got) != sum(want) {
		t.Fatal("the socket copy differs")
	}
	if st := c.Stats(); st.SendfileBytes != int64(len(want)) {
		t.Fatalf("sendfile moved %d bytes, want %d", st.SendfileBytes, len(want))
	}
}

// TestKilledHolderLeavesNothing kills a process while it holds a large
// value open: no file is left behind, and once the key is deleted its space
// comes back.
func TestKilledHolderLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	c.PutBytes(ctx, "big", randBytes(bigValue()/4, 4))
	before := entriesIn(t, dir)
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := childCmd(t, "hold", "POSSUM_DIR="+dir, "POSSUM_READY="+ready)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child never held the value:\n%s", cmd.Stdout)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := c.Delete(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.DeadExtents != 0 {
		t.Fatalf("dead extents left: %+v", st)
	}
	if got := valueFilesAllocated(t, dir); got > 64<<10 {
		t.Fatalf("value files hold %d bytes after the holder died and the key went", got)
	}
	if after := entriesIn(t, dir); after > before {
		t.Fatalf("the dead holder left files: %d entries, %d before", after, before)
	}
}

func entriesIn(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(string, fs.DirEntry, error) error { n++; return nil })
	return n
}

func childHold(t *testing.T) {
	c, err := possum.Open(os.Getenv("POSSUM_DIR"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Bytes(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(os.Getenv("POSSUM_READY"), nil, 0o600)
	time.Sleep(time.Minute)
	t.Fatal("not killed")
}
