package possum

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed475afdc4/possum/evict"
	"github.com/seed475afdc4/possum/internal/crashpoint"
	"github.com/seed475afdc4/possum/manifest"
)

// maxGroup bounds how many requests share one transaction, so that one
// commit never holds the manifest's write lock for long.
const maxGroup = 512

// accessFlushInterval is how often buffered access times reach the
// manifest (and before any eviction), unless the committer holds them back
// while the cache is far from full (quietHold). Reads never write the manifest
// themselves, which keeps the write lock out of the read path; which reads
// are recorded at all is accessBuffer.atRisk's rule.
const accessFlushInterval = time.Second

// quietHold is how long the committer may hold access times back while the
// cache is far from full (under half its capacity, or unbounded): nothing
// will be evicted before it fills, and held times are written once however
// often their keys are read meanwhile. An eviction in this process writes
// them all first; the cache passing half full ends the hold at the next
// flush. At most quietHoldRows keys' times are held.
const (
	quietHold     = 30 * time.Second
	quietHoldRows = 1 << 18
)

// A commitReq is one caller's change to the manifest, applied in a
// transaction shared with other callers (group commit).
//
// apply must leave the transaction unchanged when it fails for a reason of
// its own (a missing key, a key too long): check first, then change. Then
// one request's failure does not touch the others, without the cost of a
// savepoint per request (SQLite copies every page a savepoint touches to a
// statement journal). A request that cannot check first, like a batch whose
// rename may find its source gone after the batch's puts, sets savepoint.
type commitReq struct {
	apply     func(*manifest.Tx) error
	savepoint bool
	// grows says the request adds values: on a full disk it fails, while
	// requests that shrink the cache may use the space reserve.
	grows bool
	// stage, if set, makes this a staged put (see stagedPut); apply is
	// then unused.
	stage *stagedPut
	err   error
	done  chan struct{}
}

// stageWait bounds how long a transaction waits, holding the manifest's
// write lock, for the bytes of the staged puts it carries. If one is not
// written by then, the transaction is rolled back and run again without it,
// and its writer commits it on its own once the bytes are in; stageMax
// keeps staged puts to values whose write takes well under this.
const (
	stageWait = 2 * time.Millisecond
	stageMin  = 256 << 10
	stageMax  = 4 << 20
)

// A stagedPut is a put of a large value whose request reaches the
// committer before its bytes are written (Cache.putStaged): the writer
// hashes the bytes, sends the request and writes; meanwhile the committer
// begins the transaction, inserts the row, runs the capacity check, and
// parks the transaction until the write has ended, when the writer commits
// it (see parkedCommit). So a large put costs its write and little more,
// instead of its write and then a whole transaction. Nothing is committed
// before the bytes are in the file (publish by commit).
type stagedPut struct {
	e   manifest.NewEntry // with its checksum: hashed before the request is sent
	err error             // the write failed: nothing may be published
	// written (the write has ended, err is set) and pc (the parked
	// transaction waiting for it) are guarded by the committer's hmu.
	written bool
	pc      *parkedCommit
	// retry is set by the committer when it left the put out because its
	// bytes were late: the writer must commit it anew.
	retry bool
	out   bool // left out of this request's group (retry, or err)
}

// committer runs every write transaction of one open Cache. Callers queue
// requests; the committer takes all that are waiting, applies them in one
// BEGIN IMMEDIATE transaction (a failing request fails alone: see
// commitReq), commits, bumps the stripes of the keys changed, and only then
// answers the callers. Many goroutines writing at once thus pay
// for one transaction and one WAL append between them.
type committer struct {
	c    *Cache
	reqs chan *commitReq
	quit chan struct{}
	wg   sync.WaitGroup

	// hmu guards the hand-off of a parked transaction between the
	// committer and the writers of its staged puts (stagedPut.written,
	// stagedPut.pc, parkedCommit). parked is the transaction parked, if
	// any, and not yet seen to (settleParked); only the committer's
	// goroutine touches the field.
	hmu    sync.Mutex
	parked *parkedCommit
	// handedOff counts the transactions committed by a staged put's
	// writer (for tests).
	handedOff atomic.Int64

	// reclaimed and removed are dead extents and files given back since the
	// last transaction, whose rows the next one deletes. Only the
	// committer's goroutine touches them.
	reclaimed, removed []int64

	// lastFlush is when access times were last taken from the buffer (see
	// run); pending holds those not yet written, and pendingDrops the
	// damaged rows to delete. Only the committer's goroutine touches them.
	lastFlush    time.Time
	pending      map[int64]int64
	pendingDrops []int64
	// quiet says the cache was far from full at the last flush;
	// pendingSince is when pending last went from empty to not; closing is
	// set when the last flush begins. See hold.
	quiet        bool
	pendingSince time.Time
	closing      bool
}

