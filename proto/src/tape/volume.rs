//! A labelled tape: the writer and reader that the back-end mover and the
//! `smapp tape` commands use.
//!
//! Tape files, numbered from 0 by the tape marks before them:
//! ```text
//! file 0      VOL1 HDR1 HDR2                 (ANSI labels, 80-byte records)
//! file 1      NODE-HEADER
//! file 2..    SEGMENT | ABS-METADATA         (one tape file each, interleaved)
//! file n      DIRECTORY
//! file n+1    NODE-TRAILER
//! file n+2    CATALOG
//! file n+3    EOF1 EOF2  (or EOV1 EOV2)      followed by a second tape mark
//! ```
//! Label records are 80 bytes; every other tape file is cut into records of
//! the tape's block size (the last one shorter).
//!
//! A reader with no database finds things like this: file 0 and file 1 say
//! what the tape is; the end of the tape is found by spacing over records
//! (no data read) to the two tape marks; the end labels are the file before
//! them, the CATALOG the one before that, then the NODE-TRAILER and the
//! DIRECTORY. A tape that was never finished has no end labels: its data
//! files are scanned (every segment and metadata file is self-describing).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::block::{Block, BlockDevice, Position};
use super::bytes::ENVELOPE_OVERHEAD;
use super::directory::{
    Catalog, Directory, DirectoryEntry, FileKind, ENTRY_BYTES, MAX_DIRECTORY_ENTRIES, MAX_DIRECTORY_PAYLOAD,
};
use super::error::Location;
use super::file::{read_file, write_file, FileReader, FileStats, FileWriter};
use super::labels::{EndLabels, VolumeLabels, LABEL_LEN};
use super::metadata::{AbsMetadata, MAX_METADATA_PAYLOAD, MAX_OBJECT_NAME};
use super::node::{check_params, NodeHeader, NodeTrailer, MAX_NODE_PAYLOAD};
use super::scan::{scan_file, FileContent, ScannedKind};
use super::segment::{SegmentHeader, SegmentReader, SegmentSummary, VerifiedSegment, SEGMENT_HEADER_LEN};
use super::skim::skim_file;
use super::{TapeError, FORMAT_VERSION, MAX_BLOCK_SIZE};

/// Bytes a segment copy reads from its source at a time (rounded to whole
/// records of the tape's block size).
const COPY_BUFFER: usize = 1 << 20;

/// Fill `buf` from `src` (short only at the end of `src`); returns the bytes read.
fn read_full<R: std::io::Read + ?Sized>(src: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// First tape file that holds data (segments, metadata).
pub const FIRST_DATA_FILE: u32 = 2;

/// What a new tape is labelled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeParams {
    /// Volume serial: up to 6 characters of A–Z, 0–9 (VOL1 field).
    pub label: String,
    pub pool: String,
    /// Identifies the media set (a backup's sequence of tapes).
    pub media_set: u64,
    /// Position of this tape in its media set, from 1.
    pub sequence: u32,
    /// Record size for data tape files.
    pub block_size: usize,
    /// Owner identifier for VOL1 (up to 14 characters).
    pub owner: String,
}

/// How a tape ends, found by spacing over records (no data read) and
/// reading the end labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeEnd {
    /// Finished: DIRECTORY at `directory_file`, then NODE-TRAILER, CATALOG,
    /// the end labels and the logical end.
    Finished { directory_file: u32, labels: EndLabels },
    /// Never finished: tape files before `next_file` are complete (ended by
    /// a tape mark); `next_file` is empty or, when `torn`, was cut short.
    Unfinished { next_file: u32, torn: bool },
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Check that the labels and the node header describe the same tape.
pub(crate) fn check_head(labels: &VolumeLabels, header: &NodeHeader) -> Result<(), TapeError> {
    let at = || Location {
        label: Some(header.label.clone()),
        file: Some(1),
        ..Location::default()
    };
    let mismatch = |field: &str, expected: String, found: String| {
        TapeError::corrupt(
            at(),
            format!("NODE-HEADER field {field}"),
            format!("{expected} (from the labels)"),
            found,
        )
    };
    if header.label != labels.vol1.volume_id {
        return Err(mismatch(
            "label",
            format!("{:?}", labels.vol1.volume_id),
            format!("{:?}", header.label),
        ));
    }
    if header.block_size != labels.hdr2.block_size {
        return Err(mismatch(
            "block_size",
            labels.hdr2.block_size.to_string(),
            header.block_size.to_string(),
        ));
    }
    if header.sequence != u32::from(labels.hdr1.file_section) {
        return Err(mismatch(
            "sequence",
            labels.hdr1.file_section.to_string(),
            header.sequence.to_string(),
        ));
    }
    let file_id = format!("M{:016X}", header.media_set);
    if labels.hdr1.file_id != file_id {
        return Err(mismatch(
            "media_set",
            format!("HDR1 file identifier {:?}", labels.hdr1.file_id),
            format!("{} (file identifier {file_id:?})", header.media_set),
        ));
    }
    if labels.hdr1.file_set_id != labels.vol1.volume_id {
        return Err(TapeError::corrupt(
            Location {
                file: Some(0),
                record: Some(1),
                ..at()
            },
            "HDR1 file-set identifier",
            format!("{:?} (the volume identifier)", labels.vol1.volume_id),
            format!("{:?}", labels.hdr1.file_set_id),
        ));
    }
    Ok(())
}

struct Head {
    labels: VolumeLabels,
    header: NodeHeader,
    header_records: u64,
}

