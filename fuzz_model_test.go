package possum_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/seed475afdc4/possum"
	"github.com/seed475afdc4/possum/values"
)

// fuzzKeys is FuzzOperations' key space: few keys, so that operations
// collide, with NUL and 0xFF bytes and shared prefixes.
var fuzzKeys = []string{"a", "ab", "ab\x00", "a\xff", "a\xff\x00", "b\x00c", "\xff", "\xff\xff\x01"}

// fuzzPrefixes are the prefixes of List, DeletePrefix and MovePrefix.
var fuzzPrefixes = []string{"", "a", "ab", "a\xff", "b", "\xff", "\x00", "ab\x00", "\xff\xff", "c"}

// fuzzMaxOps bounds the operations of one input, to keep each one fast.
const fuzzMaxOps = 40

// opDecoder reads operations from a fuzz input; past its end it reads zeros.
type opDecoder struct{ b []byte }

func (d *opDecoder) next() byte {
	if len(d.b) == 0 {
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// key picks a key: mostly from fuzzKeys, sometimes one the model holds
// (keys moved by MovePrefix are outside fuzzKeys).
func (d *opDecoder) key(model map[string][]byte) string {
	c := int(d.next())
	n := len(fuzzKeys)
	if c%(n+2) < n || len(model) == 0 {
		return fuzzKeys[c%n]
	}
	ks := slices.Sorted(maps.Keys(model))
	return ks[(c/(n+2))%len(ks)]
}

func (d *opDecoder) prefix() string { return fuzzPrefixes[int(d.next())%len(fuzzPrefixes)] }

// value makes a value whose size class comes from the input: empty, small,
// around the packed/aligned boundary (values.LargeValue) or large, up to
// 200 KiB. Its first bytes are a serial number, so that no two values of
// one input are equal and a value read from the wrong place shows.
func (d *opDecoder) value(serial *uint64) []byte {
	c, s := d.next(), int(d.next())
	var n int
	switch c % 8 {
	case 0:
		n = 0
	case 1, 2:
		n = s % 16
	case 3:
		n = 16 + s*37
	case 4:
		n = 4096 + s*200
	case 5:
		n = values.LargeValue - 3 + s%6
	case 6:
		n = values.LargeValue + s*397
	case 7:
		n = 200<<10 - s
	}
	v := make([]byte, n)
	*serial++
	var tag [8]byte
	binary.LittleEndian.PutUint64(tag[:], *serial)
	for i := range v {
		v[i] = byte(i*31+s) ^ tag[i%8]
	}
	copy(v, tag[:])
	return v
}

// fuzzModel is the cache's documented behaviour, in memory.
type fuzzModel map[string][]byte

func (m fuzzModel) rename(from, to string) error {
	v, ok := m[from]
	if !ok {
		return fs.ErrNotExist
	}
	delete(m, from)
	m[to] = v
	return nil
}

func (m fuzzModel) movePrefix(from, to string) int {
	if from == to {
		return 0
	}
	moved := map[string][]byte{}
	for k, v := range m {
		if strings.HasPrefix(k, from) {
			moved[to+k[len(from):]] = v
			delete(m, k)
		}
	}
	maps.Copy(m, moved)
	return len(moved)
}

func (m fuzzModel) deletePrefix(p string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, p) {
			delete(m, k)
			n++
		}
	}
	return n
}

type listed struct {
	key  string
	size int64
}

func (l listed) String() string { return fmt.Sprintf("%q:%d", l.key, l.size) }

func (m fuzzModel) list(p string) []listed {
	var out []listed
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.HasPrefix(k, p) {
			out = append(out, listed{k, int64(len(m[k]))})
		}
	}
	return out
}

// sameErr says whether err (the cache's) matches want (the model's): both
// nil, or both not found.
func sameErr(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// FuzzOperations applies a sequence of operations decoded from the input to
// a real cache and to an in-memory model, and requires the same results
// after every one; at the end the cache must pass Verify.
func FuzzOperations(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runOperations(t, data)
	})
}

