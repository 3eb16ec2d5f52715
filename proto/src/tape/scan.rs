//! One tape file, read from its start to its tape mark and identified:
//! [`scan_file`] says what kind of file it is (labels, NODE-HEADER, segment,
//! ABS metadata, DIRECTORY, ...), checks every record, magic, length and
//! checksum of it, and gives its decoded content and its directory entry.
//!
//! This is the lowest reader of whole tape files: [`super::inspect`] scans a
//! whole tape with it, [`super::skim`] falls back to it, and
//! [`super::volume`] rebuilds an unfinished tape's directory with both.

use super::block::{Block, BlockDevice};
use super::bytes::{show_bytes, ENVELOPE_OVERHEAD};
use super::directory::{
    Catalog, Directory, DirectoryEntry, FileKind, CATALOG_MAGIC, DIRECTORY_MAGIC, MAX_DIRECTORY_PAYLOAD,
};
use super::error::Location;
use super::file::FileStats;
use super::labels::{EndLabels, VolumeLabels, LABEL_LEN};
use super::metadata::{AbsKind, AbsMetadata, MAX_METADATA_PAYLOAD, METADATA_MAGIC};
use super::node::{NodeHeader, NodeTrailer, MAX_NODE_PAYLOAD, NODE_HEADER_MAGIC, NODE_TRAILER_MAGIC};
use super::segment::{SegmentReader, SegmentSummary, SEGMENT_MAGIC};
use super::{TapeError, MAX_BLOCK_SIZE};

/// What kind of tape file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannedKind {
    /// No records: a tape mark right away (the logical end), or no data.
    Empty,
    VolumeLabels,
    EndLabels,
    NodeHeader,
    NodeTrailer,
    Segment,
    AbsMetadata,
    Directory,
    Catalog,
    Unknown,
}

impl ScannedKind {
    pub fn name(self) -> &'static str {
        match self {
            ScannedKind::Empty => "empty",
            ScannedKind::VolumeLabels => "labels",
            ScannedKind::EndLabels => "end-labels",
            ScannedKind::NodeHeader => "node-header",
            ScannedKind::NodeTrailer => "node-trailer",
            ScannedKind::Segment => "segment",
            ScannedKind::AbsMetadata => "abs-metadata",
            ScannedKind::Directory => "directory",
            ScannedKind::Catalog => "catalog",
            ScannedKind::Unknown => "unknown",
        }
    }
}

/// ABS metadata without its map (what reports need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSummary {
    pub abs_id: u64,
    pub object_name: String,
    pub kind: AbsKind,
    pub base_abs_id: u64,
    /// A synthetic full's chain tip (0: none).
    pub merged_from_abs_id: u64,
    /// A differential's changed logical bytes (sum of its changed ranges).
    pub changed_bytes: u64,
    pub segment_count: u32,
    pub track_count: u64,
    pub data_bytes: u64,
    pub object_size: u64,
    pub extents: usize,
    /// Its management record (ABS-METADATA version 3), if any.
    pub management: Option<crate::tape::management::Management>,
}

/// The decoded content of a tape file whose checks all passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    VolumeLabels(VolumeLabels),
    EndLabels(EndLabels),
    NodeHeader(NodeHeader),
    NodeTrailer(NodeTrailer),
    Segment(SegmentSummary),
    AbsMetadata(MetadataSummary),
    Directory(Directory),
    Catalog(Catalog),
}

/// How reading a tape file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEnd {
    /// Its tape mark was read.
    TapeMark,
    /// The data ended (at a record boundary) before a tape mark.
    EndOfData,
    /// The image ends inside a record.
    Torn,
    /// The container is corrupt here; nothing further can be read.
    Broken,
}

/// One tape file as scanned.
#[derive(Debug)]
pub struct ScannedFile {
    pub file: u32,
    pub stats: FileStats,
    pub kind: ScannedKind,
    /// Present when every check of the file passed.
    pub content: Option<FileContent>,
    /// ABS id and sequence of a segment whose header could be read.
    pub segment: Option<(u64, u32)>,
    /// The first thing wrong with the file.
    pub problem: Option<TapeError>,
    pub end: FileEnd,
}

impl ScannedFile {
    /// The directory entry of a data file that passed its checks.
    pub fn directory_entry(&self) -> Option<DirectoryEntry> {
        let (kind, abs_id, seq) = match &self.content {
            Some(FileContent::Segment(s)) => (FileKind::Segment, s.header.abs_id, s.header.seq),
            Some(FileContent::AbsMetadata(m)) => (FileKind::AbsMetadata, m.abs_id, 0),
            _ => return None,
        };
        Some(DirectoryEntry {
            file_number: self.file,
            kind,
            abs_id,
            seq,
            bytes: self.stats.bytes,
            crc32c: self.stats.crc32c,
            records: self.stats.records,
        })
    }
}

