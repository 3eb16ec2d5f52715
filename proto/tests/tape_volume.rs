//! The labelled tape as the back-end mover and a restore use it: write,
//! read back by tape file number, append after finish and after a crash,
//! and errors that say where.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

mod tape_support;

use proto::tape::block::{BlockDevice, MemTape, SimhTape};
use proto::tape::directory::FileKind;
use proto::tape::inspect::{inspect, verify, ScanStop, ScannedKind};
use proto::tape::labels::LabelKind;
use proto::tape::volume::{TapeEnd, TapeReader, TapeWriter};
use proto::tape::{TapeError, FORMAT_VERSION};
use tape_support::*;

#[test]
fn a_finished_tape_reads_back_everything() {
    let (image, written) = finished_tape("RT0001", 512, 3);
    let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
    assert_eq!(r.labels().vol1.volume_id, "RT0001");
    assert_eq!(r.labels().vol1.owner_id, "DMC TESTS");
    assert_eq!(r.labels().hdr2.block_size, 512);
    let h = r.node_header().clone();
    assert_eq!(
        (h.label.as_str(), h.pool.as_str(), h.media_set, h.sequence),
        ("RT0001", "test-pool", 0x5EED, 1)
    );
    assert_eq!(
        (h.block_size, h.created_unix, h.format_version),
        (512, T0, FORMAT_VERSION)
    );

    for (file, tracks) in &written.segments {
        let seg = r.read_segment(*file, 1 << 20).unwrap();
        assert_eq!(&seg.tracks, tracks, "segment in tape file {file}");
    }
    for (file, meta) in &written.metadata {
        assert_eq!(&r.read_abs_metadata(*file).unwrap(), meta);
    }
    let dir = r.read_directory().unwrap().unwrap();
    assert_eq!(dir.entries, written.entries);
    let trailer = r.read_node_trailer().unwrap().unwrap();
    assert_eq!(trailer.file_count as usize, written.entries.len());
    assert_eq!(trailer.finished_unix, T0 + 3600);
    assert!(!trailer.continues);
    let cat = r.read_catalog().unwrap().unwrap();
    assert_eq!(cat.label, "RT0001");
    assert_eq!(cat.pool, "test-pool");
    assert_eq!(cat.entries.len(), 2);
    assert_eq!(cat.entries[0].abs_id, 1);
    assert_eq!(cat.entries[0].object_name, "/obj/1");
    assert_eq!(cat.entries[0].segments.len(), 3);
    assert_eq!(cat.entries[0].metadata_file, Some(written.metadata[0].0));
    match r.tape_end().unwrap() {
        TapeEnd::Finished { directory_file, labels } => {
            assert_eq!(*directory_file, 2 + written.entries.len() as u32);
            assert_eq!(labels.label1.kind, LabelKind::Eof);
        }
        other => panic!("expected a finished tape, got {other:?}"),
    }
}

#[test]
fn the_layout_of_tape_files_is_as_documented() {
    let (image, written) = finished_tape("LAYOUT", 512, 2);
    let files = count_files(&image);
    let n = written.entries.len();
    // file 0: 3 labels, file 1: node header, data, DIRECTORY, TRAILER, CATALOG, EOF1 EOF2, empty, (end)
    assert_eq!(files.len(), 2 + n + 3 + 1 + 1 + 1);
    assert_eq!(files[0], 3);
    assert_eq!(files[1], 1);
    for (k, e) in written.entries.iter().enumerate() {
        assert_eq!(files[2 + k], e.records);
        assert_eq!(e.file_number as usize, 2 + k);
    }
    assert_eq!(files[2 + n + 3], 2, "EOF1 EOF2");
    assert_eq!(files[2 + n + 4], 0, "second tape mark: empty file");
    assert_eq!(files[2 + n + 5], 0, "nothing after");
    // Every record of a data file is a full block except the last.
    for e in &written.entries {
        let ranges = record_data_ranges(&image, e.file_number);
        let (last, full) = ranges.split_last().unwrap();
        assert!(full.iter().all(|r| r.len() == 512));
        assert!(last.len() <= 512 && !last.is_empty());
        assert_eq!(ranges.iter().map(|r| r.len() as u64).sum::<u64>(), e.bytes);
    }
    // Label records are 80 bytes.
    assert!(record_data_ranges(&image, 0).iter().all(|r| r.len() == 80));
    assert_eq!(&image[4..8], b"VOL1");
}

