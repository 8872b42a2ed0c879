#!/usr/bin/env bash
# librdkafka's own regression suite (the tests/ directory of librdkafka 2.12.1) against rafka,
# in the classic and the KIP-848 (`group.protocol=consumer`) consumer-group modes, limited to the
# checked-in allow-lists next to this script (DESIGN.md §10: the allow-lists only grow).
#
#   bash tests/librdkafka/run.sh [--build-only] [classic|consumer|both]     (default: both)
#
# 1. Fetches librdkafka's full source tree, tests included, from the rdkafka-sys crate on
#    crates.io (pinned version and sha256; Debian's librdkafka is 2.0.2, older than KIP-848) into
#    tests/librdkafka/.build/ (gitignored), and builds the library and tests/test-runner there
#    (configure; make libs; make -C tests build), once: later runs reuse it.
# 2. For each mode: starts a rafka broker (RAFKA_BIN, default target/release/rafka) on a free port
#    with a temp data dir, writes a test.conf, and runs test-runner on the mode's allow-list
#    (allowlist-classic.txt, allowlist-consumer.txt): one runner invocation for all plain
#    entries (the runner selects by test number, so a number's other tests run too and do not
#    count) and one per `subtests=` entry, all at the same time. Every allow-listed test must
#    be PASSED in the runner's JSON report (and a `subtests=` entry must have run at least one
#    subtest).
# 3. Stops the broker and removes its data dir (RDK_KEEP=1 keeps it, with the broker log).
# Exits non-zero if the build fails, an allow-listed test did not pass, or the broker panicked.
#
# Knobs (environment):
#   RAFKA_BIN       broker binary (default <repo>/target/release/rafka; not built by this script)
#   RDK_TESTS       comma-separated test numbers to run instead of the allow-list (exploration:
#                   every test that ran is reported; the exit status counts every failure);
#                   SUBTESTS=<substring> narrows it to matching subtests
#   RDK_REPEAT      run each mode this many times, each on a fresh broker (default 1)
#   RDK_PARALLEL    tests the runner runs at once (default 4; the runner itself scales its
#                   timeouts by 1 + parallel/3)
#   RDK_ARGS        extra test-runner arguments (not -Q: quick mode skips every subtest not
#                   marked quick, so most tests would pass without doing anything)
#   RDK_TIMEOUT     outer limit in seconds for one runner invocation (default 600)
#   RDK_LOGDIR      where runner logs, reports and test.conf go (default .build/logs)
#   RDK_KEEP=1      keep the broker's data dir and log
#   TEST_DEBUG      passed to the runner (librdkafka debug contexts, e.g. cgrp,protocol)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/librdkafka"
BUILD="$HERE/.build"
CRATE_VER="4.10.0+2.12.1"          # rdkafka-sys 4.10.0 bundles librdkafka 2.12.1
CRATE_SHA256="e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77"
CRATE_URL="https://static.crates.io/crates/rdkafka-sys/rdkafka-sys-${CRATE_VER}.crate"
SRC="$BUILD/rdkafka-sys-${CRATE_VER}/librdkafka"
RUNNER="$SRC/tests/test-runner"
CONFIGURE_ARGS=(--disable-gssapi --disable-curl)
BIN="${RAFKA_BIN:-$ROOT/target/release/rafka}"
KAFKA_VERSION="4.1.0"              # what rafka implements (docs/compatibility.md)
export DEBIAN_FRONTEND=noninteractive

BUILD_ONLY=0
MODES=(classic consumer)
for arg in "$@"; do
    case "$arg" in
        --build-only) BUILD_ONLY=1 ;;
        classic|consumer) MODES=("$arg") ;;
        both) MODES=(classic consumer) ;;
        -h|--help) sed -n '2,35p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '\n=== %s ===\n' "$*"; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1
    fi
}

