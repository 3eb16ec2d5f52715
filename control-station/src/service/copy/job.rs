//! The plan of a pool backup: which tape files to copy, on which lane
//! (a read drive and a write drive of one back-end), in which order.
//! Pure: a function of the catalog's copy candidates and tapes.
//!
//! Each primary tape is mounted once per run: the tapes and ABSs that
//! share tapes form groups (an ABS spanning tapes ties them together), a
//! group goes to one lane, and a lane reads its tapes in media-set order,
//! each tape's files in position order. An ABS's metadata is read where it
//! lies and written to the copy tape once its last segment is there.

use std::collections::{BTreeMap, HashMap};

use proto::domain::{AbsId, MediaSetId, SegmentSeq, TapeId};
use proto::wire::SegmentRef;

use crate::catalog::CopyCandidate;

/// Where a primary tape sorts: its media set and volume number, then label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TapeKey {
    pub media_set: Option<MediaSetId>,
    pub sequence: Option<u32>,
    pub label: String,
}

/// One tape file to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CopyStep {
    Segment {
        abs_id: AbsId,
        object_name: String,
        /// The segment's catalog row.
        segment_id: i64,
        /// The copy read (None: the primary copy).
        copy_id: Option<i64>,
        bytes: u64,
        source: SegmentRef,
    },
    /// Read the ABS's metadata (written once its segments are copied).
    Metadata { abs_id: AbsId, tape_file: u32 },
}

impl CopyStep {
    fn tape_file(&self) -> u32 {
        match self {
            CopyStep::Segment { source, .. } => source.tape_file,
            CopyStep::Metadata { tape_file, .. } => *tape_file,
        }
    }
}

/// One primary tape mounted once, and what is read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TapeVisit {
    pub tape_id: TapeId,
    pub tape_label: String,
    pub steps: Vec<CopyStep>,
}

/// The work of one read/write drive pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CopyLane {
    pub visits: Vec<TapeVisit>,
    /// Segments to copy per ABS of the lane (its metadata waits for them).
    pub segments_of: BTreeMap<AbsId, usize>,
    pub bytes: u64,
}

/// A planned pool backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyJob {
    pub lanes: Vec<CopyLane>,
    pub abs: u32,
    pub segments: u32,
    pub bytes: u64,
    /// ABSs left out: a segment's primary copy is known damaged.
    pub skipped: Vec<(AbsId, Vec<SegmentSeq>)>,
}

/// Union-find over tapes.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[b] = a;
        }
    }
}

impl CopyJob {
    /// Plan the copy of `candidates` on at most `lanes` lanes; `tapes`
    /// gives each primary tape's sort key (a tape missing from it sorts by
    /// its label alone).
    pub(crate) fn plan(candidates: &[CopyCandidate], tapes: &HashMap<TapeId, TapeKey>, lanes: usize) -> CopyJob {
        let mut skipped = Vec::new();
        let mut index: HashMap<TapeId, usize> = HashMap::new();
        let mut labels: Vec<(TapeId, String)> = Vec::new();
        let mut steps: Vec<(usize, CopyStep)> = Vec::new();
        let mut tape_of = |id: TapeId, label: &str, labels: &mut Vec<(TapeId, String)>| {
            *index.entry(id).or_insert_with(|| {
                labels.push((id, label.to_string()));
                labels.len() - 1
            })
        };
        let mut abs_tapes: Vec<Vec<usize>> = Vec::new();
        let mut segments_of = BTreeMap::new();
        let (mut abs, mut segments, mut bytes) = (0u32, 0u32, 0u64);
        for c in candidates {
            if !c.damaged.is_empty() {
                skipped.push((c.abs_id, c.damaged.clone()));
                continue;
            }
            let mut touched = Vec::new();
            for s in &c.segments {
                let t = tape_of(s.tape_id, &s.tape_label, &mut labels);
                touched.push(t);
                steps.push((
                    t,
                    CopyStep::Segment {
                        abs_id: c.abs_id,
                        object_name: c.object_name.clone(),
                        segment_id: s.id,
                        copy_id: s.copy_id,
                        bytes: s.bytes,
                        source: SegmentRef {
                            tape_label: s.tape_label.clone(),
                            tape_file: s.tape_file,
                            seq: s.seq,
                            crc32c: s.crc32c,
                        },
                    },
                ));
                bytes += s.bytes;
                segments += 1;
            }
            if let Some(m) = &c.metadata {
                let t = tape_of(m.tape_id, &m.tape_label, &mut labels);
                touched.push(t);
                steps.push((
                    t,
                    CopyStep::Metadata {
                        abs_id: c.abs_id,
                        tape_file: m.tape_file,
                    },
                ));
            }
            segments_of.insert(c.abs_id, c.segments.len());
            abs_tapes.push(touched);
            abs += 1;
        }
        let mut groups = Groups {
            parent: (0..labels.len()).collect(),
        };
        for touched in &abs_tapes {
            for w in touched.windows(2) {
                groups.join(w[0], w[1]);
            }
        }
        // Each group's tapes and bytes.
        let mut by_group: BTreeMap<usize, (Vec<usize>, u64)> = BTreeMap::new();
        for t in 0..labels.len() {
            let g = groups.find(t);
            by_group.entry(g).or_default().0.push(t);
        }
        for (t, step) in &steps {
            if let CopyStep::Segment { bytes, .. } = step {
                let g = groups.find(*t);
                if let Some(e) = by_group.get_mut(&g) {
                    e.1 += bytes;
                }
            }
        }
        // Largest group first onto the least loaded lane.
        let mut ordered: Vec<(Vec<usize>, u64)> = by_group.into_values().collect();
        ordered.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let n = lanes.max(1).min(ordered.len().max(1));
        let mut lane_tapes: Vec<(Vec<usize>, u64)> = vec![(Vec::new(), 0); n];
        for (tapes_of_group, b) in ordered {
            let Some(lane) = lane_tapes.iter_mut().min_by_key(|l| l.1) else {
                break;
            };
            lane.0.extend(tapes_of_group);
            lane.1 += b;
        }
        let key = |t: usize| {
            let (id, label) = &labels[t];
            tapes.get(id).cloned().unwrap_or(TapeKey {
                media_set: None,
                sequence: None,
                label: label.clone(),
            })
        };
        let mut per_tape: Vec<Vec<CopyStep>> = vec![Vec::new(); labels.len()];
        for (t, step) in steps {
            per_tape[t].push(step);
        }
        for s in &mut per_tape {
            s.sort_by_key(CopyStep::tape_file);
        }
        let mut out = Vec::new();
        for (mut tapes_of_lane, lane_bytes) in lane_tapes {
            if tapes_of_lane.is_empty() {
                continue;
            }
            tapes_of_lane.sort_by_key(|&t| key(t));
            let mut lane = CopyLane {
                bytes: lane_bytes,
                ..CopyLane::default()
            };
            for t in tapes_of_lane {
                let visit_steps = std::mem::take(&mut per_tape[t]);
                for s in &visit_steps {
                    if let CopyStep::Metadata { abs_id, .. } = s {
                        lane.segments_of
                            .insert(*abs_id, segments_of.get(abs_id).copied().unwrap_or(0));
                    }
                }
                lane.visits.push(TapeVisit {
                    tape_id: labels[t].0,
                    tape_label: labels[t].1.clone(),
                    steps: visit_steps,
                });
            }
            out.push(lane);
        }
        CopyJob {
            lanes: out,
            abs,
            segments,
            bytes,
            skipped,
        }
    }

