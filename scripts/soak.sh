#!/usr/bin/env bash
# The long reliability run behind docs/RELIABILITY.md: the multi-process
# simulation for minutes (with and without capacity pressure), many rounds
# of processes killed at random instants, every named crash point, the
# simulated power loss and the fault table, several times each. Run it
# from the repository root; as root it can also mount the filesystems the
# fault tests need. SOAK_SECONDS sets the simulation's length (default 120).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SOAK_SECONDS:-120}
out=${SOAK_LOG:-/tmp/possum-soak.log}
: > "$out"
run() { echo "== $*" | tee -a "$out"; "$@" 2>&1 | tee -a "$out" | grep -E '^(---|ok|FAIL|PASS)|(stress|kill|crash|fault)_test.go:[0-9]+: (total|[0-9]+ rounds|recovered)' || true; }
run env POSSUM_STRESS_SECONDS="$secs" go test -count=1 -timeout 30m -run 'TestMultiProcessStress$' -v .
run env POSSUM_STRESS_SECONDS="$secs" go test -count=1 -timeout 30m -run "TestMultiProcessStressUnderCapacity$" -v .
run env POSSUM_KILL_ROUNDS=40 go test -count=1 -timeout 30m -run 'TestKillMidCommitAndReclaim$' -v .
run go test -count=5 -timeout 30m -run 'TestCrashPoints|TestPowerLoss|TestKillMidPut|TestKilledHolder|TestFault' -v .
echo "log: $out"
