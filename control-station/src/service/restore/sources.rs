//! Which copy of each segment a restore reads (seed 000 claims 5–6): the
//! primary copy while the catalog knows it readable (status `ok`, its tape
//! in the library); otherwise the best copy in a copy pool that is: first
//! one on a tape the restore reads anyway (a tape is never mounted twice),
//! then the one written first. A segment with no readable copy keeps its
//! primary one, whose read then fails with the reason. Pure.

use std::collections::BTreeSet;

use proto::domain::{SegmentStatus, TapeId, TapeLocation};

use crate::catalog::Segment;

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
}
