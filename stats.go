package possum

import (
	"context"
	"time"
)

// Stats are a cache's figures: the shared ones from the manifest (the same
// in every process) and this process's own event counts since Open.
type Stats struct {
	// Shared by every process.
	Entries     int64 // live keys
	LiveBytes   int64 // sum of the live values' sizes
	LiveBlocks  int64 // bytes the live values hold on disk: large values rounded up to whole blocks
	DeadExtents int64 // regions freed but not yet given back to the filesystem
	DeadBytes   int64 // their size

	// This process's counts.
	Hits             int64 // Gets that returned a value
	Misses           int64 // Gets that found nothing (expired and damaged values included)
	Expired          int64 // misses because the value had expired
	ChecksumFailures int64 // values found damaged, dropped and reported as misses
	ReadRetries      int64 // reads started over because a key of their stripe changed

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
	return s
}
