//! The golden tape image pins the on-tape format byte for byte.
//!
//! `proto/tests/golden/small.tap` is a small deterministic tape (fixed
//! timestamps, block size 512, two ABSs with interleaved segments, their
//! metadata, one with a management record, finished: a version-2 CATALOG
//! with that record). The test builds the same tape and compares it with
//! the checked-in file; any change of the format shows up here. When the
//! format changes on purpose, keep the old image under a versioned name
//! (as `small_v1.tap`, the same tape with a version-1 CATALOG and no
//! record, which must still read), regenerate with
//! `UPDATE_GOLDEN=1 cargo test --release -p proto --test tape_golden`
//! and document the change in FORMAT.md.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use std::path::PathBuf;

use proto::abs::{AbsMap, Geometry, MapExtent, TrackAddr, VolumeRef};
use proto::domain::{Level, Uuid};
use proto::tape::block::MemTape;
use proto::tape::directory::FileKind;
use proto::tape::inspect::{inspect, verify, ScanStop, ScannedKind};
use proto::tape::management::{Management, Placement, PlacementCounts, VolumeEpoch};
use proto::tape::metadata::{AbsKind, AbsMetadata};
use proto::tape::segment::{SegmentHeader, SegmentWriter, TrackRecord};
use proto::tape::volume::{TapeParams, TapeReader, TapeWriter};

const CREATED: u64 = 1_704_067_200; // 2024-01-01 00:00:00 UTC
const FINISHED: u64 = CREATED + 3600;
const BLOCK: usize = 512;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/small.tap")
}

/// The first golden image: CATALOG version 1, no management record.
fn golden_v1_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/small_v1.tap")
}

