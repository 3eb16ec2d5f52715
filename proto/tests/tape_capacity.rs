//! End of tape: a tape image with a capacity and an early-warning zone. Data
//! files that do not fit before the warning point are refused (TapeFull,
//! nothing written), the tape is finished with EOV1/EOV2, and writing goes
//! on on the next tape with no segment lost or written twice.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

mod tape_support;

use proptest::prelude::*;
use proto::tape::block::{BlockDevice, Capacity, MemTape};
use proto::tape::directory::{DirectoryEntry, FileKind};
use proto::tape::inspect::verify;
use proto::tape::throttle::{ManualClock, Throttle};
use proto::tape::volume::{TapeEnd, TapeReader, TapeWriter};
use proto::tape::TapeError;
use std::time::Duration;
use tape_support::*;

const BS: usize = 1024;

fn capped(total: u64, early_warning: u64) -> MemTape {
    MemTape::memory().with_capacity(Capacity::new(total, early_warning).unwrap())
}

/// Finish, then check the tape verifies, ends with EOV (or EOF) labels and
/// holds exactly `want` as its data files.
fn check_finished(image: Vec<u8>, continues: bool, want: &[DirectoryEntry]) {
    let report = verify(MemTape::from_bytes(image.clone())).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.finished);
    assert_eq!(report.continues, continues);
    let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
    match r.tape_end().unwrap() {
        TapeEnd::Finished { labels, .. } => assert_eq!(labels.continues(), continues),
        e => panic!("not finished: {e:?}"),
    }
    assert_eq!(r.read_node_trailer().unwrap().unwrap().continues, continues);
    assert_eq!(r.data_files().unwrap(), want);
}

