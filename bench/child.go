package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/seed475afdc4/possum/bench/stores"
)

// The mixed-proc workload runs the mixed workload in several OS processes
// sharing one store directory. The parent re-executes itself with -child;
// the protocol, one line each way at a time:
//
//	parent -> child stdin:  childSpec as JSON
//	child  -> stdout:       "ready" once the store is open (or a childResult
//	                        with Err if it could not open it)
//	parent -> child stdin:  "go" once every child is ready
//	child  -> stdout:       childResult as JSON, after running and closing
//
// Children's stderr goes to the parent's stderr, so their error details show.

// childProcs is how many processes share the store in mixed-proc.
const childProcs = 4

type childSpec struct {
	Store     string
	Dir       string
	Capacity  int64
	MaxValue  int
	ValueSize int
	Keys      int
	PoolSize  int // len of the random pool (the parent's maxValue+poolSlack)
	Duration  time.Duration
	Index     int
}

type childResult struct {
	Ops        int64
	Errors     int64
	Seconds    float64 // sum of call durations (one goroutine)
	Hist       string  // HDR histogram, V2 compressed, base64
	WriteBytes int64   // write_bytes delta of the child over its run, -1 unknown
	Err        string  // the child could not run
}

// childMain is the -child mode: read a spec, open the store, run, report.
func childMain() int {
	in := bufio.NewReader(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	line, err := in.ReadBytes('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: reading spec:", err)
		return 2
	}
	var spec childSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad spec:", err)
		return 2
	}
	res := runChild(context.Background(), spec, in)
	out.Encode(res)
	return 0
}

func runChild(ctx context.Context, spec childSpec, in *bufio.Reader) childResult {
	prefix := fmt.Sprintf("%s mixed-proc %dB child %d (pid %d)", spec.Store, spec.ValueSize, spec.Index, os.Getpid())
	kind, err := kindByName(spec.Store)
	if err != nil {
		return childResult{Err: err.Error(), WriteBytes: -1}
	}
	st, err := kind.Open(ctx, stores.Config{Dir: spec.Dir, Capacity: spec.Capacity, MaxValue: spec.MaxValue})
	if err != nil {
		return childResult{Err: "open: " + err.Error(), WriteBytes: -1}
	}
	fmt.Fprintln(os.Stdout, "ready")
	if l, err := in.ReadString('\n'); err != nil || strings.TrimSpace(l) != "go" {
		st.Close()
		return childResult{Err: fmt.Sprintf("waiting for go: %q %v", l, err), WriteBytes: -1}
	}
	// The same pool as the parent's: same seed, same length.
	codec := newCodec(newPool(spec.PoolSize-poolSlack), spec.ValueSize)
	errs := &errLog{logf: stderrf, prefix: prefix}
	// Versions of different children differ in their high bits (any version
	// is valid; this only keeps them apart).
	versions.Store(uint64(spec.Index+1) << 48)
	u := until{ctx, time.Now().Add(spec.Duration)}
	o := runWorkers(ctx, st, codec, errs, 100+uint64(spec.Index), 1, func(w *worker, _ int) {
		mixedLoop(w, spec.Keys, u)
	})
	if err := st.Close(); err != nil {
		o.errors++
		errs.report("close: %v", err)
	}
	enc, err := o.hist.EncodeV2()
	if err != nil {
		return childResult{Err: "encoding histogram: " + err.Error(), WriteBytes: -1}
	}
	return childResult{
		Ops: o.ops, Errors: o.errors, Seconds: o.seconds,
		Hist:       string(enc),
		WriteBytes: o.writeBytes,
	}
}

func stderrf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// child is a running child process, from the parent's side.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	ready bool
	res   childResult
}

// cellMixedProc runs mixed in childProcs processes on a store the parent has
// loaded (and keeps open: memcached's server lives in the parent's handle,
// and the others are multi-process by definition) and merges their results.
func cellMixedProc(ctx context.Context, st stores.Store, spec childSpec, logf func(string, ...any)) *cellOutcome {
	exe, err := os.Executable()
	o := &cellOutcome{hist: newHist(), writeBytes: -1}
	if err != nil {
		o.errors++
		logf("ERROR mixed-proc: %v", err)
		return o
	}
	parentIO := startIO(st)
	children := make([]*child, childProcs)
	var started []*child
	fail := func(c *child, format string, args ...any) {
		c.res.Err = fmt.Sprintf(format, args...)
	}
	for i := range children {
		c := &child{}
		children[i] = c
		s := spec
		s.Index = i
		c.cmd = exec.CommandContext(ctx, exe, "-child")
		c.cmd.Stderr = os.Stderr
		c.cmd.WaitDelay = 5 * time.Second
		stdin, err1 := c.cmd.StdinPipe()
		stdout, err2 := c.cmd.StdoutPipe()
		if err := errors.Join(err1, err2); err != nil {
			fail(c, "pipes: %v", err)
			continue
		}
		c.stdin, c.out = stdin, bufio.NewReader(stdout)
		if err := c.cmd.Start(); err != nil {
			fail(c, "start: %v", err)
			continue
		}
		started = append(started, c)
		b, _ := json.Marshal(s)
		if _, err := c.stdin.Write(append(b, '\n')); err != nil {
			fail(c, "writing spec: %v", err)
		}
	}
	// A child that hangs is killed after the run should have ended.
	timer := time.AfterFunc(spec.Duration+2*time.Minute, func() {
		for _, c := range started {
			c.cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	readResult := func(c *child, line string) {
		if err := json.Unmarshal([]byte(line), &c.res); err != nil {
			fail(c, "bad result %q: %v", line, err)
		}
	}
	var wg sync.WaitGroup
	for _, c := range started {
		wg.Go(func() {
			line, err := c.out.ReadString('\n')
			switch {
			case err != nil:
				fail(c, "waiting for ready: %v", err)
			case strings.TrimSpace(line) == "ready":
				c.ready = true
			default:
				readResult(c, line)
			}
		})
	}
	wg.Wait()
	for _, c := range started {
		if c.ready {
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				fail(c, "writing go: %v", err)
				c.ready = false
			}
		}
	}
	for _, c := range started {
		wg.Go(func() {
			if c.ready {
				line, err := c.out.ReadString('\n')
				if err != nil {
					fail(c, "waiting for the result: %v", err)
				} else {
					readResult(c, line)
				}
			}
			c.stdin.Close()
			if err := c.cmd.Wait(); err != nil && c.res.Err == "" {
				fail(c, "child: %v", err)
			}
		})
	}
	wg.Wait()
	wb := parentIO.delta()
	for i, c := range children {
		if c.res.Err != "" {
			o.errors++
			logf("ERROR %s mixed-proc %dB child %d: %s", spec.Store, spec.ValueSize, i, c.res.Err)
			wb = -1
			continue
		}
		o.ops += c.res.Ops
		o.errors += c.res.Errors
		o.seconds = max(o.seconds, c.res.Seconds)
		if c.res.WriteBytes < 0 {
			wb = -1
		} else if wb >= 0 {
			wb += c.res.WriteBytes
		}
		if h, err := decodeHist(c.res.Hist); err != nil {
			o.errors++
			logf("ERROR %s mixed-proc child %d: histogram: %v", spec.Store, i, err)
		} else {
			o.hist.Merge(h)
		}
	}
	o.writeBytes = wb
	return o
}

func decodeHist(s string) (*hdrhistogram.Histogram, error) {
	return hdrhistogram.Decode([]byte(s))
}
