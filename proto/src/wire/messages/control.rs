//! The control conversation: any peer → station ([`StationRequest`] →
//! [`StationReply`], or a stream of [`ChannelEvent`]s for a backup or
//! restore), and the listings the station answers with.

use rkyv::{Archive, Deserialize, Serialize};

use super::*;

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
        /// The volumes of `volumes` that are target volumes (with a
        /// management region), and what each region holds.
        targets: Vec<TargetVolume>,
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
    /// A host's `smapp agent` (client certificate): it runs the pre and
    /// post commands of the backup definitions naming its host, on
    /// [`Command::RunHook`]. `boot` as for the other registrations.
    RegisterAgent {
        name: String,
        boot: u64,
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
    /// Front-end of a restore channel: segment `seq` of tape `tape_label`
    /// file `tape_file` could not be read (`failure`); the channel goes on
    /// without it, and the station marks that copy damaged and reads the
    /// segment from another one.
    SegmentUnreadable {
        channel_id: ChannelId,
        seq: SegmentSeq,
        tape_label: String,
        tape_file: u32,
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
        object: LogicalObject,
        /// Drives to write the ABS to in parallel (its segments split
        /// across them); 0 or 1: one drive, which may be shared.
        drives: u32,
        level: Level,
        /// Run even if the client goes away before the backup starts
        /// (otherwise a backup still waiting for a drive is cancelled).
        detach: bool,
        /// The primary pool to write to (None: the station's default).
        pool: Option<String>,
        /// A copy pool of that pool to copy the ABS to before the backup
        /// reports done (a synchronous copy; None: none).
        copy_to: Option<String>,
        /// The user's label text, kept with the ABS on tape (≤ 1024 bytes).
        label: String,
        /// Read the object from this copy version's target volumes instead
        /// of the production volumes (a full backup; the ABS's point in
        /// time is the version's). None: the production volumes.
        from_version: Option<VersionRef>,
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
    /// Operator: label `count` new scratch tapes of `pool` (None: the
    /// station's default pool) in free slots.
    LibraryLabel {
        pool: Option<String>,
        count: u32,
    },
    /// Operator: move a tape's image out of the library into `to_dir`.
    LibraryExport {
        label: String,
        to_dir: String,
    },
    /// Operator: bring tape images (on a back-end's host) into the
    /// library: an exported tape of this catalog, a blank image, which
    /// becomes a scratch tape of `pool`, or tapes this catalog never saw
    /// (another cluster's: their contents are recorded; the images of a
    /// media set go together). Answered with [`StationReply::Imported`].
    LibraryImport {
        paths: Vec<String>,
        pool: Option<String>,
    },
    /// Operator: define a storage pool. A copy pool names the primary
    /// pools whose ABSs it holds copies of (at least one); a primary pool
    /// names none. Defining a pool again with the same kind adds to its
    /// primary pools.
    PoolDefine {
        name: String,
        kind: PoolKind,
        copies_of: Vec<String>,
        /// Days emptied tapes are kept (None: 0 for a new pool, else
        /// unchanged).
        retain_days: Option<u32>,
    },
    /// Delete ABS `abs_id` (complete or failed) from the catalog: it is no
    /// longer listed or restorable, its segments are free. Refused while a
    /// differential builds on it, unless `with_dependents` (then those are
    /// deleted too). A client needs a backup grant on its object. Answered
    /// with [`StationReply::Deleted`].
    DeleteAbs {
        abs_id: AbsId,
        with_dependents: bool,
    },
    /// Every pool, with its tapes and what it holds.
    PoolList,
    /// Operator: define volume pool `name` of `kind` with `volumes` (each
    /// reported by its node; a volume is in one volume pool at most).
    /// Answered with [`StationReply::Vpools`].
    VpoolDefine {
        name: String,
        kind: VpoolKind,
        volumes: Vec<VolumeKey>,
    },
    /// Operator: add volumes to a volume pool (a source volume added gets
    /// a pair at the next version).
    VpoolAdd {
        name: String,
        volumes: Vec<VolumeKey>,
    },
    /// Operator: remove volumes from a volume pool (a source volume
    /// removed has its pair broken at the next version, its target freed).
    VpoolRemove {
        name: String,
        volumes: Vec<VolumeKey>,
    },
    /// Every volume pool (client or operator).
    VpoolList,
    /// Operator: define version set `name`: source pool `source` copied in
    /// rotation onto `targets` (one version per pool), `keep` kept.
    /// Answered with [`StationReply::VersionSets`].
    VersionsDefine {
        name: String,
        source: String,
        targets: Vec<String>,
        keep: u32,
        pre: Option<PreCommand>,
    },
    /// Operator: make the pre-pairing record of the set's next version
    /// (seed 004 FIG. 4, 5): a target for every source volume, or the
    /// version refused with the reason before any copy.
    VersionsPrepare {
        name: String,
    },
    /// Operator: make the set's next version (seed 004 FIG. 6): its copy
    /// record, one point in time across every source volume, each source
    /// copied onto its target node to node, the replication record.
    /// Answered when it is made, with [`StationReply::VersionSets`].
    VersionsRun {
        name: String,
    },
    /// Operator: copy version `version` of set `set` back: the target of
    /// source `volume` onto `volume` itself, or onto `to` (a data volume
    /// at least as large, same geometry). Answered with
    /// [`StationReply::VersionRestored`].
    VersionsRestore {
        set: String,
        version: u64,
        volume: VolumeKey,
        to: Option<VolumeKey>,
    },
    /// Version sets (one, or every one) with their records.
    VersionsList {
        name: Option<String>,
    },
    /// Define a backup that the station runs on a schedule (seed 002
    /// FIG. 5, 10). A client needs a backup grant on the object, and its
    /// hooks run on its own host; an operator may name any host. Answered
    /// with [`StationReply::Definitions`] holding the new definition.
    Define(Box<DefinitionSpec>),
    /// Remove a definition (its past runs' ABSs stay).
    Undefine {
        name: String,
    },
    /// The definitions a client made (an operator: all), with their last
    /// runs.
    ListDefinitions,
    /// Run a definition now, as its schedule would (pre command, backup,
    /// post command), following it like a [`StationRequest::Backup`].
    RunDefinition {
        name: String,
    },
    /// Operator: read every segment (primary or copy) the catalog places on
    /// tape `label`, check each against its checksums and the catalog's
    /// CRC32C, and mark what fails `damaged`. Answered with
    /// [`StationReply::Audit`].
    TapeAudit {
        label: String,
    },
    /// Operator: copy every complete ABS of primary pool `primary` that
    /// has no whole, healthy copy in `copy_pool` yet, tape to tape on the
    /// movers (seed 000 FIG. 5). `drives`: most read/write drive pairs to
    /// use at once (0: one). Answered with a stream of [`ChannelEvent`]s
    /// ending with `Copied` or `Failed`.
    PoolBackup {
        primary: String,
        copy_pool: String,
        drives: u32,
    },
    /// Operator: copy ABS `abs_id` tape to tape now into copy pool `pool`
    /// (attached to the ABS's primary pool), as a pool backup would.
    /// Answered like [`StationRequest::PoolBackup`].
    AbsCopy {
        abs_id: AbsId,
        pool: String,
    },
    /// Operator: move ABS `abs_id` to primary pool `pool`: its segments
    /// and metadata are rewritten tape to tape onto that pool's tapes (its
    /// management record names the new pool and places), the catalog
    /// points there, and the old places are free (tapes left holding
    /// nothing are emptied). Answered like [`StationRequest::PoolBackup`].
    AbsMove {
        abs_id: AbsId,
        pool: String,
    },
    /// Operator: tape `label` (of a primary pool) is destroyed: rewrite
    /// every segment the catalog places on it, and its ABS metadata, from
    /// their copies onto new tapes of its pool, on at most `drives`
    /// read/write drive pairs (0: one), and point the catalog there.
    /// Answered like [`StationRequest::PoolBackup`].
    TapeRecover {
        label: String,
        drives: u32,
    },
    /// Operator: write a consistent dump of the catalog database to a tape
    /// of catalog pool `pool` (created when missing), recorded as an ABS
    /// of object [`CATALOG_OBJECT`] of [`STATION_NODE`] (seed 000 claim
    /// 12). Answered like [`StationRequest::Backup`].
    CatalogBackup {
        pool: String,
    },
    /// Front-end of backup channel `channel_id`, finishing its ABS: the
    /// management record to write in the ABS metadata (seed 002), with the
    /// placement of every segment. Answered with
    /// [`StationReply::Management`].
    ManagementRecord {
        channel_id: ChannelId,
    },
    /// Back-end finishing full tape `tape_label` in its drive `drive`, its
    /// media set going on on another tape: the management records of ABSs
    /// `abs_ids` (with data on the tape, their metadata still to come) for
    /// the tape's CATALOG, every segment the catalog places so far. Only
    /// ABSs of channels the back-end takes part in are answered (a copy
    /// pool's tape gets the copy's record). Answered with
    /// [`StationReply::Records`].
    TapeRecords {
        drive: String,
        tape_label: String,
        abs_ids: Vec<AbsId>,
    },
    /// Front-end of catalog backup channel `channel_id`: send the dump it
    /// writes. Answered with [`StationReply::Dump`] followed by exactly
    /// that many raw bytes on the same stream.
    FetchDump {
        channel_id: ChannelId,
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
/// A target volume of a primary node: a volume with a management region
/// (see [`crate::region`]) outside the space it exposes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TargetVolume {
    pub volume: String,
    /// The version it holds, if any.
    pub stamp: Option<crate::region::VersionStamp>,
    /// Why its region (or one slot of it) cannot be read, if so.
    pub damaged: Option<String>,
}

/// One ABS's management record (see [`StationRequest::TapeRecords`]).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AbsRecord {
    pub abs_id: AbsId,
    pub record: crate::tape::management::Management,
}

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
        new: NewTape,
    },
    Event(ChannelEvent),
    /// See [`StationRequest::ManagementRecord`].
    Management(crate::tape::management::Management),
    /// See [`StationRequest::TapeRecords`].
    Records(Vec<AbsRecord>),
    /// See [`StationRequest::VpoolList`].
    Vpools(Vec<VpoolInfo>),
    /// See [`StationRequest::VersionsList`].
    VersionSets(Vec<VersionSetInfo>),
    /// [`StationRequest::VersionsRestore`]: the version's bytes are synced
    /// on the destination.
    VersionRestored {
        destination: VolumeKey,
        bytes: u64,
        tracks: u64,
    },
    /// The catalog dump of a [`StationRequest::FetchDump`]: `bytes` raw
    /// bytes follow this frame.
    Dump {
        bytes: u64,
    },
    Abs(Vec<AbsInfo>),
    Tapes(Vec<TapeInfo>),
    Movers(Vec<MoverInfo>),
    Segments(Vec<SegmentInfo>),
    Channels(Vec<ChannelInfo>),
    Grants(Vec<GrantInfo>),
    Pools(Vec<PoolInfo>),
    Definitions(Vec<DefinitionInfo>),
    /// What an import did: the tapes now in the library, the ABSs recorded
    /// from them, and what was not recorded and why.
    Imported {
        tapes: Vec<TapeInfo>,
        abs: Vec<AbsId>,
        notes: Vec<String>,
    },
    /// What a deletion did: the ABSs deleted, and the tapes now holding
    /// nothing wanted (scratch again after their pool's retention).
    Deleted {
        abs: Vec<AbsId>,
        tapes_emptied: Vec<String>,
    },
    Audit(AuditReport),
    History {
        channel: ChannelInfo,
        transitions: Vec<TransitionInfo>,
        /// What happened beside the state changes (a definition's pre and
        /// post commands and their output), in time order.
        notes: Vec<HistoryNote>,
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
    /// A definition's `phase` command ran on `host`'s agent: its exit
    /// status (None: killed, or it could not run) and its output.
    Hook {
        phase: HookPhase,
        host: String,
        status: Option<i32>,
        output: String,
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
    /// A pool backup ended: `abs` ABSs (`segments` segments, `bytes`
    /// bytes) copied; the primary tapes read, each mounted once, in the
    /// order they were read; the copy tapes written.
    Copied {
        abs: u32,
        segments: u32,
        bytes: u64,
        tapes_read: Vec<String>,
        tapes_written: Vec<String>,
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
    /// The primary pool the ABS was written to.
    pub pool: String,
    /// The copy pools holding a whole, healthy copy of it.
    pub copies: Vec<String>,
    /// The ABS's UUID (kept wherever its tapes go).
    pub uuid: String,
    /// The user's label text.
    pub label: String,
    /// The cluster that wrote it when another one did (an imported tape);
    /// empty: this cluster.
    pub origin_cluster: String,
    /// The backup definition whose run made it (empty: none).
    pub definition: String,
    /// The copy version it was read from ("SET@V"; empty: the production
    /// volumes).
    pub from_version: String,
}

/// What a tape audit found.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub tape_label: String,
    /// Segments read and checked.
    pub checked: u32,
    pub bytes: u64,
    /// Those that failed, now marked damaged.
    pub damaged: Vec<AuditFinding>,
}

/// One segment an audit found damaged.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AuditFinding {
    pub abs_id: AbsId,
    pub seq: SegmentSeq,
    pub tape_file: u32,
    /// A copy in a copy pool (false: the ABS's primary copy).
    pub copy: bool,
    pub reason: String,
}

