//! The messages of every conversation. Each conversation is one QUIC
//! bidirectional stream; the opener sends the first frame.
//!
//! | conversation | opener → acceptor | first frame | replies |
//! |---|---|---|---|
//! | control | any peer → station | [`StationRequest`] | [`StationReply`] (one, or a stream of [`ChannelEvent`]s for backup/restore) |
//! | command | station → mover or primary node | [`Command`] | [`CommandReply`] |
//! | tracks (backup) | primary node → front-end | [`TrackStreamOpen::Backup`], then [`TrackFrame`]s | [`TrackAck`]s |
//! | tracks (restore) | primary node → front-end | [`TrackStreamOpen::Restore`] | [`RestoreFrame`]s |
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
    AbsId, AbsKind, AbsState, CatalogHealth, ChannelId, ChannelKind, ChannelState, Failure, JobId, Level, MapId,
    MediaSetId, MoverState, SegmentSeq, TapeLocation, TapeState,
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
pub enum ObjectSpec {
    /// A whole volume.
    Volume(String),
    /// Extents in logical order.
    Extents(Vec<ObjectExtent>),
}

// ---------------------------------------------------------------- control

/// Requests to the control station, by role:
/// primary node: `RegisterPrimary`; mover: `RegisterMover`, `Heartbeat`,
/// `SegmentPlaced`, `MetadataPlaced`, `ChannelProgress`, `ChannelFinished`,
/// `ChannelFailed` (primary nodes may send the last two as well);
/// client/operator: `Backup`, `Restore`, `List*`, `Channels`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum StationRequest {
    /// Registration (again after the station restarted or declared the
    /// node dead): `boot` identifies this start of the process; `channels`
    /// are the channels it still holds state for (the station aborts those
    /// it is not running).
    RegisterPrimary {
        name: String,
        volumes: Vec<VolumeRef>,
        boot: u64,
        channels: Vec<ChannelId>,
    },
    /// As `RegisterPrimary`; a back-end's drives that the station is not
    /// using are dismounted (their tapes finished and recorded as they are).
    RegisterMover {
        name: String,
        role: MoverRole,
        address: String,
        drives: Vec<String>,
        back_end: Option<String>,
        boot: u64,
        channels: Vec<ChannelId>,
    },
    Heartbeat {
        name: String,
    },
    /// Back-end: the tape in `drive` reached its early-warning point and was
    /// finished with EOV labels (`files` data files, `bytes` data bytes);
    /// which tape continues the media set? Answered with
    /// [`StationReply::NextTape`] once the library has one for the drive.
    TapeFull {
        drive: String,
        tape_label: String,
        files: u32,
        bytes: u64,
    },
    SegmentPlaced(SegmentPlacement),
    MetadataPlaced {
        channel_id: ChannelId,
        abs_id: AbsId,
        tape_label: String,
        tape_file: u32,
        bytes: u64,
    },
    ChannelProgress {
        channel_id: ChannelId,
        bytes: u64,
        tracks: u64,
    },
    ChannelFinished {
        channel_id: ChannelId,
        data_bytes: u64,
        tracks: u64,
        segments: u32,
    },
    ChannelFailed {
        channel_id: ChannelId,
        failure: Failure,
    },
    /// Front-end: how a channel's segments travel between it and its
    /// back-end (`shared`: through the spool both use; else over QUIC),
    /// for the channel's history.
    ChannelDataPath {
        channel_id: ChannelId,
        shared: bool,
        detail: String,
    },
    Backup {
        object_name: String,
        primary: String,
        object: ObjectSpec,
        /// Drives to write the ABS to in parallel (its segments split
        /// across them); 0 or 1: one drive, which may be shared.
        drives: u32,
        level: Level,
        /// Run even if the client goes away before the backup starts
        /// (otherwise a backup still waiting for a drive is cancelled).
        detach: bool,
    },
    /// Restore the object as it was when ABS `abs_id` was taken: a
    /// differential restores its chain (full first).
    Restore {
        abs_id: AbsId,
        target: RestoreTarget,
        /// Most drives to read in parallel; 0: every free drive.
        drives: u32,
    },
    /// Restore an object as it was at a point in time (`at_unix_ms`; None:
    /// its latest backup): the chain of the latest backup taken by then.
    RestoreAt {
        primary: String,
        object_name: String,
        at_unix_ms: Option<i64>,
        target: RestoreTarget,
        drives: u32,
    },
    /// Merge a chain into a synthetic full ABS on the movers: the chain
    /// ending at `abs_id`, or (None) the object's latest chain.
    Merge {
        primary: String,
        object_name: String,
        abs_id: Option<AbsId>,
    },
    ListAbs,
    ListTapes,
    /// The registered data movers (name, role, address, state, last heartbeat).
    ListMovers,
    /// Operator: label `count` new scratch tapes of `pool` in free slots.
    LibraryLabel {
        pool: String,
        count: u32,
    },
    /// Operator: move a tape's image out of the library into `to_dir`.
    LibraryExport {
        label: String,
        to_dir: String,
    },
    /// Operator: bring a tape image (on the station's host) into the
    /// library: an exported tape of this catalog, or a blank image, which
    /// becomes a scratch tape of `pool`.
    LibraryImport {
        path: String,
        pool: String,
    },
    ListSegments {
        abs_id: Option<AbsId>,
    },
    Channels {
        channel_id: Option<ChannelId>,
    },
    /// Operator: give `client` rights on `primary`'s objects (`object`:
    /// one object; None: every object of the node, and its volumes as
    /// restore destinations). Rights add to what the client had.
    Grant {
        client: String,
        primary: String,
        object: Option<String>,
        backup: bool,
        restore: bool,
    },
    /// Operator: take rights away (both when neither is named).
    Revoke {
        client: String,
        primary: String,
        object: Option<String>,
        backup: bool,
        restore: bool,
    },
    /// Operator: every grant; a client: its own.
    ListGrants,
    /// A back-end asks whether `front_end`, which connected to it, is
    /// paired with it (it serves segments only to its own front-ends).
    CheckPair {
        front_end: String,
    },
    /// Client or operator: the station's health (answered even while the
    /// catalog database is unreachable).
    Health,
}

