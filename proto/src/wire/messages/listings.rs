//! The listings and reports the station answers with ([`super::StationReply`]):
//! health, grants, ABSs, tapes, pools, movers, channels, definitions.

use rkyv::{Archive, Deserialize, Serialize};

use super::*;

/// The station's health: whether its catalog answers, and which processes
/// it hears from.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PeerHealth {
    pub name: String,
    pub role: String,
    /// Which start of the process registered (see [`PeerAddr::boot`]).
    pub boot: u64,
    /// Milliseconds since its last heartbeat or registration.
    pub last_heard_ms: u64,
    /// The program's version it registered with.
    pub version: String,
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

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TransitionInfo {
    pub from: Option<ChannelState>,
    pub to: ChannelState,
    pub reason: String,
    pub actor: String,
    pub at: String,
}

/// A note in a channel's history that is not a state change.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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

/// An operators' notification (see [`StationRequest::Notifications`]): a
/// channel in error, a tape needed that is not in the library, a drive
/// idle while work waits, a refused version. Open until an operator
/// acknowledges it; one per subject while open.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NotificationInfo {
    pub id: u64,
    pub kind: NotificationKind,
    /// What it is about (`channel 12`, `tape L00003`, `drive drive1`, …).
    pub subject: String,
    pub message: String,
    pub channel_id: Option<ChannelId>,
    pub raised: String,
    /// Who acknowledged it, and when (both empty while it is open).
    pub acknowledged_by: String,
    pub acknowledged: String,
    /// Whether the station's webhook accepted it (false without one), in
    /// how many attempts, and why the last one failed (empty: it did not).
    pub delivered: bool,
    pub attempts: u32,
    pub last_error: String,
}
