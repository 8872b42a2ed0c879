//! `Connection` and `Pool` against tiny in-test servers that speak Kafka framing on
//! 127.0.0.1:0, each scripted for one scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rafka_client::kafka_protocol::messages::api_versions_response::ApiVersion;
use rafka_client::kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use rafka_client::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use rafka_client::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rafka_client::{ClientError, ConnectOptions, Connection, Pool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A private api key, as node-to-node RPCs use.
const RAW_KEY: i16 = 1000;
const LONG: Duration = Duration::from_secs(10);

fn options() -> ConnectOptions {
    ConnectOptions {
        client_id: "test-client".to_string(),
        connect_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// A request as the server sees it: header v2 decoded, body left as bytes.
struct Received {
    header: RequestHeader,
    body: Bytes,
}

/// Reads one request frame; `None` at end of stream.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let size = stream.read_i32().await.ok()?;
    let mut frame = vec![0u8; usize::try_from(size).unwrap()];
    stream.read_exact(&mut frame).await.ok()?;
    let mut frame = Bytes::from(frame);
    // Kafka's header version for known keys (ApiVersions v0 has no tagged fields); v2 for the
    // private keys of the raw form.
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let header_version = ApiKey::try_from(key).map_or(2, |k| k.request_header_version(version));
    let header = RequestHeader::decode(&mut frame, header_version).unwrap();
    Some(Received {
        header,
        body: frame,
    })
}

/// Writes a response frame: size, correlation id (response header v0), body.
async fn write_response(stream: &mut TcpStream, correlation_id: i32, body: &[u8]) {
    let mut frame = BytesMut::new();
    frame.put_i32(i32::try_from(4 + body.len()).unwrap());
    frame.put_i32(correlation_id);
    frame.put_slice(body);
    stream.write_all(&frame).await.unwrap();
}

/// Answers every request with "echo:" + its body, until the client goes away.
async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            while let Some(req) = read_request(&mut stream).await {
                let reply = [&b"echo:"[..], &req.body[..]].concat();
                write_response(&mut stream, req.header.correlation_id, &reply).await;
            }
        });
    }
}

/// Waits until the client closes its side.
async fn drain(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Connection>();
    check::<Pool>();
    check::<ClientError>();
}

#[tokio::test]
async fn pipelined_requests_answered_out_of_order_reach_their_callers() {
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // All three must be in flight at once, or this never gets past the reads.
        let mut reqs = Vec::new();
        for _ in 0..3 {
            reqs.push(read_request(&mut stream).await.unwrap());
        }
        for req in reqs.iter().rev() {
            assert_eq!(req.header.request_api_version, 7);
            assert_eq!(
                req.header.client_id.as_deref(),
                Some("test-client"),
                "client id from the options"
            );
            let reply = [&b"answer-to:"[..], &req.body[..]].concat();
            write_response(&mut stream, req.header.correlation_id, &reply).await;
        }
        let keys: Vec<i16> = reqs.iter().map(|r| r.header.request_api_key).collect();
        drain(&mut stream).await;
        keys
    });

    let conn = Arc::new(Connection::connect(&addr, &options()).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..3i16 {
        let conn = Arc::clone(&conn);
        tasks.push(tokio::spawn(async move {
            let body = Bytes::from(format!("request-{i}"));
            conn.send_raw(RAW_KEY + i, 7, body, LONG).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let reply = task.await.unwrap().unwrap();
        assert_eq!(reply, Bytes::from(format!("answer-to:request-{i}")));
    }
    assert_eq!(conn.requests_in_flight(), 0);
    assert!(!conn.is_closed());
    drop(conn);
    let mut keys = server.await.unwrap();
    keys.sort_unstable();
    assert_eq!(keys, vec![RAW_KEY, RAW_KEY + 1, RAW_KEY + 2]);
}

#[tokio::test]
async fn timed_out_request_leaves_the_connection_usable_and_its_late_answer_is_dropped() {
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let first = read_request(&mut stream).await.unwrap();
        // Arrives only after the first request timed out.
        let second = read_request(&mut stream).await.unwrap();
        write_response(&mut stream, first.header.correlation_id, b"late").await;
        write_response(&mut stream, second.header.correlation_id, b"second").await;
        let third = read_request(&mut stream).await.unwrap();
        write_response(&mut stream, third.header.correlation_id, b"third").await;
        drain(&mut stream).await;
    });

    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let timeout = Duration::from_millis(100);
    match conn
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"1"), timeout)
        .await
    {
        Err(ClientError::Timeout {
            api_key,
            timeout: t,
            ..
        }) => {
            assert_eq!(api_key, RAW_KEY);
            assert_eq!(t, timeout);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(conn.requests_in_flight(), 0, "the timed-out entry is gone");
    let second = conn
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"2"), LONG)
        .await
        .unwrap();
    assert_eq!(second, Bytes::from_static(b"second"));
    let third = conn
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"3"), LONG)
        .await
        .unwrap();
    assert_eq!(third, Bytes::from_static(b"third"));
    assert!(!conn.is_closed());
}

