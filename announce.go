package possum

import "sync"

// maxAnnounced bounds the announced set; past it the set starts over, and
// the extents it forgot are bumped by the reclaimer like anyone else's.
const maxAnnounced = 1 << 20

// announcedSet holds the ids of dead extents whose rows this process's
// committer deleted and whose keys' stripes it bumped after the commit.
//
// Invariant 3 of DESIGN.md needs a stripe bump between a row's deletion and
// the punch of its region. The reclaimer bumps every extent's stripe before
// punching, in case the deleting process died before its own bump; for the
// extents in this set that bump has happened, and bumping again would only
// invalidate, in every process, the cached locations of the other keys
// sharing those stripes (a burst of replacing puts then costs readers a
// manifest lookup per key for as long as the reclaimer takes to drain it).
type announcedSet struct {
	mu  sync.Mutex
	ids map[int64]struct{}
}

// add records ids, announced by a bump after their commit.
func (a *announcedSet) add(ids []int64) {
	if len(ids) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil || len(a.ids)+len(ids) > maxAnnounced {
		a.ids = make(map[int64]struct{}, len(ids))
	}
	for _, id := range ids {
		a.ids[id] = struct{}{}
	}
}

// take reports whether id was announced, and forgets it: a reclaimer that
// comes back to the extent later bumps, which is always safe.
func (a *announcedSet) take(id int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.ids[id]
	if ok {
		delete(a.ids, id)
	}
	return ok
}
