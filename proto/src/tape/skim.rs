//! Reading a data tape file at its two ends only.
//!
//! A tape that was never finished has no DIRECTORY: mounting it rebuilds
//! one from its data files. Reading every byte of them takes as long as
//! writing them did (minutes for a few GB on a drive), so [`skim_file`]
//! reads a segment's first record (the SEGMENT-HEADER) and its last one or
//! two (the SEGMENT-TRAILER), and only spaces over the records between,
//! which a drive does without transferring data. The directory entry it
//! gives is what [`scan_file`] would give for an intact file: the trailer
//! holds the body CRC, and the whole file's CRC follows from it
//! ([`SegmentSummary::file_crc32c`](super::segment::SegmentSummary::file_crc32c)),
//! so a restore or `verify` still checks every byte of the file against it.
//!
//! Anything irregular (not a segment, a short record before the last, a
//! missing tape mark, a file of three records or fewer) is handed to
//! [`scan_file`], which reads the whole file and reports precisely what is
//! wrong.

use super::block::{Block, BlockDevice};
use super::file::FileStats;
use super::scan::{scan_file, FileContent, FileEnd, ScannedFile, ScannedKind};
use super::segment::{skim, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_TRAILER_LEN};
use super::{TapeError, MAX_BLOCK_SIZE};

/// Files of at most this many records are read whole.
const READ_WHOLE_RECORDS: u64 = 3;

/// Scan the data tape file `file` (the device is positioned at its start)
/// like [`scan_file`], but read only the ends of a segment. `block_size`:
/// the tape's data record size.
pub fn skim_file<D: BlockDevice + ?Sized>(dev: &mut D, label: &str, block_size: usize) -> ScannedFile {
    let file = dev.position().file;
    match try_skim(dev, label, block_size) {
        Ok(Some(scanned)) => scanned,
        Ok(None) => whole(dev, label, block_size, file),
        Err(e) => {
            tracing::debug!(tape = label, file, error = %e, "skimming a tape file failed; reading it whole");
            whole(dev, label, block_size, file)
        }
    }
}

fn whole<D: BlockDevice + ?Sized>(dev: &mut D, label: &str, block_size: usize, file: u32) -> ScannedFile {
    match dev.locate_file(file) {
        Ok(()) => scan_file(dev, Some(label), Some(block_size)),
        Err(e) => ScannedFile {
            file,
            stats: FileStats::default(),
            kind: ScannedKind::Empty,
            content: None,
            segment: None,
            problem: Some(e.within(Some(label), Some(file), Some(block_size))),
            end: FileEnd::Broken,
        },
    }
}