enum Mode {
    Start,
    Labels(Vec<Vec<u8>>),
    Segment(SegmentReader),
    Buffer { magic: [u8; 8], buf: Vec<u8>, limit: usize },
    Skip,
}

fn magic_of(rec: &[u8]) -> [u8; 8] {
    let mut m = [0u8; 8];
    if let Some(s) = rec.get(..8) {
        m.copy_from_slice(s);
    }
    m
}

/// Scan one tape file from the device's current position (the start of a
/// tape file) up to and including its tape mark. `block_size`: the data
/// record size (None for tape file 0 or when unknown; then record sizes are
/// not checked). Never fails: what went wrong is in [`ScannedFile::problem`].
pub fn scan_file<D: BlockDevice + ?Sized>(dev: &mut D, label: Option<&str>, block_size: Option<usize>) -> ScannedFile {
    let file = dev.position().file;
    let locate = |e: TapeError, record: u64| {
        let mut e = e.within(label, Some(file), block_size);
        if let Some(l) = e.location_mut() {
            if l.record.is_none() {
                l.record = Some(record);
            }
        }
        e
    };
    let mut stats = FileStats::default();
    let mut problem: Option<TapeError> = None;
    let mut mode = Mode::Start;
    let mut kind = ScannedKind::Empty;
    let mut segment = None;
    let mut buf = Vec::new();
    let mut short_record: Option<(u64, usize)> = None;
    let end;
    loop {
        let pos = dev.position();
        let res = if matches!(mode, Mode::Skip) {
            dev.skip_block()
        } else {
            dev.read_block(&mut buf, MAX_BLOCK_SIZE)
        };
        let n = match res {
            Ok(Block::Record(n)) => n,
            Ok(Block::FileMark) => {
                end = FileEnd::TapeMark;
                break;
            }
            Ok(Block::EndOfData) => {
                end = FileEnd::EndOfData;
                break;
            }
            Err(e) => {
                end = if e.is_truncated() {
                    FileEnd::Torn
                } else {
                    FileEnd::Broken
                };
                problem = Some(locate(e, pos.record));
                break;
            }
        };
        stats.records += 1;
        stats.bytes += n as u64;
        let skipping = matches!(mode, Mode::Skip);
        if !skipping {
            stats.crc32c = crc32c::crc32c_append(stats.crc32c, &buf);
        }
        match &mut mode {
            Mode::Start => {
                let magic = magic_of(&buf);
                let limit = |max_payload: usize| max_payload + ENVELOPE_OVERHEAD;
                mode = if n == LABEL_LEN
                    && (buf.starts_with(b"VOL1") || buf.starts_with(b"EOF1") || buf.starts_with(b"EOV1"))
                {
                    kind = if buf.starts_with(b"VOL1") {
                        ScannedKind::VolumeLabels
                    } else {
                        ScannedKind::EndLabels
                    };
                    Mode::Labels(vec![buf.clone()])
                } else if &magic == SEGMENT_MAGIC {
                    kind = ScannedKind::Segment;
                    let mut r = SegmentReader::new(false);
                    match r.feed(&buf) {
                        Ok(()) => {
                            segment = r.header().map(|h| (h.abs_id, h.seq));
                            Mode::Segment(r)
                        }
                        Err(e) => {
                            problem = problem.or(Some(locate(e, pos.record)));
                            Mode::Skip
                        }
                    }
                } else {
                    let known = [
                        (NODE_HEADER_MAGIC, ScannedKind::NodeHeader, limit(MAX_NODE_PAYLOAD)),
                        (NODE_TRAILER_MAGIC, ScannedKind::NodeTrailer, limit(MAX_NODE_PAYLOAD)),
                        (METADATA_MAGIC, ScannedKind::AbsMetadata, limit(MAX_METADATA_PAYLOAD)),
                        (DIRECTORY_MAGIC, ScannedKind::Directory, limit(MAX_DIRECTORY_PAYLOAD)),
                        (CATALOG_MAGIC, ScannedKind::Catalog, limit(MAX_DIRECTORY_PAYLOAD)),
                    ];
                    match known.iter().find(|(m, _, _)| **m == magic) {
                        Some((_, k, lim)) => {
                            kind = *k;
                            Mode::Buffer {
                                magic,
                                buf: buf.clone(),
                                limit: *lim,
                            }
                        }
                        None => {
                            kind = ScannedKind::Unknown;
                            problem = problem.or(Some(TapeError::corrupt(
                                Location {
                                    label: label.map(str::to_owned),
                                    ..Location::record(file, 0)
                                },
                                "tape file",
                                "labels or a structure of this system (magic DMC...)",
                                show_bytes(&buf),
                            )));
                            Mode::Skip
                        }
                    }
                };
            }
            Mode::Labels(v) => {
                if v.len() >= 4 {
                    problem = problem.or(Some(TapeError::corrupt(
                        Location {
                            label: label.map(str::to_owned),
                            ..Location::record(file, pos.record)
                        },
                        "label group",
                        "at most 3 label records",
                        "more",
                    )));
                    mode = Mode::Skip;
                } else {
                    v.push(buf.clone());
                }
            }
            Mode::Segment(r) => {
                if let Err(e) = r.feed(&buf) {
                    problem = problem.or(Some(locate(e, pos.record)));
                    mode = Mode::Skip;
                }
            }
            Mode::Buffer { buf: b, limit, .. } => {
                if b.len() + n > *limit {
                    problem = problem.or(Some(TapeError::too_large(
                        Location {
                            label: label.map(str::to_owned),
                            ..Location::record(file, pos.record)
                        },
                        format!("{} tape file", kind.name()),
                        *limit as u64,
                        (b.len() + n) as u64,
                    )));
                    mode = Mode::Skip;
                } else {
                    b.extend_from_slice(&buf);
                }
            }
            Mode::Skip => {}
        }
        // Data tape files: every record a full block except the last (labels are 80 bytes).
        let labels = matches!(kind, ScannedKind::VolumeLabels | ScannedKind::EndLabels);
        if let (Some(bs), false) = (block_size, labels) {
            let bad = if let Some((r, len)) = short_record {
                Some(format!(
                    "record {r} of {len} bytes is short but not the last record of the file"
                ))
            } else if n > bs {
                Some(format!(
                    "record {} of {n} bytes is longer than the block size",
                    pos.record
                ))
            } else {
                None
            };
            if let (Some(found), None) = (bad, &problem) {
                problem = Some(TapeError::corrupt(
                    Location {
                        label: label.map(str::to_owned),
                        ..Location::record(file, pos.record)
                    },
                    "tape file records",
                    format!("records of {bs} bytes (only the last one shorter)"),
                    found,
                ));
            }
            if n < bs && short_record.is_none() {
                short_record = Some((pos.record, n));
            }
        }
    }

    if end != FileEnd::TapeMark {
        if stats.records > 0 && end == FileEnd::EndOfData {
            problem = Some(TapeError::truncated(
                Location {
                    label: label.map(str::to_owned),
                    ..Location::record(file, stats.records)
                },
                format!("the tape mark ending tape file {file}"),
                "the end of data",
            ));
        }
        return ScannedFile {
            file,
            stats,
            kind,
            content: None,
            segment,
            problem,
            end,
        };
    }
    let mut content = None;
    if problem.is_none() {
        let decoded = match mode {
            Mode::Start | Mode::Skip => Ok(None),
            Mode::Labels(v) if kind == ScannedKind::VolumeLabels => {
                VolumeLabels::parse(&v).map(|l| Some(FileContent::VolumeLabels(l)))
            }
            Mode::Labels(v) => EndLabels::parse(&v, file).map(|l| Some(FileContent::EndLabels(l))),
            Mode::Segment(r) => r.finish().map(|s| Some(FileContent::Segment(s.summary))),
            Mode::Buffer { magic, buf, .. } => decode_buffer(&magic, &buf),
        };
        match decoded {
            Ok(c) => content = c,
            Err(e) => problem = Some(locate(e, stats.records.saturating_sub(1))),
        }
    }
    ScannedFile {
        file,
        stats,
        kind,
        content,
        segment,
        problem,
        end,
    }
}