/// Read tape files 0 and 1: labels and node header.
fn read_head<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<Head, TapeError> {
    dev.rewind()?;
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let pos = dev.position();
        match dev.read_block(&mut buf, LABEL_LEN)? {
            Block::Record(_) if records.len() == 3 => {
                return Err(TapeError::corrupt(
                    Location::record(pos.file, pos.record),
                    "volume label group",
                    "a tape mark after VOL1 HDR1 HDR2",
                    "another record",
                ))
            }
            Block::Record(_) => records.push(buf.clone()),
            Block::FileMark => break,
            Block::EndOfData if records.is_empty() && pos.file == 0 => {
                return Err(TapeError::not_found(
                    Location::record(0, 0),
                    "a VOL1 label",
                    "the end of data (a blank tape)",
                ))
            }
            Block::EndOfData => {
                return Err(TapeError::truncated(
                    Location::record(pos.file, pos.record),
                    "the tape mark after the labels",
                    "the end of data",
                ))
            }
        }
    }
    let labels = VolumeLabels::parse(&records)?;
    let label = labels.vol1.volume_id.clone();
    let bs = labels.hdr2.block_size as usize;
    let (bytes, stats) = read_file(dev, MAX_BLOCK_SIZE, (MAX_NODE_PAYLOAD + ENVELOPE_OVERHEAD) as u64)
        .map_err(|e| e.within(Some(&label), Some(1), Some(bs)))?;
    let header = NodeHeader::decode(&bytes).map_err(|e| e.within(Some(&label), Some(1), Some(bs)))?;
    check_head(&labels, &header)?;
    Ok(Head {
        labels,
        header,
        header_records: stats.records,
    })
}

/// Space to the end of the tape (no data read) and, if it ends with two tape
/// marks, read and check the end labels.
fn find_end<D: BlockDevice + ?Sized>(dev: &mut D, label: &str) -> Result<TapeEnd, TapeError> {
    let ctx = |e: TapeError| e.within(Some(label), None, None);
    dev.locate_file(FIRST_DATA_FILE).map_err(ctx)?;
    let mut records = 0u64;
    loop {
        match dev.skip_block() {
            Ok(Block::Record(_)) => records += 1,
            Ok(Block::FileMark) if records == 0 => break,
            Ok(Block::FileMark) => records = 0,
            Ok(Block::EndOfData) => {
                return Ok(TapeEnd::Unfinished {
                    next_file: dev.position().file,
                    torn: records > 0,
                })
            }
            Err(e) if e.is_truncated() => {
                return Ok(TapeEnd::Unfinished {
                    next_file: dev.position().file,
                    torn: true,
                })
            }
            Err(e) => return Err(ctx(e)),
        }
    }
    // Two tape marks: tape file `empty` is empty, the end labels precede it.
    let empty = dev.position().file.saturating_sub(1);
    let end_file = empty.saturating_sub(1);
    if end_file < FIRST_DATA_FILE + 3 {
        return Err(TapeError::corrupt(
            Location {
                label: Some(label.to_owned()),
                file: Some(empty),
                ..Location::default()
            },
            "end of tape",
            "DIRECTORY, NODE-TRAILER, CATALOG and end labels before the logical end (two tape marks)",
            format!("the logical end after tape file {end_file}"),
        ));
    }
    dev.locate_file(end_file).map_err(ctx)?;
    let mut recs = Vec::new();
    let mut buf = Vec::new();
    loop {
        let pos = dev.position();
        match dev.read_block(&mut buf, LABEL_LEN).map_err(ctx)? {
            Block::Record(_) if recs.len() < 3 => recs.push(buf.clone()),
            Block::Record(_) => {
                return Err(TapeError::corrupt(
                    Location {
                        label: Some(label.to_owned()),
                        ..Location::record(pos.file, pos.record)
                    },
                    "end label group",
                    "2 records (EOF1 EOF2 or EOV1 EOV2)",
                    "more records",
                ))
            }
            _ => break,
        }
    }
    let labels = EndLabels::parse(&recs, end_file).map_err(ctx)?;
    Ok(TapeEnd::Finished {
        directory_file: end_file - 3,
        labels,
    })
}

/// What a scan of the data files found.
struct DataScan {
    entries: Vec<DirectoryEntry>,
    names: HashMap<u64, String>,
    /// First tape file after the data files.
    next_file: u32,
}

/// Rebuild the directory of an unfinished tape by reading its complete data
/// files (`FIRST_DATA_FILE .. until`). Stops at a DIRECTORY, NODE-TRAILER,
/// CATALOG or end labels (a `finish` cut short). A last complete file that
/// fails its checks is discarded like a torn one; a bad file followed by
/// good ones is an error.
fn scan_data_files<D: BlockDevice + ?Sized>(
    dev: &mut D,
    label: &str,
    block_size: usize,
    until: u32,
) -> Result<DataScan, TapeError> {
    let mut scan = DataScan {
        entries: Vec::new(),
        names: HashMap::new(),
        next_file: until,
    };
    for file in FIRST_DATA_FILE..until {
        dev.locate_file(file).map_err(|e| e.within(Some(label), None, None))?;
        // Every file but the last was synced before the next one began:
        // its ends suffice. The last may hold unsynced blocks of a crash.
        let s = if file + 1 == until {
            scan_file(dev, Some(label), Some(block_size))
        } else {
            skim_file(dev, label, block_size)
        };
        if let Some(problem) = s.problem {
            if file + 1 == until {
                tracing::warn!(tape = label, file, error = %problem, "discarding the damaged last tape file of an unfinished tape");
                scan.next_file = file;
                return Ok(scan);
            }
            return Err(problem);
        }
        match (&s.kind, &s.content) {
            (ScannedKind::Segment | ScannedKind::AbsMetadata, Some(c)) => {
                if let FileContent::AbsMetadata(m) = c {
                    scan.names.insert(m.abs_id, m.object_name.clone());
                }
                if let Some(e) = s.directory_entry() {
                    scan.entries.push(e);
                }
            }
            (ScannedKind::Directory | ScannedKind::NodeTrailer | ScannedKind::Catalog | ScannedKind::EndLabels, _) => {
                scan.next_file = file;
                return Ok(scan);
            }
            (kind, _) => {
                return Err(TapeError::corrupt(
                    Location {
                        label: Some(label.to_owned()),
                        ..Location::record(file, 0)
                    },
                    "data tape file",
                    "a segment or ABS metadata",
                    kind.name(),
                ))
            }
        }
    }
    Ok(scan)
}

