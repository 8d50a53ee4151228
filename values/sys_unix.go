//go:build unix

package values

import "syscall"

// noFollow makes every open of a file inside the cache refuse a symlink, so
// that a link planted in the directory cannot redirect possum's writes.
const noFollow = syscall.O_NOFOLLOW

// Lock types for lockRange.
const (
	fRdlck = syscall.F_RDLCK
	fWrlck = syscall.F_WRLCK
	fUnlck = syscall.F_UNLCK
)
