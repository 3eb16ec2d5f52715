//! The plan of a restore of one ABS: which segments on which tapes, read
//! by how many drive lanes, written where. Pure functions of the catalog
//! rows the shell fetched; [`super::lanes`] carries the plan out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use proto::abs::{AbsMap, RemapTable, TrackSet};
use proto::domain::{AbsId, ChannelId, Failure, JobId, SegmentSeq};
use proto::wire::RestoreTarget;

use crate::catalog::Segment;
use crate::plan::{PlannedSegment, RestorePlan, TapeJob};

/// The point in time a restore selects: a time in milliseconds covers its
/// whole millisecond, so the time `smapp list` prints for a backup selects
/// that backup (None: the latest backup).
pub(crate) fn restore_time(at_unix_ms: Option<i64>) -> Result<Option<DateTime<Utc>>, Failure> {
    at_unix_ms
        .map(|ms| {
            DateTime::from_timestamp_millis(ms)
                .and_then(|t| t.checked_add_signed(chrono::TimeDelta::microseconds(999)))
                .ok_or_else(|| Failure::invalid(format!("time {ms} ms is out of range")))
        })
        .transpose()
}

/// How many lanes a restore asked for `drives` (0: all) gets when `free`
/// drives are free now: at least one.
pub(crate) fn lanes_wanted(drives: u32, free: usize) -> usize {
    let free = free.max(1);
    let wanted = if drives == 0 {
        free
    } else {
        usize::try_from(drives).unwrap_or(usize::MAX).min(free)
    };
    wanted.max(1)
}

/// The catalog's segments as the planner sees them.
pub(crate) fn planned(segments: &[Segment]) -> Vec<PlannedSegment> {
    segments
        .iter()
        .map(|s| PlannedSegment {
            seq: s.seq,
            tape_id: s.tape_id,
            tape_label: s.tape_label.clone(),
            tape_file: s.tape_file,
            bytes: s.bytes,
        })
        .collect()
}

/// What the catalog holds of the ABS to restore.
pub(crate) struct AbsFacts {
    pub abs_id: AbsId,
    pub map: AbsMap,
    pub track_count: u64,
    /// The segments it should have.
    pub segment_count: u32,
    /// A differential's changed tracks (None: a full).
    pub changed: Option<TrackSet>,
    /// The segments the catalog lists (each the copy to read).
    pub segments: Vec<Segment>,
    /// Which segments come from copies in copy pools, and why.
    pub from_copies: Vec<String>,
}

/// Where a restore writes.
#[derive(Clone)]
pub(crate) struct Destination {
    /// The primary node that writes.
    pub node: String,
    /// The remap table (FIG. 15/16) from the ABS's map to the destination.
    pub remap: RemapTable,
    pub target: RestoreTarget,
    /// The id every stream of the request shares.
    pub job: JobId,
}

/// A planned restore of one ABS.
pub(crate) struct RestoreJob {
    pub abs_id: AbsId,
    pub map: AbsMap,
    pub track_count: u64,
    /// Object bytes the destination must get: a full writes the whole
    /// object, a differential the blocks of its tracks.
    pub expected_bytes: u64,
    pub dest: Destination,
    pub segments: HashMap<SegmentSeq, Segment>,
    /// Each lane's tapes, in the order it reads them.
    pub lanes: Vec<Vec<TapeJob>>,
    pub tape_count: usize,
    /// Which segments come from copies in copy pools, and why.
    pub from_copies: Vec<String>,
}

impl RestoreJob {
    /// Plan the restore of `abs` on at most `lanes` drives. None: a
    /// differential with no change, nothing to write.
    pub(crate) fn plan(abs: AbsFacts, dest: Destination, lanes: usize) -> Result<Option<RestoreJob>, Failure> {
        let expected_bytes = match &abs.changed {
            Some(set) => abs.map.logical_bytes(set),
            None => abs.map.object_size,
        };
        if abs.segments.is_empty() && abs.segment_count == 0 {
            return Ok(None);
        }
        if usize::try_from(abs.segment_count).ok() != Some(abs.segments.len()) {
            return Err(Failure::corrupt(format!(
                "the catalog lists {} segments of ABS {}, it should have {}",
                abs.segments.len(),
                abs.abs_id,
                abs.segment_count
            )));
        }
        let plan = RestorePlan::new(&planned(&abs.segments), lanes.max(1))
            .map_err(|e| Failure::corrupt(format!("planning the restore: {e}")))?;
        Ok(Some(RestoreJob {
            abs_id: abs.abs_id,
            map: abs.map,
            track_count: abs.track_count,
            expected_bytes,
            dest,
            segments: abs.segments.into_iter().map(|s| (s.seq, s)).collect(),
            lanes: plan.drive_queues().to_vec(),
            tape_count: plan.tape_count(),
            from_copies: abs.from_copies,
        }))
    }