#[tokio::test]
async fn waiting_for_an_in_flight_slot_counts_against_the_timeout() {
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let first = read_request(&mut stream).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        write_response(&mut stream, first.header.correlation_id, b"first").await;
        drain(&mut stream).await;
    });
    let opts = ConnectOptions {
        requests_in_flight_max: 1,
        ..options()
    };
    let conn = Arc::new(Connection::connect(&addr, &opts).await.unwrap());
    let first = {
        let conn = Arc::clone(&conn);
        tokio::spawn(async move { conn.send_raw(RAW_KEY, 0, Bytes::new(), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let blocked = conn
        .send_raw(RAW_KEY, 0, Bytes::new(), Duration::from_millis(100))
        .await;
    assert!(
        matches!(blocked, Err(ClientError::Timeout { .. })),
        "{blocked:?}"
    );
    assert_eq!(first.await.unwrap().unwrap(), Bytes::from_static(b"first"));
}

#[tokio::test]
async fn server_close_fails_in_flight_requests_and_the_pool_reconnects() {
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await.unwrap();
        read_request(&mut stream).await.unwrap();
        drop(stream);
        echo_server(listener).await;
    });

    let pool = Pool::new(options());
    let conn = pool.get(&addr).await.unwrap();
    let (a, b) = tokio::join!(
        conn.send_raw(RAW_KEY, 0, Bytes::from_static(b"a"), LONG),
        conn.send_raw(RAW_KEY, 0, Bytes::from_static(b"b"), LONG),
    );
    for result in [a, b] {
        match result {
            Err(ClientError::Disconnected { addr: a }) => assert_eq!(a, addr),
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }
    assert!(conn.is_closed());
    conn.closed().await;
    let later = conn.send_raw(RAW_KEY, 0, Bytes::new(), LONG).await;
    assert!(
        matches!(later, Err(ClientError::Disconnected { .. })),
        "{later:?}"
    );

    let fresh = pool.get(&addr).await.unwrap();
    assert!(!Arc::ptr_eq(&conn, &fresh));
    let reply = fresh
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"again"), LONG)
        .await
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"echo:again"));
    assert!(Arc::ptr_eq(&fresh, &pool.get(&addr).await.unwrap()));
}

#[tokio::test]
async fn oversized_response_is_refused_without_reading_it() {
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let req = read_request(&mut stream).await.unwrap();
        // Claims 2 GiB and sends none of it: reading or allocating it would hang or fail.
        let mut head = BytesMut::new();
        head.put_i32(i32::MAX);
        head.put_i32(req.header.correlation_id);
        stream.write_all(&head).await.unwrap();
        drain(&mut stream).await;
    });
    let opts = ConnectOptions {
        frame_bytes_max: 1024,
        ..options()
    };
    let conn = Connection::connect(&addr, &opts).await.unwrap();
    match conn.send_raw(RAW_KEY, 0, Bytes::new(), LONG).await {
        Err(ClientError::FrameTooLarge { size, max }) => {
            assert_eq!(size, i32::MAX as usize);
            assert_eq!(max, 1024);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(conn.is_closed());
    let later = conn.send_raw(RAW_KEY, 0, Bytes::new(), LONG).await;
    assert!(
        matches!(later, Err(ClientError::Disconnected { .. })),
        "{later:?}"
    );
}

#[tokio::test]
async fn oversized_size_without_a_header_closes_the_connection() {
    let (listener, addr) = listen().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await.unwrap();
        stream.write_all(&2000i32.to_be_bytes()).await.unwrap();
        drain(&mut stream).await;
    });
    let opts = ConnectOptions {
        frame_bytes_max: 1024,
        ..options()
    };
    let conn = Connection::connect(&addr, &opts).await.unwrap();
    let result = conn.send_raw(RAW_KEY, 0, Bytes::new(), LONG).await;
    assert!(
        matches!(result, Err(ClientError::Disconnected { .. })),
        "{result:?}"
    );
    assert!(conn.is_closed());
}

