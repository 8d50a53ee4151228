package possum

import "time"

// SetClock gives tests a clock for o.
func SetClock(o *Options, now func() time.Time) { o.now = now }
