use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use proto::domain::{AbsId, MediaSetId, SegmentSeq, TapeId};

use super::*;
use crate::catalog::{CopyCandidate, MetadataSource, Segment};

fn seg(id: i64, abs: u64, seq: u32, tape: u64, file: u32) -> Segment {
    Segment {
        id,
        crc32c: seq,
        ..Segment::fixture(abs, seq, tape, file)
    }
}

fn candidate(abs: u64, segments: Vec<Segment>, meta_tape: u64, meta_file: u32) -> CopyCandidate {
    CopyCandidate {
        abs_id: AbsId::new(abs),
        object_name: format!("/obj{abs}"),
        segments,
        damaged: Vec::new(),
        metadata: Some(MetadataSource {
            tape_id: TapeId::new(meta_tape),
            tape_label: format!("T{meta_tape}"),
            tape_file: meta_file,
        }),
    }
}

fn keys(tapes: &[(u64, u64, u32)]) -> HashMap<TapeId, TapeKey> {
    tapes
        .iter()
        .map(|&(t, set, seq)| {
            (
                TapeId::new(t),
                TapeKey {
                    media_set: Some(MediaSetId::new(set)),
                    sequence: Some(seq),
                    label: format!("T{t}"),
                },
            )
        })
        .collect()
}

fn files(v: &TapeVisit) -> Vec<u32> {
    v.steps.iter().map(CopyStep::tape_file).collect()
}

#[test]
fn interleaved_abs_on_one_tape_are_read_in_position_order() {
    // Two ABSs interleaved on T1: 1:0 @2, 2:0 @3, 1:1 @4, meta1 @5, 2:1 @6, meta2 @7.
    let c = vec![
        candidate(1, vec![seg(10, 1, 0, 1, 2), seg(11, 1, 1, 1, 4)], 1, 5),
        candidate(2, vec![seg(20, 2, 0, 1, 3), seg(21, 2, 1, 1, 6)], 1, 7),
    ];
    let job = CopyJob::plan(&c, &keys(&[(1, 1, 1)]), 4);
    assert_eq!(job.lanes.len(), 1, "one tape: one lane, whatever was asked");
    assert_eq!((job.abs, job.segments, job.bytes), (2, 4, 4000));
    let lane = &job.lanes[0];
    assert_eq!(lane.visits.len(), 1);
    assert_eq!(files(&lane.visits[0]), [2, 3, 4, 5, 6, 7]);
    assert_eq!(
        job.detail("P", "C"),
        "copying 2 ABS (4 segments, 4000 bytes) of pool P to pool C from tapes T1 on 1 drive pair(s)"
    );
}

#[test]
fn a_media_set_stays_on_one_lane_in_volume_order() {
    // ABS 1 spans T2 (volume 2) and T1 (volume 1) of media set 1; ABS 2 is alone on T3.
    let c = vec![
        candidate(1, vec![seg(10, 1, 1, 2, 2), seg(11, 1, 0, 1, 9)], 2, 3),
        candidate(2, vec![seg(20, 2, 0, 3, 2)], 3, 3),
    ];
    let job = CopyJob::plan(&c, &keys(&[(1, 1, 1), (2, 1, 2), (3, 3, 1)]), 2);
    assert_eq!(job.lanes.len(), 2);
    let labels: Vec<Vec<&str>> = job
        .lanes
        .iter()
        .map(|l| l.visits.iter().map(|v| v.tape_label.as_str()).collect())
        .collect();
    assert_eq!(labels, [vec!["T1", "T2"], vec!["T3"]]);
    assert_eq!(job.lanes[0].segments_of.get(&AbsId::new(1)), Some(&2));
}

