//! Segments: one sealed piece of an accumulation file, one tape file on tape.
//!
//! ```text
//! SEGMENT-HEADER   (64 bytes: magic, version, ABS id, sequence, channel, time, CRC)
//! TRACK-RECORD*    (32-byte header: volume, track, length, data CRC, header CRC; then the data)
//! SEGMENT-TRAILER  (48 bytes: magic, ABS id, sequence, track count, data bytes,
//!                   segment bytes, CRC32C over header and all track records, trailer CRC)
//! ```
//! The front-end writes exactly these bytes into its accumulation file; the
//! back-end copies them to one tape file; the restore reads them back.
//! All integers are little-endian. Every byte of a segment is covered by a
//! CRC32C: the header and each track header by their own CRC, track data by
//! the track's data CRC, the trailer by the trailer CRC, and the header plus
//! all track records (headers and data) again by the body CRC in the trailer.
//!
//! Reading never trusts a length before the CRC covering it has been checked,
//! and [`SegmentReader`] checks a segment as a stream (bounded memory when
//! the track data is not kept).
//!
//! One job per file: `codec` encodes and decodes the fixed-size parts
//! (SEGMENT-HEADER, TRACK-RECORD header, SEGMENT-TRAILER), `writer` streams
//! a segment out ([`SegmentWriter`]), `reader` checks one streamed in
//! ([`SegmentReader`], [`verify`], [`parse`]), `skim` checks one from its
//! two ends only ([`skim()`]).

mod codec;
mod reader;
mod skim;
mod writer;

#[cfg(test)]
mod tests;

use crate::abs::TrackAddr;

use codec::encode_trailer;

pub use codec::SegmentHeader;
pub use reader::{parse, verify, SegmentEvent, SegmentReader};
pub use skim::skim;
pub use writer::SegmentWriter;

/// Magic of the SEGMENT-HEADER.
pub const SEGMENT_MAGIC: &[u8; 8] = b"DMCSEG01";
/// Magic of a TRACK-RECORD header.
pub const TRACK_MAGIC: &[u8; 8] = b"DMCTRK01";
/// Magic of the SEGMENT-TRAILER.
pub const SEGMENT_TRAILER_MAGIC: &[u8; 8] = b"DMCSGT01";
/// Version in the SEGMENT-HEADER.
pub const SEGMENT_VERSION: u16 = 1;
/// Bytes of the SEGMENT-HEADER.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes of a TRACK-RECORD header (the data follows).
pub const TRACK_HEADER_LEN: usize = 32;
/// Bytes of the SEGMENT-TRAILER.
pub const SEGMENT_TRAILER_LEN: usize = 48;

/// What a verified or freshly written segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub header: SegmentHeader,
    pub track_count: u32,
    /// Track data bytes (without headers).
    pub data_bytes: u64,
    /// Bytes of the whole segment (header, records, trailer).
    pub total_bytes: u64,
    /// CRC32C over the header and all track records (as in the trailer).
    pub crc32c: u32,
}

/// One track as read back, its checksum verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRecord {
    pub addr: TrackAddr,
    pub data: Vec<u8>,
}

impl SegmentSummary {
    /// CRC32C of all the segment's bytes (header, track records and
    /// trailer: what a directory entry records for its tape file), derived
    /// from the body CRC without reading the segment again.
    pub fn file_crc32c(&self) -> u32 {
        crc32c::crc32c_append(self.crc32c, &encode_trailer(self))
    }
}

/// A segment read back with every checksum verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSegment {
    pub summary: SegmentSummary,
    pub tracks: Vec<TrackRecord>,
}