#[tokio::test]
async fn malformed_frames_close_the_connection() {
    // A correlation id no request carried, and a frame too short for a response header.
    for bad in [
        [0, 0, 0, 4, 0, 0, 0x27, 0x0f].as_slice(),
        [0, 0, 0, 2, 0, 0].as_slice(),
        [0xff, 0xff, 0xff, 0xfe].as_slice(),
    ] {
        let (listener, addr) = listen().await;
        let bad = bad.to_vec();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await.unwrap();
            stream.write_all(&bad).await.unwrap();
            drain(&mut stream).await;
        });
        let conn = Connection::connect(&addr, &options()).await.unwrap();
        let result = conn.send_raw(RAW_KEY, 0, Bytes::new(), LONG).await;
        assert!(
            matches!(result, Err(ClientError::Disconnected { .. })),
            "{result:?}"
        );
        assert!(conn.is_closed());
    }
}

#[tokio::test]
async fn api_versions_round_trips_with_response_header_v0() {
    let expected = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_throttle_time_ms(0)
        .with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(0)
                .with_max_version(4),
            ApiVersion::default()
                .with_api_key(ApiKey::Metadata as i16)
                .with_min_version(0)
                .with_max_version(12),
        ]);
    let (listener, addr) = listen().await;
    let answer = expected.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut req = read_request(&mut stream).await.unwrap();
        assert_eq!(req.header.request_api_key, ApiKey::ApiVersions as i16);
        assert_eq!(req.header.request_api_version, 3);
        let body = ApiVersionsRequest::decode(&mut req.body, 3).unwrap();
        assert_eq!(body.client_software_name.as_str(), "rafka-test");
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(req.header.correlation_id)
            .encode(&mut frame, 0)
            .unwrap();
        answer.encode(&mut frame, 3).unwrap();
        let mut out = BytesMut::new();
        out.put_i32(i32::try_from(frame.len()).unwrap());
        out.put_slice(&frame);
        stream.write_all(&out).await.unwrap();
        drain(&mut stream).await;
    });
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("rafka-test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let got = conn.send(&req, 3, LONG).await.unwrap();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn flexible_response_header_v1_is_decoded() {
    let expected = MetadataResponse::default()
        .with_cluster_id(Some(StrBytes::from_static_str("cluster")))
        .with_controller_id(BrokerId(1))
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("node-1"))
            .with_port(9092)]);
    assert_eq!(ApiKey::Metadata.response_header_version(12), 1);
    let (listener, addr) = listen().await;
    let answer = expected.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut req = read_request(&mut stream).await.unwrap();
        assert_eq!(req.header.request_api_key, ApiKey::Metadata as i16);
        MetadataRequest::decode(&mut req.body, 12).unwrap();
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(req.header.correlation_id)
            .encode(&mut frame, 1)
            .unwrap();
        answer.encode(&mut frame, 12).unwrap();
        let mut out = BytesMut::new();
        out.put_i32(i32::try_from(frame.len()).unwrap());
        out.put_slice(&frame);
        stream.write_all(&out).await.unwrap();
        drain(&mut stream).await;
    });
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let got = conn
        .send(&MetadataRequest::default(), 12, LONG)
        .await
        .unwrap();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn garbage_response_body_is_a_protocol_error_and_the_connection_stays() {
    let (listener, addr) = listen().await;
    tokio::spawn(echo_server(listener));
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    // The echo ("echo:" + request) is no MetadataResponse v12.
    let result = conn.send(&MetadataRequest::default(), 12, LONG).await;
    assert!(
        matches!(result, Err(ClientError::Protocol(_))),
        "{result:?}"
    );
    assert!(!conn.is_closed());
    let bad_version = conn.send(&MetadataRequest::default(), 99, LONG).await;
    assert!(
        matches!(bad_version, Err(ClientError::Encode(_))),
        "{bad_version:?}"
    );
}

