package possum_test

// The random workload of TestMultiProcessStress and TestConcurrentGoroutines,
// and the self-describing values that let any reader judge, without asking
// anyone, whether a value it was handed could have been committed for the
// key it asked for.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed475afdc4/possum"
)

// The key space. It is small and shared by every worker and goroutine, so
// that they collide all the time.
const (
	sharedKeys  = 64  // k/<i>: hold values written for k/<i>
	pairGroups  = 16  // r/<i>/a and r/<i>/b: renamed into each other
	emptyKeys   = 8   // e/<i>: only ever hold the empty value
	privateKeys = 8   // p/<worker>/<g>/<j>: written by goroutine g of worker only
	ttlKeys     = 16  // t/<i>: hold values written for t/<i>, always with a TTL
	privateTTLs = 4   // pt/<worker>/<g>/<j>: like p/, but mostly with a TTL
	fillKeys    = 512 // f/<i>: under capacity pressure only, many large values
)

// The TTLs of t/ and pt/ values, and how long after its expiry instant a
// value must be a miss at the latest.
const (
	minTTL       = 50 * time.Millisecond
	maxTTL       = 2 * time.Second
	expiryMargin = 50 * time.Millisecond
)

func sharedKey(i int) string        { return fmt.Sprintf("k/%d", i) }
func emptyKey(i int) string         { return fmt.Sprintf("e/%d", i) }
func privatePrefix(w, g int) string { return fmt.Sprintf("p/%d/%d/", w, g) }
func ttlKey(i int) string           { return fmt.Sprintf("t/%d", i) }
func fillKey(i int) string          { return fmt.Sprintf("f/%d", i) }
func privateTTLPrefix(w, g int) string {
	return fmt.Sprintf("pt/%d/%d/", w, g)
}

// pairKey names one key of pair i: r/<i>/a, or r/<i>/b if b.
func pairKey(i int, b bool) string {
	if b {
		return fmt.Sprintf("r/%d/b", i)
	}
	return fmt.Sprintf("r/%d/a", i)
}

// keyGroup names the keys a value written for key may legitimately be found
// under: a pair key's value may have been renamed to the other key of its
// pair, and a private key's to another key of the same goroutine. Every
// other key (k/, e/, t/, pt/) holds only values written for itself.
func keyGroup(key string) string {
	if strings.HasPrefix(key, "r/") || strings.HasPrefix(key, "p/") {
		return key[:strings.LastIndexByte(key, '/')+1]
	}
	return key
}

// mayBeEmpty reports whether key may hold the empty value, which cannot
// carry a header.
func mayBeEmpty(key string) bool {
	return strings.HasPrefix(key, "e/") || strings.HasPrefix(key, "p/")
}

// A value's layout (little-endian):
//
//	[0:4]    magic "psm1": zeros or a hole never pass for a value
//	[4:8]    total length: a truncated or torn value is caught
//	[8]      flags: flagDoomed marks bytes that must never be published
//	[9]      worker (the OS process)
//	[10:12]  goroutine
//	[12:20]  sequence number of the write in that goroutine
//	[20:22]  length of the origin key, then the key: the key written for
//	...      the body: a pseudo-random pattern seeded by a hash of the
//	         header, so a body glued to another value's header fails
const (
	valueMagic  = "psm1"
	hdrFixed    = 22
	minBody     = 8 // every value has at least one word of pattern
	flagDoomed  = 1 // written by an aborted batch or a put whose reader fails
	maxValueLen = 1<<20 + 64<<10
)

// valueID is what a value's header says about it.
type valueID struct {
	Worker, G int
	Seq       uint64
	Origin    string
	Doomed    bool
	Len       int
}

func (id valueID) String() string {
	s := fmt.Sprintf("value %d/%d/%d for %q (%d B)", id.Worker, id.G, id.Seq, id.Origin, id.Len)
	if id.Doomed {
		s += " DOOMED"
	}
	return s
}

func minLen(origin string) int { return hdrFixed + len(origin) + minBody }

// makeValue builds the value that id describes.
func makeValue(id valueID) []byte {
	v := make([]byte, id.Len)
	h := hdrFixed + len(id.Origin)
	copy(v, valueMagic)
	binary.LittleEndian.PutUint32(v[4:], uint32(id.Len))
	if id.Doomed {
		v[8] = flagDoomed
	}
	v[9] = byte(id.Worker)
	binary.LittleEndian.PutUint16(v[10:], uint16(id.G))
	binary.LittleEndian.PutUint64(v[12:], id.Seq)
	binary.LittleEndian.PutUint16(v[20:], uint16(len(id.Origin)))
	copy(v[hdrFixed:], id.Origin)
	fillPattern(v[h:], seedOf(v[:h]))
	return v
}

func seedOf(header []byte) uint64 {
	f := fnv.New64a()
	f.Write(header)
	return f.Sum64()
}

// fillPattern fills b with splitmix64 words from seed.
func fillPattern(b []byte, seed uint64) {
	x := seed
	var w [8]byte
	for i := 0; i < len(b); i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(w[:], z^(z>>31))
		copy(b[i:], w[:])
	}
}

// decodeValue parses v and checks that it is whole: header, length and
// every byte of the body as its header says. It proves v is not zeros, not
// torn and not truncated.
func decodeValue(v []byte) (valueID, error) {
	var id valueID
	if len(v) < hdrFixed || string(v[:4]) != valueMagic {
		return id, fmt.Errorf("%d bytes without a value header: %s", len(v), describeBytes(v))
	}
	id.Len = int(binary.LittleEndian.Uint32(v[4:]))
	id.Doomed = v[8]&flagDoomed != 0
	id.Worker, id.G = int(v[9]), int(binary.LittleEndian.Uint16(v[10:]))
	id.Seq = binary.LittleEndian.Uint64(v[12:])
	klen := int(binary.LittleEndian.Uint16(v[20:]))
	if hdrFixed+klen <= len(v) {
		id.Origin = string(v[hdrFixed : hdrFixed+klen])
	}
	if id.Len != len(v) {
		return id, fmt.Errorf("%v, but %d bytes were returned (torn or truncated): %s", id, len(v), describeBytes(v))
	}
	h := hdrFixed + klen
	if h+minBody > len(v) {
		return id, fmt.Errorf("%v: header does not fit", id)
	}
	want := make([]byte, len(v)-h)
	fillPattern(want, seedOf(v[:h]))
	if i := firstMismatch(v[h:], want); i >= 0 {
		return id, fmt.Errorf("%v: body differs from its pattern at offset %d: %s", id, h+i, describeBytes(v[h+i:]))
	}
	return id, nil
}

// firstMismatch returns the first index where a and b differ, or -1.
func firstMismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// describeBytes says what b looks like: all zeros (a punched hole or a
// sparse tail), or its first bytes.
func describeBytes(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	if zeros == len(b) && zeros > 0 {
		return fmt.Sprintf("all %d bytes are zero", zeros)
	}
	head := b[:min(len(b), 24)]
	return fmt.Sprintf("%d leading zero bytes; starts % x", zeros, head)
}

// checkRead validates a value that Get returned for key: it is whole (see
// decodeValue), it was written for key or a key that may have been renamed
// to key (never another key's bytes), and it is not from an aborted batch
// or failed put (never uncommitted bytes). It returns what the header says.
func checkRead(key string, v []byte) (valueID, error) {
	if len(v) == 0 && mayBeEmpty(key) {
		return valueID{}, nil
	}
	if strings.HasPrefix(key, "e/") {
		return valueID{}, fmt.Errorf("empty-only key holds %d bytes: %s", len(v), describeBytes(v))
	}
	id, err := decodeValue(v)
	switch {
	case err != nil:
		return id, err
	case id.Doomed:
		return id, fmt.Errorf("%v was published, but its batch was aborted or its put failed", id)
	case keyGroup(id.Origin) != keyGroup(key):
		return id, fmt.Errorf("%v: another key's bytes", id)
	}
	return id, nil
}