/// `Ok(None)`: not a regular segment of more than [`READ_WHOLE_RECORDS`]
/// records (read it whole instead).
fn try_skim<D: BlockDevice + ?Sized>(
    dev: &mut D,
    label: &str,
    block_size: usize,
) -> Result<Option<ScannedFile>, TapeError> {
    let file = dev.position().file;
    let mut head = Vec::new();
    let Block::Record(first) = dev.read_block(&mut head, MAX_BLOCK_SIZE)? else {
        return Ok(None);
    };
    if first != block_size || head.get(..8) != Some(&SEGMENT_MAGIC[..]) {
        return Ok(None);
    }
    // Space to the tape mark, checking that every record but the last is
    // a full block, and keep the last two lengths.
    let (mut records, mut bytes) = (1u64, first as u64);
    let (mut before_last, mut last) = (0usize, first);
    loop {
        match dev.skip_block()? {
            Block::Record(n) => {
                if last != block_size || n > block_size {
                    return Ok(None);
                }
                records += 1;
                bytes += n as u64;
                (before_last, last) = (last, n);
            }
            Block::FileMark => break,
            Block::EndOfData => return Ok(None),
        }
    }
    if records <= READ_WHOLE_RECORDS || last == 0 {
        return Ok(None);
    }
    // The trailer is in the last record, or across the last two.
    let from = if last >= SEGMENT_TRAILER_LEN {
        records - 1
    } else {
        records - 2
    };
    dev.locate_file(file)?;
    for _ in 0..from {
        if !matches!(dev.skip_block()?, Block::Record(_)) {
            return Ok(None);
        }
    }
    let mut tail = Vec::with_capacity(before_last + last);
    let mut record = Vec::new();
    for _ in from..records {
        let Block::Record(_) = dev.read_block(&mut record, MAX_BLOCK_SIZE)? else {
            return Ok(None);
        };
        tail.extend_from_slice(&record);
    }
    let Some(header) = head.get(..SEGMENT_HEADER_LEN) else {
        return Ok(None);
    };
    let summary = match skim(header, &tail, bytes) {
        Ok(s) => s,
        Err(e) => return Err(e.within(Some(label), Some(file), Some(block_size))),
    };
    Ok(Some(ScannedFile {
        file,
        stats: FileStats {
            records,
            bytes,
            crc32c: summary.file_crc32c(),
        },
        kind: ScannedKind::Segment,
        segment: Some((summary.header.abs_id, summary.header.seq)),
        content: Some(FileContent::Segment(summary)),
        problem: None,
        end: FileEnd::TapeMark,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abs::TrackAddr;
    use crate::tape::block::SimhTape;
    use crate::tape::file::write_file;
    use crate::tape::segment::{SegmentHeader, SegmentWriter};
    use std::io::Cursor;

    const BS: usize = 4096;

    /// A tape of three data files: a segment of `tracks` tracks of
    /// `track_len` bytes, a small non-segment file, and the same segment
    /// again; returns the image and the segment bytes.
    fn tape(tracks: u64, track_len: usize) -> (Vec<u8>, Vec<u8>) {
        let header = SegmentHeader {
            abs_id: 7,
            seq: 3,
            channel_id: 1,
            created_unix: 0,
        };
        let mut w = SegmentWriter::new(Vec::new(), header).unwrap();
        for t in 0..tracks {
            let data: Vec<u8> = (0..track_len).map(|i| (i as u64 * 31 + t) as u8).collect();
            w.append_track(TrackAddr { volume: 0, track: t }, &data).unwrap();
        }
        let (segment, _) = w.finish().unwrap();
        let mut dev = SimhTape::new(Cursor::new(Vec::new())).unwrap();
        write_file(&mut dev, BS, &segment).unwrap();
        write_file(&mut dev, BS, b"not a segment").unwrap();
        write_file(&mut dev, BS, &segment).unwrap();
        (dev.into_inner().into_inner(), segment)
    }

    fn both(image: &[u8], file: u32) -> (ScannedFile, ScannedFile, u64) {
        let mut dev = SimhTape::new(Cursor::new(image.to_vec())).unwrap();
        dev.locate_file(file).unwrap();
        let skimmed = skim_file(&mut dev, "T", BS);
        let reads = dev.records_read();
        dev.locate_file(file).unwrap();
        let scanned = scan_file(&mut dev, Some("T"), Some(BS));
        (skimmed, scanned, reads)
    }

    #[test]
    fn a_segment_skimmed_gives_the_directory_entry_of_a_full_read_from_a_few_records() {
        // Trailer in the last record, and (track_len chosen so the last
        // record holds fewer than 48 bytes) across the last two.
        for (tracks, track_len) in [(40, 3000), (9, 4096 - 32), (5, 4042)] {
            let (image, segment) = tape(tracks, track_len);
            let (skimmed, scanned, reads) = both(&image, 0);
            assert!(scanned.problem.is_none(), "{:?}", scanned.problem);
            assert_eq!(skimmed.directory_entry(), scanned.directory_entry());
            assert!(skimmed.directory_entry().is_some());
            let all = segment.len().div_ceil(BS) as u64;
            assert!(all > 3 && reads <= 3, "read {reads} of {all} records");
            let (skimmed, scanned, _) = both(&image, 2);
            assert_eq!(skimmed.directory_entry(), scanned.directory_entry());
            // A file that is not a segment is read whole.
            let (skimmed, scanned, _) = both(&image, 1);
            assert_eq!(skimmed.kind, scanned.kind);
            assert_eq!(skimmed.stats, scanned.stats);
        }
    }

    /// The offset in the image of byte `at` of tape file 0's data (SIMH:
    /// each record is a 4-byte length, the data, and the length again).
    fn image_offset(at: usize) -> usize {
        let record = at / BS;
        record * (BS + 8) + 4 + at % BS
    }

    #[test]
    fn a_damaged_header_or_trailer_is_reported_like_a_full_read_does() {
        let (image, segment) = tape(40, 3000);
        let len = segment.len();
        for at in [0, 30, 61, len - 48, len - 20, len - 15, len - 1] {
            let mut bad = image.clone();
            bad[image_offset(at)] ^= 0x40;
            let (skimmed, scanned, _) = both(&bad, 0);
            assert!(skimmed.problem.is_some(), "flip at {at} not seen");
            assert!(scanned.problem.is_some());
            assert!(skimmed.directory_entry().is_none());
        }
    }

    #[test]
    fn a_flip_in_the_middle_is_not_read_but_the_entry_still_exposes_it() {
        let (image, segment) = tape(40, 3000);
        let mut bad = image.clone();
        bad[image_offset(segment.len() / 2)] ^= 1;
        let (skimmed, scanned, _) = both(&bad, 0);
        assert!(scanned.problem.is_some());
        let entry = skimmed.directory_entry().expect("the ends are intact");
        // The entry holds the CRC the writer computed, which the damaged
        // bytes no longer have: a restore or verify reading them fails.
        let (good, _, _) = both(&image, 0);
        assert_eq!(Some(entry.clone()), good.directory_entry());
        assert_ne!(
            entry.crc32c,
            crc32c::crc32c(&{
                let mut s = segment.clone();
                s[segment.len() / 2] ^= 1;
                s
            })
        );
    }
}
