//! Writing a labelled tape: [`TapeWriter`] labels a new tape or opens one
//! for appending, writes data tape files, and finishes the tape.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::num::saturating_u32;
use crate::tape::block::{BlockDevice, Position};
use crate::tape::bytes::ENVELOPE_OVERHEAD;
use crate::tape::directory::{Catalog, Directory, DirectoryEntry, FileKind, MAX_DIRECTORY_PAYLOAD};
use crate::tape::error::Location;
use crate::tape::file::{write_file, FileStats, FileWriter};
use crate::tape::labels::{EndLabels, VolumeLabels, LABEL_LEN};
use crate::tape::management::{Management, Placement, PlacementCounts};
use crate::tape::metadata::{AbsMetadata, MAX_OBJECT_NAME};
use crate::tape::node::{check_params, NodeHeader, NodeTrailer};
use crate::tape::segment::{SegmentHeader, SegmentReader, SegmentSummary, SEGMENT_HEADER_LEN};
use crate::tape::{TapeError, FORMAT_VERSION};

use super::capacity::file_cost;
use super::end::{find_end, read_catalog_at, read_directory_at, TapeEnd};
use super::head::{read_head, Head};
use super::records::CatalogRecords;
use super::recovery::scan_data_files;
use super::{TapeParams, FIRST_DATA_FILE};

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

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes a labelled tape. Created on a blank tape with [`TapeWriter::create`]
/// or positioned for append on a finished one with [`TapeWriter::append`].
///
/// **Capacity.** On a device with a capacity ([`BlockDevice::capacity_left`],
/// e.g. a [`crate::tape::block::SimhTape`] given a [`crate::tape::block::Capacity`]),
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
    pub(super) dev: D,
    pub(super) head: Head,
    pub(super) entries: Vec<DirectoryEntry>,
    pub(super) names: HashMap<u64, String>,
    pub(super) records: CatalogRecords,
    pub(super) next_file: u32,
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
            saturating_u32(params.block_size),
            created_unix,
        )?;
        let header = NodeHeader {
            label: params.label.clone(),
            pool: params.pool.clone(),
            media_set: params.media_set,
            sequence: params.sequence,
            block_size: saturating_u32(params.block_size),
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
            records: CatalogRecords::default(),
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
        let mut records = CatalogRecords::default();
        let (entries, names, next_file) = match find_end(&mut dev, &label)? {
            TapeEnd::Finished { directory_file, .. } => {
                let d = read_directory_at(&mut dev, &head, directory_file)?;
                let c = read_catalog_at(&mut dev, &head, directory_file + 2)?;
                let mut names = HashMap::new();
                for a in c.entries {
                    if let Some(m) = a.record {
                        records.hold(a.abs_id, m);
                    }
                    names.insert(a.abs_id, a.object_name);
                }
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
                for (abs_id, m) in scan.records {
                    records.hold(abs_id, m);
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
            records,
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

    pub(super) fn label(&self) -> &str {
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

    pub(super) fn block_size(&self) -> usize {
        self.head.header.block_size as usize
    }

    /// Write one sealed segment (`bytes` = header, track records, trailer,
    /// exactly as [`crate::tape::segment::SegmentWriter`] produced them) as one
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
        self.records.place(
            summary.header.abs_id,
            Placement {
                seq: summary.header.seq,
                tape_label: label,
                tape_file: file,
                bytes: st.bytes,
                crc32c: summary.crc32c,
                counts: Some(PlacementCounts {
                    data_bytes: summary.data_bytes,
                    track_count: summary.track_count,
                }),
            },
        );
        self.entries.push(entry.clone());
        Ok((entry, summary))
    }

    /// Write an ABS's metadata as one tape file.
    pub fn write_abs_metadata(&mut self, meta: &AbsMetadata) -> Result<DirectoryEntry, TapeError> {
        self.check_usable()?;
        self.check_room()?;
        meta.validate()?;
        let bytes = meta.encode();
        let record = meta
            .management
            .as_ref()
            .map_or(0, |m| self.records.growth(meta.abs_id, m));
        self.check_fits(
            bytes.len() as u64,
            self.catalog_growth(meta.abs_id, &meta.object_name, true) + record,
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
        if let Some(m) = &meta.management {
            self.records.hold(meta.abs_id, m.clone());
        }
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// ABSs with a data file on the tape and no management record for its
    /// CATALOG yet (their metadata is not on the tape): those a writer
    /// finishing a tape whose media set goes on may [`TapeWriter::supply_record`].
    pub fn abs_without_record(&self) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for e in &self.entries {
            if !self.records.holds(e.abs_id) && !out.contains(&e.abs_id) {
                out.push(e.abs_id);
            }
        }
        out
    }

    /// Give the management record of ABS `abs_id` (one of
    /// [`TapeWriter::abs_without_record`]) for the CATALOG, with the
    /// segments known so far; the segments written to this tape that it
    /// does not place are added. Written only if the tape has room for it
    /// when finished (data files reserve room for the records of their
    /// metadata only); otherwise the CATALOG has no record for the ABS.
    pub fn supply_record(&mut self, abs_id: u64, record: Management) {
        if self.names.contains_key(&abs_id) {
            self.records.supply(abs_id, record);
        }
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
            file_count: saturating_u32(self.entries.len()),
            data_bytes: self.data_bytes(),
            finished_unix,
            directory_file,
            continues,
        }
        .encode();
        let catalog_with = |supplied: bool| {
            let (names, records) = (&self.names, &self.records);
            Catalog::from_directory(
                &h.label,
                &h.pool,
                h.media_set,
                h.sequence,
                &self.entries,
                |id| names.get(&id).cloned().unwrap_or_default(),
                |id| records.record(id, supplied),
            )
            .encode()
        };
        let bs = self.block_size();
        let needed = |catalog: &[u8]| {
            [dir.len(), trailer.len(), catalog.len()]
                .iter()
                .map(|n| file_cost(&self.dev, bs, *n as u64))
                .sum::<u64>()
                + 2 * self.dev.record_cost(LABEL_LEN)
                + 2 * self.dev.filemark_cost()
        };
        let fits = |catalog: &[u8]| {
            catalog.len() <= MAX_DIRECTORY_PAYLOAD + ENVELOPE_OVERHEAD
                && self.dev.capacity_left().is_none_or(|left| needed(catalog) <= left)
        };
        let mut catalog = catalog_with(true);
        if self.records.any_supplied() && !fits(&catalog) {
            tracing::warn!(
                tape = %h.label,
                "no room at the end of the tape for the management records supplied for ABSs whose metadata is on another tape: its CATALOG leaves them out"
            );
            catalog = catalog_with(false);
        }
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
            let needed = needed(&catalog);
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
