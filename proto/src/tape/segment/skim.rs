//! A segment checked from its two ends only (its header and its trailer),
//! for rebuilding a tape's directory without reading its track records.

use crate::tape::bytes::show_bytes;
use crate::tape::error::Location;
use crate::tape::TapeError;

use super::codec::Trailer;
use super::{SegmentHeader, SegmentSummary, SEGMENT_HEADER_LEN, SEGMENT_TRAILER_LEN, SEGMENT_TRAILER_MAGIC};

/// The summary of a segment read at its two ends only: `head` starts with
/// the segment (at least its 64 header bytes), `tail` ends with it (at
/// least its 48 trailer bytes), and the segment is `segment_bytes` long.
///
/// Checks the header (magic, version, CRC), the trailer (magic, CRC), that
/// the trailer names the header's ABS and seq, and that its segment bytes
/// equal `segment_bytes`. The track records in between and the body CRC are
/// not read: a tape's directory can be rebuilt from this in time
/// proportional to its files, and a restore or `verify` still checks every
/// byte against the CRCs taken from here.
pub fn skim(head: &[u8], tail: &[u8], segment_bytes: u64) -> Result<SegmentSummary, TapeError> {
    let header = SegmentHeader::decode(head.get(..SEGMENT_HEADER_LEN).unwrap_or(head))?;
    let at = |offset: u64| Location {
        segment: Some((header.abs_id, header.seq)),
        offset: Some(offset),
        ..Location::default()
    };
    let minimum = (SEGMENT_HEADER_LEN + SEGMENT_TRAILER_LEN) as u64;
    if segment_bytes < minimum || tail.len() < SEGMENT_TRAILER_LEN {
        return Err(TapeError::corrupt(
            at(0),
            "segment",
            format!("at least {minimum} bytes, the last {SEGMENT_TRAILER_LEN} of them read"),
            format!("{segment_bytes} bytes, {} of them read at its end", tail.len()),
        ));
    }
    let start = segment_bytes - SEGMENT_TRAILER_LEN as u64;
    let bytes = &tail[tail.len() - SEGMENT_TRAILER_LEN..];
    if &bytes[..8] != SEGMENT_TRAILER_MAGIC {
        return Err(TapeError::corrupt(
            at(start),
            "SEGMENT-TRAILER field magic",
            show_bytes(SEGMENT_TRAILER_MAGIC),
            show_bytes(&bytes[..8]),
        ));
    }
    let t = Trailer::decode(bytes, start, at)?;
    t.check_header(&header, start, at)?;
    if t.total_bytes != segment_bytes {
        return Err(TapeError::corrupt(
            at(start + 32),
            "SEGMENT-TRAILER field segment bytes",
            format!("{segment_bytes} (the tape file's size)"),
            t.total_bytes.to_string(),
        ));
    }
    Ok(SegmentSummary {
        header,
        track_count: t.track_count,
        data_bytes: t.data_bytes,
        total_bytes: t.total_bytes,
        crc32c: t.body_crc,
    })
}
