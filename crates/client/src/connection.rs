//! One TCP connection with many requests in flight.
//!
//! Layout: callers encode their frame, register a oneshot under a fresh correlation id and hand
//! the frame to a writer task through a channel; a reader task splits the incoming byte stream
//! into size-prefixed frames and completes the oneshot whose id the frame's response header
//! carries. Frames go through a channel rather than a locked write half because a caller can be
//! cancelled at any await (its timeout, a `select!`), and a frame written half-way would desync
//! the stream for everyone; the writer task always writes whole frames. Whoever notices the
//! connection is broken (reader, writer, `close`, the last handle's drop) closes the shared state:
//! every waiting caller then sees its oneshot dropped and reports `Disconnected`, and both tasks
//! stop.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::versions::PeerVersions;
use crate::ClientError;

/// The ApiVersions version asked first (the newest this crate knows).
const API_VERSIONS_VERSION_MAX: i16 = 3;
/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION_CODE: i16 = 35;
/// Bytes of Kafka's frame size prefix.
const SIZE_PREFIX_BYTES: usize = 4;
/// Bytes of a response header v0, which every response starts with.
const CORRELATION_ID_BYTES: usize = 4;
/// The request header version of `send_raw`: v2 is what every flexible-version request uses.
const RAW_REQUEST_HEADER_VERSION: i16 = 2;
/// How much the reader asks the socket for when it has no frame size to go by.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Size of the writer's buffer, which coalesces small pipelined frames into one write.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Frames the writer takes off its queue before flushing.
const WRITE_BATCH_MAX: usize = 64;
/// After an oversized size prefix, how long the reader waits for the correlation id behind it
/// (so that the one caller it belongs to learns why) before closing anyway.
const OVERSIZE_HEADER_WAIT: Duration = Duration::from_secs(1);

/// How to connect, and the limits of one connection. The reconnect backoffs are used by
/// [`Pool`](crate::Pool) only; they sit here so that one struct carries a client's whole
/// configuration, as Kafka's client configs do.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Sent in every request header (Kafka's `client.id`).
    pub client_id: String,
    /// Bounds the name lookup and each connect attempt to one resolved address (Kafka's
    /// `socket.connection.setup.timeout.ms`).
    pub connect_timeout: Duration,
    /// The largest response accepted, size prefix excluded. A response claiming more closes the
    /// connection before anything is allocated for it.
    pub frame_bytes_max: usize,
    /// Requests on one connection awaiting their response; further requests wait for a slot
    /// (within their timeout). Kafka's `max.in.flight.requests.per.connection`, for node-to-node
    /// traffic that pipelines far deeper than a producer.
    pub requests_in_flight_max: usize,
    /// After a failed connect, [`Pool::get`](crate::Pool::get) for that address fails fast for
    /// this long (Kafka's `reconnect.backoff.ms`); it doubles with every further failure.
    /// Zero disables the backoff.
    pub reconnect_backoff: Duration,
    /// Cap of the doubling (Kafka's `reconnect.backoff.max.ms`).
    pub reconnect_backoff_max: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client_id: "rafka".to_string(),
            connect_timeout: Duration::from_secs(10),
            frame_bytes_max: 256 * 1024 * 1024,
            requests_in_flight_max: 1024,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1000),
        }
    }
}

type Reply = Result<Bytes, ClientError>;

/// Requests awaiting their response, by correlation id.
struct Pending {
    waiting: HashMap<i32, oneshot::Sender<Reply>>,
    /// Set once, under the same lock as `waiting`, so that no request registers after the close
    /// has drained the map.
    closed: bool,
}

