package possum

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed475afdc4/possum/manifest"
)

// Get returns key's value. A key the cache does not hold is ErrNotFound
// (fs.ErrNotExist).
//
// A hot Get costs a hash, two atomic loads, a map lookup and one pread: the
// read is validated by the key's stripe counter (read before locating the
// value and again after reading it) instead of by any lock. It never
// returns zeros from a punched hole or bytes of another value. The first
// read of a value from its location in this process also checks the
// value's checksum (Options.VerifyEveryRead: every read does); a value whose
// bytes fail it is dropped and reported as a miss.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	return c.GetAppend(ctx, nil, key)
}

// GetAppend appends key's value to dst and returns the extended slice: with
// a dst of enough capacity, a hit allocates nothing.
func (c *Cache) GetAppend(ctx context.Context, dst []byte, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return dst, opErr("get", key, err)
	}
	if err := c.enter(); err != nil {
		return dst, opErr("get", key, err)
	}
	defer c.mu.RUnlock()
	out, err := c.read(ctx, dst, key)
	if err != nil {
		return dst, opErr("get", key, err)
	}
	return out, nil
}

// maxReadRetries bounds how often a read starts over because its key's
// stripe moved under it. Each retry means some process changed a key of the
// same stripe meanwhile; thousands in a row mean a storm of writes, and the
// read then reports the contention rather than spin.
const maxReadRetries = 1000

var errContended = errors.New("possum: read retried too often under concurrent writes")

// read follows DESIGN.md's read protocol.
func (c *Cache) read(ctx context.Context, dst []byte, key string) ([]byte, error) {
	h := keyHash(key)
	si := stripeOf(h)
	for range maxReadRetries {
		s1 := c.stripes.Load(si) // 1. before anything else
		e, err := c.locate(ctx, key, h, s1)
		if err != nil {
			return dst, err
		}
		loc := &e.loc
		if e.neg || loc.Expires != 0 && loc.Expires <= c.opts.now().UnixNano() {
			c.stats.misses.Add(1)
			if !e.neg {
				c.stats.expired.Add(1)
			}
			return dst, ErrNotFound
		}
		out := grow(dst, loc.Length)
		p := out[len(dst):]
		if loc.Length > 0 {
			err = c.files.ReadAt(loc.FileID, p, loc.Offset) // 3.
		}
		if c.stripes.Load(si) != s1 { // 4. something of this stripe changed: start over
			c.stats.retries.Add(1)
			continue
		}
		if errors.Is(err, os.ErrClosed) {
			continue // our descriptor was closed under us: reopen
		}
		if err == nil && (c.opts.VerifyEveryRead || !e.verified.Load()) { // 5.
			if checksum(loc.ChecksumKind, p) != loc.Checksum {
				err = errChecksum
			} else {
				e.verified.Store(true)
			}
		}
		if err != nil {
			// The row was live for the whole read, yet its bytes are missing
			// or wrong: damage from outside (a power loss, a hand edit).
			c.dropDamaged(key, *loc, err)
			c.stats.misses.Add(1)
			return dst, ErrNotFound
		}
		c.access.touch(e)
		c.stats.hits.Add(1)
		return out, nil
	}
	return dst, errContended
}

var errChecksum = errors.New("checksum mismatch")

// locate finds key's value: from the location cache if its entry was filled
// while the stripe read s1, else from the manifest. A miss is an entry with
// neg set, so that it can be cached too.
func (c *Cache) locate(ctx context.Context, key string, h uint64, s1 uint64) (*locEntry, error) {
	if e := c.locs.get(key, h, s1); e != nil {
		return e, nil
	}
	loc, err := c.m.Lookup(ctx, []byte(key))
	if errors.Is(err, fs.ErrNotExist) {
		return c.locs.put(key, h, s1, loc, true), nil
	}
	if err != nil {
		return nil, err
	}
	return c.locs.put(key, h, s1, loc, false), nil
}

func grow(b []byte, n int64) []byte {
	if int64(cap(b)-len(b)) >= n {
		return b[:len(b)+int(n)]
	}
	out := make([]byte, len(b)+int(n))
	copy(out, b)
	return out
}

// dropDamaged deletes the damaged row (that row only: a newer value put
// under the key meanwhile stays), in the background.
func (c *Cache) dropDamaged(key string, loc manifest.Location, cause error) {
	c.stats.corrupt.Add(1)
	c.log.Warn("possum: dropping damaged value", "key", quoteKey(key), "file", loc.FileID,
		"offset", loc.Offset, "length", loc.Length, "err", cause)
	c.access.drop(loc.KeyID)
}

// Info describes a stored value.
type Info struct {
	Key     string
	Size    int64
	Created time.Time
	// LastUsed is the last read recorded: reads are recorded about once a
	// second, and another process's reads may be that much later still.
	LastUsed time.Time
	Expires  time.Time // zero: never
}