/// A storage pool.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub kind: PoolKind,
    /// A copy pool: the primary pools it copies.
    pub copies_of: Vec<String>,
    pub tapes: u32,
    pub bytes_written: u64,
    /// A primary pool: its complete ABSs; a copy pool: the ABSs it holds a
    /// whole copy of.
    pub abs: u32,
    /// Days a tape whose every ABS was deleted is kept before it is
    /// scratch again.
    pub retain_days: u32,
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
    /// When its last ABS was deleted (it is scratch again once its pool's
    /// retention has passed); empty when it holds wanted data.
    pub emptied: String,
    /// Times it was relabelled and used again.
    pub reuses: u32,
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
    /// The pool of the tape holding this copy of the segment.
    pub pool: String,
    /// A copy in a copy pool (false: the ABS's primary copy).
    pub copy: bool,
    pub status: SegmentStatus,
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

/// A note in a channel's history that is not a state change.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HistoryNote {
    pub actor: String,
    pub text: String,
    pub at: String,
}

/// A backup definition as a client gives it (`smapp define`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DefinitionSpec {
    /// Unique in the catalog.
    pub name: String,
    /// The host whose agent runs the hooks (None: the defining client).
    pub host: Option<String>,
    pub primary: String,
    pub object_name: String,
    pub object: LogicalObject,
    pub level: Level,
    pub label: String,
    pub pool: Option<String>,
    /// `daily HH:MM`, `weekly DAY HH:MM` or `every N{s,m,h,d}` (UTC; see
    /// [`crate::domain::Schedule`]).
    pub schedule: String,
    /// Shell commands for the host's agent (empty: none).
    pub pre: String,
    pub post: String,
    /// Seconds each hook may take before it is killed and counts as failed.
    pub hook_timeout_seconds: u32,
}

/// A backup definition and its recent runs.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DefinitionInfo {
    pub name: String,
    /// Who defined it: its runs back up with this client's grants.
    pub client: String,
    pub host: String,
    pub primary: String,
    pub object_name: String,
    pub level: Level,
    pub label: String,
    /// Empty: the station's default pool.
    pub pool: String,
    /// The canonical spelling of its schedule.
    pub schedule: String,
    pub pre: String,
    pub post: String,
    pub hook_timeout_seconds: u32,
    pub created: String,
    pub next_due: String,
    /// The latest runs, newest first.
    pub runs: Vec<RunInfo>,
}

/// One run of a definition.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub run_id: RunId,
    /// The slot it ran for (a run started by hand: when it was asked).
    pub due: String,
    pub started: String,
    /// Empty while it runs.
    pub finished: String,
    pub state: RunState,
    pub abs_id: Option<AbsId>,
    pub channel_id: Option<ChannelId>,
    /// Why it failed or was skipped (empty: it succeeded or runs).
    pub reason: String,
    /// The pre command's exit status (None: not run, or killed).
    pub pre_status: Option<i32>,
    pub pre_output: String,
    pub post_status: Option<i32>,
    pub post_output: String,
}
