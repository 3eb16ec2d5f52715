//! The messages of every conversation. Each conversation is one QUIC
//! bidirectional stream; the opener sends the first frame.
//!
//! | conversation | opener → acceptor | first frame | replies |
//! |---|---|---|---|
//! | control | any peer → station | [`StationRequest`] | [`StationReply`] (one, or a stream of [`ChannelEvent`]s for backup/restore) |
//! | command | station → mover, primary node or agent | [`Command`] | [`CommandReply`] |
//! | tracks (backup) | primary node → front-end | [`TrackStreamOpen::Backup`], then [`TrackFrame`]s | [`TrackAck`]s |
//! | tracks (restore) | primary node → front-end | [`TrackStreamOpen::Restore`] | [`RestoreFrame`]s |
//! | tracks (copy) | primary node → primary node | [`TrackStreamOpen::Copy`], then [`TrackFrame`]s | [`TrackAck`]s |
//! | pairing | front-end → back-end | [`BackEndRequest::Pair`] | [`BackEndReply::Paired`] |
//! | segment to tape | front-end → back-end | [`BackEndRequest::WriteSegment`] (+ the segment's bytes, raw, unless shared) | [`BackEndReply`] |
//! | segments from tape | front-end → back-end | [`BackEndRequest::ReadSegments`], then [`ReadAck`]s | [`StagedFrame`]s (+ each segment's bytes, raw, unless shared) |
//!
//! Every frame is validated on receipt ([`super::codec::decode`]); nothing in
//! a message is trusted: maps and remap tables are `validate()`d, sizes checked.
//!
//! **Raw payloads.** Track data and segments are not rkyv archives: the
//! frame before them ([`TrackFrame::Track`], [`RestoreFrame::Track`],
//! [`BackEndRequest::WriteSegment`], [`StagedFrame::Segment`]) gives their
//! length (bounded by the receiver) and CRC32C, and exactly that many bytes
//! follow on the stream, read into reused buffers or written straight to a
//! spool file, and checked against the CRC before use.
//!
//! **Shared spool.** A front-end and its back-end on one machine share a
//! spool directory (seed FIG. 27, 271c; FIG. 32): [`BackEndRequest::Pair`]
//! proves it (the back-end reads a token the front-end wrote there). Then a
//! sealed segment is only *announced* (`shared: true`): the back-end copies
//! it from `abs-<id>/seg-<seq>.sealed` in its own spool directory to tape;
//! and a restore's segments are placed by the back-end in
//! `restore-<channel>/seg-<seq>.ready`, where the front-end reads them.
//! Each side builds these names itself from ids; no path crosses the wire.

use rkyv::{Archive, Deserialize, Serialize};

use crate::abs::{AbsMap, ObjectExtent, RemapTable, TrackAddr, TrackSet, VolumeRef};
pub use crate::domain::MoverRole;
use crate::domain::{
    AbsId, AbsKind, AbsState, CatalogHealth, ChannelId, ChannelKind, ChannelState, Failure, HookPhase, JobId, Level,
    MapId, MediaSetId, MoverState, NotificationKind, PoolKind, RunId, RunState, SegmentSeq, SegmentStatus,
    TapeLocation, TapeState, VolumeKey, VpoolKind,
};

/// Name and socket address of a peer process (the name is its TLS name),
/// and which start of that process registered it (`boot`, a random number
/// each process draws when it starts): a connection to an earlier start of
/// the same process is never reused, even at the same address.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub name: String,
    pub address: String,
    pub boot: u64,
}

/// Where a restore writes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    /// The original addresses on the original volumes.
    Original,
    /// Other volumes of a primary node, through an allocation in logical order.
    Volumes {
        primary: String,
        allocation: Vec<ObjectExtent>,
    },
    /// A plain file in the primary node's restore directory, in logical
    /// order: `name` is a file name, never a path (see
    /// [`check_restore_file_name`]); an existing file is written over only
    /// with `replace`.
    File {
        primary: String,
        name: String,
        replace: bool,
    },
}

/// A channel's capability: random bytes the station issues for one
/// channel and gives only to its participants (front-end, primary node).
/// A front-end accepts a channel's stream only from the assigned node
/// presenting it.
pub type ChannelToken = [u8; 16];

/// Compare two tokens in time independent of where they differ.
pub fn tokens_equal(a: &ChannelToken, b: &ChannelToken) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Longest restore file name, bytes.
pub const MAX_RESTORE_FILE_NAME: usize = 255;

/// The primary node a catalog backup is recorded under: the control
/// station itself. No certificate name contains `@`, so no real primary
/// node can take this name.
pub const STATION_NODE: &str = "@station";

/// The logical object of a catalog backup (a `pg_dump` of the catalog, in
/// its custom format).
pub const CATALOG_OBJECT: &str = "catalog";

/// Most bytes a catalog dump may have (64 GiB).
pub const MAX_CATALOG_DUMP: u64 = 64 << 30;

/// A restore file name is one plain file name: not empty, not `.` or `..`,
/// no `/`, no NUL, at most [`MAX_RESTORE_FILE_NAME`] bytes. The primary
/// node decides the directory.
pub fn check_restore_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("restore file name is empty: expected a file name".into());
    }
    if name.len() > MAX_RESTORE_FILE_NAME {
        return Err(format!(
            "restore file name of {} bytes: at most {MAX_RESTORE_FILE_NAME}",
            name.len()
        ));
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(format!(
            "restore file name {name:?}: a file name, not a path (the primary node restores into its own --restore-dir)"
        ));
    }
    Ok(())
}

/// How a client names the object to back up.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum LogicalObject {
    /// A whole volume.
    Volume(String),
    /// Extents in logical order.
    Extents(Vec<ObjectExtent>),
}

mod commands;
mod control;
mod listings;
mod segments;
mod tracks;
mod versions;

pub use commands::*;
pub use control::*;
pub use listings::*;
pub use segments::*;
pub use tracks::*;
pub use versions::*;
