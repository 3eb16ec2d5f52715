//! A parallel restore plan (issue 3, "Parallel restore").
//!
//! An ABS's segments may be spread over several tapes (tapes written in
//! parallel, or a media set that continued on another tape) in any order.
//! [`RestorePlan::new`] groups them by tape into [`TapeJob`]s — each tape
//! exactly once, its tape files sorted by position so a drive jumps straight
//! to them and never reads another ABS's segments — and assigns the jobs to
//! at most `drives` drive slots, balancing bytes with the
//! longest-processing-time-first rule (largest job first, each to the least
//! loaded drive). LPT's makespan is at most `4/3 − 1/(3d)` times the optimum.
//!
//! The module is pure: it neither mounts tapes nor talks to movers.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use proto::domain::{SegmentSeq, TapeId};
use thiserror::Error;

/// One segment of the ABS to restore and where the catalog says it lies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlannedSegment {
    /// The segment's sequence number within its ABS (0-based, no gaps).
    pub seq: SegmentSeq,
    /// The catalog id of the tape holding the segment.
    pub tape_id: TapeId,
    /// The tape's volume label (for operators and the library).
    pub tape_label: String,
    /// The tape file number holding the segment.
    pub tape_file: u32,
    /// The segment's size on tape in bytes.
    pub bytes: u64,
}

/// Everything one drive reads from one tape: mount once, read each file in
/// position order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeJob {
    /// The catalog id of the tape.
    pub tape_id: TapeId,
    /// The tape's volume label.
    pub tape_label: String,
    /// The segments on this tape, sorted by ascending `tape_file`.
    pub files: Vec<PlannedSegment>,
    /// The sum of the files' bytes.
    pub bytes: u64,
}

/// Why a restore plan cannot be built from the catalog's segment list.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// No drive to read with.
    #[error("a restore plan needs at least one drive")]
    NoDrives,
    /// The same sequence number is listed twice.
    #[error(
        "ABS segment {seq} is listed twice: on tape {first_label} file {first_file} \
         and on tape {second_label} file {second_file}"
    )]
    DuplicateSeq {
        /// The repeated sequence number.
        seq: SegmentSeq,
        /// The label of the first placement.
        first_label: String,
        /// The tape file of the first placement.
        first_file: u32,
        /// The label of the second placement.
        second_label: String,
        /// The tape file of the second placement.
        second_file: u32,
    },
    /// Two segments claim the same tape file.
    #[error("ABS segments {first_seq} and {second_seq} both claim tape {tape_label} (id {tape_id}) file {tape_file}")]
    DuplicateTapeFile {
        /// The tape's id.
        tape_id: TapeId,
        /// The tape's label.
        tape_label: String,
        /// The contested tape file.
        tape_file: u32,
        /// One segment claiming it.
        first_seq: SegmentSeq,
        /// The other segment claiming it.
        second_seq: SegmentSeq,
    },
    /// The sequence numbers are not exactly `0..n`.
    #[error("ABS segment {seq} is missing: {count} segments are listed, so they must be numbered 0..{count}")]
    MissingSeq {
        /// The first missing sequence number.
        seq: SegmentSeq,
        /// How many segments were listed.
        count: usize,
    },
    /// One tape id appears with two different labels.
    #[error("tape id {tape_id} is labelled both {first_label} and {second_label} (ABS segment {seq})")]
    InconsistentLabel {
        /// The tape's id.
        tape_id: TapeId,
        /// The label seen first.
        first_label: String,
        /// The other label.
        second_label: String,
        /// The segment carrying the other label.
        seq: SegmentSeq,
    },
    /// The bytes of the segments do not fit a `u64`.
    #[error("the segments' sizes overflow 64 bits (at ABS segment {seq})")]
    TooLarge {
        /// The segment at which the sum overflowed.
        seq: SegmentSeq,
    },
}

/// A restore plan: tape jobs assigned to drive slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// One queue per used drive slot (never more than the drives given, never
    /// more than the tapes; empty for an ABS without segments).
    queues: Vec<Vec<TapeJob>>,
    /// The bytes each queue reads.
    loads: Vec<u64>,
    /// The bytes of the whole ABS.
    total_bytes: u64,
}

