// Command possum reads and writes a possum cache directory from the shell.
//
// Run "possum help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// main runs possum and maps the outcome to an exit status (see exitStatus).
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx, so that the command stops cleanly; it
	// may be blocked reading standard input, and then a second signal
	// kills it, as if possum did not catch signals.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}
