// Package crashpoint lets crash tests kill a process at a named instant:
// with POSSUM_CRASH_AT=name in its environment, a process SIGKILLs itself
// the first time it reaches the point of that name. Without the variable a
// point costs one comparison of a string with the empty string.
//
// The points (see the calls to Hit):
//
//	put:written        a value's bytes are in its file, not yet committed
//	commit:committed   a transaction that changed keys committed, its stripes not yet bumped
//	reclaim:locked     a reclaimer holds a dead region's lock, not yet punched
//	reclaim:truncate   a dead tail's rows are deleted, the file not yet cut
//	migrate:before     the first Open is about to create the schema
//	migrate:after      the schema exists, the cache's other files do not yet
package crashpoint

import (
	"os"
	"syscall"
)

var target = os.Getenv("POSSUM_CRASH_AT")

// Hit kills the process if name is the point the environment names.
func Hit(name string) {
	if target != "" && target == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
