package possum_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seed475afdc4/possum"
)

// A put of a large value from memory is staged: its transaction runs while
// its bytes are written, and commits once they are. These tests hold the
// write back, or fail it (SetStagedHook), to check what others see
// meanwhile.

func stagedValue(seed byte) []byte {
	v := make([]byte, 1<<20)
	for i := range v {
		v[i] = seed + byte(i/4096)
	}
	return v
}

// TestStagedPutPublishesOnlyWrittenBytes holds a staged put before its
// write: its row is inserted, the transaction waits for the write, gives up
// after StageWait, and is rolled back and run again without it; the put
// commits on its own once its bytes are in.
func TestStagedPutPublishesOnlyWrittenBytes(t *testing.T) {
	t.Parallel()
	const step = "write"
	dir := t.TempDir()
	var hold sync.Map // key/step -> chan struct{}: the step waits for it to close
	held := make(chan string, 1)
	c := openCache(t, dir, &possum.Options{Capacity: 1 << 30})
	possum.SetStagedHook(c, func(key, step string) error {
		if ch, ok := hold.Load(key + "/" + step); ok {
			held <- key
			<-ch.(chan struct{})
		}
		return nil
	})
	other := openCache(t, dir, nil) // another handle: what other processes see

	old, neu := stagedValue(1), stagedValue(2)
	if err := c.PutBytes(ctx, "k", old); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	hold.Store("k/"+step, release)
	done := make(chan error, 1)
	go func() { done <- c.PutBytes(ctx, "k", neu) }()
	<-held

	// The new value's bytes are not written: nobody sees it, and other
	// writers are not kept waiting by it (its transaction gives up after
	// StageWait and commits without it).
	putDone := make(chan error, 1)
	go func() { putDone <- c.PutBytes(ctx, "small", []byte("x")) }()
	select {
	case err := <-putDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a small put waited for a staged put's write")
	}
	time.Sleep(3 * possum.StageWait)
	for _, h := range []*possum.Cache{c, other} {
		got, err := h.Get(ctx, "k")
		if err != nil || !bytes.Equal(got, old) {
			t.Fatalf("while the new value is being written: got %d bytes (old value: %v), err %v", len(got), bytes.Equal(got, old), err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("staged put returned before its write ended: %v", err)
	default:
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, h := range []*possum.Cache{c, other} {
		got, err := h.Get(ctx, "k")
		if err != nil || !bytes.Equal(got, neu) {
			t.Fatalf("after the put: got %d bytes (new value: %v), err %v", len(got), bytes.Equal(got, neu), err)
		}
	}
}

func TestStagedPutFailedWriteKeepsOldValue(t *testing.T) {
	t.Parallel()
	c := openCache(t, "", nil)
	boom := errors.New("disk on fire")
	possum.SetStagedHook(c, func(key, step string) error {
		if key == "k" && step == "write" {
			return boom
		}
		return nil
	})
	old := stagedValue(1)
	if err := c.PutBytes(ctx, "j", old); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, "j", "k"); err != nil {
		t.Fatal(err)
	}
	// The failing put shares transactions with good ones.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "k"
			if i > 0 {
				key = fmt.Sprintf("good/%d", i)
			}
			errs[i] = c.PutBytes(ctx, key, stagedValue(byte(i)))
		}()
	}
	wg.Wait()
	if !errors.Is(errs[0], boom) {
		t.Fatalf("failed write: err %v, want %v", errs[0], boom)
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Fatalf("good/%d: %v", i+1, err)
		}
	}
	got, err := c.Get(ctx, "k")
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("after a failed put: got %d bytes (old value: %v), err %v", len(got), bytes.Equal(got, old), err)
	}
	for i := 1; i < len(errs); i++ {
		got, err := c.Get(ctx, fmt.Sprintf("good/%d", i))
		if err != nil || !bytes.Equal(got, stagedValue(byte(i))) {
			t.Fatalf("good/%d: got %d bytes, err %v", i, len(got), err)
		}
	}
}

func TestStagedPutsConcurrent(t *testing.T) {
	t.Parallel()
	c := openCache(t, "", &possum.Options{Capacity: 1 << 30})
	const goroutines, rounds = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// Each key is replaced every round; a small put now and
				// then shares the transactions.
				if err := c.PutBytes(ctx, fmt.Sprint("big/", g), stagedValue(byte(g*rounds+r))); err != nil {
					errs <- err
				}
				if err := c.PutBytes(ctx, fmt.Sprint("small/", g), []byte{byte(r)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := range goroutines {
		got, err := c.Get(ctx, fmt.Sprint("big/", g))
		if err != nil || !bytes.Equal(got, stagedValue(byte(g*rounds+rounds-1))) {
			t.Fatalf("big/%d: got %d bytes, err %v", g, len(got), err)
		}
	}
}

// TestPutDoesNotCacheReplacedLocation: a writer refreshes its cached
// location of a key it put only if no other commit touched the key's
// stripe between its commit and its bump after; here another handle
// replaces the key in that gap, and its Put returns before the first one's
// does. The first handle must then read the second's value, not cache its
// own, already replaced.
func TestPutDoesNotCacheReplacedLocation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := openCache(t, dir, nil)
	b := openCache(t, dir, nil)
	if err := a.PutBytes(ctx, "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "k"); err != nil { // a caches k
		t.Fatal(err)
	}
	var once sync.Once
	errs := make(chan error, 1)
	possum.SetCommittedHook(a, func(inserted []string) {
		for _, k := range inserted {
			if k == "k" {
				once.Do(func() { errs <- b.PutBytes(ctx, "k", []byte("v3")) })
			}
		}
	})
	if err := a.PutBytes(ctx, "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*possum.Cache{"writer": a, "other": b} {
		if got, err := h.Get(ctx, "k"); err != nil || string(got) != "v3" {
			t.Fatalf("%s reads %q, %v; want the later put's v3", name, got, err)
		}
	}
}

// TestStagedPutWriterCommits: a staged put whose write ends after its
// transaction is ready commits that transaction itself (the committer
// parks it), and its value, like those it shares the transaction with, is
// there for every handle once Put returns.
func TestStagedPutWriterCommits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	other := openCache(t, dir, nil)
	possum.SetStagedHook(c, func(key, step string) error {
		time.Sleep(possum.StageWait / 4) // the transaction is ready long before
		return nil
	})
	for i := range 20 {
		v := stagedValue(byte(i))
		if err := c.PutBytes(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
		for _, h := range []*possum.Cache{c, other} {
			if got, err := h.Get(ctx, "k"); err != nil || !bytes.Equal(got, v) {
				t.Fatalf("put %d: got %d bytes (the new value: %v), err %v", i, len(got), bytes.Equal(got, v), err)
			}
		}
	}
	// Not every time on a loaded machine, but surely once in 20.
	if n := possum.HandedOff(c); n == 0 {
		t.Fatal("no staged put committed its own transaction")
	}
}
