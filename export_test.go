package possum

import "time"

// WaitRecovered waits until c's background recovery after Open is over.
func WaitRecovered(c *Cache) { <-c.bg.recovered }

// SetClock gives tests a clock for o.
func SetClock(o *Options, now func() time.Time) { o.now = now }

// SetStagedHook makes every staged put of c (a large value put from
// memory) call f before it writes its bytes (step "write"), once its
// request is sent to the committer; an error from f fails the write. Set
// it before c is used.
func SetStagedHook(c *Cache, f func(key, step string) error) { c.stagedHook = f }

// HandedOff is how many of c's transactions a staged put's writer
// committed.
func HandedOff(c *Cache) int64 { return c.commits.handedOff.Load() }

// StageWait is how long a transaction waits for a staged put's bytes.
const StageWait = stageWait

// SetCommittedHook makes c's committer call f after each commit that
// inserted keys (naming them), before it bumps their stripes again. Set it
// before c is used.
func SetCommittedHook(c *Cache, f func(inserted []string)) { c.committedHook = f }
