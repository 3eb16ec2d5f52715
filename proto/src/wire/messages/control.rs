//! The control conversation: any peer → station ([`StationRequest`] →
//! [`StationReply`], or a stream of [`ChannelEvent`]s for a backup or
//! restore). The listings it answers with are in `listings`.

use rkyv::{Archive, Deserialize, Serialize};

use super::*;

/// Longest program version a process registers with (the operators see
/// it beside its heartbeats).
pub const MAX_VERSION_TEXT: usize = 64;

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
        /// The program's version (see [`MAX_VERSION_TEXT`]).
        version: String,
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
        /// The program's version (see [`MAX_VERSION_TEXT`]).
        version: String,
    },
    /// A host's `smapp agent` (client certificate): it runs the pre and
    /// post commands of the backup definitions naming its host, on
    /// [`Command::RunHook`]. `boot` as for the other registrations.
    RegisterAgent {
        name: String,
        boot: u64,
        /// The program's version (see [`MAX_VERSION_TEXT`]).
        version: String,
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
    /// Operator: the notifications still open (unacknowledged), oldest
    /// first; with `acknowledged`, also the most recent acknowledged ones.
    /// Answered with [`StationReply::Notifications`].
    Notifications {
        acknowledged: bool,
    },
    /// Operator: acknowledge notification `id` (the certificate's name is
    /// recorded as who did). Refused as a conflict when it was already
    /// acknowledged. Answered with [`StationReply::Notifications`] holding
    /// it.
    AcknowledgeNotification {
        id: u64,
    },
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
    /// See [`StationRequest::Notifications`].
    Notifications(Vec<NotificationInfo>),
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
