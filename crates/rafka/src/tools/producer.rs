//! `kafka-console-producer`: reads lines from stdin and produces them, parsing keys and headers
//! as Kafka's `LineMessageReader` does, batching per partition (`batch.size`, `linger.ms` =
//! `--timeout`), partitioning keyed records with Kafka's murmur2 and unkeyed ones stickily, and
//! compressing with rafka-records' codecs. Broker errors are printed and make the exit code 1.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_records::{BatchBuilder, Compression};

use super::client::{error_text, Cluster};
use super::props::{self, Props};

#[derive(Debug, Parser)]
#[command(
    name = "kafka-console-producer",
    about = "This tool helps to read data from standard input and publish it to Kafka.",
    disable_version_flag = true
)]
pub struct Args {
    /// REQUIRED: The server(s) to connect to.
    #[arg(long = "bootstrap-server", value_name = "String: server to connect to")]
    bootstrap_server: Option<String>,
    /// REQUIRED: The topic id to produce messages to.
    #[arg(long, value_name = "String: topic")]
    topic: Option<String>,
    /// The compression codec: either 'none', 'gzip', 'snappy', 'lz4', or 'zstd'. If specified
    /// without value, then it defaults to 'gzip'
    #[arg(long = "compression-codec", value_name = "String: compression-codec", num_args = 0..=1, default_missing_value = "gzip")]
    compression_codec: Option<String>,
    /// The required acks of the producer requests (all, -1, 0, 1).
    #[arg(
        long = "request-required-acks",
        value_name = "String: request required acks"
    )]
    request_required_acks: Option<String>,
    /// The ack timeout of the producer requests. Value must be non-negative and non-zero.
    #[arg(
        long = "request-timeout-ms",
        value_name = "Integer: request timeout ms"
    )]
    request_timeout_ms: Option<u64>,
    /// Number of messages to send in a single batch if they are not being sent synchronously.
    #[arg(long = "batch-size", value_name = "Integer: size")]
    batch_size: Option<usize>,
    /// If set, message send requests to the brokers are synchronous, one at a time as they arrive.
    #[arg(long)]
    sync: bool,
    /// If set and the producer is running in asynchronous mode, this gives the maximum amount of
    /// time a message will queue awaiting sufficient batch size (ms).
    #[arg(long, value_name = "Long: timeout_ms")]
    timeout: Option<u64>,
    /// Brokers can fail receiving the message for multiple reasons; this is the number of retries.
    #[arg(long = "message-send-max-retries", value_name = "Integer")]
    message_send_max_retries: Option<u32>,
    /// The time the producer blocks waiting for metadata (ms).
    #[arg(long = "max-block-ms", value_name = "Long: max block on send")]
    max_block_ms: Option<u64>,
    /// A mechanism to pass user-defined properties in the form key=value to the producer.
    #[arg(long = "producer-property", value_name = "String: producer_prop")]
    producer_property: Vec<String>,
    /// Producer config properties file. Note that [producer-property] takes precedence over
    /// this config.
    #[arg(long = "producer.config", value_name = "String: config file")]
    producer_config: Option<PathBuf>,
    /// A mechanism to pass user-defined properties in the form key=value to the message reader
    /// (parse.key, key.separator, parse.headers, headers.delimiter, headers.separator,
    /// headers.key.separator, null.marker, ignore.error).
    #[arg(long, value_name = "String: prop")]
    property: Vec<String>,
    /// Read the records from this file instead of stdin.
    #[arg(long = "reader-config", value_name = "String: config file")]
    reader_config: Option<PathBuf>,
    /// Display Kafka version.
    #[arg(long)]
    version: bool,
}

/// One record as read from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Kafka's `LineMessageReader` settings.
#[derive(Debug, Clone)]
pub struct LineReader {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    ignore_error: bool,
    null_marker: Option<String>,
}

impl LineReader {
    pub fn from_props(p: &Props) -> anyhow::Result<LineReader> {
        let flag = |k: &str| {
            p.get(k)
                .map(|v| v.trim().eq_ignore_ascii_case("true"))
                .unwrap_or(false)
        };
        let s = |k: &str, d: &str| p.get(k).cloned().unwrap_or_else(|| d.to_string());
        let r = LineReader {
            parse_key: flag("parse.key"),
            key_separator: s("key.separator", "\t"),
            parse_headers: flag("parse.headers"),
            headers_delimiter: s("headers.delimiter", "\t"),
            headers_separator: s("headers.separator", ","),
            headers_key_separator: s("headers.key.separator", ":"),
            ignore_error: flag("ignore.error"),
            null_marker: p.get("null.marker").cloned(),
        };
        if r.headers_separator == r.headers_key_separator {
            bail!("headers.separator and headers.key.separator must not be equal");
        }
        if r.parse_key && r.parse_headers && r.key_separator == r.headers_delimiter {
            bail!("headers.delimiter and key.separator may not be equal");
        }
        Ok(r)
    }

