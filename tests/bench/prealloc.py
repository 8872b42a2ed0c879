"""Benchmark program (not a test): does preallocating a segment file (Kafka's `log.preallocate`,
posix_fallocate) make buffered appends cheaper in CPU? Writes 1 GiB in 1 MiB pwrites to a fresh
file and to a preallocated one, three times each, and prints this process's CPU seconds per GB.

    python3 tests/bench/prealloc.py [DIR]      (DIR: a directory on the data file system)
"""
from __future__ import annotations

import os
import resource
import sys
import time

TOTAL_BYTES = 1 << 30
CHUNK_BYTES = 1 << 20


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(directory: str, prealloc: bool) -> None:
    path = os.path.join(directory, "rafka-prealloc-bench.dat")
    if os.path.exists(path):
        os.unlink(path)
    os.sync()  # start without someone else's dirty pages
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        if prealloc:
            os.posix_fallocate(fd, 0, TOTAL_BYTES)
        buf = os.urandom(CHUNK_BYTES)
        c0, t0 = cpu_seconds(), time.monotonic()
        for off in range(0, TOTAL_BYTES, CHUNK_BYTES):
            os.pwrite(fd, buf, off)
        cpu, wall = cpu_seconds() - c0, time.monotonic() - t0
    finally:
        os.close(fd)
        os.unlink(path)
        os.sync()
    gb = TOTAL_BYTES / 1e9
    print(f"preallocated={prealloc!s:5}  {cpu / gb:.3f} CPU-s/GB  {gb / wall:.2f} GB/s", flush=True)


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    for _ in range(3):
        run(directory, prealloc=False)
        run(directory, prealloc=True)


if __name__ == "__main__":
    main()