#[tokio::test]
async fn host_names_are_resolved() {
    let (listener, addr) = listen().await;
    let port = addr.rsplit_once(':').unwrap().1.to_string();
    tokio::spawn(echo_server(listener));
    // "localhost" may resolve to ::1 first, where nothing listens: the next address is tried.
    let conn = Connection::connect(&format!("localhost:{port}"), &options())
        .await
        .unwrap();
    let reply = conn
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"hi"), LONG)
        .await
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"echo:hi"));
    assert_eq!(conn.addr(), format!("localhost:{port}"));
}

#[tokio::test]
async fn ipv6_literals_connect() {
    // Machines without IPv6 loopback cannot run this.
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        return;
    };
    let addr = listener.local_addr().unwrap().to_string();
    assert!(addr.starts_with("[::1]:"));
    tokio::spawn(echo_server(listener));
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let reply = conn
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"v6"), LONG)
        .await
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"echo:v6"));
}

#[tokio::test]
async fn bad_addresses_fail_with_resolve_or_connect() {
    let result = Connection::connect("no-port-here", &options()).await;
    assert!(
        matches!(result, Err(ClientError::Resolve { .. })),
        "{result:?}"
    );

    let (listener, addr) = listen().await;
    drop(listener);
    match Connection::connect(&addr, &options()).await {
        Err(ClientError::Connect { addr: a, source }) => {
            assert_eq!(a, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_gets_share_one_connection() {
    let (listener, addr) = listen().await;
    let pool = Arc::new(Pool::new(options()));
    let mut gets = Vec::new();
    for _ in 0..8 {
        let pool = Arc::clone(&pool);
        let addr = addr.clone();
        gets.push(tokio::spawn(async move { pool.get(&addr).await }));
    }
    let mut conns = Vec::new();
    for get in gets {
        conns.push(get.await.unwrap().unwrap());
    }
    assert!(conns.iter().all(|c| Arc::ptr_eq(c, &conns[0])));
    let _first = listener.accept().await.unwrap();
    let second = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(second.is_err(), "a second connection was opened");
}

#[tokio::test]
async fn failed_connect_backs_off_then_retries() {
    let (listener, addr) = listen().await;
    drop(listener);
    let opts = ConnectOptions {
        reconnect_backoff: Duration::from_millis(300),
        reconnect_backoff_max: Duration::from_secs(1),
        ..options()
    };
    let pool = Pool::new(opts);
    let first = pool.get(&addr).await;
    assert!(
        matches!(first, Err(ClientError::Connect { .. })),
        "{first:?}"
    );

    // The node is back, but within the backoff the pool does not try.
    let listener = TcpListener::bind(&addr).await.unwrap();
    let fast = pool.get(&addr).await;
    match fast {
        Err(ClientError::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected the replayed Connect error, got {other:?}"),
    }
    let attempt = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(attempt.is_err(), "connected during the backoff");

    tokio::time::sleep(Duration::from_millis(350)).await;
    tokio::spawn(echo_server(listener));
    let conn = pool.get(&addr).await.unwrap();
    let reply = conn
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"back"), LONG)
        .await
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"echo:back"));
}

#[tokio::test]
async fn invalidate_closes_and_the_next_get_reconnects() {
    let (listener, addr) = listen().await;
    tokio::spawn(echo_server(listener));
    let pool = Pool::new(options());
    let first = pool.get(&addr).await.unwrap();
    pool.invalidate(&addr);
    assert!(first.is_closed());
    let second = pool.get(&addr).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    let reply = second
        .send_raw(RAW_KEY, 0, Bytes::from_static(b"x"), LONG)
        .await
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"echo:x"));
    // Unknown addresses are fine to invalidate.
    pool.invalidate("127.0.0.1:1");
}