/// State shared by the handle and its two tasks.
struct Shared {
    addr: String,
    pending: Mutex<Pending>,
    /// `true` once closed; the tasks watch it to stop.
    closed_tx: watch::Sender<bool>,
    in_flight: Semaphore,
    /// Requests ever sent; the low 32 bits of the count are the correlation id. A 64-bit count
    /// tells a late response (id issued, caller gone) from a peer inventing ids.
    issued: AtomicU64,
}

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_correlation_id(&self) -> i32 {
        self.issued.fetch_add(1, Ordering::Relaxed) as u32 as i32
    }

    fn was_issued(&self, correlation_id: i32) -> bool {
        let issued = self.issued.load(Ordering::Relaxed);
        issued > u64::from(u32::MAX) || u64::from(correlation_id as u32) < issued
    }

    /// Registers a waiting caller; `false` if the connection is closed.
    fn register(&self, correlation_id: i32, reply: oneshot::Sender<Reply>) -> bool {
        let mut pending = self.lock_pending();
        if pending.closed {
            return false;
        }
        pending.waiting.insert(correlation_id, reply);
        true
    }

    fn take_waiting(&self, correlation_id: i32) -> Option<oneshot::Sender<Reply>> {
        self.lock_pending().waiting.remove(&correlation_id)
    }

    fn is_closed(&self) -> bool {
        *self.closed_tx.borrow()
    }

    fn close(&self) {
        let waiting = {
            let mut pending = self.lock_pending();
            if pending.closed {
                return;
            }
            pending.closed = true;
            std::mem::take(&mut pending.waiting)
        };
        self.in_flight.close();
        self.closed_tx.send_replace(true);
        // Dropping the senders wakes every waiting caller with `Disconnected`.
        drop(waiting);
    }

    fn disconnected(&self) -> ClientError {
        ClientError::Disconnected {
            addr: self.addr.clone(),
        }
    }
}

/// Removes a caller's pending entry however its request ends, so a timed-out or cancelled
/// request leaves nothing behind and its late response is dropped.
struct WaitingGuard<'a> {
    shared: &'a Shared,
    correlation_id: i32,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.shared.take_waiting(self.correlation_id);
    }
}

/// A request frame as queued for the writer: the size prefix and header, then the body (kept
/// apart so that an opaque body is written without being copied).
struct Outgoing {
    head: Bytes,
    body: Bytes,
}

/// One TCP connection to one Kafka node, with many requests in flight at once.
///
/// All methods take `&self`: share a connection between tasks through an `Arc` (as
/// [`Pool`](crate::Pool) does). Dropping the last handle closes the connection.
pub struct Connection {
    shared: Arc<Shared>,
    frames_tx: mpsc::Sender<Outgoing>,
    client_id: StrBytes,
    /// The peer's ApiVersions answer, asked once per connection (a peer's versions can change
    /// only with a restart, which is a new connection).
    peer_versions: tokio::sync::OnceCell<PeerVersions>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared.addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Connection {
    /// Resolves `addr` (`"host:port"`, `"[::1]:9093"`) afresh, connects to the first resolved
    /// address that accepts within [`ConnectOptions::connect_timeout`], and starts the
    /// connection's reader and writer tasks (so it must run inside a tokio runtime).
    ///
    /// Resolution is never cached: in containers a name's address changes when a node restarts.
    pub async fn connect(addr: &str, options: &ConnectOptions) -> Result<Connection, ClientError> {
        let stream = open_stream(addr, options.connect_timeout).await?;
        stream
            .set_nodelay(true)
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        // `Semaphore::new` and `mpsc::channel` panic outside 1..=MAX_PERMITS.
        let in_flight_max = options
            .requests_in_flight_max
            .clamp(1, Semaphore::MAX_PERMITS);
        let (closed_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(Pending {
                waiting: HashMap::new(),
                closed: false,
            }),
            closed_tx,
            in_flight: Semaphore::new(in_flight_max),
            issued: AtomicU64::new(0),
        });
        let (read, write) = stream.into_split();
        let (frames_tx, frames_rx) = mpsc::channel(in_flight_max);
        tokio::spawn(write_task(Arc::clone(&shared), write, frames_rx));
        tokio::spawn(read_task(
            Arc::clone(&shared),
            read,
            options.frame_bytes_max,
        ));
        tracing::debug!(addr, "connected");
        Ok(Connection {
            shared,
            frames_tx,
            client_id: StrBytes::from_string(options.client_id.clone()),
            peer_versions: tokio::sync::OnceCell::new(),
        })
    }

