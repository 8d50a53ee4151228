package possum

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/seed475afdc4/possum/evict"
	"github.com/seed475afdc4/possum/manifest"
)

// reclaimInterval is how often the background reclaimer looks for dead
// extents no process has given back yet (left by a crash, or locked by a
// reader last time). A commit reclaims what it frees itself, right away, so
// this only paces the leftovers.
const reclaimInterval = time.Second

// overheadEvery is how many reclaim passes go between measurements of the
// value files' real allocation (one stat per file).
const overheadEvery = 10

// reclaimBatch is how many dead extents one background pass takes.
const reclaimBatch = 1024

// SetCapacity sets the cache's capacity, for every process that shares it,
// and evicts at once what no longer fits.
func (c *Cache) SetCapacity(ctx context.Context, n int64) error {
	if n <= 0 {
		return opErr("set capacity", "", fmt.Errorf("capacity must be positive, not %d", n))
	}
	// The space reserve follows the capacity: resized first, so that the
	// eviction below counts it at its new size.
	c.capacity.Store(n)
	if err := c.ensureReserve(); err != nil {
		c.log.Warn("possum: space reserve", "err", err)
	}
	c.refreshFixed()
	return c.change(ctx, "set capacity", "", func(tx *manifest.Tx) error {
		return tx.SetSetting(manifest.SettingCapacity, n)
	})
}

// Capacity returns the cache's capacity.
func (c *Cache) Capacity(ctx context.Context) (int64, error) {
	if err := c.enter(); err != nil {
		return 0, opErr("capacity", "", err)
	}
	defer c.mu.RUnlock()
	n, err := c.m.Setting(ctx, manifest.SettingCapacity)
	return n, opErr("capacity", "", err)
}

// Trim evicts what is over capacity and gives back to the filesystem every
// dead extent it can now, instead of waiting for the background reclaimer:
// when it returns, the space of everything deleted before it was called has
// been returned, except regions a reader still holds.
func (c *Cache) Trim(ctx context.Context) error {
	if err := c.enter(); err != nil {
		return opErr("trim", "", err)
	}
	defer c.mu.RUnlock()
	c.reclaimMu.Lock()
	defer c.reclaimMu.Unlock()
	// An empty change: its commit runs the eviction check.
	if err := c.commits.do(ctx, func(*manifest.Tx) error { return nil }); err != nil {
		return opErr("trim", "", err)
	}
	if err := c.reclaimer.Recover(ctx); err != nil {
		return opErr("trim", "", err)
	}
	if err := c.drainDead(ctx); err != nil {
		return opErr("trim", "", err)
	}
	return opErr("trim", "", c.measureOverhead(ctx))
}

// drainDead runs reclaim passes until no dead extent is left, or a pass
// makes no progress (what is left is held by readers or writers).
func (c *Cache) drainDead(ctx context.Context) error {
	for {
		t, err := c.m.Totals(ctx)
		if err != nil || t.DeadExtents == 0 {
			return err
		}
		if err := c.reclaimer.Pass(ctx, reclaimBatch); err != nil {
			return err
		}
		after, err := c.m.Totals(ctx)
		if err != nil || after.DeadExtents >= t.DeadExtents {
			return err
		}
	}
}

// background runs the reclaimer of this open cache: first it repairs what
// killed processes left, then it drains dead extents, drops expired entries
// and measures the files' overhead, about once a second, until Close.
type background struct {
	quit chan struct{}
	wg   sync.WaitGroup
	// recovered is closed once the first recovery is over (tests wait on
	// it: while it runs, it holds locks on the files' tails).
	recovered chan struct{}
}

func (c *Cache) startBackground() {
	c.bg.quit = make(chan struct{})
	c.bg.recovered = make(chan struct{})
	c.bg.wg.Add(1)
	go func() {
		defer c.bg.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { <-c.bg.quit; cancel() }()
		c.reclaimMu.Lock()
		if err := c.reclaimer.Recover(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("possum: recover", "err", err)
		}
		c.reclaimMu.Unlock()
		close(c.bg.recovered)
		tick := time.NewTicker(reclaimInterval)
		defer tick.Stop()
		for n := 0; ; n++ {
			c.backgroundPass(ctx, n%overheadEvery == 0)
			select {
			case <-tick.C:
			case <-c.bg.quit:
				return
			}
		}
	}()
}

func (c *Cache) stopBackground() {
	if c.bg.quit != nil {
		close(c.bg.quit)
		c.bg.wg.Wait()
	}
}

