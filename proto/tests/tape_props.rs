//! Property tests of the on-tape format: round trips with random tracks and
//! record sizes, every single-byte corruption detected, and garbage or
//! damaged tapes giving errors, never panics.

mod tape_support;

use std::sync::OnceLock;

use proptest::prelude::*;
use proto::abs::TrackAddr;
use proto::tape::block::{BlockDevice, MemTape};
use proto::tape::directory::{Catalog, Directory};
use proto::tape::file::{FileReader, FileWriter};
use proto::tape::inspect::{inspect, verify};
use proto::tape::labels::{EndLabels, FileLabel1, FileLabel2, Vol1, VolumeLabels};
use proto::tape::metadata::AbsMetadata;
use proto::tape::node::{NodeHeader, NodeTrailer};
use proto::tape::segment::{self, SegmentHeader, SegmentReader, SegmentWriter, TrackRecord};
use proto::tape::volume::{TapeReader, TapeWriter};
use tape_support::*;

fn header_strategy() -> impl Strategy<Value = SegmentHeader> {
    (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(abs_id, seq, channel_id, created_unix)| {
        SegmentHeader {
            abs_id,
            seq,
            channel_id,
            created_unix,
        }
    })
}

fn tracks_strategy(max_tracks: usize, max_len: usize) -> impl Strategy<Value = Vec<TrackRecord>> {
    prop::collection::vec(
        (
            any::<u16>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..max_len),
        )
            .prop_map(|(volume, track, data)| TrackRecord {
                addr: TrackAddr { volume, track },
                data,
            }),
        0..max_tracks,
    )
}

fn encode(header: SegmentHeader, tracks: &[TrackRecord]) -> Vec<u8> {
    let mut w = SegmentWriter::new(Vec::new(), header).unwrap();
    for t in tracks {
        w.append_track(t.addr, &t.data).unwrap();
    }
    w.finish().unwrap().0
}

/// A small finished tape to damage (built once).
fn base_tape() -> &'static [u8] {
    static TAPE: OnceLock<Vec<u8>> = OnceLock::new();
    TAPE.get_or_init(|| finished_tape("PROP01", 128, 2).0)
}

/// Everything a reader might do with a tape; must never panic. Returns
/// whether verify found the tape valid.
fn exercise(image: &[u8]) -> bool {
    let report = inspect(MemTape::from_bytes(image.to_vec())).unwrap();
    let _ = report.to_string();
    let v = verify(MemTape::from_bytes(image.to_vec())).unwrap();
    let _ = v.to_string();
    if let Ok(mut r) = TapeReader::open(MemTape::from_bytes(image.to_vec())) {
        let _ = r.read_catalog();
        let _ = r.read_node_trailer();
        let dir = r.read_directory();
        let _ = r.data_files();
        for file in 0..20 {
            let _ = r.read_segment(file, 1 << 20);
            let _ = r.read_abs_metadata(file);
        }
        if v.is_ok() {
            // A tape that verifies is fully readable.
            let dir = dir.unwrap().unwrap();
            for e in dir.entries {
                match e.kind {
                    proto::tape::directory::FileKind::Segment => {
                        r.read_segment(e.file_number, 1 << 20).unwrap();
                    }
                    proto::tape::directory::FileKind::AbsMetadata => {
                        r.read_abs_metadata(e.file_number).unwrap();
                    }
                }
            }
        }
    }
    if let Ok(mut w) = TapeWriter::append(MemTape::from_bytes(image.to_vec())) {
        let (s, _) = segment(77, 0, 1, 50);
        w.write_segment(&s, "/appended").unwrap();
        let after = verify(w.finish_at(false, T0).unwrap()).unwrap();
        // Appending to a valid tape gives a valid tape. (Append trusts the
        // directory of a finished tape, so damage inside old data files
        // stays damage; it does not spread.)
        if v.is_ok() {
            assert!(after.is_ok(), "append to a valid tape must give a valid tape:\n{after}");
        }
    }
    v.is_ok()
}