// checkListedInfo checks what List (or a snapshot, or an open Value) says
// of a key: a key of our key space, a size that a value of it can have, and
// an expiry only where one was set: always on t/, never but on t/ and pt/.
// (List and snapshots leave expired keys out: see checkNotExpired.)
func checkListedInfo(info possum.Info) error {
	k := info.Key
	switch {
	case strings.HasPrefix(k, "t/"):
		if info.Expires.IsZero() {
			return fmt.Errorf("list: TTL key %q has no expiry", k)
		}
	case strings.HasPrefix(k, "pt/"):
	case !info.Expires.IsZero():
		return fmt.Errorf("list: key %q, never put with a TTL, expires at %v", k, info.Expires)
	}
	switch {
	case strings.HasPrefix(k, "e/"):
		if info.Size != 0 {
			return fmt.Errorf("list: empty-only key %q has size %d", k, info.Size)
		}
	case strings.HasPrefix(k, "k/"), strings.HasPrefix(k, "r/"), strings.HasPrefix(k, "p/"),
		strings.HasPrefix(k, "t/"), strings.HasPrefix(k, "pt/"), strings.HasPrefix(k, "f/"):
		if (info.Size != 0 && info.Size < hdrFixed+minBody) || info.Size > maxValueLen {
			return fmt.Errorf("list: key %q has impossible size %d", k, info.Size)
		}
		if info.Size == 0 && !mayBeEmpty(k) {
			return fmt.Errorf("list: key %q is empty", k)
		}
	default:
		return fmt.Errorf("list: unknown key %q (size %d)", k, info.Size)
	}
	return nil
}

// checkNotExpired fails an entry that List or a snapshot taken after since
// returned although it had already expired then.
func checkNotExpired(info possum.Info, since time.Time) error {
	if !info.Expires.IsZero() && !info.Expires.After(since) {
		return fmt.Errorf("key %q expired at %v, before the listing began (%v), yet was returned",
			info.Key, info.Expires.Format(time.StampMicro), since.Format(time.StampMicro))
	}
	return nil
}

// identOf names a private key's value for the end-of-run comparison.
func identOf(v []byte) string {
	if len(v) == 0 {
		return "empty"
	}
	id, err := decodeValue(v)
	if err != nil {
		return "invalid: " + err.Error()
	}
	return id.String()
}

// stressResult is what one worker reports: its operation counts and the
// final contents of its goroutines' private keys (key to identOf).
type stressResult struct {
	Counts   map[string]int
	Private  map[string]string
	OpenTook time.Duration // how long the worker's Open took
}

// stressFailer reports failures from many goroutines, and stops the run
// after a few so that one bug does not bury the log.
type stressFailer struct {
	t    testing.TB
	n    atomic.Int32
	stop atomic.Bool
}

const maxFailures = 10

func (f *stressFailer) failf(format string, args ...any) {
	if n := f.n.Add(1); n <= maxFailures {
		f.t.Errorf(format, args...)
	}
	if f.n.Load() >= maxFailures {
		f.stop.Store(true)
	}
}

// runStress runs goroutines goroutines of random operations on c for d,
// as worker number worker (1..255; the in-process test uses 0). evictable
// says the cache runs under capacity pressure: any value may then vanish
// at any time (never turn into other bytes), so the private models accept
// a miss where they expected a value.
func runStress(t testing.TB, c *possum.Cache, worker, goroutines int, d time.Duration, evictable bool) stressResult {
	f := &stressFailer{t: t}
	until := time.Now().Add(d)
	tmp := t.TempDir()
	ss := make([]*stressor, goroutines)
	var wg sync.WaitGroup
	for g := range ss {
		ss[g] = &stressor{
			c: c, f: f, worker: worker, g: g,
			rng:       rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker<<16|g))),
			counts:    map[string]int{},
			model:     map[string][]byte{},
			ttlModel:  map[string]ttlValue{},
			hist:      map[string][]string{},
			evictable: evictable,
			tmpDir:    tmp,
		}
		wg.Go(func() { ss[g].run(until) })
	}
	wg.Wait()
	res := stressResult{Counts: map[string]int{}, Private: map[string]string{}}
	for _, s := range ss {
		for k, n := range s.counts {
			res.Counts[k] += n
		}
		for k, v := range s.model {
			res.Private[k] = identOf(v)
		}
	}
	return res
}

// formatCounts prints counts sorted by name.
func formatCounts(counts map[string]int) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, " %s=%d", k, counts[k])
	}
	return b.String()
}

// stressor is one goroutine of the workload.
type stressor struct {
	c         *possum.Cache
	f         *stressFailer
	worker, g int
	rng       *rand.Rand
	seq       uint64
	counts    map[string]int
	// model holds what this goroutine last committed to its private keys:
	// nobody else writes them, so reads there must return exactly this
	// (or, if evictable, nothing: then the key is dropped from the model,
	// for an evicted key stays gone until this goroutine writes it again).
	model map[string][]byte
	// ttlModel is the same for the private TTL keys, with their expiry.
	ttlModel  map[string]ttlValue
	evictable bool
	// hist is what happened lately to each private key, as the model saw
	// it: for the messages when a read disagrees with the model.
	hist map[string][]string
	// held are the Values and Snapshots this goroutine keeps open across
	// its next few operations.
	held   []*heldItem
	tmpDir string   // for WriteTo into a regular file
	tmp    *os.File // that file, opened on first use
}

var stressCtx = context.Background()

func (s *stressor) failf(format string, args ...any) {
	s.f.failf("worker %d goroutine %d: "+format, append([]any{s.worker, s.g}, args...)...)
}

// weightedOp is one kind of operation and how often it is picked.
type weightedOp struct {
	weight int
	fn     func()
}

func (s *stressor) run(until time.Time) {
	ops := []weightedOp{
		{10, func() { s.putShared(true) }},
		{10, func() { s.putShared(false) }},
		{4, s.replace},
		{25, s.get},
		{5, s.delete},
		{1, s.deletePrefix},
		{5, s.rename},
		{1, s.movePrefix},
		{4, func() { s.batch(true) }},
		{2, func() { s.batch(false) }},
		{1, s.failPut},
		{2, s.list},
		{4, s.empty},
		{20, s.private},
		{1, s.shortLived},
		{4, s.openHold},
		{3, s.snapshot},
		{3, s.ttlPut},
		{3, s.ttlGet},
		{6, s.privateTTL},
	}
	if s.g == 0 { // Verify reads every value: one goroutine per worker is plenty
		ops = append(ops, weightedOp{1, s.verify})
	}
	if s.evictable { // keep the live set over the capacity
		ops = append(ops, weightedOp{6, s.fill})
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	if s.evictable && s.g == 0 {
		s.flood(until)
	}
	for time.Now().Before(until) && !s.f.stop.Load() {
		n := s.rng.IntN(total)
		for _, o := range ops {
			if n -= o.weight; n < 0 {
				o.fn()
				break
			}
		}
		s.tickHeld()
	}
	for len(s.held) > 0 {
		s.tickHeld()
	}
	if s.tmp != nil {
		s.tmp.Close()
	}
}

// randSize picks a value size: mostly small (packed), some at and just
// under the 64 KiB boundary, some large (aligned), a few about 1 MiB, and a
// few from 256 KiB to 1 MiB (put from memory, they are staged: see
// stagedPut).
func (s *stressor) randSize(origin string) int {
	var n int
	switch x := s.rng.IntN(1000); {
	case x < 3:
		n = 1<<20 - 32<<10 + s.rng.IntN(64<<10)
	case x < 8:
		n = 256<<10 + s.rng.IntN(768<<10)
	case x < 20:
		n = 64<<10 - 2 + s.rng.IntN(4)
	case x < 50:
		n = 64<<10 + s.rng.IntN(192<<10)
	default:
		n = s.rng.IntN(8 << 10)
	}
	return max(n, minLen(origin))
}

// newValue makes a fresh value for origin; doomed marks one that will never
// be committed.
func (s *stressor) newValue(origin string, doomed bool) []byte {
	return s.newValueLen(origin, doomed, s.randSize(origin))
}

func (s *stressor) newValueLen(origin string, doomed bool, n int) []byte {
	s.seq++
	id := valueID{Worker: s.worker, G: s.g, Seq: s.seq, Origin: origin, Doomed: doomed, Len: n}
	s.counts["bytes.written"] += id.Len
	return makeValue(id)
}

// put stores v under key through Put (streamed in uneven chunks) or
// PutBytes.
func (s *stressor) put(key string, v []byte, viaReader bool) error {
	if !viaReader {
		return s.c.PutBytes(stressCtx, key, v)
	}
	n, err := s.c.Put(stressCtx, key, &stressReader{b: v, rng: s.rng})
	if err == nil && n != int64(len(v)) {
		return fmt.Errorf("Put stored %d bytes of %d", n, len(v))
	}
	return err
}

// stressReader hands out b in chunks of random sizes, like a network body.
type stressReader struct {
	b   []byte
	rng *rand.Rand
	err error // returned once b is exhausted, instead of io.EOF, if set
}

func (r *stressReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+r.rng.IntN(96<<10))], r.b)
	r.b = r.b[n:]
	return n, nil
}

