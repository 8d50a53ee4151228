package possum

import "time"

// WaitRecovered waits until c's background recovery after Open is over.
func WaitRecovered(c *Cache) { <-c.bg.recovered }

// SetClock gives tests a clock for o.
func SetClock(o *Options, now func() time.Time) { o.now = now }
