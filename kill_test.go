package possum_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/seed475afdc4/possum"
)

// endless yields bytes forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0x5a
	}
	return len(p), nil
}

func childSlowPut(t *testing.T) {
	c, err := possum.Open(os.Getenv("POSSUM_DIR"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Put(ctx, "endless", endless{}) // until killed, or over capacity
	t.Fatal("the endless put returned")
}

// TestKillMidPut kills a process in the middle of streaming a large value:
// the next Open cuts the uncommitted bytes off, and the cache is as before.
func TestKillMidPut(t *testing.T) {
	dir := t.TempDir()
	c, err := possum.Open(dir, &possum.Options{Capacity: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	c.PutBytes(ctx, "before", randBytes(300_000, 1))
	c.Close()
	cmd := childCmd(t, "slow-put", "POSSUM_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for valueFilesAllocated(t, dir) < 32<<20 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child wrote too little:\n%s", cmd.Stdout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	t.Logf("killed with %d bytes in value files", valueFilesAllocated(t, dir))
	checkRecovered(t, dir)
}

// churn does random puts, replaces, deletes and batches of large values
// (whose footprints are exact, so the accounting can be checked to the
// block) under capacity pressure, until killed.
func childChurn(t *testing.T) {
	c, err := possum.Open(os.Getenv("POSSUM_DIR"), nil)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := strconv.ParseUint(os.Getenv("POSSUM_SEED"), 10, 64)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; ; i++ {
		key := "k" + strconv.Itoa(r.IntN(200))
		size := 64<<10 + r.IntN(400<<10)
		switch r.IntN(10) {
		case 0, 1:
			c.Delete(ctx, key)
		case 2:
			b := c.NewBatch()
			for j := range 5 {
				b.PutBytes(ctx, key+"/"+strconv.Itoa(j), randBytes(size/4+64<<10, uint64(i)))
			}
			if r.IntN(3) == 0 {
				b.Abort()
			} else {
				b.Commit(ctx)
			}
		case 3:
			c.Trim(ctx)
		default:
			if err := c.PutBytes(ctx, key, randBytes(size, uint64(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestKillMidCommitAndReclaim kills processes that churn under capacity
// pressure at random instants (mid-put, mid-commit, mid-eviction,
// mid-reclaim), two at a time, several times over. After each round the
// cache must be whole: Verify finds nothing, the dead extents are all given
// back, and the disk holds what the manifest accounts for.
func TestKillMidCommitAndReclaim(t *testing.T) {
	dir := t.TempDir()
	c, err := possum.Open(dir, &possum.Options{Capacity: 24 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	if n, err := strconv.Atoi(os.Getenv("POSSUM_KILL_ROUNDS")); err == nil && n > 0 {
		rounds = n // the soak: see docs/RELIABILITY.md
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for round := range rounds {
		var cmds []*exec.Cmd
		for w := range 2 {
			cmd := childCmd(t, "churn", "POSSUM_DIR="+dir, "POSSUM_SEED="+strconv.Itoa(round*10+w))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		time.Sleep(time.Duration(300+r.IntN(700)) * time.Millisecond)
		for _, cmd := range cmds {
			cmd.Process.Signal(syscall.SIGKILL)
		}
		for _, cmd := range cmds {
			if err := cmd.Wait(); !isKilled(err) {
				t.Fatalf("a churning child ended by itself: %v\n%s", err, cmd.Stdout)
			}
		}
		checkRecovered(t, dir)
	}
	t.Logf("%d rounds of two processes killed at random instants, recovered each time", rounds)
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// checkRecovered opens dir after a crash and checks that it is whole once
// Trim has run: Verify is clean, no dead extent is left, the sums equal the
// rows, and what the value files hold on disk is what the live values
// account for (a few blocks of slack per file) and what Stats reports.
func checkRecovered(t *testing.T, dir string) {
	t.Helper()
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Verify(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("after recovery: %v", p)
	}
	st := c.Stats()
	if st.DeadExtents != 0 {
		t.Errorf("%d dead extents left after Trim", st.DeadExtents)
	}
	onDisk := valueFilesAllocated(t, dir)
	ents, _ := os.ReadDir(filepath.Join(dir, "values"))
	slack := int64(len(ents)) * 3 * 4096
	if onDisk > st.LiveBlocks+st.Overhead+slack || onDisk < st.LiveBlocks-slack {
		t.Errorf("value files hold %d bytes; live values account for %d (+%d overhead, %d files)",
			onDisk, st.LiveBlocks, st.Overhead, len(ents))
	}
	if du := allocated(t, dir) - dirBlocks(t, dir) - dirBlocks(t, filepath.Join(dir, "values")); du != st.DiskBytes {
		t.Errorf("du says %d bytes, Stats.DiskBytes %d", du, st.DiskBytes)
	}
	t.Logf("recovered: %d entries, %d live bytes in %d files; %d on disk", st.Entries, st.LiveBlocks, len(ents), onDisk)
}