var errStressReader = errors.New("injected reader failure")

func (s *stressor) randShared() string {
	if s.rng.IntN(5) == 0 {
		return pairKey(s.rng.IntN(pairGroups), s.rng.IntN(2) == 0)
	}
	return sharedKey(s.rng.IntN(sharedKeys))
}

func (s *stressor) putShared(viaReader bool) {
	key := s.randShared()
	if err := s.put(key, s.newValue(key, false), viaReader); err != nil {
		s.failf("put %q: %v", key, err)
		return
	}
	s.counts[map[bool]string{true: "put", false: "putbytes"}[viaReader]]++
}

// replace overwrites a key that was just seen holding a value.
func (s *stressor) replace() {
	key := s.randShared()
	if _, ok := s.read(key); !ok {
		return
	}
	if err := s.put(key, s.newValue(key, false), s.rng.IntN(2) == 0); err != nil {
		s.failf("replace %q: %v", key, err)
		return
	}
	s.counts["replace"]++
}

// read gets key and validates whatever comes back. Not found is always
// fine: other goroutines and processes delete keys all the time. Half the
// reads go through GetAppend with a prefix that must survive.
func (s *stressor) read(key string) ([]byte, bool) {
	var v []byte
	var err error
	if s.rng.IntN(2) == 0 {
		v, err = s.c.Get(stressCtx, key)
	} else {
		const pre = "prefix"
		v, err = s.c.GetAppend(stressCtx, []byte(pre), key)
		if string(v[:min(len(v), len(pre))]) != pre {
			s.failf("GetAppend %q clobbered dst: %s", key, describeBytes(v))
			return nil, false
		}
		v = v[len(pre):]
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.counts["get.miss"]++
		return nil, false
	case err != nil:
		s.failf("get %q: %v", key, err)
		return nil, false
	}
	if _, err := checkRead(key, v); err != nil {
		s.failf("get %q returned a bad value: %v", key, err)
		return nil, false
	}
	s.counts["get.hit"]++
	s.counts["bytes.read"] += len(v)
	return v, true
}

func (s *stressor) get() {
	key := s.randShared()
	if s.rng.IntN(6) == 0 {
		key = emptyKey(s.rng.IntN(emptyKeys))
	}
	s.read(key)
}

// okOrMissing counts the outcome of a change that may find its key gone.
func (s *stressor) okOrMissing(op, key string, err error) {
	switch {
	case err == nil:
		s.counts[op]++
	case errors.Is(err, fs.ErrNotExist):
		s.counts[op+".miss"]++
	default:
		s.failf("%s %q: %v", op, key, err)
	}
}

func (s *stressor) delete() {
	key := s.randShared()
	s.okOrMissing("delete", key, s.c.Delete(stressCtx, key))
}

// deletePrefix removes a slice of the shared keys (k/3 removes k/3 and
// k/30..k/39) or a pair.
func (s *stressor) deletePrefix() {
	prefix, most := fmt.Sprintf("k/%d", 1+s.rng.IntN(9)), 11
	if s.rng.IntN(3) == 0 {
		prefix, most = fmt.Sprintf("r/%d/", s.rng.IntN(pairGroups)), 2
	}
	n, err := s.c.DeletePrefix(stressCtx, prefix)
	if err != nil || n < 0 || n > most {
		s.failf("DeletePrefix %q = %d, %v; want 0..%d keys", prefix, n, err, most)
		return
	}
	s.counts["deleteprefix"]++
	s.counts["deleteprefix.keys"] += n
}

func (s *stressor) rename() {
	i, b := s.rng.IntN(pairGroups), s.rng.IntN(2) == 0
	from, to := pairKey(i, b), pairKey(i, !b)
	s.okOrMissing("rename", from, s.c.Rename(stressCtx, from, to))
}

// movePrefix moves r/<i>/a to r/<i>/b: a rename through MovePrefix.
func (s *stressor) movePrefix() {
	i := s.rng.IntN(pairGroups)
	n, err := s.c.MovePrefix(stressCtx, pairKey(i, false), pairKey(i, true))
	if err != nil || n < 0 || n > 1 {
		s.failf("MovePrefix %q = %d, %v; want 0 or 1 keys", pairKey(i, false), n, err)
		return
	}
	s.counts["moveprefix"]++
}

// batch stages a few puts, deletes, empty puts and (when committing)
// renames of shared keys, then commits or aborts. An aborted batch's
// values are marked doomed: any reader that ever sees one fails.
func (s *stressor) batch(commit bool) {
	b := s.c.NewBatch()
	renames := false
	for range 2 + s.rng.IntN(5) {
		var err error
		switch op := s.rng.IntN(5); {
		case op < 2:
			key := sharedKey(s.rng.IntN(sharedKeys))
			v := s.newValue(key, !commit)
			if op == 0 {
				err = b.PutBytes(stressCtx, key, v)
			} else {
				_, err = b.Put(stressCtx, key, &stressReader{b: v, rng: s.rng})
			}
		case op == 2:
			err = b.Delete(s.randShared())
		case op == 3:
			err = b.PutBytes(stressCtx, emptyKey(s.rng.IntN(emptyKeys)), nil)
		case commit:
			i, side := s.rng.IntN(pairGroups), s.rng.IntN(2) == 0
			err, renames = b.Rename(pairKey(i, side), pairKey(i, !side)), true
		}
		if err != nil {
			s.failf("batch: staging: %v", err)
			b.Abort()
			return
		}
	}
	if !commit {
		b.Abort()
		if err := b.Commit(stressCtx); !errors.Is(err, possum.ErrBatchDone) {
			s.failf("batch: Commit after Abort = %v, want ErrBatchDone", err)
		}
		s.counts["batch.abort"]++
		return
	}
	switch err := b.Commit(stressCtx); {
	case err == nil:
		s.counts["batch.commit"]++
	case renames && errors.Is(err, fs.ErrNotExist):
		s.counts["batch.commit.renamemiss"]++ // a rename's source was gone: all or nothing
	default:
		s.failf("batch: Commit: %v", err)
	}
}

// failPut streams part of a doomed value and then fails the reader: Put
// must fail with that error and publish nothing.
func (s *stressor) failPut() {
	key := s.randShared()
	v := s.newValue(key, true)
	r := &stressReader{b: v[:s.rng.IntN(len(v))], rng: s.rng, err: errStressReader}
	if _, err := s.c.Put(stressCtx, key, r); !errors.Is(err, errStressReader) {
		s.failf("put %q with a failing reader = %v, want the reader's error", key, err)
		return
	}
	s.counts["failput"]++
}

// list lists a prefix and checks that keys come in strictly increasing
// order (so none twice), under the prefix, with plausible sizes and
// expiries, none expired. For the goroutine's own private prefix the
// listing must be exactly its model (under capacity pressure, a part of
// it).
func (s *stressor) list() {
	own := privatePrefix(s.worker, s.g)
	prefixes := []string{"", "k/", "k/1", "r/", "r/1", "e/", "p/", own, "t/", "pt/"}
	prefix := prefixes[s.rng.IntN(len(prefixes))]
	got := map[string]int64{}
	prev := ""
	began := time.Now()
	for info, err := range s.c.List(stressCtx, prefix) {
		if err != nil {
			s.failf("List %q: %v", prefix, err)
			return
		}
		switch {
		case !strings.HasPrefix(info.Key, prefix):
			s.failf("List %q yielded %q", prefix, info.Key)
		case len(got) > 0 && info.Key <= prev:
			s.failf("List %q yielded %q after %q: out of order or twice", prefix, info.Key, prev)
		}
		if err := checkListedInfo(info); err != nil {
			s.failf("List %q: %v", prefix, err)
		}
		if err := checkNotExpired(info, began); err != nil {
			s.failf("List %q: %v", prefix, err)
		}
		prev, got[info.Key] = info.Key, info.Size
	}
	s.counts["list"]++
	s.counts["list.keys"] += len(got)
	if prefix != own {
		return
	}
	want := map[string]int64{}
	for k, v := range s.model {
		want[k] = int64(len(v))
		if _, ok := got[k]; !ok && s.evictable {
			s.evicted("list", k) // gone for good: the listing may leave it out
			delete(want, k)
		}
	}
	if !maps.Equal(got, want) {
		s.failf("List of own prefix %q = %v, want %v", own, got, want)
	}
}

