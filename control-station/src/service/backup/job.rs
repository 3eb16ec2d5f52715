//! The plan of a backup: what to back up, at which level, against which
//! base, on how many drives. Pure functions of what the client asked and
//! the catalog rows the shell fetched; the act step ([`super::act`])
//! carries the plan out.

use proto::abs::{AbsMap, ObjectExtent, TrackSet, VolumeRef};
use proto::domain::{AbsId, Failure, Level};
use proto::wire::{LogicalObject, VolumeEpoch};

use crate::catalog::CapturedEpoch;

/// What a client asked to back up.
#[derive(Debug, Clone)]
pub(crate) struct BackupRequest {
    pub object_name: String,
    pub primary: String,
    pub object: LogicalObject,
    /// Drives to write on in parallel (0 or 1: one).
    pub drives: u32,
    pub level: Level,
    /// Whether the backup goes on when its client leaves while it waits.
    pub detach: bool,
    /// The primary pool asked for (None: the station's default).
    pub pool: Option<String>,
    /// The copy pool to copy the ABS to before reporting done.
    pub copy_to: Option<String>,
    /// The user's label text.
    pub label: String,
    /// The run of a backup definition this backup is (its hooks run
    /// around it), if it is one.
    pub definition: Option<crate::service::definitions::DefinitionRun>,
    /// Read the object from this copy version's targets (None: the
    /// production volumes).
    pub from_version: Option<proto::wire::VersionRef>,
}

/// Where a backup from a copy version reads: the node holding the
/// version's targets, the object's map on them, and what the version
/// captured of the sources (recorded as the ABS's epochs and point in
/// time, so a later differential of the production volumes counts
/// changes since the version).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reader {
    pub version: proto::wire::VersionRef,
    pub node: String,
    /// The object's map with each source volume replaced by its target.
    pub map: AbsMap,
    pub epochs: Vec<CapturedEpoch>,
    pub point_in_time: chrono::DateTime<chrono::Utc>,
    /// "source → target" of each volume, for the client.
    pub pairs: Vec<String>,
}

/// The base of a differential as the catalog holds it.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub id: AbsId,
    pub map: AbsMap,
    /// The change-map epochs the base captured, one per volume.
    pub epochs: Vec<CapturedEpoch>,
}

/// A planned backup: everything decided before the station asks for drives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BackupJob {
    pub object_name: String,
    pub primary: String,
    pub map: AbsMap,
    pub level: Level,
    /// A differential's base.
    pub base_abs_id: Option<AbsId>,
    /// The base's change-map epochs (empty: a full backup).
    pub since: Vec<VolumeEpoch>,
    /// How many drives the channel writes on.
    pub want_drives: usize,
    /// The primary pool the ABS goes to.
    pub pool: String,
    /// A backup from a copy version: where it reads.
    pub reader: Option<Reader>,
}

/// A synthetic full is merged, never backed up.
pub(crate) fn check_level(level: Level) -> Result<(), Failure> {
    if level == Level::Synthetic {
        return Err(Failure::invalid(
            "a synthetic full is merged from a chain (smapp merge), not backed up",
        ));
    }
    Ok(())
}

/// The map of the logical object on the primary node's `volumes` (a whole
/// volume, or extents).
pub(crate) fn object_map(primary: &str, volumes: &[VolumeRef], object: LogicalObject) -> Result<AbsMap, Failure> {
    let extents = match object {
        LogicalObject::Volume(v) => {
            let vol = volumes
                .iter()
                .find(|x| x.name == v)
                .ok_or_else(|| Failure::not_found(format!("primary node {primary} has no volume {v:?}")))?;
            vec![ObjectExtent {
                volume: v,
                offset: 0,
                length: vol.size,
            }]
        }
        LogicalObject::Extents(e) => e,
    };
    AbsMap::from_extents(volumes, &extents).map_err(|e| Failure::invalid(format!("the logical object's extents: {e}")))
}

/// Drives a backup asks for.
pub(crate) fn want_drives(drives: u32) -> usize {
    usize::try_from(drives).unwrap_or(usize::MAX).max(1)
}

