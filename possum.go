package possum

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/seed475afdc4/possum/evict"
	"github.com/seed475afdc4/possum/manifest"
	"github.com/seed475afdc4/possum/snapshot"
	"github.com/seed475afdc4/possum/values"
)

// Cache is an open cache directory. It is safe for concurrent use by many
// goroutines, and the directory may be open in any number of processes at
// once.
type Cache struct {
	dir   string
	opts  Options
	log   *slog.Logger
	m     *manifest.Manifest
	files *values.Dir
	locks *snapshot.Locks // pins values by range locks where they cannot be cloned

	fixedStatic atomic.Int64 // disk bytes of the rarely changing fixed files (refreshFixed)
	writer      *values.WriterLock
	pool        *values.Pool
	stripes     *values.Stripes
	locs        *locationCache
	access      accessBuffer
	commits     *committer

	// reclaimer gives dead space back, committing through the committer;
	// inline is the same for the committer's own use, right after a commit,
	// committing directly. reclaimMu keeps Trim and the background pass
	// from working on the same regions at once.
	reclaimer, inline *evict.Reclaimer
	reclaimMu         sync.Mutex
	// announced are dead extents whose stripes this process bumped after
	// their commit: the reclaimers need not bump them again.
	announced announcedSet
	bg        background
	// stagedHook, set by tests only, runs before a staged put writes its
	// bytes (step "write"), once its request is sent; an error it returns
	// fails the write.
	stagedHook func(key, step string) error
	// committedHook, set by tests only, runs after each commit of the
	// committer that inserted keys, before the stripes are bumped again.
	committedHook func(inserted []string)
	// cloneOK says whether the values directory can clone ranges,
	// probed on the first Open of a large value.
	cloneProbe sync.Once
	cloneOK    atomic.Bool

	// capacity caches the shared capacity, refreshed by every commit, so
	// that a put can refuse a value larger than it while streaming.
	capacity atomic.Int64

	// mu guards the open state: operations hold it shared, Close exclusively,
	// so nothing touches the mapped stripes or closed files after Close.
	mu     sync.RWMutex
	closed bool

	stats counters
}

// counters are this process's event counts, reported by Stats.
type counters struct {
	hits, misses, expired, corrupt, retries atomic.Int64
	evictions, expirations                  atomic.Int64
	clones, locks                           atomic.Int64 // values pinned by clone, by range lock
	copyRangeBytes, sendfileBytes           atomic.Int64 // bytes WriteTo moved in the kernel
	putCloneBytes, putCopyBytes             atomic.Int64 // bytes puts of files cloned, copied in the kernel
	reclaim                                 evict.Counters
}

const readmeText = `This directory is a possum cache: a key-value cache shared by the processes
that open it. manifest.db (SQLite, WAL) says which key lives where;
values/ holds the bytes; stripes coordinates readers. Do not edit these files
by hand while a process has the cache open; "possum verify -repair" (or
deleting the whole directory) recovers from damage. Inspect it with
"possum ls -l" or "sqlite3 manifest.db 'select * from entries_readable'".
`

// Open opens the cache in dir, creating the directory and the cache if they
// do not exist. A nil opts means the defaults.
//
// Any number of processes may open the same directory at the same time, the
// first ones racing to create it: creation and schema upgrades run under an
// exclusive flock on the directory. Every other operation is coordinated
// through SQLite's locks on the manifest, OFD byte-range locks on the value
// files and the shared stripe counters, all of which need a local filesystem
// with working OFD locks and shared mmap: not NFS, SMB or other network
// filesystems.
//
// A process killed at any instant leaves nothing that the next Open or a
// running process does not repair. Without Options.Sync, an operating system
// crash or power loss may lose the most recent writes; what survives is
// consistent, and values whose bytes did not reach the disk read as misses.
//
// Open refuses, changing nothing, a directory that holds other files and no
// cache (ErrNotCache), a cache written by a newer possum (ErrNewerVersion),
// and a directory it cannot write (ErrReadOnly).
func Open(dir string, opts *Options) (*Cache, error) {
	o := opts.withDefaults()
	// Absolute, so that the manifest's URI is well formed and a later
	// chdir changes nothing.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("possum: open %s: %w", dir, err)
	}
	c := &Cache{dir: abs, opts: o, log: o.Logger}
	if err := c.open(context.Background()); err != nil {
		c.closeAll()
		return nil, fmt.Errorf("possum: open %s: %w", dir, err)
	}
	c.locs = newLocationCache(o.LocationCacheSize)
	c.access.now = o.now
	c.commits = newCommitter(c)
	c.startBackground()
	c.log.Debug("possum: opened", "dir", dir, "align", c.files.Align())
	return c, nil
}