    fn nullable(&self, s: &str) -> Option<Vec<u8>> {
        if self.null_marker.as_deref() == Some(s) {
            None
        } else {
            Some(s.as_bytes().to_vec())
        }
    }

    /// Parses line number `n` (1-based, for error texts).
    pub fn parse(&self, line: &str, n: u64) -> anyhow::Result<LineRecord> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            match line.find(&self.headers_delimiter) {
                Some(i) => {
                    let h = &line[..i];
                    rest = &line[i + self.headers_delimiter.len()..];
                    for pair in h.split(&self.headers_separator) {
                        let (k, v) = match pair.find(&self.headers_key_separator) {
                            Some(j) => (
                                &pair[..j],
                                Some(&pair[j + self.headers_key_separator.len()..]),
                            ),
                            None if self.ignore_error => (pair, None),
                            None => bail!(
                                "No header key separator found in pair '{pair}' on line number {n}"
                            ),
                        };
                        if self.null_marker.as_deref() == Some(k) {
                            bail!("Header keys should not be equal to the null marker '{k}' as they can't be null");
                        }
                        headers.push((k.to_string(), v.and_then(|v| self.nullable(v))));
                    }
                }
                None if self.ignore_error => {}
                None => bail!("No headers delimiter found on line number {n}: '{line}'"),
            }
        }
        let (key, value) = if self.parse_key {
            match rest.find(&self.key_separator) {
                Some(i) => (
                    self.nullable(&rest[..i]),
                    self.nullable(&rest[i + self.key_separator.len()..]),
                ),
                None if self.ignore_error => (None, self.nullable(rest)),
                None => bail!("No key separator found on line number {n}: '{line}'"),
            }
        } else {
            (None, self.nullable(rest))
        };
        Ok(LineRecord {
            key,
            value,
            headers,
        })
    }
}

/// Kafka's `Utils.murmur2`, the default partitioner's hash for keyed records.
pub fn murmur2(data: &[u8]) -> i32 {
    let len = data.len() as u32;
    let seed: u32 = 0x9747_b28c;
    let m: u32 = 0x5bd1_e995;
    let r = 24;
    let mut h: u32 = seed ^ len;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record (Kafka's `BuiltInPartitioner.partitionForKey`).
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    ((murmur2(key) & 0x7fff_ffff) as usize) % partitions.max(1)
}

/// `--compression-codec` / `compression.type`.
pub fn parse_codec(s: &str) -> anyhow::Result<Compression> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "none" | "" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("Invalid value {other} for configuration compression.type: String must be one of: none, gzip, snappy, lz4, zstd"),
    })
}

/// `acks` to the wire value.
pub fn parse_acks(s: &str) -> anyhow::Result<i16> {
    Ok(match s.trim() {
        "all" | "-1" => -1,
        "0" => 0,
        "1" => 1,
        other => bail!(
            "Invalid value {other} for configuration acks: String must be one of: all, -1, 0, 1"
        ),
    })
}

struct Settings {
    topic: String,
    acks: i16,
    codec: Compression,
    batch_bytes: usize,
    linger: Duration,
    request_timeout: Duration,
    max_block: Duration,
    retries: u32,
    sync: bool,
    /// `enable.idempotence` (Kafka's default with acks=all): producer id and sequences.
    idempotent: bool,
}

/// The idempotent producer's identity and each partition's next sequence number.
#[derive(Debug, Default)]
struct ProducerIdentity {
    id: i64,
    epoch: i16,
    next_sequence: BTreeMap<usize, i32>,
}