#[test]
fn a_full_tape_refuses_data_writes_nothing_and_finishes_with_eov() {
    let cap = 64 * 1024;
    let mut w = TapeWriter::create_at(capped(cap, 8 * 1024), params("CAP001", BS), T0).unwrap();
    assert!(!w.early_warning());
    let mut accepted = Vec::new();
    let mut seq = 0;
    let full = loop {
        let (bytes, _) = segment(1, seq, 3, 1500);
        let room = w.remaining_before_warning().unwrap();
        match w.write_segment(&bytes, "/obj/1") {
            Ok(e) => {
                assert!(w.file_cost(bytes.len() as u64) <= room);
                accepted.push(e);
                seq += 1;
            }
            Err(e) => break (e, bytes, room),
        }
    };
    let (e, bytes, room) = full;
    assert!(e.is_tape_full(), "{e}");
    assert!(!e.is_end_of_medium());
    match &e {
        TapeError::TapeFull { needed, available, at } => {
            assert_eq!(*needed, w.file_cost(bytes.len() as u64));
            assert!(needed > available);
            assert!(*available <= room + 64, "{available} vs {room}");
            assert_eq!(at.label.as_deref(), Some("CAP001"));
            assert_eq!(at.file, Some(w.next_file()));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("tape full"), "{e}");
    assert!(accepted.len() >= 5, "{} segments", accepted.len());
    // Nothing was written and the writer is still usable: a small metadata
    // file may still fit; then finish with EOV.
    let before = w.device().bytes().to_vec();
    assert!(w.write_segment(&bytes, "/obj/1").unwrap_err().is_tape_full());
    assert_eq!(w.device().bytes(), &before[..]);
    assert_eq!(w.directory(), &accepted[..]);
    let m = metadata(1, "/obj/1", seq, u64::from(seq) * 3);
    match w.write_abs_metadata(&m) {
        Ok(e) => accepted.push(e),
        Err(e) => assert!(e.is_tape_full(), "{e}"),
    }
    let reserve = w.finish_reserve();
    let start = w.device().image_len();
    let dev = w.finish_at(true, T0 + 1).unwrap();
    let used = dev.image_len() - start;
    // The reserve is exact but for the CATALOG, where
    // a metadata file counts an entry (37 bytes), and the record framing.
    let metas = accepted.iter().filter(|e| e.kind == FileKind::AbsMetadata).count() as u64;
    assert!(
        used <= reserve && reserve - used <= 37 * metas + 64,
        "finish used {used}, reserved {reserve}"
    );
    assert!(dev.image_len() <= cap);
    check_finished(dev.into_bytes(), true, &accepted);
}

#[test]
fn a_full_tape_stays_appendable_and_the_end_always_fits() {
    // No early-warning zone at all: the writer still keeps room for the end.
    let cap = 40 * 1024;
    let mut w = TapeWriter::create_at(capped(cap, 0), params("CAP002", BS), T0).unwrap();
    let mut accepted = Vec::new();
    for seq in 0.. {
        let (bytes, _) = segment(2, seq, 2, 1000);
        match w.write_segment(&bytes, "/obj/2") {
            Ok(e) => accepted.push(e),
            Err(e) => {
                assert!(e.is_tape_full(), "{e}");
                break;
            }
        }
    }
    // Segments only: the finish reserve is exact.
    let (reserve, start) = (w.finish_reserve(), w.device().image_len());
    let dev = w.finish_at(true, T0 + 1).unwrap();
    assert_eq!(dev.image_len() - start, reserve);
    assert!(dev.image_len() <= cap);
    let image = dev.into_bytes();
    check_finished(image.clone(), true, &accepted);

    // Appending to the finished tape: the old end is overwritten, a full tape
    // still refuses data, and finishing again (now as the last tape) works.
    let mut w = TapeWriter::append(MemTape::from_bytes(image).with_capacity(Capacity::new(cap, 0).unwrap())).unwrap();
    assert_eq!(w.directory(), &accepted[..]);
    let (bytes, _) = segment(2, 99, 2, 1000);
    assert!(w.write_segment(&bytes, "/obj/2").unwrap_err().is_tape_full());
    let dev = w.finish_at(false, T0 + 2).unwrap();
    check_finished(dev.into_bytes(), false, &accepted);
}

#[test]
fn finish_refuses_when_the_end_does_not_fit() {
    let (image, _) = finished_tape("CAP003", BS, 2);
    let len = image.len() as u64;
    // Opened for append on a tape "smaller" than what is on it: the end of
    // the tape cannot be written again, and nothing is written.
    let dev = MemTape::from_bytes(image.clone()).with_capacity(Capacity::new(len - 100, 0).unwrap());
    let w = TapeWriter::append(dev).unwrap();
    assert_eq!(w.remaining_before_warning(), Some(0));
    let e = w.finish_at(false, T0).err().unwrap();
    assert!(e.is_end_of_medium(), "{e}");
    assert_eq!(e.location().and_then(|l| l.label.as_deref()), Some("CAP003"));
}

#[test]
fn early_warning_is_reported_and_writes_in_the_zone_still_succeed() {
    // Small files and a zone smaller than the finish reserve: data stops just
    // before the warning point, and the end is written into the zone.
    let cap = 48 * 1024;
    let zone = 512;
    let mut w = TapeWriter::create_at(capped(cap, zone), params("CAP004", BS), T0).unwrap();
    let mut n = 0;
    loop {
        let (bytes, _) = segment(3, n, 1, 100);
        assert!(!w.early_warning());
        if w.write_segment(&bytes, "/obj/3").is_err() {
            break;
        }
        n += 1;
    }
    assert!(w.device().image_len() <= cap - zone);
    assert!(w.device().early_warning_left().unwrap() < w.finish_reserve());
    let dev = w.finish_at(true, T0).unwrap();
    assert!(dev.early_warning(), "the end labels are written inside the zone");
    assert_eq!(dev.early_warning_left(), Some(0));
    assert!(dev.capacity_left().unwrap() > 0);
    let report = verify(MemTape::from_bytes(dev.into_bytes())).unwrap();
    assert!(report.is_ok() && report.continues, "{:?}", report.problems);
    assert_eq!(report.segments, n);
}

#[test]
fn without_a_capacity_nothing_changes() {
    let mut w = TapeWriter::create_at(MemTape::memory(), params("CAP005", BS), T0).unwrap();
    assert_eq!(w.remaining_before_warning(), None);
    let (bytes, _) = segment(1, 0, 2, 700);
    w.write_segment(&bytes, "/obj/1").unwrap();
    assert!(w.finish_reserve() > 0);
    let (golden, _) = finished_tape("CAP005", BS, 1);
    assert!(!golden.is_empty());
}

#[test]
fn a_throttled_writer_takes_the_time_of_its_bytes() {
    let clock = ManualClock::new();
    let dev = Throttle::with_clock(capped(1 << 20, 1 << 16), Some(100_000), &clock);
    let mut w = TapeWriter::create_at(dev, params("CAP006", BS), T0).unwrap();
    let written = write_interleaved(&mut w, 3, 3, 700, true);
    let dev = w.finish_at(false, T0).unwrap();
    let stats = dev.stats();
    let secs = stats.bytes_written as f64 / 100_000.0;
    assert!(
        (clock.elapsed().as_secs_f64() - secs).abs() < 1e-6,
        "{:?} vs {secs}",
        clock.elapsed()
    );
    assert_eq!(stats.busy, clock.elapsed());
    assert_eq!(stats.idle, Duration::ZERO);
    let image = dev.into_inner().into_bytes();
    let report = verify(MemTape::from_bytes(image)).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.segments as usize, written.segments.len());
}

