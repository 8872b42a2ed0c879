#!/usr/bin/env bash
# Issue 2's CPU target as stated: produce to one partition (acks=1, 1 KiB messages, linger.ms=5)
# at 900 MB/s, and report the broker's share of one core. Each run gets a fresh broker and data
# dir that are removed afterwards, so the page cache does not grow from run to run into memory the
# VM has not backed (see docs/benchmarks.md, "Machine"); memory is touched once first.
#
#   RAFKA_BIN=<release rafka> [WARM_GIB=10] bash tests/bench/paced.sh [runs] [messages]
#
# Needs .bench/bin/rdkafka_performance: `bash tests/bench/run.sh --build-only` builds it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PERF="$ROOT/.bench/bin/rdkafka_performance"
BIN="${RAFKA_BIN:-$ROOT/target/release/rafka}"
RUNS="${1:-5}"
MSGS="${2:-2000000}"
RATE=878906 # 900 MB/s of 1024-byte messages
[[ -x "$PERF" ]] || { echo "missing $PERF: run bash tests/bench/run.sh --build-only" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "missing broker binary $BIN (set RAFKA_BIN)" >&2; exit 1; }

WARM_GIB="${WARM_GIB:-10}" python3 - <<'EOF'
import os
gib = int(os.environ["WARM_GIB"])
avail_kib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemAvailable:"))
if gib * 2**20 > avail_kib * 0.8:
    raise SystemExit(f"WARM_GIB={gib} is more than 80% of the available memory; set it lower")
buf = bytearray(gib * 2**30)
for i in range(0, len(buf), 4096):
    buf[i] = 1
print(f"warmed {gib} GiB of memory")
EOF

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

pid=""
dir=""
# Whatever ends the script (a failed run included) stops the broker and removes its data.
cleanup() {
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [[ -n "$dir" ]]; then rm -rf "$dir"; fi
}
trap cleanup EXIT

for run in $(seq "$RUNS"); do
    dir="$(mktemp -d "$ROOT/.bench/paced-XXXXXX")"
    port="$(free_port)"
    "$BIN" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
        --override "advertised.listeners=PLAINTEXT://127.0.0.1:$port" \
        --override "log.dirs=$dir/data" >"$dir/broker.log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + 30))
    until grep -q "Kafka Server started" "$dir/broker.log"; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
            echo "broker did not start:" >&2; cat "$dir/broker.log" >&2; exit 1
        fi
        sleep 0.05
    done
    c0="$(cpu_ticks "$pid")"; t0="$(date +%s.%N)"
    "$PERF" -b "127.0.0.1:$port" -P -t paced -p 0 -a 1 -s 1024 -c "$MSGS" -r "$RATE" \
        -X linger.ms=5 -z none -q >/dev/null 2>&1
    c1="$(cpu_ticks "$pid")"; t1="$(date +%s.%N)"
    cleanup; pid=""; dir=""; sync
    python3 -c "
tick = $(getconf CLK_TCK); cpu = ($c1 - $c0) / tick; wall = $t1 - $t0; gb = $MSGS * 1024 / 1e9
print(f'run $run: {gb / wall * 1000:.0f} MB/s over {wall:.2f} s, broker {cpu:.2f} CPU-s = '
      f'{cpu / wall * 100:.0f}% of one core, {cpu / gb:.2f} CPU-s per GB')"
done
