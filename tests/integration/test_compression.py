"""Compression on the produce path, as Kafka's LogValidator does it.

- A topic's `compression.type` (uncompressed, gzip, snappy, lz4, zstd) makes the broker rewrite
  batches that came in another codec; `producer` (the default) stores them as they came. What is
  stored is checked by reading the partition's `.log` segment straight from the data dir and
  parsing the v2 batch headers (attributes bits 0-2 are the codec), and every client reads the
  data back unchanged (keys, values, headers, timestamps).
- Compressed batches are decompressed and validated (record count, offset deltas, framing); a
  decompression bomb is refused without exhausting memory.
- Compacted topics refuse records without a key (INVALID_RECORD), compressed or not.
- Idempotent producers keep their sequence state on rewritten batches.
"""
from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import crc32c
import pytest
from confluent_kafka import KafkaError, TopicPartition

from helpers import ck_consumer, ck_create_topic, ck_producer, ck_watermarks, wait_until

CODEC_IDS = {"none": 0, "uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
PRODUCER_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TOPIC_CODECS = ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]
# Compressible, so that librdkafka (which sends a batch uncompressed when compressing does not
# make it smaller) really compresses.
FILLER = b"|compressible-filler" * 8


# ---- the log on disk -------------------------------------------------------------------------

def segment_batches(broker, topic: str, partition: int = 0) -> list[dict]:
    """Every batch header in the partition's .log segments, in log order."""
    dirs = [d for d in Path(broker.data_dir).rglob(f"{topic}-{partition}") if d.is_dir()]
    assert len(dirs) == 1, f"partition dir of {topic}-{partition}: {dirs}"
    out = []
    for seg in sorted(dirs[0].glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            (base_offset, length) = struct.unpack_from(">qi", data, pos)
            end = pos + 12 + length
            assert end <= len(data), f"torn batch in {seg}"
            (magic,) = struct.unpack_from(">b", data, pos + 16)
            assert magic == 2
            (crc,) = struct.unpack_from(">I", data, pos + 17)
            assert crc == crc32c.crc32c(data[pos + 21:end]), f"bad CRC in {seg} at {pos}"
            (attributes, last_delta, base_ts, max_ts, pid, epoch, base_seq, count) = \
                struct.unpack_from(">hiqqqhii", data, pos + 21)
            out.append({
                "base_offset": base_offset, "codec": attributes & 7,
                "log_append_time": bool(attributes & 8), "transactional": bool(attributes & 16),
                "control": bool(attributes & 32), "last_offset_delta": last_delta,
                "base_timestamp": base_ts, "max_timestamp": max_ts, "producer_id": pid,
                "producer_epoch": epoch, "base_sequence": base_seq, "count": count,
                "bytes": data[pos:end],
            })
            pos = end
    return out


def stored_records(batch: dict) -> list:
    """Decodes one stored batch with kafka-python's own record reader (so the broker's
    compressed output is checked against an independent decoder)."""
    from kafka.record.default_records import DefaultRecordBatch
    return list(DefaultRecordBatch(batch["bytes"]))


def assert_stored_codec(broker, topic: str, expected: int, n: int):
    """All `n` records are in the log, and every batch holding them uses codec `expected`."""
    def all_there():
        bs = segment_batches(broker, topic)
        return bs if sum(b["count"] for b in bs) >= n else None
    batches = wait_until(all_there, 10, what=f"{n} records of {topic} in the segment")
    codecs = {b["codec"] for b in batches}
    assert codecs == {expected}, f"{topic}: stored codecs {codecs}, expected {expected}"
    assert sum(b["count"] for b in batches) == n
    return batches


# ---- data ------------------------------------------------------------------------------------

def messages(n: int, tag: str, keys: bool = True, null_headers: bool = True) -> list[tuple]:
    """(key, value, timestamp_ms, headers) tuples; some keys and values are null (never both:
    kafka-python refuses that), some header values are null (kafka-python cannot send those),
    every record has its own CreateTime timestamp."""
    base_ts = 1_700_000_000_000
    out = []
    for i in range(n):
        key = None if (not keys or i % 7 == 3) else f"{tag}-k{i}".encode()
        value = None if (i % 11 == 5 and key is not None) else f"{tag}-{i:06d}".encode() + FILLER
        headers = [("h1", f"v{i}".encode()), ("empty", b"")] if i % 3 else []
        if i % 5 == 0 and null_headers:
            headers.append(("null", None))
        out.append((key, value, base_ts + i * 17, headers))
    return out


def ck_produce(broker, topic: str, msgs, codec: str, **extra) -> None:
    conf = {"compression.type": codec, "linger.ms": 20, "acks": "all"}
    conf.update(extra)
    p = ck_producer(broker, **conf)
    errs = []
    for key, value, ts, headers in msgs:
        p.produce(topic, key=key, value=value, timestamp=ts, headers=headers, partition=0,
                  on_delivery=lambda e, m: e is not None and errs.append(e))
    assert p.flush(30) == 0
    assert not errs, errs[:3]


def ck_read(broker, topic: str, n: int) -> list[tuple]:
    c = ck_consumer(broker)
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                    continue
                ts_type, ts = m.timestamp()
                headers = [(k, v) for k, v in (m.headers() or [])]
                out.append((m.offset(), m.key(), m.value(), ts, headers))
    finally:
        c.close()
    return out


def kp_read(broker, topic: str, n: int) -> list[tuple]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      fetch_max_wait_ms=100)
    out = []
    try:
        tp = KTP(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend((r.offset, r.key, r.value, r.timestamp, list(r.headers)) for r in recs)
    finally:
        c.close()
    return out


def expect(msgs) -> list[tuple]:
    return [(i, k, v, ts, list(h)) for i, (k, v, ts, h) in enumerate(msgs)]


def create(broker, topic: str, config: dict | None = None) -> None:
    ck_create_topic(broker, topic, 1, config or {})


# ---- (a) a zstd topic stores zstd ------------------------------------------------------------

def test_zstd_topic_stores_uncompressed_produce_as_zstd(broker, unique_topic):
    create(broker, unique_topic, {"compression.type": "zstd"})
    msgs = messages(300, "a")
    ck_produce(broker, unique_topic, msgs, "none")
    batches = assert_stored_codec(broker, unique_topic, CODEC_IDS["zstd"], len(msgs))
    # The broker's zstd batches decode with an independent reader, records unchanged.
    decoded = [r for b in batches for r in stored_records(b)]
    assert [(r.offset, r.key, r.value, r.timestamp, list(r.headers)) for r in decoded] \
        == expect(msgs)
    for b in batches:
        assert not b["log_append_time"]
        assert b["max_timestamp"] == max(r.timestamp for r in stored_records(b))
    assert ck_read(broker, unique_topic, len(msgs)) == expect(msgs)
    assert kp_read(broker, unique_topic, len(msgs)) == expect(msgs)


def test_log_append_time_topic_with_recompression(broker, unique_topic):
    create(broker, unique_topic, {"compression.type": "lz4",
                                  "message.timestamp.type": "LogAppendTime"})
    msgs = messages(50, "lat")
    before = int(time.time() * 1000)
    ck_produce(broker, unique_topic, msgs, "gzip")
    after = int(time.time() * 1000)
    batches = assert_stored_codec(broker, unique_topic, CODEC_IDS["lz4"], len(msgs))
    for b in batches:
        assert b["log_append_time"]
        assert before - 1000 <= b["max_timestamp"] <= after + 1000
    got = ck_read(broker, unique_topic, len(msgs))
    stamps = {ts for _, _, _, ts, _ in got}
    assert all(before - 1000 <= ts <= after + 1000 for ts in stamps), stamps
    assert [(o, k, v, h) for o, k, v, _, h in got] == \
        [(o, k, v, h) for o, k, v, _, h in expect(msgs)]


@pytest.mark.broker_config({"compression.type": "snappy"})
def test_broker_compression_type_is_the_topic_default(broker, unique_topic):
    create(broker, unique_topic)
    create(broker, f"{unique_topic}-own", {"compression.type": "producer"})
    for topic, stored in [(unique_topic, "snappy"), (f"{unique_topic}-own", "gzip")]:
        msgs = messages(40, "b")
        ck_produce(broker, topic, msgs, "gzip")
        assert_stored_codec(broker, topic, CODEC_IDS[stored], len(msgs))
        assert ck_read(broker, topic, len(msgs)) == expect(msgs)


# ---- (b) every producer codec x every topic codec --------------------------------------------

def expected_codec(topic_codec: str, producer_codec: str) -> int:
    return CODEC_IDS[producer_codec if topic_codec == "producer" else topic_codec]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("topic_codec", TOPIC_CODECS)
def test_codec_matrix_confluent(broker, unique_topic, topic_codec):
    for producer_codec in PRODUCER_CODECS:
        topic = f"{unique_topic}-{producer_codec}"
        create(broker, topic, {"compression.type": topic_codec})
        msgs = messages(120, producer_codec)
        ck_produce(broker, topic, msgs, producer_codec)
        assert_stored_codec(broker, topic, expected_codec(topic_codec, producer_codec), len(msgs))
        assert ck_read(broker, topic, len(msgs)) == expect(msgs), (topic_codec, producer_codec)
        assert kp_read(broker, topic, len(msgs)) == expect(msgs), (topic_codec, producer_codec)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("topic_codec", ["producer", "uncompressed", "snappy", "zstd"])
def test_codec_matrix_kafka_python(broker, unique_topic, topic_codec):
    from kafka import KafkaProducer
    for producer_codec in PRODUCER_CODECS:
        topic = f"{unique_topic}-{producer_codec}"
        create(broker, topic, {"compression.type": topic_codec})
        msgs = messages(120, producer_codec, null_headers=False)
        p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20,
                          compression_type=None if producer_codec == "none" else producer_codec)
        try:
            futs = [p.send(topic, key=k, value=v, timestamp_ms=ts, headers=h, partition=0)
                    for k, v, ts, h in msgs]
            p.flush(30)
            for f in futs:
                f.get(timeout=30)
        finally:
            p.close(10)
        assert_stored_codec(broker, topic, expected_codec(topic_codec, producer_codec), len(msgs))
        assert ck_read(broker, topic, len(msgs)) == expect(msgs), (topic_codec, producer_codec)


