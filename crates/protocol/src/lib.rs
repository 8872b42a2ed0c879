//! Sans-IO Kafka protocol layer: everything between the bytes of a socket and the typed messages
//! the broker's handlers work with, without touching a socket.
//!
//! Layout:
//! - [`frame`]: the 4-byte size prefix; [`frame::decode_frame`] checks a claimed size against the
//!   limit before anything is allocated for it.
//! - [`versions`]: the single table of APIs and version ranges the broker implements,
//!   [`versions::SUPPORTED_APIS`], and the ApiVersions key list built from it; plus
//!   [`versions::PENDING_APIS`], APIs implemented here but not yet advertised or accepted; and
//!   [`versions::CONTROLLER_APIS`], what a KRaft controller listener answers.
//! - [`codec`]: request decoding (header peek, version gate, header and body decode through
//!   `kafka-protocol`, with produce records left as zero-copy slices of the frame) and response /
//!   request encoding with the right header versions.
//! - `shape` (private): a schema walk over request bodies that runs before `kafka-protocol`
//!   decodes them, because `kafka-protocol` preallocates arrays from counts read off the wire (an
//!   allocation failure aborts the process; it cannot be caught).
//!
//! Record batches themselves live in [`rafka_records`], re-exported here with `kafka_protocol` so
//! dependents use the exact same versions.

pub mod codec;
pub mod fetch_encode;
pub mod frame;
mod shape;
pub mod versions;

pub use kafka_protocol;
pub use rafka_records;

pub use codec::{
    api_versions_fallback_response, controller_api_versions_fallback_response,
    decode_controller_request, decode_request, encode_request, encode_response, peek_header,
    DecodeError, DecodedRequest, EncodeError, RequestHeaderInfo,
};
pub use frame::{decode_frame, frame_len_hint, FrameError, FRAME_PREFIX_LEN};
pub use versions::{
    controller_supported, is_controller_supported, is_supported, supported, ApiSupport,
    CONTROLLER_APIS, PENDING_APIS, SUPPORTED_APIS,
};