#[test]
fn a_restore_reads_only_the_tape_files_it_needs() {
    let (image, written) = finished_tape("READS1", 512, 4);
    let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
    let after_open = r.records_read();
    assert_eq!(after_open, 3 + 1, "open reads the labels and the node header only");
    // ABS 2's segments, as the catalog of the control station would list them.
    let wanted: Vec<_> = written
        .entries
        .iter()
        .filter(|e| e.abs_id == 2 && e.kind == FileKind::Segment)
        .collect();
    let mut expected_records = 0;
    for e in &wanted {
        let before = r.records_read();
        let seg = r.read_segment(e.file_number, 1 << 20).unwrap();
        assert_eq!(seg.summary.header.abs_id, 2);
        assert_eq!(
            r.records_read() - before,
            e.records,
            "reading tape file {} reads its records only",
            e.file_number
        );
        expected_records += e.records;
    }
    assert_eq!(r.records_read(), after_open + expected_records);
    // Jumping backwards works too.
    let first = written.entries[0].file_number;
    r.read_segment(first, 1 << 20).unwrap();
}

#[test]
fn read_segment_respects_max_bytes() {
    let (image, written) = finished_tape("MAXB01", 512, 1);
    let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
    let e = &written.entries[0];
    let err = r.read_segment(e.file_number, (e.bytes - 1) as usize).unwrap_err();
    assert!(matches!(err, TapeError::TooLarge { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"MAXB01\"") && msg.contains(&format!("tape file {}", e.file_number)),
        "{msg}"
    );
    assert!(r.read_segment(e.file_number, e.bytes as usize).is_ok());
}

#[test]
fn reading_the_wrong_kind_of_file_is_a_clear_error() {
    let (image, written) = finished_tape("KIND01", 512, 1);
    let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
    let meta_file = written.metadata[0].0;
    let msg = r.read_segment(meta_file, 1 << 20).unwrap_err().to_string();
    assert!(msg.contains("DMCSEG01") && msg.contains("DMCMET01"), "{msg}");
    let msg = r.read_abs_metadata(written.segments[0].0).unwrap_err().to_string();
    assert!(msg.contains("DMCMET01") && msg.contains("DMCSEG01"), "{msg}");
    assert!(matches!(r.read_segment(0, 1 << 20), Err(TapeError::NotFound { .. })));
    assert!(matches!(r.read_segment(1, 1 << 20), Err(TapeError::NotFound { .. })));
    let msg = r.read_segment(999, 1 << 20).unwrap_err().to_string();
    assert!(msg.contains("tape file 999"), "{msg}");
}

#[test]
fn a_corrupt_track_names_tape_file_record_and_segment() {
    let (mut image, written) = finished_tape("CRPT01", 512, 2);
    let (file, _) = written.segments[2];
    let e = written.entries.iter().find(|e| e.file_number == file).unwrap().clone();
    // Flip a byte in the middle of the third record of that tape file.
    let ranges = record_data_ranges(&image, file);
    assert!(ranges.len() >= 3);
    image[ranges[2].start + 100] ^= 0x01;
    let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
    let err = r.read_segment(file, 1 << 20).unwrap_err();
    assert!(matches!(err, TapeError::Checksum { .. }), "{err}");
    let at = err.location().unwrap();
    assert_eq!(at.label.as_deref(), Some("CRPT01"));
    assert_eq!(at.file, Some(file));
    assert_eq!(at.segment, Some((e.abs_id, e.seq)));
    assert!(at.record.is_some());
    let msg = err.to_string();
    assert!(
        msg.contains("tape \"CRPT01\"") && msg.contains(&format!("tape file {file}")) && msg.contains("record"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("segment ABS {} seq {}", e.abs_id, e.seq)),
        "{msg}"
    );
    assert!(msg.contains("expected CRC32C") && msg.contains("found"), "{msg}");
    // The other segments are still fine.
    r.read_segment(written.segments[0].0, 1 << 20).unwrap();
}

#[test]
fn a_bad_segment_is_refused_and_nothing_is_written() {
    let mut w = TapeWriter::create_at(MemTape::memory(), params("REFUSE", 512), T0).unwrap();
    let (good, _) = segment(1, 0, 2, 300);
    w.write_segment(&good, "x").unwrap();
    let before = w.device().bytes().to_vec();
    let next = w.next_file();
    let mut bad = good.clone();
    bad[200] ^= 0xff;
    assert!(w.write_segment(&bad, "x").is_err());
    assert!(w.write_segment(&good[..good.len() - 1], "x").is_err());
    assert!(w.write_segment(&[], "x").is_err());
    assert_eq!(w.device().bytes(), &before[..]);
    assert_eq!(w.next_file(), next);
    assert_eq!(w.directory().len(), 1);
    // The writer is still usable.
    w.write_segment(&good, "x").unwrap();
    let dev = w.finish_at(false, T0).unwrap();
    assert!(verify(dev).unwrap().is_ok());
}

#[test]
fn a_segment_copied_from_a_reader_is_verified_on_the_way_and_a_bad_one_leaves_nothing() {
    // Larger than the copy buffer: the copy writes records before it
    // reaches the damage near the end.
    let mut w = TapeWriter::create_at(MemTape::memory(), params("STREAM", 65536), T0).unwrap();
    let (good, tracks) = segment(7, 0, 40, 65536);
    assert!(good.len() > 2 << 20);
    let mut scratch = Vec::new();
    let (entry, summary) = w
        .write_segment_from(&mut &good[..], good.len() as u64, "obj", Some((7, 0)), &mut scratch)
        .unwrap();
    assert_eq!(entry.crc32c, crc32c::crc32c(&good), "the directory's CRC is the file's");
    assert_eq!(entry.bytes, good.len() as u64);
    assert_eq!(summary.track_count, 40);
    assert!(scratch.len() <= 1 << 20, "bounded buffer, not the whole segment");

    let next = w.next_file();
    let (second, _) = segment(7, 1, 40, 65536);
    let mut bad = second.clone();
    let at = bad.len() - 1000;
    bad[at] ^= 0x40;
    let e = w
        .write_segment_from(&mut &bad[..], bad.len() as u64, "obj", Some((7, 1)), &mut scratch)
        .unwrap_err();
    assert!(matches!(e, TapeError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("STREAM"), "names the tape: {e}");
    assert_eq!(w.next_file(), next);
    // Wrong length announced, wrong segment, a reader that is too short.
    assert!(w
        .write_segment_from(&mut &second[..], second.len() as u64 - 1, "obj", None, &mut scratch)
        .is_err());
    assert!(w
        .write_segment_from(&mut &second[..], second.len() as u64 + 1, "obj", None, &mut scratch)
        .is_err());
    let e = w
        .write_segment_from(&mut &second[..], second.len() as u64, "obj", Some((7, 2)), &mut scratch)
        .unwrap_err();
    assert!(e.to_string().contains("ABS 7 seq 2"), "{e}");
    assert_eq!(w.next_file(), next);
    assert_eq!(w.directory().len(), 1);

    // Still usable: the good copy lands where the bad one started.
    let (entry2, _) = w
        .write_segment_from(&mut &second[..], second.len() as u64, "obj", Some((7, 1)), &mut scratch)
        .unwrap();
    assert_eq!(entry2.file_number, next);
    let dev = w.finish_at(false, T0).unwrap();
    let image = dev.into_bytes();
    assert!(verify(MemTape::from_bytes(image.clone())).unwrap().is_ok());

    // Read back into a writer, record by record, every checksum checked.
    let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
    let mut out = Vec::new();
    let s = r.read_segment_into(entry.file_number, 64 << 20, &mut out).unwrap();
    assert_eq!(out, good);
    assert_eq!(s, summary);
    assert_eq!(r.read_segment(entry.file_number, 64 << 20).unwrap().tracks, tracks);
    let mut out = Vec::new();
    assert!(
        r.read_segment_into(entry.file_number, 1 << 20, &mut out).is_err(),
        "max_bytes"
    );
}

#[test]
fn create_refuses_bad_params_before_writing() {
    for p in [
        {
            let mut p = params("TOOLONG", 512);
            p.label = "TOOLONG".into();
            p
        },
        {
            let mut p = params("lower", 512);
            p.label = "lower".into();
            p
        },
        params("OK0001", 79),
        params("OK0001", (1 << 20) + 1),
        {
            let mut p = params("OK0001", 512);
            p.sequence = 0;
            p
        },
        {
            let mut p = params("OK0001", 512);
            p.owner = "much too long owner".into();
            p
        },
    ] {
        let mut dev = MemTape::memory();
        assert!(
            matches!(
                TapeWriter::create_at(&mut dev, p.clone(), T0),
                Err(TapeError::Invalid { .. })
            ),
            "{p:?}"
        );
        assert!(dev.bytes().is_empty());
    }
}

#[test]
fn a_blank_tape_is_reported_as_blank() {
    let err = TapeReader::open(MemTape::memory()).err().unwrap();
    assert!(err.to_string().contains("blank tape"), "{err}");
    assert!(TapeWriter::append(MemTape::memory()).is_err());
}

#[test]
fn append_after_finish_keeps_everything_and_rewrites_the_end() {
    let (image, first) = finished_tape("APND01", 512, 2);
    let mut w = TapeWriter::append(MemTape::from_bytes(image)).unwrap();
    assert_eq!(w.directory(), &first.entries[..]);
    assert_eq!(w.next_file(), 2 + first.entries.len() as u32);
    let (bytes, tracks3) = segment(3, 0, 2, 900);
    let e3 = w.write_segment(&bytes, "/obj/3").unwrap();
    assert_eq!(e3.file_number, 2 + first.entries.len() as u32);
    let m3 = metadata(3, "/obj/3", 1, 2);
    w.write_abs_metadata(&m3).unwrap();
    let dev = w.finish_at(true, T0 + 7200).unwrap();

    let report = verify(&mut MemTape::from_bytes(dev.bytes().to_vec())).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(report.continues);
    let mut r = TapeReader::open(dev).unwrap();
    for (file, tracks) in &first.segments {
        assert_eq!(&r.read_segment(*file, 1 << 20).unwrap().tracks, tracks);
    }
    for (file, meta) in &first.metadata {
        assert_eq!(&r.read_abs_metadata(*file).unwrap(), meta);
    }
    assert_eq!(r.read_segment(e3.file_number, 1 << 20).unwrap().tracks, tracks3);
    let cat = r.read_catalog().unwrap().unwrap();
    assert_eq!(cat.entries.iter().map(|a| a.abs_id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(cat.entries[0].object_name, "/obj/1", "names survive an append");
    assert_eq!(cat.entries[2].object_name, "/obj/3");
    let TapeEnd::Finished { labels, .. } = r.tape_end().unwrap().clone() else {
        panic!("not finished")
    };
    assert!(labels.continues());
    assert_eq!(labels.label1.kind, LabelKind::Eov);
    assert_eq!(r.read_node_trailer().unwrap().unwrap().finished_unix, T0 + 7200);
}

#[test]
fn append_then_finish_without_new_files_gives_the_same_tape() {
    let (image, _) = finished_tape("SAME01", 512, 2);
    let w = TapeWriter::append(MemTape::from_bytes(image.clone())).unwrap();
    let again = w.finish_at(false, T0 + 3600).unwrap().into_bytes();
    assert_eq!(again, image);
}

#[test]
fn append_on_an_image_file_opened_read_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tap");
    let mut w = TapeWriter::create_at(SimhTape::create(&path).unwrap(), params("FILE01", 1024), T0).unwrap();
    let (s, t) = segment(9, 0, 3, 1000);
    w.write_segment(&s, "/nine").unwrap();
    w.finish_at(false, T0).unwrap();
    let mut w = TapeWriter::append(SimhTape::open_rw(&path).unwrap()).unwrap();
    let (s2, t2) = segment(9, 1, 1, 10);
    w.write_segment(&s2, "/nine").unwrap();
    w.finish_at(false, T0).unwrap();
    let mut r = TapeReader::open(SimhTape::open(&path).unwrap()).unwrap();
    assert_eq!(r.read_segment(2, 1 << 20).unwrap().tracks, t);
    assert_eq!(r.read_segment(3, 1 << 20).unwrap().tracks, t2);
    assert!(verify(SimhTape::open(&path).unwrap()).unwrap().is_ok());
}

/// A tape whose writer "crashed": `complete` data files synced, then one
/// more segment (several records) written; returns the image, the entries
/// of the complete files, and the image range of the last file's records.
fn crashed_tape(complete: u32) -> (Vec<u8>, tape_support::Written, std::ops::Range<usize>, u32) {
    let mut w = TapeWriter::create_at(MemTape::memory(), params("CRASH1", 512), T0).unwrap();
    let written = write_interleaved(&mut w, complete, 2, 600, true);
    w.sync().unwrap();
    let (last, _) = segment(7, 0, 4, 700);
    let e = w.write_segment(&last, "/seven").unwrap();
    let image = w.device().bytes().to_vec();
    drop(w); // no finish: the process died
    let ranges = record_data_ranges(&image, e.file_number);
    let range = ranges.first().unwrap().start - 4..ranges.last().unwrap().end;
    (image, written, range, e.file_number)
}

fn check_append_after_crash(image: Vec<u8>, written: &tape_support::Written, expected_next: u32) {
    let mut w = TapeWriter::append(MemTape::from_bytes(image)).unwrap();
    assert_eq!(&w.directory()[..written.entries.len()], &written.entries[..]);
    assert_eq!(w.next_file(), expected_next);
    let (s, t) = segment(8, 0, 2, 100);
    let e = w.write_segment(&s, "/eight").unwrap();
    assert_eq!(e.file_number, expected_next);
    let dev = w.finish_at(false, T0 + 10).unwrap();
    let report = verify(&mut MemTape::from_bytes(dev.bytes().to_vec())).unwrap();
    assert!(report.is_ok(), "{report}");
    let mut r = TapeReader::open(dev).unwrap();
    for (file, tracks) in &written.segments {
        assert_eq!(&r.read_segment(*file, 1 << 20).unwrap().tracks, tracks);
    }
    for (file, meta) in &written.metadata {
        assert_eq!(&r.read_abs_metadata(*file).unwrap(), meta);
    }
    assert_eq!(r.read_segment(e.file_number, 1 << 20).unwrap().tracks, t);
    let cat = r.read_catalog().unwrap().unwrap();
    assert_eq!(
        cat.entries.iter().find(|a| a.abs_id == 1).unwrap().object_name,
        "/obj/1",
        "names from the metadata files"
    );
}

#[test]
fn append_after_a_crash_inside_a_record_discards_the_torn_file() {
    let (image, written, range, torn) = crashed_tape(2);
    for cut in [range.start + 1, range.start + 7, range.start + 600, range.end - 1] {
        let r = TapeReader::open(MemTape::from_bytes(image[..cut].to_vec())).unwrap();
        let mut r = r;
        assert!(r.read_catalog().unwrap().is_none(), "an unfinished tape has no catalog");
        check_append_after_crash(image[..cut].to_vec(), &written, torn);
    }
}

#[test]
fn append_after_a_crash_at_a_record_boundary_discards_the_file_without_its_tape_mark() {
    let (image, written, range, torn) = crashed_tape(2);
    let ranges = record_data_ranges(&image, torn);
    // After the second record (header start of the third minus nothing) and
    // after the last record, before the tape mark.
    for cut in [
        ranges[1].end + 4 + (ranges[1].len() & 1),
        range.end + 4 + (ranges.last().unwrap().len() & 1),
    ] {
        let mut t = MemTape::from_bytes(image[..cut].to_vec());
        assert!(matches!(
            TapeReader::open(&mut t).unwrap().tape_end().unwrap(),
            TapeEnd::Unfinished { torn: true, .. }
        ));
        check_append_after_crash(image[..cut].to_vec(), &written, torn);
    }
}

#[test]
fn append_after_a_crash_after_a_tape_mark_keeps_every_complete_file() {
    let (image, mut written, _, last) = crashed_tape(2);
    // The last file is complete: it stays.
    let (_, t) = segment(7, 0, 4, 700);
    written.segments.push((last, t));
    let mut t = MemTape::from_bytes(image.clone());
    let mut r = TapeReader::open(&mut t).unwrap();
    assert_eq!(
        r.tape_end().unwrap(),
        &TapeEnd::Unfinished {
            next_file: last + 1,
            torn: false
        }
    );
    let files = r.data_files().unwrap();
    assert_eq!(files.len(), written.entries.len() + 1);
    check_append_after_crash(image, &written, last + 1);
}

#[test]
fn append_after_a_crash_during_finish_rewrites_the_end() {
    let mut w = TapeWriter::create_at(MemTape::memory(), params("FINCR1", 512), T0).unwrap();
    let written = write_interleaved(&mut w, 2, 2, 600, true);
    let next = w.next_file();
    let image = w.finish_at(false, T0).unwrap().into_bytes();
    // Cut after the DIRECTORY's tape mark, inside the NODE-TRAILER, and before the second final tape mark.
    let cuts = [
        file_start(&image, next + 1),
        file_start(&image, next + 1) + 10,
        image.len() - 4,
    ];
    for cut in cuts {
        check_append_after_crash(image[..cut].to_vec(), &written, next);
    }
}

#[test]
fn a_damaged_last_complete_file_of_an_unfinished_tape_is_discarded_but_not_a_middle_one() {
    let (image, written, _, last) = crashed_tape(2);
    let mut bad_last = image.clone();
    let r = record_data_ranges(&bad_last, last);
    bad_last[r[1].start + 3] ^= 0x20;
    check_append_after_crash(bad_last, &written, last);

    let mut bad_middle = image;
    let (mid, _) = written.segments[1];
    let r = record_data_ranges(&bad_middle, mid);
    bad_middle[r[0].start + 70] ^= 0x20;
    let err = TapeWriter::append(MemTape::from_bytes(bad_middle)).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("tape file {mid}")) && msg.contains("CRASH1"),
        "{msg}"
    );
}

#[test]
fn an_unfinished_tape_is_rebuilt_from_the_ends_of_its_files_and_a_middle_flip_is_left_to_verify() {
    // Segments of 40 tracks of 600 bytes: about 50 records of 512 bytes each.
    let mut w = TapeWriter::create_at(MemTape::memory(), params("SKIM01", 512), T0).unwrap();
    let written = write_interleaved(&mut w, 3, 40, 600, true);
    let (last, _) = segment(7, 0, 40, 600);
    let last = w.write_segment(&last, "/seven").unwrap().records;
    let image = w.device().bytes().to_vec();
    drop(w); // no finish
    let records: u64 = written.entries.iter().map(|e| e.records).sum();

    let w = TapeWriter::append(MemTape::from_bytes(image.clone())).unwrap();
    assert_eq!(&w.directory()[..written.entries.len()], &written.entries[..]);
    // The last file is read whole (it may hold unsynced blocks).
    let read = w.device().records_read() - last;
    assert!(
        read < records / 5,
        "rebuilding the directory read {read} records of the {records} before the last file"
    );

    // A flip inside a middle segment's track data is not read by the
    // rebuild; its entry keeps the writer's CRC, so verify names the file
    // and a restore of it fails.
    let (mid, _) = written.segments[2];
    let mut bad = image;
    let r = record_data_ranges(&bad, mid);
    bad[r[r.len() / 2].start + 100] ^= 0x20;
    let w = TapeWriter::append(MemTape::from_bytes(bad)).unwrap();
    assert_eq!(&w.directory()[..written.entries.len()], &written.entries[..]);
    let dev = w.finish_at(false, T0 + 10).unwrap();
    let report = verify(&mut MemTape::from_bytes(dev.bytes().to_vec())).unwrap();
    assert!(!report.is_ok());
    assert!(report.to_string().contains(&format!("tape file {mid}")), "{report}");
    let mut r = TapeReader::open(dev).unwrap();
    assert!(r.read_segment(mid, 1 << 20).is_err());
}

#[test]
fn a_failed_write_poisons_the_writer() {
    // A read-only image: the first data write fails.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.tap");
    let w = TapeWriter::create_at(SimhTape::create(&path).unwrap(), params("RO0001", 512), T0).unwrap();
    drop(w);
    let dev = SimhTape::open(&path).unwrap();
    // append works on a read-only device until something is written
    let mut w = TapeWriter::append(dev).unwrap();
    let (s, _) = segment(1, 0, 1, 10);
    let err = w.write_segment(&s, "x").unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = w.write_segment(&s, "x").unwrap_err();
    assert!(err.to_string().contains("earlier failure"), "{err}");
    assert!(w.finish_at(false, T0).is_err());
}

#[test]
fn inspect_lists_every_tape_file() {
    let (image, written) = finished_tape("INSP01", 512, 2);
    let report = inspect(MemTape::from_bytes(image)).unwrap();
    let kinds: Vec<_> = report.files.iter().map(|f| f.kind).collect();
    let n = written.entries.len();
    assert_eq!(kinds[0], ScannedKind::VolumeLabels);
    assert_eq!(kinds[1], ScannedKind::NodeHeader);
    for (k, e) in written.entries.iter().enumerate() {
        let f = &report.files[2 + k];
        assert_eq!(f.file, e.file_number);
        assert_eq!(
            (f.records, f.bytes, f.crc32c, f.abs_id),
            (e.records, e.bytes, e.crc32c, Some(e.abs_id))
        );
        match e.kind {
            FileKind::Segment => {
                assert_eq!(f.kind, ScannedKind::Segment);
                assert_eq!(f.seq, Some(e.seq));
                assert_eq!(f.tracks, Some(3));
            }
            FileKind::AbsMetadata => assert_eq!(f.kind, ScannedKind::AbsMetadata),
        }
        assert!(f.problem.is_none() && f.complete);
    }
    assert_eq!(
        &kinds[2 + n..],
        &[
            ScannedKind::Directory,
            ScannedKind::NodeTrailer,
            ScannedKind::Catalog,
            ScannedKind::EndLabels
        ]
    );
    assert_eq!(
        report.stop,
        ScanStop::LogicalEnd {
            empty_file: (n + 6) as u32
        }
    );
    let text = report.to_string();
    assert!(
        text.contains("tape INSP01") && text.contains("records") && text.contains("segment"),
        "{text}"
    );
    assert!(text.contains("logical end"), "{text}");
    assert_eq!(text.lines().count(), 1 + 1 + report.files.len() + 1, "{text}");
}

#[test]
fn verify_accepts_a_good_tape_and_counts_it() {
    let (image, written) = finished_tape("VRFY01", 512, 3);
    let v = verify(MemTape::from_bytes(image)).unwrap();
    assert!(v.is_ok(), "{v}");
    assert!(v.finished && !v.continues);
    assert_eq!(v.segments, 6);
    assert_eq!(v.metadata_files, 2);
    assert_eq!(v.tracks, 18);
    assert_eq!(v.data_bytes, written.entries.iter().map(|e| e.bytes).sum::<u64>());
    assert!(v.to_string().contains("verify: OK"), "{v}");
}

#[test]
fn verify_finds_a_damaged_segment() {
    let (mut image, written) = finished_tape("VRFY02", 512, 2);
    let (file, _) = written.segments[1];
    let r = record_data_ranges(&image, file);
    image[r[1].start + 5] ^= 0x80;
    let v = verify(MemTape::from_bytes(image)).unwrap();
    assert!(!v.is_ok());
    assert!(
        v.problems
            .iter()
            .any(|p| p.file == Some(file) && p.message.contains("checksum")),
        "{v}"
    );
    // ... and the directory no longer matches the scan for that file.
    assert!(v.to_string().contains("problem"), "{v}");
}

#[test]
fn verify_checks_the_eof1_block_count() {
    let (mut image, written) = finished_tape("VRFY03", 512, 2);
    let end_file = 2 + written.entries.len() as u32 + 3;
    let eof1 = record_data_ranges(&image, end_file)[0].clone();
    assert_eq!(&image[eof1.start..eof1.start + 4], b"EOF1");
    let records: u64 = count_files(&image)[1..end_file as usize].iter().sum();
    let count = std::str::from_utf8(&image[eof1.start + 54..eof1.start + 60])
        .unwrap()
        .to_owned();
    assert_eq!(count, format!("{records:06}"));
    image[eof1.start + 59] = if image[eof1.start + 59] == b'9' {
        b'0'
    } else {
        image[eof1.start + 59] + 1
    };
    let v = verify(MemTape::from_bytes(image)).unwrap();
    assert!(v.problems.iter().any(|p| p.message.contains("block count")), "{v}");
}

#[test]
fn verify_reports_an_unfinished_tape() {
    let (image, _, _, _) = crashed_tape(1);
    let v = verify(MemTape::from_bytes(image)).unwrap();
    assert!(!v.finished);
    assert!(v.problems.iter().any(|p| p.message.contains("never finished")), "{v}");
    assert_eq!(v.problems.len(), 1, "only that: {v}");
}

#[test]
fn verify_checks_the_directory_against_the_scan() {
    use proto::tape::directory::Directory;
    use proto::tape::file::write_file;
    // Write a tape by hand whose DIRECTORY lies about a checksum.
    let mut w = TapeWriter::create_at(MemTape::memory(), params("LIAR01", 512), T0).unwrap();
    let written = write_interleaved(&mut w, 1, 2, 300, false);
    let good = w.finish_at(false, T0).unwrap().into_bytes();
    let dir_file = 2 + written.entries.len() as u32;
    let mut entries = written.entries.clone();
    entries[1].crc32c ^= 1;
    let forged = Directory {
        label: "LIAR01".into(),
        media_set: 0x5EED,
        sequence: 1,
        entries,
    }
    .encode();
    let mut dev = MemTape::from_bytes(good.clone());
    // Rewrite the end from the DIRECTORY on, copying the rest from the good tape.
    let rest: Vec<Vec<Vec<u8>>> = (dir_file + 1..dir_file + 4)
        .map(|f| {
            record_data_ranges(&good, f)
                .into_iter()
                .map(|r| good[r].to_vec())
                .collect()
        })
        .collect();
    dev.locate_file(dir_file).unwrap();
    write_file(&mut dev, 512, &forged).unwrap();
    for recs in rest {
        for r in recs {
            dev.write_record(&r).unwrap();
        }
        dev.write_filemark().unwrap();
    }
    dev.write_filemark().unwrap();
    let v = verify(dev).unwrap();
    assert!(
        v.problems
            .iter()
            .any(|p| p.file == Some(written.entries[1].file_number) && p.message.contains("DIRECTORY entry 1")),
        "{v}"
    );
}