#[test]
fn damaged_primaries_are_skipped_and_nothing_is_nothing() {
    let mut bad = candidate(1, vec![seg(10, 1, 0, 1, 2)], 1, 3);
    bad.damaged = vec![SegmentSeq::new(1)];
    let job = CopyJob::plan(&[bad], &HashMap::new(), 1);
    assert!(job.lanes.is_empty());
    assert_eq!(job.skipped, vec![(AbsId::new(1), vec![SegmentSeq::new(1)])]);
    assert_eq!(
        job.detail("P", "C"),
        "nothing to copy: every complete ABS of pool P has a whole copy in pool C"
    );
}

#[test]
fn metadata_waits_for_the_last_segment() {
    let mut gate = MetadataGate::new(&BTreeMap::from([(AbsId::new(1), 2), (AbsId::new(2), 0)]));
    gate.metadata_read(AbsId::new(1), vec![1]);
    assert!(gate.ready().is_empty());
    gate.segment_copied(AbsId::new(1));
    assert!(gate.ready().is_empty());
    gate.metadata_read(AbsId::new(2), vec![2]);
    assert_eq!(gate.ready(), vec![(AbsId::new(2), vec![2])]);
    gate.segment_copied(AbsId::new(1));
    assert_eq!(gate.ready(), vec![(AbsId::new(1), vec![1])]);
    assert!(gate.ready().is_empty(), "each metadata is written once");
}

/// Random catalogs: ABSs with segments scattered over a few tapes (files
/// numbered as a writer would), metadata after the last segment of the
/// tape that holds it.
fn catalogs() -> impl Strategy<Value = (Vec<CopyCandidate>, usize)> {
    (
        proptest::collection::vec(proptest::collection::vec(0u64..5, 0..6), 1..8),
        1usize..4,
    )
        .prop_map(|(abs_tapes, lanes)| {
            let mut next_file: BTreeMap<u64, u32> = BTreeMap::new();
            let mut id = 0;
            let mut out = Vec::new();
            for (a, tapes) in abs_tapes.iter().enumerate() {
                let abs = a as u64 + 1;
                let mut segments = Vec::new();
                for (seq, &t) in tapes.iter().enumerate() {
                    let f = next_file.entry(t).or_insert(2);
                    id += 1;
                    segments.push(seg(id, abs, u32::try_from(seq).unwrap(), t, *f));
                    *f += 1;
                }
                let meta_tape = tapes.last().copied().unwrap_or(0);
                let f = next_file.entry(meta_tape).or_insert(2);
                out.push(candidate(abs, segments, meta_tape, *f));
                *f += 1;
            }
            (out, lanes)
        })
}

proptest! {
    #[test]
    fn every_file_once_every_tape_once_metadata_last((cands, lanes) in catalogs()) {
        let job = CopyJob::plan(&cands, &HashMap::new(), lanes);
        prop_assert!(job.lanes.len() <= lanes);
        let mut seen_tapes = BTreeSet::new();
        let mut seen_files = BTreeSet::new();
        for lane in &job.lanes {
            let mut gate = MetadataGate::new(&lane.segments_of);
            let mut written = BTreeSet::new();
            for v in &lane.visits {
                prop_assert!(seen_tapes.insert(v.tape_id), "tape {} visited twice", v.tape_label);
                let f = files(v);
                prop_assert!(f.windows(2).all(|w| w[0] < w[1]), "files out of order: {f:?}");
                for step in &v.steps {
                    prop_assert!(seen_files.insert((v.tape_id, step.tape_file())));
                    match step {
                        CopyStep::Segment { abs_id, .. } => gate.segment_copied(*abs_id),
                        CopyStep::Metadata { abs_id, .. } => gate.metadata_read(*abs_id, vec![]),
                    }
                    for (a, _) in gate.ready() {
                        written.insert(a);
                    }
                }
            }
            // Every ABS of the lane got its metadata written, after its segments.
            let lane_abs: BTreeSet<AbsId> = lane.segments_of.keys().copied().collect();
            prop_assert_eq!(written, lane_abs);
        }
        let expected: usize = cands.iter().map(|c| c.segments.len() + 1).sum();
        prop_assert_eq!(seen_files.len(), expected);
        prop_assert_eq!(job.abs as usize, cands.len());
    }
}
