//! The segment conversations: front-end → back-end (pairing, a segment
//! or ABS metadata to tape, segments read back from tape).

use rkyv::{Archive, Deserialize, Serialize};

use super::*;

/// Front-end → back-end requests.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum BackEndRequest {
    /// Do we share a spool directory? The front-end wrote `token` into the
    /// file `token_name` (`.pair-` and 32 hex digits) of its spool; the
    /// back-end looks for it in its own. Answered with
    /// [`BackEndReply::Paired`].
    Pair { token_name: String, token: Vec<u8> },
    /// Write a sealed segment of `bytes` bytes (body CRC32C `crc32c`, as in
    /// its trailer) to tape. `shared`: it is in the shared spool as
    /// `abs-<abs_id>/seg-<seq>.sealed`; otherwise its bytes follow, raw.
    WriteSegment {
        channel_id: ChannelId,
        drive: String,
        object_name: String,
        abs_id: AbsId,
        seq: SegmentSeq,
        bytes: u64,
        crc32c: u32,
        shared: bool,
    },
    /// The ABS metadata (encoded [`crate::tape::metadata::AbsMetadata`]).
    WriteMetadata {
        channel_id: ChannelId,
        drive: String,
        object_name: String,
        abs_id: AbsId,
        metadata: Vec<u8>,
    },
    /// Read these tape files from the tape in `drive`, verify each, and
    /// hand them over one by one ([`StagedFrame`]): in the shared spool
    /// (`shared`) or raw on this stream. The front-end answers each with a
    /// [`ReadAck`]; the back-end stays at most a few segments ahead.
    ReadSegments {
        channel_id: ChannelId,
        drive: String,
        abs_id: AbsId,
        files: Vec<SegmentRef>,
        shared: bool,
    },
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum BackEndReply {
    /// Written, synced, and committed to the catalog.
    Placed {
        tape_label: String,
        tape_file: u32,
    },
    /// The answer to [`BackEndRequest::Pair`]: whether the token was found
    /// (the two share the spool directory), and what was found otherwise.
    Paired {
        shared: bool,
        reason: String,
    },
    Error(Failure),
}

/// Back-end → front-end frames of a [`BackEndRequest::ReadSegments`]
/// stream. A segment is handed over only after every checksum of it was
/// verified on its way from tape.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum StagedFrame {
    /// Segment `seq` (`bytes` bytes, body CRC32C `crc32c`) is ready: in
    /// the shared spool as `restore-<channel>/seg-<seq>.ready`, or (not
    /// shared) its bytes follow raw.
    Segment {
        seq: SegmentSeq,
        bytes: u64,
        crc32c: u32,
    },
    /// Segment `seq` could not be read as written (a checksum, the
    /// structure, a record the medium lost, not the segment the catalog
    /// expects: `failure`, code `Corrupt`). Nothing of it is handed over;
    /// the back-end goes on with the next file, and the station reads the
    /// segment from another copy.
    Unreadable {
        seq: SegmentSeq,
        failure: Failure,
    },
    /// Every file was read: `segments` handed over (the unreadable ones
    /// not counted).
    End {
        segments: u32,
    },
    Failed(Failure),
}

/// Front-end → back-end, on a [`BackEndRequest::ReadSegments`] stream:
/// segment `seq` was consumed (a shared spool file may be deleted).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReadAck {
    pub seq: SegmentSeq,
}

/// Restore stream frames (front-end → primary node).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum RestoreFrame {
    /// One track: `len` raw bytes of data follow this frame, with CRC32C
    /// `crc32c` (checked by the node before it writes any of them).
    Track {
        addr: TrackAddr,
        len: u32,
        crc32c: u32,
    },
    SegmentDone {
        seq: SegmentSeq,
    },
    /// Segment `seq` could not be read from this tape: its tracks do not
    /// come on this stream (the station has it read from a copy on another
    /// stream of the same restore job, and counts every byte at the end).
    Skipped {
        seq: SegmentSeq,
    },
    End {
        tracks: u64,
    },
    Failed(Failure),
}
