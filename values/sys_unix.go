//go:build unix

package values

import (
	"os"
	"syscall"
)

// NoFollow makes every open of a file inside the cache refuse a symlink, so
// that a link planted in the directory cannot redirect possum's writes.
const NoFollow = syscall.O_NOFOLLOW

// Lock types for LockRange.
const (
	ReadLock  = syscall.F_RDLCK
	WriteLock = syscall.F_WRLCK
	Unlock    = syscall.F_UNLCK
)

// Unlinked reports whether f's file has been removed from its directory
// (fstat says no links), so that keeping f open only holds its blocks.
func Unlinked(f *os.File) bool {
	var st syscall.Stat_t
	return syscall.Fstat(int(f.Fd()), &st) == nil && st.Nlink == 0
}
