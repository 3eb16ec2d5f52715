//! Management records in a tape's CATALOG: the record of every ABS whose
//! metadata is on the tape, the record supplied for an ABS whose media set
//! goes on on another tape (completed with this tape's segments), kept
//! across an append, and never at the cost of finishing the tape.

mod tape_support;

use proto::tape::block::{Capacity, MemTape};
use proto::tape::directory::Catalog;
use proto::tape::inspect::verify;
use proto::tape::volume::{TapeReader, TapeWriter};
use tape_support::*;

/// The CATALOG of a finished tape image that verifies.
fn verified_catalog(image: Vec<u8>) -> Catalog {
    let v = verify(MemTape::from_bytes(image.clone())).unwrap();
    assert!(v.is_ok(), "{v}");
    TapeReader::open(MemTape::from_bytes(image))
        .unwrap()
        .read_catalog()
        .unwrap()
        .unwrap()
}

#[test]
fn the_catalog_carries_each_abs_record_and_keeps_them_across_an_append() {
    let mut w = TapeWriter::create_at(MemTape::memory(), params("REC001", 512), T0).unwrap();
    // ABS 1: whole, with its metadata and record.
    let (s, _) = segment(1, 0, 2, 700);
    let e1 = w.write_segment(&s, "/obj/1").unwrap();
    let mut m1 = metadata(1, "/obj/1", 1, 2);
    m1.management = Some(record(1, vec![placement(0, "REC001", e1.file_number)]));
    w.write_abs_metadata(&m1).unwrap();
    // ABS 2: segment 0 went to an earlier tape; 1 and 2 come here, its
    // metadata will follow on the next tape.
    let (s, _) = segment(2, 1, 2, 700);
    let e21 = w.write_segment(&s, "/obj/2").unwrap();
    let (s, _) = segment(2, 2, 1, 300);
    let e22 = w.write_segment(&s, "/obj/2").unwrap();
    assert_eq!(w.abs_without_record(), [2]);
    w.supply_record(2, record(2, vec![placement(0, "REC000", 9)]));
    w.supply_record(77, record(77, Vec::new())); // not on this tape: ignored
    let image = w.finish_at(true, T0 + 60).unwrap().into_bytes();

    let v = verify(MemTape::from_bytes(image.clone())).unwrap();
    assert!(v.is_ok(), "{v}");
    let mut r = TapeReader::open(MemTape::from_bytes(image.clone())).unwrap();
    let cat = r.read_catalog().unwrap().unwrap();
    assert_eq!(cat.record_of(1), m1.management.as_ref());
    let r2 = cat.record_of(2).expect("the supplied record");
    let places: Vec<_> = r2
        .placements
        .iter()
        .map(|p| (p.seq, p.tape_label.as_str(), p.tape_file))
        .collect();
    assert_eq!(
        places,
        [
            (0, "REC000", 9),
            (1, "REC001", e21.file_number),
            (2, "REC001", e22.file_number)
        ]
    );
    let counted = r2.placements[1].counts.expect("counts of a segment written here");
    assert_eq!((counted.track_count, counted.data_bytes), (2, 1400));
    assert_eq!(r2.placements[1].bytes, e21.bytes);
    assert_eq!(cat.entries.len(), 2, "no entry for an ABS not on the tape");

    // Append: ABS 2's metadata lands here now; ABS 1's record stays.
    let mut w = TapeWriter::append(MemTape::from_bytes(image)).unwrap();
    assert!(w.abs_without_record().is_empty(), "records read back from the CATALOG");
    let mut m2 = metadata(2, "/obj/2", 3, 5);
    m2.management = Some(record(
        2,
        vec![
            placement(0, "REC000", 9),
            placement(1, "REC001", e21.file_number),
            placement(2, "REC001", e22.file_number),
        ],
    ));
    w.write_abs_metadata(&m2).unwrap();
    let image = w.finish_at(false, T0 + 120).unwrap().into_bytes();
    let cat = verified_catalog(image);
    assert_eq!(cat.record_of(1), m1.management.as_ref());
    assert_eq!(
        cat.record_of(2),
        m2.management.as_ref(),
        "the metadata's record replaces the supplied one"
    );
}

/// Fill a tape of `total` bytes (early warning `ew` before its end) with
/// segments of ABS 1 until less than `margin` bytes more would fit, then
/// its metadata with a record placing them all; returns the writer (the
/// metadata written, or refused as tape full).
fn full_tape(total: u64, ew: u64, margin: u64) -> (TapeWriter<MemTape>, bool) {
    let dev = MemTape::memory().with_capacity(Capacity::new(total, ew).unwrap());
    let mut w = TapeWriter::create_at(dev, params("REC002", 1024), T0).unwrap();
    let mut places = Vec::new();
    for seq in 0.. {
        let (s, _) = segment(1, seq, 1, 900);
        if w.remaining_before_warning().unwrap() < w.file_cost(s.len() as u64) + margin {
            break;
        }
        match w.write_segment(&s, "/obj/1") {
            Ok(e) => places.push(placement(seq, "REC002", e.file_number)),
            Err(e) if e.is_tape_full() => break,
            Err(e) => panic!("{e}"),
        }
    }
    let n = u32::try_from(places.len()).unwrap();
    let mut m = metadata(1, "/obj/1", n, u64::from(n));
    m.management = Some(record(1, places));
    let written = match w.write_abs_metadata(&m) {
        Ok(_) => true,
        Err(e) if e.is_tape_full() => false,
        Err(e) => panic!("{e}"),
    };
    (w, written)
}

#[test]
fn a_record_never_keeps_a_full_tape_from_being_finished() {
    let mut seen = (false, false);
    for (ew, margin) in [0, 512, 2048, 8192]
        .into_iter()
        .flat_map(|e| [0, 1024, 2048, 4096].map(|m| (e, m)))
    {
        // The metadata's record is reserved for: once written, the end fits.
        let (w, written) = full_tape(48 * 1024, ew, margin);
        if written {
            seen.0 = true;
        }
        let image = w.finish_at(true, T0 + 1).unwrap().into_bytes();
        let cat = verified_catalog(image);
        assert_eq!(cat.record_of(1).is_some(), written, "early warning {ew}");

        // A supplied record too large for what is left is left out.
        let (mut w, written) = full_tape(48 * 1024, ew, margin);
        if written {
            continue;
        }
        seen.1 = true;
        let huge: Vec<_> = (0..20_000).map(|s| placement(s, "REC000", s + 2)).collect();
        w.supply_record(1, record(1, huge));
        let image = w.finish_at(true, T0 + 1).unwrap().into_bytes();
        let cat = verified_catalog(image);
        assert_eq!(cat.record_of(1), None, "early warning {ew}");
    }
    assert_eq!(seen, (true, true), "both a full tape with its metadata and one without");
}
