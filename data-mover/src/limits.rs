//! Sizes and times both roles of a mover use.

use std::time::Duration;

/// Bytes of the pieces segments are moved in.
pub const CHUNK: usize = 1 << 20;

/// How long a peer has to send a stream's opening request once it opened
/// the stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