/// The management record of ABS 100 with its two segments' placements.
fn record_of_alpha(placements: Vec<Placement>) -> Management {
    Management {
        cluster_id: Uuid::from_random_bytes([0x11; 16]),
        abs_uuid: Uuid::from_random_bytes([0x22; 16]),
        client: "host-a".into(),
        primary_node: "pn1".into(),
        level: Level::Full,
        base_uuid: Uuid::NIL,
        chain: vec![100],
        point_in_time_ms: CREATED * 1000 - 500,
        epochs: vec![VolumeEpoch {
            volume: 0,
            map_id: 0xABCD,
            epoch: 1,
        }],
        pool: "golden".into(),
        copy_number: 0,
        label: "golden alpha".into(),
        created_ms: CREATED * 1000,
        placements,
        written_ms: Some(CREATED * 1000 + 1),
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

struct Golden {
    image: Vec<u8>,
    /// (tape file, ABS, seq, tracks)
    segments: Vec<(u32, u64, u32, Vec<TrackRecord>)>,
    metadata: Vec<(u32, AbsMetadata)>,
}

fn map(volume: &str, tracks: u64) -> AbsMap {
    AbsMap {
        volumes: vec![VolumeRef {
            name: volume.into(),
            geometry: Geometry {
                block_size: 512,
                track_size: 1024,
            },
            size: 64 * 1024,
        }],
        extents: vec![MapExtent {
            logical_offset: 0,
            length: tracks * 1024,
            volume: 0,
            volume_offset: 4096,
        }],
        object_size: tracks * 1024,
    }
}

fn build() -> Golden {
    let params = TapeParams {
        label: "GOLD01".into(),
        pool: "golden".into(),
        media_set: 0x0123_4567_89AB_CDEF,
        sequence: 1,
        block_size: BLOCK,
        owner: "FORMAT TEST".into(),
    };
    let mut w = TapeWriter::create_at(MemTape::memory(), params, CREATED).unwrap();
    let mut segments = Vec::new();
    let mut alpha = Vec::new();
    // ABS 100 (alpha, full) and ABS 200 (beta, differential of 150), segments interleaved.
    // (ABS, seq, tracks as (volume, track, length))
    type Plan<'a> = (u64, u32, &'a [(u16, u64, usize)]);
    let plan: [Plan; 4] = [
        (100, 0, &[(0, 4, 1024), (0, 5, 1024), (0, 6, 300)]),
        (200, 0, &[(0, 9, 1024)]),
        (100, 1, &[(0, 7, 1024), (0, 8, 0)]),
        (200, 1, &[(0, 10, 700), (0, 11, 1024)]),
    ];
    for (abs, seq, tracks) in plan {
        let header = SegmentHeader {
            abs_id: abs,
            seq,
            channel_id: abs / 100,
            created_unix: CREATED + 60 * u64::from(seq),
        };
        let mut sw = SegmentWriter::new(Vec::new(), header).unwrap();
        let mut recs = Vec::new();
        for &(volume, track, len) in tracks {
            let addr = TrackAddr { volume, track };
            let data = pattern(abs + track, len);
            sw.append_track(addr, &data).unwrap();
            recs.push(TrackRecord { addr, data });
        }
        let (bytes, summary) = sw.finish().unwrap();
        let name = if abs == 100 { "/data/alpha.db" } else { "/data/beta.log" };
        let e = w.write_segment(&bytes, name).unwrap();
        if abs == 100 {
            alpha.push(Placement {
                seq,
                tape_label: "GOLD01".into(),
                tape_file: e.file_number,
                bytes: e.bytes,
                crc32c: summary.crc32c,
                counts: Some(PlacementCounts {
                    data_bytes: summary.data_bytes,
                    track_count: summary.track_count,
                }),
            });
        }
        segments.push((e.file_number, abs, seq, recs));
    }
    let metas = [
        AbsMetadata {
            abs_id: 100,
            object_name: "/data/alpha.db".into(),
            kind: AbsKind::Full,
            base_abs_id: 0,
            created_unix: CREATED,
            segment_count: 2,
            track_count: 5,
            data_bytes: 3372,
            map: map("vol-alpha", 5),
            merged_from_abs_id: 0,
            changed: Vec::new(),
            management: Some(record_of_alpha(alpha)),
        },
        AbsMetadata {
            abs_id: 200,
            object_name: "/data/beta.log".into(),
            kind: AbsKind::Differential,
            base_abs_id: 150,
            created_unix: CREATED,
            segment_count: 2,
            track_count: 3,
            data_bytes: 2748,
            map: map("vol-beta", 3),
            merged_from_abs_id: 0,
            changed: Vec::new(),
            management: None,
        },
    ];
    let mut metadata = Vec::new();
    for m in metas {
        let e = w.write_abs_metadata(&m).unwrap();
        metadata.push((e.file_number, m));
    }
    let image = w.finish_at(false, FINISHED).unwrap().into_bytes();
    Golden {
        image,
        segments,
        metadata,
    }
}

/// The checked-in golden image; with UPDATE_GOLDEN=1 it is first rewritten
/// from [`build`] (once per test process, so the tests do not race).
fn golden_bytes() -> &'static [u8] {
    static GOLDEN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    GOLDEN.get_or_init(|| {
        let path = golden_path();
        if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, build().image).unwrap();
        }
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}; generate it with UPDATE_GOLDEN=1 cargo test --release -p proto --test tape_golden",
                path.display()
            )
        })
    })
}

#[test]
fn the_golden_image_is_reproduced_byte_for_byte() {
    let g = build();
    let golden = golden_bytes();
    if golden != g.image {
        let first = golden
            .iter()
            .zip(&g.image)
            .position(|(a, b)| a != b)
            .unwrap_or(golden.len().min(g.image.len()));
        panic!(
            "the tape format changed: the built image ({} bytes) differs from {} ({} bytes) first at byte {first}. \
             If this is intended, bump the versions, update FORMAT.md and regenerate with UPDATE_GOLDEN=1.",
            g.image.len(),
            golden_path().display(),
            golden.len()
        );
    }
}

