//! Producer ids for InitProducerId, handed out from blocks this broker takes from the metadata
//! log (Kafka's `ProducerIdManager` with `AllocateProducerIds`): an id is never reused, across
//! restarts and brokers, because a block is recorded before any id of it is given out.

use rafka_metadata::{CommandRejected, ControllerCommand, MetadataError};
use rafka_protocol::kafka_protocol::ResponseError;
use tokio::sync::Mutex;

use crate::errors::{self, ApiError};
use crate::node::Shared;

/// Ids per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Attempts when another proposer took the block we asked for.
const ALLOCATE_ATTEMPTS: usize = 5;

#[derive(Debug, Default)]
pub struct ProducerIds {
    /// `[next, end)` of the current block; empty at start.
    block: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub async fn next_id(&self, shared: &Shared) -> Result<i64, ApiError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            *block = allocate(shared).await?;
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
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
