package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/seed475afdc4/possum/values"
)

// lockDir makes a values directory with file 1 holding 1 MiB.
func lockDir(t *testing.T) *values.Dir {
	t.Helper()
	d, err := values.OpenDir(filepath.Join(t.TempDir(), "values"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := os.WriteFile(d.FileName(1), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// exclusive reports whether a reclaimer could lock [off, off+n) of file 1.
func exclusive(t *testing.T, d *values.Dir, off, n int64) bool {
	t.Helper()
	f, err := os.OpenFile(d.FileName(1), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = values.LockRange(f, values.WriteLock, off, n)
	if err != nil && !errors.Is(err, values.ErrLocked) {
		t.Fatal(err)
	}
	return err == nil
}

func TestLocksPinAndReuse(t *testing.T) {
	if !values.DescriptorLocks {
		t.Skip("no OFD locks here")
	}
	d := lockDir(t)
	l := NewLocks(d)
	defer l.Close()
	a, err := l.Lock(1, 0, 8192, 8192)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Lock(1, 4096, 8192, 8192) // overlaps a
	if err != nil {
		t.Fatal(err)
	}
	if a.File() == b.File() {
		t.Fatal("two open views share a descriptor")
	}
	if exclusive(t, d, 0, 4096) || exclusive(t, d, 4096, 4096) || exclusive(t, d, 8192, 4096) {
		t.Fatal("a pinned region could be locked exclusively")
	}
	fa := a.File()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// b's region, overlap included, stays pinned; a's own part is free.
	if exclusive(t, d, 4096, 8192) {
		t.Fatal("closing one view released another's overlapping lock")
	}
	if !exclusive(t, d, 0, 4096) {
		t.Fatal("a closed view's region is still locked")
	}
	c, err := l.Lock(1, 65536, 100, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if c.File() != fa {
		t.Fatal("the idle descriptor was not reused")
	}
	if exclusive(t, d, 65536, 4096) {
		t.Fatal("a reused descriptor's lock does not hold")
	}
	b.Close()
	c.Close()
	if !exclusive(t, d, 0, 1<<20) {
		t.Fatal("regions stay locked after every view closed")
	}
}

func TestLocksSweepClosesRemovedFiles(t *testing.T) {
	if !values.DescriptorLocks {
		t.Skip("no OFD locks here")
	}
	d := lockDir(t)
	l := NewLocks(d)
	defer l.Close()
	v, err := l.Lock(1, 0, 4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	f := v.File()
	v.Close()
	l.Sweep()
	if _, err := f.Stat(); err != nil {
		t.Fatalf("Sweep closed the descriptor of a file still there: %v", err)
	}
	if err := os.Remove(d.FileName(1)); err != nil {
		t.Fatal(err)
	}
	l.Sweep()
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the removed file's descriptor is still open: %v", err)
	}
}