// goneNote tells what the model saw happen to key lately, and the time.
func (s *stressor) goneNote(key string) string {
	now := time.Now().Format("15:04:05.000000")
	if h := s.hist[key]; len(h) > 0 {
		return "its history: " + strings.Join(h, "; ") + "; now " + now
	}
	return "never written; now " + now
}

// headerOf names a value by its header alone, cheaply, for a history.
func headerOf(v []byte) string {
	if len(v) < hdrFixed {
		return fmt.Sprintf("%d bytes", len(v))
	}
	return fmt.Sprintf("%d/%d/%d (%d B)", v[9], binary.LittleEndian.Uint16(v[10:]), binary.LittleEndian.Uint64(v[12:]), len(v))
}

// histLen is how many events of a private key note keeps.
const histLen = 12

// note records an event of a private key for goneNote.
func (s *stressor) note(key, format string, args ...any) {
	h := append(s.hist[key], time.Now().Format("15:04:05.000000")+" "+fmt.Sprintf(format, args...))
	s.hist[key] = h[max(0, len(h)-histLen):]
}

// evicted records that key, which the model holds, was found missing: fine
// under capacity pressure (the key is then gone from the model too), a
// lost write otherwise. It reports whether that was fine.
func (s *stressor) evicted(op, key string) bool {
	if !s.evictable {
		return false
	}
	was := "nothing"
	if v, ok := s.model[key]; ok {
		was = headerOf(v)
	} else if e, ok := s.ttlModel[key]; ok {
		was = headerOf(e.v)
	}
	s.note(key, "%s found %s missing: taken as evicted", op, was)
	delete(s.model, key)
	delete(s.ttlModel, key)
	s.counts["evicted."+op]++
	return true
}

// empty exercises the empty-only keys: empty puts three ways, reads that
// must return 0 bytes, deletes and renames among them.
func (s *stressor) empty() {
	key := emptyKey(s.rng.IntN(emptyKeys))
	var err error
	switch s.rng.IntN(6) {
	case 0:
		_, err = s.c.Put(stressCtx, key, strings.NewReader(""))
	case 1:
		err = s.c.PutBytes(stressCtx, key, nil)
	case 2:
		err = s.c.PutBytes(stressCtx, key, []byte{})
	case 3:
		s.okOrMissing("empty.delete", key, s.c.Delete(stressCtx, key))
		return
	case 4:
		s.okOrMissing("empty.rename", key, s.c.Rename(stressCtx, key, emptyKey(s.rng.IntN(emptyKeys))))
		return
	default:
		s.read(key)
		return
	}
	if err != nil {
		s.failf("empty put %q: %v", key, err)
		return
	}
	s.counts["empty.put"]++
}

// The private keys: only this goroutine writes under its prefix, so every
// read there must return exactly what its model says (read your writes),
// whatever the other goroutines and processes do meanwhile.

func (s *stressor) privateKey(j int) string { return privatePrefix(s.worker, s.g) + fmt.Sprint(j) }

func (s *stressor) randPrivate() string { return s.privateKey(s.rng.IntN(privateKeys)) }

// newPrivateValue is newValue, or now and then the empty value.
func (s *stressor) newPrivateValue(key string, doomed bool) []byte {
	if s.rng.IntN(20) == 0 {
		return []byte{}
	}
	return s.newValue(key, doomed)
}

func (s *stressor) private() {
	key := s.randPrivate()
	switch s.rng.IntN(20) {
	case 0, 1, 2, 3:
		s.privatePut(key, true)
	case 4, 5, 6:
		s.privatePut(key, false)
	case 7, 8, 9, 10:
		s.checkPrivate("get", key)
	case 11, 12:
		s.privateDelete(key)
	case 13, 14:
		s.privateRename(key, s.randPrivate())
	case 15, 16:
		s.privateBatch(true)
	case 17:
		s.privateBatch(false)
	case 18:
		s.privateFailPut(key)
	case 19:
		if s.rng.IntN(2) == 0 {
			s.privateDeletePrefix()
		} else {
			s.shortLived()
		}
	}
}

// checkPrivate proves read-your-writes on key: after op, Get returns
// exactly the model's value, or not found if the model has none.
func (s *stressor) checkPrivate(op, key string) {
	want, ok := s.model[key]
	got, err := s.c.Get(stressCtx, key)
	switch {
	case !ok && errors.Is(err, fs.ErrNotExist):
		s.counts["private.get.miss"]++
	case !ok:
		s.failf("after %s: Get %q = %s, %v; want not found (%s)", op, key, identOf(got), err, s.goneNote(key))
	case errors.Is(err, fs.ErrNotExist) && s.evicted("get", key):
	case err != nil:
		s.failf("after %s: Get %q: %v; want %s (%s)", op, key, err, identOf(want), s.goneNote(key))
	case !bytes.Equal(got, want):
		s.failf("after %s: Get %q returned %s; want %s (%s)", op, key, identOf(got), identOf(want), s.goneNote(key))
	default:
		s.counts["private.get.hit"]++
	}
}

func (s *stressor) checkAllPrivate(op string) {
	for j := range privateKeys {
		s.checkPrivate(op, s.privateKey(j))
	}
}

func (s *stressor) privatePut(key string, viaReader bool) {
	v := s.newPrivateValue(key, false)
	if err := s.put(key, v, viaReader); err != nil {
		s.failf("private put %q: %v", key, err)
		return
	}
	s.model[key] = v
	s.note(key, "put %s", headerOf(v))
	s.counts["private.put"]++
	s.checkPrivate("put", key)
}

// privateDelete must succeed exactly when the model holds the key (or not
// find it, if it was evicted).
func (s *stressor) privateDelete(key string) {
	_, had := s.model[key]
	err := s.c.Delete(stressCtx, key)
	switch {
	case had && errors.Is(err, fs.ErrNotExist) && s.evicted("delete", key):
		// evicted before the delete came
	case had && err != nil || !had && !errors.Is(err, fs.ErrNotExist):
		s.failf("private delete %q (present: %v) = %v", key, had, err)
	}
	s.note(key, "delete = %v", err)
	delete(s.model, key)
	s.counts["private.delete"]++
	s.checkPrivate("delete", key)
}

// renameModel applies a rename to model m and reports whether it succeeds.
func renameModel(m map[string][]byte, from, to string) bool {
	v, ok := m[from]
	if ok {
		delete(m, from)
		m[to] = v
	}
	return ok
}

func (s *stressor) privateRename(from, to string) {
	moved := "nothing"
	if v, ok := s.model[from]; ok {
		moved = headerOf(v)
	}
	err := s.c.Rename(stressCtx, from, to)
	if _, ok := s.model[from]; ok && errors.Is(err, fs.ErrNotExist) && s.evicted("rename", from) {
		err = fs.ErrNotExist // the source was evicted: nothing changed
	}
	if ok := renameModel(s.model, from, to); ok && err != nil || !ok && !errors.Is(err, fs.ErrNotExist) {
		s.failf("private rename %q to %q (source present: %v) = %v", from, to, ok, err)
	}
	s.note(from, "rename to %s = %v", to, err)
	s.note(to, "rename from %s (%s) = %v", from, moved, err)
	s.counts["private.rename"]++
	s.checkPrivate("rename", from)
	s.checkPrivate("rename", to)
}