#[test]
fn the_checked_in_golden_image_reads_back() {
    let golden = golden_bytes().to_vec();
    let expected = build();
    assert_eq!(&golden[..4], &80u32.to_le_bytes());
    reads_back(golden.clone(), &expected);
    // The CATALOG is version 2 and carries ABS 100's record (not ABS 200's: none).
    let mut r = TapeReader::open(MemTape::from_bytes(golden)).unwrap();
    let cat = r.read_catalog().unwrap().unwrap();
    assert_eq!(cat.record_of(100), expected.metadata[0].1.management.as_ref());
    assert_eq!(cat.record_of(100).unwrap().placements.len(), 2);
    assert_eq!(cat.record_of(200), None);
}

/// The first image (CATALOG version 1, metadata without records) still
/// reads: the same tape files, no records.
#[test]
fn the_version_1_golden_image_still_reads() {
    let golden = std::fs::read(golden_v1_path()).expect("golden/small_v1.tap");
    let mut expected = build();
    for (_, m) in &mut expected.metadata {
        m.management = None;
    }
    reads_back(golden.clone(), &expected);
    let catalog_at = golden
        .windows(8)
        .position(|w| w == b"DMCCAT01")
        .expect("a CATALOG envelope");
    assert_eq!(
        &golden[catalog_at + 8..catalog_at + 10],
        &1u16.to_le_bytes(),
        "CATALOG version 1"
    );
    let mut r = TapeReader::open(MemTape::from_bytes(golden)).unwrap();
    let cat = r.read_catalog().unwrap().unwrap();
    assert!(cat.entries.iter().all(|a| a.record.is_none()));
}

/// Check an image holds what `expected` says, file by file.
fn reads_back(golden: Vec<u8>, expected: &Golden) {
    // A few bytes a human can check against FORMAT.md.
    assert_eq!(&golden[0..4], &80u32.to_le_bytes(), "SIMH length of VOL1");
    let vol1 = [
        "VOL1",           // 1-4
        "GOLD01",         // 5-10 volume identifier
        " ",              // 11 accessibility
        &" ".repeat(13),  // 12-24
        "DMCLUSTER    ",  // 25-37 implementation identifier
        "FORMAT TEST   ", // 38-51 owner identifier
        &" ".repeat(28),  // 52-79
        "4",              // 80 label standard version
    ]
    .concat();
    assert_eq!(&golden[4..84], vol1.as_bytes());
    assert_eq!(&golden[84..88], &80u32.to_le_bytes(), "SIMH trailing length");
    assert_eq!(&golden[golden.len() - 8..], &[0u8; 8], "two tape marks at the end");

    let mut r = TapeReader::open(MemTape::from_bytes(golden.clone())).unwrap();
    assert_eq!(r.labels().vol1.volume_id, "GOLD01");
    assert_eq!(r.labels().hdr1.file_id, "M0123456789ABCDEF");
    let created = r.labels().hdr1.created.unwrap();
    assert_eq!((created.year, created.day_of_year), (2024, 1));
    let h = r.node_header().clone();
    assert_eq!(
        (h.label.as_str(), h.pool.as_str(), h.media_set),
        ("GOLD01", "golden", 0x0123_4567_89AB_CDEF)
    );
    assert_eq!((h.block_size, h.created_unix, h.sequence), (BLOCK as u32, CREATED, 1));

    for (file, abs, seq, tracks) in &expected.segments {
        let s = r.read_segment(*file, 1 << 20).unwrap();
        assert_eq!((s.summary.header.abs_id, s.summary.header.seq), (*abs, *seq));
        assert_eq!(&s.tracks, tracks);
    }
    assert_eq!(expected.segments.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3, 4, 5]);
    for (file, m) in &expected.metadata {
        assert_eq!(&r.read_abs_metadata(*file).unwrap(), m);
    }
    let cat = r.read_catalog().unwrap().unwrap();
    assert_eq!(cat.entries.len(), 2);
    assert_eq!(
        (cat.entries[0].abs_id, cat.entries[0].object_name.as_str()),
        (100, "/data/alpha.db")
    );
    assert_eq!(
        (cat.entries[1].abs_id, cat.entries[1].object_name.as_str()),
        (200, "/data/beta.log")
    );
    assert_eq!(cat.entries[0].metadata_file, Some(6));
    assert_eq!(cat.entries[1].metadata_file, Some(7));
    assert_eq!(
        cat.entries[0]
            .segments
            .iter()
            .map(|e| e.file_number)
            .collect::<Vec<_>>(),
        [2, 4]
    );
    assert!(cat
        .entries
        .iter()
        .flat_map(|a| &a.segments)
        .all(|e| e.kind == FileKind::Segment));
    let trailer = r.read_node_trailer().unwrap().unwrap();
    assert_eq!(
        (trailer.file_count, trailer.finished_unix, trailer.directory_file),
        (6, FINISHED, 8)
    );

    let report = inspect(MemTape::from_bytes(golden.clone())).unwrap();
    let kinds: Vec<_> = report.files.iter().map(|f| f.kind).collect();
    use ScannedKind::*;
    assert_eq!(
        kinds,
        [
            VolumeLabels,
            NodeHeader,
            Segment,
            Segment,
            Segment,
            Segment,
            AbsMetadata,
            AbsMetadata,
            Directory,
            NodeTrailer,
            Catalog,
            EndLabels
        ]
    );
    assert_eq!(report.stop, ScanStop::LogicalEnd { empty_file: 12 });
    let v = verify(MemTape::from_bytes(golden)).unwrap();
    assert!(v.is_ok(), "{v}");
}

