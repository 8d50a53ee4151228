package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far the run is: a bar over all cells when stderr is a
// terminal, otherwise one line per cell. Errors go through logf so they do
// not garble the bar.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	bar   *progressbar.ProgressBar
	total int
	done  int
	last  time.Time // when the previous cell ended
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) start(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
	p.last = time.Now()
	if p.tty {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("cells"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
}

// cellDone counts a cell; line describes it.
func (p *progress) cellDone(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	now := time.Now()
	wall := now.Sub(p.last)
	p.last = now
	if p.bar != nil {
		p.bar.Describe(truncate(line, 60))
		p.bar.Add(1)
		return
	}
	fmt.Fprintf(p.w, "[%d/%d %.1fs] %s\n", p.done, p.total, wall.Seconds(), line)
}

// logf prints a line (an error) above the bar.
func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
