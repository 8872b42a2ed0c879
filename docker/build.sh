#!/usr/bin/env bash
# Builds the rafka image (default tag rafka:latest) on a machine with or without a registry.
#
#   docker/build.sh
#
# 1. The base image debian:bookworm-slim: used as it is when present; otherwise, when it cannot
#    be pulled, made locally with debootstrap (minbase, trimmed; debootstrap is installed with
#    apt-get first if missing) and `docker import`ed, once.
# 2. The image from docker/Dockerfile. When the Rust builder image (rust:1-slim-bookworm) is
#    present or can be pulled, docker/Dockerfile is built as it is. Otherwise the release binary
#    is built on the host (or taken from RAFKA_BIN) and fed to the same runtime stage: a copy of
#    docker/Dockerfile whose build stage is replaced by one that holds that binary.
# 3. rafka-test/kcat:latest, a small kcat image the docker tests use as a second container
#    (only when missing; RAFKA_BUILD_KCAT=0 skips it).
#
# Knobs: RAFKA_IMAGE (tag), RAFKA_BASE_IMAGE (default debian:bookworm-slim), RAFKA_BIN (host binary to use), RAFKA_BUILD_MODE=auto|docker|host,
# RAFKA_BUILD_KCAT=0|1, CARGO_TARGET_DIR. Idempotent; exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE=${RAFKA_IMAGE:-rafka:latest}
BASE_IMAGE=${RAFKA_BASE_IMAGE:-debian:bookworm-slim}
RUST_IMAGE=$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' "$ROOT/docker/Dockerfile" | head -n1)
KCAT_IMAGE=rafka-test/kcat:latest
MODE=${RAFKA_BUILD_MODE:-auto}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { printf '[build.sh] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
# Without a registry a pull fails; the limit keeps a hanging one from stalling the build.
try_pull() { timeout 60 docker pull -q "$1" >/dev/null 2>&1; }
TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]}"; do as_root rm -rf "$d"; done; }
trap cleanup EXIT
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        die "need root (or sudo) to run: $*"
    fi
}

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the docker daemon"
[[ -n $RUST_IMAGE ]] || die "docker/Dockerfile has no 'FROM ... AS build' line"

# debootstrap comes from apt when missing (as tests/run.sh installs what the tests need), so the
# README's docker command works on a fresh Debian/Ubuntu machine.
ensure_debootstrap() {
    command -v debootstrap >/dev/null && return
    command -v apt-get >/dev/null \
        || die "debootstrap is missing and there is no apt-get to install it with; install debootstrap"
    say "installing debootstrap"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >/dev/null \
        || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        debootstrap </dev/null >/dev/null || die "could not install debootstrap"
}

ensure_base() {
    if have_image "$BASE_IMAGE"; then
        say "base image $BASE_IMAGE present"
        return
    fi
    say "pulling $BASE_IMAGE"
    if try_pull "$BASE_IMAGE"; then return; fi
    say "cannot pull $BASE_IMAGE: making it with debootstrap (about 30 s)"
    ensure_debootstrap
    local dir
    dir=$(mktemp -d /tmp/rafka-bookworm.XXXXXX)
    TMP_DIRS+=("$dir")
    as_root debootstrap --variant=minbase bookworm "$dir" "$DEBIAN_MIRROR" >/dev/null \
        || die "debootstrap failed"
    # What docker's debian:*-slim leaves out: package caches, lists, docs, man pages, locales.
    as_root rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/* \
        "$dir"/usr/share/doc "$dir"/usr/share/man "$dir"/usr/share/locale "$dir"/usr/share/info
    as_root tar -C "$dir" -c . | docker import \
        -c 'CMD ["bash"]' \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$BASE_IMAGE" >/dev/null || die "docker import failed"
    say "imported $BASE_IMAGE"
}

build_from_dockerfile() {
    say "building $IMAGE from docker/Dockerfile (Rust build stage in $RUST_IMAGE)"
    docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$ROOT/docker/Dockerfile" -t "$IMAGE" "$ROOT"
}

build_with_host_binary() {
    local bin=${RAFKA_BIN:-}
    if [[ -z $bin ]]; then
        say "building the release binary on the host"
        (cd "$ROOT" && cargo build --release -p rafka) || die "cargo build failed"
        bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/rafka"
    fi
    [[ -x $bin ]] || die "no executable rafka binary at $bin"
    say "using host binary $bin"
    local ctx
    ctx=$(mktemp -d /tmp/rafka-docker-ctx.XXXXXX)
    TMP_DIRS+=("$ctx")
    mkdir -p "$ctx/docker" "$ctx/bin"
    cp -a "$ROOT/docker/rootfs" "$ctx/docker/rootfs"
    cp "$bin" "$ctx/bin/rafka"
    strip "$ctx/bin/rafka" 2>/dev/null || say "strip not available: image keeps the symbols"
    # The same Dockerfile with the build stage (between the two marker lines) swapped for a
    # stage holding the host binary; the runtime stage text is untouched.
    awk '
        /^# ---- build stage/ { print "FROM scratch AS build"; print "COPY bin/rafka /out/rafka"; skip = 1; next }
        /^# ---- end of build stage/ { skip = 0; next }
        !skip { print }
    ' "$ROOT/docker/Dockerfile" >"$ctx/Dockerfile"
    grep -q '^FROM scratch AS build$' "$ctx/Dockerfile" || die "build stage markers not found in docker/Dockerfile"
    docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$ctx/Dockerfile" -t "$IMAGE" "$ctx"
}

ensure_kcat_image() {
    if [[ ${RAFKA_BUILD_KCAT:-1} == 0 ]]; then return; fi
    if have_image "$KCAT_IMAGE"; then
        say "test image $KCAT_IMAGE present"
        return
    fi
    say "building test image $KCAT_IMAGE"
    docker build -t "$KCAT_IMAGE" - <<DOCKERFILE
FROM $BASE_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends kcat \\
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
ENTRYPOINT ["kcat"]
DOCKERFILE
}

start=$(date +%s)
ensure_base
case $MODE in
    docker) build_from_dockerfile ;;
    host) build_with_host_binary ;;
    auto)
        if [[ -n ${RAFKA_BIN:-} ]]; then
            build_with_host_binary
        elif have_image "$RUST_IMAGE" || try_pull "$RUST_IMAGE"; then
            build_from_dockerfile
        else
            say "Rust builder image $RUST_IMAGE not available: using a host-built binary"
            build_with_host_binary
        fi
        ;;
    *) die "RAFKA_BUILD_MODE must be auto, docker or host (got $MODE)" ;;
esac
ensure_kcat_image
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "built $IMAGE: $((size / 1000000)) MB, in $(($(date +%s) - start)) s"
