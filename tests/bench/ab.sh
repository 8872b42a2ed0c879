#!/usr/bin/env bash
# Benchmark program (not a test): two rafka binaries in the same run, alternating, so that the
# machine's drift hits both alike. `bash tests/bench/ab.sh BEFORE AFTER [bench.py args...]` runs
# tests/bench/bench.py four times (BEFORE, AFTER, BEFORE, AFTER) and prints each run's table.
# Build the two binaries with the same profile (e.g. a `git worktree` of the older commit and
# `cargo build --profile release-test -p rafka` in each). Needs `bash tests/bench/run.sh
# --build-only` (rdkafka_performance) and the test venv first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ $# -ge 2 ]] || { echo "usage: $0 BEFORE AFTER [bench.py args...]" >&2; exit 2; }
before=$(realpath "$1")
after=$(realpath "$2")
shift 2
run=0
for bin in "$before" "$after" "$before" "$after"; do
    run=$((run + 1))
    echo "=== run $run: $bin"
    RAFKA_BIN="$bin" "$ROOT/tests/.venv/bin/python" "$ROOT/tests/bench/bench.py" \
        --perf "$ROOT/.bench/bin/rdkafka_performance" "$@"
done
