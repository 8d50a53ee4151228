package possum_test

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFilesystemUnderTest makes sure the filesystem matrix tests what it
// says: with POSSUM_TEST_FS set (scripts/test-filesystems.sh), the tests'
// temporary directories must be on that filesystem.
func TestFilesystemUnderTest(t *testing.T) {
	want := os.Getenv("POSSUM_TEST_FS")
	magic := map[string]int64{"xfs": unix.XFS_SUPER_MAGIC, "btrfs": unix.BTRFS_SUPER_MAGIC,
		"tmpfs": unix.TMPFS_MAGIC, "ext4": unix.EXT4_SUPER_MAGIC}
	var st unix.Statfs_t
	if err := unix.Statfs(t.TempDir(), &st); err != nil {
		t.Fatal(err)
	}
	if want == "" {
		t.Logf("filesystem type %#x", st.Type)
		return
	}
	if int64(st.Type) != magic[want] {
		t.Fatalf("POSSUM_TEST_FS=%s, but t.TempDir() is on a filesystem of type %#x", want, st.Type)
	}
}