fn read_directory_at<D: BlockDevice + ?Sized>(dev: &mut D, head: &Head, file: u32) -> Result<Directory, TapeError> {
    let label = head.header.label.as_str();
    let bs = head.header.block_size as usize;
    let ctx = |e: TapeError| e.within(Some(label), Some(file), Some(bs));
    dev.locate_file(file).map_err(ctx)?;
    let (bytes, _) = read_file(dev, bs, (MAX_DIRECTORY_PAYLOAD + ENVELOPE_OVERHEAD) as u64).map_err(ctx)?;
    let d = Directory::decode(&bytes).map_err(ctx)?;
    let at = || Location {
        label: Some(label.to_owned()),
        file: Some(file),
        ..Location::default()
    };
    if d.label != head.header.label || d.media_set != head.header.media_set || d.sequence != head.header.sequence {
        return Err(TapeError::corrupt(
            at(),
            "DIRECTORY",
            format!(
                "tape {:?} media set {} seq {}",
                head.header.label, head.header.media_set, head.header.sequence
            ),
            format!("tape {:?} media set {} seq {}", d.label, d.media_set, d.sequence),
        ));
    }
    let want = file.saturating_sub(FIRST_DATA_FILE) as usize;
    if d.entries.len() != want {
        return Err(TapeError::corrupt(
            at(),
            "DIRECTORY",
            format!("{want} entries (tape files 2 to {})", file.saturating_sub(1)),
            format!("{} entries", d.entries.len()),
        ));
    }
    for (k, e) in d.entries.iter().enumerate() {
        if e.file_number != FIRST_DATA_FILE + k as u32 {
            return Err(TapeError::corrupt(
                at(),
                format!("DIRECTORY entry {k}"),
                format!("tape file {}", FIRST_DATA_FILE + k as u32),
                format!("tape file {}", e.file_number),
            ));
        }
    }
    Ok(d)
}

fn read_catalog_at<D: BlockDevice + ?Sized>(dev: &mut D, head: &Head, file: u32) -> Result<Catalog, TapeError> {
    let label = head.header.label.as_str();
    let bs = head.header.block_size as usize;
    let ctx = |e: TapeError| e.within(Some(label), Some(file), Some(bs));
    dev.locate_file(file).map_err(ctx)?;
    let (bytes, _) = read_file(dev, bs, (MAX_DIRECTORY_PAYLOAD + ENVELOPE_OVERHEAD) as u64).map_err(ctx)?;
    let c = Catalog::decode(&bytes).map_err(ctx)?;
    if c.label != head.header.label || c.media_set != head.header.media_set {
        return Err(TapeError::corrupt(
            Location {
                label: Some(label.to_owned()),
                file: Some(file),
                ..Location::default()
            },
            "CATALOG",
            format!("tape {:?} media set {}", head.header.label, head.header.media_set),
            format!("tape {:?} media set {}", c.label, c.media_set),
        ));
    }
    Ok(c)
}

/// Bytes of medium a tape file of `len` bytes takes on `dev` when cut into
/// records of `block_size` bytes (the last one shorter), tape mark included.
pub fn file_cost<D: BlockDevice + ?Sized>(dev: &D, block_size: usize, len: u64) -> u64 {
    let bs = block_size.max(1) as u64;
    let full = len / bs;
    let rest = len % bs;
    let mut cost = full.saturating_mul(dev.record_cost(bs as usize));
    if rest > 0 {
        cost = cost.saturating_add(dev.record_cost(rest as usize));
    }
    cost.saturating_add(dev.filemark_cost())
}

/// Bytes a CATALOG adds per ABS besides its object name: abs_id, name
/// length, has_metadata, metadata_file, segment count.
const CATALOG_ABS_BYTES: u64 = 8 + 4 + 1 + 4 + 4;

/// Writes a labelled tape. Created on a blank tape with [`TapeWriter::create`]
/// or positioned for append on a finished one with [`TapeWriter::append`].
///
/// **Capacity.** On a device with a capacity ([`BlockDevice::capacity_left`],
/// e.g. a [`super::block::SimhTape`] given a [`super::block::Capacity`]),
/// a data file (segment or ABS metadata) is written only if it ends before the
/// early-warning point *and* leaves room, before the physical end, for
/// everything [`TapeWriter::finish`] writes with that file in the directory
/// (DIRECTORY, NODE-TRAILER, CATALOG, end labels, two tape marks: see
/// [`TapeWriter::finish_reserve`]). Otherwise it is refused with
/// [`TapeError::TapeFull`] ([`TapeError::is_tape_full`]), nothing is written
/// and the writer stays usable: the caller finishes the tape with
/// `continues = true` (EOV1/EOV2) and goes on on the next tape. So the end of
/// a tape can always be written, whatever the early-warning zone's size; the
/// zone only decides how early data stops (it should be at least the finish
/// reserve for the expected number of files: 74 bytes per segment file, 21
/// bytes plus the object name per ABS, plus a few KiB, so that data stops at the warning point).
///
/// After a failed write the writer refuses further writes (the tape holds a
/// partial tape file); open the tape again with [`TapeWriter::append`], which
/// discards it.
pub struct TapeWriter<D: BlockDevice> {
    dev: D,
    head: Head,
    entries: Vec<DirectoryEntry>,
    names: HashMap<u64, String>,
    next_file: u32,
    failed: Option<String>,
}