pub fn main(args: Vec<OsString>) -> anyhow::Result<u8> {
    let a: Args = match super::parse_tool_args(args, |a: &Args| a.version) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let Some(topic) = a.topic.clone() else {
        eprintln!("Missing required argument \"[topic]\"");
        return Ok(1);
    };
    // Kafka's precedence: config file < --producer-property < explicit flags.
    let p = props::merged(a.producer_config.as_deref(), &a.producer_property)?;
    if a.bootstrap_server.is_none() && !p.contains_key("bootstrap.servers") {
        eprintln!("Missing required argument \"[bootstrap-server]\"");
        return Ok(1);
    }
    let mut reader_props = match &a.reader_config {
        Some(f) => props::load_file(f)?,
        None => Props::new(),
    };
    for kv in &a.property {
        let (k, v) = props::parse_kv(kv)?;
        reader_props.insert(k, v);
    }
    let reader = LineReader::from_props(&reader_props)?;
    let ms = |flag: Option<u64>, key: &str, default: u64| -> anyhow::Result<Duration> {
        let v = match flag {
            Some(v) => v,
            None => match p.get(key) {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("Invalid value {v} for configuration {key}"))?,
                None => default,
            },
        };
        Ok(Duration::from_millis(v))
    };
    let acks = match &a.request_required_acks {
        Some(v) => parse_acks(v)?,
        None => parse_acks(p.get("acks").map(String::as_str).unwrap_or("-1"))?,
    };
    let codec = match &a.compression_codec {
        Some(c) => parse_codec(c)?,
        None => parse_codec(
            p.get("compression.type")
                .map(String::as_str)
                .unwrap_or("none"),
        )?,
    };
    let settings = Settings {
        topic,
        acks,
        codec,
        batch_bytes: a
            .batch_size
            .or_else(|| p.get("batch.size").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(16384)
            .clamp(1, 64 * 1024 * 1024),
        linger: ms(a.timeout, "linger.ms", 1000)?,
        request_timeout: ms(a.request_timeout_ms, "request.timeout.ms", 30000)?,
        max_block: ms(a.max_block_ms, "max.block.ms", 60000)?,
        retries: a
            .message_send_max_retries
            .or_else(|| p.get("retries").and_then(|v| v.trim().parse().ok()))
            .unwrap_or(3)
            .min(100),
        sync: a.sync,
        idempotent: false,
    };
    // Kafka 4.x: idempotence is on by default and needs acks=all; with other acks it is off
    // unless asked for, which is then an error.
    let mut settings = settings;
    match p
        .get("enable.idempotence")
        .map(|v| v.trim().to_ascii_lowercase())
    {
        Some(v) if v == "true" => {
            if settings.acks != -1 {
                eprintln!("Must set acks to all in order to use the idempotent producer. Otherwise we cannot guarantee idempotence.");
                return Ok(1);
            }
            settings.idempotent = true;
        }
        Some(v) if v == "false" => {}
        _ => settings.idempotent = settings.acks == -1,
    }
    let cfg = props::client_config(
        a.bootstrap_server.as_deref(),
        &p,
        "console-producer",
        settings.request_timeout,
    )?;
    let rt = super::runtime()?;
    match rt.block_on(run(cfg, settings, reader)) {
        Ok(0) => Ok(0),
        Ok(_) => Ok(1),
        Err(e) => {
            eprintln!("ERROR {e:#}");
            Ok(1)
        }
    }
}

/// Lines from stdin on a blocking thread, so batches go out while the user is still typing.
fn spawn_stdin() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the producer; returns the number of records that failed.
async fn run(
    cfg: super::client::ClientConfig,
    s: Settings,
    reader: LineReader,
) -> anyhow::Result<u64> {
    let mut cluster = Cluster::connect(cfg).await?;
    let mut identity = if s.idempotent {
        init_producer_id(&mut cluster).await?
    } else {
        None
    };
    let mut leaders: Option<Vec<(i32, i32)>> = None;
    let mut lines = spawn_stdin();
    let mut pending: Vec<LineRecord> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut first_pending_at = Instant::now();
    let mut line_no = 0u64;
    let mut failed = 0u64;
    let mut sticky = 0usize;
    let mut eof = false;
    while !eof || !pending.is_empty() {
        let linger_left = s.linger.saturating_sub(first_pending_at.elapsed());
        let flush_now = if eof {
            true
        } else if pending.is_empty() {
            match lines.recv().await {
                Some(line) => {
                    push_line(
                        &reader,
                        line?,
                        &mut line_no,
                        &mut pending,
                        &mut pending_bytes,
                        &mut failed,
                    );
                    first_pending_at = Instant::now();
                    false
                }
                None => {
                    eof = true;
                    true
                }
            }
        } else {
            match tokio::time::timeout(linger_left, lines.recv()).await {
                Ok(Some(line)) => {
                    push_line(
                        &reader,
                        line?,
                        &mut line_no,
                        &mut pending,
                        &mut pending_bytes,
                        &mut failed,
                    );
                    false
                }
                Ok(None) => {
                    eof = true;
                    true
                }
                Err(_) => true,
            }
        };
        if !(flush_now || s.sync || pending_bytes >= s.batch_bytes) || pending.is_empty() {
            continue;
        }
        let batch = std::mem::take(&mut pending);
        pending_bytes = 0;
        if leaders.is_none() {
            leaders = Some(
                cluster
                    .partition_leaders(&s.topic, true, s.max_block)
                    .await
                    .map_err(|e| anyhow!("{e:#}"))?,
            );
        }
        let parts = leaders.as_ref().map(|l| l.len()).unwrap_or(1);
        // Sticky partition for unkeyed records: one partition per batch, the next one after.
        sticky = (sticky + 1) % parts.max(1);
        let mut by_partition: BTreeMap<usize, Vec<LineRecord>> = BTreeMap::new();
        for r in batch {
            let p = match &r.key {
                Some(k) => partition_for_key(k, parts),
                None => sticky,
            };
            by_partition.entry(p).or_default().push(r);
        }
        failed += send_batches(
            &mut cluster,
            &s,
            &mut leaders,
            identity.as_mut(),
            by_partition,
        )
        .await?;
    }
    Ok(failed)
}

