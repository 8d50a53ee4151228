package possum

import (
	"context"
	"sync"
	"time"

	"github.com/seed475afdc4/possum/manifest"
)

// maxGroup bounds how many requests share one transaction, so that one
// commit never holds the manifest's write lock for long.
const maxGroup = 512

// accessFlushInterval is how often buffered access times reach the
// manifest. Reads never write the manifest themselves; the LRU order is
// exact to this granularity, which is plenty for eviction, and it keeps the
// write lock out of the read path.
const accessFlushInterval = time.Second

// A commitReq is one caller's change to the manifest: apply runs inside a
// savepoint of a transaction shared with other callers (group commit).
type commitReq struct {
	apply func(*manifest.Tx) error
	err   error
	done  chan struct{}
}

// committer runs every write transaction of one open Cache. Callers queue
// requests; the committer takes all that are waiting, applies them in one
// BEGIN IMMEDIATE transaction, each in its own savepoint so that one failing
// request fails alone, commits, bumps the stripes of the keys changed, and
// only then answers the callers. Many goroutines writing at once thus pay
// for one transaction and one WAL append between them.
type committer struct {
	c    *Cache
	reqs chan *commitReq
	quit chan struct{}
	wg   sync.WaitGroup
}

func newCommitter(c *Cache) *committer {
	k := &committer{c: c, reqs: make(chan *commitReq, maxGroup), quit: make(chan struct{})}
	k.wg.Add(1)
	go k.loop()
	return k
}

// do queues apply and waits for the transaction that ran it. Once queued, a
// request is waited for even if ctx ends: whether it committed must be known
// before the caller may release the bytes it wrote.
func (k *committer) do(ctx context.Context, apply func(*manifest.Tx) error) error {
	r := &commitReq{apply: apply, done: make(chan struct{})}
	select {
	case k.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-r.done
	return r.err
}

func (k *committer) loop() {
	defer k.wg.Done()
	tick := time.NewTicker(accessFlushInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-k.reqs:
			k.run(k.gather(r))
		case <-tick.C:
			if k.c.access.pending() {
				k.run(nil)
			}
		case <-k.quit:
			for {
				select {
				case r := <-k.reqs:
					k.run(k.gather(r))
				default:
					k.run(nil) // last flush of access times
					return
				}
			}
		}
	}
}

// gather takes first and whatever else is already waiting.
func (k *committer) gather(first *commitReq) []*commitReq {
	group := []*commitReq{first}
	for len(group) < maxGroup {
		select {
		case r := <-k.reqs:
			group = append(group, r)
		default:
			return group
		}
	}
	return group
}

func (k *committer) run(group []*commitReq) {
	touches, drops := k.c.access.take()
	if len(group) == 0 && len(touches) == 0 && len(drops) == 0 {
		return
	}
	stripes, err := k.c.m.Update(context.Background(), func(tx *manifest.Tx) error {
		for _, r := range group {
			r.err = tx.Savepoint(func() error { return r.apply(tx) })
		}
		for id, ns := range touches {
			if err := tx.Touch(id, ns); err != nil {
				return err
			}
		}
		for _, id := range drops {
			if err := tx.DeleteEntry(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		k.c.log.Warn("possum: commit failed", "requests", len(group), "err", err)
		for _, r := range group {
			r.err = err
		}
	}
	k.c.bump(stripes)
	for _, r := range group {
		close(r.done)
	}
}

// stop commits what is queued, flushes access times and ends the loop.
func (k *committer) stop() error {
	close(k.quit)
	k.wg.Wait()
	return nil
}
