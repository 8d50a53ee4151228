package possum

import (
	"strings"
	"sync"
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
type locationCache struct {
	max    int // entries per shard; 0 disables the cache
	shards [locShards]locShard
}

type locShard struct {
	mu sync.RWMutex
	m  map[string]locEntry
}

type locEntry struct {
	stripe uint64
	loc    manifest.Location
	neg    bool      // a cached miss
	at     time.Time // when a miss was cached
}

func newLocationCache(size int) *locationCache {
	lc := &locationCache{}
	if size > 0 {
		lc.max = max(1, size/locShards)
	}
	for i := range lc.shards {
		lc.shards[i].m = make(map[string]locEntry)
	}
	return lc
}

func (lc *locationCache) shard(h uint64) *locShard { return &lc.shards[h>>58] }

// get returns key's entry if it was filled while the stripe read s1.
func (lc *locationCache) get(key string, h, s1 uint64) (locEntry, bool) {
	if lc.max == 0 {
		return locEntry{}, false
	}
	sh := lc.shard(h)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok || e.stripe != s1 {
		return locEntry{}, false
	}
	if e.neg && time.Since(e.at) > negativeTTL {
		return locEntry{}, false
	}
	return e, true
}

func (lc *locationCache) put(key string, h, s1 uint64, loc manifest.Location, neg bool) {
	if lc.max == 0 {
		return
	}
	e := locEntry{stripe: s1, loc: loc, neg: neg}
	if neg {
		e.at = time.Now()
	}
	sh := lc.shard(h)
	sh.mu.Lock()
	if _, ok := sh.m[key]; !ok && len(sh.m) >= lc.max {
		for k := range sh.m { // an arbitrary victim: Go randomises map order
			delete(sh.m, k)
			break
		}
	}
	sh.m[key] = e
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
		for k := range sh.m {
			if strings.HasPrefix(k, prefix) {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}