install_packages() {
    local p need=()
    # build-essential: gcc/g++/make; libssl/zlib/zstd/lz4: librdkafka's TLS and codecs (lz4
    # falls back to a bundled copy); rapidjson-dev: the tests that check statistics JSON
    # (0053, 0110) skip themselves without it.
    for p in build-essential pkg-config libssl-dev zlib1g-dev libzstd-dev liblz4-dev \
             rapidjson-dev python3 curl; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    [[ ${#need[@]} -eq 0 ]] && return 0
    echo "installing: ${need[*]}"
    as_root apt-get update -q </dev/null
    as_root apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null
}

fetch_source() {
    [[ -f "$SRC/tests/test.c" ]] && return 0
    mkdir -p "$BUILD"
    local crate="$BUILD/rdkafka-sys-${CRATE_VER}.crate"
    if [[ ! -f "$crate" ]] || ! echo "$CRATE_SHA256  $crate" | sha256sum -c --quiet - 2>/dev/null; then
        echo "fetching $CRATE_URL"
        curl -fsSL --retry 3 -o "$crate.part" "$CRATE_URL"
        echo "$CRATE_SHA256  $crate.part" | sha256sum -c --quiet -
        mv "$crate.part" "$crate"
    fi
    tar xzf "$crate" -C "$BUILD"
}

build_runner() {
    local start=$SECONDS stamp
    # One build at a time (a second run.sh waits here), and only when something changed: the
    # tests' Makefile relinks test-runner on every `make` (its interceptor_test target is phony).
    exec 9>"$BUILD/.build.lock"
    flock 9
    stamp="${CONFIGURE_ARGS[*]} $(dpkg-query -W -f='${Package}=${Version} ' \
        libssl-dev zlib1g-dev libzstd-dev liblz4-dev rapidjson-dev 2>/dev/null)"
    if [[ -x "$RUNNER" && "$(cat "$SRC/.rafka-built" 2>/dev/null)" == "$stamp" ]]; then
        flock -u 9
        echo "test-runner cached: $RUNNER"
        return 0
    fi
    (
        cd "$SRC"
        # configure again when its arguments or the packages it probes changed. (Its log must
        # not be named configure.*: mklove would load it as a module.)
        if [[ ! -f Makefile.config || "$(cat .rafka-configured 2>/dev/null)" != "$stamp" ]]; then
            ./configure "${CONFIGURE_ARGS[@]}" >"$BUILD/rafka-configure.log" 2>&1 \
                || { tail -30 "$BUILD/rafka-configure.log"; exit 1; }
            echo "$stamp" >.rafka-configured
        fi
        { make -j2 libs && make -j2 -C tests build; } >"$BUILD/rafka-make.log" 2>&1 \
            || { tail -40 "$BUILD/rafka-make.log"; exit 1; }
        echo "$stamp" >.rafka-built
    )
    flock -u 9
    echo "test-runner built: $RUNNER ($(( SECONDS - start ))s)"
}

# ---- broker ---------------------------------------------------------------------------------
BROKER_PID=""
BROKER_DIR=""
BROKER_PORT=""
PANICKED=0

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_broker() {
    [[ -x "$BIN" ]] || { echo "broker binary $BIN missing (cargo build --release -p rafka, or set RAFKA_BIN)" >&2; return 1; }
    BROKER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rafka-librdkafka-XXXXXX")
    mkdir -p "$BROKER_DIR/data" "$BROKER_DIR/kafka/bin"
    # Some tests run $KAFKA_PATH/bin/kafka-topics.sh (0045, 0052, 0077): rafka carries Kafka's
    # tools and acts as the one its argv[0] names.
    local tool
    for tool in kafka-topics kafka-configs kafka-consumer-groups; do
        ln -s "$(readlink -f "$BIN")" "$BROKER_DIR/kafka/bin/$tool.sh"
    done
    BROKER_PORT=$(free_port)
    # As librdkafka's own CI brokers (trivup's KafkaCluster): 4 partitions for auto-created
    # topics (0029 needs 4), replication factor 1 on a single node. Everything else is rafka's
    # (= Kafka's) default, including group.initial.rebalance.delay.ms=3000 and the consumer
    # groups' 45 s session and 5 s heartbeat interval.
    (cd "$BROKER_DIR" && exec "$BIN" \
        --override "listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT" \
        --override "advertised.listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT" \
        --override "log.dirs=$BROKER_DIR/data" \
        --override "node.id=1" \
        --override "num.partitions=4" \
        --override "auto.create.topics.enable=true" \
        >"$BROKER_DIR/broker.log" 2>&1 </dev/null) &
    BROKER_PID=$!
    local deadline=$(( SECONDS + 60 ))
    until grep -q "Kafka Server started" "$BROKER_DIR/broker.log" 2>/dev/null; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "broker exited during start-up:" >&2; tail -50 "$BROKER_DIR/broker.log" >&2
            BROKER_PID=""; return 1
        fi
        if (( SECONDS > deadline )); then
            echo "broker did not start within 60s:" >&2; tail -50 "$BROKER_DIR/broker.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "broker pid $BROKER_PID on 127.0.0.1:$BROKER_PORT, data $BROKER_DIR"
}

stop_broker() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 300); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then kill -KILL "$BROKER_PID" 2>/dev/null || true; fi
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    BROKER_PID=""
    if [[ -n "$BROKER_DIR" ]]; then
        if grep -q panicked "$BROKER_DIR/broker.log" 2>/dev/null; then
            echo "broker log has a panic:" >&2; grep -m5 panicked "$BROKER_DIR/broker.log" >&2
            PANICKED=1
        fi
        if [[ "${RDK_KEEP:-}" == 1 ]]; then
            echo "kept broker dir $BROKER_DIR"
        else
            rm -rf "$BROKER_DIR"
        fi
    fi
    BROKER_DIR=""
}
# (called through the EXIT trap, which shellcheck does not follow)
# shellcheck disable=SC2317
cleanup() {
    # Runner invocations still going (interrupted run): this script's own jobs, by pid.
    local pid
    for pid in $(jobs -p); do kill -INT "$pid" 2>/dev/null || true; done
    stop_broker
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- runner ---------------------------------------------------------------------------------
# run_runner MODE TAG TESTS SUBTESTS: one test-runner invocation against the running broker;
# its log and JSON report are $LOGS/MODE-TAG.{log,json}. Always returns 0 (the report decides).
run_runner() {
    local mode="$1" tag="$2" tests="$3" subtests="$4" conf="$LOGS/$1-$2.conf"
    cat >"$conf" <<EOF
# written by tests/librdkafka/run.sh
bootstrap.servers=127.0.0.1:$BROKER_PORT
EOF
    rm -f "$LOGS/$mode-$tag.json"
    local env=(TESTS="$tests" TEST_KAFKA_VERSION="$KAFKA_VERSION"
               TEST_REPORT="$LOGS/$mode-$tag.json" RDKAFKA_TEST_CONF="$conf"
               KAFKA_PATH="$BROKER_DIR/kafka" BROKERS="127.0.0.1:$BROKER_PORT"
               RDKAFKA_GITVER="v2.12.1" LD_LIBRARY_PATH="$SRC/src:$SRC/src-cpp")
    [[ -n "$subtests" ]] && env+=(SUBTESTS="$subtests")
    [[ "$mode" == consumer ]] && env+=(TEST_CONSUMER_GROUP_PROTOCOL=consumer)
    local rc=0
    # RDK_ARGS is a list of runner flags, split on purpose.
    # shellcheck disable=SC2086
    (cd "$SRC/tests" && env "${env[@]}" timeout -s INT -k 30 "${RDK_TIMEOUT:-600}" \
        ./test-runner -L "-p${RDK_PARALLEL:-4}" ${RDK_ARGS:-} >"$LOGS/$mode-$tag.log" 2>&1 </dev/null) \
        || rc=$?
    echo "runner exit $rc" >>"$LOGS/$mode-$tag.log"
    return 0
}

# check_report MODE TAG TESTS SUBTESTS [NAME...]: prints each allow-listed NAME's state from
# the report (or, without names, every test of TESTS that ran); non-zero if one did not pass.
check_report() {
    local mode="$1" tag="$2" tests="$3" subtests="$4"; shift 4
    local report="$LOGS/$mode-$tag.json" log="$LOGS/$mode-$tag.log"
    if [[ ! -f "$report" ]]; then
        echo "  FAIL no report from the runner (log $log):"; tail -20 "$log" | sed 's/^/    /'
        return 1
    fi
    python3 - "$report" "$log" "$tests" "$subtests" "$@" <<'EOF'
import json, re, sys
report, log, nums, subtests, wanted = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4], sys.argv[5:]
tests = json.load(open(report))["tests"]
tests = {n: t for n, t in tests.items() if n[:4] in nums}
# Subtests that passed (lines "[ <func>:<line>: <desc>: PASS (1.23s) ]"), by test.
passed_sub = {}
for line in open(log, errors="replace"):
    m = re.search(r"\[(\S+)\s*/\s*[\d.]+s\] .*\[ (.*): PASS \(", re.sub(r"\x1b\[[0-9;]*m", "", line))
    if m:
        passed_sub.setdefault(m.group(1), []).append(m.group(2))
label = f" subtests={subtests}" if subtests else ""
bad = 0
if wanted:
    for name in wanted:
        t = tests.get(name)
        state = t["state"] if t else "NOT RUN"
        ok = state == "PASSED"
        if ok and subtests and not passed_sub.get(name):
            ok, state = False, "NO SUBTEST"
        bad += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name + label:<60} {state:<10} {t['duration'] if t else 0:6.1f}s")
    for name in sorted(n for n in tests if n not in wanted and tests[n]["state"] != "SKIPPED"):
        print(f"       (not allow-listed) {name:<41} {tests[name]['state']:<10} {tests[name]['duration']:6.1f}s")
else:
    for name, t in sorted(tests.items()):
        print(f"  {t['state']:<8} {name + label:<60} {t['duration']:6.1f}s")
        bad += t["state"] not in ("PASSED", "SKIPPED")
sys.exit(1 if bad else 0)
EOF
}

