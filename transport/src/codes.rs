//! Application error codes this crate puts on QUIC streams and connections.
//!
//! A receiver that rejects what it read stops the stream (`STOP_SENDING`)
//! with one of these codes, so the sender's next write (or
//! [`quinn::SendStream::stopped`]) reports why. The same numbers are used
//! when a whole connection is closed.
//!
//! | code | name | meaning |
//! |---|---|---|
//! | 0 | [`DONE`] | orderly close, nothing went wrong |
//! | 1 | [`MALFORMED_FRAME`] | a frame failed rkyv validation or the stream ended inside a frame |
//! | 2 | [`FRAME_TOO_LARGE`] | a frame's length prefix exceeded the receiver's limit |
//! | 3 | [`REFUSED`] | the peer's certificate or role is not acceptable for this conversation |

use quinn::VarInt;

/// Orderly close; nothing went wrong.
pub const DONE: VarInt = VarInt::from_u32(0);
/// A frame failed validation, or the stream ended in the middle of a frame.
pub const MALFORMED_FRAME: VarInt = VarInt::from_u32(1);
/// A frame's length prefix exceeded the receiver's limit.
pub const FRAME_TOO_LARGE: VarInt = VarInt::from_u32(2);
/// The peer (its certificate or its role) is refused.
pub const REFUSED: VarInt = VarInt::from_u32(3);

/// A short human description of one of this crate's codes.
pub fn describe(code: VarInt) -> &'static str {
    match code.into_inner() {
        0 => "done",
        1 => "malformed frame",
        2 => "frame too large",
        3 => "refused",
        _ => "unknown application code",
    }
}
