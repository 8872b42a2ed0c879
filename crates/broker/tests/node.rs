//! A node started in-process on a loopback port, driven over a real socket with requests encoded
//! by the protocol crate: pipelined answers come back in order, produce then fetch returns the
//! batch with its offsets stamped, a parked fetch is woken by an append (not by its timeout), and
//! topics, ids and data survive a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use rafka_broker::{BrokerConfig, Node};
use rafka_protocol::codec::{decode_response, encode_request, request_header};
use rafka_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use rafka_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rafka_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use rafka_protocol::kafka_protocol::messages::*;
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_records::{batches, BatchBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

fn config(dir: &std::path::Path, port: u16) -> BrokerConfig {
    let mut props = BTreeMap::new();
    props.insert("listeners".into(), format!("PLAINTEXT://127.0.0.1:{port}"));
    props.insert("log.dirs".into(), dir.display().to_string());
    BrokerConfig::from_props(&props).unwrap().0
}

struct Client {
    stream: TcpStream,
    next_id: i32,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            next_id: 1,
        }
    }

    async fn send(&mut self, key: ApiKey, version: i16, body: RequestKind) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        encode_request(
            &request_header(key, version, id, Some("node-test")),
            &body,
            &mut out,
        )
        .unwrap();
        self.stream.write_all(&out).await.unwrap();
        id
    }

    async fn recv(&mut self, key: ApiKey, version: i16) -> (i32, ResponseKind) {
        let size = self.stream.read_i32().await.unwrap();
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).await.unwrap();
        let (header, body) = decode_response(Bytes::from(buf), key, version).unwrap();
        (header.correlation_id, body)
    }

    async fn call(&mut self, key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
        let id = self.send(key, version, body).await;
        let (got, resp) = self.recv(key, version).await;
        assert_eq!(got, id);
        resp
    }
}

fn create_topic(name: &str, partitions: i32) -> RequestKind {
    let mut t = CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(name.into()));
    t.num_partitions = partitions;
    t.replication_factor = 1;
    let mut r = CreateTopicsRequest::default();
    r.topics = vec![t];
    r.timeout_ms = 5000;
    RequestKind::CreateTopics(r)
}

fn produce(topic: &str, partition: i32, values: &[&[u8]]) -> RequestKind {
    let mut b = BatchBuilder::new(0).timestamp(1_000);
    for (i, v) in values.iter().enumerate() {
        b = b.record(
            Some(format!("k{i}").as_bytes()),
            Some(v),
            &[],
            1_000 + i as i64,
        );
    }
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(b.build()));
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 5000;
    r.topic_data = vec![t];
    RequestKind::Produce(r)
}

fn fetch(topic: &str, offset: i64, max_wait_ms: i32) -> RequestKind {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = vec![p];
    let mut r = FetchRequest::default();
    r.max_wait_ms = max_wait_ms;
    r.min_bytes = 1;
    r.max_bytes = 50 << 20;
    r.session_epoch = -1;
    r.topics = vec![t];
    RequestKind::Fetch(r)
}