impl<D: BlockDevice> TapeWriter<D> {
    /// Rewind and write VOL1 HDR1 HDR2 TM NODE-HEADER TM.
    pub fn create(dev: D, params: TapeParams) -> Result<Self, TapeError> {
        Self::create_at(dev, params, now_unix())
    }

    /// [`TapeWriter::create`] with the creation time given (for reproducible tapes).
    pub fn create_at(mut dev: D, params: TapeParams, created_unix: u64) -> Result<Self, TapeError> {
        check_params(
            &params.label,
            &params.pool,
            params.sequence,
            params.block_size,
            &params.owner,
        )?;
        let labels = VolumeLabels::new(
            &params.label,
            &params.owner,
            params.media_set,
            params.sequence,
            params.block_size as u32,
            created_unix,
        )?;
        let header = NodeHeader {
            label: params.label.clone(),
            pool: params.pool.clone(),
            media_set: params.media_set,
            sequence: params.sequence,
            block_size: params.block_size as u32,
            created_unix,
            format_version: FORMAT_VERSION,
        };
        let ctx = |e: TapeError| e.within(Some(&params.label), None, None);
        dev.rewind().map_err(ctx)?;
        for rec in labels.encode()? {
            dev.write_record(&rec).map_err(ctx)?;
        }
        dev.write_filemark().map_err(ctx)?;
        let st = write_file(&mut dev, params.block_size, &header.encode()).map_err(ctx)?;
        tracing::debug!(tape = %params.label, media_set = params.media_set, "labelled a new tape");
        Ok(TapeWriter {
            dev,
            head: Head {
                labels,
                header,
                header_records: st.records,
            },
            entries: Vec::new(),
            names: HashMap::new(),
            next_file: FIRST_DATA_FILE,
            failed: None,
        })
    }

    /// Open a tape written by this system (finished or not), check its
    /// labels and node header, read its directory (or rebuild it by scanning
    /// if the tape was never finished), and position after its last data
    /// tape file so that new files overwrite the old end (directory, trailer,
    /// catalog, EOF labels), which `finish` writes again.
    pub fn append(mut dev: D) -> Result<Self, TapeError> {
        let head = read_head(&mut dev)?;
        let label = head.header.label.clone();
        let bs = head.header.block_size as usize;
        let (entries, names, next_file) = match find_end(&mut dev, &label)? {
            TapeEnd::Finished { directory_file, .. } => {
                let d = read_directory_at(&mut dev, &head, directory_file)?;
                let c = read_catalog_at(&mut dev, &head, directory_file + 2)?;
                let names = c.entries.into_iter().map(|a| (a.abs_id, a.object_name)).collect();
                (d.entries, names, directory_file)
            }
            TapeEnd::Unfinished { next_file, torn } => {
                let scan = scan_data_files(&mut dev, &label, bs, next_file)?;
                if torn || scan.next_file != next_file {
                    tracing::warn!(
                        tape = %label,
                        file = scan.next_file,
                        "unfinished tape: rebuilt its directory by scanning; appending from tape file {}",
                        scan.next_file
                    );
                }
                (scan.entries, scan.names, scan.next_file)
            }
        };
        // One name (maybe empty) per ABS on the tape, for the finish reserve.
        let mut names = names;
        for e in &entries {
            names.entry(e.abs_id).or_default();
        }
        dev.locate_file(next_file)
            .map_err(|e| e.within(Some(&label), None, None))?;
        Ok(TapeWriter {
            dev,
            head,
            entries,
            names,
            next_file,
            failed: None,
        })
    }

    pub fn node_header(&self) -> &NodeHeader {
        &self.head.header
    }

    pub fn labels(&self) -> &VolumeLabels {
        &self.head.labels
    }

    /// The tape file number the next data file will get.
    pub fn next_file(&self) -> u32 {
        self.next_file
    }

    /// The device (e.g. to look at its position).
    pub fn device(&self) -> &D {
        &self.dev
    }

    fn label(&self) -> &str {
        &self.head.header.label
    }

    fn check_usable(&self) -> Result<(), TapeError> {
        if let Some(f) = &self.failed {
            return Err(TapeError::invalid(
                format!("use of the writer of tape {:?}", self.label()),
                "a writer whose earlier writes succeeded (open the tape again with TapeWriter::append)",
                format!("an earlier failure: {f}"),
            ));
        }
        Ok(())
    }

