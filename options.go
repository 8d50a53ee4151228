package possum

import (
	"io/fs"
	"log/slog"
	"time"
)

// MaxKeySize is the longest key, in bytes. Keys live in the manifest and its
// index, so they are kept to a size where a lookup stays one B-tree probe of
// a few pages; 16 KiB is room for any URL or path.
const MaxKeySize = 16 << 10

// DefaultCapacity is the capacity a new cache gets when Options.Capacity is
// zero: large enough for a developer's build or download cache, small
// enough not to surprise anyone. Change it with Options.Capacity or
// SetCapacity; it is kept in the manifest.
const DefaultCapacity = 1 << 30

// Options configure Open. A nil *Options means the zero Options, and every
// zero field means its default.
type Options struct {
	// Capacity is the most the cache may hold on disk, in bytes: the live
	// values (large ones rounded up to whole filesystem blocks), the space
	// freed but not yet given back to the filesystem, what the files hold
	// beyond that (blocks shared by live and dead values, preallocation),
	// and the manifest with its WAL; so "du -sB1 DIR" stays under it, give
	// or take one value and one WAL checkpoint. It is kept in the manifest
	// and shared by every process; a non-zero Capacity sets it. Zero keeps
	// what the manifest says (DefaultCapacity for a new cache).
	Capacity int64

	// DisablePunch stops possum from punching holes: dead space then comes
	// back only when a file's tail is cut off or a whole file is removed.
	// For filesystems where punching misbehaves. Zero (false) punches.
	DisablePunch bool

	// Perm is the mode of the files possum creates; directories get the
	// matching search bits. Zero means 0600 (directories 0700): only this
	// user. Use 0660 or 0644 for a cache shared between users.
	Perm fs.FileMode

	// Sync makes every commit durable: value files are fdatasync'd before
	// the manifest commits, and the manifest runs synchronous=FULL. Zero
	// (false) is a cache's usual trade: a power loss may lose recent puts,
	// and checksums turn values whose bytes never reached the disk into
	// misses, never into wrong data.
	Sync bool

	// LocationCacheSize bounds the per-process cache of key locations that
	// lets a hot Get skip the manifest: a Get of a key it does not hold
	// costs a manifest query (about ten times a hot Get). Zero means 262144
	// entries (about 180 bytes each with short keys: 47 MB when full);
	// negative disables it.
	LocationCacheSize int

	// VerifyEveryRead checks every Get's bytes against the value's
	// checksum. Zero (false) checks them the first time this process reads
	// a value from its location, and trusts later reads of the same
	// location, which the stripe counters already guarantee are not another
	// value's bytes or a punched hole: damage from outside possum (a power
	// loss, a hand edit) is caught at the first read after a restart or
	// after the key changes. Cache.Verify and Value.Verify always check.
	VerifyEveryRead bool

	// Logger receives possum's diagnostics. Nil means none: possum is quiet
	// unless asked.
	Logger *slog.Logger

	// now is the clock, for tests; nil means time.Now.
	now func() time.Time
}

// PutOptions qualify one Put.
type PutOptions struct {
	// TTL makes the value expire that long after the put: it is then a
	// miss. Zero means it never expires.
	TTL time.Duration
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.Perm == 0 {
		v.Perm = 0o600
	}
	if v.LocationCacheSize == 0 {
		v.LocationCacheSize = 1 << 18
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v
}