fn fetched_records(resp: ResponseKind) -> Bytes {
    let ResponseKind::Fetch(f) = resp else {
        panic!("not a fetch response")
    };
    let p = &f.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_produce_fetch_long_poll_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path(), 0)).await.unwrap();
    let addr = node.bound_addresses()[0].1;
    let mut c = Client::connect(addr).await;

    // Pipelined: all requests written before any answer is read; answers come in order.
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            c.send(
                ApiKey::ApiVersions,
                3,
                RequestKind::ApiVersions(ApiVersionsRequest::default()),
            )
            .await,
        );
        ids.push(
            c.send(
                ApiKey::Metadata,
                12,
                RequestKind::Metadata(MetadataRequest::default()),
            )
            .await,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let key = if i % 2 == 0 {
            ApiKey::ApiVersions
        } else {
            ApiKey::Metadata
        };
        let version = if i % 2 == 0 { 3 } else { 12 };
        let (got, _) = c.recv(key, version).await;
        assert_eq!(got, *id, "answers out of order");
    }

    let ResponseKind::CreateTopics(ct) =
        c.call(ApiKey::CreateTopics, 7, create_topic("t1", 1)).await
    else {
        panic!()
    };
    assert_eq!(ct.topics[0].error_code, 0);
    let topic_id = ct.topics[0].topic_id;
    assert!(!topic_id.is_nil());

    // Two produces; the second batch gets base offset 3.
    for (n, expected_base) in [(3usize, 0i64), (2, 3)] {
        let values: Vec<&[u8]> = (0..n).map(|_| b"value".as_slice()).collect();
        let ResponseKind::Produce(p) = c.call(ApiKey::Produce, 9, produce("t1", 0, &values)).await
        else {
            panic!()
        };
        let pr = &p.responses[0].partition_responses[0];
        assert_eq!(pr.error_code, 0);
        assert_eq!(pr.base_offset, expected_base);
    }
    let records = fetched_records(c.call(ApiKey::Fetch, 12, fetch("t1", 0, 0)).await);
    let bases: Vec<i64> = batches(&records)
        .map(|b| b.unwrap().header().base_offset)
        .collect();
    assert_eq!(bases, vec![0, 3]);

    // A batch whose bytes do not match its CRC-32C is refused with CORRUPT_MESSAGE (2) and
    // nothing is appended; a produce to a topic that does not exist gets
    // UNKNOWN_TOPIC_OR_PARTITION (3).
    let RequestKind::Produce(mut bad) = produce("t1", 0, &[b"will be damaged"]) else {
        unreachable!()
    };
    let mut bytes = bad.topic_data[0].partition_data[0]
        .records
        .clone()
        .unwrap()
        .to_vec();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    bad.topic_data[0].partition_data[0].records = Some(Bytes::from(bytes));
    let ResponseKind::Produce(p) = c.call(ApiKey::Produce, 9, RequestKind::Produce(bad)).await
    else {
        panic!()
    };
    assert_eq!(p.responses[0].partition_responses[0].error_code, 2);
    let ResponseKind::Produce(p) = c
        .call(ApiKey::Produce, 9, produce("no-such-topic", 0, &[b"x"]))
        .await
    else {
        panic!()
    };
    assert_eq!(p.responses[0].partition_responses[0].error_code, 3);

    // A client that knows a newer leader epoch than ours gets UNKNOWN_LEADER_EPOCH (75).
    let RequestKind::Fetch(mut ahead) = fetch("t1", 0, 0) else {
        unreachable!()
    };
    ahead.topics[0].partitions[0].current_leader_epoch = 5;
    let ResponseKind::Fetch(f) = c.call(ApiKey::Fetch, 12, RequestKind::Fetch(ahead)).await else {
        panic!()
    };
    assert_eq!(f.responses[0].partitions[0].error_code, 75);
    assert_eq!(f.responses[0].partitions[0].current_leader.leader_epoch, 0);

    // A fetch parked at the log end (max_wait 10 s) is answered as soon as another connection
    // appends, long before its wait runs out.
    let mut waiting = Client::connect(addr).await;
    let id = waiting
        .send(ApiKey::Fetch, 12, fetch("t1", 5, 10_000))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // let it park; the assertion is on the answer
    let started = Instant::now();
    let ResponseKind::Produce(_) = c
        .call(ApiKey::Produce, 9, produce("t1", 0, &[b"late"]))
        .await
    else {
        panic!()
    };
    let (got, resp) = waiting.recv(ApiKey::Fetch, 12).await;
    assert_eq!(got, id);
    let records = fetched_records(resp);
    assert_eq!(
        batches(&records)
            .next()
            .unwrap()
            .unwrap()
            .header()
            .base_offset,
        5
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fetch waited for its timeout"
    );

    drop(c);
    drop(waiting);
    node.shutdown().await.unwrap();

    // Restart on the same directory: same topic id, all six records, appends continue at 6.
    let node = Node::start(config(dir.path(), 0)).await.unwrap();
    let addr = node.bound_addresses()[0].1;
    let mut c = Client::connect(addr).await;
    let mut req = MetadataRequest::default();
    let mut mt = metadata_request::MetadataRequestTopic::default();
    mt.name = Some(TopicName(StrBytes::from_static_str("t1")));
    req.topics = Some(vec![mt]);
    let ResponseKind::Metadata(m) = c
        .call(ApiKey::Metadata, 12, RequestKind::Metadata(req))
        .await
    else {
        panic!()
    };
    assert_eq!(m.topics[0].topic_id, topic_id);
    let mut records = fetched_records(c.call(ApiKey::Fetch, 12, fetch("t1", 0, 0)).await);
    let mut count = 0;
    while records.has_remaining() {
        let view = batches(&records).next().unwrap().unwrap();
        count += view.header().records_count;
        let len = view.total_len();
        records.advance(len);
    }
    assert_eq!(count, 6);
    let ResponseKind::Produce(p) = c
        .call(ApiKey::Produce, 9, produce("t1", 0, &[b"after"]))
        .await
    else {
        panic!()
    };
    assert_eq!(p.responses[0].partition_responses[0].base_offset, 6);
    node.shutdown().await.unwrap();
}