func entryInfo(e *manifest.Entry) Info {
	i := Info{Key: string(e.Key), Size: e.Length, Created: time.Unix(0, e.Created), LastUsed: time.Unix(0, e.LastUsed)}
	if e.Expires.Valid {
		i.Expires = time.Unix(0, e.Expires.Int64)
	}
	return i
}

// Stat describes key's value without reading it (and without counting as a
// use). A missing or expired key is ErrNotFound. Like Get, it usually
// answers from this process's location cache, without a manifest query.
func (c *Cache) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, opErr("stat", key, err)
	}
	if err := c.enter(); err != nil {
		return Info{}, opErr("stat", key, err)
	}
	defer c.mu.RUnlock()
	h := keyHash(key)
	e, err := c.locate(ctx, key, h, c.stripes.Load(stripeOf(h)))
	if err != nil {
		return Info{}, opErr("stat", key, err)
	}
	if e.neg || e.loc.Expires != 0 && e.loc.Expires <= c.opts.now().UnixNano() {
		return Info{}, opErr("stat", key, ErrNotFound)
	}
	info := locInfo(key, &e.loc)
	if ns, ok := c.access.get(e.loc.KeyID); ok && ns > e.loc.LastUsed {
		info.LastUsed = time.Unix(0, ns)
	}
	return info, nil
}

// accessBuffer holds what this process's reads want written to the
// manifest: key_id to the latest read time, and the rows found damaged. The
// committer takes it about once a second, before evicting, and at Close, and
// writes it in slices (or holds it back while the cache is far from full:
// see quietHold).
//
// A read records its access at most once per flush period per
// location-cache entry, and only if the value is at risk of eviction (touch,
// atRisk): other reads cost an atomic load, or that and a clock read. The
// flush stamps every key recorded in the period with its own time (take).
type accessBuffer struct {
	now    func() time.Time
	epoch  atomic.Uint64 // counts takes: a new flush period
	oldest atomic.Int64  // the least recently used entry's last use, Unix ns (0: unknown)
	mu     sync.Mutex
	m      map[int64]int64
	drops  []int64
}

// touch records a read of e's value, unless one was recorded in this
// flush period already, or the value's recorded last use is recent enough
// that eviction will not reach it soon (see atRisk).
func (b *accessBuffer) touch(e *locEntry) {
	ep := b.epoch.Load() + 1
	if e.touched.Load() == ep {
		return
	}
	e.touched.Store(ep)
	now := b.now().UnixNano()
	if !b.atRisk(e.stamped.Load(), now) {
		return
	}
	e.stamped.Store(now)
	b.record(e.loc.KeyID, now)
}

// atRisk reports whether a value last used at stamped (as the manifest has
// it) is in the older half of the cache's span of last uses, from the
// least recently used entry (measured by the committer at each flush) to
// now: the part eviction will reach first. Like relatime's rule for atime,
// a read of a value outside it is not recorded: it would not change which
// values go next, and each record costs a manifest write, which is what
// makes a cache read across many keys expensive to keep in LRU order. When
// the oldest use is not known yet, every read is at risk.
//
// Recording moves the oldest use forward, which narrows the span: read
// across every key, a cache would record every read every second or two.
// That costs memory only (one map entry per key per flush period) while the
// cache is far from full, for then the committer holds the times back for
// up to quietHold, writing each key's latest once (see committer.hold).
func (b *accessBuffer) atRisk(stamped, now int64) bool {
	oldest := b.oldest.Load()
	if oldest <= 0 || oldest >= now {
		return true
	}
	return stamped < oldest+(now-oldest)/2
}

// drop queues the removal of row key_id, found damaged.
func (b *accessBuffer) drop(id int64) {
	b.mu.Lock()
	b.drops = append(b.drops, id)
	b.mu.Unlock()
}

func (b *accessBuffer) record(id, ns int64) {
	b.mu.Lock()
	if b.m == nil {
		b.m = make(map[int64]int64)
	}
	b.m[id] = ns
	b.mu.Unlock()
}

func (b *accessBuffer) get(id int64) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ns, ok := b.m[id]
	return ns, ok
}

// take empties the buffer for a flush and starts a new flush period. Each
// key read in the period that ends is stamped with the time of the flush:
// touch records only a period's first read of a key, and a key read
// throughout the period must not look older than values written in it.
func (b *accessBuffer) take() (map[int64]int64, []int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, d := b.m, b.drops
	b.m, b.drops = nil, nil
	b.epoch.Add(1)
	if len(m) > 0 {
		now := b.now().UnixNano()
		for id := range m {
			m[id] = now
		}
	}
	return m, d
}
