//! Which copy of each segment a restore reads (seed 000 claims 5–6): the
//! primary copy while the catalog knows it readable (status `ok`, its tape
//! in the library); otherwise the best copy in a copy pool that is: first
//! one on a tape the restore reads anyway (a tape is never mounted twice),
//! then the one written first. A segment with no readable copy keeps its
//! primary one, whose read then fails with the reason. Pure.

use std::collections::{BTreeMap, BTreeSet};

use proto::domain::{Failure, SegmentStatus, TapeId, TapeLocation};

use super::job::planned;
use crate::catalog::Segment;
use crate::plan::TapeJob;

/// The segments to read, and why some come from copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sources {
    /// One per segment of the ABS, primary or copy.
    pub segments: Vec<Segment>,
    /// "segment S of ABS A served from copy on tape T: …", one per copy used.
    pub from_copies: Vec<String>,
}

pub(crate) fn readable(s: &Segment) -> bool {
    s.status == SegmentStatus::Ok && s.tape_location == TapeLocation::Library
}

fn why_not(s: &Segment) -> String {
    if s.status == SegmentStatus::Damaged {
        format!("its copy on tape {} file {} is damaged", s.tape_label, s.tape_file)
    } else {
        format!("tape {} is {}", s.tape_label, s.tape_location)
    }
}

/// Choose, for each of the ABS's `primaries`, the copy to read among
/// `copies` (the copy-pool copies of its segments).
pub(crate) fn choose(primaries: Vec<Segment>, copies: &[Segment]) -> Sources {
    let mut tapes: BTreeSet<TapeId> = primaries.iter().filter(|s| readable(s)).map(|s| s.tape_id).collect();
    let mut segments = Vec::with_capacity(primaries.len());
    let mut from_copies = Vec::new();
    for p in primaries {
        if readable(&p) {
            segments.push(p);
            continue;
        }
        let mut usable: Vec<&Segment> = copies.iter().filter(|c| c.id == p.id && readable(c)).collect();
        // On a tape read anyway first; then the first written (the order
        // the catalog lists them in).
        usable.sort_by_key(|c| !tapes.contains(&c.tape_id));
        match usable.first() {
            Some(c) => {
                from_copies.push(format!(
                    "segment {} of ABS {} served from copy on tape {}: {}",
                    p.seq,
                    p.abs_id,
                    c.tape_label,
                    why_not(&p)
                ));
                tapes.insert(c.tape_id);
                segments.push((*c).clone());
            }
            None => segments.push(p),
        }
    }
    Sources { segments, from_copies }
}

/// The copies to read instead of the `failed` segments (each with why its
/// read failed), from `chosen`, the catalog's choice once those are marked
/// damaged: each must be another copy, readable. Otherwise the restore
/// cannot complete, and the error says which segment and why.
pub(crate) fn fallback(failed: &[(Segment, Failure)], chosen: &[Segment]) -> Result<Vec<Segment>, Failure> {
    failed
        .iter()
        .map(|(s, why)| {
            chosen
                .iter()
                .find(|c| c.seq == s.seq && readable(c) && (c.id, c.copy_id) != (s.id, s.copy_id))
                .cloned()
                .ok_or_else(|| {
                    Failure::corrupt(format!(
                        "segment {} of ABS {} cannot be read from tape {} file {} ({}), and no other copy of it is readable",
                        s.seq, s.abs_id, s.tape_label, s.tape_file, why.message
                    ))
                })
        })
        .collect()
}

/// The tapes to read `segments` from, one [`TapeJob`] per tape (by
/// label), each tape's files in position order.
pub(crate) fn by_tape(segments: &[Segment]) -> Vec<TapeJob> {
    let mut tapes: BTreeMap<&str, TapeJob> = BTreeMap::new();
    for (s, p) in segments.iter().zip(planned(segments)) {
        let job = tapes.entry(&s.tape_label).or_insert_with(|| TapeJob {
            tape_id: s.tape_id,
            tape_label: s.tape_label.clone(),
            files: Vec::new(),
            bytes: 0,
        });
        job.bytes += p.bytes;
        job.files.push(p);
    }
    let mut jobs: Vec<TapeJob> = tapes.into_values().collect();
    for j in &mut jobs {
        j.files.sort_by_key(|f| f.tape_file);
    }
    jobs
}

#[cfg(test)]
mod tests {

    use super::*;

    fn seg(id: i64, copy: Option<i64>, tape: u64, status: SegmentStatus, location: TapeLocation) -> Segment {
        Segment {
            id,
            copy_id: copy,
            pool: if copy.is_some() { "vault" } else { "onsite" }.into(),
            status,
            tape_location: location,
            ..Segment::fixture(7, u32::try_from(id).unwrap(), tape, 2)
        }
    }

