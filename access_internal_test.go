package possum

import "testing"

func TestAtRisk(t *testing.T) {
	var b accessBuffer
	const now = 1000
	if !b.atRisk(999, now) {
		t.Error("with the oldest use unknown, every read must be recorded")
	}
	b.oldest.Store(200) // span 200..1000: the older half ends at 600
	for _, c := range []struct {
		stamped int64
		want    bool
	}{{100, true}, {200, true}, {599, true}, {600, false}, {900, false}, {1000, false}} {
		if got := b.atRisk(c.stamped, now); got != c.want {
			t.Errorf("atRisk(%d) = %v, want %v", c.stamped, got, c.want)
		}
	}
	b.oldest.Store(now + 5) // a clock that went back: record
	if !b.atRisk(now, now) {
		t.Error("oldest use in the future: a read must be recorded")
	}
}

func TestCommitterSlices(t *testing.T) {
	k := &committer{pending: map[int64]int64{}}
	for i := range int64(100) {
		k.pending[i] = i
	}
	k.pendingDrops = []int64{7}
	m, d := k.slice(30)
	if len(m) != 30 || len(d) != 1 || len(k.pending) != 70 || k.pendingDrops != nil {
		t.Fatalf("slice(30): %d times, %d drops, %d left", len(m), len(d), len(k.pending))
	}
	k.restore(m, d) // a failed transaction gives them back
	if len(k.pending) != 100 || len(k.pendingDrops) != 1 {
		t.Fatalf("restore: %d pending, %d drops", len(k.pending), len(k.pendingDrops))
	}
	m, _ = k.slice(-1)
	if len(m) != 100 || k.pending != nil {
		t.Fatalf("slice(-1): %d times, %v left", len(m), k.pending)
	}
	if m, _ := k.slice(5); m == nil || len(m) != 0 {
		t.Fatalf("an empty slice must be an empty map, not %v", m)
	}
}
