#!/usr/bin/env bash
# Reproduces bench/RESULTS.md and bench/charts/: the one command for all of
# possum's benchmark results. Run it from anywhere:
#
#   bench/run.sh          # the full run: about 17 minutes
#   bench/run.sh -quick   # a fast, noisy check of the whole pipeline (< 2 min)
#
# Steps, each writing into bench/out/:
#   1. the peer comparison on the default filesystem (the runner, `go run -C
#      bench . -label peers`) -> out/peers.json; it starts and stops memcached
#      itself when memcached is installed, and leaves it out when not;
#   2. possum's own Go benchmarks (bench_test.go in the repository root)
#      -> out/gobench-default.txt, whose first line is the command;
#   3. as root, the filesystem matrix (bench/matrix.sh: ext4, xfs, btrfs,
#      tmpfs) -> out/<fs>.json and out/gobench-<fs>.txt; skipped otherwise;
#   4. the report (`go run -C bench . -report`) -> RESULTS.md, charts/*.png.
# GOBENCH_FLAGS (default -benchtime=300ms; -quick: -benchtime=10x) sets step 2's
# -benchtime/-count; bench/matrix.sh has its own knobs (MATRIX_*).
# Results already in bench/out/ from earlier runs (say a matrix run in
# Docker) are reported too; the report shows each run's date.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=""
for a in "$@"; do
	case $a in
	-quick | --quick) quick=-quick ;;
	-h | -help | --help)
		sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "usage: bench/run.sh [-quick]" >&2
		exit 2
		;;
	esac
done

start=$SECONDS
step() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }
mkdir -p bench/out
stamp=$(mktemp /tmp/possum-run.XXXXXX)
trap 'rm -f "$stamp"' EXIT

# 1. The peer comparison.
stores=""
if ! command -v memcached >/dev/null 2>&1; then
	echo "run.sh: memcached is not installed (apt-get install -y memcached): the comparison leaves it out" >&2
	# The runner's -h lists every store: "(default: all: raw,possum,...)".
	all=$(go run -C bench . -h 2>&1 | sed -n 's/.*(default: all: \([a-z0-9,]*\)).*/\1/p')
	all=${all:-raw,possum,squirrel,diskv,bbolt,memcached}
	stores="-stores $(echo "$all" | tr ',' '\n' | grep -vx memcached | paste -sd, -)"
fi
step "1/4 peer comparison: go run -C bench . -label peers $quick $stores"
# shellcheck disable=SC2086 # $quick and $stores are flags or nothing
go run -C bench . -label peers $quick $stores

# 2. possum's Go benchmarks on the default filesystem.
# GOBENCH_FLAGS replaces the -benchtime (and -count) flags.
if [ -n "${GOBENCH_FLAGS:-}" ]; then
	read -r -a benchflags <<<"$GOBENCH_FLAGS"
elif [ -n "$quick" ]; then
	benchflags=(-benchtime=10x)
else
	benchflags=(-benchtime=300ms)
fi
step "2/4 possum's Go benchmarks: go test -run '^\$' -bench . -v ${benchflags[*]} ."
names=$(go test -list 'Benchmark.*' . | grep '^Benchmark' || true)
if [ -z "$names" ]; then
	echo "run.sh: the root package has no benchmarks (go test -list 'Benchmark.*' .); skipped" >&2
else
	echo "$(echo "$names" | wc -l) benchmarks: $(echo "$names" | tr '\n' ' ')"
	out=bench/out/gobench-default.txt
	{
		echo "# command: go test -run '^\$' -bench . -v ${benchflags[*]} ."
		echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "# filesystem: $(stat -f -c %T "${TMPDIR:-/tmp}" | sed "s,^ext2/ext3$,ext4 (statfs: ext2/ext3),") (TMPDIR ${TMPDIR:-/tmp})"
	} >"$out.tmp"
	# -v: skipped benchmarks say why.
	if go test -run '^$' -bench . -v "${benchflags[@]}" . >>"$out.tmp" 2>&1; then
		mv "$out.tmp" "$out"
	else
		mv "$out.tmp" "$out"
		echo "run.sh: go test -bench failed; see $out (the report shows the failure)" >&2
	fi
	grep -c '^Benchmark' "$out" | sed 's/^/results: /'
fi

# 3. The filesystem matrix, as root.
if [ "$(id -u)" = 0 ] && command -v mount >/dev/null 2>&1; then
	step "3/4 filesystem matrix: bench/matrix.sh $quick"
	bench/matrix.sh $quick || echo "run.sh: bench/matrix.sh failed; the report uses what it wrote" >&2
else
	step "3/4 filesystem matrix: skipped (it needs root to mount: sudo bench/matrix.sh $quick, then rerun the report)"
fi

# 4. The report.
step "4/4 report: go run -C bench . -report"
go run -C bench . -report
old=$(find bench/out -maxdepth 1 \( -name '*.json' -o -name 'gobench-*.txt' \) ! -newer "$stamp" -print | sort)
if [ -n "$old" ]; then
	echo "run.sh: included from earlier runs (older than this one):" $old >&2
fi
step "done: bench/RESULTS.md, bench/charts/"
