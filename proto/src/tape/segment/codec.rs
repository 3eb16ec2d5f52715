//! The fixed-size parts of a segment, encoded and decoded: the
//! SEGMENT-HEADER, a TRACK-RECORD header and the SEGMENT-TRAILER, each with
//! its byte layout.

use crate::abs::TrackAddr;
use crate::tape::bytes::{show_bytes, ByteReader, ByteWriter};
use crate::tape::error::Location;
use crate::tape::TapeError;

use super::{
    SegmentSummary, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_TRAILER_LEN, SEGMENT_TRAILER_MAGIC, SEGMENT_VERSION,
    TRACK_HEADER_LEN, TRACK_MAGIC,
};

/// Identity of a segment, in its header.
///
/// SEGMENT-HEADER layout (64 bytes):
///
/// | offset | size | type    | field                                   |
/// |-------:|-----:|---------|-----------------------------------------|
/// | 0      | 8    | [u8; 8] | magic `DMCSEG01`                        |
/// | 8      | 2    | u16     | version (1)                             |
/// | 10     | 2    | u16     | header length (64)                      |
/// | 12     | 4    | u32     | seq                                     |
/// | 16     | 8    | u64     | abs_id                                  |
/// | 24     | 8    | u64     | channel_id                              |
/// | 32     | 8    | u64     | created_unix                            |
/// | 40     | 20   | zeros   | reserved                                |
/// | 60     | 4    | u32     | CRC32C of bytes 0..60                   |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub abs_id: u64,
    /// Sequence of this segment within its ABS, from 0.
    pub seq: u32,
    pub channel_id: u64,
    pub created_unix: u64,
}

/// [`SEGMENT_HEADER_LEN`] as its 16-bit header field.
#[allow(clippy::cast_possible_truncation)] // 64, asserted to fit just below
const HEADER_LEN_FIELD: u16 = SEGMENT_HEADER_LEN as u16;
const _: () = assert!(SEGMENT_HEADER_LEN <= u16::MAX as usize);

impl SegmentHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut w = ByteWriter::with_capacity(SEGMENT_HEADER_LEN);
        w.bytes(SEGMENT_MAGIC)
            .u16(SEGMENT_VERSION)
            .u16(HEADER_LEN_FIELD)
            .u32(self.seq)
            .u64(self.abs_id)
            .u64(self.channel_id)
            .u64(self.created_unix)
            .bytes(&[0; 20]);
        let crc = crc32c::crc32c(w.as_slice());
        w.u32(crc);
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out.copy_from_slice(w.as_slice());
        out
    }

    /// Decode and check the 64 header bytes.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, TapeError> {
        let mut r = ByteReader::new(bytes, "SEGMENT-HEADER");
        let magic = r.take(8, "magic")?;
        if magic != SEGMENT_MAGIC {
            return Err(TapeError::corrupt(
                Location::offset(0),
                "SEGMENT-HEADER field magic",
                show_bytes(SEGMENT_MAGIC),
                show_bytes(magic),
            ));
        }
        let covered = bytes.get(..60).unwrap_or(&[]);
        let stored = bytes
            .get(60..64)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_le_bytes);
        let Some(stored) = stored else {
            return Err(r.error(
                "header",
                format!("{SEGMENT_HEADER_LEN} bytes"),
                format!("{} bytes", bytes.len()),
            ));
        };
        let computed = crc32c::crc32c(covered);
        if stored != computed {
            return Err(TapeError::checksum(
                Location::offset(60),
                "SEGMENT-HEADER",
                stored,
                computed,
            ));
        }
        let version = r.u16("version")?;
        if version != SEGMENT_VERSION {
            return Err(TapeError::corrupt(
                Location::offset(8),
                "SEGMENT-HEADER field version",
                format!("version {SEGMENT_VERSION}"),
                format!("version {version}"),
            ));
        }
        let hlen = r.u16("header length")?;
        if hlen as usize != SEGMENT_HEADER_LEN {
            return Err(TapeError::corrupt(
                Location::offset(10),
                "SEGMENT-HEADER field header length",
                SEGMENT_HEADER_LEN.to_string(),
                hlen.to_string(),
            ));
        }
        let seq = r.u32("seq")?;
        let abs_id = r.u64("abs_id")?;
        let channel_id = r.u64("channel_id")?;
        let created_unix = r.u64("created_unix")?;
        r.zeros(20, "reserved")?;
        r.u32("crc32c")?;
        r.finish()?;
        Ok(SegmentHeader {
            abs_id,
            seq,
            channel_id,
            created_unix,
        })
    }
}

