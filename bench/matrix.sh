#!/usr/bin/env bash
# The filesystem matrix: possum (and the raw baseline) on ext4, xfs, btrfs
# and tmpfs, plus the root package's per-filesystem cost benchmarks
# (BenchmarkFS*) on each. Needs root to mount. Writes into bench/out/:
#
#   <fs>.json          the runner: go run -C bench . -label <fs> -dir <mnt> -stores raw,possum
#   gobench-<fs>.txt   TMPDIR=<mnt> GOTMPDIR=<mnt> go test -run '^$' -bench BenchmarkFS .
#
#   sudo bench/matrix.sh [-quick] [ext4 xfs btrfs tmpfs]
#
# ext4 is a directory on the root filesystem when that is ext4, else a
# loop-mounted ext4 image; xfs (mkfs.xfs -m reflink=1) and btrfs are
# loop-mounted images; tmpfs is a tmpfs. A filesystem whose tools are missing
# is skipped with a message. Everything mounted is unmounted, loop devices
# detached and images removed, even when interrupted. bench/run.sh runs this
# as its third step when it runs as root; then `go run -C bench . -report`
# puts the results into RESULTS.md.
#
# Environment:
#   MATRIX_SIZE          size of the images and the tmpfs (default 8G; sparse)
#   MATRIX_WORK          where the images and the ext4 directory go (default /var/tmp)
#   MATRIX_RUNNER_FLAGS  runner flags (default: -goroutines 1,8 -duration 500ms;
#                        -quick: -goroutines 1 -workloads put,get-hot,capacity)
#   MATRIX_BENCH_FLAGS   go test flags for BenchmarkFS* (default -benchtime=300ms;
#                        -quick: -benchtime=5x), e.g. "-benchtime=1s -count=3"
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

quick=""
fss=()
for a in "$@"; do
	case $a in
	-quick | --quick) quick=-quick ;;
	ext4 | xfs | btrfs | tmpfs) fss+=("$a") ;;
	*)
		echo "usage: bench/matrix.sh [-quick] [ext4 xfs btrfs tmpfs]" >&2
		exit 2
		;;
	esac