fn write_marker(topic: &str, partition: i32, epoch: i16, coordinator_epoch: i32) -> RequestKind {
    let mut t = write_txn_markers_request::WritableTxnMarkerTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partition_indexes = vec![partition];
    let mut m = write_txn_markers_request::WritableTxnMarker::default();
    m.producer_id = ProducerId(77);
    m.producer_epoch = epoch;
    m.transaction_result = false;
    m.coordinator_epoch = coordinator_epoch;
    m.topics = vec![t];
    let mut r = WriteTxnMarkersRequest::default();
    r.markers = vec![m];
    RequestKind::WriteTxnMarkers(r)
}

fn marker_error(resp: ResponseKind) -> i16 {
    let ResponseKind::WriteTxnMarkers(w) = resp else {
        panic!("not a WriteTxnMarkers response")
    };
    w.markers[0].topics[0].partitions[0].error_code
}

/// WriteTxnMarkers writes a control batch for the producer, and refuses stale producer and
/// coordinator epochs with Kafka's codes; unknown partitions get UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_txn_markers_appends_control_batches_and_fences_stale_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path(), 0)).await.unwrap();
    let mut c = Client::connect(node.bound_addresses()[0].1).await;
    c.call(ApiKey::CreateTopics, 7, create_topic("m", 1)).await;

    let ok = c
        .call(ApiKey::WriteTxnMarkers, 1, write_marker("m", 0, 3, 5))
        .await;
    assert_eq!(marker_error(ok), 0);
    let records = fetched_records(c.call(ApiKey::Fetch, 12, fetch("m", 0, 0)).await);
    let headers: Vec<_> = batches(&records).map(|b| *b.unwrap().header()).collect();
    assert_eq!(headers.len(), 1);
    assert!(headers[0].is_control() && headers[0].is_transactional());
    assert_eq!((headers[0].producer_id, headers[0].producer_epoch), (77, 3));

    let stale_epoch = c
        .call(ApiKey::WriteTxnMarkers, 1, write_marker("m", 0, 2, 5))
        .await;
    assert_eq!(marker_error(stale_epoch), 47, "INVALID_PRODUCER_EPOCH");
    let stale_coordinator = c
        .call(ApiKey::WriteTxnMarkers, 1, write_marker("m", 0, 3, 4))
        .await;
    assert_eq!(
        marker_error(stale_coordinator),
        52,
        "TRANSACTION_COORDINATOR_FENCED"
    );
    let unknown = c
        .call(ApiKey::WriteTxnMarkers, 1, write_marker("m", 9, 3, 5))
        .await;
    assert_eq!(marker_error(unknown), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    // Nothing more was written.
    let records = fetched_records(c.call(ApiKey::Fetch, 12, fetch("m", 0, 0)).await);
    assert_eq!(batches(&records).count(), 1);
    node.shutdown().await.unwrap();
}