    /// The address this connection was opened with, as given.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the connection is closed; every request on it now fails with
    /// [`ClientError::Disconnected`].
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Completes once the connection is closed (a follower fetcher can select on it).
    pub async fn closed(&self) {
        let mut closed = self.shared.closed_tx.subscribe();
        // Cannot fail: the sender lives in `shared`, which `self` keeps alive.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Closes the connection: requests in flight fail with [`ClientError::Disconnected`].
    pub fn close(&self) {
        self.shared.close();
    }

    /// Requests sent and not yet answered, timed out or cancelled.
    pub fn requests_in_flight(&self) -> usize {
        self.shared.lock_pending().waiting.len()
    }

    /// Sends a request with an opaque body under request header v2 (api key, version,
    /// correlation id, client id, no tagged fields) and returns the response body that follows
    /// the response header v0 (the correlation id). For private api keys whose bodies this crate
    /// does not know.
    pub async fn send_raw(
        &self,
        api_key: i16,
        api_version: i16,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        let mut frame = self
            .round_trip(api_key, timeout, body, |correlation_id, head| {
                self.header(api_key, api_version, correlation_id)
                    .encode(head, RAW_REQUEST_HEADER_VERSION)
                    .map_err(|e| {
                        ClientError::Encode(format!("request header for api key {api_key}: {e:#}"))
                    })
            })
            .await?;
        // The reader only delivers frames that hold at least a correlation id.
        frame.advance(CORRELATION_ID_BYTES.min(frame.len()));
        Ok(frame)
    }

    /// Sends `req` at `version` with the request header version Kafka specifies for it and
    /// decodes the response (header version likewise; ApiVersions responses always use v0).
    ///
    /// Decoding is `kafka-protocol`'s, which sizes arrays by the counts on the wire: fine for
    /// peers we run, not a defence against a hostile one.
    pub async fn send<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let key = known_key::<R>(version)?;
        let mut frame = self
            .round_trip(R::KEY, timeout, Bytes::new(), |correlation_id, head| {
                self.encode_typed(req, key, version, correlation_id, head)
            })
            .await?;
        ResponseHeader::decode(&mut frame, response_header_version(key, version)).map_err(|e| {
            ClientError::Protocol(format!(
                "bad {key:?} v{version} response header from {}: {e:#}",
                self.addr()
            ))
        })?;
        R::Response::decode(&mut frame, version).map_err(|e| {
            ClientError::Protocol(format!(
                "bad {key:?} v{version} response from {}: {e:#}",
                self.addr()
            ))
        })
    }

    /// The peer's api versions, asked with ApiVersions on first use and kept for the life of
    /// the connection. A peer too old for ApiVersions v3 answers with a v0 body (Kafka's rule),
    /// which is read by asking again at v0.
    pub async fn peer_versions(&self, timeout: Duration) -> Result<&PeerVersions, ClientError> {
        self.peer_versions
            .get_or_try_init(|| async {
                let mut req = ApiVersionsRequest::default();
                req.client_software_name = StrBytes::from_static_str("rafka");
                req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
                let response = match self.send(&req, API_VERSIONS_VERSION_MAX, timeout).await {
                    Ok(r) if r.error_code != UNSUPPORTED_VERSION_CODE => r,
                    Ok(_) | Err(ClientError::Protocol(_)) => {
                        self.send(&ApiVersionsRequest::default(), 0, timeout)
                            .await?
                    }
                    Err(e) => return Err(e),
                };
                if response.error_code != 0 {
                    return Err(ClientError::Protocol(format!(
                        "ApiVersions from {} failed with error code {}",
                        self.addr(),
                        response.error_code
                    )));
                }
                Ok(PeerVersions::from_response(&response))
            })
            .await
    }

    /// The version of `R` to speak to this peer: the highest both sides support.
    pub async fn version_for<R: Request>(&self, timeout: Duration) -> Result<i16, ClientError> {
        let versions = self.peer_versions(timeout).await?;
        versions
            .pick(R::KEY, R::VERSIONS)
            .ok_or_else(|| ClientError::UnsupportedVersion {
                addr: self.addr().to_string(),
                api_key: R::KEY,
                ours: (R::VERSIONS.min, R::VERSIONS.max),
                theirs: versions.range(R::KEY),
            })
    }