def kcat_librdkafka_version() -> tuple[int, ...]:
    out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def kcat_sends_codec(codec: str) -> bool:
    """librdkafka before 2.11.1 compresses gzip, snappy and lz4 only if the broker supports
    Produce v0 (it asks for the exact range [0, 0]; librdkafka#5130). Kafka 4 removed Produce
    v0-v2 (KIP-896) and so do we, so such a client sends those batches uncompressed to Kafka 4
    and to rafka alike; zstd needs [0, 7], which v3-v7 satisfy."""
    return codec == "zstd" or kcat_librdkafka_version() >= (2, 11, 1)


@pytest.mark.parametrize("topic_codec", ["producer", "gzip"])
def test_kcat_codecs(broker, unique_topic, topic_codec):
    for producer_codec in ["gzip", "snappy", "lz4", "zstd"]:
        topic = f"{unique_topic}-{producer_codec}"
        create(broker, topic, {"compression.type": topic_codec})
        lines = [f"k{i}:{producer_codec}-{i}".encode() + FILLER for i in range(200)]
        subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0",
                        "-z", producer_codec, "-K:", "-X", "linger.ms=20"],
                       input=b"\n".join(lines) + b"\n", check=True, timeout=60)
        sent = producer_codec if kcat_sends_codec(producer_codec) else "none"
        assert_stored_codec(broker, topic, expected_codec(topic_codec, sent), len(lines))
        out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0",
                              "-o", "beginning", "-e", "-f", "%k:%s\n"],
                             capture_output=True, check=True, timeout=60).stdout
        assert out.splitlines() == lines


