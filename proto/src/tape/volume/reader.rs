//! Reading a labelled tape: [`TapeReader`] checks its head, then jumps
//! straight to tape files by number (segments, ABS metadata) or to the
//! structures at its end.

use crate::tape::block::BlockDevice;
use crate::tape::bytes::ENVELOPE_OVERHEAD;
use crate::tape::directory::{Catalog, Directory, DirectoryEntry};
use crate::tape::error::Location;
use crate::tape::file::{read_file, FileReader};
use crate::tape::labels::VolumeLabels;
use crate::tape::metadata::{AbsMetadata, MAX_METADATA_PAYLOAD};
use crate::tape::node::{NodeHeader, NodeTrailer, MAX_NODE_PAYLOAD};
use crate::tape::segment::{SegmentReader, SegmentSummary, VerifiedSegment};
use crate::tape::TapeError;

use super::end::{find_end, read_catalog_at, read_directory_at, TapeEnd};
use super::head::{read_head, Head};
use super::recovery::scan_data_files;
use super::FIRST_DATA_FILE;

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
        let bytes = self.read_abs_metadata_bytes(file)?;
        let bs = self.head.header.block_size as usize;
        let label = self.head.header.label.clone();
        AbsMetadata::decode(&bytes).map_err(|e| e.within(Some(&label), Some(file), Some(bs)))
    }

    /// The bytes of tape file `file`, an ABS metadata file (not decoded:
    /// to hand on, e.g. over the wire, where [`AbsMetadata::decode`]
    /// checks them).
    pub fn read_abs_metadata_bytes(&mut self, file: u32) -> Result<Vec<u8>, TapeError> {
        self.check_data_file(file, "ABS metadata")?;
        let bs = self.head.header.block_size as usize;
        let label = self.head.header.label.clone();
        let ctx = |e: TapeError| e.within(Some(&label), Some(file), Some(bs));
        self.dev.locate_file(file).map_err(ctx)?;
        let (bytes, _) =
            read_file(&mut self.dev, bs, (MAX_METADATA_PAYLOAD + ENVELOPE_OVERHEAD) as u64).map_err(ctx)?;
        Ok(bytes)
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

    /// The data files found by reading them (not from the DIRECTORY, which
    /// may be damaged): every data file before the DIRECTORY of a finished
    /// tape, or every complete one of an unfinished tape, each identified
    /// and checked.
    pub fn scan_data_files(&mut self) -> Result<Vec<DirectoryEntry>, TapeError> {
        let until = match self.tape_end()?.clone() {
            TapeEnd::Finished { directory_file, .. } => directory_file,
            TapeEnd::Unfinished { next_file, .. } => next_file,
        };
        let bs = self.head.header.block_size as usize;
        Ok(scan_data_files(&mut self.dev, &self.head.header.label, bs, until)?.entries)
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