// A flush of many keys' access times goes in slices, so that it never holds
// the manifest's write lock for long: idleTouchRows per transaction when no
// request waits, busyTouchRows with each group of requests (so that the
// times still reach the manifest under a steady stream of writes).
const (
	idleTouchRows = 64
	busyTouchRows = 16
)

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
	return k.submit(ctx, &commitReq{apply: apply, done: make(chan struct{})})
}

// doAtomic is do for a request that may fail after changing something: it
// runs in a savepoint, undone if it fails.
func (k *committer) doAtomic(ctx context.Context, apply func(*manifest.Tx) error, grows bool) error {
	return k.submit(ctx, &commitReq{apply: apply, savepoint: true, grows: grows, done: make(chan struct{})})
}

// doGrow is do for a request that adds values.
func (k *committer) doGrow(ctx context.Context, apply func(*manifest.Tx) error) error {
	return k.submit(ctx, &commitReq{apply: apply, grows: true, done: make(chan struct{})})
}

// offer queues a staged put's request if the queue has room, without
// waiting; the caller then waits on r.done.
func (k *committer) offer(r *commitReq) bool {
	select {
	case k.reqs <- r:
		return true
	default:
		return false
	}
}

func (k *committer) submit(ctx context.Context, r *commitReq) error {
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
		// A parked transaction is left to its writers; the committer
		// wakes for it only if a write is late or fails.
		var late <-chan time.Time
		var failed <-chan struct{}
		if pc := k.parked; pc != nil {
			late, failed = pc.timer.C, pc.failed
		}
		select {
		case r := <-k.reqs:
			k.run(k.gather(r), false)
		case <-tick.C:
			k.run(nil, true) // a new period (see absorb), and what is pending
		case <-late:
			k.parked.timedOut = true
			k.settleParked()
			continue
		case <-failed:
			k.settleParked()
			continue
		case <-k.quit:
			for {
				select {
				case r := <-k.reqs:
					k.run(k.gather(r), false)
				default:
					k.settleParked() // before touching the committer's state
					k.closing = true
					ok := k.run(nil, true) // last flush of access times
					for ok && len(k.pending) > 0 {
						ok = k.run(nil, false) // no group: never parks
					}
					return
				}
			}
		}
		// The rest of a large flush, a slice at a time, letting waiting
		// requests in first.
		// A failed commit leaves the rest for the next tick.
		// Not while a transaction is parked: its writer may be using
		// this state.
		for ok := true; ok && k.parked == nil && len(k.pending) > 0 && !k.hold(); {
			select {
			case r := <-k.reqs:
				ok = k.run(k.gather(r), false)
			default:
				ok = k.run(nil, false)
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

// run commits group in one transaction, with the rows of what the last
// reclaim gave back. Access times are written when flush says so (the
// ticker, Close), when the last flush is accessFlushInterval old, and when
// the commit must evict (LRU order needs them); not with every commit, which
// would rewrite the rows of every key read between two puts.
//
// If the group has staged puts whose bytes are still being written, run
// parks the transaction and returns: the last of their writers to finish
// commits it and answers the group (see parkedCommit).
//
// It reports whether the transaction committed (or there was nothing to
// do, or it was parked).
func (k *committer) run(group []*commitReq, flush bool) bool {
	c := k.c
	k.settleParked() // it may still hold the manifest and the committer's state
	if flush || time.Since(k.lastFlush) >= accessFlushInterval {
		k.absorb()
	}
	n := idleTouchRows
	if len(group) > 0 {
		n = busyTouchRows
	}
	if k.hold() {
		n = 0
	}
	touches, drops := k.slice(n)
	flushedAll := false
	done, removed := k.reclaimed, k.removed
	if len(group) == 0 && len(touches) == 0 && len(drops) == 0 && len(done) == 0 && len(removed) == 0 {
		return true
	}
	k.reclaimed, k.removed = nil, nil
	fixed, _, walOver := c.fixedBytes()
	var freed []manifest.DeadExtent
	var res evict.Result
	var last *manifest.Tx
	var staged []*commitReq
	var deadline time.Time
	apply := func(tx *manifest.Tx) error {
		last, staged = tx, staged[:0]
		// First forget what the last reclaim gave back, so that the
		// capacity check below counts only what is still on disk.
		if err := evict.Forget(tx, done, removed); err != nil {
			return err
		}
		for _, r := range group {
			if r.err != nil {
				continue // failed before this attempt (see finish)
			}
			if r.stage != nil {
				if !r.stage.out {
					staged = append(staged, r)
				}
			} else if r.savepoint {
				r.err = tx.Savepoint(func() error { return r.apply(tx) })
			} else if r.err = r.apply(tx); manifest.IsSQLError(r.err) {
				return r.err // the transaction may be half changed: all fail
			}
		}
		if err := k.flushReads(tx, touches, drops); err != nil {
			return err
		}
		deadline = time.Now().Add(stageWait)
		for _, r := range staged {
			if err := tx.Insert(r.stage.e); err != nil {
				return err
			}
		}
		var err error
		res, err = evict.Evict(tx, fixed, func() error {
			if flushedAll {
				return nil
			}
			// Evicting: every access time known must be in first.
			k.absorb()
			rest, restDrops := k.slice(-1)
			flushedAll = true
			for id, ns := range rest {
				touches[id] = ns
			}
			drops = append(drops, restDrops...)
			return k.flushReads(tx, rest, restDrops)
		})
		freed = tx.Freed
		return err
	}
	// finish ends the run once the transaction committed or failed, on the
	// committer's goroutine or on a staged put's writer's, and reports
	// whether it committed.
	finish := func(stripes []int, err error) bool {
		if manifest.IsFull(err) && k.failGrowing(group, err) && c.releaseReserve() {
			// The disk is full: what adds values has failed; what shrinks
			// the cache commits in the space the reserve gave back.
			stripes, err = c.m.Update(context.Background(), apply)
		}
		k.after(group, stripes, err, last, freed, res, done, removed, touches, drops, walOver)
		return err == nil
	}
	ok := false
	var attempt func()
	attempt = func() {
		for {
			tx, err := c.m.Begin(context.Background())
			if err == nil {
				if err = apply(tx); err != nil {
					tx.Rollback()
				}
			}
			if err != nil {
				ok = finish(nil, err)
				return
			}
			switch k.park(staged, deadline, func() { finish(tx.Commit()) }, func() { tx.Rollback(); attempt() }) {
			case stagedWritten:
				ok = finish(tx.Commit())
				return
			case stagedParked:
				ok = true // for now: a failed commit restores what it took
				return
			}
			// A staged put's write failed: its row may not be committed.
			// Again, without it.
			tx.Rollback()
		}
	}
	attempt()
	return ok
}

// after does what follows a transaction of run: it bumps the stripes of
// the keys changed, gives back what the commit freed, and answers the group.
func (k *committer) after(group []*commitReq, stripes []int, err error, last *manifest.Tx,
	freed []manifest.DeadExtent, res evict.Result, done, removed []int64,
	touches map[int64]int64, drops []int64, walOver bool) {
	c := k.c
	if err != nil {
		c.log.Warn("possum: commit failed", "requests", len(group), "err", err)
		for _, r := range group {
			r.err = err
		}
		k.reclaimed, k.removed = append(k.reclaimed, done...), append(k.removed, removed...)
		k.restore(touches, drops)
		freed = nil
	}
	if len(stripes) > 0 { // a commit that changed keys, not yet announced
		crashpoint.Hit("commit:committed")
	}
	if h := c.committedHook; h != nil && err == nil && last != nil && len(last.Inserted) > 0 {
		keys := make([]string, 0, len(last.Inserted))
		for key := range last.Inserted {
			keys = append(keys, key)
		}
		h(keys)
	}
	if err == nil && last != nil && len(last.Inserted) > 0 && last.PreBumped != nil {
		k.bumpRefreshing(stripes, last.Inserted, last.PreBumped)
	} else {
		c.bump(stripes)
	}
	if len(freed) > 0 {
		// Bumped after the commit that freed them: the reclaimer need not
		// bump them again (see announcedSet).
		ids := make([]int64, len(freed))
		for i, d := range freed {
			ids[i] = d.ExtentID
		}
		c.announced.add(ids)
	}
	if res.Capacity > 0 {
		c.capacity.Store(res.Capacity)
	}
	c.stats.evictions.Add(int64(res.Evicted))
	c.stats.expirations.Add(int64(res.Expired))
	// Give back at once what this commit freed (replaced, deleted, evicted
	// values), before answering: when a Put returns, the space it made the
	// cache evict is already back, and the rows that accounted for it are
	// gone, for every process to see.
	if len(freed) > 0 {
		k.reclaimNow(freed, res.FirstVictim)
	}
	if walOver {
		if err := c.m.Checkpoint(context.Background()); err != nil {
			c.log.Debug("possum: checkpoint", "err", err)
		}
	}
	for _, r := range group {
		close(r.done)
	}
}

// What park found.
type stagedOutcome int

const (
	stagedWritten stagedOutcome = iota // every staged put is written: commit
	stagedParked                       // parked, for the last writer to commit
	stagedFailed                       // a write failed: roll back
)

// A parkedCommit is a transaction that only waits for the writes of its
// staged puts. The writer of the last of them commits it (written), and the
// committer goes back to its loop meanwhile: it wakes for the transaction
// only if a write is late (timer) or fails (failed), or before its next
// transaction (settleParked). Handing the commit over spares two goroutine
// wakeups, writer to committer and committer back to writer; each costs
// the waker some 20 µs on the benchmark machine, a tenth of a 1 MiB put.
type parkedCommit struct {
	left     int           // staged puts not yet written
	commit   func()        // commits the transaction and answers its group
	retry    func()        // rolls it back and runs the group again (committer only)
	staged   []*commitReq  // the group's staged puts in the transaction
	taken    bool          // a writer runs commit
	revoked  bool          // the committer gave up on it, or a write failed
	timer    *time.Timer   // fires at the deadline, unless a writer stopped it
	timedOut bool          // the committer took the timer's value (committer only)
	finished chan struct{} // closed once commit has run
	failed   chan struct{} // closed by a writer whose write failed
}

// park hands a transaction ready to commit but for the writes of its
// staged puts to those writers (see parkedCommit). If they are all written
// already it says so, and the caller commits; if one failed, it is left out
// and the caller must roll back (its row may not be committed). A write
// still under way after deadline is left out by settleParked, which then
// runs retry.
func (k *committer) park(staged []*commitReq, deadline time.Time, commit, retry func()) stagedOutcome {
	if len(staged) == 0 {
		return stagedWritten
	}
	pc := &parkedCommit{commit: commit, retry: retry}
	k.hmu.Lock()
	defer k.hmu.Unlock()
	failed := false
	for _, r := range staged {
		p := r.stage
		switch {
		case !p.written:
			pc.left++
		case p.err != nil:
			p.out, failed = true, true
		}
	}
	if failed {
		return stagedFailed
	}
	if pc.left == 0 {
		return stagedWritten
	}
	pc.staged = slices.Clone(staged)
	pc.finished, pc.failed = make(chan struct{}), make(chan struct{})
	pc.timer = time.NewTimer(time.Until(deadline))
	for _, r := range staged {
		if !r.stage.written {
			r.stage.pc = pc
		}
	}
	k.parked = pc
	return stagedParked
}

// settleParked waits until the parked transaction, if any, is over: its
// last writer committed it, or a write failed or is late, when it is rolled
// back and its group runs again without that put (a late one is marked for
// its writer to commit anew). Every use of the manifest's write
// transaction or of the committer's state by the committer comes after it.
func (k *committer) settleParked() {
	for k.parked != nil {
		pc := k.parked
		k.parked = nil
		if !pc.timedOut {
			select {
			case <-pc.finished:
			case <-pc.failed:
			case <-pc.timer.C:
			}
		}
		k.hmu.Lock()
		pc.revoked = pc.revoked || !pc.taken
		if pc.taken {
			k.hmu.Unlock()
			<-pc.finished
			continue
		}
		for _, r := range pc.staged {
			p := r.stage
			if p.pc == pc {
				p.pc = nil
			}
			if !p.written {
				p.out, p.retry = true, true
			} else if p.err != nil {
				p.out = true
			}
		}
		k.hmu.Unlock()
		pc.timer.Stop()
		pc.retry() // may park again
	}
}

// written tells the committer that p's write has ended (with p.err set).
// If that was the last write a parked transaction waited for, the caller
// commits it, here; a failed write wakes the committer to roll it back.
func (k *committer) written(p *stagedPut) {
	k.hmu.Lock()
	p.written = true
	pc := p.pc
	p.pc = nil
	var commit bool
	if pc != nil && !pc.revoked {
		if p.err != nil {
			pc.revoked = true
			close(pc.failed)
		} else if pc.left--; pc.left == 0 {
			pc.taken, commit = true, true
		}
	}
	k.hmu.Unlock()
	if commit {
		k.handedOff.Add(1)
		pc.timer.Stop() // without waking the committer
		pc.commit()
		close(pc.finished) // nobody waits, unless the committer has more to do
	}
}

// bumpRefreshing bumps stripes after a commit that inserted ins, and
// points this process's cached locations of those keys at their new rows,
// so that a read after a write needs no manifest lookup. It does so only
// for a key whose stripe nobody else bumped between this commit's two
// bumps (pre, taken while the transaction held the write lock, and the
// one here): any other commit touching that stripe bumps it before it
// commits, so none has changed the key since, and the location is the
// key's row at the counter's new value. A bump by anyone after this one
// invalidates the entry as usual.
func (k *committer) bumpRefreshing(stripes []int, ins map[string]manifest.Location, pre map[int]uint64) {
	c := k.c
	post := make(map[int]uint64, len(stripes))
	for _, s := range stripes {
		post[s] = c.stripes.Bump(s)
	}
	for key, loc := range ins {
		h := keyHash(key)
		s := stripeOf(h)
		if p, ok := pre[s]; ok && post[s] == p+1 {
			c.locs.refresh(key, h, post[s], loc)
		}
	}
}

// failGrowing fails, with err, the requests of group that add values, and
// reports whether any other is left to retry. A request's error from the
// failed attempt is cleared first.
func (k *committer) failGrowing(group []*commitReq, err error) bool {
	left := false
	for _, r := range group {
		r.err = nil
		if r.grows {
			r.err = err
		} else {
			left = true
		}
	}
	return left
}

// reclaimNow reclaims the large values among freed and the victims of
// eviction (freed[firstVictim:]), and deletes the rows of what it gave back.
// If that deletion fails, the next transaction retries it. The rest waits
// for the background pass.
func (k *committer) reclaimNow(freed []manifest.DeadExtent, firstVictim int) {
	c := k.c
	now := freed[:0:0]
	for i, d := range freed {
		if i >= firstVictim || evict.Immediate(d) {
			now = append(now, d)
		}
	}
	if len(now) == 0 {
		return
	}
	d, rm := c.inline.Reclaim(context.Background(), now)
	if len(d) == 0 && len(rm) == 0 {
		return
	}
	_, err := c.m.Update(context.Background(), func(tx *manifest.Tx) error { return evict.Forget(tx, d, rm) })
	if err != nil {
		k.reclaimed, k.removed = append(k.reclaimed, d...), append(k.removed, rm...)
	}
}

// hold reports whether pending access times wait (see quietHold).
func (k *committer) hold() bool {
	return k.quiet && !k.closing && len(k.pending) < quietHoldRows && k.c.access.now().Sub(k.pendingSince) < quietHold
}

// absorb takes the read buffer's access times and drops into pending,
// starting a new flush period.
func (k *committer) absorb() {
	touches, drops := k.c.access.take()
	k.lastFlush = time.Now()
	// A new period: how old is the least recently used entry now, and how
	// full is the cache?
	if h, err := k.c.m.AccessHorizon(context.Background()); err == nil {
		k.c.access.oldest.Store(h.Oldest)
		k.quiet = h.Capacity <= 0 || h.Used < h.Capacity/2
	} else {
		k.quiet = false
	}
	if len(k.pending) == 0 {
		k.pendingSince = k.c.access.now() // the cache's clock, as in hold
	}
	if k.pending == nil {
		k.pending = touches
	} else {
		for id, ns := range touches {
			k.pending[id] = max(k.pending[id], ns)
		}
	}
	k.pendingDrops = append(k.pendingDrops, drops...)
}

// slice takes up to n (n < 0: all) pending access times, and every pending
// drop, out of pending for one transaction. The map is never nil.
func (k *committer) slice(n int) (map[int64]int64, []int64) {
	drops := k.pendingDrops
	k.pendingDrops = nil
	if n < 0 || len(k.pending) <= n {
		m := k.pending
		k.pending = nil
		if m == nil {
			m = map[int64]int64{}
		}
		return m, drops
	}
	m := make(map[int64]int64, n)
	for id, ns := range k.pending {
		if len(m) == n {
			break
		}
		m[id] = ns
		delete(k.pending, id)
	}
	return m, drops
}

// restore puts back what a failed transaction did not write.
func (k *committer) restore(touches map[int64]int64, drops []int64) {
	if len(touches) > 0 && k.pending == nil {
		k.pending = make(map[int64]int64, len(touches))
	}
	for id, ns := range touches {
		k.pending[id] = max(k.pending[id], ns)
	}
	k.pendingDrops = append(k.pendingDrops, drops...)
}

// flushReads writes the buffered access times and drops damaged rows.
func (k *committer) flushReads(tx *manifest.Tx, touches map[int64]int64, drops []int64) error {
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
}

// stop commits what is queued, flushes access times and ends the loop.
func (k *committer) stop() error {
	close(k.quit)
	k.wg.Wait()
	return nil
}