fn two_dir_config(dirs: &[std::path::PathBuf]) -> BrokerConfig {
    let mut props = BTreeMap::new();
    props.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".to_string());
    let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    props.insert("log.dirs".into(), list.join(","));
    BrokerConfig::from_props(&props).unwrap().0
}

fn partition_dirs_of(dir: &std::path::Path, topic: &str) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix(&format!("{topic}-"))?.parse().ok()
        })
        .collect();
    out.sort();
    out
}

async fn describe_log_dirs(
    c: &mut Client,
    version: i16,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> DescribeLogDirsResponse {
    let mut r = DescribeLogDirsRequest::default();
    r.topics = topics.map(|ts| {
        ts.into_iter()
            .map(|(name, parts)| {
                let mut t = describe_log_dirs_request::DescribableLogDirTopic::default();
                t.topic = TopicName(StrBytes::from_string(name.into()));
                t.partitions = parts;
                t
            })
            .collect()
    });
    let ResponseKind::DescribeLogDirs(resp) = c
        .call(
            ApiKey::DescribeLogDirs,
            version,
            RequestKind::DescribeLogDirs(r),
        )
        .await
    else {
        panic!("not a DescribeLogDirs response")
    };
    resp
}

/// Two log dirs: new partitions alternate between them (fewest partitions first), each dir's
/// partitions are described with their size on disk, a restart finds every log in its dir, and
/// a partition copied into the second dir stops the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_log_dirs_placement_describe_restart_and_duplicate() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    let node = Node::start(two_dir_config(&dirs)).await.unwrap();
    let mut c = Client::connect(node.bound_addresses()[0].1).await;
    let ResponseKind::CreateTopics(ct) =
        c.call(ApiKey::CreateTopics, 7, create_topic("ld", 4)).await
    else {
        panic!()
    };
    assert_eq!(ct.topics[0].error_code, 0);
    let (in_a, in_b) = (
        partition_dirs_of(&dirs[0], "ld"),
        partition_dirs_of(&dirs[1], "ld"),
    );
    assert_eq!((in_a.len(), in_b.len()), (2, 2), "{in_a:?} {in_b:?}");
    for p in 0..4 {
        let ResponseKind::Produce(r) = c
            .call(ApiKey::Produce, 9, produce("ld", p, &[b"hello", b"world"]))
            .await
        else {
            panic!()
        };
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }

    for version in [1, 4] {
        let resp = describe_log_dirs(&mut c, version, None).await;
        assert_eq!(resp.results.len(), 2);
        for (result, (dir, mine)) in resp.results.iter().zip(dirs.iter().zip([&in_a, &in_b])) {
            assert_eq!(result.error_code, 0);
            assert_eq!(
                result.log_dir.as_str(),
                std::path::absolute(dir).unwrap().display().to_string()
            );
            if version >= 4 {
                assert!(result.total_bytes > 0 && result.usable_bytes <= result.total_bytes);
            }
            assert_eq!(result.topics.len(), 1);
            let parts: Vec<i32> = result.topics[0]
                .partitions
                .iter()
                .map(|p| p.partition_index)
                .collect();
            assert_eq!(&parts, mine);
            for p in &result.topics[0].partitions {
                let on_disk = std::fs::metadata(
                    dir.join(format!("ld-{}", p.partition_index))
                        .join("00000000000000000000.log"),
                )
                .unwrap()
                .len();
                assert_eq!(p.partition_size, on_disk as i64);
                assert!(p.partition_size > 0);
                assert_eq!(p.offset_lag, 0);
                assert!(!p.is_future_key);
            }
        }
    }
    // Named partitions only; an unknown topic is just absent.
    let resp = describe_log_dirs(
        &mut c,
        3,
        Some(vec![("ld", vec![in_b[0]]), ("nope", vec![0])]),
    )
    .await;
    assert!(resp.results[0].topics.is_empty());
    assert_eq!(resp.results[1].topics.len(), 1);
    assert_eq!(resp.results[1].topics[0].partitions.len(), 1);

    drop(c);
    node.shutdown().await.unwrap();
    for d in &dirs {
        assert!(d.join(".kafka_cleanshutdown").exists());
        assert!(d.join("meta.properties").exists());
    }

    // Restart: every log is found in its dir, with its data; a new topic fills the dirs evenly.
    let node = Node::start(two_dir_config(&dirs)).await.unwrap();
    let mut c = Client::connect(node.bound_addresses()[0].1).await;
    assert_eq!(partition_dirs_of(&dirs[0], "ld"), in_a);
    assert_eq!(partition_dirs_of(&dirs[1], "ld"), in_b);
    let ResponseKind::Produce(r) = c
        .call(ApiKey::Produce, 9, produce("ld", 0, &[b"again"]))
        .await
    else {
        panic!()
    };
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 2);
    c.call(ApiKey::CreateTopics, 7, create_topic("ld2", 2))
        .await;
    assert_eq!(partition_dirs_of(&dirs[0], "ld2").len(), 1);
    assert_eq!(partition_dirs_of(&dirs[1], "ld2").len(), 1);
    drop(c);
    node.shutdown().await.unwrap();

    // The same partition in both dirs: the start fails and names both.
    let src = dirs[0].join(format!("ld-{}", in_a[0]));
    let dst = dirs[1].join(format!("ld-{}", in_a[0]));
    std::fs::create_dir(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let err = match Node::start(two_dir_config(&dirs)).await {
        Ok(_) => panic!("started with a partition in two dirs"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("found in both") && err.contains(&src.display().to_string()),
        "{err}"
    );
}

fn find_group_coordinators(groups: &[String]) -> RequestKind {
    let mut r = FindCoordinatorRequest::default();
    r.key_type = 0;
    r.coordinator_keys = groups
        .iter()
        .map(|g| StrBytes::from_string(g.clone()))
        .collect();
    RequestKind::FindCoordinator(r)
}

fn offset_fetch_groups(groups: &[String]) -> RequestKind {
    let mut r = OffsetFetchRequest::default();
    r.groups = groups
        .iter()
        .map(|g| {
            let mut group = offset_fetch_request::OffsetFetchRequestGroup::default();
            group.group_id = GroupId(StrBytes::from_string(g.clone()));
            group
        })
        .collect();
    RequestKind::OffsetFetch(r)
}

/// Kafka loads a `__consumer_offsets` partition once per leader epoch. Just after the first
/// FindCoordinator creates the topic, a partition whose log opened first used to be loaded, then
/// unloaded by the next sync (a FindCoordinator's) because the applied image, which comes only
/// once all fifty partitions are open, did not name this node yet, then loaded again: in between
/// its groups answered COORDINATOR_LOAD_IN_PROGRESS after they had answered, which librdkafka's
/// admin client does not retry. Topics created meanwhile (new images, each a sync) widen that
/// window, as a client suite creating topics does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_offsets_partition_is_loaded_once() {
    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path(), 0)).await.unwrap();
    let mut c = Client::connect(node.bound_addresses()[0].1).await;
    let groups: Vec<String> = (0..20).map(|i| format!("group-{i}")).collect();
    let mut answered = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rounds_after_all = 0;
    let mut admin = Client::connect(node.bound_addresses()[0].1).await;
    let mut round = 0;
    while rounds_after_all < 100 {
        round += 1;
        if round < 200 {
            admin
                .send(
                    ApiKey::CreateTopics,
                    7,
                    create_topic(&format!("t{round}"), 4),
                )
                .await;
        }
        assert!(
            Instant::now() < deadline,
            "groups never all answered: {answered:?}"
        );
        // Every FindCoordinator makes the coordinator sync with the images.
        c.call(ApiKey::FindCoordinator, 4, find_group_coordinators(&groups))
            .await;
        let ResponseKind::OffsetFetch(r) = c
            .call(ApiKey::OffsetFetch, 8, offset_fetch_groups(&groups))
            .await
        else {
            panic!("not an OffsetFetch response")
        };
        for g in &r.groups {
            let id = g.group_id.as_str().to_string();
            if g.error_code == 0 {
                answered.insert(id, ());
            } else {
                assert!(
                    !(answered.contains_key(&id) && g.error_code == COORDINATOR_LOAD_IN_PROGRESS),
                    "{id} answered, then was loading again"
                );
            }
        }
        if answered.len() == groups.len() {
            rounds_after_all += 1;
        }
    }
    for _ in 1..round.min(200) {
        admin.recv(ApiKey::CreateTopics, 7).await;
    }
    node.shutdown().await.unwrap();
}