func (c *Cache) open(ctx context.Context) error {
	dirPerm := values.DirPerm(c.opts.Perm)
	if err := os.MkdirAll(c.dir, dirPerm); err != nil {
		return writableErr(err)
	}
	// The writer lock opens the stripes file (made by initFiles) only when
	// a write transaction first asks for it.
	c.writer = values.OpenWriterLock(filepath.Join(c.dir, "stripes"))
	if fi, err := os.Stat(c.dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%w: not a directory", ErrNotCache)
	}
	if err := checkWritable(c.dir); err != nil {
		return err
	}
	var err error
	c.m, err = manifest.Open(ctx, c.dir, manifest.Config{
		Sync:     c.opts.Sync,
		Perm:     c.opts.Perm,
		StripeOf: func(k []byte) int { return stripeOf(xxhash.Sum64(k)) },
		MaxKey:   MaxKeySize,
		Now:      c.opts.now,
		Init:     c.initFiles,
		LockWriter: func(ctx context.Context) (func(), error) {
			return c.writer.Lock(ctx, manifest.BusyTimeout)
		},
		BeforeCommit: func(stripes map[int]struct{}) map[int]uint64 {
			after := make(map[int]uint64, len(stripes))
			for s := range stripes {
				after[s] = c.stripes.Bump(s)
			}
			return after
		},
		// Before SQLite creates its files: none of them may be
		// preallocated (see values.NoPreallocDir).
		Prepare: func() { values.NoPreallocDir(c.dir) },
	})
	if err != nil {
		return writableErr(err)
	}
	c.pool = values.NewPool(c.files)
	c.pool.NewID = c.newFileID
	c.pool.Candidates = c.appendCandidates
	c.reclaimer = &evict.Reclaimer{
		M: c.m, Dir: c.files, Log: c.log, Stats: &c.stats.reclaim, NoPunch: c.opts.DisablePunch,
		Bump:      func(s int) { c.stripes.Bump(s) },
		Announced: c.announced.take,
		Commit:    func(ctx context.Context, f func(*manifest.Tx) error) error { return c.commits.do(ctx, f) },
	}
	inline := *c.reclaimer
	inline.Commit = func(ctx context.Context, f func(*manifest.Tx) error) error {
		stripes, err := c.m.Update(ctx, f)
		c.bump(stripes)
		return err
	}
	c.inline = &inline
	if err := c.setupCapacity(ctx); err != nil {
		return err
	}
	err = c.ensureReserve()
	c.refreshFixed()
	return err
}

// initFiles creates the cache's other files; it runs under the directory
// lock, right after the manifest is created or upgraded.
func (c *Cache) initFiles() error {
	perm := c.opts.Perm
	readme := filepath.Join(c.dir, "README")
	if _, err := os.Lstat(readme); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(readme, []byte(readmeText), perm); err != nil {
			return err
		}
	}
	var err error
	if c.files, err = values.OpenDir(filepath.Join(c.dir, "values"), perm); err != nil {
		return err
	}
	c.locks = snapshot.NewLocks(c.files)
	c.stripes, err = values.OpenStripes(filepath.Join(c.dir, "stripes"), perm)
	return err
}

// checkWritable tells a read-only directory apart early, with a clear error,
// before SQLite reports it as something obscure. access(2) writes nothing,
// and reports a read-only filesystem even to root.
func checkWritable(dir string) error {
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return writableErr(&fs.PathError{Op: "access", Path: dir, Err: err})
	}
	return nil
}

func writableErr(err error) error {
	if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	return err
}

func (c *Cache) newFileID(ctx context.Context) (int64, error) {
	var id int64
	_, err := c.m.Update(ctx, func(tx *manifest.Tx) error {
		var err error
		id, err = tx.NewFile()
		return err
	})
	return id, err
}

// appendCandidates lists the newest value files: the ones most likely to be
// free for appending and far from full.
func (c *Cache) appendCandidates(ctx context.Context) ([]int64, error) {
	ids, err := c.m.Files(ctx)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids, nil
}

// Close flushes what this process buffered (access times) and releases its
// files and locks. Operations still running finish first; later ones return
// ErrClosed. Close may be called more than once.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.stopBackground()
	err := c.commits.stop()
	return errors.Join(err, c.closeAll())
}

func (c *Cache) closeAll() error {
	var errs []error
	if c.pool != nil {
		errs = append(errs, c.pool.Close())
	}
	if c.locks != nil {
		errs = append(errs, c.locks.Close())
	}
	if c.writer != nil {
		errs = append(errs, c.writer.Close())
	}
	if c.files != nil {
		errs = append(errs, c.files.Close())
	}
	if c.m != nil {
		errs = append(errs, c.m.Close())
	}
	if c.stripes != nil {
		errs = append(errs, c.stripes.Close())
	}
	return errors.Join(errs...)
}

// enter marks the start of an operation; it fails once the cache is closed.
// The caller must call c.mu.RUnlock when done.
func (c *Cache) enter() error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Dir returns the cache's directory.
func (c *Cache) Dir() string { return c.dir }

func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeySize:
		return fmt.Errorf("%w: %d bytes, more than MaxKeySize (%d)", ErrInvalidKey, len(key), MaxKeySize)
	}
	return nil
}

func keyHash(key string) uint64 { return xxhash.Sum64String(key) }

func stripeOf(h uint64) int { return int(h % values.StripeCount) }

// bump increments the stripe counters of keys a commit changed. It runs
// after the commit and before the committing call returns: from then on no
// process serves the old value, and only after it may the old region be
// freed (DESIGN.md, invariant 3).
func (c *Cache) bump(stripes []int) {
	for _, s := range stripes {
		c.stripes.Bump(s)
	}
}
