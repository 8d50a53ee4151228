package possum

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed475afdc4/possum/manifest"
)

// locShards splits the location cache so that goroutines reading different
// keys rarely meet on one lock.
const locShards = 64

// negativeTTL bounds how long a cached miss is trusted. A miss is also
// invalidated by the key's stripe moving, which every committed insert does;
// the time bound only covers a writer killed between its commit and its
// stripe bump, which would otherwise leave this process blind to the new key.
const negativeTTL = time.Second

// locationCache remembers, per process, where keys' values are, each entry
// tagged with the stripe counter it was valid under (DESIGN.md, Reads).
//
// Entries are found by the key's 64-bit hash, which the read has already
// computed, and hold the key itself to rule out collisions: a lookup hashes
// nothing more.
type locationCache struct {
	max    int // entries per shard; 0 disables the cache
	shards [locShards]locShard
}

type locShard struct {
	mu sync.RWMutex
	m  map[uint64]*locEntry
}

// locEntry is one cached answer. An entry never changes once published,
// except for its two atomic marks, which only save work: verified skips the
// checksum of later reads from this location, and touched skips recording
// accesses already recorded in the current flush period.
type locEntry struct {
	key    string
	stripe uint64
	loc    manifest.Location
	neg    bool  // a cached miss
	at     int64 // when a miss was cached (Unix ns)

	verified atomic.Bool   // this process read the value here and its checksum held
	touched  atomic.Uint64 // 1 + the access buffer's epoch when a read was last recorded
	stamped  atomic.Int64  // the last use the manifest has (or will have) for the value, Unix ns
}

func newLocationCache(size int) *locationCache {
	lc := &locationCache{}
	if size > 0 {
		lc.max = max(1, size/locShards)
	}
	for i := range lc.shards {
		lc.shards[i].m = make(map[uint64]*locEntry)
	}
	return lc
}

func (lc *locationCache) shard(h uint64) *locShard { return &lc.shards[h>>58] }

// get returns key's entry if it was filled while the stripe read s1.
func (lc *locationCache) get(key string, h, s1 uint64) *locEntry {
	if lc.max == 0 {
		return nil
	}
	sh := lc.shard(h)
	sh.mu.RLock()
	e := sh.m[h]
	sh.mu.RUnlock()
	if e == nil || e.stripe != s1 || e.key != key {
		return nil
	}
	if e.neg && time.Now().UnixNano()-e.at > int64(negativeTTL) {
		return nil
	}
	return e
}

// put caches loc (or a miss) for key, read while the stripe read s1, and
// returns the entry; with the cache disabled the entry is not kept.
func (lc *locationCache) put(key string, h, s1 uint64, loc manifest.Location, neg bool) *locEntry {
	e := &locEntry{key: key, stripe: s1, loc: loc, neg: neg}
	e.stamped.Store(loc.LastUsed)
	if neg {
		e.at = time.Now().UnixNano()
	}
	if lc.max == 0 {
		return e
	}
	sh := lc.shard(h)
	sh.mu.Lock()
	if _, ok := sh.m[h]; !ok && len(sh.m) >= lc.max {
		for k := range sh.m { // an arbitrary victim: Go randomises map order
			delete(sh.m, k)
			break
		}
	}
	sh.m[h] = e
	sh.mu.Unlock()
	return e
}

// refresh replaces key's entry, if it has one, with loc under stripe s: a
// writer's own commit moved the key there (see committer.bumpRefreshing).
// A key not cached is left out, so that a stream of puts does not push
// the entries of keys being read out of the cache.
func (lc *locationCache) refresh(key string, h, s uint64, loc manifest.Location) {
	if lc.max == 0 {
		return
	}
	sh := lc.shard(h)
	sh.mu.Lock()
	if old := sh.m[h]; old != nil && old.key == key {
		e := &locEntry{key: key, stripe: s, loc: loc}
		e.stamped.Store(loc.LastUsed)
		sh.m[h] = e
	}
	sh.mu.Unlock()
}

// dropPrefix forgets every entry whose key starts with prefix. A prefix
// delete or move calls it after committing: the commit bumped the stripes
// of the keys it found, but a key another process deleted just before
// (committed, its stripe not yet bumped) is not among them, and this
// process, having seen the prefix emptied, must not read that key from
// here afterwards.
func (lc *locationCache) dropPrefix(prefix string) {
	for i := range lc.shards {
		sh := &lc.shards[i]
		sh.mu.Lock()
		for h, e := range sh.m {
			if strings.HasPrefix(e.key, prefix) {
				delete(sh.m, h)
			}
		}
		sh.mu.Unlock()
	}
}