// privateBatch stages puts, deletes and renames of private keys on a copy
// of the model. Committed, the cache must then hold the copy (or, if a
// rename's source was missing, the whole batch fails and nothing changes);
// aborted, the old model.
func (s *stressor) privateBatch(commit bool) {
	b := s.c.NewBatch()
	next := maps.Clone(s.model)
	renameMiss := false
	var staged []string // for the keys' histories
	for range 1 + s.rng.IntN(5) {
		key := s.randPrivate()
		var err error
		switch s.rng.IntN(3) {
		case 0:
			v := s.newPrivateValue(key, !commit)
			if s.rng.IntN(2) == 0 {
				err = b.PutBytes(stressCtx, key, v)
			} else {
				_, err = b.Put(stressCtx, key, &stressReader{b: v, rng: s.rng})
			}
			next[key] = v
			staged = append(staged, key, "put "+headerOf(v))
		case 1:
			err = b.Delete(key)
			delete(next, key)
			staged = append(staged, key, "delete")
		case 2:
			to := s.randPrivate()
			err = b.Rename(key, to)
			renameMiss = !renameModel(next, key, to) || renameMiss
			staged = append(staged, key, "rename to "+to, to, "rename from "+key)
		}
		if err != nil {
			s.failf("private batch: staging: %v", err)
			b.Abort()
			return
		}
	}
	op := "aborted batch"
	switch {
	case !commit:
		b.Abort()
		s.counts["private.batch.abort"]++
	case renameMiss:
		op = "batch with a failing rename"
		if err := b.Commit(stressCtx); !errors.Is(err, fs.ErrNotExist) {
			s.failf("private batch: Commit = %v, want not found (a rename's source is missing)", err)
		}
		s.counts["private.batch.renamemiss"]++
	default:
		op = "committed batch"
		switch err := b.Commit(stressCtx); {
		case err == nil:
			s.model = next
			s.counts["private.batch.commit"]++
		case errors.Is(err, fs.ErrNotExist) && s.evictable:
			// A rename's source was evicted: nothing changed. Which key
			// went is unknown, but every key of the model may be missing.
			op = "batch whose rename's source was evicted"
			s.counts["evicted.batch"]++
		default:
			s.failf("private batch: Commit: %v", err)
			s.model = next
		}
	}
	for i := 0; i < len(staged); i += 2 {
		s.note(staged[i], "%s in a %s", staged[i+1], op)
	}
	s.checkAllPrivate(op)
}

// privateFailPut: a put whose reader fails leaves the old value in place.
func (s *stressor) privateFailPut(key string) {
	v := s.newValue(key, true)
	r := &stressReader{b: v[:s.rng.IntN(len(v))], rng: s.rng, err: errStressReader}
	if _, err := s.c.Put(stressCtx, key, r); !errors.Is(err, errStressReader) {
		s.failf("private put %q with a failing reader = %v, want the reader's error", key, err)
	}
	s.counts["private.failput"]++
	s.note(key, "failed put of %s", headerOf(v))
	s.checkPrivate("failed put", key)
}

// privateDeletePrefix removes the whole private prefix and must report
// exactly the number of keys the model holds.
func (s *stressor) privateDeletePrefix() {
	prefix := privatePrefix(s.worker, s.g)
	n, err := s.c.DeletePrefix(stressCtx, prefix)
	if err != nil || n != len(s.model) && !(s.evictable && n < len(s.model)) {
		s.failf("DeletePrefix %q = %d, %v; want %d keys", prefix, n, err, len(s.model))
	}
	for j := range privateKeys {
		s.note(s.privateKey(j), "DeletePrefix = %d, %v", n, err)
	}
	clear(s.model)
	s.counts["private.deleteprefix"]++
	s.checkAllPrivate("DeletePrefix")
}

// shortLived opens a second handle on the directory, as a short-lived
// process (a CLI call) would, puts a few values through it and closes it.
// This opens the cache while others write, and hands value files over
// from one pool to the next (a fresh pool takes over existing files). The
// private puts prove read-your-writes across handles: the long-lived
// handle must not serve a stale location.
func (s *stressor) shortLived() {
	c2, err := possum.Open(s.c.Dir(), nil)
	if err != nil {
		s.failf("short-lived Open: %v", err)
		return
	}
	var written []string
	n := 1 + s.rng.IntN(3)
	for i := range n {
		key := s.randShared()
		v := s.newValue(key, false)
		switch {
		case i == n-1 && s.rng.IntN(2) == 0:
			// End on a large value, as a CLI put of a file would: the
			// next pool to take the file over must append after its
			// whole footprint.
			v = s.newValueLen(key, false, 64<<10+1+s.rng.IntN(128<<10))
		case s.rng.IntN(2) == 0:
			key = s.randPrivate()
			v = s.newPrivateValue(key, false)
		}
		if err := c2.PutBytes(stressCtx, key, v); err != nil {
			s.failf("short-lived put %q: %v", key, err)
			continue
		}
		if strings.HasPrefix(key, "p/") {
			s.model[key] = v
			s.note(key, "put %s through another handle", headerOf(v))
			written = append(written, key)
		}
	}
	if err := c2.Close(); err != nil {
		s.failf("short-lived Close: %v", err)
	}
	s.counts["shortlived"]++
	for _, key := range written {
		s.checkPrivate("put through another handle", key)
	}
}

// verify runs Verify while everyone writes. Verify promises to skip what
// changes under it, so whatever it reports is real: a manifest that
// disagrees with the files at that moment.
func (s *stressor) verify() {
	r, err := s.c.Verify(stressCtx, false)
	if err != nil {
		s.failf("concurrent Verify: %v", err)
		return
	}
	for _, p := range r.Problems {
		s.failf("concurrent Verify: %v", p)
	}
	s.counts["verify"]++
}

// Values and snapshots held open. A goroutine opens a value or a snapshot,
// checks it, and keeps it open across its next few operations, while the
// other goroutines and processes (and often itself, right away) replace,
// delete, evict and reclaim what it holds. Then it reads the bytes again,
// another way: they must be exactly those it read first.

// heldItem is a Value or Snapshot held open.
type heldItem struct {
	ops    int    // operations of the goroutine left before finish
	finish func() // reads it again, checks and closes it
}

// maxHeld bounds what one goroutine holds at once: under capacity pressure
// every held region is dead space the cache must make up for.
const maxHeld = 3

func (s *stressor) hold(finish func()) {
	n := 1 + s.rng.IntN(5)
	if len(s.held) >= maxHeld {
		n = 1
	}
	s.held = append(s.held, &heldItem{ops: n, finish: finish})
}

// tickHeld counts one operation off every held item, and finishes those
// whose time is up.
func (s *stressor) tickHeld() {
	var due []*heldItem
	kept := s.held[:0]
	for _, h := range s.held {
		if h.ops--; h.ops <= 0 {
			due = append(due, h)
		} else {
			kept = append(kept, h)
		}
	}
	s.held = kept
	for _, h := range due {
		h.finish()
	}
}

// readAtPieces reads v whole through ReadAt, in pieces of random sizes read
// in random order, and checks that ReadAt at the end says io.EOF.
func readAtPieces(v *possum.Value, rng *rand.Rand) ([]byte, error) {
	size := v.Size()
	b := make([]byte, size)
	type piece struct{ off, end int64 }
	var pieces []piece
	for off := int64(0); off < size; {
		end := min(size, off+1+rng.Int64N(96<<10))
		pieces = append(pieces, piece{off, end})
		off = end
	}
	rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
	for i, p := range pieces {
		n, err := v.ReadAt(b[p.off:p.end], p.off)
		if n != int(p.end-p.off) || err != nil && !(err == io.EOF && p.end == size) {
			return nil, fmt.Errorf("ReadAt(%d bytes at %d) of %d (piece %d of %d) = %d, %v",
				p.end-p.off, p.off, size, i, len(pieces), n, err)
		}
	}
	if n, err := v.ReadAt(make([]byte, 1), size); n != 0 || err != io.EOF {
		return nil, fmt.Errorf("ReadAt at the end (%d) = %d, %v; want 0, io.EOF", size, n, err)
	}
	return b, nil
}

// readWhole reads v from start to end one of the ways a Value offers,
// picked at random: ReadAt, Read (which checks the checksum at the end),
// Bytes (a mapping, for a large value), or io.Copy, that is WriteTo, into a
// buffer, into a regular file (copy_file_range) or into a pipe (sendfile).
func (s *stressor) readWhole(v *possum.Value) ([]byte, string, error) {
	var b []byte
	var err error
	var via string
	switch s.rng.IntN(6) {
	case 0:
		via = "readat"
		b, err = readAtPieces(v, s.rng)
	case 1:
		via = "read"
		if _, err = v.Seek(0, io.SeekStart); err == nil {
			b, err = io.ReadAll(v)
		}
	case 2:
		via = "bytes"
		var m []byte
		if m, err = v.Bytes(); err == nil {
			b = bytes.Clone(m)
		}
	case 3:
		via = "writeto.buffer"
		var buf bytes.Buffer
		b, err = s.copyOut(v, &buf, func() ([]byte, error) { return buf.Bytes(), nil })
	case 4:
		via = "writeto.file"
		b, err = s.copyToFile(v)
	default:
		via = "writeto.pipe"
		b, err = s.copyToPipe(v)
	}
	s.counts["via."+via]++
	if err == nil && int64(len(b)) != v.Size() {
		err = fmt.Errorf("%d bytes of %d", len(b), v.Size())
	}
	if err != nil {
		return nil, via, fmt.Errorf("reading through %s: %w", via, err)
	}
	return b, via, nil
}