    /// [`Connection::send`] at the version [`Connection::version_for`] picks; for requests
    /// whose fields mean the same at every version both sides speak. The timeout covers the
    /// negotiation too.
    pub async fn send_negotiated<R: Request>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let started = tokio::time::Instant::now();
        let version = self.version_for::<R>(timeout).await?;
        self.send(req, version, timeout.saturating_sub(started.elapsed()))
            .await
    }

    /// Sends `req` at `version` for which the peer sends no response (Produce with acks=0): the
    /// frame is queued behind the requests before it, and the call returns once it is queued
    /// (within `timeout`), not when it is written.
    pub async fn send_no_response<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let key = known_key::<R>(version)?;
        if self.is_closed() {
            return Err(self.shared.disconnected());
        }
        let correlation_id = self.shared.next_correlation_id();
        let head = new_frame(0, |head| {
            self.encode_typed(req, key, version, correlation_id, head)
        })?;
        let outgoing = Outgoing {
            head: head.freeze(),
            body: Bytes::new(),
        };
        match tokio::time::timeout(timeout, self.frames_tx.send(outgoing)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(self.shared.disconnected()),
            Err(_elapsed) => Err(ClientError::Timeout {
                addr: self.shared.addr.clone(),
                api_key: R::KEY,
                timeout,
            }),
        }
    }

    /// Writes the request header Kafka specifies for `key` at `version`, then `req`.
    fn encode_typed<R: Request>(
        &self,
        req: &R,
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        head: &mut BytesMut,
    ) -> Result<(), ClientError> {
        self.header(R::KEY, version, correlation_id)
            .encode(head, key.request_header_version(version))
            .and_then(|()| req.encode(head, version))
            .map_err(|e| ClientError::Encode(format!("{key:?} v{version}: {e:#}")))
    }

    fn header(&self, api_key: i16, api_version: i16, correlation_id: i32) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(api_version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()))
    }

    /// One request: `encode_head` writes header (and, for typed requests, body) for the given
    /// correlation id; returns the response frame from its response header on.
    async fn round_trip(
        &self,
        api_key: i16,
        timeout: Duration,
        body: Bytes,
        encode_head: impl FnOnce(i32, &mut BytesMut) -> Result<(), ClientError>,
    ) -> Result<Bytes, ClientError> {
        // The timeout covers the wait for an in-flight slot too: a caller's deadline is its own.
        match tokio::time::timeout(timeout, self.round_trip_untimed(body, encode_head)).await {
            Ok(reply) => reply,
            Err(_elapsed) => Err(ClientError::Timeout {
                addr: self.shared.addr.clone(),
                api_key,
                timeout,
            }),
        }
    }

    async fn round_trip_untimed(
        &self,
        body: Bytes,
        encode_head: impl FnOnce(i32, &mut BytesMut) -> Result<(), ClientError>,
    ) -> Result<Bytes, ClientError> {
        if self.is_closed() {
            return Err(self.shared.disconnected());
        }
        let _slot = self
            .shared
            .in_flight
            .acquire()
            .await
            .map_err(|_closed| self.shared.disconnected())?;
        let correlation_id = self.shared.next_correlation_id();

        let head = new_frame(body.len(), |head| encode_head(correlation_id, head))?;

        let (reply_tx, reply_rx) = oneshot::channel();
        if !self.shared.register(correlation_id, reply_tx) {
            return Err(self.shared.disconnected());
        }
        let _waiting = WaitingGuard {
            shared: &self.shared,
            correlation_id,
        };
        self.frames_tx
            .send(Outgoing {
                head: head.freeze(),
                body,
            })
            .await
            .map_err(|_| self.shared.disconnected())?;
        // A dropped sender means the connection closed.
        reply_rx
            .await
            .unwrap_or_else(|_| Err(self.shared.disconnected()))
    }
}

