#!/usr/bin/env bash
# The test command: `bash tests/run.sh [pytest args...]`.
#
# Works on a fresh Debian bookworm machine and is idempotent:
#   1. system packages the tests use (kcat, nc; debootstrap when docker is present), installed
#      only if missing
#   2. Python venv at tests/.venv with the pins in tests/requirements.txt (reinstalled on change)
#   3. cargo build --profile release-test -p rafka  (the binary the integration tests start:
#      the release optimisation without the release profile's whole-program LTO, so that it
#      shares its build with step 4 instead of costing a fat-LTO link of its own, ~7 minutes
#      on two cores; `cargo build --release` stays the product build)
#   4. cargo test --workspace --profile release-test
#   5. pytest tests/integration
#   6. librdkafka 2.12.1's own regression suite on its allow-lists, classic and KIP-848 modes
#      (tests/librdkafka/run.sh; its build is kept in tests/librdkafka/.build)
# Exits non-zero if any step fails and prints a summary either way.
#
# Knobs (environment):
#   RAFKA_SKIP_BUILD=1       use the existing binary (and skip cargo test)
#   RAFKA_BIN                the binary steps 5 and 6 start (default target/release-test/rafka;
#                            with RAFKA_SKIP_BUILD=1 and no such file, target/release/rafka)
#   RAFKA_SKIP_CARGO_TEST=1  skip step 4
#   RAFKA_SKIP_PYTEST=1      skip step 5
#   RAFKA_PYTEST_TIMEOUT     overall limit for step 5 in seconds (default 2400)
#   RAFKA_SKIP_LIBRDKAFKA=1  skip step 6 (also skipped when pytest arguments are given)
#   PYTHON                   interpreter for the venv (default python3)
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k kcat -x`.
# Functions below are run indirectly through run_step, which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/tests/.venv"
REQS="$ROOT/tests/requirements.txt"
PYTHON="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECS=()
FAILED=0

log() { printf '\n=== %s ===\n' "$*"; }

# run_step NAME CMD...: runs CMD in a subshell with errexit on, records pass/fail and duration
# in the summary and its exit code in LAST_RC; always returns 0. (Callers must not put it in an
# `||`/`&&` list: bash would then silently disable errexit inside the step.)
LAST_RC=0
run_step() {
    local name="$1"; shift
    local start rc
    start=$(date +%s)
    log "$name"
    set +e
    (set -euo pipefail; "$@")
    rc=$?
    set -e
    LAST_RC=$rc
    STEP_NAMES+=("$name")
    STEP_SECS+=($(( $(date +%s) - start )))
    if [[ $rc -eq 0 ]]; then
        STEP_RESULTS+=("ok")
    else
        STEP_RESULTS+=("FAILED (exit $rc)")
        FAILED=1
    fi
}

skip_step() {
    STEP_NAMES+=("$1"); STEP_RESULTS+=("skipped: $2"); STEP_SECS+=(0)
}

summary() {
    printf '\n=== summary ===\n'
    local i
    for i in "${!STEP_NAMES[@]}"; do
        printf '  %-36s %-30s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECS[$i]}"
    done
    if [[ $FAILED -eq 0 ]]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
}
trap summary EXIT

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1
    fi
}

install_system_packages() {
    local pkgs=()
    command -v kcat >/dev/null || pkgs+=(kcat)            # bookworm: kcat 1.7.1 (kafkacat is a transitional alias)
    command -v nc >/dev/null || pkgs+=(netcat-openbsd)
    # The docker tests (skipped without docker) build their base image with debootstrap when
    # no registry is reachable (docker/build.sh).
    if command -v docker >/dev/null; then
        command -v debootstrap >/dev/null || pkgs+=(debootstrap)
    fi
    # The fault suite's nodes live in network namespaces (skipped when not root).
    if [[ $(id -u) -eq 0 ]]; then
        command -v ip >/dev/null || pkgs+=(iproute2)
        command -v iptables >/dev/null || pkgs+=(iptables)
    fi
    # The observability tests (issue 18): a real Prometheus scraping the broker and a real
    # headless Chromium on its status page (skipped when missing), with a font to render it.
    command -v prometheus >/dev/null || pkgs+=(prometheus)
    command -v chromium >/dev/null || pkgs+=(chromium)
    [[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || pkgs+=(fonts-dejavu-core)
    command -v "$PYTHON" >/dev/null || pkgs+=(python3)
    if command -v "$PYTHON" >/dev/null && ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        pkgs+=(python3-venv)                               # Debian splits venv/ensurepip out
    fi
    if [[ ${#pkgs[@]} -eq 0 ]]; then
        echo "system packages present: kcat ($(kcat -V 2>&1 | grep -m1 -i '^version' || true)), nc, $PYTHON"
        return 0
    fi
    echo "installing: ${pkgs[*]}"
    # Only refresh the package lists when something actually has to be installed.
    as_root apt-get update -q </dev/null
    # Debian's prometheus package would start its service (a daemon on :9090): packages may not
    # start services during this install (policy-rc.d exit 101, unless the machine has its own).
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    as_root apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null || rc=$?
    if [[ $own_policy -eq 1 ]]; then as_root rm -f "$policy"; fi
    return $rc
}

setup_venv() {
    local want have
    want=$(sha256sum "$REQS" | cut -d' ' -f1)
    have=$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)
    if [[ -x "$VENV/bin/python" && "$want" == "$have" ]]; then
        echo "venv up to date ($VENV)"
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null
    # --only-binary: every pin has a wheel; building from source would mean missing headers.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary :all: \
        -r "$REQS" </dev/null
    "$VENV/bin/python" - <<'EOF'
import confluent_kafka, kafka, aiokafka
import kafka.codec as k, aiokafka.codec as a
assert k.has_snappy() and k.has_lz4() and k.has_zstd(), "kafka-python codecs missing"
assert a.has_snappy() and a.has_lz4() and a.has_zstd(), "aiokafka codecs missing"
print("confluent-kafka", confluent_kafka.version(), "librdkafka", confluent_kafka.libversion(),
      "| kafka-python", kafka.__version__, "| aiokafka", aiokafka.__version__)
EOF
    echo "$want" >"$VENV/.requirements.sha256"
}

cargo_cmd() {
    if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null || { echo "cargo not found (install Rust via rustup)" >&2; return 1; }
    cargo "$@"
}

run_pytest() {
    local limit="${RAFKA_PYTEST_TIMEOUT:-2400}"
    # Outer limit so a wedged test cannot eat the CI budget; SIGINT first so pytest still prints
    # its report, SIGKILL a minute later. Per-test limits come from pytest-timeout (pytest.ini).
    timeout -s INT -k 60 "$limit" \
        "$VENV/bin/python" -m pytest tests/integration "$@" </dev/null
}

# Both modes at once, each on its own broker: the runners mostly wait on timers (session
# timeouts, rebalance delays), so this halves the step without loading the machine much.
run_librdkafka_suite() {
    local out="$ROOT/tests/librdkafka/.build" mode rc=0
    local -a pids=()
    if [[ -n "$LIBRDKAFKA_BUILD_PID" ]]; then
        # run_step runs this in a subshell, which cannot `wait` for its parent's child: the
        # build leaves its exit code in a file when it ends.
        while [[ ! -f "$LIBRDKAFKA_BUILD_LOG.rc" ]]; do
            sleep 1
        done
        cat "$LIBRDKAFKA_BUILD_LOG"
    fi
    # A no-op when the background build finished.
    bash tests/librdkafka/run.sh --build-only </dev/null
    for mode in classic consumer; do
        bash tests/librdkafka/run.sh "$mode" >"$out/$mode.out" 2>&1 </dev/null &
        pids+=($!)
    done
    for mode in 0 1; do
        wait "${pids[$mode]}" || rc=1
    done
    cat "$out/classic.out" "$out/consumer.out"
    return $rc
}

# The binary the integration tests and the librdkafka suite start (broker_proc.py and
# tests/librdkafka/run.sh read RAFKA_BIN).
if [[ "${RAFKA_SKIP_BUILD:-}" != 1 || -x "$ROOT/target/release-test/rafka" ]]; then
    export RAFKA_BIN="${RAFKA_BIN:-$ROOT/target/release-test/rafka}"
fi

run_step "system packages" install_system_packages
run_step "python venv" setup_venv

if [[ "${RAFKA_SKIP_BUILD:-}" == 1 ]]; then
    skip_step "cargo build --profile release-test" "RAFKA_SKIP_BUILD"
    skip_step "cargo test --profile release-test" "RAFKA_SKIP_BUILD"
    if [[ -z "${RAFKA_BIN:-}" && ! -x "$ROOT/target/release-test/rafka" ]]; then
        export RAFKA_BIN="$ROOT/target/release/rafka"
    fi
else
    run_step "cargo build --profile release-test" cargo_cmd build --profile release-test -p rafka
    if [[ $LAST_RC -ne 0 ]]; then
        skip_step "cargo test --profile release-test" "build failed"
    elif [[ "${RAFKA_SKIP_CARGO_TEST:-}" == 1 ]]; then
        skip_step "cargo test --profile release-test" "RAFKA_SKIP_CARGO_TEST"
    else
        # The profile of the build above (Cargo.toml, `release-test`): the simulations need
        # the speed, and LTO would relink every test binary whole.
        run_step "cargo test --profile release-test" cargo_cmd test --workspace --profile release-test
    fi
fi

# librdkafka's C build (about 110 s of both cores, once per checkout) runs niced beside the
# pytest step, which mostly waits on brokers and timers, instead of after it.
LIBRDKAFKA_BUILD_PID=""
LIBRDKAFKA_BUILD_LOG="$ROOT/tests/librdkafka/.build/background-build.log"
if [[ "${RAFKA_SKIP_LIBRDKAFKA:-}" != 1 && $# -eq 0 && "${RAFKA_SKIP_PYTEST:-}" != 1 ]]; then
    mkdir -p "$ROOT/tests/librdkafka/.build"
    rm -f "$LIBRDKAFKA_BUILD_LOG.rc"
    (
        rc=0
        nice -n 19 bash tests/librdkafka/run.sh --build-only >"$LIBRDKAFKA_BUILD_LOG" 2>&1 </dev/null || rc=$?
        echo "$rc" >"$LIBRDKAFKA_BUILD_LOG.rc"
    ) &
    LIBRDKAFKA_BUILD_PID=$!
fi

if [[ "${RAFKA_SKIP_PYTEST:-}" == 1 ]]; then
    skip_step "pytest tests/integration" "RAFKA_SKIP_PYTEST"
elif [[ ! -x "$RAFKA_BIN" ]]; then
    skip_step "pytest tests/integration" "no $RAFKA_BIN"
    FAILED=1
elif [[ ! -x "$VENV/bin/python" ]]; then
    skip_step "pytest tests/integration" "no venv"
    FAILED=1
else
    run_step "pytest tests/integration" run_pytest "$@"
fi

if [[ "${RAFKA_SKIP_LIBRDKAFKA:-}" == 1 ]]; then
    skip_step "librdkafka regression suite" "RAFKA_SKIP_LIBRDKAFKA"
elif [[ $# -gt 0 ]]; then
    skip_step "librdkafka regression suite" "pytest arguments given"
elif [[ ! -x "$RAFKA_BIN" ]]; then
    skip_step "librdkafka regression suite" "no $RAFKA_BIN"
    FAILED=1
else
    run_step "librdkafka regression suite" run_librdkafka_suite
fi

exit "$FAILED"