// copyOut rewinds v, copies it into w with io.Copy (so through WriteTo)
// and returns what got says w received.
func (s *stressor) copyOut(v *possum.Value, w io.Writer, got func() ([]byte, error)) ([]byte, error) {
	if _, err := v.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	n, err := io.Copy(w, v)
	if err != nil {
		return nil, err
	}
	if n != v.Size() {
		return nil, fmt.Errorf("io.Copy copied %d bytes of %d", n, v.Size())
	}
	return got()
}

func (s *stressor) copyToFile(v *possum.Value) ([]byte, error) {
	if s.tmp == nil {
		f, err := os.CreateTemp(s.tmpDir, "writeto")
		if err != nil {
			return nil, err
		}
		s.tmp = f
	}
	if err := s.tmp.Truncate(0); err != nil {
		return nil, err
	}
	if _, err := s.tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.copyOut(v, s.tmp, func() ([]byte, error) {
		b := make([]byte, v.Size()+1) // one more: the file must end there
		n, err := s.tmp.ReadAt(b, 0)
		if err != io.EOF {
			return nil, fmt.Errorf("reading the copy back: %d bytes, %v", n, err)
		}
		return b[:n], nil
	})
}

func (s *stressor) copyToPipe(v *possum.Value) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		r.Close()
		done <- result{b, err}
	}()
	_, err = s.copyOut(v, w, func() ([]byte, error) { return nil, nil })
	w.Close()
	res := <-done
	if err == nil {
		err = res.err
	}
	return res.b, err
}

// openHold opens a shared key's value, reads it whole through ReadAt and
// through io.Copy into a buffer (WriteTo), checks it is a value of that
// key, often replaces or deletes the key itself, and holds the Value across
// the goroutine's next few operations. Then it reads it again: the same
// bytes, whatever happened to the key meanwhile.
func (s *stressor) openHold() {
	var key string
	switch x := s.rng.IntN(10); {
	case x == 0:
		key = emptyKey(s.rng.IntN(emptyKeys))
	case x == 1:
		key = ttlKey(s.rng.IntN(ttlKeys))
	case x == 2 && s.evictable:
		key = fillKey(s.rng.IntN(fillKeys))
	default:
		key = s.randShared()
	}
	v, err := s.c.Open(stressCtx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.counts["open.miss"]++
		return
	case err != nil:
		s.failf("Open %q: %v", key, err)
		return
	}
	first, ok := s.checkOpened(key, v)
	if !ok {
		v.Close()
		return
	}
	s.counts["open"]++
	s.counts["bytes.held"] += len(first)
	if s.rng.IntN(2) == 0 {
		s.clobber("open", key)
	}
	s.hold(func() {
		last, via, err := s.readWhole(v)
		switch {
		case err != nil:
			s.failf("Open %q, held: %v", key, err)
		case !bytes.Equal(last, first):
			s.failf("Open %q: the bytes of the held value changed: first %s, read through %s %s (first difference at %d)",
				key, identOf(first), via, identOf(last), firstMismatch(first, last))
		}
		if s.rng.IntN(4) == 0 {
			if err := v.Verify(); err != nil {
				s.failf("Open %q, held: Verify: %v", key, err)
			}
			s.counts["via.verify"]++
		}
		s.closeValue("Open "+strconv.Quote(key), v)
		s.counts["open.close"]++
	})
}

// checkOpened checks a just opened Value of key: its Info, its bytes read
// through ReadAt (a valid value of key) and through io.Copy into a buffer
// (the same bytes). It returns the bytes.
func (s *stressor) checkOpened(key string, v *possum.Value) ([]byte, bool) {
	info := v.Info()
	if info.Key != key || info.Size != v.Size() {
		s.failf("Open %q: Info says key %q, %d bytes; Size says %d", key, info.Key, info.Size, v.Size())
		return nil, false
	}
	if err := checkListedInfo(info); err != nil {
		s.failf("Open %q: %v", key, err)
		return nil, false
	}
	first, err := readAtPieces(v, s.rng)
	if err != nil {
		s.failf("Open %q: %v", key, err)
		return nil, false
	}
	if _, err := checkRead(key, first); err != nil {
		s.failf("Open %q returned a bad value: %v", key, err)
		return nil, false
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, v)
	switch {
	case err != nil || n != v.Size():
		s.failf("Open %q: io.Copy into a buffer = %d bytes of %d, %v", key, n, v.Size(), err)
		return nil, false
	case !bytes.Equal(buf.Bytes(), first):
		s.failf("Open %q: WriteTo gave %s, ReadAt %s", key, identOf(buf.Bytes()), identOf(first))
		return nil, false
	}
	return first, true
}

// closeValue closes v (twice: the second must be harmless) and checks that
// it then refuses to read.
func (s *stressor) closeValue(what string, v *possum.Value) {
	if err := v.Close(); err != nil {
		s.failf("%s: Close: %v", what, err)
	}
	if err := v.Close(); err != nil {
		s.failf("%s: second Close: %v", what, err)
	}
	if v.Size() > 0 {
		if _, err := v.ReadAt(make([]byte, 1), 0); !errors.Is(err, possum.ErrClosed) {
			s.failf("%s: ReadAt after Close = %v, want ErrClosed", what, err)
		}
	}
}

// clobber deletes or replaces a shared key whose value this goroutine just
// pinned, so that its region is freed (and offered to the reclaimer) while
// it is held.
func (s *stressor) clobber(op, key string) {
	var err error
	switch {
	case strings.HasPrefix(key, "p/"):
		return // a private key: the model's business
	case strings.HasPrefix(key, "e/") || s.rng.IntN(2) == 0:
		s.okOrMissing(op+".delete", key, s.c.Delete(stressCtx, key))
		return
	case strings.HasPrefix(key, "t/"):
		v := s.newValue(key, false)
		_, err = s.c.PutWith(stressCtx, key, bytes.NewReader(v), &possum.PutOptions{TTL: s.randTTL()})
	default:
		err = s.put(key, s.newValue(key, false), s.rng.IntN(2) == 0)
	}
	if err != nil {
		s.failf("%s: replacing %q: %v", op, key, err)
		return
	}
	s.counts[op+".replace"]++
}

// snapshot takes a snapshot of a prefix (the shared keys, the pairs, the
// TTL keys, or the goroutine's own private keys) or of a few keys, checks
// it (see checkSnapshot), often deletes or replaces some of its keys
// itself, and holds it across the goroutine's next few operations. Then
// its listing and a couple of its values must be as they were.
func (s *stressor) snapshot() {
	var snap *possum.Snapshot
	var err error
	var what, prefix string
	var keys, private []string
	began := time.Now()
	switch x := s.rng.IntN(10); {
	case x < 3:
		prefix = "k/"
	case x < 5:
		prefix = "r/"
	case x < 6:
		prefix = "t/"
		if s.evictable && s.rng.IntN(2) == 0 {
			prefix = "f/1" // f/1, f/10..f/19, f/100..f/199: up to 111 keys
		}
	case x < 8:
		prefix = privatePrefix(s.worker, s.g)
		for j := range privateKeys {
			private = append(private, s.privateKey(j))
		}
	default:
		keys, private = s.snapshotKeys()
	}
	if keys != nil {
		what = fmt.Sprintf("Snapshot(%q)", keys)
		snap, err = s.c.Snapshot(stressCtx, keys...)
	} else {
		what = fmt.Sprintf("SnapshotPrefix(%q)", prefix)
		snap, err = s.c.SnapshotPrefix(stressCtx, prefix)
	}
	if err != nil {
		s.failf("%s: %v", what, err)
		return
	}
	infos, contents, ok := s.checkSnapshot(what, snap, prefix, keys, began)
	if ok {
		ok = s.checkSnapshotPrivate(what, contents, private)
	}
	if !ok {
		snap.Close()
		return
	}
	switch {
	case keys != nil:
		s.counts["snapshot.keys"]++
	case private != nil:
		s.counts["snapshot.private"]++
	default:
		s.counts["snapshot.prefix"]++
	}
	s.counts["snapshot.values"] += len(infos)
	for _, b := range contents {
		s.counts["bytes.held"] += len(b)
	}
	if s.rng.IntN(3) == 0 {
		if private != nil && keys == nil {
			s.privateDeletePrefix()
		} else {
			for _, info := range infos[:min(len(infos), 2)] {
				s.clobber("snapshot", info.Key)
			}
		}
	}
	s.hold(func() { s.finishSnapshot(what, snap, infos, contents) })
}