# ---- (c) compacted topics need keys ----------------------------------------------------------

@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_compacted_topic_refuses_keyless_records(broker, unique_topic, codec):
    create(broker, unique_topic, {"cleanup.policy": "compact"})
    p = ck_producer(broker, **{"compression.type": codec, "linger.ms": 0})
    results = []
    p.produce(unique_topic, value=b"no key" + FILLER, partition=0,
              on_delivery=lambda e, m: results.append(e))
    assert p.flush(30) == 0
    (err,) = results
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, err
    results.clear()
    p.produce(unique_topic, key=b"k", value=b"with key" + FILLER, partition=0,
              on_delivery=lambda e, m: results.append(e))
    assert p.flush(30) == 0
    assert results == [None]
    # A batch mixing keyed and keyless records is refused as a whole. librdkafka only puts the ten
    # records into one batch if it has the partition's leader and a connection to it before the
    # first one: a record produced while metadata is still being fetched can go out on its own
    # (CI saw record 0 stored alone). So a keyed record goes first, alone, and the linger is long
    # enough that the burst below cannot be split by a scheduling hiccup.
    p = ck_producer(broker, **{"compression.type": codec, "linger.ms": 1000})
    results.clear()
    p.produce(unique_topic, key=b"warm", value=b"up" + FILLER, partition=0,
              on_delivery=lambda e, m: results.append(e))
    assert p.flush(30) == 0
    assert results == [None]
    results.clear()
    for i in range(10):
        p.produce(unique_topic, key=None if i == 6 else b"k%d" % i, value=b"v" + FILLER,
                  partition=0, on_delivery=lambda e, m: results.append(e))
    assert p.flush(30) == 0
    assert len(results) == 10
    assert all(e is not None and e.code() == KafkaError.INVALID_RECORD for e in results), results
    got = ck_read(broker, unique_topic, 2)
    assert [(k, v) for _, k, v, _, _ in got] == [(b"k", b"with key" + FILLER),
                                                 (b"warm", b"up" + FILLER)]
    assert ck_watermarks(broker, unique_topic) == (0, 2)