/// The station's health: whether its catalog answers, and which processes
/// it hears from.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HealthInfo {
    /// `ok`, or `unavailable` while the catalog database is unreachable
    /// (`catalog_detail` says why).
    pub catalog: CatalogHealth,
    /// Why the catalog is unavailable (empty when it is ok).
    pub catalog_detail: String,
    /// Seconds since this start of the station.
    pub uptime_seconds: u64,
    /// Channels running in this start of the station.
    pub channels: u32,
    pub peers: Vec<PeerHealth>,
}

/// A registered mover or primary node as the station hears it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PeerHealth {
    pub name: String,
    pub role: String,
    /// Which start of the process registered (see [`PeerAddr::boot`]).
    pub boot: u64,
    /// Milliseconds since its last heartbeat or registration.
    pub last_heard_ms: u64,
}

/// One grant: what a client may do on a primary node's objects.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GrantInfo {
    pub client: String,
    pub primary: String,
    /// Empty: every object of the node.
    pub object: String,
    pub backup: bool,
    pub restore: bool,
    pub granted_by: String,
    pub granted_at: String,
}

/// Where a back-end put one segment (reported after the tape was synced).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SegmentPlacement {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub seq: SegmentSeq,
    pub tape_label: String,
    pub tape_file: u32,
    pub bytes: u64,
    pub data_bytes: u64,
    pub track_count: u32,
    pub crc32c: u32,
}

/// Replies of the control station.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum StationReply {
    Ok,
    Error(Failure),
    Registered {
        id: u64,
    },
    /// A heartbeat from a process the station does not (or no longer)
    /// count as registered: it registers again.
    NotRegistered,
    /// The station's own health (see [`StationRequest::Health`]).
    Health(HealthInfo),
    /// The tape that continues a media set (see [`StationRequest::TapeFull`]).
    NextTape {
        tape_label: String,
        path: String,
        new: NewTape,
    },
    Event(ChannelEvent),
    Abs(Vec<AbsInfo>),
    Tapes(Vec<TapeInfo>),
    Movers(Vec<MoverInfo>),
    Segments(Vec<SegmentInfo>),
    Channels(Vec<ChannelInfo>),
    Grants(Vec<GrantInfo>),
    History {
        channel: ChannelInfo,
        transitions: Vec<TransitionInfo>,
    },
}

