//go:build linux

package possum_test

// Filesystem cost benchmarks (BenchmarkFS*): the operations whose cost
// depends on the filesystem, and the raw primitives under them. A script
// runs them on loop-mounted ext4, xfs, btrfs and tmpfs by pointing TMPDIR
// and GOTMPDIR at the mount (b.TempDir follows TMPDIR); each logs the
// filesystem it ran on. Which path possum took is reported from its Stats
// counters (clones/op, locks/op, clone-bytes/op, copy-bytes/op).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/seed475afdc4/possum"
	"github.com/seed475afdc4/possum/values"
	"golang.org/x/sys/unix"
)

// benchFSName names the filesystem dir is on.
func benchFSName(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	switch int64(st.Type) {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4" // also ext2 and ext3: one magic
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("type %#x", st.Type)
}

// benchFSDir returns a temporary directory and logs its filesystem.
func benchFSDir(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	b.Logf("filesystem: %s (%s)", benchFSName(dir), dir)
	return dir
}

// benchFSCache opens a cache in a benchFSDir.
func benchFSCache(b *testing.B) *possum.Cache {
	b.Helper()
	c, err := possum.Open(filepath.Join(benchFSDir(b), "cache"), &possum.Options{Capacity: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// unsupported reports whether err means the filesystem cannot do it.
func unsupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EOPNOTSUPP) ||
		errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.ENOTTY)
}

// benchFSFile writes a file of the first size bytes of benchData(size) in
// dir and syncs it, as a value's bytes are on disk by the time they are
// cloned or punched.
func benchFSFile(b *testing.B, dir string, size int) (*os.File, string) {
	b.Helper()
	path := filepath.Join(dir, "src")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if _, err := f.Write(benchData(size)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return f, path
}

// BenchmarkFSOpen1MiB opens and closes a 1 MiB value: a clone into an
// anonymous file on xfs and btrfs, a shared range lock on ext4 and tmpfs
// (clones/op, locks/op say which).
func BenchmarkFSOpen1MiB(b *testing.B) {
	benchOpenIn(b, benchFSCache(b), 1<<20)
}

// BenchmarkFSClone1MiB is the primitive under Open on xfs and btrfs: clone
// 1 MiB of a file (FICLONERANGE). "tmpfile" clones into a new anonymous
// file each time, as Open does (values.TempFile, values.CloneRange,
// Close); "same-dst" clones over the same range of one file
// (values.CloneAt). Skipped where the filesystem cannot clone.
func BenchmarkFSClone1MiB(b *testing.B) {
	const size = 1 << 20
	dir := b.TempDir()
	src, _ := benchFSFile(b, dir, size)
	b.Run("tmpfile", func(b *testing.B) {
		clone := func() error {
			dst, err := values.TempFile(dir)
			if err != nil {
				return err
			}
			defer dst.Close()
			return values.CloneRange(dst, src, 0, size)
		}
		if err := clone(); unsupported(err) {
			b.Skipf("no clone on %s: %v", benchFSName(dir), err)
		} else if err != nil {
			b.Fatal(err)
		}
		b.Logf("filesystem: %s", benchFSName(dir))
		for b.Loop() {
			if err := clone(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("same-dst", func(b *testing.B) {
		dst, err := os.Create(filepath.Join(dir, "dst"))
		if err != nil {
			b.Fatal(err)
		}
		defer dst.Close()
		if err := values.CloneAt(dst, 0, src, 0, size); unsupported(err) {
			b.Skipf("no clone on %s: %v", benchFSName(dir), err)
		} else if err != nil {
			b.Fatal(err)
		}
		b.Logf("filesystem: %s", benchFSName(dir))
		for b.Loop() {
			if err := values.CloneAt(dst, 0, src, 0, size); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFSPunch is the primitive under eviction and reclaim: punch a
// hole of 64 KiB or 1 MiB (values.Punch) in a file whose blocks are written
// and synced. The file is rewritten, untimed, 16 MiB at a time when every
// piece has been punched. Skipped where the filesystem cannot punch.
func BenchmarkFSPunch(b *testing.B) {
	for _, s := range []benchSize{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		b.Run(s.name, func(b *testing.B) {
			const total = 16 << 20
			dir := b.TempDir()
			f, _ := benchFSFile(b, dir, total)
			pieces := total / s.n
			if err := values.Punch(f, 0, int64(s.n)); unsupported(err) {
				b.Skipf("no punch on %s: %v", benchFSName(dir), err)
			} else if err != nil {
				b.Fatal(err)
			}
			b.Logf("filesystem: %s (%s)", benchFSName(dir), dir)
			next := 1
			b.SetBytes(int64(s.n))
			for b.Loop() {
				if next == pieces {
					b.StopTimer()
					if _, err := f.WriteAt(benchData(total), 0); err != nil {
						b.Fatal(err)
					}
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
					next = 0
					b.StartTimer()
				}
				if err := values.Punch(f, int64(next*s.n), int64(s.n)); err != nil {
					b.Fatal(err)
				}
				next++
			}
		})
	}
}

// BenchmarkFSReclaim deletes 64 values of 64 KiB (one DeletePrefix) and
// trims: MB/s-punched is the bytes punched per second (see benchReclaim).
func BenchmarkFSReclaim(b *testing.B) {
	benchReclaim(b, benchFSCache(b), 64, 64<<10)
}

// BenchmarkFSPut4KiB puts 4 KiB values over 1024 keys, from one goroutine.
func BenchmarkFSPut4KiB(b *testing.B) {
	c := benchFSCache(b)
	keys := benchKeys("k", 1024)
	v := benchData(4 << 10)
	b.SetBytes(int64(len(v)))
	i := 0
	for b.Loop() {
		if err := c.PutBytes(ctx, keys[i%len(keys)], v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFSGet4KiB reads hot 4 KiB values with GetAppend.
func BenchmarkFSGet4KiB(b *testing.B) {
	c := benchFSCache(b)
	keys := benchKeys("k", 256)
	fill(b, c, keys, benchData(4<<10))
	warm(b, c, keys)
	b.SetBytes(4 << 10)
	b.ReportAllocs()
	buf := make([]byte, 0, 4<<10)
	i := 0
	for b.Loop() {
		var err error
		if buf, err = c.GetAppend(ctx, buf[:0], keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFSPutFile64MiB stores a 64 MiB file with PutFile, replacing the
// previous copy: a reflink on xfs and btrfs (clone-bytes/op), a
// copy_file_range elsewhere (copy-bytes/op), then one read for the
// checksum either way.
func BenchmarkFSPutFile64MiB(b *testing.B) {
	const size = 64 << 20
	c := benchFSCache(b)
	_, path := benchFSFile(b, filepath.Dir(c.Dir()), size)
	b.SetBytes(size)
	before := c.Stats()
	for b.Loop() {
		if n, err := c.PutFile(ctx, "f", path); err != nil || n != size {
			b.Fatal(n, err)
		}
	}
	reportStats(b, c, before, b.N, "clone-bytes/op", "copy-bytes/op")
}
