//! Helpers shared by the tape integration tests.
#![allow(dead_code)]
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use proto::abs::{AbsMap, Geometry, MapExtent, TrackAddr, VolumeRef};
use proto::tape::block::{Block, BlockDevice, MemTape};
use proto::tape::directory::DirectoryEntry;
use proto::tape::metadata::{AbsKind, AbsMetadata};
use proto::tape::segment::{SegmentHeader, SegmentWriter, TrackRecord};
use proto::tape::volume::{TapeParams, TapeWriter};

pub const T0: u64 = 1_700_000_000;

pub fn params(label: &str, block_size: usize) -> TapeParams {
    TapeParams {
        label: label.into(),
        pool: "test-pool".into(),
        media_set: 0x5EED,
        sequence: 1,
        block_size,
        owner: "DMC TESTS".into(),
    }
}

/// Deterministic track contents.
pub fn track_data(abs: u64, seq: u32, i: usize, len: usize) -> Vec<u8> {
    let mut x = abs.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(seq) << 32) ^ i as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A segment with `n` tracks of `len` bytes (track numbers from `seq * 100`).
pub fn segment(abs: u64, seq: u32, n: usize, len: usize) -> (Vec<u8>, Vec<TrackRecord>) {
    let header = SegmentHeader {
        abs_id: abs,
        seq,
        channel_id: abs * 10,
        created_unix: T0 + u64::from(seq),
    };
    let mut w = SegmentWriter::new(Vec::new(), header).unwrap();
    let mut tracks = Vec::new();
    for i in 0..n {
        let addr = TrackAddr {
            volume: (i % 2) as u16,
            track: u64::from(seq) * 100 + i as u64,
        };
        let data = track_data(abs, seq, i, len);
        w.append_track(addr, &data).unwrap();
        tracks.push(TrackRecord { addr, data });
    }
    let (bytes, _) = w.finish().unwrap();
    (bytes, tracks)
}

/// ABS metadata with a hand-built map (no `abs` methods called).
pub fn metadata(abs: u64, name: &str, segments: u32, tracks: u64) -> AbsMetadata {
    AbsMetadata {
        abs_id: abs,
        object_name: name.into(),
        kind: if abs & 1 == 0 {
            AbsKind::Full
        } else {
            AbsKind::Differential
        },
        base_abs_id: if abs & 1 == 0 { 0 } else { abs - 1 },
        created_unix: T0 + abs,
        segment_count: segments,
        track_count: tracks,
        data_bytes: tracks * 700,
        map: AbsMap {
            volumes: vec![
                VolumeRef {
                    name: "vol0".into(),
                    geometry: Geometry {
                        block_size: 512,
                        track_size: 4096,
                    },
                    size: 1 << 20,
                },
                VolumeRef {
                    name: "vol1".into(),
                    geometry: Geometry {
                        block_size: 512,
                        track_size: 4096,
                    },
                    size: 1 << 20,
                },
            ],
            extents: vec![
                MapExtent {
                    logical_offset: 0,
                    length: 4096,
                    volume: 0,
                    volume_offset: 8192,
                },
                MapExtent {
                    logical_offset: 4096,
                    length: 2048,
                    volume: 1,
                    volume_offset: 0,
                },
            ],
            object_size: 6144,
        },
        merged_from_abs_id: 0,
        changed: Vec::new(),
        management: None,
    }
}

/// What a test tape holds, to check reads against.
pub struct Written {
    pub entries: Vec<DirectoryEntry>,
    /// (file number, tracks) of each segment.
    pub segments: Vec<(u32, Vec<TrackRecord>)>,
    /// (file number, metadata) of each metadata file.
    pub metadata: Vec<(u32, AbsMetadata)>,
}