/// ABS-METADATA version 2 (a differential's changed ranges, a synthetic
/// full's merged-from) pinned byte for byte in `golden/metadata_v2.bin`
/// (rewritten with UPDATE_GOLDEN=1).
#[test]
fn metadata_version_2_is_pinned() {
    use proto::abs::{AbsMap, Geometry, LogicalRange, MapExtent, VolumeRef};
    let meta = AbsMetadata {
        abs_id: 12,
        object_name: "/db/ledger".into(),
        kind: AbsKind::Differential,
        base_abs_id: 9,
        merged_from_abs_id: 0,
        changed: vec![
            LogicalRange {
                offset: 0,
                length: 4096,
            },
            LogicalRange {
                offset: 65536,
                length: 8192,
            },
        ],
        created_unix: 1_800_000_000,
        segment_count: 1,
        track_count: 2,
        data_bytes: 131_072,
        map: AbsMap {
            volumes: vec![VolumeRef {
                name: "vol0".into(),
                geometry: Geometry {
                    block_size: 4096,
                    track_size: 65536,
                },
                size: 1 << 20,
            }],
            extents: vec![MapExtent {
                logical_offset: 0,
                length: 131_072,
                volume: 0,
                volume_offset: 65536,
            }],
            object_size: 131_072,
        },
        management: None,
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metadata_v2.bin");
    let bytes = meta.encode();
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &bytes).unwrap();
    }
    let golden = std::fs::read(&path).expect("golden/metadata_v2.bin (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(&golden[..10], b"DMCMET01\x02\x00", "magic and version 2");
    assert_eq!(bytes, golden, "the version-2 metadata encoding changed");
    assert_eq!(AbsMetadata::decode(&golden).unwrap(), meta);
}

