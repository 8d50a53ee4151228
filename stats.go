package possum

import (
	"context"
	"time"

	"github.com/seed475afdc4/possum/manifest"
)

// Stats are a cache's figures: the shared ones from the manifest (the same
// in every process) and this process's own event counts since Open.
type Stats struct {
	// Shared by every process.
	Capacity    int64 // the most the cache may hold on disk
	Used        int64 // what counts against it: LiveBlocks + DeadBytes + Overhead + ManifestBytes (its WAL up to 4 MiB)
	Overhead    int64 // bytes value files hold beyond their rows, as last measured
	Entries     int64 // live keys
	LiveBytes   int64 // sum of the live values' sizes
	LiveBlocks  int64 // bytes the live values hold on disk: large values rounded up to whole blocks
	DeadExtents int64 // regions freed but not yet given back to the filesystem
	DeadBytes   int64 // their size

	// Measured now.
	DiskBytes     int64 // what the directory's files hold on disk (st_blocks), as du counts
	ManifestBytes int64 // of which the manifest, its WAL and the small files

	// This process's counts.
	Hits             int64 // Gets that returned a value
	Misses           int64 // Gets that found nothing (expired and damaged values included)
	Expired          int64 // misses because the value had expired
	ChecksumFailures int64 // values found damaged, dropped and reported as misses
	ReadRetries      int64 // reads started over because a key of their stripe changed
	Evictions        int64 // entries evicted for space (expired ones included)
	Expirations      int64 // entries deleted because they expired
	Punches          int64 // holes punched
	PunchedBytes     int64 // bytes given back by them
	PunchFailures    int64 // punches the filesystem refused; space came back by other means
	Truncations      int64 // dead file tails cut off
	FilesRemoved     int64 // value files removed with nothing live in them
	OpenedByClone    int64 // large values Open pinned by cloning their blocks (xfs, btrfs)
	OpenedByLock     int64 // large values Open pinned by a shared range lock (elsewhere)
	CopyRangeBytes   int64 // bytes Value.WriteTo moved with copy_file_range
	SendfileBytes    int64 // bytes Value.WriteTo moved with sendfile
	PutCloneBytes    int64 // bytes of files brought in by reflink (xfs, btrfs): shared, not copied
	PutCopyBytes     int64 // bytes of files brought in by copy_file_range

	// Err is set if the manifest could not be read; the shared figures are
	// then zero.
	Err error
}

// statsTimeout bounds the manifest read behind Stats, which takes no context.
const statsTimeout = 5 * time.Second

// Stats returns the cache's figures.
func (c *Cache) Stats() Stats {
	s := Stats{
		Hits:             c.stats.hits.Load(),
		Misses:           c.stats.misses.Load(),
		Expired:          c.stats.expired.Load(),
		ChecksumFailures: c.stats.corrupt.Load(),
		ReadRetries:      c.stats.retries.Load(),
		Evictions:        c.stats.evictions.Load(),
		Expirations:      c.stats.expirations.Load(),
		Punches:          c.stats.reclaim.Punches.Load(),
		PunchedBytes:     c.stats.reclaim.PunchedBytes.Load(),
		PunchFailures:    c.stats.reclaim.PunchFailures.Load(),
		Truncations:      c.stats.reclaim.Truncations.Load(),
		FilesRemoved:     c.stats.reclaim.FilesRemoved.Load(),
		OpenedByClone:    c.stats.clones.Load(),
		OpenedByLock:     c.stats.locks.Load(),
		CopyRangeBytes:   c.stats.copyRangeBytes.Load(),
		SendfileBytes:    c.stats.sendfileBytes.Load(),
		PutCloneBytes:    c.stats.putCloneBytes.Load(),
		PutCopyBytes:     c.stats.putCopyBytes.Load(),
	}
	if err := c.enter(); err != nil {
		s.Err = err
		return s
	}
	defer c.mu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	t, err := c.m.Totals(ctx)
	if err != nil {
		s.Err = err
		return s
	}
	s.Entries, s.LiveBytes, s.LiveBlocks = t.Entries, t.LiveBytes, t.LiveFootprint
	s.DeadExtents, s.DeadBytes = t.DeadExtents, t.DeadFootprint
	s.Capacity, _ = c.m.Setting(ctx, manifest.SettingCapacity)
	s.Overhead, _ = c.m.Setting(ctx, manifest.SettingOverhead)
	c.refreshFixed()
	counted, actual, _ := c.fixedBytes()
	s.ManifestBytes = actual
	s.Used = s.LiveBlocks + s.DeadBytes + s.Overhead + counted
	if d, err := c.reclaimer.MeasureDisk(ctx); err == nil {
		s.DiskBytes = d.Allocated + actual
	}
	return s
}
