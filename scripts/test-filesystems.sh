#!/usr/bin/env bash
# Runs possum's tests with their temporary directories on each filesystem
# possum supports: xfs (reflink) and btrfs on loop-mounted images, and tmpfs.
# ext4 (or whatever / is) is covered by the plain `go test ./...` run.
# Needs root (mount) and mkfs.xfs / mkfs.btrfs; unmounts everything it
# mounted, even when interrupted.
#
#   sudo scripts/test-filesystems.sh [xfs btrfs tmpfs] [-- go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

fss=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do fss+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#fss[@]} -gt 0 ] || fss=(xfs btrfs tmpfs)
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-count=1 ./...)

if [ "$(id -u)" != 0 ]; then
	echo "test-filesystems: needs root to mount; skipped" >&2
	exit 0
fi

work=$(mktemp -d /tmp/possum-fs.XXXXXX)
mounts=()
cleanup() {
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

mount_fs() { # fs mountpoint
	local fs=$1 mnt=$2 img="$work/$1.img"
	mkdir -p "$mnt"
	case $fs in
	xfs) truncate -s 2G "$img"; mkfs.xfs -q -m reflink=1 "$img"; mount -o loop "$img" "$mnt" ;;
	btrfs) truncate -s 2G "$img"; mkfs.btrfs -q "$img"; mount -o loop "$img" "$mnt" ;;
	tmpfs) mount -t tmpfs -o size=2g tmpfs "$mnt" ;;
	*) echo "unknown filesystem $fs" >&2; return 1 ;;
	esac
	mounts+=("$mnt")
}

for fs in "${fss[@]}"; do
	mnt="$work/mnt-$fs"
	mount_fs "$fs" "$mnt"
	echo "== go test on $fs ($(stat -f -c %T "$mnt"), block size $(stat -f -c %S "$mnt"))"
	# Test directories on the filesystem under test. t.TempDir follows
	# GOTMPDIR when it is set, so it must point there too.
	TMPDIR="$mnt" GOTMPDIR="$mnt" POSSUM_TEST_FS="$fs" go test "${flags[@]}"
	umount "$mnt"
	mounts=("${mounts[@]/$mnt}")
done
