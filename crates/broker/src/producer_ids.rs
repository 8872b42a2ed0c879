//! Producer ids for InitProducerId, handed out from blocks this broker takes from the metadata
//! log (Kafka's `ProducerIdManager` with `AllocateProducerIds`): an id is never reused, across
//! restarts and brokers, because a block is recorded before any id of it is given out.

use rafka_metadata::{CommandRejected, ControllerCommand, MetadataError};
use rafka_protocol::kafka_protocol::ResponseError;
use tokio::sync::Mutex;

use crate::errors::{self, ApiError};
use crate::state::Shared;

/// Ids per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Attempts when another proposer took the block we asked for.
const ALLOCATE_ATTEMPTS: usize = 5;

#[derive(Debug, Default)]
pub struct ProducerIds {
    /// `[next, end)` of the current block; empty at start.
    block: std::sync::Mutex<(i64, i64)>,
    /// One block allocation at a time.
    refill: Mutex<()>,
}

impl ProducerIds {
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
    pub async fn ensure_available(&self, shared: &Shared) -> Result<(), ApiError> {
        let _one_at_a_time = self.refill.lock().await;
        {
            let block = self.block.lock().unwrap_or_else(|e| e.into_inner());
            if block.0 < block.1 {
                return Ok(());
            }
        }
        let fresh = allocate(shared).await?;
        *self.block.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    pub async fn next_id(&self, shared: &Shared) -> Result<i64, ApiError> {
        loop {
            if let Some(id) = self.try_take() {
                return Ok(id);
            }
            self.ensure_available(shared).await?;
        }
    }
}

async fn allocate(shared: &Shared) -> Result<(i64, i64), ApiError> {
    for _ in 0..ALLOCATE_ATTEMPTS {
        let first = shared.image().next_producer_id;
        let command = ControllerCommand::AllocateProducerIds {
            broker_id: shared.node_id,
            first_producer_id: first,
            count: PRODUCER_ID_BLOCK_SIZE,
        };
        match shared.quorum.write(command).await {
            Ok(_) => {
                tracing::info!(
                    first,
                    end = first + PRODUCER_ID_BLOCK_SIZE,
                    "Allocated a block of producer ids"
                );
                return Ok((first, first + PRODUCER_ID_BLOCK_SIZE));
            }
            Err(MetadataError::Rejected(CommandRejected::ProducerIdBlockTaken { .. })) => continue,
            Err(e) => return Err(errors::metadata(&e)),
        }
    }
    Err(ApiError::new(
        ResponseError::UnknownServerError,
        "could not allocate a producer id block".to_string(),
    ))
}