    /// Which tapes each lane's channel reads, for the client (None: one
    /// lane, nothing to tell).
    pub(crate) fn lanes_detail(&self, channel_ids: &[ChannelId]) -> Option<String> {
        if self.lanes.len() < 2 {
            return None;
        }
        let desc: Vec<String> = channel_ids
            .iter()
            .zip(&self.lanes)
            .map(|(c, jobs)| {
                let labels: Vec<&str> = jobs.iter().map(|j| j.tape_label.as_str()).collect();
                format!("channel {c}: {}", labels.join(", "))
            })
            .collect();
        Some(format!(
            "{} tapes on {} drives in parallel ({})",
            self.tape_count,
            self.lanes.len(),
            desc.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use proto::abs::{Geometry, ObjectExtent, VolumeRef};
    use proto::domain::FailureCode;

    use super::*;

    fn map() -> AbsMap {
        let vol = VolumeRef {
            name: "v0".into(),
            geometry: Geometry {
                block_size: 512,
                track_size: 4096,
            },
            size: 8 * 4096,
        };
        let ext = ObjectExtent {
            volume: "v0".into(),
            offset: 0,
            length: 8 * 4096,
        };
        AbsMap::from_extents(&[vol], &[ext]).unwrap()
    }

    fn segment(seq: u32, tape: u64, file: u32) -> Segment {
        Segment::fixture(9, seq, tape, file)
    }

    fn facts(segments: Vec<Segment>, segment_count: u32) -> AbsFacts {
        AbsFacts {
            abs_id: AbsId::new(9),
            map: map(),
            track_count: 8,
            segment_count,
            changed: None,
            segments,
            from_copies: Vec::new(),
        }
    }

    fn dest() -> Destination {
        let m = map();
        Destination {
            node: "p1".into(),
            remap: RemapTable::original(&m),
            target: RestoreTarget::Original,
            job: JobId::new(1),
        }
    }

    #[test]
    fn tapes_spread_over_the_lanes() {
        let segs = vec![segment(0, 1, 3), segment(1, 2, 1), segment(2, 1, 1), segment(3, 3, 2)];
        let job = RestoreJob::plan(facts(segs, 4), dest(), 2).unwrap().unwrap();
        assert_eq!(job.lanes.len(), 2);
        assert_eq!(job.tape_count, 3);
        assert_eq!(job.expected_bytes, 8 * 4096);
        assert_eq!(job.segments.len(), 4);
        let all: usize = job.lanes.iter().flatten().map(|t| t.files.len()).sum();
        assert_eq!(all, 4);
        let detail = job.lanes_detail(&[ChannelId::new(11), ChannelId::new(12)]).unwrap();
        assert!(
            detail.starts_with("3 tapes on 2 drives in parallel (channel 11: "),
            "{detail}"
        );
        let one = RestoreJob::plan(facts(vec![segment(0, 1, 1)], 1), dest(), 4)
            .unwrap()
            .unwrap();
        assert_eq!(one.lanes.len(), 1);
        assert_eq!(one.lanes_detail(&[ChannelId::new(11)]), None);
    }

    #[test]
    fn an_unchanged_differential_writes_nothing_and_a_short_list_is_corrupt() {
        let mut nothing = facts(Vec::new(), 0);
        nothing.changed = Some(TrackSet::default());
        assert!(RestoreJob::plan(nothing, dest(), 1).unwrap().is_none());
        let err = RestoreJob::plan(facts(vec![segment(0, 1, 1)], 2), dest(), 1)
            .err()
            .unwrap();
        assert_eq!(err.code, FailureCode::Corrupt);
        assert_eq!(err.message, "the catalog lists 1 segments of ABS 9, it should have 2");
        let twice = vec![segment(0, 1, 1), segment(0, 2, 1)];
        let err = RestoreJob::plan(facts(twice, 2), dest(), 1).err().unwrap();
        assert!(err.message.starts_with("planning the restore: "), "{err}");
    }

    #[test]
    fn lanes_follow_the_free_drives() {
        assert_eq!(lanes_wanted(0, 3), 3);
        assert_eq!(lanes_wanted(0, 0), 1);
        assert_eq!(lanes_wanted(2, 3), 2);
        assert_eq!(lanes_wanted(5, 3), 3);
        assert_eq!(lanes_wanted(1, 0), 1);
    }

    #[test]
    fn a_time_covers_its_millisecond() {
        assert_eq!(restore_time(None).unwrap(), None);
        let t = restore_time(Some(1_500)).unwrap().unwrap();
        assert_eq!(t.timestamp_micros(), 1_500_999);
        assert_eq!(restore_time(Some(i64::MAX)).unwrap_err().code, FailureCode::Invalid);
    }
}