// snapshotKeys picks keys for Snapshot: shared keys, both keys of a pair,
// an empty-only key, a TTL key, one of the goroutine's private keys (also
// returned alone) and a key that is never written; some may repeat.
func (s *stressor) snapshotKeys() (keys, private []string) {
	for range 1 + s.rng.IntN(4) {
		keys = append(keys, s.randShared())
	}
	i := s.rng.IntN(pairGroups)
	keys = append(keys, pairKey(i, false), pairKey(i, true))
	if s.rng.IntN(2) == 0 {
		keys = append(keys, emptyKey(s.rng.IntN(emptyKeys)))
	}
	if s.rng.IntN(2) == 0 {
		keys = append(keys, ttlKey(s.rng.IntN(ttlKeys)))
	}
	if s.rng.IntN(2) == 0 {
		keys = append(keys, "k/never")
	}
	if s.rng.IntN(2) == 0 {
		k := s.randPrivate()
		keys, private = append(keys, k), []string{k}
	}
	s.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	return keys, private
}

// checkSnapshot checks a fresh snapshot: List is in strictly increasing key
// order, has as many entries as Len, holds only keys asked for (under
// prefix, or among keys) and none expired before the snapshot began; every
// listed key's Value has that Info and its bytes (read through ReadAt) are
// a valid value of the key; keys asked for but not listed are not found;
// and no value is under two keys at once (renames move values, nothing
// copies them: seeing one twice means the snapshot mixed two instants). It
// returns the listing and each key's bytes.
func (s *stressor) checkSnapshot(what string, snap *possum.Snapshot, prefix string, keys []string, began time.Time) ([]possum.Info, map[string][]byte, bool) {
	infos := snap.List()
	if len(infos) != snap.Len() {
		s.failf("%s: List has %d entries, Len says %d", what, len(infos), snap.Len())
		return nil, nil, false
	}
	asked := map[string]bool{}
	for _, k := range keys {
		asked[k] = true
	}
	contents := map[string][]byte{}
	owner := map[[3]uint64]string{}
	for i, info := range infos {
		k := info.Key
		switch {
		case i > 0 && k <= infos[i-1].Key:
			s.failf("%s: List has %q after %q: out of order or twice", what, k, infos[i-1].Key)
			return nil, nil, false
		case keys == nil && !strings.HasPrefix(k, prefix), keys != nil && !asked[k]:
			s.failf("%s: holds %q, which was not asked for", what, k)
			return nil, nil, false
		}
		if err := checkListedInfo(info); err != nil {
			s.failf("%s: %v", what, err)
		}
		if err := checkNotExpired(info, began); err != nil {
			s.failf("%s: %v", what, err)
		}
		v, err := snap.Value(k)
		if err != nil {
			s.failf("%s: Value(%q) of a listed key: %v", what, k, err)
			return nil, nil, false
		}
		if v.Info() != info {
			s.failf("%s: Value(%q).Info() = %+v, but List says %+v", what, k, v.Info(), info)
		}
		b, err := readAtPieces(v, s.rng)
		if err != nil {
			s.failf("%s: value of %q: %v", what, k, err)
			return nil, nil, false
		}
		id, err := checkRead(k, b)
		if err != nil {
			s.failf("%s: %q holds a bad value: %v", what, k, err)
			return nil, nil, false
		}
		if len(b) > 0 {
			ident := [3]uint64{uint64(id.Worker), uint64(id.G), id.Seq}
			if other, dup := owner[ident]; dup {
				s.failf("%s: %v is under %q and %q at once", what, id, other, k)
			}
			owner[ident] = k
		}
		contents[k] = b
	}
	for k := range asked {
		if _, in := contents[k]; in {
			continue
		}
		if _, err := snap.Value(k); !errors.Is(err, possum.ErrNotFound) {
			s.failf("%s: Value(%q) of a key not listed = %v, want ErrNotFound", what, k, err)
		}
	}
	return infos, contents, true
}

// checkSnapshotPrivate checks the snapshot's values of this goroutine's
// private keys: exactly what the model says (under capacity pressure, or
// nothing).
func (s *stressor) checkSnapshotPrivate(what string, contents map[string][]byte, private []string) bool {
	for _, k := range private {
		want, ok := s.model[k]
		got, in := contents[k]
		switch {
		case ok && in && !bytes.Equal(got, want):
			s.failf("%s: own key %q holds %s; want %s", what, k, identOf(got), identOf(want))
			return false
		case ok && !in && !s.evicted("snapshot", k):
			s.failf("%s: own key %q is missing; want %s", what, k, identOf(want))
			return false
		case !ok && in:
			s.failf("%s: own key %q holds %s; want nothing (%s)", what, k, identOf(got), s.goneNote(k))
			return false
		}
	}
	return true
}

// finishSnapshot checks a held snapshot again, then closes it: the same
// listing, and a couple of its values, read another way, the same bytes.
func (s *stressor) finishSnapshot(what string, snap *possum.Snapshot, infos []possum.Info, contents map[string][]byte) {
	if got := snap.List(); !slices.Equal(got, infos) {
		s.failf("%s, held: List changed from %v to %v", what, infos, got)
	}
	for _, i := range s.rng.Perm(len(infos))[:min(len(infos), 2)] {
		k := infos[i].Key
		v, err := snap.Value(k)
		if err != nil {
			s.failf("%s, held: Value(%q): %v", what, k, err)
			continue
		}
		b, via, err := s.readWhole(v)
		switch {
		case err != nil:
			s.failf("%s, held: value of %q: %v", what, k, err)
		case !bytes.Equal(b, contents[k]):
			s.failf("%s, held: the bytes of %q changed: first %s, read through %s %s (first difference at %d)",
				what, k, identOf(contents[k]), via, identOf(b), firstMismatch(contents[k], b))
		}
		s.counts["snapshot.reread"]++
	}
	if err := snap.Close(); err != nil {
		s.failf("%s: Close: %v", what, err)
	}
	for _, info := range infos[:min(len(infos), 1)] {
		if v, err := snap.Value(info.Key); err == nil && v.Size() > 0 {
			if _, err := v.ReadAt(make([]byte, 1), 0); !errors.Is(err, possum.ErrClosed) {
				s.failf("%s: ReadAt of %q after Close = %v, want ErrClosed", what, info.Key, err)
			}
		}
	}
	s.counts["snapshot.close"]++
}

// Expiry. The t/ keys are shared and always put with a TTL: a read may
// miss, but what it returns must be a valid value of the key. The pt/ keys
// are private like the p/ keys, mostly put with a TTL, and their model
// knows when each value expires, within the time its put took: a read that
// ends before the earliest instant must hit (unless evicted), one that
// starts later than the latest instant plus expiryMargin must miss.

// ttlValue is what the model knows of a private TTL key.
type ttlValue struct {
	v []byte
	// earliest and latest bound the expiry instant: the TTL after the put
	// began, and after it returned. Zero: the value never expires.
	earliest, latest time.Time
}

func (e ttlValue) expires() bool { return !e.latest.IsZero() }

func (s *stressor) randTTL() time.Duration {
	return minTTL + time.Duration(s.rng.Int64N(int64(maxTTL-minTTL)))
}

func (s *stressor) privateTTLKey(j int) string {
	return privateTTLPrefix(s.worker, s.g) + strconv.Itoa(j)
}

