#!/usr/bin/env bash
# Benchmark program (not a test): `bash tests/bench/run.sh [--build-only] [bench.py args...]`.
#
# 1. Builds librdkafka's examples/rdkafka_performance from Debian's source package (the same
#    librdkafka 2.0.2 kcat uses), linked against the system librdkafka. Source and binary live in
#    .bench/ (gitignored).
# 2. Builds a release rafka, starts it on a free port with a temp data dir, runs the scenarios in
#    tests/bench/bench.py and prints a markdown table (copy it to docs/benchmarks.md together with
#    the machine description it prints).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BENCH="$ROOT/.bench"
PERF="$BENCH/bin/rdkafka_performance"
export DEBIAN_FRONTEND=noninteractive

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

need_pkgs=()
for p in dpkg-dev librdkafka-dev gcc make libc6-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
# `apt-get source` needs deb-src entries; bookworm images ship only `Types: deb`.
if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding deb-src for bookworm"
    as_root tee /etc/apt/sources.list.d/rafka-bench-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    need_update=1
fi
if [[ ${#need_pkgs[@]} -gt 0 || -n "${need_update:-}" ]]; then
    as_root apt-get update -q </dev/null
fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
    as_root apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" </dev/null
fi

if [[ ! -x "$PERF" ]]; then
    mkdir -p "$BENCH/src" "$BENCH/bin"
    (
        cd "$BENCH/src"
        [[ -d librdkafka-2.0.2 ]] || apt-get source -q librdkafka </dev/null
        cd "$(find . -maxdepth 1 -type d -name 'librdkafka-*' | sort | tail -1)"
        # The example includes internal headers (rd.h) that need the generated config.h; the
        # library itself is not built, the example links the system librdkafka of the same version.
        # (Log name must not be configure.*: mklove would load it as a module.)
        [[ -f config.h ]] || ./configure --disable-ssl --disable-gssapi --disable-sasl \
            >rafka-bench-configure.out 2>&1 || { tail -20 rafka-bench-configure.out; exit 1; }
        gcc -O2 -I src -I . examples/rdkafka_performance.c -o "$PERF" -lrdkafka -lpthread -lm
    )
fi
"$PERF" -h 2>&1 | sed -n '3,4p' || true
echo "rdkafka_performance: $PERF"

if [[ "${1:-}" == "--build-only" ]]; then
    exit 0
fi

if [[ ! -x "$ROOT/tests/.venv/bin/python" ]]; then
    # bench.py creates topics with confluent-kafka's AdminClient.
    RAFKA_SKIP_BUILD=1 RAFKA_SKIP_PYTEST=1 bash tests/run.sh
fi
if [[ -z "${RAFKA_BIN:-}" ]]; then
    if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    cargo build --release -p rafka
fi
exec "$ROOT/tests/.venv/bin/python" "$ROOT/tests/bench/bench.py" --perf "$PERF" "$@"
