//! Copy versions (seed 004): what the station tells of volume pools and
//! version sets (see [`super::StationRequest::VpoolDefine`] and
//! [`super::StationRequest::VersionsDefine`]).

use rkyv::{Archive, Deserialize, Serialize};

use crate::domain::{VersionRecordKind, VersionState, VolumeKey, VpoolKind};

/// A volume pool.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VpoolInfo {
    pub name: String,
    pub kind: VpoolKind,
    /// Its volumes, in the order a target scan goes through them.
    pub volumes: Vec<VpoolVolume>,
    /// The version set it serves, if any.
    pub version_set: Option<String>,
}

/// One volume of a volume pool, as its node reported it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VpoolVolume {
    pub volume: VolumeKey,
    pub size: u64,
    pub block_size: u32,
    pub track_size: u32,
    /// Its node is registered now.
    pub online: bool,
    /// A target volume (served with a management region).
    pub target: bool,
    /// What its management region holds ("SET VN (SOURCE)").
    pub holds: Option<String>,
    /// Why its management region could not be read, if so.
    pub region_damaged: Option<String>,
}

/// A version set with its records, oldest first.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VersionSetInfo {
    pub name: String,
    pub source: String,
    /// Target pools in rotation order: version k goes to (k − 1) mod T.
    pub targets: Vec<String>,
    pub keep: u32,
    pub records: Vec<VersionRecordInfo>,
}

/// One record of a version set.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VersionRecordInfo {
    pub number: u64,
    pub kind: VersionRecordKind,
    pub target_pool: String,
    pub state: VersionState,
    /// Why refused or failed; what changed against the pre-copy record.
    pub reason: String,
    /// The version's point in time (Unix ms), once taken.
    pub point_in_time_ms: Option<u64>,
    pub bytes_copied: u64,
    pub created_ms: u64,
    pub pairs: Vec<VersionPair>,
}

/// A source volume and the target volume it is copied to.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VersionPair {
    pub source: VolumeKey,
    pub target: VolumeKey,
}
