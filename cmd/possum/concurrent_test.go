package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentPuts runs eight possum processes that put values of
// different sizes (packed small ones, aligned large ones, one of several
// MiB) into one new cache at the same time, then reads every value back,
// and checks the manifest with the sqlite3 shell if it is installed.
func TestConcurrentPuts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes; skipped in -short mode")
	}
	bin := possumBinary(t)
	dir := filepath.Join(t.TempDir(), "cache")
	sizes := []int{0, 1, 4097, 65535, 65536, 200_000, 1<<20 + 7, 5<<20 + 123}
	rng := rand.New(rand.NewChaCha8([32]byte{'p', 'o', 's', 's', 'u', 'm'}))
	files := make(map[string][]byte) // key to value
	var wg sync.WaitGroup
	for i, size := range sizes {
		key := fmt.Sprintf("file-%d", i)
		files[key] = make([]byte, size)
		for j := range files[key] {
			files[key][j] = byte(rng.Uint32())
		}
		path := filepath.Join(t.TempDir(), key)
		if err := os.WriteFile(path, files[key], 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-dir", dir, "put", key, path)
		cmd.Stderr = &strings.Builder{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := cmd.Wait(); err != nil {
				t.Errorf("put %s: %v\n%s", key, err, cmd.Stderr)
			}
		})
	}
	wg.Wait()
	for key, want := range files {
		got, err := exec.Command(bin, "-dir", dir, "get", key).Output()
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("get %s: got %d bytes, not the %d put", key, len(got), len(want))
		}
	}
	checkManifest(t, dir, sizes)
}

// possumBinary returns the path of the possum command that TestMain puts on
// $PATH: a copy of this test binary that runs main.
func possumBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("possum")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// checkManifest lists the entries of dir's manifest with the sqlite3 shell
// and checks they are exactly the keys "file-I", each of length sizes[I].
func checkManifest(t *testing.T, dir string, sizes []int) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Log("sqlite3 is not installed; the manifest is not checked")
		return
	}
	out, err := exec.Command("sqlite3", filepath.Join(dir, "manifest.db"),
		"select cast(key as text), length from entries order by key").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	var want strings.Builder
	for i, size := range sizes {
		fmt.Fprintf(&want, "file-%d|%d\n", i, size)
	}
	if string(out) != want.String() {
		t.Errorf("manifest entries:\n%s\nwant:\n%s", out, want.String())
	}
}