impl RestorePlan {
    /// Build a plan from the catalog's placement of an ABS's segments (in any
    /// order) for at most `drives` drives.
    ///
    /// Errors when `drives` is 0, when a sequence number or a (tape, tape
    /// file) is listed twice, when the sequence numbers have gaps, or when one
    /// tape id carries two labels.
    pub fn new(segments: &[PlannedSegment], drives: usize) -> Result<RestorePlan, PlanError> {
        if drives == 0 {
            return Err(PlanError::NoDrives);
        }
        let mut by_seq: BTreeMap<SegmentSeq, &PlannedSegment> = BTreeMap::new();
        let mut by_place: BTreeMap<(TapeId, u32), SegmentSeq> = BTreeMap::new();
        let mut tapes: BTreeMap<TapeId, TapeJob> = BTreeMap::new();
        let mut total_bytes: u64 = 0;
        for s in segments {
            match by_seq.entry(s.seq) {
                Entry::Occupied(o) => {
                    let first = o.get();
                    return Err(PlanError::DuplicateSeq {
                        seq: s.seq,
                        first_label: first.tape_label.clone(),
                        first_file: first.tape_file,
                        second_label: s.tape_label.clone(),
                        second_file: s.tape_file,
                    });
                }
                Entry::Vacant(v) => {
                    v.insert(s);
                }
            }
            match by_place.entry((s.tape_id, s.tape_file)) {
                Entry::Occupied(o) => {
                    return Err(PlanError::DuplicateTapeFile {
                        tape_id: s.tape_id,
                        tape_label: s.tape_label.clone(),
                        tape_file: s.tape_file,
                        first_seq: *o.get(),
                        second_seq: s.seq,
                    });
                }
                Entry::Vacant(v) => {
                    v.insert(s.seq);
                }
            }
            total_bytes = total_bytes
                .checked_add(s.bytes)
                .ok_or(PlanError::TooLarge { seq: s.seq })?;
            let job = tapes.entry(s.tape_id).or_insert_with(|| TapeJob {
                tape_id: s.tape_id,
                tape_label: s.tape_label.clone(),
                files: Vec::new(),
                bytes: 0,
            });
            if job.tape_label != s.tape_label {
                return Err(PlanError::InconsistentLabel {
                    tape_id: s.tape_id,
                    first_label: job.tape_label.clone(),
                    second_label: s.tape_label.clone(),
                    seq: s.seq,
                });
            }
            // Cannot overflow: bounded by `total_bytes`.
            job.bytes += s.bytes;
            job.files.push(s.clone());
        }
        // Sequence numbers must be exactly 0..n: sorted and distinct, so the
        // first index whose number differs is the first gap.
        let count = by_seq.len();
        for (want, &have) in by_seq.keys().enumerate() {
            let want = u32::try_from(want).map(SegmentSeq::new);
            if want != Ok(have) {
                let seq = want.unwrap_or(SegmentSeq::new(u32::MAX));
                return Err(PlanError::MissingSeq { seq, count });
            }
        }

        let mut jobs: Vec<TapeJob> = tapes.into_values().collect();
        for job in jobs.iter_mut() {
            job.files.sort_by_key(|f| f.tape_file);
        }
        // Longest processing time first; ties by tape id for determinism.
        jobs.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.tape_id.cmp(&b.tape_id)));
        let slots = drives.min(jobs.len());
        let mut queues: Vec<Vec<TapeJob>> = vec![Vec::new(); slots];
        let mut loads: Vec<u64> = vec![0; slots];
        for job in jobs {
            // The least loaded slot, the lowest index on ties. `slots` > 0 here
            // because there is at least one job.
            let mut best = 0;
            for (i, &load) in loads.iter().enumerate() {
                if load < loads[best] {
                    best = i;
                }
            }
            loads[best] += job.bytes;
            queues[best].push(job);
        }
        Ok(RestorePlan {
            queues,
            loads,
            total_bytes,
        })
    }

    /// The tape jobs of each drive slot, in the order the drive reads them
    /// (largest job first). At most `drives` slots, at most one per tape.
    pub fn drive_queues(&self) -> &[Vec<TapeJob>] {
        &self.queues
    }

    /// The bytes each drive slot reads, parallel to [`Self::drive_queues`].
    pub fn drive_bytes(&self) -> &[u64] {
        &self.loads
    }

    /// The bytes of the most loaded drive: the restore's length in bytes when
    /// every drive reads at the same rate (0 for an empty plan).
    pub fn makespan_bytes(&self) -> u64 {
        self.loads.iter().copied().max().unwrap_or(0)
    }

    /// The bytes of the whole ABS.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// How many tapes the restore mounts (each once).
    pub fn tape_count(&self) -> usize {
        self.queues.iter().map(Vec::len).sum()
    }

    /// Every tape job, drive by drive.
    pub fn jobs(&self) -> impl Iterator<Item = &TapeJob> {
        self.queues.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn seg(seq: u32, tape: u64, file: u32, bytes: u64) -> PlannedSegment {
        PlannedSegment {
            seq: SegmentSeq::new(seq),
            tape_id: TapeId::new(tape),
            tape_label: format!("T{tape:05}"),
            tape_file: file,
            bytes,
        }
    }

    #[test]
    fn groups_by_tape_and_sorts_by_position() {
        // Segments of one ABS interleaved over two tapes, listed out of order.
        let segs = vec![
            seg(3, 2, 9, 10),
            seg(0, 1, 7, 10),
            seg(1, 2, 4, 10),
            seg(2, 1, 3, 10),
            seg(4, 1, 12, 10),
        ];
        let plan = RestorePlan::new(&segs, 1).expect("plan");
        assert_eq!(plan.drive_queues().len(), 1);
        let q = &plan.drive_queues()[0];
        assert_eq!(q.len(), 2);
        // Tape 1 holds 30 bytes, tape 2 holds 20: largest first.
        assert_eq!(q[0].tape_id, TapeId::new(1));
        assert_eq!(q[0].tape_label, "T00001");
        assert_eq!(
            q[0].files.iter().map(|f| f.tape_file).collect::<Vec<_>>(),
            vec![3, 7, 12]
        );
        assert_eq!(q[0].bytes, 30);
        assert_eq!(q[1].files.iter().map(|f| f.seq.get()).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(plan.makespan_bytes(), 50);
        assert_eq!(plan.total_bytes(), 50);
        assert_eq!(plan.tape_count(), 2);
    }

    #[test]
    fn spreads_tapes_over_drives_lpt() {
        // Tape jobs of 7, 5, 4, 3 and 3 bytes on 2 drives.
        let segs = vec![
            seg(0, 1, 1, 7),
            seg(1, 2, 1, 5),
            seg(2, 3, 1, 4),
            seg(3, 4, 1, 3),
            seg(4, 5, 1, 3),
        ];
        let plan = RestorePlan::new(&segs, 2).expect("plan");
        // LPT: 7 → d0; 5 → d1; 4 → d1 (9); 3 → d0 (10); 3 → d1 (12).
        assert_eq!(plan.drive_bytes(), &[10, 12]);
        assert_eq!(plan.makespan_bytes(), 12);
        let q0: Vec<u64> = plan.drive_queues()[0].iter().map(|j| j.tape_id.get()).collect();
        let q1: Vec<u64> = plan.drive_queues()[1].iter().map(|j| j.tape_id.get()).collect();
        assert_eq!(q0, vec![1, 4]);
        assert_eq!(q1, vec![2, 3, 5]);
    }

    #[test]
    fn more_drives_than_tapes_uses_one_drive_per_tape() {
        let segs = vec![seg(0, 1, 1, 7), seg(1, 2, 1, 5), seg(2, 1, 2, 1)];
        let plan = RestorePlan::new(&segs, 8).expect("plan");
        assert_eq!(plan.drive_queues().len(), 2);
        assert!(plan.drive_queues().iter().all(|q| q.len() == 1));
        assert_eq!(plan.makespan_bytes(), 8);
    }

    #[test]
    fn empty_abs_gives_empty_plan() {
        let plan = RestorePlan::new(&[], 3).expect("plan");
        assert!(plan.drive_queues().is_empty());
        assert_eq!(plan.makespan_bytes(), 0);
        assert_eq!(plan.tape_count(), 0);
    }

    #[test]
    fn zero_drives_is_an_error() {
        assert_eq!(RestorePlan::new(&[seg(0, 1, 1, 1)], 0), Err(PlanError::NoDrives));
    }

    #[test]
    fn duplicate_seq_is_named() {
        let err = RestorePlan::new(&[seg(0, 1, 1, 1), seg(0, 2, 5, 1)], 1).unwrap_err();
        assert!(matches!(err, PlanError::DuplicateSeq { seq, .. } if seq == SegmentSeq::new(0)));
        let msg = err.to_string();
        assert!(msg.contains("ABS segment 0"), "{msg}");
        assert!(msg.contains("T00001 file 1") && msg.contains("T00002 file 5"), "{msg}");
    }

    #[test]
    fn duplicate_tape_file_is_named() {
        let err = RestorePlan::new(&[seg(0, 1, 4, 1), seg(1, 1, 4, 1)], 1).unwrap_err();
        assert_eq!(
            err,
            PlanError::DuplicateTapeFile {
                tape_id: TapeId::new(1),
                tape_label: "T00001".into(),
                tape_file: 4,
                first_seq: SegmentSeq::new(0),
                second_seq: SegmentSeq::new(1)
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("ABS segments 0 and 1") && msg.contains("file 4"), "{msg}");
    }

    #[test]
    fn gaps_are_named() {
        let err = RestorePlan::new(&[seg(0, 1, 1, 1), seg(2, 1, 2, 1), seg(3, 1, 3, 1)], 1).unwrap_err();
        assert_eq!(
            err,
            PlanError::MissingSeq {
                seq: SegmentSeq::new(1),
                count: 3
            }
        );
        assert!(err.to_string().contains("ABS segment 1 is missing"));
        // Not starting at 0.
        let err = RestorePlan::new(&[seg(1, 1, 1, 1)], 1).unwrap_err();
        assert_eq!(
            err,
            PlanError::MissingSeq {
                seq: SegmentSeq::new(0),
                count: 1
            }
        );
    }

    #[test]
    fn inconsistent_label_is_an_error() {
        let mut b = seg(1, 1, 2, 1);
        b.tape_label = "OTHER".into();
        let err = RestorePlan::new(&[seg(0, 1, 1, 1), b], 1).unwrap_err();
        assert!(
            matches!(err, PlanError::InconsistentLabel { tape_id, seq, .. } if tape_id == TapeId::new(1) && seq == SegmentSeq::new(1))
        );
    }

    #[test]
    fn overflow_is_an_error() {
        let err = RestorePlan::new(&[seg(0, 1, 1, u64::MAX), seg(1, 2, 1, 1)], 1).unwrap_err();
        assert_eq!(
            err,
            PlanError::TooLarge {
                seq: SegmentSeq::new(1)
            }
        );
    }

    /// The best makespan by brute force (small cases only).
    fn optimum(jobs: &[u64], drives: usize) -> u64 {
        fn go(jobs: &[u64], loads: &mut Vec<u64>, best: &mut u64) {
            let Some((&j, rest)) = jobs.split_first() else {
                let m = loads.iter().copied().max().unwrap_or(0);
                *best = (*best).min(m);
                return;
            };
            for i in 0..loads.len() {
                loads[i] += j;
                if loads[i] < *best {
                    go(rest, loads, best);
                }
                loads[i] -= j;
            }
        }
        let mut best = u64::MAX;
        go(jobs, &mut vec![0; drives], &mut best);
        best
    }

    /// Up to 40 segments of one ABS on up to 8 tapes, shuffled, with distinct
    /// tape files per tape.
    fn arb_segments() -> impl Strategy<Value = Vec<PlannedSegment>> {
        proptest::collection::vec((0u64..8, 0u64..1_000_000), 0..40)
            .prop_flat_map(|v| {
                // Distinct tape files overall (so per tape), in an order on
                // tape independent of the sequence numbers.
                let n = u32::try_from(v.len()).expect("small");
                let files = Just((10..10 + n).collect::<Vec<u32>>()).prop_shuffle();
                (Just(v), files)
            })
            .prop_map(|(v, files)| {
                v.into_iter()
                    .zip(files)
                    .enumerate()
                    .map(|(i, ((tape, bytes), file))| seg(u32::try_from(i).expect("small"), tape, file, bytes))
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    proptest! {
        #[test]
        fn plan_properties(segs in arb_segments(), drives in 1usize..10) {
            let plan = RestorePlan::new(&segs, drives).expect("valid input");
            let queues = plan.drive_queues();
            prop_assert!(queues.len() <= drives);
            prop_assert_eq!(plan.drive_bytes().len(), queues.len());

            // Every segment exactly once.
            let mut seen: Vec<u32> = plan.jobs().flat_map(|j| j.files.iter().map(|f| f.seq.get())).collect();
            seen.sort_unstable();
            let want: Vec<u32> = (0..u32::try_from(segs.len()).expect("small")).collect();
            prop_assert_eq!(&seen, &want);
            for j in plan.jobs() {
                for f in &j.files {
                    prop_assert!(segs.contains(f));
                    prop_assert_eq!(f.tape_id, j.tape_id);
                }
                // Files in position order.
                prop_assert!(j.files.windows(2).all(|w| w[0].tape_file < w[1].tape_file));
                prop_assert_eq!(j.bytes, j.files.iter().map(|f| f.bytes).sum::<u64>());
                prop_assert!(!j.files.is_empty());
            }
            // Each tape in exactly one queue, once.
            let tapes: BTreeSet<TapeId> = segs.iter().map(|s| s.tape_id).collect();
            let mut planned: Vec<TapeId> = plan.jobs().map(|j| j.tape_id).collect();
            planned.sort_unstable();
            prop_assert_eq!(planned, tapes.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(plan.tape_count(), tapes.len());
            for (q, &load) in queues.iter().zip(plan.drive_bytes()) {
                prop_assert!(!q.is_empty());
                prop_assert_eq!(load, q.iter().map(|j| j.bytes).sum::<u64>());
            }

            // Makespan bounds.
            let total: u64 = segs.iter().map(|s| s.bytes).sum();
            prop_assert_eq!(plan.total_bytes(), total);
            let largest = plan.jobs().map(|j| j.bytes).max().unwrap_or(0);
            let d = u64::try_from(drives).expect("small");
            let lower = total.div_ceil(d).max(largest);
            let m = plan.makespan_bytes();
            prop_assert!(m >= lower);
            prop_assert!(m <= lower * 4 / 3 + largest, "makespan {} lower bound {} largest {}", m, lower, largest);
            prop_assert!(m <= total, "never worse than one drive");
            if drives >= tapes.len() {
                prop_assert_eq!(queues.len(), tapes.len());
                prop_assert!(queues.iter().all(|q| q.len() == 1));
                prop_assert_eq!(m, largest);
            }
        }

        #[test]
        fn lpt_within_four_thirds_of_optimum(
            jobs in proptest::collection::vec(1u64..1000, 1..8),
            drives in 1usize..4,
        ) {
            let segs: Vec<PlannedSegment> = jobs
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    let i32_ = u32::try_from(i).expect("small");
                    seg(i32_, u64::from(i32_), 1, b)
                })
                .collect();
            let plan = RestorePlan::new(&segs, drives).expect("valid input");
            let opt = optimum(&jobs, drives.min(jobs.len()));
            // LPT ≤ (4/3 − 1/(3d))·OPT, i.e. 3d·LPT ≤ (4d − 1)·OPT.
            let d = u64::try_from(drives).expect("small");
            prop_assert!(3 * d * plan.makespan_bytes() <= (4 * d - 1) * opt,
                "LPT {} optimum {}", plan.makespan_bytes(), opt);
        }

        #[test]
        fn one_drive_reads_everything(segs in arb_segments()) {
            let plan = RestorePlan::new(&segs, 1).expect("valid input");
            prop_assert_eq!(plan.makespan_bytes(), plan.total_bytes());
        }

        #[test]
        fn gaps_and_duplicates_are_rejected(segs in arb_segments(), pick in any::<prop::sample::Index>()) {
            prop_assume!(!segs.is_empty());
            let i = pick.index(segs.len());
            // Removing a non-last seq leaves a gap.
            let n = u32::try_from(segs.len()).expect("small");
            let mut gap = segs.clone();
            let removed = gap.remove(i);
            if removed.seq.get() + 1 < n {
                let is_missing = matches!(RestorePlan::new(&gap, 2), Err(PlanError::MissingSeq { seq, .. }) if seq == removed.seq);
                prop_assert!(is_missing);
            } else {
                prop_assert!(RestorePlan::new(&gap, 2).is_ok());
            }
            // Listing a segment twice is a duplicate seq.
            let mut dup = segs.clone();
            dup.push(segs[i].clone());
            let is_dup = matches!(RestorePlan::new(&dup, 2), Err(PlanError::DuplicateSeq { seq, .. }) if seq == segs[i].seq);
            prop_assert!(is_dup);
        }
    }
}