def test_compacted_topic_keyless_kafka_python_and_raw_message(broker, unique_topic):
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError
    create(broker, unique_topic, {"cleanup.policy": "compact,delete"})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="zstd", retries=0)
    try:
        with pytest.raises(InvalidRecordError):
            p.send(unique_topic, value=b"no key", partition=0).get(timeout=30)
        assert p.send(unique_topic, key=b"k", value=b"v", partition=0).get(timeout=30).offset == 0
    finally:
        p.close(10)
    # Kafka's own words, and the index of the offending record, in the v8 response.
    batch = encode_batch([(b"k0", b"v"), (None, b"v"), (b"k2", b"v")])
    r = produce_raw(broker, unique_topic, batch)
    assert r["error_code"] == 87, r
    assert r["record_errors"] and r["record_errors"][0][0] == 1, r
    assert "Compacted topic cannot accept message without key in topic partition " \
        f"{unique_topic}-0" in r["record_errors"][0][1], r


# ---- (d) idempotent producers on a recompressing topic ---------------------------------------

def test_idempotent_producer_on_recompressing_topic(broker, unique_topic):
    create(broker, unique_topic, {"compression.type": "zstd"})
    p = ck_producer(broker, **{"enable.idempotence": True, "linger.ms": 5,
                               "compression.type": "lz4", "batch.num.messages": 50})
    acked = []
    errs = []

    def cb(err, msg):
        if err is not None:
            errs.append(err)
        else:
            acked.append(int(msg.value()[:9]))

    n = 3000
    for i in range(n):
        p.produce(unique_topic, key=b"k%d" % (i % 10), value=b"%09d" % i + FILLER, partition=0,
                  on_delivery=cb)
        if i % 100 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not errs, errs[:3]
    assert sorted(acked) == list(range(n))
    batches = assert_stored_codec(broker, unique_topic, CODEC_IDS["zstd"], n)
    assert len(batches) > 5, "the test needs several batches"
    # Sequence state carried over: one producer, consecutive sequences batch after batch.
    assert len({(b["producer_id"], b["producer_epoch"]) for b in batches}) == 1
    assert batches[0]["producer_id"] >= 0
    seq = 0
    for b in batches:
        assert b["base_sequence"] == seq and b["base_offset"] == seq, b
        seq += b["count"]
    got = ck_read(broker, unique_topic, n)
    assert [int(v[:9]) for _, _, v, _, _ in got] == list(range(n))