done
[ ${#fss[@]} -gt 0 ] || fss=(ext4 xfs btrfs tmpfs)

if [ "$(id -u)" != 0 ]; then
	echo "matrix.sh: needs root to mount filesystems: sudo bench/matrix.sh $quick" >&2
	exit 1
fi
if ! command -v go >/dev/null 2>&1; then
	echo "matrix.sh: go is not in root's PATH (sudo env PATH=\"\$PATH\" bench/matrix.sh)" >&2
	exit 1
fi

size=${MATRIX_SIZE:-8G}
if [ -n "$quick" ]; then
	runnerflags=${MATRIX_RUNNER_FLAGS:--goroutines 1 -workloads put,get-hot,capacity}
	benchflags=(-benchtime=5x)
else
	runnerflags=${MATRIX_RUNNER_FLAGS:--goroutines 1,8 -duration 500ms}
	benchflags=(-benchtime=300ms)
fi
if [ -n "${MATRIX_BENCH_FLAGS:-}" ]; then
	read -r -a benchflags <<<"$MATRIX_BENCH_FLAGS"
fi

start=$SECONDS
say() { printf '== [%3ds] matrix: %s\n' $((SECONDS - start)) "$*"; }

# Results are chowned to whoever owns bench/out (or bench), so that a later
# run as that user can replace them.
[ -d bench/out ] && owner_ref=bench/out || owner_ref=bench
mkdir -p bench/out

work=$(mktemp -d "${MATRIX_WORK:-/var/tmp}/possum-matrix.XXXXXX")
mounts=() # mounted directories, unmounted in reverse order
loops=()  # loop devices to detach
release() {
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || echo "matrix.sh: could not unmount ${mounts[i]}" >&2
	done
	for l in "${loops[@]}"; do
		losetup -d "$l" 2>/dev/null || true
	done
	mounts=()
	loops=()
	rm -f "$work"/*.img
}
cleanup() {
	set +e
	release
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# loop_mount fs mkfs-command... : makes an image, formats it, mounts it on
# $mnt. (set -e does not apply in a function called from a condition: every
# step is checked.)
loop_mount() {
	local fs=$1 img="$work/$1.img" dev
	shift
	truncate -s "$size" "$img" || return 1
	"$@" "$img" >/dev/null || { echo "matrix.sh: $* failed; $fs skipped" >&2; return 1; }
	dev=$(losetup --find --show "$img") || { echo "matrix.sh: losetup failed; $fs skipped" >&2; return 1; }
	loops+=("$dev")
	mount "$dev" "$mnt" || { echo "matrix.sh: mounting $fs failed; skipped" >&2; return 1; }
	mounts+=("$mnt")
}

# setup fs: mounts (or makes) the directory $mnt for fs; returns 1 to skip.
setup() {
	local fs=$1
	mnt="$work/mnt-$fs"
	mkdir -p "$mnt" || return 1
	case $fs in
	ext4)
		if [ "$(stat -f -c %T "$mnt")" = "ext2/ext3" ]; then
			return 0 # a directory on an ext4 (statfs says ext2/ext3) filesystem
		fi
		if ! command -v mkfs.ext4 >/dev/null 2>&1; then
			echo "matrix.sh: $work is not on ext4 and mkfs.ext4 is missing (apt-get install -y e2fsprogs); ext4 skipped" >&2
			return 1
		fi
		loop_mount ext4 mkfs.ext4 -q -F || return 1
		;;
	xfs)
		if ! command -v mkfs.xfs >/dev/null 2>&1; then
			echo "matrix.sh: mkfs.xfs is missing (apt-get install -y xfsprogs); xfs skipped" >&2
			return 1
		fi
		loop_mount xfs mkfs.xfs -q -f -m reflink=1 || return 1
		;;
	btrfs)
		if ! command -v mkfs.btrfs >/dev/null 2>&1; then
			echo "matrix.sh: mkfs.btrfs is missing (apt-get install -y btrfs-progs); btrfs skipped" >&2
			return 1
		fi
		loop_mount btrfs mkfs.btrfs -q -f || return 1
		;;
	tmpfs)
		mount -t tmpfs -o "size=$size" tmpfs "$mnt" || { echo "matrix.sh: mounting tmpfs failed; skipped" >&2; return 1; }
		mounts+=("$mnt")
		;;
	esac
}

say "building the runner and the root test binary in $work"
go build -C bench -o "$work/possum-bench" .
go test -c -o "$work/possum.test" .
fsbench=$("$work/possum.test" -test.list 'BenchmarkFS.*' | grep '^BenchmarkFS' || true)
if [ -z "$fsbench" ]; then
	echo "matrix.sh: the root package has no BenchmarkFS* benchmarks (go test -list 'BenchmarkFS.*' .); the cost benchmarks are skipped" >&2
fi

failed=()
written=()
for fs in "${fss[@]}"; do
	if ! setup "$fs"; then
		release
		continue
	fi
	say "$fs on $mnt ($(stat -f -c %T "$mnt"), block size $(stat -f -c %S "$mnt"))"

	# shellcheck disable=SC2086 # $quick and $runnerflags are lists of flags
	if (cd bench && "$work/possum-bench" -label "$fs" -dir "$mnt" -stores raw,possum $quick $runnerflags); then
		written+=("bench/out/$fs.json")
	else
		echo "matrix.sh: the runner failed on $fs" >&2
		failed+=("$fs runner")
	fi

	if [ -n "$fsbench" ]; then
		say "$fs: go test -bench BenchmarkFS ${benchflags[*]}"
		out="bench/out/gobench-$fs.txt"
		{
			echo "# command: TMPDIR=<mnt> GOTMPDIR=<mnt> go test -run '^\$' -bench 'BenchmarkFS' -v ${benchflags[*]} ."
			echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
			echo "# filesystem: $fs ($(stat -f -c %T "$mnt"), block size $(stat -f -c %S "$mnt")) on <mnt> = $mnt, POSSUM_TEST_FS=$fs"
		} >"$out"
		# The test binary runs in the package directory, as go test does.
		if ! (cd "$repo" && TMPDIR="$mnt" GOTMPDIR="$mnt" POSSUM_TEST_FS="$fs" \
			"$work/possum.test" -test.run '^$' -test.bench 'BenchmarkFS' -test.v "${benchflags[@]/#-/-test.}" >>"$out" 2>&1); then
			echo "matrix.sh: BenchmarkFS* failed on $fs; see $out" >&2
			failed+=("$fs BenchmarkFS")
		fi
		written+=("$out")
	fi
	rm -rf "${mnt:?}"/* 2>/dev/null || true
	release
done

if [ ${#written[@]} -gt 0 ]; then
	chown --reference="$owner_ref" bench/out "${written[@]}" 2>/dev/null || true
fi
say "done: ${written[*]:-nothing written}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "matrix.sh: failed: ${failed[*]}" >&2
	exit 1
fi