fn push_line(
    reader: &LineReader,
    line: String,
    line_no: &mut u64,
    pending: &mut Vec<LineRecord>,
    pending_bytes: &mut usize,
    failed: &mut u64,
) {
    *line_no += 1;
    match reader.parse(&line, *line_no) {
        Ok(r) => {
            *pending_bytes += line.len() + 16;
            pending.push(r);
        }
        Err(e) => {
            eprintln!("ERROR {e}");
            *failed += 1;
        }
    }
}

/// Sends one batch per partition to the partitions' leaders, retrying retriable errors after a
/// metadata refresh; returns how many records finally failed.
/// InitProducerId for an idempotent (non-transactional) producer; None when the broker has no
/// InitProducerId (then the producer is not idempotent, as against a pre-0.11 broker).
async fn init_producer_id(cluster: &mut Cluster) -> anyhow::Result<Option<ProducerIdentity>> {
    use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
    let conn = cluster.any();
    if conn.version_for(ApiKey::InitProducerId).is_err() {
        return Ok(None);
    }
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let (resp, _) = conn.send(&req).await?;
    if resp.error_code != 0 {
        bail!("{}", error_text(resp.error_code, None));
    }
    Ok(Some(ProducerIdentity {
        id: resp.producer_id.0,
        epoch: resp.producer_epoch,
        next_sequence: BTreeMap::new(),
    }))
}