/// Answers one ApiVersions (at whatever version the client asks, with `keys`; with
/// UNSUPPORTED_VERSION and a v0 body when `v0_only` and the client asked above v0), then
/// returns the next request's header version.
async fn versions_server(listener: TcpListener, keys: Vec<ApiVersion>, v0_only: bool) -> Vec<i16> {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut asked = Vec::new();
    loop {
        let Some(req) = read_request(&mut stream).await else {
            return asked;
        };
        let version = req.header.request_api_version;
        asked.push(version);
        if req.header.request_api_key != ApiKey::ApiVersions as i16 {
            let answer = MetadataResponse::default();
            let mut body = BytesMut::new();
            answer.encode(&mut body, version).unwrap();
            write_response(&mut stream, req.header.correlation_id, &body).await;
            drain(&mut stream).await;
            return asked;
        }
        let refuse = v0_only && version > 0;
        let answer = ApiVersionsResponse::default()
            .with_error_code(if refuse { 35 } else { 0 })
            .with_api_keys(keys.clone());
        let mut body = BytesMut::new();
        answer
            .encode(&mut body, if refuse { 0 } else { version })
            .unwrap();
        write_response(&mut stream, req.header.correlation_id, &body).await;
    }
}

fn key_range(key: ApiKey, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key as i16)
        .with_min_version(min)
        .with_max_version(max)
}

#[tokio::test]
async fn negotiation_speaks_the_highest_common_version() {
    let (listener, addr) = listen().await;
    let keys = vec![
        key_range(ApiKey::ApiVersions, 0, 3),
        key_range(ApiKey::Metadata, 0, 5),
    ];
    let server = tokio::spawn(versions_server(listener, keys, false));
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let req = MetadataRequest::default().with_topics(Some(vec![]));
    conn.send_negotiated(&req, LONG).await.unwrap();
    assert_eq!(
        conn.peer_versions(LONG).await.unwrap().range(3),
        Some((0, 5))
    );
    drop(conn);
    // ApiVersions at v3, once, then Metadata at the peer's v5.
    assert_eq!(server.await.unwrap(), vec![3, 5]);
}

#[tokio::test]
async fn an_old_peer_is_asked_again_at_v0() {
    let (listener, addr) = listen().await;
    let keys = vec![
        key_range(ApiKey::ApiVersions, 0, 2),
        key_range(ApiKey::Metadata, 0, 4),
    ];
    let server = tokio::spawn(versions_server(listener, keys, true));
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let req = MetadataRequest::default().with_topics(Some(vec![]));
    conn.send_negotiated(&req, LONG).await.unwrap();
    drop(conn);
    assert_eq!(server.await.unwrap(), vec![3, 0, 4]);
}

#[tokio::test]
async fn a_key_the_peer_lacks_is_an_unsupported_version_error() {
    let (listener, addr) = listen().await;
    let keys = vec![key_range(ApiKey::ApiVersions, 0, 3)];
    tokio::spawn(versions_server(listener, keys, false));
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let req = MetadataRequest::default().with_topics(Some(vec![]));
    let err = conn.send_negotiated(&req, LONG).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnsupportedVersion {
                api_key: 3,
                theirs: None,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_request_without_response_is_framed_and_the_next_one_is_answered() {
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // The frame without a response arrives whole, then the answered one.
        let quiet = read_request(&mut stream).await.unwrap();
        let asked = read_request(&mut stream).await.unwrap();
        let mut body = BytesMut::new();
        MetadataResponse::default().encode(&mut body, 5).unwrap();
        write_response(&mut stream, asked.header.correlation_id, &body).await;
        drain(&mut stream).await;
        (quiet.header, asked.header)
    });
    let conn = Connection::connect(&addr, &options()).await.unwrap();
    let req = MetadataRequest::default().with_topics(Some(vec![]));
    conn.send_no_response(&req, 5, LONG).await.unwrap();
    conn.send(&req, 5, LONG).await.unwrap();
    assert_eq!(conn.requests_in_flight(), 0);
    drop(conn);
    let (quiet, asked) = server.await.unwrap();
    assert_eq!(
        (quiet.request_api_key, quiet.request_api_version),
        (ApiKey::Metadata as i16, 5)
    );
    assert_ne!(quiet.correlation_id, asked.correlation_id);
}
