#!/usr/bin/env bash
# Benchmark program (not a test): what the produce path's kernel work costs on this machine
# without a broker (tests/bench/floor/src/main.rs says what each mode does).
#   bash tests/bench/floor.sh [--rounds N] [--gib N] [--modes recv,write,copy,splice,direct]
# Builds into .bench/floor-target and writes its temp files into .bench/ (the data dir's
# file system in tests/bench/run.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
mkdir -p "$ROOT/.bench"
CARGO_TARGET_DIR="$ROOT/.bench/floor-target" cargo build -q --release \
    --manifest-path "$ROOT/tests/bench/floor/Cargo.toml"
exec "$ROOT/.bench/floor-target/release/rafka-write-floor" --dir "$ROOT/.bench" "$@"