/// The api key of `R`, if this build knows it and `version` is within its versions.
fn known_key<R: Request>(version: i16) -> Result<ApiKey, ClientError> {
    let key = ApiKey::try_from(R::KEY)
        .map_err(|()| ClientError::Encode(format!("unknown api key {}", R::KEY)))?;
    if version < R::VERSIONS.min || version > R::VERSIONS.max {
        return Err(ClientError::Encode(format!(
            "{key:?} v{version} is outside the versions {}..={} this build knows",
            R::VERSIONS.min,
            R::VERSIONS.max
        )));
    }
    Ok(key)
}

/// A frame's head: the size prefix, then what `encode` writes; the prefix counts `body_bytes`
/// more that the writer sends after the head.
fn new_frame(
    body_bytes: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), ClientError>,
) -> Result<BytesMut, ClientError> {
    let mut head = BytesMut::with_capacity(128);
    head.put_i32(0);
    encode(&mut head)?;
    let size = head.len() - SIZE_PREFIX_BYTES + body_bytes;
    let size_prefix = i32::try_from(size).map_err(|_| ClientError::FrameTooLarge {
        size,
        max: i32::MAX as usize,
    })?;
    head[..SIZE_PREFIX_BYTES].copy_from_slice(&size_prefix.to_be_bytes());
    Ok(head)
}

/// ApiVersions responses always use header v0, whatever the request version, so that a client
/// can read the answer to a version the broker does not know (KIP-511).
fn response_header_version(key: ApiKey, version: i16) -> i16 {
    if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    }
}

async fn open_stream(addr: &str, connect_timeout: Duration) -> Result<TcpStream, ClientError> {
    let resolve_error = |source| ClientError::Resolve {
        addr: addr.to_string(),
        source,
    };
    // A resolver that hangs must not hang the caller.
    let resolved: Vec<SocketAddr> =
        match tokio::time::timeout(connect_timeout, tokio::net::lookup_host(addr)).await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(source)) => return Err(resolve_error(source)),
            Err(_elapsed) => {
                return Err(resolve_error(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "name lookup took longer than {} ms",
                        connect_timeout.as_millis()
                    ),
                )))
            }
        };
    let mut last_error = None;
    for socket_addr in resolved {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(socket_addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => {
                tracing::debug!(addr, %socket_addr, error = %e, "connect attempt failed");
                last_error = Some(e);
            }
            Err(_elapsed) => {
                tracing::debug!(addr, %socket_addr, "connect attempt timed out");
                last_error = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connect to {socket_addr} took longer than {} ms",
                        connect_timeout.as_millis()
                    ),
                ));
            }
        }
    }
    Err(match last_error {
        Some(source) => ClientError::Connect {
            addr: addr.to_string(),
            source,
        },
        None => resolve_error(io::Error::new(
            io::ErrorKind::NotFound,
            "the name resolved to no addresses",
        )),
    })
}

async fn write_task(
    shared: Arc<Shared>,
    write: OwnedWriteHalf,
    mut frames: mpsc::Receiver<Outgoing>,
) {
    let mut closed = shared.closed_tx.subscribe();
    tokio::select! {
        _ = closed.wait_for(|closed| *closed) => {}
        result = write_frames(write, &mut frames) => {
            if let Err(e) = result {
                tracing::debug!(addr = shared.addr, error = %e, "write failed; closing");
            }
        }
    }
    shared.close();
}

async fn write_frames(
    write: OwnedWriteHalf,
    frames: &mut mpsc::Receiver<Outgoing>,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write);
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    // Zero: every sender is gone, i.e. the connection handle was dropped.
    while frames.recv_many(&mut batch, WRITE_BATCH_MAX).await > 0 {
        for frame in batch.drain(..) {
            out.write_all(&frame.head).await?;
            out.write_all(&frame.body).await?;
        }
        out.flush().await?;
    }
    Ok(())
}

/// Why the reader stopped.
enum ReadEnd {
    Eof,
    Io(io::Error),
    /// The peer broke the protocol; the stream cannot be trusted any further.
    Violation(String),
}

