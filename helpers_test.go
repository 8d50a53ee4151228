package possum_test

import (
	"context"
	"os"
	"testing"

	"github.com/seed475afdc4/possum"
)

// openCache opens a cache in a fresh temporary directory (or in dir, if
// given) and registers its check: when the test ends, the cache is closed,
// opened again and verified, and any problem fails the test.
func openCache(t testing.TB, dir string, opts *possum.Options) *possum.Cache {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := possum.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		verifyDir(t, dir)
	})
	return c
}

// verifyDir opens the cache in dir and fails t if Verify finds anything.
func verifyDir(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		return // the test removed it
	}
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Errorf("verify: Open: %v", err)
		return
	}
	defer c.Close()
	r, err := c.Verify(context.Background(), false)
	if err != nil {
		t.Errorf("Verify: %v", err)
		return
	}
	for _, p := range r.Problems {
		t.Errorf("Verify: %v", p)
	}
}
