#!/usr/bin/env python3
"""Stand-in for target/release/rafka, for working on the test suite itself.

Runs librdkafka's built-in mock cluster (through confluent-kafka) and forwards the port named in
`--override listeners=PLAINTEXT://HOST:PORT` to it, then prints the same "Kafka Server started"
line rafka prints. Use it with `RAFKA_BIN=tests/tools/mock_broker.py pytest tests/integration`.

It is NOT a reference: the mock advertises its own port (clients bootstrap through the forwarder and
then talk to the mock directly), keeps data in memory only (restarts lose everything), auto-creates
topics with its own default partition count, and lacks most admin APIs. Tests that fail only
under the mock are expected; the real target is rafka.
"""
import asyncio
import signal
import sys

from confluent_kafka import Producer


def main() -> int:
    overrides = {}
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--override" and args:
            k, _, v = args.pop(0).partition("=")
            overrides[k] = v
        elif a == "--config" and args:
            args.pop(0)
    host, _, port = overrides["listeners"].split("://", 1)[1].rpartition(":")
    # The mock cluster lives as long as this client handle does.
    handle = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "", "log_level": 3})
    md = handle.list_topics(timeout=10)
    target = next(iter(md.brokers.values()))
    print(f"mock cluster at {target.host}:{target.port}", file=sys.stderr, flush=True)

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle_conn(reader, writer):
        try:
            r2, w2 = await asyncio.open_connection(target.host, target.port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))

    async def serve():
        server = await asyncio.start_server(handle_conn, host, int(port), reuse_address=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("INFO Kafka Server started (mock)", file=sys.stderr, flush=True)
        async with server:
            await stop.wait()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