impl BackupJob {
    /// Plan a backup of `map` (see [`object_map`]); a differential needs
    /// its `base`, whose layout must be the object's and which must have
    /// captured an epoch per volume.
    /// `pool`: the primary pool it writes to (the one asked for, checked,
    /// else the station's default).
    pub(crate) fn plan(req: &BackupRequest, map: AbsMap, base: Option<Base>, pool: &str) -> Result<BackupJob, Failure> {
        let (base_abs_id, since) = match base {
            None => (None, Vec::new()),
            Some(b) => (Some(b.id), since_base(&req.object_name, &map, &b)?),
        };
        Ok(BackupJob {
            object_name: req.object_name.clone(),
            primary: req.primary.clone(),
            map,
            level: req.level,
            base_abs_id,
            since,
            want_drives: want_drives(req.drives),
            pool: pool.to_string(),
            reader: None,
        })
    }

    /// The node the backup reads: the object's node, or the one holding
    /// the copy version it reads.
    pub(crate) fn read_node(&self) -> &str {
        self.reader.as_ref().map_or(self.primary.as_str(), |r| r.node.as_str())
    }

    /// The map the reading node gets: the object's, or its copy's.
    pub(crate) fn read_map(&self) -> &AbsMap {
        self.reader.as_ref().map_or(&self.map, |r| &r.map)
    }

    /// What the snapshot holds, for the client.
    pub(crate) fn snapshot_detail(&self, track_set: &TrackSet) -> String {
        match self.base_abs_id {
            None => format!("{} tracks, the whole object", track_set.len()),
            Some(base) => format!(
                "{} of {} tracks changed since ABS {base} ({}, {} bytes of the object)",
                track_set.len(),
                self.map.track_set().len(),
                self.level,
                self.map.logical_bytes(track_set)
            ),
        }
    }
}

/// The epochs a differential asks the primary node for changes since.
fn since_base(object_name: &str, map: &AbsMap, base: &Base) -> Result<Vec<VolumeEpoch>, Failure> {
    let id = base.id;
    if base.map != *map {
        return Err(Failure::refused(format!(
            "the layout of {object_name} changed since ABS {id} (its extents differ): take a full backup"
        )));
    }
    if base.epochs.len() != map.volumes.len() {
        return Err(Failure::refused(format!(
            "ABS {id} recorded no change-map epochs for its volumes (taken before change tracking): take a full backup"
        )));
    }
    base.epochs
        .iter()
        .map(|e| {
            let v = map.volumes.get(usize::from(e.volume_index)).ok_or_else(|| {
                Failure::internal(format!("ABS {id} has an epoch for volume index {}", e.volume_index))
            })?;
            Ok(VolumeEpoch {
                volume: v.name.clone(),
                map_id: e.map_id,
                epoch: e.epoch,
            })
        })
        .collect()
}

/// The bytes of the tracks of `track_set` (the last track of a volume may
/// be short).
pub(crate) fn track_bytes(map: &AbsMap, track_set: &TrackSet) -> u64 {
    track_set
        .iter()
        .filter_map(|t| map.track_extent(t).ok())
        .map(|(_, l)| l)
        .sum()
}

/// What a writing channel's front-end reports at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub data_bytes: u64,
    pub tracks: u64,
    pub segments: u32,
}

/// What the catalog holds of a written ABS at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OnTape {
    /// Segments placed.
    pub segments: usize,
    /// Tracks the placed segments hold.
    pub tracks: u64,
    pub metadata_placed: bool,
}

/// An ABS is complete only with every track of its track set
/// (`expected`) on tape and its metadata placed: a report alone proves
/// nothing.
pub(crate) fn check_complete(abs_id: AbsId, w: &Written, on_tape: &OnTape, expected: u64) -> Result<(), Failure> {
    if usize::try_from(w.segments).ok() != Some(on_tape.segments) {
        return Err(Failure::corrupt(format!(
            "the front-end reports {} segments but the catalog has {}",
            w.segments, on_tape.segments
        )));
    }
    if w.tracks != expected || on_tape.tracks != expected {
        return Err(Failure::corrupt(format!(
            "ABS {abs_id} is incomplete: its track set has {expected} tracks, the front-end reports {}, the segments on tape hold {}",
            w.tracks, on_tape.tracks
        )));
    }
    if !on_tape.metadata_placed {
        return Err(Failure::corrupt(format!(
            "ABS {abs_id} is incomplete: its metadata was never placed on tape"
        )));
    }
    Ok(())
}