fn decode_buffer(magic: &[u8; 8], buf: &[u8]) -> Result<Option<FileContent>, TapeError> {
    Ok(Some(if magic == NODE_HEADER_MAGIC {
        FileContent::NodeHeader(NodeHeader::decode(buf)?)
    } else if magic == NODE_TRAILER_MAGIC {
        FileContent::NodeTrailer(NodeTrailer::decode(buf)?)
    } else if magic == METADATA_MAGIC {
        let m = AbsMetadata::decode(buf)?;
        FileContent::AbsMetadata(MetadataSummary {
            abs_id: m.abs_id,
            object_name: m.object_name,
            kind: m.kind,
            base_abs_id: m.base_abs_id,
            merged_from_abs_id: m.merged_from_abs_id,
            changed_bytes: m.changed.iter().map(|r| r.length).sum(),
            segment_count: m.segment_count,
            track_count: m.track_count,
            data_bytes: m.data_bytes,
            object_size: m.map.object_size,
            extents: m.map.extents.len(),
            management: m.management,
        })
    } else if magic == DIRECTORY_MAGIC {
        FileContent::Directory(Directory::decode(buf)?)
    } else if magic == CATALOG_MAGIC {
        FileContent::Catalog(Catalog::decode(buf)?)
    } else {
        return Ok(None);
    }))
}