fn heartbeat(
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
    owned: Option<Vec<i32>>,
    topic_id: Uuid,
) -> RequestKind {
    let mut r = ConsumerGroupHeartbeatRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("kip848"));
    r.member_id = StrBytes::from_string(member.into());
    r.member_epoch = epoch;
    // (The generated defaults of these nullable fields are not null.)
    r.instance_id = None;
    r.rack_id = None;
    r.server_assignor = None;
    r.subscribed_topic_regex = None;
    r.rebalance_timeout_ms = if topics.is_some() { 30_000 } else { -1 };
    r.subscribed_topic_names = topics.map(|ts| {
        ts.iter()
            .map(|t| TopicName(StrBytes::from_string(t.to_string())))
            .collect()
    });
    r.topic_partitions = owned.map(|ps| {
        let mut tp = consumer_group_heartbeat_request::TopicPartitions::default();
        tp.topic_id = topic_id;
        tp.partitions = ps;
        // Owning nothing is an empty list, not a topic with no partitions.
        if tp.partitions.is_empty() {
            vec![]
        } else {
            vec![tp]
        }
    });
    RequestKind::ConsumerGroupHeartbeat(r)
}

fn heartbeat_answer(resp: ResponseKind) -> (i16, i32, Vec<i32>) {
    let ResponseKind::ConsumerGroupHeartbeat(r) = resp else {
        panic!("not a ConsumerGroupHeartbeat response")
    };
    let partitions = r
        .assignment
        .map(|a| {
            a.topic_partitions
                .into_iter()
                .flat_map(|t| t.partitions)
                .collect()
        })
        .unwrap_or_default();
    (r.error_code, r.member_epoch, partitions)
}