proptest! {

    #[test]
    fn segments_round_trip_in_memory_and_on_tape(
        header in header_strategy(),
        tracks in tracks_strategy(12, 3000),
        block_size in 80usize..5000,
    ) {
        let bytes = encode(header, &tracks);
        let summary = segment::verify(&bytes).unwrap();
        prop_assert_eq!(summary.header, header);
        prop_assert_eq!(summary.track_count as usize, tracks.len());
        prop_assert_eq!(summary.data_bytes, tracks.iter().map(|t| t.data.len() as u64).sum::<u64>());
        prop_assert_eq!(summary.total_bytes, bytes.len() as u64);
        let parsed = segment::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.tracks, &tracks);

        let mut w = TapeWriter::create_at(MemTape::memory(), params("PROP02", block_size), T0).unwrap();
        let e = w.write_segment(&bytes, "/random").unwrap();
        prop_assert_eq!(e.records, (bytes.len() as u64).div_ceil(block_size as u64));
        prop_assert_eq!(e.bytes, bytes.len() as u64);
        prop_assert_eq!(e.crc32c, crc32c::crc32c(&bytes));
        let dev = w.finish_at(false, T0).unwrap();
        let mut r = TapeReader::open(dev).unwrap();
        let before = r.records_read();
        let back = r.read_segment(e.file_number, bytes.len()).unwrap();
        prop_assert_eq!(r.records_read() - before, e.records);
        prop_assert_eq!(back, parsed);
    }

    #[test]
    fn any_single_byte_flip_of_a_segment_is_detected(
        header in header_strategy(),
        tracks in tracks_strategy(5, 300),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
        chunk in 1usize..200,
    ) {
        let mut bytes = encode(header, &tracks);
        let i = index.index(bytes.len());
        bytes[i] ^= mask;
        prop_assert!(segment::verify(&bytes).is_err(), "flip at byte {} of {} accepted", i, bytes.len());
        prop_assert!(segment::parse(&bytes).is_err());
        // Fed in pieces, as from tape records.
        let mut r = SegmentReader::new(true);
        let fed = bytes.chunks(chunk).try_for_each(|c| r.feed(c));
        prop_assert!(fed.is_err() || r.finish().is_err());
    }

    #[test]
    fn any_flip_in_a_segment_tape_file_is_detected_by_the_reader(
        tracks in tracks_strategy(4, 400),
        block_size in 80usize..700,
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let bytes = encode(SegmentHeader { abs_id: 5, seq: 1, channel_id: 2, created_unix: 3 }, &tracks);
        let mut w = TapeWriter::create_at(MemTape::memory(), params("PROP03", block_size), T0).unwrap();
        let e = w.write_segment(&bytes, "/x").unwrap();
        let mut image = w.finish_at(false, T0).unwrap().into_bytes();
        // Any data byte of the file's records, or any byte of their SIMH length words.
        let mut targets = Vec::new();
        for r in record_data_ranges(&image, e.file_number) {
            targets.extend(r.start - 4..r.start);
            targets.extend(r.clone());
            let trail = r.end + (r.len() & 1);
            targets.extend(trail..trail + 4);
        }
        let at = targets[index.index(targets.len())];
        image[at] ^= mask;
        let mut r = TapeReader::open(MemTape::from_bytes(image)).unwrap();
        let res = r.read_segment(e.file_number, 1 << 20);
        prop_assert!(res.is_err(), "flip at image byte {} accepted", at);
        let msg = res.unwrap_err().to_string();
        prop_assert!(msg.contains("PROP03"), "{}", msg);
    }

    #[test]
    fn tape_files_round_trip_with_any_record_size_and_write_pattern(
        data in prop::collection::vec(any::<u8>(), 1..20_000),
        block_size in 1usize..3000,
        cuts in prop::collection::vec(0usize..5000, 0..10),
    ) {
        let mut t = MemTape::memory();
        let mut w = FileWriter::new(&mut t, block_size).unwrap();
        let mut rest = &data[..];
        for c in cuts {
            let (a, b) = rest.split_at(c.min(rest.len()));
            w.write(a).unwrap();
            rest = b;
        }
        w.write(rest).unwrap();
        let st = w.finish().unwrap();
        prop_assert_eq!(st.records, (data.len() as u64).div_ceil(block_size as u64));
        t.rewind().unwrap();
        let mut r = FileReader::new(&mut t, block_size, data.len() as u64);
        let mut back = Vec::new();
        let mut sizes = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            sizes.push(rec.len());
            back.extend_from_slice(rec);
        }
        prop_assert_eq!(&back, &data);
        let (last, full) = sizes.split_last().unwrap();
        prop_assert!(full.iter().all(|&s| s == block_size));
        prop_assert!(*last >= 1 && *last <= block_size);
        prop_assert_eq!(r.stats().crc32c, crc32c::crc32c(&data));
    }

    #[test]
    fn every_decoder_refuses_garbage_without_panicking(
        garbage in prop::collection::vec(any::<u8>(), 0..3000),
        magic in prop::sample::select(vec![
            &b""[..], b"DMCSEG01", b"DMCTRK01", b"DMCSGT01", b"DMCNHD01", b"DMCNTR01",
            b"DMCMET01", b"DMCDIR01", b"DMCCAT01",
        ]),
        version_and_len in any::<[u8; 8]>(),
    ) {
        // Garbage, optionally behind a valid magic (and a plausible version/length).
        let mut bytes = magic.to_vec();
        if !magic.is_empty() {
            bytes.extend_from_slice(&version_and_len);
        }
        bytes.extend_from_slice(&garbage);
        prop_assert!(segment::verify(&bytes).is_err());
        prop_assert!(segment::parse(&bytes).is_err());
        prop_assert!(SegmentHeader::decode(&bytes).is_err());
        prop_assert!(AbsMetadata::decode(&bytes).is_err());
        prop_assert!(NodeHeader::decode(&bytes).is_err());
        prop_assert!(NodeTrailer::decode(&bytes).is_err());
        prop_assert!(Directory::decode(&bytes).is_err());
        prop_assert!(Catalog::decode(&bytes).is_err());
        let rec: Vec<u8> = bytes.iter().copied().chain(std::iter::repeat(b' ')).take(80).collect();
        let _ = Vol1::parse(&rec);
        let _ = FileLabel1::parse(&rec);
        let _ = FileLabel2::parse(&rec);
        let _ = Vol1::parse(&bytes);
        let recs = vec![rec.clone(), rec.clone(), rec];
        let _ = VolumeLabels::parse(&recs);
        let _ = EndLabels::parse(&recs[..2], 5);
    }

    #[test]
    fn garbage_images_give_errors_not_panics(garbage in prop::collection::vec(any::<u8>(), 0..4000)) {
        prop_assert!(!exercise(&garbage));
    }

    #[test]
    fn well_framed_garbage_gives_errors_not_panics(
        files in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..4), 0..8),
    ) {
        // A valid SIMH container holding random records and tape marks.
        let mut t = MemTape::memory();
        for f in &files {
            for rec in f {
                t.write_record(rec).unwrap();
            }
            t.write_filemark().unwrap();
        }
        prop_assert!(!exercise(t.bytes()));
    }

    #[test]
    fn damaged_tapes_give_errors_not_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
        splice in prop::option::of((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..64))),
    ) {
        let mut image = base_tape().to_vec();
        for (i, m) in &flips {
            let i = i.index(image.len());
            image[i] ^= m;
        }
        if let Some((at, bytes)) = splice {
            let at = at.index(image.len());
            image.splice(at..at, bytes);
        }
        if let Some(c) = cut {
            let c = c.index(image.len());
            image.truncate(c);
        }
        exercise(&image);
    }
}

#[test]
fn the_undamaged_base_tape_verifies() {
    assert!(exercise(base_tape()));
}