func (c *Cache) backgroundPass(ctx context.Context, measure bool) {
	c.reclaimMu.Lock()
	defer c.reclaimMu.Unlock()
	if err := c.reclaimer.Pass(ctx, reclaimBatch); err != nil && ctx.Err() == nil {
		c.log.Warn("possum: reclaim pass", "err", err)
	}
	c.files.Sweep() // descriptors of files other processes removed
	c.locks.Sweep()
	if err := c.ensureReserve(); err != nil {
		c.log.Warn("possum: space reserve", "err", err)
	}
	c.refreshFixed()
	if err := c.dropExpired(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("possum: expiry", "err", err)
	}
	if measure {
		if err := c.measureOverhead(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("possum: measure", "err", err)
		}
	}
}

// dropExpired deletes entries whose time is up, so that they give their
// space back even when nothing needs it.
func (c *Cache) dropExpired(ctx context.Context) error {
	if ok, err := c.m.HasExpired(ctx, c.opts.now().UnixNano()); err != nil || !ok {
		return err
	}
	return c.commits.do(ctx, func(tx *manifest.Tx) error {
		n, err := tx.DeleteExpired(reclaimBatch)
		c.stats.expirations.Add(int64(n))
		return err
	})
}

// measureOverhead records in the manifest how much the value files hold
// beyond what the rows account for, when it changed by more than a block.
func (c *Cache) measureOverhead(ctx context.Context) error {
	d, err := c.reclaimer.MeasureDisk(ctx)
	if err != nil {
		return err
	}
	t, err := c.m.Totals(ctx)
	if err != nil {
		return err
	}
	over := evict.Overhead(d, t.LiveFootprint, t.DeadFootprint)
	old, err := c.m.Setting(ctx, manifest.SettingOverhead)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if diff := over - old; diff < c.files.Align() && -diff < c.files.Align() && err == nil {
		return nil
	}
	return c.commits.do(ctx, func(tx *manifest.Tx) error { return tx.SetSetting(manifest.SettingOverhead, over) })
}

// fixedNames are the cache's files other than values: counted against the
// capacity as they are on disk. The first two change with every commit and
// are measured each time; the others change rarely (the space reserve, the
// shared memory index of the WAL) and are measured by refreshFixed.
var fixedNames = []string{manifest.FileName, manifest.FileName + "-wal", manifest.FileName + "-shm", "stripes", "README", reserveName}

// fixedBytes is what the manifest, its WAL and the other small files hold
// on disk (actual), and how much of it counts against the capacity
// (counted): the WAL counts up to walLimit, which the committer keeps it
// under by checkpointing (evicting values would not shrink it). over says
// whether the WAL is past that.
func (c *Cache) fixedBytes() (counted, actual int64, over bool) {
	static, limit := c.fixedStatic.Load(), c.walLimit()
	counted, actual = static, static
	for _, name := range fixedNames[:2] {
		b := c.diskBytes(name)
		actual += b
		if name == manifest.FileName+"-wal" && b > limit {
			b, over = limit, true
		}
		counted += b
	}
	return counted, actual, over
}

// walLimit is how large the WAL may grow before the committer empties it:
// manifest.WALLimit (4 MiB), or a 32nd of the capacity in a small cache,
// where 4 MiB of WAL would crowd out the values (at least 256 KiB).
func (c *Cache) walLimit() int64 {
	return min(max(c.capacity.Load()/32, 256<<10), manifest.WALLimit)
}

// refreshFixed measures the fixed files that change rarely: at Open, after
// the space reserve changes, and once a second in the background.
func (c *Cache) refreshFixed() {
	var n int64
	for _, name := range fixedNames[2:] {
		n += c.diskBytes(name)
	}
	c.fixedStatic.Store(n)
}

// diskBytes is what file name of the cache directory holds on disk; 0 if
// it is missing.
func (c *Cache) diskBytes(name string) int64 {
	fi, err := os.Lstat(filepath.Join(c.dir, name))
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return 0
}

// setupCapacity applies Options.Capacity, or gives a new cache the default.
func (c *Cache) setupCapacity(ctx context.Context) error {
	cur, err := c.m.Setting(ctx, manifest.SettingCapacity)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	want := c.opts.Capacity
	if want == 0 && err != nil {
		want = DefaultCapacity
	}
	if want == 0 || want == cur {
		c.capacity.Store(cur)
		return nil
	}
	c.capacity.Store(want)
	_, err = c.m.Update(ctx, func(tx *manifest.Tx) error { return tx.SetSetting(manifest.SettingCapacity, want) })
	return err
}