# Allow-list entries: `<test name> [subtests=<substring>]`, `#` starts a comment.
allowlist_entries() {
    sed -e 's/#.*//' "$HERE/allowlist-$1.txt" | awk 'NF {print $1 "\t" ($2 ~ /^subtests=/ ? substr($2, 10) : "")}'
}

# run_mode MODE ROUND: the mode's allow-list (or RDK_TESTS) on a fresh broker.
run_mode() {
    local mode="$1" round="$2" rc=0 start=$SECONDS
    LOGS="${RDK_LOGDIR:-$BUILD/logs}"
    mkdir -p "$LOGS"
    start_broker
    if [[ -n "${RDK_TESTS:-}" ]]; then
        log "$mode round $round: tests $RDK_TESTS${SUBTESTS:+ subtests=$SUBTESTS}"
        run_runner "$mode" "$round" "$RDK_TESTS" "${SUBTESTS:-}"
        check_report "$mode" "$round" "$RDK_TESTS" "${SUBTESTS:-}" || rc=1
    else
        local name sub plain=() i=0
        local -a subs=()
        while IFS=$'\t' read -r name sub; do
            if [[ -n "$sub" ]]; then subs+=("$name"$'\t'"$sub"); else plain+=("$name"); fi
        done < <(allowlist_entries "$mode")
        # All invocations at once (they share the broker; most tests wait on timers, not CPU).
        local tags=() tests=() subtests=() names=() pids=() entry
        if [[ ${#plain[@]} -gt 0 ]]; then
            tags+=("$round"); subtests+=("")
            tests+=("$(printf '%s\n' "${plain[@]}" | cut -c1-4 | sort -u | paste -sd, -)")
            names+=("${plain[*]}")
        fi
        for entry in "${subs[@]}"; do
            i=$((i + 1))
            name="${entry%%$'\t'*}"; sub="${entry#*$'\t'}"
            tags+=("$round-s$i"); tests+=("${name:0:4}"); subtests+=("$sub"); names+=("$name")
        done
        log "$mode round $round: ${#plain[@]} tests + ${#subs[@]} subtest selections (logs $LOGS/$mode-$round*.log)"
        for i in "${!tags[@]}"; do
            # (stderr: the shell's "Aborted" notice when the runner aborts at exit after a
            # failure; the runner's own output is in its log)
            run_runner "$mode" "${tags[$i]}" "${tests[$i]}" "${subtests[$i]}" 2>/dev/null &
            pids+=($!)
        done
        wait "${pids[@]}"
        for i in "${!tags[@]}"; do
            # names[i] is a space-separated list of test names (no test name has a space).
            # shellcheck disable=SC2086
            check_report "$mode" "${tags[$i]}" "${tests[$i]}" "${subtests[$i]}" ${names[$i]} || rc=1
        done
    fi
    stop_broker
    echo "$mode round $round: $(( SECONDS - start ))s"
    return $rc
}

install_packages
fetch_source
build_runner
[[ $BUILD_ONLY == 1 ]] && exit 0

FAILED=0
TOTAL_START=$SECONDS
for round in $(seq 1 "${RDK_REPEAT:-1}"); do
    for mode in "${MODES[@]}"; do
        run_mode "$mode" "$round" || FAILED=1
    done
done
[[ $PANICKED -ne 0 ]] && FAILED=1
echo
echo "total $(( SECONDS - TOTAL_START ))s; RESULT: $([[ $FAILED -eq 0 ]] && echo PASS || echo FAIL)"
exit $FAILED
