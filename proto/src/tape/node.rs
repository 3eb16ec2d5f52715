//! This system's own tape header (tape file 1) and tape trailer (the tape
//! file after the DIRECTORY). Both are envelopes ([`super::bytes`]): magic,
//! version 1, reserved, payload length, payload, CRC32C.

use super::bytes::{seal, unseal, ByteWriter};
use super::error::Location;
use super::labels::is_a_char;
use super::{TapeError, FORMAT_VERSION, MAX_BLOCK_SIZE};

/// Magic of the NODE-HEADER.
pub const NODE_HEADER_MAGIC: &[u8; 8] = b"DMCNHD01";
/// Magic of the NODE-TRAILER.
pub const NODE_TRAILER_MAGIC: &[u8; 8] = b"DMCNTR01";
/// Envelope version of both.
pub const NODE_VERSION: u16 = 1;
/// Largest payload accepted.
pub const MAX_NODE_PAYLOAD: usize = 4096;
/// Longest pool name (bytes of UTF-8).
pub const MAX_POOL_LEN: usize = 255;

/// Smallest record size for data tape files.
pub const MIN_BLOCK_SIZE: usize = 80;

/// This system's tape header (tape file 1).
///
/// Payload (after the 16-byte envelope header, little-endian):
///
/// | offset | size | type | field          |
/// |-------:|-----:|------|----------------|
/// | 16     | 2    | u16  | format_version (tape format, 1) |
/// | 18     | 4    | u32  | sequence (in the media set, from 1) |
/// | 22     | 8    | u64  | media_set      |
/// | 30     | 4    | u32  | block_size     |
/// | 34     | 8    | u64  | created_unix   |
/// | 42     | 4+n  | str  | label (u32 length, 1..=6 bytes, A–Z 0–9) |
/// | ..     | 4+n  | str  | pool (u32 length, ≤ 255 bytes UTF-8) |
///
/// then the CRC32C of everything before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHeader {
    pub label: String,
    pub pool: String,
    pub media_set: u64,
    pub sequence: u32,
    pub block_size: u32,
    pub created_unix: u64,
    pub format_version: u16,
}

/// Check a tape label: 1 to 6 characters A–Z, 0–9.
pub fn check_label(label: &str) -> Result<(), TapeError> {
    if label.is_empty() || label.len() > 6 || !label.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return Err(TapeError::invalid(
            "tape label",
            "1 to 6 characters A-Z, 0-9",
            format!("{label:?}"),
        ));
    }
    Ok(())
}

fn check_owner(owner: &str) -> Result<(), TapeError> {
    if owner.len() > 14 || !owner.bytes().all(is_a_char) {
        return Err(TapeError::invalid(
            "owner identifier",
            "at most 14 a-characters (A-Z, 0-9, space, !\"%&'()*+,-./:;<=>?_)",
            format!("{owner:?}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_params(
    label: &str,
    pool: &str,
    sequence: u32,
    block_size: usize,
    owner: &str,
) -> Result<(), TapeError> {
    check_label(label)?;
    check_owner(owner)?;
    if pool.len() > MAX_POOL_LEN {
        return Err(TapeError::invalid(
            "pool name",
            format!("at most {MAX_POOL_LEN} bytes"),
            format!("{} bytes", pool.len()),
        ));
    }
    if !(1..=9999).contains(&sequence) {
        return Err(TapeError::invalid(
            "media-set sequence",
            "1 to 9999",
            sequence.to_string(),
        ));
    }
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(TapeError::invalid(
            "block size",
            format!("{MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE} bytes"),
            block_size.to_string(),
        ));
    }
    Ok(())
}

impl NodeHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.u16(self.format_version)
            .u32(self.sequence)
            .u64(self.media_set)
            .u32(self.block_size)
            .u64(self.created_unix)
            .str(&self.label)
            .str(&self.pool);
        seal(NODE_HEADER_MAGIC, NODE_VERSION, w.as_slice())
    }

    pub fn decode(bytes: &[u8]) -> Result<NodeHeader, TapeError> {
        let mut r = unseal(bytes, NODE_HEADER_MAGIC, NODE_VERSION, "NODE-HEADER", MAX_NODE_PAYLOAD)?;
        let at = r.offset();
        let format_version = r.u16("format_version")?;
        if format_version != FORMAT_VERSION {
            return Err(TapeError::corrupt(
                Location::offset(at),
                "NODE-HEADER field format_version",
                format!("tape format version {FORMAT_VERSION}"),
                format!("version {format_version}"),
            ));
        }
        let sequence = r.u32("sequence")?;
        let media_set = r.u64("media_set")?;
        let bs_at = r.offset();
        let block_size = r.u32("block_size")?;
        let created_unix = r.u64("created_unix")?;
        let label_at = r.offset();
        let label = r.str("label", 6)?;
        let pool = r.str("pool", MAX_POOL_LEN)?;
        r.finish()?;
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&(block_size as usize)) {
            return Err(TapeError::corrupt(
                Location::offset(bs_at),
                "NODE-HEADER field block_size",
                format!("{MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}"),
                block_size.to_string(),
            ));
        }
        if check_label(&label).is_err() {
            return Err(TapeError::corrupt(
                Location::offset(label_at),
                "NODE-HEADER field label",
                "1 to 6 characters A-Z, 0-9",
                format!("{label:?}"),
            ));
        }
        Ok(NodeHeader {
            label,
            pool,
            media_set,
            sequence,
            block_size,
            created_unix,
            format_version,
        })
    }
}