/// TRACK-RECORD header layout (32 bytes, then `length` bytes of data):
///
/// | offset | size | type    | field                                   |
/// |-------:|-----:|---------|-----------------------------------------|
/// | 0      | 8    | [u8; 8] | magic `DMCTRK01`                        |
/// | 8      | 2    | u16     | volume (index into the ABS map's volumes) |
/// | 10     | 2    | u16     | reserved, 0                             |
/// | 12     | 4    | u32     | length of the data (≤ MAX_TRACK_SIZE)   |
/// | 16     | 8    | u64     | track number                            |
/// | 24     | 4    | u32     | CRC32C of the data                      |
/// | 28     | 4    | u32     | CRC32C of bytes 0..28                   |
pub(super) fn encode_track_header(addr: TrackAddr, len: u32, data_crc: u32) -> [u8; TRACK_HEADER_LEN] {
    // Built on the stack: one per track, on the hot path.
    let mut out = [0u8; TRACK_HEADER_LEN];
    out[0..8].copy_from_slice(TRACK_MAGIC);
    out[8..10].copy_from_slice(&addr.volume.to_le_bytes());
    // 10..12 reserved, 0
    out[12..16].copy_from_slice(&len.to_le_bytes());
    out[16..24].copy_from_slice(&addr.track.to_le_bytes());
    out[24..28].copy_from_slice(&data_crc.to_le_bytes());
    let crc = crc32c::crc32c(&out[..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

/// SEGMENT-TRAILER layout (48 bytes):
///
/// | offset | size | type    | field                                        |
/// |-------:|-----:|---------|----------------------------------------------|
/// | 0      | 8    | [u8; 8] | magic `DMCSGT01`                             |
/// | 8      | 8    | u64     | abs_id (equal to the header's)               |
/// | 16     | 4    | u32     | seq (equal to the header's)                  |
/// | 20     | 4    | u32     | track count                                  |
/// | 24     | 8    | u64     | data bytes (sum of track lengths)            |
/// | 32     | 8    | u64     | segment bytes (header + records + trailer)   |
/// | 40     | 4    | u32     | body CRC32C: header and all track records    |
/// | 44     | 4    | u32     | CRC32C of bytes 0..44                        |
pub(super) fn encode_trailer(s: &SegmentSummary) -> [u8; SEGMENT_TRAILER_LEN] {
    let mut w = ByteWriter::with_capacity(SEGMENT_TRAILER_LEN);
    w.bytes(SEGMENT_TRAILER_MAGIC)
        .u64(s.header.abs_id)
        .u32(s.header.seq)
        .u32(s.track_count)
        .u64(s.data_bytes)
        .u64(s.total_bytes)
        .u32(s.crc32c);
    let crc = crc32c::crc32c(w.as_slice());
    w.u32(crc);
    let mut out = [0u8; SEGMENT_TRAILER_LEN];
    out.copy_from_slice(w.as_slice());
    out
}

/// The fields of a SEGMENT-TRAILER whose own CRC matched.
pub(super) struct Trailer {
    pub(super) abs_id: u64,
    pub(super) seq: u32,
    pub(super) track_count: u32,
    pub(super) data_bytes: u64,
    pub(super) total_bytes: u64,
    pub(super) body_crc: u32,
}

impl Trailer {
    /// Decode the 48 trailer bytes found at byte `start` of the segment and
    /// check the trailer CRC (the magic is the caller's to check).
    pub(super) fn decode(bytes: &[u8], start: u64, at: impl Fn(u64) -> Location) -> Result<Trailer, TapeError> {
        let covered = bytes.get(..44).unwrap_or(&[]);
        let mut r = ByteReader::with_base(bytes, "SEGMENT-TRAILER", start);
        r.take(8, "magic")?;
        let trailer = Trailer {
            abs_id: r.u64("abs_id")?,
            seq: r.u32("seq")?,
            track_count: r.u32("track count")?,
            data_bytes: r.u64("data bytes")?,
            total_bytes: r.u64("segment bytes")?,
            body_crc: r.u32("body crc32c")?,
        };
        let stored = r.u32("trailer crc32c")?;
        let computed = crc32c::crc32c(covered);
        if stored != computed {
            return Err(TapeError::checksum(at(start + 44), "SEGMENT-TRAILER", stored, computed));
        }
        Ok(trailer)
    }

    /// Check that the trailer (at byte `start`) names `header`'s ABS and seq.
    pub(super) fn check_header(
        &self,
        header: &SegmentHeader,
        start: u64,
        at: impl Fn(u64) -> Location,
    ) -> Result<(), TapeError> {
        let field = |off: u64, name: &str, expected: u64, found: u64| {
            Err(TapeError::corrupt(
                at(start + off),
                format!("SEGMENT-TRAILER field {name}"),
                format!("{expected} (from the header)"),
                found.to_string(),
            ))
        };
        if self.abs_id != header.abs_id {
            return field(8, "abs_id", header.abs_id, self.abs_id);
        }
        if self.seq != header.seq {
            return field(16, "seq", header.seq.into(), self.seq.into());
        }
        Ok(())
    }
}