    /// What the run will do, for the operator.
    pub(crate) fn detail(&self, primary: &str, copy_pool: &str) -> String {
        if self.abs == 0 {
            return format!(
                "nothing to copy: every complete ABS of pool {primary} has a whole copy in pool {copy_pool}"
            );
        }
        let tapes: Vec<&str> = self
            .lanes
            .iter()
            .flat_map(|l| l.visits.iter().map(|v| v.tape_label.as_str()))
            .collect();
        format!(
            "copying {} ABS ({} segments, {} bytes) of pool {primary} to pool {copy_pool} from tapes {} on {} drive pair(s)",
            self.abs,
            self.segments,
            self.bytes,
            tapes.join(", "),
            self.lanes.len()
        )
    }
}

impl CopyJob {
    /// What a tape recovery will do, for the operator.
    pub(crate) fn recovery_detail(&self, tape: &str, pool: &str) -> String {
        if self.segments == 0 && self.abs == 0 {
            return format!("nothing left on tape {tape} to recover");
        }
        let tapes: Vec<&str> = self
            .lanes
            .iter()
            .flat_map(|l| l.visits.iter().map(|v| v.tape_label.as_str()))
            .collect();
        format!(
            "recovering {} segments ({} bytes) of {} ABS from tape {tape} onto new tapes of pool {pool}, reading copy tapes {} on {} drive pair(s)",
            self.segments,
            self.bytes,
            self.abs,
            tapes.join(", "),
            self.lanes.len()
        )
    }
}

/// Which ABSs' metadata may be written: the lane counts down each ABS's
/// segments as they are copied.
#[derive(Debug, Default)]
pub(crate) struct MetadataGate {
    left: BTreeMap<AbsId, usize>,
    read: BTreeMap<AbsId, Vec<u8>>,
}

impl MetadataGate {
    pub(crate) fn new(segments_of: &BTreeMap<AbsId, usize>) -> MetadataGate {
        MetadataGate {
            left: segments_of.clone(),
            read: BTreeMap::new(),
        }
    }

    /// A segment of `abs_id` is on the copy tape.
    pub(crate) fn segment_copied(&mut self, abs_id: AbsId) {
        if let Some(n) = self.left.get_mut(&abs_id) {
            *n = n.saturating_sub(1);
        }
    }

    /// The metadata of `abs_id` was read.
    pub(crate) fn metadata_read(&mut self, abs_id: AbsId, metadata: Vec<u8>) {
        self.read.insert(abs_id, metadata);
    }

    /// The metadata that may be written now (read, every segment copied),
    /// taken out of the gate.
    pub(crate) fn ready(&mut self) -> Vec<(AbsId, Vec<u8>)> {
        let ids: Vec<AbsId> = self
            .read
            .keys()
            .filter(|id| self.left.get(id).copied().unwrap_or(0) == 0)
            .copied()
            .collect();
        ids.into_iter()
            .filter_map(|id| self.read.remove(&id).map(|m| (id, m)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