/// This system's tape trailer, written by `finish` after the DIRECTORY.
///
/// Payload (after the 16-byte envelope header, little-endian):
///
/// | offset | size | type | field          |
/// |-------:|-----:|------|----------------|
/// | 16     | 8    | u64  | media_set      |
/// | 24     | 4    | u32  | sequence       |
/// | 28     | 4    | u32  | file_count (data tape files) |
/// | 32     | 8    | u64  | data_bytes (bytes of all data tape files) |
/// | 40     | 8    | u64  | finished_unix  |
/// | 48     | 4    | u32  | directory_file (tape file number of the DIRECTORY) |
/// | 52     | 1    | u8   | continues (1: the media set goes on on another tape) |
/// | 53     | 4+n  | str  | label          |
///
/// then the CRC32C of everything before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTrailer {
    pub label: String,
    pub media_set: u64,
    pub sequence: u32,
    pub file_count: u32,
    pub data_bytes: u64,
    pub finished_unix: u64,
    pub directory_file: u32,
    pub continues: bool,
}

impl NodeTrailer {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.u64(self.media_set)
            .u32(self.sequence)
            .u32(self.file_count)
            .u64(self.data_bytes)
            .u64(self.finished_unix)
            .u32(self.directory_file)
            .u8(u8::from(self.continues))
            .str(&self.label);
        seal(NODE_TRAILER_MAGIC, NODE_VERSION, w.as_slice())
    }

    pub fn decode(bytes: &[u8]) -> Result<NodeTrailer, TapeError> {
        let mut r = unseal(
            bytes,
            NODE_TRAILER_MAGIC,
            NODE_VERSION,
            "NODE-TRAILER",
            MAX_NODE_PAYLOAD,
        )?;
        let t = NodeTrailer {
            media_set: r.u64("media_set")?,
            sequence: r.u32("sequence")?,
            file_count: r.u32("file_count")?,
            data_bytes: r.u64("data_bytes")?,
            finished_unix: r.u64("finished_unix")?,
            directory_file: r.u32("directory_file")?,
            continues: r.bool("continues")?,
            label: r.str("label", 6)?,
        };
        r.finish()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> NodeHeader {
        NodeHeader {
            label: "DMC001".into(),
            pool: "daily".into(),
            media_set: 77,
            sequence: 2,
            block_size: 65536,
            created_unix: 1_700_000_000,
            format_version: FORMAT_VERSION,
        }
    }

    #[test]
    fn header_layout_and_round_trip() {
        let h = header();
        let b = h.encode();
        assert_eq!(&b[..8], b"DMCNHD01");
        assert_eq!(&b[8..10], &[1, 0]);
        assert_eq!(&b[16..18], &[1, 0], "format version first in the payload");
        assert_eq!(&b[18..22], &2u32.to_le_bytes());
        assert_eq!(&b[22..30], &77u64.to_le_bytes());
        assert_eq!(&b[30..34], &65536u32.to_le_bytes());
        assert_eq!(&b[42..46], &6u32.to_le_bytes());
        assert_eq!(&b[46..52], b"DMC001");
        assert_eq!(b.len(), 20 + 2 + 4 + 8 + 4 + 8 + 10 + 9);
        assert_eq!(NodeHeader::decode(&b).unwrap(), h);
    }

    #[test]
    fn header_refuses_bad_values() {
        let mut h = header();
        h.format_version = 2;
        let e = NodeHeader::decode(&h.encode()).unwrap_err().to_string();
        assert!(e.contains("format_version") && e.contains("version 2"), "{e}");
        let mut h = header();
        h.block_size = 10;
        assert!(NodeHeader::decode(&h.encode()).is_err());
        let mut h = header();
        h.label = "bad".into();
        assert!(NodeHeader::decode(&h.encode()).is_err());
        assert!(NodeHeader::decode(&[]).is_err());
    }

    #[test]
    fn trailer_round_trip() {
        let t = NodeTrailer {
            label: "X1".into(),
            media_set: 5,
            sequence: 1,
            file_count: 12,
            data_bytes: 1 << 40,
            finished_unix: 99,
            directory_file: 14,
            continues: true,
        };
        let b = t.encode();
        assert_eq!(&b[..8], b"DMCNTR01");
        assert_eq!(NodeTrailer::decode(&b).unwrap(), t);
        assert!(NodeHeader::decode(&b).is_err(), "a trailer is not a header");
    }

    #[test]
    fn params_are_checked() {
        assert!(check_params("DMC001", "p", 1, 65536, "ME").is_ok());
        assert!(check_params("DMC0011", "p", 1, 65536, "").is_err());
        assert!(check_params("dmc", "p", 1, 65536, "").is_err());
        assert!(check_params("A", "p", 0, 65536, "").is_err());
        assert!(check_params("A", "p", 1, 79, "").is_err());
        assert!(check_params("A", "p", 1, MAX_BLOCK_SIZE + 1, "").is_err());
        assert!(check_params("A", &"x".repeat(256), 1, 512, "").is_err());
        assert!(check_params("A", "p", 1, 512, "lower").is_err());
    }
}