async fn send_batches(
    cluster: &mut Cluster,
    s: &Settings,
    leaders: &mut Option<Vec<(i32, i32)>>,
    mut identity: Option<&mut ProducerIdentity>,
    mut by_partition: BTreeMap<usize, Vec<LineRecord>>,
) -> anyhow::Result<u64> {
    let mut failed = 0u64;
    let mut attempt = 0u32;
    while !by_partition.is_empty() {
        let current = leaders.clone().unwrap_or_default();
        let mut by_leader: BTreeMap<i32, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
        for (p, recs) in &by_partition {
            let leader = current.get(*p).map(|(_, l)| *l).unwrap_or(-1);
            let ts = now_ms();
            let mut b = BatchBuilder::new(0);
            if let Some(id) = identity.as_deref() {
                // A retried batch keeps its sequence: the broker answers a duplicate with
                // DUPLICATE_SEQUENCE_NUMBER instead of writing it twice.
                let seq = id.next_sequence.get(p).copied().unwrap_or(0);
                b = b.producer(id.id, id.epoch, seq);
            }
            if s.codec != Compression::None {
                b = b.compression(s.codec, None);
            }
            for r in recs {
                let headers: Vec<(&[u8], Option<&[u8]>)> = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_deref()))
                    .collect();
                b = b.record(r.key.as_deref(), r.value.as_deref(), &headers, ts);
            }
            let bytes = b
                .try_build()
                .map_err(|e| anyhow!("cannot build a record batch: {e}"))?;
            by_leader.entry(leader).or_default().push((*p, bytes));
        }
        let mut retry: BTreeMap<usize, Vec<LineRecord>> = BTreeMap::new();
        for (leader, batches) in by_leader {
            let req = ProduceRequest::default()
                .with_acks(s.acks)
                .with_timeout_ms(i32::try_from(s.request_timeout.as_millis()).unwrap_or(i32::MAX))
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(s.topic.clone())))
                    .with_partition_data(
                        batches
                            .iter()
                            .map(|(p, bytes)| {
                                PartitionProduceData::default()
                                    .with_index(*p as i32)
                                    .with_records(Some(Bytes::from(bytes.clone())))
                            })
                            .collect(),
                    )]);
            let sent = match cluster.broker(leader).await {
                Ok(conn) => {
                    let v = conn.version_for(ApiKey::Produce)?;
                    if s.acks == 0 {
                        conn.send_no_response(&req, v).await?;
                        continue;
                    }
                    conn.send_at(&req, v).await
                }
                Err(e) => Err(e),
            };
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    // Leader unknown, unreachable or gone mid-request: forget the connection
                    // and retry these partitions after a metadata refresh.
                    cluster.drop_broker(leader);
                    for (p, _) in &batches {
                        if let Some(r) = by_partition.get(p) {
                            retry.insert(*p, r.clone());
                        }
                    }
                    if attempt >= s.retries {
                        eprintln!(
                            "ERROR Error when sending message to topic {}: {e:#}",
                            s.topic
                        );
                    }
                    continue;
                }
            };
            for t in &resp.responses {
                for pr in &t.partition_responses {
                    let p = pr.index as usize;
                    let Some(recs) = by_partition.get(&p) else {
                        continue;
                    };
                    // DUPLICATE_SEQUENCE_NUMBER: an earlier attempt of this batch was written.
                    if pr.error_code == 0 || (pr.error_code == 46 && identity.is_some()) {
                        if let Some(id) = identity.as_deref_mut() {
                            let seq = id.next_sequence.entry(p).or_insert(0);
                            *seq =
                                rafka_records::header::increment_sequence(*seq, recs.len() as i32);
                        }
                        continue;
                    }
                    let retriable =
                        kafka_protocol::error::ResponseError::try_from_code(pr.error_code)
                            .map(|e| e.is_retriable())
                            .unwrap_or(false);
                    if retriable && attempt < s.retries {
                        retry.insert(p, recs.clone());
                        continue;
                    }
                    let mut msg = error_text(pr.error_code, pr.error_message.as_ref());
                    if let Some(r) = pr.record_errors.first() {
                        if let Some(m) = &r.batch_index_error_message {
                            msg = format!("{msg} ({m})");
                        }
                    }
                    for r in recs {
                        eprintln!(
                            "ERROR Error when sending message to topic {} with key: {}, value: {} bytes with error: {msg}",
                            s.topic,
                            r.key.as_ref().map(|k| format!("{} bytes", k.len())).unwrap_or_else(|| "null".into()),
                            r.value.as_ref().map(Vec::len).unwrap_or(0),
                        );
                    }
                    failed += recs.len() as u64;
                }
            }
        }
        if retry.is_empty() {
            break;
        }
        attempt += 1;
        if attempt > s.retries {
            failed += retry.values().map(|v| v.len() as u64).sum::<u64>();
            // Whether those batches were written is unknown: a new producer id restarts the
            // sequences, so a later batch can never be taken for a duplicate of one of them.
            if let Some(id) = identity.as_deref_mut() {
                if let Some(fresh) = init_producer_id(cluster).await? {
                    *id = fresh;
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        *leaders = Some(
            cluster
                .partition_leaders(&s.topic, true, s.max_block)
                .await?,
        );
        by_partition = retry;
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(props: &[(&str, &str)]) -> LineReader {
        let p: Props = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match LineReader::from_props(&p) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
    }

    #[test]
    fn plain_lines() {
        let r = reader(&[]);
        assert_eq!(
            r.parse("a\tb", 1).ok(),
            Some(LineRecord {
                key: None,
                value: Some(b"a\tb".to_vec()),
                headers: vec![]
            })
        );
    }

    #[test]
    fn keys_and_headers() {
        let r = reader(&[
            ("parse.key", "true"),
            ("key.separator", ":"),
            ("parse.headers", "true"),
            ("null.marker", "NULL"),
        ]);
        let rec = r.parse("h1:v1,h2:NULL\tk:v", 1).ok();
        assert_eq!(
            rec,
            Some(LineRecord {
                key: Some(b"k".to_vec()),
                value: Some(b"v".to_vec()),
                headers: vec![("h1".into(), Some(b"v1".to_vec())), ("h2".into(), None)]
            })
        );
        let e = r
            .parse("novalue", 3)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(e, "No headers delimiter found on line number 3: 'novalue'");
        let e = r
            .parse("h:1\tnokey", 4)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(e, "No key separator found on line number 4: 'h:1\tnokey'");
        assert_eq!(r.parse("h:1\tNULL:v", 5).ok().and_then(|r| r.key), None);
    }

    #[test]
    fn codecs_and_acks() {
        assert_eq!(parse_codec("zstd").ok(), Some(Compression::Zstd));
        assert!(parse_codec("brotli").is_err());
        assert_eq!(parse_acks("all").ok(), Some(-1));
        assert!(parse_acks("2").is_err());
    }
}