#[derive(Debug, Clone)]
enum Op {
    /// A segment of ABS (1 + abs % 3) with `tracks` tracks of `len` bytes.
    Segment { abs: u64, tracks: usize, len: usize },
    /// ABS metadata (with an object name of 10 + 90 × abs bytes).
    Metadata { abs: u64 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..3, 1usize..4, 1usize..3000).prop_map(|(abs, tracks, len)| Op::Segment { abs: abs + 1, tracks, len }),
        1 => (0u64..3).prop_map(|abs| Op::Metadata { abs: abs + 1 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of data files written to a media set of capped tapes,
    /// switching tapes at TapeFull: every tape verifies, all but the last end
    /// with EOV, every tape fits its capacity, and the tapes hold exactly the
    /// accepted files, each once, in order.
    #[test]
    fn files_written_until_full_then_finished_are_exactly_on_the_tapes(
        ops in prop::collection::vec(op_strategy(), 1..40),
        cap_kib in 24u64..96,
        ew_kib in 0u64..12,
        bs in prop::sample::select(vec![512usize, 1024, 4096]),
    ) {
        let cap = cap_kib * 1024;
        let ew = ew_kib * 1024;
        let label = |n: u32| format!("P{n:05}");
        let name = |abs: u64| format!("/obj/{abs}/{}", "n".repeat(90 * abs as usize));
        let mut tape_no = 1u32;
        let mut w = TapeWriter::create_at(capped(cap, ew), params(&label(tape_no), bs), T0).unwrap();
        let mut tapes: Vec<(Vec<u8>, Vec<DirectoryEntry>)> = Vec::new();
        let mut want: Vec<(FileKind, u64, u32)> = Vec::new();
        let mut seqs = [0u32; 4];
        for op in &ops {
            loop {
                let (res, what) = match op {
                    Op::Segment { abs, tracks, len } => {
                        let seq = seqs[*abs as usize];
                        let (bytes, _) = segment(*abs, seq, *tracks, *len);
                        (w.write_segment(&bytes, &name(*abs)), (FileKind::Segment, *abs, seq))
                    }
                    Op::Metadata { abs } => {
                        (w.write_abs_metadata(&metadata(*abs, &name(*abs), 1, 1)), (FileKind::AbsMetadata, *abs, 0))
                    }
                };
                match res {
                    Ok(e) => {
                        prop_assert_eq!((e.kind, e.abs_id, e.seq), what);
                        if what.0 == FileKind::Segment {
                            seqs[what.1 as usize] += 1;
                        }
                        want.push(what);
                        break;
                    }
                    Err(e) => {
                        prop_assert!(e.is_tape_full(), "{}", e);
                        prop_assert!(!w.directory().is_empty(), "a file must fit on an empty tape");
                        let entries = w.directory().to_vec();
                        let before = w.device().bytes().to_vec();
                        let dev = w.finish_at(true, T0).unwrap();
                        prop_assert!(dev.image_len() <= cap);
                        prop_assert!(dev.bytes().starts_with(&before));
                        tapes.push((dev.into_bytes(), entries));
                        tape_no += 1;
                        let mut p = params(&label(tape_no), bs);
                        p.sequence = tape_no;
                        w = TapeWriter::create_at(capped(cap, ew), p, T0).unwrap();
                    }
                }
            }
        }
        let entries = w.directory().to_vec();
        let dev = w.finish_at(false, T0).unwrap();
        prop_assert!(dev.image_len() <= cap);
        tapes.push((dev.into_bytes(), entries));

        let last = tapes.len() - 1;
        let mut got = Vec::new();
        for (i, (image, entries)) in tapes.into_iter().enumerate() {
            let report = verify(MemTape::from_bytes(image.clone())).unwrap();
            prop_assert!(report.is_ok(), "tape {}: {:?}", i, report.problems);
            prop_assert_eq!(report.continues, i != last);
            let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
            let files = r.data_files().unwrap();
            prop_assert_eq!(&files, &entries);
            for f in &files {
                if f.kind == FileKind::Segment {
                    let s = r.read_segment(f.file_number, 1 << 20).unwrap();
                    prop_assert_eq!((s.summary.header.abs_id, s.summary.header.seq), (f.abs_id, f.seq));
                }
                got.push((f.kind, f.abs_id, f.seq));
            }
        }
        prop_assert_eq!(got, want);
    }
}