func runOperations(t *testing.T, data []byte) {
	ctx := context.Background()
	c, err := possum.Open(t.TempDir(), &possum.Options{Capacity: 1 << 30})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	model := fuzzModel{}
	d := &opDecoder{b: data}
	var serial uint64

	checkGet := func(what, k string) {
		t.Helper()
		got, err := c.Get(ctx, k)
		want, ok := model[k]
		switch {
		case !ok && !errors.Is(err, fs.ErrNotExist):
			t.Fatalf("%s: Get(%q) = %d bytes, %v; want not found", what, k, len(got), err)
		case ok && err != nil:
			t.Fatalf("%s: Get(%q): %v; want %d bytes", what, k, err, len(want))
		case ok && !bytes.Equal(got, want):
			t.Fatalf("%s: Get(%q) = %d bytes, not the %d bytes put", what, k, len(got), len(want))
		}
	}
	checkList := func(what, p string) {
		t.Helper()
		var got []listed
		for info, err := range c.List(ctx, p) {
			if err != nil {
				t.Fatalf("%s: List(%q): %v", what, p, err)
			}
			got = append(got, listed{info.Key, info.Size})
		}
		if want := model.list(p); !slices.Equal(got, want) {
			t.Fatalf("%s: List(%q) = %v, want %v", what, p, got, want)
		}
	}

	for i := 0; i < fuzzMaxOps && len(d.b) > 0; i++ {
		var what string
		switch op := d.next() % 10; op {
		case 0, 1:
			k, v := d.key(model), d.value(&serial)
			what = fmt.Sprintf("op %d: Put(%q, %d bytes)", i, k, len(v))
			if err := c.PutBytes(ctx, k, v); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			model[k] = v
		case 2:
			k := d.key(model)
			what = fmt.Sprintf("op %d: Delete(%q)", i, k)
			var want error
			if _, ok := model[k]; !ok {
				want = fs.ErrNotExist
			}
			delete(model, k)
			if err := c.Delete(ctx, k); !sameErr(err, want) {
				t.Fatalf("%s = %v, want %v", what, err, want)
			}
		case 3:
			from, to := d.key(model), d.key(model)
			what = fmt.Sprintf("op %d: Rename(%q, %q)", i, from, to)
			want := model.rename(from, to)
			if err := c.Rename(ctx, from, to); !sameErr(err, want) {
				t.Fatalf("%s = %v, want %v", what, err, want)
			}
		case 4:
			from, to := d.prefix(), d.prefix()
			if _, ok := model[from]; ok && to == "" && from != "" {
				// The key equal to from would become the empty key, which
				// is not a key: like a moved key longer than MaxKeySize,
				// that must be ErrInvalidKey and change nothing.
				what = fmt.Sprintf("op %d: MovePrefix(%q, %q)", i, from, to)
				if n, err := c.MovePrefix(ctx, from, to); !errors.Is(err, possum.ErrInvalidKey) {
					t.Fatalf("%s = %d, %v; want ErrInvalidKey: the key %q would become empty", what, n, err, from)
				}
				checkList(what, "")
				t.Log(what)
				continue
			}
			what = fmt.Sprintf("op %d: MovePrefix(%q, %q)", i, from, to)
			want := model.movePrefix(from, to)
			if n, err := c.MovePrefix(ctx, from, to); err != nil || n != want {
				t.Fatalf("%s = %d, %v; want %d", what, n, err, want)
			}
		case 5:
			p := d.prefix()
			what = fmt.Sprintf("op %d: DeletePrefix(%q)", i, p)
			want := model.deletePrefix(p)
			if n, err := c.DeletePrefix(ctx, p); err != nil || n != want {
				t.Fatalf("%s = %d, %v; want %d", what, n, err, want)
			}
		case 6:
			what = fmt.Sprintf("op %d: batch", i)
			what += runBatch(ctx, t, c, model, d, &serial, what)
		case 7:
			k := d.key(model)
			what = fmt.Sprintf("op %d: Get(%q)", i, k)
			checkGet(what, k)
		case 8:
			p := d.prefix()
			what = fmt.Sprintf("op %d: List(%q)", i, p)
			checkList(what, p)
		case 9:
			// The reclaimer's work, now rather than at its next tick
			// (every second: seldom within one input).
			what = fmt.Sprintf("op %d: Trim", i)
			if err := c.Trim(ctx); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		t.Log(what)
	}

	// Everything the model holds, and nothing else.
	checkList("end", "")
	for k := range model {
		checkGet("end", k)
	}
	for _, k := range fuzzKeys {
		checkGet("end", k)
	}
	r, err := c.Verify(ctx, false)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, p := range r.Problems {
		t.Errorf("Verify: %v", p)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// runBatch stages 1 to 3 puts, deletes and renames (with Trims of the cache
// among them), commits or aborts the batch, and applies the same to the
// model: a committed batch applies in order, all or nothing. It returns what
// it did, for the log.
func runBatch(ctx context.Context, t *testing.T, c *possum.Cache, model fuzzModel, d *opDecoder, serial *uint64, what string) string {
	t.Helper()
	b := c.NewBatch()
	next := maps.Clone(model)
	var want error
	var steps []string
	for range 1 + int(d.next())%3 {
		switch d.next() % 4 {
		case 0:
			k, v := d.key(model), d.value(serial)
			steps = append(steps, fmt.Sprintf("Put(%q, %d bytes)", k, len(v)))
			if err := b.PutBytes(ctx, k, v); err != nil {
				t.Fatalf("%s: %s: %v", what, steps[len(steps)-1], err)
			}
			next[k] = v
		case 1:
			k := d.key(model)
			steps = append(steps, fmt.Sprintf("Delete(%q)", k))
			if err := b.Delete(k); err != nil {
				t.Fatalf("%s: %s: %v", what, steps[len(steps)-1], err)
			}
			delete(next, k)
		case 2:
			from, to := d.key(model), d.key(model)
			steps = append(steps, fmt.Sprintf("Rename(%q, %q)", from, to))
			if err := b.Rename(from, to); err != nil {
				t.Fatalf("%s: %s: %v", what, steps[len(steps)-1], err)
			}
			if err := next.rename(from, to); err != nil && want == nil {
				want = err
			}
		case 3:
			// Reclaim while the batch holds the tail of its value file.
			steps = append(steps, "Trim")
			if err := c.Trim(ctx); err != nil {
				t.Fatalf("%s: %s: %v", what, steps[len(steps)-1], err)
			}
		}
	}
	if d.next()%4 == 0 {
		b.Abort()
		if err := b.Commit(ctx); !errors.Is(err, possum.ErrBatchDone) {
			t.Fatalf("%s %v: Commit after Abort = %v, want ErrBatchDone", what, steps, err)
		}
		return fmt.Sprintf(" %v aborted", steps)
	}
	if err := b.Commit(ctx); !sameErr(err, want) {
		t.Fatalf("%s %v: Commit = %v, want %v", what, steps, err, want)
	}
	if want != nil {
		return fmt.Sprintf(" %v failed: %v", steps, want)
	}
	clear(model)
	maps.Copy(model, next)
	return fmt.Sprintf(" %v committed", steps)
}

// Size classes of opDecoder.value, with the byte that picks the size.
const (
	sizeEmpty  = 0 // 0 bytes
	sizeTiny   = 1 // s%16 bytes
	sizeSmall  = 3 // 16 + 37s bytes
	sizeMedium = 4 // 4096 + 200s bytes
	sizeEdge   = 5 // LargeValue-3 + s%6 bytes: both sides of the boundary
	sizeLarge  = 6 // LargeValue + 397s bytes
	sizeHuge   = 7 // 200 KiB - s bytes
)

// seedEnc writes fuzz inputs that opDecoder reads back as the named
// operations, for readable seeds.
type seedEnc []byte

func keyIndex(k string) byte {
	i := slices.Index(fuzzKeys, k)
	if i < 0 {
		panic("not in fuzzKeys: " + k)
	}
	return byte(i)
}

func prefixIndex(p string) byte {
	i := slices.Index(fuzzPrefixes, p)
	if i < 0 {
		panic("not in fuzzPrefixes: " + p)
	}
	return byte(i)
}

func (e seedEnc) put(k string, class, s byte) seedEnc {
	return append(e, 0, keyIndex(k), class, s)
}
func (e seedEnc) del(k string) seedEnc { return append(e, 2, keyIndex(k)) }
func (e seedEnc) rename(from, to string) seedEnc {
	return append(e, 3, keyIndex(from), keyIndex(to))
}
func (e seedEnc) move(from, to string) seedEnc {
	return append(e, 4, prefixIndex(from), prefixIndex(to))
}
func (e seedEnc) delPrefix(p string) seedEnc { return append(e, 5, prefixIndex(p)) }
func (e seedEnc) get(k string) seedEnc       { return append(e, 7, keyIndex(k)) }
func (e seedEnc) list(p string) seedEnc      { return append(e, 8, prefixIndex(p)) }
func (e seedEnc) trim() seedEnc              { return append(e, 9) }

// batch takes 1 to 3 steps written with batchPut, batchDel and batchRename.
func (e seedEnc) batch(commit bool, steps ...[]byte) seedEnc {
	e = append(e, 6, byte(len(steps)-1))
	for _, st := range steps {
		e = append(e, st...)
	}
	if commit {
		return append(e, 1)
	}
	return append(e, 0)
}
func batchPut(k string, class, s byte) []byte { return []byte{0, keyIndex(k), class, s} }
func batchDel(k string) []byte                { return []byte{1, keyIndex(k)} }
func batchRename(from, to string) []byte      { return []byte{2, keyIndex(from), keyIndex(to)} }
func batchTrim() []byte                       { return []byte{3} }

func fuzzSeeds() [][]byte {
	var e seedEnc
	return [][]byte{
		{},
		e.put("a", sizeTiny, 5).get("a").list(""),
		// A large value: read, deleted, deleted again.
		e.put("ab", sizeHuge, 0).get("ab").del("ab").get("ab").del("ab").list(""),
		// Both sides of the packed/aligned boundary, renamed.
		e.put("ab\x00", sizeEdge, 2).put("a\xff", sizeEdge, 3).rename("ab\x00", "b\x00c").
			get("ab\x00").get("b\x00c").rename("a\xff", "a\xff").rename("ab\x00", "a").
			rename("\xff", "\xff").list(""),
		// Packed and aligned values interleaved in one file, the large
		// ones replaced and deleted (their regions punched).
		e.put("a", sizeSmall, 9).put("ab", sizeLarge, 7).put("ab\x00", sizeTiny, 3).
			put("a\xff", sizeMedium, 40).put("ab", sizeLarge, 100).del("a\xff").
			put("\xff", sizeHuge, 77).get("a").get("ab").get("ab\x00").get("\xff").list("a"),
		// Rename onto an existing large value.
		e.put("a", sizeHuge, 1).put("b\x00c", sizeLarge, 2).rename("b\x00c", "a").get("a").
			get("b\x00c").list(""),
		// Moves between prefixes, then deletes by prefix.
		e.put("a", sizeTiny, 1).put("ab", sizeTiny, 2).put("a\xff", sizeSmall, 3).put("b\x00c", sizeTiny, 4).
			move("a", "b").list("").list("b").delPrefix("b").list("").delPrefix("").list(""),
		// Overlapping moves: into a longer prefix and back.
		e.put("a", sizeTiny, 1).put("ab", sizeEdge, 2).put("ab\x00", sizeTiny, 3).put("a\xff", sizeTiny, 4).
			move("a", "ab").list("").move("ab", "a").list("").move("", "ab").list("").move("ab", "").list(""),
		// 0xFF prefixes, whose ranges have no upper bound.
		e.put("\xff", sizeTiny, 1).put("\xff\xff\x01", sizeTiny, 2).put("a\xff", sizeTiny, 3).
			list("\xff").list("\xff\xff").move("\xff", "\x00").list("").delPrefix("\xff").
			move("\x00", "\xff\xff").list("\xff").delPrefix("\xff\xff").list(""),
		// A batch: put, rename what it put, delete; committed.
		e.put("a", sizeSmall, 1).batch(true, batchPut("ab", sizeLarge, 2), batchRename("ab", "b\x00c"),
			batchDel("a")).list("").get("b\x00c"),
		// A batch whose rename source is missing fails whole.
		e.put("a", sizeSmall, 1).batch(true, batchPut("ab", sizeLarge, 2), batchDel("a"),
			batchRename("\xff", "a")).list("").get("a"),
		// Batch deletes of missing keys are fine.
		e.batch(true, batchDel("a"), batchDel("a"), batchPut("a", sizeTiny, 1)).get("a"),
		// An aborted batch gives its bytes back; later puts reuse the file.
		e.put("a", sizeTiny, 1).batch(false, batchPut("ab", sizeHuge, 2), batchPut("a", sizeLarge, 3)).
			put("ab\x00", sizeLarge, 4).put("a\xff", sizeSmall, 5).get("a").get("ab").get("ab\x00").list(""),
		// Two batches in a row, each putting and renaming the same key.
		e.batch(true, batchPut("a", sizeEdge, 5), batchRename("a", "ab"), batchPut("a", sizeEdge, 0)).
			batch(true, batchRename("ab", "a"), batchPut("ab", sizeEmpty, 0)).list(""),
		// A move to the empty prefix, where a key equals the source
		// prefix (refused: it would make the empty key), and where none does.
		e.put("a", sizeTiny, 1).put("ab", sizeTiny, 2).move("a", "").list("").
			move("ab", "").list("").move("", "ab").list(""),
		// Reclaiming: dead values at the tail of a file, then a large
		// value aligned past them; a small one deleted between live ones.
		e.put("a", sizeHuge, 3).put("a", sizeTiny, 8).del("a").trim().put("ab", sizeHuge, 0).trim().
			put("b\x00c", sizeSmall, 1).put("\xff", sizeSmall, 2).put("ab\x00", sizeSmall, 3).del("\xff").trim().
			get("ab").get("b\x00c").get("ab\x00").list(""),
		// Reclaiming while a batch holds the tail of the file: the small
		// value dead in the tail's partial block keeps its row until the
		// batch's large value is placed after it.
		e.put("a", sizeTiny, 8).batch(true, batchPut("ab", sizeLarge, 0), batchTrim()).del("a").
			batch(true, batchPut("ab\x00", sizeLarge, 1), batchTrim(), batchTrim()).trim().list(""),
		e.put("a", sizeTiny, 8).batch(true, batchPut("ab", sizeLarge, 0), batchDel("a"), batchTrim()).trim().list(""),
		e.put("a", sizeTiny, 8).del("a").batch(true, batchTrim(), batchPut("ab", sizeLarge, 0)).trim().list(""),
		// Empty values, which own no file space.
		e.put("a", sizeEmpty, 0).put("ab", sizeEmpty, 0).rename("a", "ab").move("ab", "b").
			list("b").list("").delPrefix("b"),
	}
}
