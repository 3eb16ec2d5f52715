//! Wire messages between processes and their validated codec.
//!
//! Every conversation runs on its own QUIC bidirectional stream; each frame
//! carries one message of that conversation's types (see [`messages`]).

pub mod codec;
pub mod messages;

pub use codec::{decode, decode_aligned, encode, encode_into, WireError, MAX_CONTROL_FRAME, MAX_DATA_FRAME};
pub use messages::*;