def test_idempotent_retry_of_rewritten_batch_is_a_duplicate(broker, unique_topic):
    """A retried batch (same producer id, epoch, sequence) is answered with its first offsets and
    not written again, even though what is stored is a rewritten copy."""
    create(broker, unique_topic, {"compression.type": "gzip"})
    pid = 4242
    first = encode_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], producer=(pid, 0, 0))
    second = encode_batch([(b"d", b"4"), (b"e", b"5")], producer=(pid, 0, 3), codec="snappy")
    assert produce_raw(broker, unique_topic, first)["base_offset"] == 0
    again = produce_raw(broker, unique_topic, first)
    assert (again["error_code"], again["base_offset"]) == (0, 0), again
    assert produce_raw(broker, unique_topic, second)["base_offset"] == 3
    assert produce_raw(broker, unique_topic, second)["base_offset"] == 3
    gap = encode_batch([(b"f", b"6")], producer=(pid, 0, 9))
    assert produce_raw(broker, unique_topic, gap)["error_code"] == 45  # OUT_OF_ORDER_SEQUENCE
    batches = assert_stored_codec(broker, unique_topic, CODEC_IDS["gzip"], 5)
    assert [(b["producer_id"], b["base_sequence"], b["base_offset"]) for b in batches] == \
        [(pid, 0, 0), (pid, 3, 3)]
    assert [(r.key, r.value) for b in batches for r in stored_records(b)] == \
        [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4"), (b"e", b"5")]
    # The producer state rebuilt from the rewritten batches after a crash knows them too.
    broker.kill9()
    broker.start()
    again = wait_until(lambda: (lambda r: r if r["error_code"] == 0 else None)(
        produce_raw(broker, unique_topic, second)), 30, what="produce after restart")
    assert again["base_offset"] == 3, again
    third = encode_batch([(b"f", b"6")], producer=(pid, 0, 5))
    assert produce_raw(broker, unique_topic, third)["base_offset"] == 5
    assert [b["count"] for b in segment_batches(broker, unique_topic)] == [3, 2, 1]


def test_rewrite_that_outgrows_max_message_bytes_is_too_large(broker, unique_topic):
    create(broker, unique_topic, {"compression.type": "uncompressed",
                                  "max.message.bytes": "20000"})
    recs = [(b"k%d" % i, b"z" * 1000) for i in range(50)]
    small = encode_batch(recs, codec="zstd")
    assert len(small) < 20000
    r = produce_raw(broker, unique_topic, small)
    assert r["error_code"] == 10, r  # MESSAGE_TOO_LARGE
    assert "exceeds the maximum configured size of 20000" in (r["error_message"] or ""), r
    r = produce_raw(broker, unique_topic, encode_batch(recs[:5], codec="zstd"))
    assert (r["error_code"], r["base_offset"]) == (0, 0), r
    assert_stored_codec(broker, unique_topic, 0, 5)


def test_transactional_flag_survives_rewrite(broker, unique_topic):
    from confluent_kafka import Producer
    create(broker, unique_topic, {"compression.type": "zstd"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique_topic,
                  "compression.type": "gzip", "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(20):
        p.produce(unique_topic, key=b"k", value=b"%d" % i + FILLER, partition=0)
    p.commit_transaction(30)
    batches = wait_until(lambda: [b for b in segment_batches(broker, unique_topic)
                                  if b["control"]] and segment_batches(broker, unique_topic),
                         10, what="commit marker")
    data = [b for b in batches if not b["control"]]
    assert data and all(b["transactional"] and b["codec"] == 4 for b in data), data
    c = ck_consumer(broker, **{"isolation.level": "read_committed"})
    try:
        c.assign([TopicPartition(unique_topic, 0, 0)])
        vals = []
        deadline = time.monotonic() + 30
        while len(vals) < 20 and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                if not m.error():
                    vals.append(m.value())
        assert vals == [b"%d" % i + FILLER for i in range(20)]
    finally:
        c.close()


# ---- validation of compressed batches over the wire ------------------------------------------

def test_bad_compressed_batches_are_refused(broker, unique_topic):
    create(broker, unique_topic)
    recs = [(b"k%d" % i, b"v" + FILLER) for i in range(5)]
    # Declared count 6, five records inside.
    r = produce_raw(broker, unique_topic, encode_batch(recs, codec="gzip", count=6))
    assert r["error_code"] == 87, r
    # Offset deltas 0, 1, 3, 4, 5.
    r = produce_raw(broker, unique_topic, encode_batch(recs, codec="zstd", deltas=[0, 1, 3, 4, 5]))
    assert r["error_code"] == 87, r
    # Not a zstd frame at all (valid CRC over garbage).
    r = produce_raw(broker, unique_topic, encode_batch(recs, codec="zstd", raw_payload=b"\x01" * 64))
    assert r["error_code"] in (2, 87), r
    # Good batches still go in, and nothing of the bad ones was written.
    r = produce_raw(broker, unique_topic, encode_batch(recs, codec="lz4"))
    assert (r["error_code"], r["base_offset"]) == (0, 0), r
    assert [b["count"] for b in segment_batches(broker, unique_topic)] == [5]


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_wrong_max_timestamp_is_corrected_in_place(broker, unique_topic, codec):
    """Kafka writes the records' real maximum timestamp into a batch it keeps as it came."""
    create(broker, unique_topic)
    recs = [(b"k%d" % i, b"v") for i in range(4)]
    r = produce_raw(broker, unique_topic, encode_batch(recs, codec=codec, timestamp=5_000,
                                                       max_ts=4_000))
    assert r["error_code"] == 0, r
    (b,) = segment_batches(broker, unique_topic)
    assert (b["codec"], b["max_timestamp"], b["base_timestamp"]) == \
        (CODEC_IDS[codec], 5_003, 5_000), b


def test_decompression_bomb_is_refused_without_exhausting_memory(broker, unique_topic):
    import zstandard
    create(broker, unique_topic)
    # 1 GiB of zeros compress to a few tens of KiB; streamed so this test stays small too.
    comp = zstandard.ZstdCompressor(level=1).compressobj()
    chunk = b"\0" * (1 << 20)
    payload = b"".join(comp.compress(chunk) for _ in range(1024)) + comp.flush()
    assert len(payload) < 1_000_000
    rss_before = broker.rss_kib()
    r = produce_raw(broker, unique_topic, encode_batch([(b"k", b"v")] * 3, codec="zstd",
                                                       raw_payload=payload))
    assert r["error_code"] == 87, r
    grown_mib = (broker.rss_kib() - rss_before) / 1024
    assert grown_mib < 256, f"broker grew by {grown_mib:.0f} MiB on a bomb"
    # The broker is fine afterwards.
    r = produce_raw(broker, unique_topic, encode_batch([(b"k", b"v")], codec="zstd"))
    assert (r["error_code"], r["base_offset"]) == (0, 0), r


# ---- old fetch versions and zstd topics -------------------------------------------------------

def fetch_error_raw(broker, topic: str, version: int) -> int:
    """Error code of partition 0 in a Fetch (v9 or v10: same layout) from offset 0."""
    t = topic.encode()
    body = struct.pack(">hhih", 1, version, 9, 4) + b"test"
    body += struct.pack(">iiiibii", -1, 0, 1, 1 << 20, 0, 0, -1)
    body += struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iiiqqi", 1, 0, -1, 0, -1, 1 << 20)
    body += struct.pack(">i", 0)  # forgotten topics
    with socket.create_connection((broker.host, broker.port), timeout=30) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    # correlation id, throttle, error, session id, topics count, topic name
    pos = 4 + 4 + 2 + 4 + 4
    (n,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + n + 4  # name, partitions count
    _index, error = struct.unpack_from(">ih", resp, pos)
    return error


def test_fetch_before_v10_of_a_zstd_topic_is_unsupported(broker, unique_topic):
    zstd_topic = f"{unique_topic}-zstd"
    create(broker, zstd_topic, {"compression.type": "zstd"})
    create(broker, unique_topic, {"compression.type": "gzip"})
    for topic in (zstd_topic, unique_topic):
        ck_produce(broker, topic, messages(5, "f"), "none")
    assert fetch_error_raw(broker, zstd_topic, 9) == 76  # UNSUPPORTED_COMPRESSION_TYPE
    assert fetch_error_raw(broker, zstd_topic, 10) == 0
    assert fetch_error_raw(broker, unique_topic, 9) == 0


def test_bad_compression_level_is_refused_at_topic_creation(broker, unique_topic):
    from confluent_kafka.admin import NewTopic
    from helpers import ck_admin
    admin = ck_admin(broker)
    for key, value in [("compression.zstd.level", "23"), ("compression.gzip.level", "0"),
                       ("compression.lz4.level", "18"), ("compression.type", "brotli")]:
        fs = admin.create_topics([NewTopic(unique_topic, 1, 1, config={key: value})])
        with pytest.raises(Exception) as e:
            fs[unique_topic].result(30)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, (key, e.value)
    create(broker, unique_topic, {"compression.type": "zstd", "compression.zstd.level": "-3"})
    ck_produce(broker, unique_topic, messages(20, "lvl"), "none")
    assert_stored_codec(broker, unique_topic, CODEC_IDS["zstd"], 20)
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, unique_topic)
    cfg = admin.describe_configs([res])[res].result(30)
    assert cfg["compression.type"].value == "zstd"
    assert cfg["compression.zstd.level"].value == "-3"
    assert cfg["compression.gzip.level"].value == "-1"
    assert cfg["compression.lz4.level"].value == "9"


# ---- a raw v2 batch encoder and Produce v8 client --------------------------------------------

def varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def nullable(b: bytes | None) -> bytes:
    return varint(-1) if b is None else varint(len(b)) + b


def compress(codec: str, data: bytes) -> bytes:
    if codec == "none":
        return data
    if codec == "gzip":
        import gzip
        return gzip.compress(data)
    if codec == "snappy":
        from kafka.codec import snappy_encode
        return snappy_encode(data)
    if codec == "lz4":
        import lz4.frame
        return lz4.frame.compress(data)
    if codec == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(codec)


def encode_batch(records, codec: str = "none", producer=(-1, -1, -1), count: int | None = None,
                 deltas: list[int] | None = None, raw_payload: bytes | None = None,
                 timestamp: int = 1_700_000_000_000, max_ts: int | None = None) -> bytes:
    """One v2 batch with a correct CRC; `count`, `deltas` and `raw_payload` make it lie."""
    body = bytearray()
    for i, (k, v) in enumerate(records):
        delta = deltas[i] if deltas else i
        rec = b"\0" + varint(i) + varint(delta) + nullable(k) + nullable(v) + varint(0)
        body += varint(len(rec)) + rec
    payload = raw_payload if raw_payload is not None else compress(codec, bytes(body))
    n = len(records) if count is None else count
    pid, epoch, seq = producer
    if max_ts is None:
        max_ts = timestamp + len(records) - 1
    after_crc = struct.pack(">hiqqqhii", CODEC_IDS[codec], n - 1, timestamp,
                            max_ts, pid, epoch, seq, n) + payload
    crc = crc32c.crc32c(after_crc)
    tail = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(tail)) + tail


def produce_raw(broker, topic: str, batch: bytes, acks: int = -1) -> dict:
    """One Produce v8 request for partition 0; returns that partition's answer."""
    t = topic.encode()
    body = struct.pack(">hhih", 0, 8, 7, 4) + b"test"
    body += struct.pack(">hhi", -1, acks, 30000)
    body += struct.pack(">ih", 1, len(t)) + t + struct.pack(">iii", 1, 0, len(batch)) + batch
    with socket.create_connection((broker.host, broker.port), timeout=30) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    pos = 4  # correlation id

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        (n,) = take(">h")
        if n < 0:
            return None
        s = resp[pos:pos + n].decode()
        pos += n
        return s

    (topics,) = take(">i")
    assert topics == 1
    string()
    (parts,) = take(">i")
    assert parts == 1
    index, error_code, base_offset, log_append_time, log_start = take(">ihqqq")
    (n_errors,) = take(">i")
    record_errors = []
    for _ in range(max(n_errors, 0)):
        (i,) = take(">i")
        record_errors.append((i, string()))
    message = string()
    return {"error_code": error_code, "base_offset": base_offset,
            "log_append_time": log_append_time, "record_errors": record_errors,
            "error_message": message}


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf
