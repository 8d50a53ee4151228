package possum

import (
	"bytes"
	"context"
	"testing"
)

// TestPutRefreshesCachedLocation: a put of a key this process has cached
// points the cached entry at the new row, valid at the stripe's new value,
// so the next read needs no manifest lookup; a key not cached stays out.
func TestPutRefreshesCachedLocation(t *testing.T) {
	ctx := context.Background()
	c, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.PutBytes(ctx, "k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "k"); err != nil { // caches k
		t.Fatal(err)
	}
	if err := c.PutBytes(ctx, "k", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := c.PutBytes(ctx, "new", []byte("three")); err != nil {
		t.Fatal(err)
	}
	h := keyHash("k")
	e := c.locs.get("k", h, c.stripes.Load(stripeOf(h)))
	if e == nil {
		t.Fatal("after a put of a cached key, its entry is not valid at the stripe's value")
	}
	want, err := c.m.Lookup(ctx, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if e.neg || e.loc != want {
		t.Fatalf("cached location %+v (miss %v), the manifest has %+v", e.loc, e.neg, want)
	}
	if got, err := c.Get(ctx, "k"); err != nil || !bytes.Equal(got, []byte("two")) {
		t.Fatalf("Get after the put: %q, %v", got, err)
	}
	hn := keyHash("new")
	if e := c.locs.get("new", hn, c.stripes.Load(stripeOf(hn))); e != nil {
		t.Fatal("a put of a key not cached added an entry")
	}
}
