package possum

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestReclaimBumpsOnlyUnannounced: the reclaimer bumps the stripe of a dead
// extent before giving its space back unless this process's committer
// deleted the row and bumped the stripe after that commit itself; then a
// second bump would only throw away other keys' cached locations. Extents
// another process (here another Cache) freed are bumped.
func TestReclaimBumpsOnlyUnannounced(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 64
	value := make([]byte, 8<<10) // small (packed), two whole blocks each
	key := func(i int) string { return fmt.Sprintf("k%03d", i) }
	putAll := func(c *Cache) {
		for i := range n {
			if err := c.PutBytes(ctx, key(i), value); err != nil {
				t.Fatal(err)
			}
		}
	}
	snapshot := func() []uint64 {
		s := make([]uint64, n)
		for i := range n {
			s[i] = c.stripes.Load(stripeOf(keyHash(key(i))))
		}
		return s
	}
	changed := func(before []uint64) int {
		k := 0
		for i, v := range snapshot() {
			if v != before[i] {
				k++
			}
		}
		return k
	}

	putAll(c)
	putAll(c) // replaces: n dead extents, freed and announced by c
	before := snapshot()
	punches := c.Stats().Punches
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.DeadExtents != 0 || st.Punches == punches {
		t.Fatalf("Trim left %d dead extents, punched %d times", st.DeadExtents, st.Punches-punches)
	}
	if k := changed(before); k != 0 {
		t.Errorf("reclaiming this process's own announced extents bumped %d of %d keys' stripes", k, n)
	}

	// Another process replaces the values; this one reclaims them. (The
	// other's own background reclaimer may get to some first, without a
	// bump: it announced them. What this one reclaims, it must bump.)
	other, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	putAll(other)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	dead, err := c.m.DeadExtents(ctx, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) == 0 {
		t.Fatal("the other process's replacements left no dead extent")
	}
	stripesBefore := map[int]uint64{}
	for _, d := range dead {
		stripesBefore[int(d.Stripe)] = c.stripes.Load(int(d.Stripe))
	}
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Stats().DeadExtents != 0 {
		t.Fatalf("Trim left %d dead extents", c.Stats().DeadExtents)
	}
	for s, v := range stripesBefore {
		if c.stripes.Load(s) == v {
			t.Errorf("stripe %d of an extent another process freed was not bumped before its space was given back", s)
		}
	}
	t.Logf("%d extents another process freed: every stripe bumped", len(dead))
}

func TestAnnouncedSet(t *testing.T) {
	var a announcedSet
	if a.take(1) {
		t.Fatal("empty set took 1")
	}
	a.add([]int64{1, 2})
	if !a.take(1) || a.take(1) || !a.take(2) {
		t.Fatal("take must report an added id once")
	}
	big := make([]int64, maxAnnounced)
	for i := range big {
		big[i] = int64(i + 10)
	}
	a.add([]int64{3})
	a.add(big) // over the bound: starts over
	if a.take(3) || !a.take(10) {
		t.Fatal("past maxAnnounced the set must start over with the new ids")
	}
}
