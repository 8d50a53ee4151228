//go:build unix

package values

import "syscall"

// NoFollow makes every open of a file inside the cache refuse a symlink, so
// that a link planted in the directory cannot redirect possum's writes.
const NoFollow = syscall.O_NOFOLLOW

// Lock types for LockRange.
const (
	ReadLock  = syscall.F_RDLCK
	WriteLock = syscall.F_WRLCK
	Unlock    = syscall.F_UNLCK
)
