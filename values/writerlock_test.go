package values

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriterLockExcludesAndWakes(t *testing.T) {
	if !DescriptorLocks {
		t.Skip("no OFD locks here")
	}
	path := filepath.Join(t.TempDir(), "stripes")
	if err := os.WriteFile(path, make([]byte, StripesSize), 0o600); err != nil {
		t.Fatal(err)
	}
	// Two WriterLocks stand for two processes: OFD locks of different
	// descriptions exclude each other as those of different processes do.
	a, b := OpenWriterLock(path), OpenWriterLock(path)
	defer a.Close()
	defer b.Close()
	unlockA, err := a.Lock(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(context.Background(), 20*time.Millisecond); err == nil {
		t.Fatal("b locked while a held the lock")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Lock(ctx, time.Second); err == nil {
		t.Fatal("b locked with a cancelled context while a held the lock")
	}
	got := make(chan func(), 1)
	go func() {
		u, err := b.Lock(context.Background(), 10*time.Second)
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("b got the lock while a held it")
	case <-time.After(20 * time.Millisecond):
	}
	unlockA()
	unlockB := <-got // woken by a's unlock
	unlockB()
	// The waits given up on above must not keep the lock once they get it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, err := a.Lock(context.Background(), 100*time.Millisecond)
		if err == nil {
			u()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an abandoned wait kept the lock")
		}
	}
}