    /// Write one tape file at `next_file`, poisoning the writer on failure.
    fn write_tape_file(&mut self, bytes: &[u8]) -> Result<(u32, FileStats), TapeError> {
        self.check_usable()?;
        let file = self.next_file;
        let after = file
            .checked_add(1)
            .ok_or_else(|| TapeError::invalid("tape file number", "below 2^32", "2^32"))?;
        let label = self.head.header.label.clone();
        let ctx = |e: TapeError| e.within(Some(&label), Some(file), None);
        let res = (|| {
            if self.dev.position() != (Position { file, record: 0 }) {
                self.dev.locate_file(file)?;
            }
            write_file(&mut self.dev, self.head.header.block_size as usize, bytes)
        })();
        match res {
            Ok(st) => {
                self.next_file = after;
                Ok((file, st))
            }
            Err(e) => {
                let e = ctx(e);
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn block_size(&self) -> usize {
        self.head.header.block_size as usize
    }

    /// Bytes of medium a data tape file of `len` bytes takes on this tape
    /// (records of the tape's block size, framing and tape mark included).
    pub fn file_cost(&self, len: u64) -> u64 {
        file_cost(&self.dev, self.block_size(), len)
    }

    /// An upper bound of the medium [`TapeWriter::finish`] needs with
    /// `extra_files` more data files that add `extra_catalog` bytes to the
    /// CATALOG's ABS part: DIRECTORY (exact), NODE-TRAILER (exact), CATALOG
    /// (exact but that a metadata file counts 37 bytes, which it does not
    /// take), the end labels and the two tape marks.
    fn reserve_with(&self, extra_files: u64, extra_catalog: u64) -> u64 {
        let h = &self.head.header;
        let n = self.entries.len() as u64 + extra_files;
        let label = h.label.len() as u64;
        let env = ENVELOPE_OVERHEAD as u64;
        let entry = ENTRY_BYTES as u64;
        let directory = env + (4 + label) + 8 + 4 + 4 + n * entry;
        let trailer = NodeTrailer {
            label: h.label.clone(),
            media_set: h.media_set,
            sequence: h.sequence,
            file_count: 0,
            data_bytes: 0,
            finished_unix: 0,
            directory_file: 0,
            continues: true,
        }
        .encode()
        .len() as u64;
        // `names` has one entry per ABS with a data file on the tape.
        let abs: u64 = self
            .names
            .values()
            .map(|s| CATALOG_ABS_BYTES + s.len() as u64)
            .sum::<u64>()
            + extra_catalog;
        let catalog = env + (4 + label) + (4 + h.pool.len() as u64) + 8 + 4 + 4 + abs + n * entry;
        let bs = self.block_size();
        let labels = 2 * self.dev.record_cost(LABEL_LEN) + 2 * self.dev.filemark_cost();
        file_cost(&self.dev, bs, directory)
            + file_cost(&self.dev, bs, trailer)
            + file_cost(&self.dev, bs, catalog)
            + labels
    }

    /// Bytes of medium [`TapeWriter::finish`] needs now (an upper bound, a
    /// few bytes per ABS over; see the type's docs on capacity).
    pub fn finish_reserve(&self) -> u64 {
        self.reserve_with(0, 0)
    }

    /// Bytes the CATALOG grows by for a data file of ABS `abs_id` with
    /// object name `name` (`replaces`: a metadata file, whose name replaces
    /// the one known; a segment only sets a name not known yet).
    fn catalog_growth(&self, abs_id: u64, name: &str, replaces: bool) -> u64 {
        match self.names.get(&abs_id) {
            None => CATALOG_ABS_BYTES + name.len() as u64,
            Some(old) if replaces || old.is_empty() => (name.len() as u64).saturating_sub(old.len() as u64),
            Some(_) => 0,
        }
    }

    /// Bytes of medium the next data tape file may take (its
    /// [`TapeWriter::file_cost`]) and still be accepted, if it belongs to an
    /// ABS already on the tape and does not lengthen its name (a new ABS
    /// needs 21 bytes more and its name); None on a device without a
    /// capacity. 0 inside the early-warning zone.
    pub fn remaining_before_warning(&self) -> Option<u64> {
        let ew = self.dev.early_warning_left()?;
        let phys = self.dev.capacity_left()?.saturating_sub(self.reserve_with(1, 0));
        Some(ew.min(phys))
    }

    /// Whether the tape is at or past the early-warning point.
    pub fn early_warning(&self) -> bool {
        self.dev.early_warning()
    }

    /// Refuse, with [`TapeError::TapeFull`], a data tape file of `len` bytes
    /// (adding `catalog` bytes to the CATALOG) that does not end before the
    /// early-warning point or would leave too little room to finish the tape.
    fn check_fits(&self, len: u64, catalog: u64) -> Result<(), TapeError> {
        let needed = self.file_cost(len);
        let at = || Location {
            label: Some(self.label().to_owned()),
            ..Location::record(self.next_file, 0)
        };
        if let Some(ew) = self.dev.early_warning_left() {
            if needed > ew {
                return Err(TapeError::tape_full(at(), needed, ew));
            }
        }
        if let Some(left) = self.dev.capacity_left() {
            let reserve = self.reserve_with(1, catalog);
            if needed.saturating_add(reserve) > left {
                return Err(TapeError::tape_full(at(), needed, left.saturating_sub(reserve)));
            }
        }
        Ok(())
    }

    fn check_room(&self) -> Result<(), TapeError> {
        if self.entries.len() >= MAX_DIRECTORY_ENTRIES {
            return Err(TapeError::invalid(
                format!("data file on tape {:?}", self.label()),
                format!("at most {MAX_DIRECTORY_ENTRIES} data files per tape"),
                "one more",
            ));
        }
        Ok(())
    }

    /// Write one sealed segment (`bytes` = header, track records, trailer,
    /// exactly as [`super::segment::SegmentWriter`] produced them) as one
    /// tape file, verifying it on the way (see
    /// [`TapeWriter::write_segment_from`]): a bad segment is refused and
    /// nothing of it stays on the tape. Returns its directory entry.
    pub fn write_segment(&mut self, bytes: &[u8], object_name: &str) -> Result<DirectoryEntry, TapeError> {
        let mut scratch = Vec::new();
        self.write_segment_from(&mut &bytes[..], bytes.len() as u64, object_name, None, &mut scratch)
            .map(|(entry, _)| entry)
    }

    /// Copy a sealed segment of `len` bytes from `src` (e.g. a spool file)
    /// to the tape as one tape file, streaming through `scratch` (resized
    /// to a few records; never the whole segment in memory) and verifying
    /// every checksum on the way, each byte once.
    ///
    /// The segment's header is checked before anything is written:
    /// `expect` (ABS id, seq), if given, must match it, and the file must
    /// fit ([`TapeError::TapeFull`] otherwise, nothing written). If the
    /// segment turns out bad (a checksum, a length, `src` shorter or longer
    /// than `len`) or `src` cannot be read, the partial tape file is
    /// discarded (the tape is positioned back to its start, and the next
    /// write or [`TapeWriter::finish`] overwrites it) and the writer stays
    /// usable. Returns the directory entry and the verified summary.
    pub fn write_segment_from<R: std::io::Read + ?Sized>(
        &mut self,
        src: &mut R,
        len: u64,
        object_name: &str,
        expect: Option<(u64, u32)>,
        scratch: &mut Vec<u8>,
    ) -> Result<(DirectoryEntry, SegmentSummary), TapeError> {
        self.check_usable()?;
        self.check_room()?;
        if object_name.len() > MAX_OBJECT_NAME {
            return Err(TapeError::invalid(
                "object name",
                format!("at most {MAX_OBJECT_NAME} bytes"),
                format!("{} bytes", object_name.len()),
            ));
        }
        let file = self.next_file;
        let after = file
            .checked_add(1)
            .ok_or_else(|| TapeError::invalid("tape file number", "below 2^32", "2^32"))?;
        let label = self.head.header.label.clone();
        let ctx = |e: TapeError| e.within(Some(&label), Some(file), None);
        let bs = self.block_size();
        // A whole number of records per read keeps records straight from
        // the buffer (no re-cutting), and at least the segment header.
        let chunk = (bs * (COPY_BUFFER / bs).max(1)).max(SEGMENT_HEADER_LEN);
        scratch.resize(chunk, 0);
        let src_err = |e: std::io::Error, at: u64| {
            TapeError::io(
                Location::offset(at),
                format!("reading the segment to copy ({len} bytes)"),
                e,
            )
        };
        let first = read_full(src, scratch).map_err(|e| ctx(src_err(e, 0)))?;
        let head = &scratch[..first];
        if head.len() < SEGMENT_HEADER_LEN {
            return Err(ctx(TapeError::corrupt(
                Location::offset(head.len() as u64),
                "segment to copy",
                format!("a {SEGMENT_HEADER_LEN}-byte SEGMENT-HEADER"),
                format!("{} bytes", head.len()),
            )));
        }
        let header = SegmentHeader::decode(&head[..SEGMENT_HEADER_LEN]).map_err(ctx)?;
        if let Some((abs_id, seq)) = expect {
            if (header.abs_id, header.seq) != (abs_id, seq) {
                return Err(ctx(TapeError::corrupt(
                    Location::offset(12),
                    "segment to copy",
                    format!("ABS {abs_id} seq {seq}"),
                    format!("ABS {} seq {}", header.abs_id, header.seq),
                )));
            }
        }
        self.check_fits(len, self.catalog_growth(header.abs_id, object_name, false))?;

        // Copy, verifying as it goes. A device error poisons the writer
        // (the tape's state is unknown); a bad segment or an unreadable
        // source only abandons this tape file.
        let mut device_failed = false;
        let res = (|| {
            let dev_err = |e: TapeError, failed: &mut bool| {
                *failed = true;
                e
            };
            if self.dev.position() != (Position { file, record: 0 }) {
                self.dev.locate_file(file).map_err(|e| dev_err(e, &mut device_failed))?;
            }
            let mut check = SegmentReader::new(false);
            let mut w = FileWriter::new(&mut self.dev, bs)?.without_crc();
            let mut copied = 0u64;
            let mut n = first;
            while n > 0 {
                if copied + n as u64 > len {
                    return Err(TapeError::corrupt(
                        Location::offset(len),
                        "segment to copy",
                        format!("{len} bytes"),
                        "more",
                    ));
                }
                let piece = &scratch[..n];
                check.feed(piece)?;
                w.write(piece).map_err(|e| dev_err(e, &mut device_failed))?;
                copied += n as u64;
                n = read_full(src, scratch).map_err(|e| src_err(e, copied))?;
            }
            if copied != len {
                return Err(TapeError::corrupt(
                    Location::offset(copied),
                    "segment to copy",
                    format!("{len} bytes"),
                    format!("{copied} bytes"),
                ));
            }
            let summary = check.finish()?.summary;
            let st = w.finish().map_err(|e| dev_err(e, &mut device_failed))?;
            Ok((summary, st))
        })();
        let (summary, st) = match res {
            Ok(r) => r,
            Err(e) => {
                let e = ctx(e);
                if device_failed {
                    self.failed = Some(e.to_string());
                } else if let Err(back) = self.dev.locate_file(file).and_then(|_| self.dev.erase_to_end()) {
                    // Nothing of a bad segment stays: back to the start of its file.
                    self.failed = Some(ctx(back).to_string());
                }
                return Err(e);
            }
        };
        self.next_file = after;
        let entry = DirectoryEntry {
            file_number: file,
            kind: FileKind::Segment,
            abs_id: summary.header.abs_id,
            seq: summary.header.seq,
            bytes: st.bytes,
            crc32c: summary.file_crc32c(),
            records: st.records,
        };
        let name = self.names.entry(summary.header.abs_id).or_default();
        if name.is_empty() {
            *name = object_name.to_owned();
        }
        self.entries.push(entry.clone());
        Ok((entry, summary))
    }

    /// Write an ABS's metadata as one tape file.
    pub fn write_abs_metadata(&mut self, meta: &AbsMetadata) -> Result<DirectoryEntry, TapeError> {
        self.check_usable()?;
        self.check_room()?;
        meta.validate()?;
        let bytes = meta.encode();
        self.check_fits(
            bytes.len() as u64,
            self.catalog_growth(meta.abs_id, &meta.object_name, true),
        )?;
        let (file, st) = self.write_tape_file(&bytes)?;
        let entry = DirectoryEntry {
            file_number: file,
            kind: FileKind::AbsMetadata,
            abs_id: meta.abs_id,
            seq: 0,
            bytes: st.bytes,
            crc32c: st.crc32c,
            records: st.records,
        };
        self.names.insert(meta.abs_id, meta.object_name.clone());
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// Flush everything written to stable storage (fsync for an image).
    pub fn sync(&mut self) -> Result<(), TapeError> {
        let label = self.head.header.label.clone();
        self.dev.sync().map_err(|e| e.within(Some(&label), None, None))
    }

    /// Data tape files written so far (this session and, after `append`, before).
    pub fn directory(&self) -> &[DirectoryEntry] {
        &self.entries
    }

    /// Bytes of data files on the tape.
    pub fn data_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    /// Write DIRECTORY, NODE-TRAILER, CATALOG and EOF1/EOF2 (or EOV1/EOV2
    /// when `continues` says the media set goes on on another tape), then two
    /// tape marks; sync; give the device back.
    pub fn finish(self, continues: bool) -> Result<D, TapeError> {
        self.finish_at(continues, now_unix())
    }

    /// [`TapeWriter::finish`] with the finishing time given.
    pub fn finish_at(mut self, continues: bool, finished_unix: u64) -> Result<D, TapeError> {
        self.check_usable()?;
        let h = self.head.header.clone();
        let directory_file = self.next_file;
        let dir = Directory {
            label: h.label.clone(),
            media_set: h.media_set,
            sequence: h.sequence,
            entries: self.entries.clone(),
        }
        .encode();
        let trailer = NodeTrailer {
            label: h.label.clone(),
            media_set: h.media_set,
            sequence: h.sequence,
            file_count: self.entries.len() as u32,
            data_bytes: self.data_bytes(),
            finished_unix,
            directory_file,
            continues,
        }
        .encode();
        let names = &self.names;
        let catalog = Catalog::from_directory(&h.label, &h.pool, h.media_set, h.sequence, &self.entries, |id| {
            names.get(&id).cloned().unwrap_or_default()
        })
        .encode();
        if catalog.len() > MAX_DIRECTORY_PAYLOAD + ENVELOPE_OVERHEAD {
            return Err(TapeError::invalid(
                format!("CATALOG of tape {:?}", h.label),
                format!("at most {MAX_DIRECTORY_PAYLOAD} bytes"),
                format!("{} bytes", catalog.len()),
            ));
        }
        // Refuse before writing anything if the end does not fit (only
        // possible if the capacity shrank, e.g. appending on a smaller tape:
        // data files are written only with room for this).
        if let Some(left) = self.dev.capacity_left() {
            let bs = self.block_size();
            let needed = [&dir, &trailer, &catalog]
                .iter()
                .map(|b| file_cost(&self.dev, bs, b.len() as u64))
                .sum::<u64>()
                + 2 * self.dev.record_cost(LABEL_LEN)
                + 2 * self.dev.filemark_cost();
            if needed > left {
                return Err(TapeError::end_of_medium(
                    Location {
                        label: Some(h.label.clone()),
                        ..Location::record(directory_file, 0)
                    },
                    needed,
                    left,
                ));
            }
        }
        let mut records = self.head.header_records + self.entries.iter().map(|e| e.records).sum::<u64>();
        for bytes in [&dir, &trailer, &catalog] {
            let (_, st) = self.write_tape_file(bytes)?;
            records += st.records;
        }
        let end = EndLabels {
            label1: self.head.labels.hdr1.end(continues, records),
            label2: self.head.labels.hdr2.end(continues),
        };
        let label = h.label.clone();
        let end_file = self.next_file;
        let ctx = |e: TapeError| e.within(Some(&label), Some(end_file), None);
        for rec in end.encode()? {
            self.dev.write_record(&rec).map_err(ctx)?;
        }
        self.dev.write_filemark().map_err(ctx)?;
        self.dev.write_filemark().map_err(ctx)?;
        self.dev.sync().map_err(ctx)?;
        tracing::debug!(tape = %label, files = self.entries.len(), continues, "finished the tape");
        Ok(self.dev)
    }
}

/// Reads a labelled tape, jumping straight to tape files by number.
pub struct TapeReader<D: BlockDevice> {
    dev: D,
    head: Head,
    end: Option<TapeEnd>,
}

impl<D: BlockDevice> TapeReader<D> {
    /// Rewind, read and check the labels and node header.
    pub fn open(mut dev: D) -> Result<Self, TapeError> {
        let head = read_head(&mut dev)?;
        Ok(TapeReader { dev, head, end: None })
    }

    pub fn labels(&self) -> &VolumeLabels {
        &self.head.labels
    }

    pub fn node_header(&self) -> &NodeHeader {
        &self.head.header
    }

    /// The tape label (volume serial).
    pub fn label(&self) -> &str {
        &self.head.header.label
    }

    fn check_data_file(&self, file: u32, what: &str) -> Result<(), TapeError> {
        if file < FIRST_DATA_FILE {
            return Err(TapeError::not_found(
                Location {
                    label: Some(self.label().to_owned()),
                    file: Some(file),
                    ..Location::default()
                },
                what.to_owned(),
                if file == 0 {
                    "the volume labels"
                } else {
                    "the NODE-HEADER"
                },
            ));
        }
        Ok(())
    }

    /// Read tape file `file` as a segment, checking every magic, length and
    /// checksum; at most `max_bytes` are read. Errors name the tape label,
    /// the tape file, the record and the segment (ABS id, sequence).
    pub fn read_segment(&mut self, file: u32, max_bytes: usize) -> Result<VerifiedSegment, TapeError> {
        self.read_segment_with(file, max_bytes, SegmentReader::new(true), |_, _| Ok(()))
    }

    /// Read tape file `file` as a segment into `out` (e.g. a staging file),
    /// record by record (never the whole segment in memory), checking every
    /// magic, length and checksum on the way; at most `max_bytes` are read.
    /// Returns the verified summary. On an error `out` holds part of the
    /// segment and must be discarded.
    pub fn read_segment_into<W: std::io::Write + ?Sized>(
        &mut self,
        file: u32,
        max_bytes: usize,
        out: &mut W,
    ) -> Result<SegmentSummary, TapeError> {
        let seg = self.read_segment_with(file, max_bytes, SegmentReader::new(false), |rec, at| {
            out.write_all(rec)
                .map_err(|e| TapeError::io(Location::offset(at), "writing the segment read", e))
        })?;
        Ok(seg.summary)
    }

    /// Feed tape file `file` record by record through `seg`, handing each
    /// checked record (and the segment bytes fed so far) to `each`.
    fn read_segment_with(
        &mut self,
        file: u32,
        max_bytes: usize,
        mut seg: SegmentReader,
        mut each: impl FnMut(&[u8], u64) -> Result<(), TapeError>,
    ) -> Result<VerifiedSegment, TapeError> {
        self.check_data_file(file, "a segment")?;
        let bs = self.head.header.block_size as usize;
        let label = self.head.header.label.clone();
        let ctx = |e: TapeError| e.within(Some(&label), Some(file), Some(bs));
        self.dev.locate_file(file).map_err(ctx)?;
        // The segment's own checksums cover every byte: no file CRC.
        let mut reader = FileReader::new(&mut self.dev, bs, max_bytes as u64).without_crc();
        loop {
            let rec = match reader.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(mut e) => {
                    if let (Some(l), Some(h)) = (e.location_mut(), seg.header()) {
                        l.segment = Some((h.abs_id, h.seq));
                    }
                    return Err(ctx(e));
                }
            };
            seg.feed(rec).map_err(ctx)?;
            each(rec, seg.bytes_fed()).map_err(ctx)?;
        }
        seg.finish().map_err(|e| {
            let last = reader.stats().records.saturating_sub(1);
            let mut e = ctx(e);
            if let Some(l) = e.location_mut() {
                l.record = l.record.map(|r| r.min(last));
            }
            e
        })
    }

    /// Read tape file `file` as ABS metadata.
    pub fn read_abs_metadata(&mut self, file: u32) -> Result<AbsMetadata, TapeError> {
        self.check_data_file(file, "ABS metadata")?;
        let bs = self.head.header.block_size as usize;
        let label = self.head.header.label.clone();
        let ctx = |e: TapeError| e.within(Some(&label), Some(file), Some(bs));
        self.dev.locate_file(file).map_err(ctx)?;
        let (bytes, _) =
            read_file(&mut self.dev, bs, (MAX_METADATA_PAYLOAD + ENVELOPE_OVERHEAD) as u64).map_err(ctx)?;
        AbsMetadata::decode(&bytes).map_err(ctx)
    }

    /// How the tape ends (found once by spacing to the end, then cached).
    pub fn tape_end(&mut self) -> Result<&TapeEnd, TapeError> {
        if self.end.is_none() {
            self.end = Some(find_end(&mut self.dev, &self.head.header.label)?);
        }
        match &self.end {
            Some(e) => Ok(e),
            None => Err(TapeError::not_found(
                Location::default(),
                "the end of the tape",
                "nothing",
            )),
        }
    }

    /// The directory at the end of a finished tape (None if never finished).
    pub fn read_directory(&mut self) -> Result<Option<Directory>, TapeError> {
        match self.tape_end()?.clone() {
            TapeEnd::Finished { directory_file, .. } => {
                read_directory_at(&mut self.dev, &self.head, directory_file).map(Some)
            }
            TapeEnd::Unfinished { .. } => Ok(None),
        }
    }

    /// The node trailer of a finished tape (None if never finished).
    pub fn read_node_trailer(&mut self) -> Result<Option<NodeTrailer>, TapeError> {
        let TapeEnd::Finished { directory_file, .. } = self.tape_end()?.clone() else {
            return Ok(None);
        };
        let file = directory_file + 1;
        let bs = self.head.header.block_size as usize;
        let label = self.head.header.label.clone();
        let ctx = |e: TapeError| e.within(Some(&label), Some(file), Some(bs));
        let res = (|| {
            self.dev.locate_file(file)?;
            let (bytes, _) = read_file(&mut self.dev, bs, (MAX_NODE_PAYLOAD + ENVELOPE_OVERHEAD) as u64)?;
            NodeTrailer::decode(&bytes)
        })();
        res.map(Some).map_err(ctx)
    }

    /// The catalog at the end of a finished tape (None if the tape was never finished).
    pub fn read_catalog(&mut self) -> Result<Option<Catalog>, TapeError> {
        match self.tape_end()?.clone() {
            TapeEnd::Finished { directory_file, .. } => {
                read_catalog_at(&mut self.dev, &self.head, directory_file + 2).map(Some)
            }
            TapeEnd::Unfinished { .. } => Ok(None),
        }
    }

    /// The data files of the tape: from the DIRECTORY of a finished tape, or
    /// (never finished) by reading and checking every complete data file.
    pub fn data_files(&mut self) -> Result<Vec<DirectoryEntry>, TapeError> {
        match self.tape_end()?.clone() {
            TapeEnd::Finished { directory_file, .. } => {
                Ok(read_directory_at(&mut self.dev, &self.head, directory_file)?.entries)
            }
            TapeEnd::Unfinished { next_file, .. } => {
                let bs = self.head.header.block_size as usize;
                Ok(scan_data_files(&mut self.dev, &self.head.header.label, bs, next_file)?.entries)
            }
        }
    }

    /// Records read from the device so far (for tests that count reads).
    pub fn records_read(&self) -> u64 {
        self.dev.records_read()
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    pub fn into_inner(self) -> D {
        self.dev
    }
}
