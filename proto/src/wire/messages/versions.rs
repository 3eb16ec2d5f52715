//! Copy versions (seed 004): what the station tells of volume pools and
//! version sets (see [`super::StationRequest::VpoolDefine`] and
//! [`super::StationRequest::VersionsDefine`]).

use rkyv::{Archive, Deserialize, Serialize};

use super::{ChannelToken, PeerAddr};
use crate::abs::{AbsMap, TrackSet};
use crate::domain::{ChannelId, VersionRecordKind, VersionState, VolumeKey, VpoolKind};
use crate::region::VersionStamp;

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
    /// The command run before each version's point in time, if any.
    pub pre: Option<PreCommand>,
    pub records: Vec<VersionRecordInfo>,
}

/// A command a host's agent runs before a version's point in time is
/// taken (`sh -c`, at most `timeout_seconds`; `DMC_DEFINITION` names the
/// set, `DMC_PHASE` is `pre`). Exit status 0 or the version fails before
/// anything is copied.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PreCommand {
    /// The host whose agent runs it.
    pub host: String,
    pub command: String,
    pub timeout_seconds: u32,
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
    /// Bytes copied for this pair (a made version).
    pub bytes_copied: u64,
    /// The version the target held before whose unchanged tracks it kept
    /// (only changed tracks copied), 0: copied whole.
    pub base_version: u64,
}

/// A volume copied track for track onto a volume of another (or the same)
/// primary node, storage to storage: a version's source onto its target
/// ([`super::Command::ReceiveCopy`], [`super::Command::SendCopy`]), or a
/// version back onto a source. The sender reads its tracks through a
/// snapshot taken by [`super::Command::TakeSnapshot`] with `copy_id` as
/// the channel; the receiver writes each track at the same offset of its
/// lane's volume, syncs, and only then acknowledges ([`super::TrackAck::OnTape`]),
/// which releases the sender's side copies: nothing is acknowledged before
/// it is durable on the receiving volume.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CopyReceive {
    pub copy_id: ChannelId,
    /// The copy's capability: the sender presents it.
    pub token: ChannelToken,
    /// The node that sends (only it may open the stream).
    pub sender: String,
    /// The sender's volumes (the extents: the bytes copied of each).
    pub map: AbsMap,
    /// For each volume of the map, in order: where its bytes land.
    pub lanes: Vec<CopyLane>,
    /// Track frames the stream brings.
    pub tracks: u64,
}

/// Where one volume's tracks land on the receiving node.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CopyLane {
    /// The receiving node's volume.
    pub to: String,
    /// Bytes `0 .. limit` of the sender's volume are copied (no byte at or
    /// after it is written).
    pub limit: u64,
    /// A version copy: the record written into the management region of
    /// `to` (which must be a target volume) once every track is synced;
    /// before the first track, the region's old record is cleared, so a
    /// copy that does not finish leaves a volume holding no version. None:
    /// a version copied back; `to` must be a data volume, written as a
    /// host write (its change map records it).
    pub stamp: Option<VersionStamp>,
}

/// The sending side of a copy (see [`CopyReceive`]).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CopySend {
    pub copy_id: ChannelId,
    pub token: ChannelToken,
    /// The receiving node.
    pub receiver: PeerAddr,
    pub map: AbsMap,
    /// The tracks to send (of the snapshot `copy_id` took).
    pub tracks: TrackSet,
}

/// A version of a version set: `SET@V` (`SET@V3` reads the same).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionRef {
    pub set: String,
    pub version: u64,
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.set, self.version)
    }
}

impl std::str::FromStr for VersionRef {
    type Err = String;

    fn from_str(s: &str) -> Result<VersionRef, String> {
        let (set, v) = s
            .split_once('@')
            .ok_or_else(|| format!("{s:?}: expected SET@V, e.g. daily@3"))?;
        let version = v
            .trim_start_matches(['V', 'v'])
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("{s:?}: the version after @ is a number from 1"))?;
        if set.is_empty() || set.len() > crate::region::MAX_SET_NAME {
            return Err(format!(
                "{s:?}: the set before @ has 1 to {} characters",
                crate::region::MAX_SET_NAME
            ));
        }
        Ok(VersionRef {
            set: set.to_string(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::VersionRef;

    #[test]
    fn a_version_is_named_set_at_number() {
        let v: VersionRef = "nightly@3".parse().unwrap();
        assert_eq!((v.set.as_str(), v.version), ("nightly", 3));
        assert_eq!("nightly@V3".parse::<VersionRef>().unwrap(), v);
        assert_eq!(v.to_string(), "nightly@3");
        for bad in ["nightly", "@3", "nightly@0", "nightly@x", "nightly@"] {
            assert!(bad.parse::<VersionRef>().is_err(), "{bad}");
        }
    }
}
