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
	"slices"
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
	sharedKeys  = 64 // k/<i>: hold values written for k/<i>
	pairGroups  = 16 // r/<i>/a and r/<i>/b: renamed into each other
	emptyKeys   = 8  // e/<i>: only ever hold the empty value
	privateKeys = 8  // p/<worker>/<g>/<j>: written by goroutine g of worker only
)

func sharedKey(i int) string        { return fmt.Sprintf("k/%d", i) }
func emptyKey(i int) string         { return fmt.Sprintf("e/%d", i) }
func privatePrefix(w, g int) string { return fmt.Sprintf("p/%d/%d/", w, g) }

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
// other key holds only values written for itself.
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

// checkListedInfo checks what List says of a key: a key of our key space,
// and a size that a value of it can have.
func checkListedInfo(info possum.Info) error {
	k := info.Key
	switch {
	case strings.HasPrefix(k, "e/"):
		if info.Size != 0 {
			return fmt.Errorf("list: empty-only key %q has size %d", k, info.Size)
		}
	case strings.HasPrefix(k, "k/"), strings.HasPrefix(k, "r/"), strings.HasPrefix(k, "p/"):
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
// as worker number worker (1..255; the in-process test uses 0).
func runStress(t testing.TB, c *possum.Cache, worker, goroutines int, d time.Duration) stressResult {
	f := &stressFailer{t: t}
	until := time.Now().Add(d)
	ss := make([]*stressor, goroutines)
	var wg sync.WaitGroup
	for g := range ss {
		ss[g] = &stressor{
			c: c, f: f, worker: worker, g: g,
			rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker<<16|g))),
			counts: map[string]int{},
			model:  map[string][]byte{},
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
	// nobody else writes them, so reads there must return exactly this.
	model map[string][]byte
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
	}
	if s.g == 0 { // Verify reads every value: one goroutine per worker is plenty
		ops = append(ops, weightedOp{1, s.verify})
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for time.Now().Before(until) && !s.f.stop.Load() {
		n := s.rng.IntN(total)
		for _, o := range ops {
			if n -= o.weight; n < 0 {
				o.fn()
				break
			}
		}
	}
}

// randSize picks a value size: mostly small (packed), some at and just
// under the 64 KiB boundary, some large (aligned), a few about 1 MiB.
func (s *stressor) randSize(origin string) int {
	var n int
	switch x := s.rng.IntN(1000); {
	case x < 3:
		n = 1<<20 - 32<<10 + s.rng.IntN(64<<10)
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
// order (so none twice), under the prefix, with plausible sizes. For the
// goroutine's own private prefix the listing must be exactly its model.
func (s *stressor) list() {
	own := privatePrefix(s.worker, s.g)
	prefixes := []string{"", "k/", "k/1", "r/", "r/1", "e/", "p/", own}
	prefix := prefixes[s.rng.IntN(len(prefixes))]
	got := map[string]int64{}
	prev := ""
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
	}
	if !maps.Equal(got, want) {
		s.failf("List of own prefix %q = %v, want %v", own, got, want)
	}
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
		s.failf("after %s: Get %q = %s, %v; want not found", op, key, identOf(got), err)
	case err != nil:
		s.failf("after %s: Get %q: %v; want %s", op, key, err, identOf(want))
	case !bytes.Equal(got, want):
		s.failf("after %s: Get %q returned %s; want %s", op, key, identOf(got), identOf(want))
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
	s.counts["private.put"]++
	s.checkPrivate("put", key)
}

// privateDelete must succeed exactly when the model holds the key.
func (s *stressor) privateDelete(key string) {
	_, had := s.model[key]
	err := s.c.Delete(stressCtx, key)
	if had && err != nil || !had && !errors.Is(err, fs.ErrNotExist) {
		s.failf("private delete %q (present: %v) = %v", key, had, err)
	}
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
	err := s.c.Rename(stressCtx, from, to)
	if ok := renameModel(s.model, from, to); ok && err != nil || !ok && !errors.Is(err, fs.ErrNotExist) {
		s.failf("private rename %q to %q (source present: %v) = %v", from, to, ok, err)
	}
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
		case 1:
			err = b.Delete(key)
			delete(next, key)
		case 2:
			to := s.randPrivate()
			err = b.Rename(key, to)
			renameMiss = !renameModel(next, key, to) || renameMiss
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
		if err := b.Commit(stressCtx); err != nil {
			s.failf("private batch: Commit: %v", err)
		}
		s.model = next
		s.counts["private.batch.commit"]++
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
	s.checkPrivate("failed put", key)
}

// privateDeletePrefix removes the whole private prefix and must report
// exactly the number of keys the model holds.
func (s *stressor) privateDeletePrefix() {
	prefix := privatePrefix(s.worker, s.g)
	n, err := s.c.DeletePrefix(stressCtx, prefix)
	if err != nil || n != len(s.model) {
		s.failf("DeletePrefix %q = %d, %v; want %d keys", prefix, n, err, len(s.model))
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