/// Progress of a backup or restore, streamed to the client that asked.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    /// The job was accepted: its channel and ABS (sent first, before any
    /// wait).
    Accepted {
        channel_id: ChannelId,
        abs_id: AbsId,
    },
    Started {
        channel_id: ChannelId,
        abs_id: AbsId,
        object_size: u64,
        tracks: u64,
        track_bytes: u64,
    },
    State {
        state: ChannelState,
        reason: String,
    },
    /// The primary node took the backup's snapshot: what it holds (the
    /// whole object, or the tracks changed since the base), or a note about
    /// it (e.g. a recreated change map).
    Snapshot {
        detail: String,
    },
    /// A restore's plan: which tapes each drive's channel reads.
    Planned {
        detail: String,
    },
    /// The job spans a chain of ABSs (a restore of a differential, a
    /// merge): which, in the order they are read, and what is done with
    /// them.
    Chain {
        members: Vec<AbsId>,
        detail: String,
    },
    Progress {
        bytes: u64,
    },
    /// Nothing changed for a while: what the channel is waiting for, and
    /// for how long (sent every few seconds while it waits).
    Waiting {
        what: String,
        seconds: u64,
    },
    /// The backup's front-end died and came back: the backup continues
    /// from its spool, `segments_on_tape` of its segments already on tape
    /// (the primary node sends only what the spool did not keep).
    Resumed {
        front_end: String,
        segments_on_tape: u32,
    },
    Finished {
        bytes: u64,
        tracks: u64,
        segments: u32,
        tapes: Vec<String>,
        seconds: f64,
    },
    Failed(Failure),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AbsInfo {
    pub abs_id: AbsId,
    pub object_name: String,
    pub primary: String,
    pub kind: AbsKind,
    /// full, cumulative, incremental or synthetic.
    pub level: Level,
    /// A differential's base (None: a full).
    pub base_abs_id: Option<AbsId>,
    /// A synthetic full's chain tip (None: not a synthetic full).
    pub merged_from_abs_id: Option<AbsId>,
    /// When the snapshot was taken.
    pub point_in_time: String,
    pub state: AbsState,
    pub object_size: u64,
    pub data_bytes: u64,
    pub track_count: u64,
    pub segment_count: u32,
    pub extents: u32,
    pub created: String,
    pub tapes: Vec<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TapeInfo {
    pub label: String,
    pub pool: String,
    pub state: TapeState,
    pub path: String,
    pub bytes_written: u64,
    pub files_written: u32,
    pub mounted_in: Option<String>,
    /// Media set id and this tape's volume number in it (1, 2, …).
    pub media_set: Option<MediaSetId>,
    pub sequence: Option<u32>,
    /// `library` or `exported`.
    pub location: TapeLocation,
    /// Home slot in the library.
    pub slot: Option<u32>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MoverInfo {
    pub name: String,
    /// `front-end`, `back-end` or `both`.
    pub role: MoverRole,
    /// Where peers dial it (its latest registration).
    pub address: String,
    /// `online`, `offline` or `draining`.
    pub state: MoverState,
    pub registered: String,
    pub last_seen: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SegmentInfo {
    pub abs_id: AbsId,
    pub seq: SegmentSeq,
    pub tape_label: String,
    pub tape_file: u32,
    pub bytes: u64,
    pub data_bytes: u64,
    pub track_count: u32,
    pub crc32c: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    pub abs_id: AbsId,
    pub state: ChannelState,
    pub reason: String,
    pub front_end: String,
    pub back_end: String,
    pub drive: String,
    pub tape: String,
    pub bytes: u64,
    pub updated: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TransitionInfo {
    pub from: Option<ChannelState>,
    pub to: ChannelState,
    pub reason: String,
    pub actor: String,
    pub at: String,
}

// ---------------------------------------------------------------- commands

/// Commands from the control station to movers and primary nodes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Command {
    /// Back-end: load a tape image into a drive for writing. `new` is set
    /// for a scratch tape, which gets labelled; otherwise it is appended to.
    MountForWrite {
        drive: String,
        tape_label: String,
        path: String,
        new: Option<NewTape>,
    },
    /// Back-end: load a tape image into a drive for reading.
    MountForRead {
        drive: String,
        tape_label: String,
        path: String,
    },
    /// Back-end: finish (if written) and unload the tape in a drive.
    Dismount { drive: String },
    /// Front-end: accept the track stream of a backup channel and accumulate it.
    OpenBackup(BackupChannel),
    /// Front-end: serve the restore stream of a channel from its back-end.
    OpenRestore(RestoreChannel),
    /// Primary node: take a backup's snapshot of the map's tracks (protect
    /// them, capture each volume's change-map epoch). `since` empty: every
    /// track of the map; else only the tracks changed since those epochs
    /// (a differential backup). Answered with [`CommandReply::Snapshot`].
    TakeSnapshot {
        channel_id: ChannelId,
        map: AbsMap,
        since: Vec<VolumeEpoch>,
    },
    /// Primary node: send `tracks` (of the snapshot the channel took) to a
    /// front-end.
    SendTrackSet {
        channel_id: ChannelId,
        abs_id: AbsId,
        front_end: PeerAddr,
        map: AbsMap,
        tracks: TrackSet,
        /// The channel's capability, presented to the front-end.
        token: ChannelToken,
    },
    /// Front-end, after it restarted: continue backup channel `channel_id`
    /// from what its spool kept. `placed`: the sequence numbers of the
    /// ABS's segments the catalog holds (on tape; their spool files, if
    /// any are left, are not written again).
    ResumeBackup {
        channel_id: ChannelId,
        placed: Vec<SegmentSeq>,
    },
    /// Primary node: the front-end of backup channel `channel_id` restarted
    /// and resumed it: open the track stream again to `front_end` (its new
    /// start) and send what it does not hold.
    ResumeTrackSet { channel_id: ChannelId, front_end: PeerAddr },
    /// Primary node: receive a restore stream from a front-end and write it.
    ReceiveRestore(RestoreOrder),
    /// Any: forget a channel (it failed elsewhere).
    AbortChannel { channel_id: ChannelId, reason: String },
    /// Primary node: every stream of restore `job` into a file is done:
    /// give the file its name (`commit`), or remove it (the restore failed).
    FinishRestore { job: JobId, commit: bool },
    /// Front-end: build a synthetic full ABS from tracks read back from
    /// tape (FIG. 25/26). The first version of a track to arrive is kept:
    /// the station has the chain read newest first.
    OpenMerge(BackupChannel),
    /// Front-end: read these tape files of one ABS of the chain (the
    /// restore channel `read`) into the merge channel `merge_channel_id`;
    /// reported with `ChannelFinished` of `read.channel_id`.
    MergeRead {
        merge_channel_id: ChannelId,
        read: RestoreChannel,
    },
    /// Front-end: every ABS of the chain was read; seal and finish the
    /// merged ABS (it must hold every track of its map).
    FinishMerge { channel_id: ChannelId },
}

/// A volume's change-map position: the map's random id and the epoch a
/// backup's snapshot captured.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VolumeEpoch {
    pub volume: String,
    pub map_id: MapId,
    pub epoch: u32,
}

/// Labels for a scratch tape.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NewTape {
    pub pool: String,
    pub media_set: MediaSetId,
    pub sequence: u32,
    pub block_size: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BackupChannel {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub object_name: String,
    pub back_end: PeerAddr,
    /// Drives of the back-end this channel writes to; more than one: its
    /// segments are split across them (parallel backup of one ABS).
    pub drives: Vec<String>,
    pub map: AbsMap,
    /// The tracks to expect: the whole map's for a full, the changed ones
    /// for a differential.
    pub track_set: TrackSet,
    /// A differential's base ABS (None: a full).
    pub base_abs_id: Option<AbsId>,
    /// A synthetic full's chain tip (None otherwise).
    pub merged_from_abs_id: Option<AbsId>,
    pub created_unix: u64,
    /// The primary node that will send the tracks (empty: none, a merge).
    pub primary: String,
    /// The channel's capability the node must present.
    pub token: ChannelToken,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RestoreChannel {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub back_end: PeerAddr,
    pub drive: String,
    /// Tape files to read, in position order.
    pub files: Vec<SegmentRef>,
    /// The primary node that will fetch the stream (empty: none, a merge).
    pub primary: String,
    /// The channel's capability the node must present.
    pub token: ChannelToken,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    pub tape_label: String,
    pub tape_file: u32,
    pub seq: SegmentSeq,
    pub crc32c: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RestoreOrder {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub front_end: PeerAddr,
    pub map: AbsMap,
    pub remap: RemapTable,
    /// Destination volume names (remap `Volume(i)` = `volumes[i]`) or a file.
    pub target: RestoreTarget,
    pub tracks: u64,
    /// The restore request this stream belongs to (random, shared by every
    /// drive's stream and every member of a chain): streams of one job
    /// write into the same restore file.
    pub job: JobId,
    /// The channel's capability, presented to the front-end.
    pub token: ChannelToken,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum CommandReply {
    Ok,
    Error(Failure),
    Mounted {
        tape_label: String,
        files: u32,
        bytes: u64,
    },
    Dismounted {
        tape_label: String,
        files: u32,
        bytes: u64,
        full: bool,
        /// Records read from the tape while it was mounted for reading
        /// (volume labels and node header included).
        records_read: u64,
    },
    /// A snapshot was taken: the epochs captured and the tracks to send.
    Snapshot {
        epochs: Vec<VolumeEpoch>,
        tracks: TrackSet,
        /// Anything the station should record (e.g. a recreated change map
        /// that made every track of a volume count as changed).
        notes: Vec<String>,
    },
}

// ---------------------------------------------------------------- tracks

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

// ---------------------------------------------------------------- segments

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
    /// Every file was read.
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
    End {
        tracks: u64,
    },
    Failed(Failure),
}