/// The ABS-METADATA version 3 golden: its placement with `counts` or
/// without (management record version 2 or 1).
fn metadata_v3(counts: Option<proto::tape::management::PlacementCounts>, written_ms: Option<u64>) -> AbsMetadata {
    use proto::abs::{AbsMap, Geometry, LogicalRange, MapExtent, VolumeRef};
    use proto::domain::{Level, Uuid};
    use proto::tape::management::{Management, Placement, VolumeEpoch};
    AbsMetadata {
        abs_id: 12,
        object_name: "/db/ledger".into(),
        kind: AbsKind::Differential,
        base_abs_id: 9,
        merged_from_abs_id: 0,
        changed: vec![LogicalRange {
            offset: 0,
            length: 4096,
        }],
        created_unix: 1_800_000_000,
        segment_count: 1,
        track_count: 1,
        data_bytes: 65536,
        map: AbsMap {
            volumes: vec![VolumeRef {
                name: "vol0".into(),
                geometry: Geometry {
                    block_size: 4096,
                    track_size: 65536,
                },
                size: 1 << 20,
            }],
            extents: vec![MapExtent {
                logical_offset: 0,
                length: 65536,
                volume: 0,
                volume_offset: 0,
            }],
            object_size: 65536,
        },
        management: Some(Management {
            cluster_id: "6f1c2a3b-4d5e-4f60-8172-839495a6b7c8".parse::<Uuid>().unwrap(),
            abs_uuid: "0a0b0c0d-0e0f-4011-9213-141516171819".parse::<Uuid>().unwrap(),
            client: "client".into(),
            primary_node: "pn1".into(),
            level: Level::Incremental,
            base_uuid: "1a1b1c1d-1e1f-4021-a223-242526272829".parse::<Uuid>().unwrap(),
            chain: vec![9, 12],
            point_in_time_ms: 1_800_000_000_250,
            epochs: vec![VolumeEpoch {
                volume: 0,
                map_id: 77,
                epoch: 3,
            }],
            pool: "onsite".into(),
            copy_number: 0,
            label: "ledger nightly".into(),
            created_ms: 1_800_000_000_500,
            placements: vec![Placement {
                seq: 0,
                tape_label: "DM0003".into(),
                tape_file: 4,
                bytes: 66_000,
                crc32c: 0xfeed_f00d,
                counts,
            }],
            written_ms,
        }),
    }
}

/// `meta` pinned byte for byte in `golden/NAME` (rewritten with
/// UPDATE_GOLDEN=1), its management record of version `record`.
fn pin_metadata_v3(meta: &AbsMetadata, name: &str, record: u32) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let bytes = meta.encode();
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &bytes).unwrap();
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("golden/{name} (UPDATE_GOLDEN=1 writes it): {e}"));
    assert_eq!(&golden[..10], b"DMCMET01\x03\x00", "magic and version 3");
    assert_eq!(bytes, golden, "the version-3 metadata encoding changed ({name})");
    assert_eq!(&AbsMetadata::decode(&golden).unwrap(), meta);
    let m = meta.management.as_ref().unwrap();
    assert_eq!(m.version(), record);
    let at = golden.windows(4).position(|w| w == record.to_le_bytes()).is_some();
    assert!(at, "record version {record} present");
}

/// ABS-METADATA version 3 (the management record of seed 002) with a
/// version-1 record pinned in `golden/metadata_v3.bin`; the version-1 and
/// version-2 goldens above still read.
#[test]
fn metadata_version_3_is_pinned() {
    pin_metadata_v3(&metadata_v3(None, None), "metadata_v3.bin", 1);
}

/// The same with a version-2 management record (placements with their
/// data bytes and track counts), pinned in `golden/metadata_v3_mgmt_v2.bin`.
#[test]
fn metadata_version_3_with_record_version_2_is_pinned() {
    use proto::tape::management::PlacementCounts;
    let counts = PlacementCounts {
        data_bytes: 65_536,
        track_count: 1,
    };
    pin_metadata_v3(&metadata_v3(Some(counts), None), "metadata_v3_mgmt_v2.bin", 2);
}

/// The same with a version-3 management record (and the time it was
/// written, which orders an ABS's records after a move), pinned in
/// `golden/metadata_v3_mgmt_v3.bin`.
#[test]
fn metadata_version_3_with_record_version_3_is_pinned() {
    use proto::tape::management::PlacementCounts;
    let counts = PlacementCounts {
        data_bytes: 65_536,
        track_count: 1,
    };
    let meta = metadata_v3(Some(counts), Some(1_800_000_900_000));
    pin_metadata_v3(&meta, "metadata_v3_mgmt_v3.bin", 3);
}