async fn read_task(shared: Arc<Shared>, read: OwnedReadHalf, frame_bytes_max: usize) {
    let mut closed = shared.closed_tx.subscribe();
    tokio::select! {
        _ = closed.wait_for(|closed| *closed) => {}
        end = read_frames(&shared, read, frame_bytes_max) => match end {
            ReadEnd::Eof => tracing::debug!(addr = shared.addr, "peer closed the connection"),
            ReadEnd::Io(e) => {
                tracing::debug!(addr = shared.addr, error = %e, "read failed; closing");
            }
            ReadEnd::Violation(why) => {
                tracing::warn!(addr = shared.addr, "closing the connection: {why}");
            }
        }
    }
    shared.close();
}

/// Reads until `buf` holds at least `want` bytes.
async fn fill(read: &mut OwnedReadHalf, buf: &mut BytesMut, want: usize) -> Result<(), ReadEnd> {
    while buf.len() < want {
        if buf.capacity() - buf.len() < want - buf.len() {
            buf.reserve(READ_CHUNK_BYTES.max(want - buf.len()));
        }
        match read.read_buf(buf).await {
            Ok(0) => return Err(ReadEnd::Eof),
            Ok(_) => {}
            Err(e) => return Err(ReadEnd::Io(e)),
        }
    }
    Ok(())
}

async fn read_frames(shared: &Shared, mut read: OwnedReadHalf, frame_bytes_max: usize) -> ReadEnd {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        if let Err(end) = fill(&mut read, &mut buf, SIZE_PREFIX_BYTES).await {
            return end;
        }
        let claimed = (&buf[..SIZE_PREFIX_BYTES]).get_i32();
        let size = match usize::try_from(claimed) {
            Ok(size) if size >= CORRELATION_ID_BYTES => size,
            _ => {
                return ReadEnd::Violation(format!(
                    "response frame size {claimed} is too small for a response header"
                ))
            }
        };
        if size > frame_bytes_max {
            refuse_oversized(shared, &mut read, &mut buf, size, frame_bytes_max).await;
            return ReadEnd::Violation(format!(
                "response frame of {size} bytes exceeds the limit of {frame_bytes_max} bytes"
            ));
        }
        let frame_end = SIZE_PREFIX_BYTES + size;
        if buf.len() < frame_end {
            // `size` is within the limit, so this reservation is bounded.
            buf.reserve(frame_end - buf.len());
            if let Err(end) = fill(&mut read, &mut buf, frame_end).await {
                return end;
            }
        }
        buf.advance(SIZE_PREFIX_BYTES);
        let frame = buf.split_to(size).freeze();
        let correlation_id = (&frame[..CORRELATION_ID_BYTES]).get_i32();
        match shared.take_waiting(correlation_id) {
            Some(reply) => {
                // The caller may have just given up; then the response is dropped here.
                let _ = reply.send(Ok(frame));
            }
            None if shared.was_issued(correlation_id) => {
                tracing::debug!(
                    addr = shared.addr,
                    correlation_id,
                    "dropping a response whose request timed out or was cancelled"
                );
            }
            None => {
                return ReadEnd::Violation(format!(
                    "response with correlation id {correlation_id}, which no request carried"
                ))
            }
        }
    }
}

/// Tells the caller an oversized response belongs to (when its correlation id arrives promptly)
/// why its request failed. Reads at most a few bytes past the size prefix; nothing is allocated
/// for the claimed size.
async fn refuse_oversized(
    shared: &Shared,
    read: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    size: usize,
    frame_bytes_max: usize,
) {
    let header_end = SIZE_PREFIX_BYTES + CORRELATION_ID_BYTES;
    let got_header = matches!(
        tokio::time::timeout(OVERSIZE_HEADER_WAIT, fill(read, buf, header_end)).await,
        Ok(Ok(()))
    );
    if !got_header {
        return;
    }
    let correlation_id = (&buf[SIZE_PREFIX_BYTES..header_end]).get_i32();
    if let Some(reply) = shared.take_waiting(correlation_id) {
        let _ = reply.send(Err(ClientError::FrameTooLarge {
            size,
            max: frame_bytes_max,
        }));
    }
}