/// Write `count` interleaved segments of ABS 1 and 2 (and their metadata
/// when `with_metadata`) to an open writer.
pub fn write_interleaved<D: BlockDevice>(
    w: &mut TapeWriter<D>,
    count: u32,
    tracks: usize,
    len: usize,
    with_metadata: bool,
) -> Written {
    let mut out = Written {
        entries: Vec::new(),
        segments: Vec::new(),
        metadata: Vec::new(),
    };
    for seq in 0..count {
        for abs in [1u64, 2] {
            let (bytes, t) = segment(abs, seq, tracks, len);
            let e = w.write_segment(&bytes, &format!("/obj/{abs}")).unwrap();
            out.segments.push((e.file_number, t));
            out.entries.push(e);
        }
    }
    if with_metadata {
        for abs in [1u64, 2] {
            let m = metadata(abs, &format!("/obj/{abs}"), count, (count as usize * tracks) as u64);
            let e = w.write_abs_metadata(&m).unwrap();
            out.metadata.push((e.file_number, m));
            out.entries.push(e);
        }
    }
    out
}

/// A finished in-memory tape.
pub fn finished_tape(label: &str, block_size: usize, count: u32) -> (Vec<u8>, Written) {
    let mut w = TapeWriter::create_at(MemTape::memory(), params(label, block_size), T0).unwrap();
    let written = write_interleaved(&mut w, count, 3, 700, true);
    let dev = w.finish_at(false, T0 + 3600).unwrap();
    (dev.into_bytes(), written)
}

/// The image byte ranges of the data of every record of tape file `file`
/// (parsing the SIMH container by hand, independently of the library).
pub fn record_data_ranges(image: &[u8], file: u32) -> Vec<std::ops::Range<usize>> {
    let mut pos = 0usize;
    let mut f = 0u32;
    let mut out = Vec::new();
    while pos + 4 <= image.len() {
        let n = u32::from_le_bytes(image[pos..pos + 4].try_into().unwrap()) as usize;
        if n == 0 {
            f += 1;
            pos += 4;
            if f > file {
                break;
            }
            continue;
        }
        if f == file {
            out.push(pos + 4..pos + 4 + n);
        }
        pos += 8 + n + (n & 1);
    }
    out
}

/// Image offset where tape file `file` starts.
pub fn file_start(image: &[u8], file: u32) -> usize {
    let mut t = MemTape::from_bytes(image.to_vec());
    t.locate_file(file).unwrap();
    t.image_offset() as usize
}

/// Count records and tape files of an image with the block layer.
pub fn count_files(image: &[u8]) -> Vec<u64> {
    let mut t = MemTape::from_bytes(image.to_vec());
    let mut files = vec![0u64];
    loop {
        match t.skip_block().unwrap() {
            Block::Record(_) => *files.last_mut().unwrap() += 1,
            Block::FileMark => files.push(0),
            Block::EndOfData => break,
        }
    }
    files
}

/// A management record of ABS `abs` (chain: it alone) with `placements`.
pub fn record(abs: u64, placements: Vec<proto::tape::management::Placement>) -> proto::tape::management::Management {
    use proto::domain::{Level, Uuid};
    proto::tape::management::Management {
        cluster_id: Uuid::from_random_bytes([0x42; 16]),
        abs_uuid: Uuid::from_random_bytes([abs as u8; 16]),
        client: "host".into(),
        primary_node: "pn1".into(),
        level: Level::Full,
        base_uuid: Uuid::NIL,
        chain: vec![abs],
        point_in_time_ms: T0 * 1000,
        epochs: Vec::new(),
        pool: "test-pool".into(),
        copy_number: 0,
        label: format!("ABS {abs}"),
        created_ms: T0 * 1000 + abs,
        placements,
        written_ms: Some(T0 * 1000 + 10),
    }
}

/// Where a segment lies, as a record places it.
pub fn placement(seq: u32, tape: &str, file: u32) -> proto::tape::management::Placement {
    proto::tape::management::Placement {
        seq,
        tape_label: tape.into(),
        tape_file: file,
        bytes: 4096,
        crc32c: 0xC0FFEE,
        counts: Some(proto::tape::management::PlacementCounts {
            data_bytes: 3000,
            track_count: 2,
        }),
    }
}
