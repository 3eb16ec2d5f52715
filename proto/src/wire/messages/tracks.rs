//! The tracks conversation: primary node → front-end ([`TrackStreamOpen`],
//! then [`TrackFrame`]s with raw track bytes; [`TrackAck`]s back), and the
//! same frames primary node → primary node for a copy.

use rkyv::{Archive, Deserialize, Serialize};

use super::*;

/// First frame of a primary node → front-end stream.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum TrackStreamOpen {
    /// `window`: the most tracks the node keeps sent but not yet
    /// acknowledged ([`TrackAck::OnTape`]); the front-end seals segments
    /// small enough that the window never stalls the stream.
    ///
    /// `resume`: the stream continues one a front-end lost when it
    /// restarted; the front-end first answers [`TrackAck::ResumeFrom`].
    Backup {
        channel_id: ChannelId,
        abs_id: AbsId,
        window: u64,
        token: ChannelToken,
        resume: bool,
    },
    Restore {
        channel_id: ChannelId,
        token: ChannelToken,
    },
    /// Primary node → primary node: a copy's tracks ([`CopyReceive`]),
    /// then [`TrackFrame`]s, answered by [`TrackAck`]s (`OnTape`: synced
    /// on the receiving volumes; `Complete`: every track synced and every
    /// management record written).
    Copy {
        copy_id: ChannelId,
        token: ChannelToken,
        /// As for a backup: the receiver acknowledges at least every
        /// `window / 2` tracks.
        window: u64,
    },
}

/// A backup track stream frame.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum TrackFrame {
    /// One track: `len` raw bytes of data follow this frame, with CRC32C
    /// `crc32c`.
    Track { addr: TrackAddr, len: u32, crc32c: u32 },
    /// All tracks sent.
    End { tracks: u64 },
}

/// Front-end → primary node: how far the stream is safe, or the final
/// outcome.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum TrackAck {
    /// The first `tracks` track frames of the stream are on tape, synced,
    /// and in the catalog: the node may drop them from its request queue
    /// (and their side copies). Nothing before is durable anywhere but on
    /// the node.
    OnTape {
        tracks: u64,
    },
    /// The answer to a resumed stream (sent before anything else): the
    /// front-end holds the first `tracks` track frames of the stream (on
    /// tape or sealed in its spool); the node sends the frames after them,
    /// in the same order (the order of the track set).
    ResumeFrom {
        tracks: u64,
    },
    /// Every segment and the metadata are on tape and in the catalog.
    Complete,
    Failed(Failure),
}