// ttlPut puts a t/ key with a random TTL, alone or with another in a batch.
func (s *stressor) ttlPut() {
	key := ttlKey(s.rng.IntN(ttlKeys))
	v := s.newValue(key, false)
	if s.rng.IntN(4) > 0 {
		n, err := s.c.PutWith(stressCtx, key, &stressReader{b: v, rng: s.rng}, &possum.PutOptions{TTL: s.randTTL()})
		if err != nil || n != int64(len(v)) {
			s.failf("PutWith %q with a TTL = %d of %d bytes, %v", key, n, len(v), err)
			return
		}
		s.counts["ttl.put"]++
		return
	}
	b := s.c.NewBatch()
	_, err := b.PutWith(stressCtx, key, &stressReader{b: v, rng: s.rng}, &possum.PutOptions{TTL: s.randTTL()})
	if err == nil {
		key2 := ttlKey(s.rng.IntN(ttlKeys))
		_, err = b.PutWith(stressCtx, key2, bytes.NewReader(s.newValue(key2, false)), &possum.PutOptions{TTL: s.randTTL()})
	}
	if err != nil {
		s.failf("batch: staging a put with a TTL: %v", err)
		b.Abort()
		return
	}
	if err := b.Commit(stressCtx); err != nil {
		s.failf("batch of puts with a TTL: Commit: %v", err)
		return
	}
	s.counts["ttl.batch"]++
}

// ttlGet reads a t/ key: it may have expired, but a value it returns must
// be valid for it.
func (s *stressor) ttlGet() {
	if _, ok := s.read(ttlKey(s.rng.IntN(ttlKeys))); ok {
		s.counts["ttl.get.hit"]++
	} else {
		s.counts["ttl.get.miss"]++
	}
}

func (s *stressor) privateTTL() {
	switch x := s.rng.IntN(10); {
	case x < 4:
		s.privateTTLPut(s.privateTTLKey(s.rng.IntN(privateTTLs)))
	case x < 9:
		s.checkTTL(s.pickTTLKey())
	default:
		s.listTTL()
	}
}

// pickTTLKey prefers a private TTL key whose value has certainly expired.
func (s *stressor) pickTTLKey() string {
	now := time.Now()
	for j := range privateTTLs {
		k := s.privateTTLKey(j)
		if e, ok := s.ttlModel[k]; ok && e.expires() && now.After(e.latest.Add(expiryMargin)) {
			return k
		}
	}
	return s.privateTTLKey(s.rng.IntN(privateTTLs))
}

// privateTTLPut puts a private TTL key, mostly with a TTL, and reads it
// back.
func (s *stressor) privateTTLPut(key string) {
	v := s.newValue(key, false)
	var opts *possum.PutOptions
	if s.rng.IntN(5) > 0 {
		opts = &possum.PutOptions{TTL: s.randTTL()}
	}
	began := time.Now()
	n, err := s.c.PutWith(stressCtx, key, &stressReader{b: v, rng: s.rng}, opts)
	ended := time.Now()
	if err != nil || n != int64(len(v)) {
		s.failf("private PutWith %q = %d of %d bytes, %v", key, n, len(v), err)
		return
	}
	e := ttlValue{v: v}
	if opts != nil {
		e.earliest, e.latest = began.Add(opts.TTL), ended.Add(opts.TTL)
	}
	s.ttlModel[key] = e
	s.note(key, "put %s, which %s", headerOf(v), e.describe(ended))
	s.counts["ttl.private.put"]++
	s.checkTTL(key)
}

// checkTTL reads a private TTL key, through Get or Open, and judges the
// outcome by the model and the clock.
func (s *stressor) checkTTL(key string) {
	e, ok := s.ttlModel[key]
	began := time.Now()
	var got []byte
	var err error
	if s.rng.IntN(3) == 0 {
		var v *possum.Value
		if v, err = s.c.Open(stressCtx, key); err == nil {
			got, err = readAtPieces(v, s.rng)
			v.Close()
		}
	} else {
		got, err = s.c.Get(stressCtx, key)
	}
	ended := time.Now()
	gone := ok && e.expires() && began.After(e.latest.Add(expiryMargin))
	live := ok && (!e.expires() || ended.Before(e.earliest))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		switch {
		case !ok:
			s.counts["ttl.private.miss"]++
		case gone:
			s.counts["ttl.private.expired"]++
			s.note(key, "found missing: expired")
			delete(s.ttlModel, key)
		case live && !s.evicted("ttl", key):
			s.failf("read %q: not found, but its value (%s) %s", key, identOf(e.v), e.describe(ended))
		case !live:
			s.counts["ttl.private.expiring"]++ // read around its expiry instant
			s.note(key, "found missing around its expiry")
			delete(s.ttlModel, key)
		}
	case err != nil:
		s.failf("read %q: %v", key, err)
	case !ok:
		s.failf("read %q returned %s; want not found (%s)", key, identOf(got), s.goneNote(key))
	case gone:
		s.failf("read %q returned its value %s, which %s", key, identOf(got), e.describe(began))
	case !bytes.Equal(got, e.v):
		s.failf("read %q returned %s; want %s", key, identOf(got), identOf(e.v))
	default:
		s.counts["ttl.private.hit"]++
	}
}

// describe says when e expires, seen from now.
func (e ttlValue) describe(now time.Time) string {
	if !e.expires() {
		return "never expires"
	}
	return fmt.Sprintf("expires between %v and %v (now %v)", e.earliest.Format(time.StampMicro),
		e.latest.Format(time.StampMicro), now.Format(time.StampMicro))
}

// listTTL lists the private TTL keys: each listed key's size and expiry as
// the model says, none certainly expired, and every key that must be live
// listed.
func (s *stressor) listTTL() {
	prefix := privateTTLPrefix(s.worker, s.g)
	began := time.Now()
	got := map[string]possum.Info{}
	for info, err := range s.c.List(stressCtx, prefix) {
		if err != nil {
			s.failf("List %q: %v", prefix, err)
			return
		}
		got[info.Key] = info
	}
	ended := time.Now()
	for k, info := range got {
		e, ok := s.ttlModel[k]
		switch {
		case !ok:
			s.failf("List %q yielded %q, which holds nothing (%s)", prefix, k, s.goneNote(k))
		case info.Size != int64(len(e.v)):
			s.failf("List %q: %q has %d bytes; want %d", prefix, k, info.Size, len(e.v))
		case e.expires() && began.After(e.latest.Add(expiryMargin)):
			s.failf("List %q yielded %q, which %s", prefix, k, e.describe(began))
		case !e.expires() && !info.Expires.IsZero():
			s.failf("List %q: %q expires at %v; want never", prefix, k, info.Expires)
		case e.expires() && (info.Expires.Before(e.earliest) || info.Expires.After(e.latest)):
			s.failf("List %q: %q expires at %v, but its value %s", prefix, k,
				info.Expires.Format(time.StampMicro), e.describe(began))
		}
	}
	for k, e := range s.ttlModel {
		if _, in := got[k]; in {
			continue
		}
		if !e.expires() || ended.Before(e.earliest) {
			if !s.evicted("ttl.list", k) {
				s.failf("List %q left out %q, whose value %s", prefix, k, e.describe(ended))
			}
			continue
		}
		delete(s.ttlModel, k) // expired
	}
	s.counts["ttl.private.list"]++
}

// flood writes this worker's share of the f/ keys first, at the start of
// the run while the other goroutines go about their work: together the
// workers write 1.5 times the capacity in keys nobody deletes, so the run
// evicts however slowly it goes (the random fill alone may not get there in
// a short run under the race detector).
func (s *stressor) flood(until time.Time) {
	capacity, err := s.c.Capacity(stressCtx)
	if err != nil {
		s.failf("flood: Capacity: %v", err)
		return
	}
	const size = 128 << 10
	per := fillKeys / stressWorkers
	first := (s.worker - 1) * per
	target := capacity * 3 / 2 / stressWorkers
	for i, written := 0, int64(0); written < target && i < per; i++ {
		if time.Now().After(until) || s.f.stop.Load() {
			return
		}
		key := fillKey((first + i) % fillKeys)
		if err := s.put(key, s.newValueLen(key, false, size), i%2 == 0); err != nil {
			s.failf("flood put %q: %v", key, err)
			return
		}
		written += size
		s.counts["fill.flood"]++
	}
}

// fill writes (and now and then reads) the f/ keys, under capacity
// pressure only: many values of 16 to 256 KiB, never deleted, so that the
// live set stays over the capacity and every few puts evict.
func (s *stressor) fill() {
	key := fillKey(s.rng.IntN(fillKeys))
	if s.rng.IntN(4) == 0 {
		s.read(key)
		s.counts["fill.get"]++
		return
	}
	v := s.newValueLen(key, false, 16<<10+s.rng.IntN(240<<10))
	if err := s.put(key, v, s.rng.IntN(2) == 0); err != nil {
		s.failf("fill put %q: %v", key, err)
		return
	}
	s.counts["fill.put"]++
}
