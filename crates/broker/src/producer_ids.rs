//! Producer ids for InitProducerId, handed out from blocks this broker takes from the metadata
//! log (Kafka's `ProducerIdManager` with `AllocateProducerIds`): an id is never reused, across
//! restarts and brokers, because a block is recorded before any id of it is given out.

use std::sync::Arc;

use rafka_metadata::{CommandRejected, ControllerCommand, MetadataError, MetadataQuorum};
use rafka_protocol::kafka_protocol::ResponseError;
use tokio::sync::Mutex;

use crate::errors::{self, ApiError};

/// Ids per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Attempts when another proposer took the block we asked for.
const ALLOCATE_ATTEMPTS: usize = 5;

/// This broker's producer id allocator, shared by InitProducerId and the transaction
/// coordinator.
#[derive(Debug)]
pub struct ProducerIds {
    /// The broker a block is recorded for.
    node_id: i32,
    /// Where blocks are taken: the metadata log, through the active controller.
    quorum: Arc<MetadataQuorum>,
    /// `[next, end)` of the current block; empty at start.
    block: std::sync::Mutex<(i64, i64)>,
    /// One block allocation at a time.
    refill: Mutex<()>,
}

impl ProducerIds {
    /// An allocator with no block yet: the first id asked for takes one.
    pub fn new(node_id: i32, quorum: Arc<MetadataQuorum>) -> Self {
        ProducerIds {
            node_id,
            quorum,
            block: std::sync::Mutex::new((0, 0)),
            refill: Mutex::new(()),
        }
    }

    /// The next id of the current block, if it has one left. Synchronous, for the transaction
    /// coordinator (which calls [`ProducerIds::ensure_available`] before it needs an id).
    pub fn try_take(&self) -> Option<i64> {
        let mut block = self.block.lock().unwrap_or_else(|e| e.into_inner());
        (block.0 < block.1).then(|| {
            block.0 += 1;
            block.0 - 1
        })
    }

    /// Takes a new block from the metadata log if the current one is used up.
    pub async fn ensure_available(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.refill.lock().await;
        {
            let block = self.block.lock().unwrap_or_else(|e| e.into_inner());
            if block.0 < block.1 {
                return Ok(());
            }
        }
        let fresh = self.allocate().await?;
        *self.block.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    pub async fn next_id(&self) -> Result<i64, ApiError> {
        loop {
            if let Some(id) = self.try_take() {
                return Ok(id);
            }
            self.ensure_available().await?;
        }
    }

    async fn allocate(&self) -> Result<(i64, i64), ApiError> {
        for _ in 0..ALLOCATE_ATTEMPTS {
            let first = self.quorum.image().next_producer_id;
            let command = ControllerCommand::AllocateProducerIds {
                broker_id: self.node_id,
                first_producer_id: first,
                count: PRODUCER_ID_BLOCK_SIZE,
            };
            match self.quorum.write(command).await {
                Ok(_) => {
                    tracing::info!(
                        first,
                        end = first + PRODUCER_ID_BLOCK_SIZE,
                        "Allocated a block of producer ids"
                    );
                    return Ok((first, first + PRODUCER_ID_BLOCK_SIZE));
                }
                Err(MetadataError::Rejected(CommandRejected::ProducerIdBlockTaken { .. })) => {
                    continue
                }
                Err(e) => return Err(errors::metadata(&e)),
            }
        }
        Err(ApiError::new(
            ResponseError::UnknownServerError,
            "could not allocate a producer id block".to_string(),
        ))
    }
}