/// The tapes of `labels` (one per segment) in order of first use, each once.
pub(crate) fn tapes_in_order<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut tapes: Vec<String> = Vec::new();
    for l in labels {
        if !tapes.iter().any(|t| t == l) {
            tapes.push(l.to_string());
        }
    }
    tapes
}

/// Why a writing channel closed: `what` it wrote, the figures and its
/// tapes (sorted).
pub(crate) fn closed_reason(what: &str, w: &Written, tapes: &[String]) -> String {
    let mut labels = tapes.to_vec();
    labels.sort_unstable();
    format!(
        "{what}{} segments, {} tracks, {} bytes on tape {}",
        w.segments,
        w.tracks,
        w.data_bytes,
        labels.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use proto::abs::Geometry;
    use proto::domain::{FailureCode, MapId};

    use super::*;

    fn volumes() -> Vec<VolumeRef> {
        let g = Geometry {
            block_size: 512,
            track_size: 4096,
        };
        vec![
            VolumeRef {
                name: "v0".into(),
                geometry: g,
                size: 10 * 4096,
            },
            VolumeRef {
                name: "v1".into(),
                geometry: g,
                size: 4 * 4096 + 512,
            },
        ]
    }

    fn request(level: Level, object: LogicalObject) -> BackupRequest {
        BackupRequest {
            object_name: "db".into(),
            primary: "p1".into(),
            object,
            drives: 0,
            level,
            detach: false,
            pool: None,
            copy_to: None,
            label: String::new(),
            definition: None,
            from_version: None,
        }
    }

    fn extents() -> LogicalObject {
        LogicalObject::Extents(vec![
            ObjectExtent {
                volume: "v0".into(),
                offset: 0,
                length: 2 * 4096,
            },
            ObjectExtent {
                volume: "v1".into(),
                offset: 4096,
                length: 4096,
            },
        ])
    }

    fn epochs(n: u16) -> Vec<CapturedEpoch> {
        (0..n)
            .map(|i| CapturedEpoch {
                volume_index: i,
                map_id: MapId::new(40 + u64::from(i)),
                epoch: 7,
            })
            .collect()
    }

    #[test]
    fn a_whole_volume_or_extents() {
        let map = object_map("p1", &volumes(), LogicalObject::Volume("v1".into())).unwrap();
        assert_eq!(map.object_size, 4 * 4096 + 512);
        assert_eq!(map.track_set().len(), 5);
        let err = object_map("p1", &volumes(), LogicalObject::Volume("v9".into())).unwrap_err();
        assert_eq!(err.code, FailureCode::NotFound);
        assert_eq!(err.message, "primary node p1 has no volume \"v9\"");
        let map = object_map("p1", &volumes(), extents()).unwrap();
        assert_eq!(map.volumes.len(), 2);
        assert_eq!(map.object_size, 3 * 4096);
        let err = object_map("p1", &volumes(), LogicalObject::Extents(Vec::new())).unwrap_err();
        assert_eq!(err.code, FailureCode::Invalid);
    }

    #[test]
    fn a_full_has_no_base_and_asks_for_at_least_one_drive() {
        let req = request(Level::Full, extents());
        let map = object_map("p1", &volumes(), req.object.clone()).unwrap();
        let job = BackupJob::plan(&req, map.clone(), None, "default").unwrap();
        assert_eq!(job.base_abs_id, None);
        assert!(job.since.is_empty());
        assert_eq!(job.want_drives, 1);
        assert_eq!(job.snapshot_detail(&map.track_set()), "3 tracks, the whole object");
        assert_eq!(want_drives(3), 3);
        assert!(check_level(Level::Full).is_ok());
        assert_eq!(check_level(Level::Synthetic).unwrap_err().code, FailureCode::Invalid);
    }

    #[test]
    fn a_differential_asks_for_changes_since_its_base() {
        let req = request(Level::Incremental, extents());
        let map = object_map("p1", &volumes(), req.object.clone()).unwrap();
        let base = Base {
            id: AbsId::new(5),
            map: map.clone(),
            epochs: epochs(2),
        };
        let job = BackupJob::plan(&req, map.clone(), Some(base), "default").unwrap();
        assert_eq!(job.base_abs_id, Some(AbsId::new(5)));
        let names: Vec<&str> = job.since.iter().map(|e| e.volume.as_str()).collect();
        assert_eq!(names, ["v0", "v1"]);
        assert_eq!(job.since[1].map_id, MapId::new(41));
        let detail = job.snapshot_detail(&TrackSet::default());
        assert_eq!(
            detail,
            "0 of 3 tracks changed since ABS 5 (incremental, 0 bytes of the object)"
        );
    }

    #[test]
    fn a_base_of_another_layout_or_without_epochs_is_refused() {
        let req = request(Level::Cumulative, extents());
        let map = object_map("p1", &volumes(), req.object.clone()).unwrap();
        let other = object_map("p1", &volumes(), LogicalObject::Volume("v0".into())).unwrap();
        let moved = Base {
            id: AbsId::new(5),
            map: other,
            epochs: epochs(1),
        };
        let err = BackupJob::plan(&req, map.clone(), Some(moved), "default").unwrap_err();
        assert_eq!(err.code, FailureCode::Refused);
        assert!(err.message.contains("layout of db changed since ABS 5"), "{err}");
        let old = Base {
            id: AbsId::new(5),
            map: map.clone(),
            epochs: epochs(1),
        };
        let err = BackupJob::plan(&req, map.clone(), Some(old), "default").unwrap_err();
        assert!(err.message.contains("no change-map epochs"), "{err}");
        let mut bad = epochs(2);
        bad[1].volume_index = 9;
        let odd = Base {
            id: AbsId::new(5),
            map: map.clone(),
            epochs: bad,
        };
        assert_eq!(
            BackupJob::plan(&req, map, Some(odd), "default").unwrap_err().code,
            FailureCode::Internal
        );
    }

    #[test]
    fn complete_only_with_every_track_and_the_metadata_on_tape() {
        let id = AbsId::new(3);
        let w = Written {
            data_bytes: 100,
            tracks: 4,
            segments: 2,
        };
        let ok = OnTape {
            segments: 2,
            tracks: 4,
            metadata_placed: true,
        };
        assert!(check_complete(id, &w, &ok, 4).is_ok());
        let fewer = OnTape { segments: 1, ..ok };
        assert_eq!(
            check_complete(id, &w, &fewer, 4).unwrap_err().message,
            "the front-end reports 2 segments but the catalog has 1"
        );
        let short = OnTape { tracks: 3, ..ok };
        assert_eq!(
            check_complete(id, &w, &short, 4).unwrap_err().code,
            FailureCode::Corrupt
        );
        assert!(check_complete(id, &w, &ok, 5).is_err());
        let no_meta = OnTape {
            metadata_placed: false,
            ..ok
        };
        assert!(check_complete(id, &w, &no_meta, 4)
            .unwrap_err()
            .message
            .contains("metadata was never placed"));
    }

    #[test]
    fn tapes_in_order_of_use_and_sorted_in_the_reason() {
        let tapes = tapes_in_order(["T2", "T1", "T2", "T3", "T1"]);
        assert_eq!(tapes, ["T2", "T1", "T3"]);
        let w = Written {
            data_bytes: 9,
            tracks: 3,
            segments: 5,
        };
        assert_eq!(
            closed_reason("synthetic full of ABS 4: ", &w, &tapes),
            "synthetic full of ABS 4: 5 segments, 3 tracks, 9 bytes on tape T1, T2, T3"
        );
    }
}