    use SegmentStatus::{Damaged, Ok as Good};
    use TapeLocation::{Exported, Library};

    #[test]
    fn healthy_primaries_are_read_as_they_are() {
        let p = vec![seg(0, None, 1, Good, Library), seg(1, None, 1, Good, Library)];
        let copies = vec![seg(0, Some(10), 5, Good, Library)];
        let s = choose(p.clone(), &copies);
        assert_eq!(s.segments, p);
        assert!(s.from_copies.is_empty());
    }

    #[test]
    fn an_exported_or_damaged_primary_is_served_from_a_copy_on_a_tape_already_read() {
        let p = vec![
            seg(0, None, 1, Good, Library),
            seg(1, None, 2, Good, Exported),
            seg(2, None, 1, Damaged, Library),
        ];
        let copies = vec![
            // Segment 1: a copy on T5 (first written) and one on T6.
            seg(1, Some(10), 5, Good, Library),
            seg(1, Some(11), 6, Good, Library),
            // Segment 2: a damaged copy on T5, an exported one on T7, one on T6.
            seg(2, Some(12), 5, Damaged, Library),
            seg(2, Some(13), 7, Good, Exported),
            seg(2, Some(14), 6, Good, Library),
        ];
        let s = choose(p, &copies);
        let from: Vec<(u32, Option<i64>, u64)> = s
            .segments
            .iter()
            .map(|x| (x.seq.get(), x.copy_id, x.tape_id.get()))
            .collect();
        // Segment 1 from T5 (first written); segment 2 from T6, the only
        // readable copy.
        assert_eq!(from, [(0, None, 1), (1, Some(10), 5), (2, Some(14), 6)]);
        assert_eq!(
            s.from_copies,
            [
                "segment 1 of ABS 7 served from copy on tape T5: tape T2 is exported",
                "segment 2 of ABS 7 served from copy on tape T6: its copy on tape T1 file 2 is damaged",
            ]
        );
    }

    #[test]
    fn a_copy_on_a_tape_read_anyway_wins() {
        let p = vec![seg(0, None, 1, Good, Exported), seg(1, None, 1, Good, Exported)];
        let copies = vec![
            seg(0, Some(10), 5, Good, Library),
            seg(1, Some(11), 6, Good, Library),
            seg(1, Some(12), 5, Good, Library),
        ];
        let s = choose(p, &copies);
        let tapes: Vec<u64> = s.segments.iter().map(|x| x.tape_id.get()).collect();
        assert_eq!(tapes, [5, 5], "one copy tape mounted, not two");
    }

    #[test]
    fn no_readable_copy_keeps_the_primary() {
        let p = vec![seg(0, None, 1, Good, Exported)];
        let s = choose(p.clone(), &[seg(0, Some(10), 5, Damaged, Library)]);
        assert_eq!(s.segments, p);
        assert!(s.from_copies.is_empty());
    }

    #[test]
    fn a_segment_that_failed_is_read_from_another_readable_copy() {
        let failed = vec![(seg(1, None, 1, Good, Library), Failure::corrupt("crc mismatch"))];
        // The catalog's choice once the primary is marked damaged.
        let copy = seg(1, Some(10), 5, Good, Library);
        let got = fallback(&failed, &[seg(0, None, 1, Good, Library), copy.clone()]);
        assert_eq!(got, Ok(vec![copy]));
    }

    #[test]
    fn a_failed_segment_with_no_other_readable_copy_fails_naming_it() {
        let primary = seg(1, None, 1, Damaged, Library);
        let failed = vec![(primary.clone(), Failure::corrupt("crc mismatch"))];
        // The same copy again, or an exported one: neither will do.
        for chosen in [vec![primary.clone()], vec![seg(1, Some(10), 5, Good, Exported)]] {
            let err = fallback(&failed, &chosen).unwrap_err();
            assert_eq!(err.code, proto::domain::FailureCode::Corrupt);
            assert_eq!(
                err.message,
                "segment 1 of ABS 7 cannot be read from tape T1 file 2 (crc mismatch), and no other copy of it is readable"
            );
        }
    }

    #[test]
    fn reads_from_copies_mount_each_tape_once_in_position_order() {
        let on = |seq: u32, tape: u64, file: u32| Segment::fixture(7, seq, tape, file);
        let jobs = by_tape(&[on(4, 6, 9), on(1, 5, 7), on(2, 6, 3), on(3, 5, 2)]);
        let got: Vec<(String, Vec<(u32, u32)>)> = jobs
            .iter()
            .map(|j| {
                (
                    j.tape_label.clone(),
                    j.files.iter().map(|f| (f.seq.get(), f.tape_file)).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("T5".to_string(), vec![(3, 2), (1, 7)]),
                ("T6".to_string(), vec![(2, 3), (4, 9)])
            ]
        );
    }
}