fn commit_as(member: &str, epoch: i32, topic: &str) -> RequestKind {
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 1;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = vec![p];
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(StrBytes::from_static_str("kip848"));
    r.member_id = StrBytes::from_string(member.into());
    r.generation_id_or_member_epoch = epoch;
    r.topics = vec![t];
    RequestKind::OffsetCommit(r)
}

fn commit_error(resp: ResponseKind) -> i16 {
    let ResponseKind::OffsetCommit(r) = resp else {
        panic!("not an OffsetCommit response")
    };
    r.topics[0].partitions[0].error_code
}

/// KIP-848's epoch checks over a real socket (librdkafka has no way to send a wrong epoch):
/// a heartbeat at an epoch the member never had is FENCED_MEMBER_EPOCH, a commit at another
/// epoch than the member's STALE_MEMBER_EPOCH, an unknown member UNKNOWN_MEMBER_ID; none of
/// them disturbs the group, whose members go on at their epochs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_member_epochs_get_kafkas_errors_and_the_group_keeps_serving() {
    const FENCED_MEMBER_EPOCH: i16 = 110;
    const STALE_MEMBER_EPOCH: i16 = 113;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path(), 0)).await.unwrap();
    let mut c = Client::connect(node.bound_addresses()[0].1).await;
    c.call(ApiKey::CreateTopics, 7, create_topic("orders", 2))
        .await;
    let mut all_topics = MetadataRequest::default();
    all_topics.topics = None;
    let ResponseKind::Metadata(md) = c
        .call(ApiKey::Metadata, 12, RequestKind::Metadata(all_topics))
        .await
    else {
        panic!("not a Metadata response")
    };
    let topic_id = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "orders"))
        .unwrap()
        .topic_id;
    // The first member joins once the new __consumer_offsets is loaded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    let (a_epoch, a_parts) = loop {
        assert!(
            Instant::now() < deadline,
            "the coordinator never answered: {last:?}"
        );
        c.call(
            ApiKey::FindCoordinator,
            4,
            find_group_coordinators(&["kip848".to_string()]),
        )
        .await;
        let hb = heartbeat("member-a", 0, Some(&["orders"]), Some(vec![]), topic_id);
        let (error, epoch, parts) =
            heartbeat_answer(c.call(ApiKey::ConsumerGroupHeartbeat, 1, hb).await);
        if error == 0 {
            break (epoch, parts);
        }
        last = Some(error);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((a_epoch, a_parts.len()), (1, 2));
    // B joins: the group moves to epoch 2; A must give a partition up first.
    let hb = heartbeat("member-b", 0, Some(&["orders"]), Some(vec![]), topic_id);
    let (error, b_epoch, b_parts) =
        heartbeat_answer(c.call(ApiKey::ConsumerGroupHeartbeat, 1, hb).await);
    assert_eq!((error, b_epoch, b_parts.len()), (0, 2, 0));

    // A at an epoch it never had.
    let hb = heartbeat("member-a", 7, None, None, topic_id);
    let (error, _, _) = heartbeat_answer(c.call(ApiKey::ConsumerGroupHeartbeat, 1, hb).await);
    assert_eq!(error, FENCED_MEMBER_EPOCH);
    // A commit at another epoch than A's, and one from a member the group does not know.
    let stale = c
        .call(ApiKey::OffsetCommit, 9, commit_as("member-a", 2, "orders"))
        .await;
    assert_eq!(commit_error(stale), STALE_MEMBER_EPOCH);
    let unknown = c
        .call(ApiKey::OffsetCommit, 9, commit_as("member-z", 1, "orders"))
        .await;
    assert_eq!(commit_error(unknown), UNKNOWN_MEMBER_ID);

    // The group is undisturbed: A, still at epoch 1, commits and revokes what it must, and
    // then B gets that partition, both at epoch 2.
    let ok = c
        .call(ApiKey::OffsetCommit, 9, commit_as("member-a", 1, "orders"))
        .await;
    assert_eq!(commit_error(ok), 0);
    let hb = heartbeat("member-a", 1, None, Some(a_parts.clone()), topic_id);
    let (error, a_epoch, a_kept) =
        heartbeat_answer(c.call(ApiKey::ConsumerGroupHeartbeat, 1, hb).await);
    assert_eq!(
        (error, a_epoch, a_kept.len()),
        (0, 1, 1),
        "A revokes one partition"
    );
    let hb = heartbeat("member-a", 1, None, Some(a_kept.clone()), topic_id);
    let (error, a_epoch, _) = heartbeat_answer(c.call(ApiKey::ConsumerGroupHeartbeat, 1, hb).await);
    assert_eq!((error, a_epoch), (0, 2));
    let hb = heartbeat("member-b", 2, None, Some(vec![]), topic_id);
    let (error, b_epoch, b_parts) =
        heartbeat_answer(c.call(ApiKey::ConsumerGroupHeartbeat, 1, hb).await);
    assert_eq!((error, b_epoch), (0, 2));
    let mut all: Vec<i32> = a_kept.into_iter().chain(b_parts).collect();
    all.sort();
    assert_eq!(all, vec![0, 1]);
    node.shutdown().await.unwrap();
}
