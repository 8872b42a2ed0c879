//! One client connection: a reader that takes frames off the socket and runs each request in
//! arrival order, and a writer task that sends the answers in that same order.
//!
//! Requests on one connection are handled one after another, as Kafka does (it mutes a channel
//! while a request is in flight): produce order on a connection is append order, which
//! idempotent producers rely on. Reading of the next frames and writing of earlier answers
//! overlap with the handling, bounded by `queued.max.requests` answers waiting to be written.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rafka_protocol::frame::{decode_frame, FrameError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::handlers::Outcome;

/// What a handler needs to know about the connection it serves.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub peer: SocketAddr,
    /// The listener the client connected through; Metadata answers with that listener's endpoints.
    pub listener_name: Arc<str>,
}

/// What serves the requests of one kind of listener: the client listeners (every Kafka API a
/// broker answers) or the controller listener.
pub trait Dispatch: Send + Sync + 'static {
    /// Handles one request frame.
    fn dispatch(
        &self,
        ctx: &ConnectionContext,
        frame: Bytes,
    ) -> impl std::future::Future<Output = Outcome> + Send;
    /// The limits a connection works within.
    fn limits(&self) -> ConnectionLimits;
}

/// Per-connection limits (Kafka's `queued.max.requests`, `socket.request.max.bytes`,
/// `connections.max.idle.ms`) and the listener-wide ones checked at accept.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub queued_max_requests: usize,
    pub socket_request_max_bytes: usize,
    pub connections_max_idle_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

/// Smallest read buffer; frames larger than this get exactly the capacity they need.
const READ_BUFFER_BYTES: usize = 64 * 1024;
const IOV_MAX: usize = 1024;
/// Bytes of answers one connection may have queued but not yet written.
const RESPONSE_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Chunks gathered into one vectored write (Linux takes up to 1024 iovecs per call).
const WRITE_CHUNKS_MAX: usize = 256;

/// Writes every chunk, in order, with as few `writev` calls as the socket allows.
async fn write_all_chunks(writer: &mut OwnedWriteHalf, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        // writev takes at most IOV_MAX (1024) slices; a response may have more chunks.
        let n = writer
            .write_vectored(&rest[..rest.len().min(IOV_MAX)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

pub async fn serve<D: Dispatch>(
    dispatcher: Arc<D>,
    stream: TcpStream,
    ctx: ConnectionContext,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = dispatcher.limits();
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) =
        mpsc::channel::<(Vec<Bytes>, OwnedSemaphorePermit)>(limits.queued_max_requests.max(1));
    // Answers waiting to be written also hold permits for their size, so a client that stops
    // reading stalls its own connection at RESPONSE_QUEUE_BYTES_MAX instead of growing memory.
    let queue_bytes = Arc::new(Semaphore::new(RESPONSE_QUEUE_BYTES_MAX));
    let peer = ctx.peer;
    let write_task = tokio::spawn(async move {
        let mut pending: Vec<Bytes> = Vec::new();
        let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
        while let Some((first, permit)) = rx.recv().await {
            pending.extend(first);
            permits.push(permit);
            // Answers that are already waiting go out in the same vectored write.
            while pending.len() < WRITE_CHUNKS_MAX {
                match rx.try_recv() {
                    Ok((next, permit)) => {
                        pending.extend(next);
                        permits.push(permit);
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = write_all_chunks(&mut writer, &pending).await {
                tracing::debug!(%peer, error = %e, "write failed; closing connection");
                return;
            }
            pending.clear();
            permits.clear();
        }
        let _ = writer.shutdown().await;
    });

    let max_frame_bytes = limits.socket_request_max_bytes;
    let idle = Duration::from_millis(limits.connections_max_idle_ms);
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    'conn: loop {
        // Handle every whole frame already buffered before reading again.
        loop {
            let frame = match decode_frame(&mut buf, max_frame_bytes) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(FrameError::TooLarge { size, max }) => {
                    tracing::warn!(%peer, size, max, "Closing connection: request of {size} bytes exceeds socket.request.max.bytes ({max})");
                    break 'conn;
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "Closing connection: bad frame");
                    break 'conn;
                }
            };
            match dispatcher.dispatch(&ctx, frame.freeze()).await {
                Outcome::Respond(bytes) => {
                    // An answer larger than the whole budget still goes out, alone.
                    let size: usize = bytes.iter().map(Bytes::len).sum();
                    let want = size.clamp(1, RESPONSE_QUEUE_BYTES_MAX) as u32;
                    let Ok(permit) = queue_bytes.clone().acquire_many_owned(want).await else {
                        break 'conn;
                    };
                    if tx.send((bytes, permit)).await.is_err() {
                        break 'conn;
                    }
                }
                Outcome::NoResponse => {}
                Outcome::Close(reason) => {
                    tracing::warn!(%peer, "Closing connection: {reason}");
                    break 'conn;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER_BYTES);
        }
        let read = tokio::select! {
            r = tokio::time::timeout(idle, reader.read_buf(&mut buf)) => r,
            _ = shutdown.changed() => break 'conn,
        };
        match read {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "read failed; closing connection");
                break;
            }
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                break;
            }
        }
    }
    drop(tx);
    let _ = write_task.await;
}
