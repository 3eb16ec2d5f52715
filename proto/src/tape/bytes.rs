//! Bounds-checked little-endian encoding, and the *envelope* that wraps the
//! variable-length structures (node header and trailer, ABS metadata,
//! directory, catalog).
//!
//! [`ByteReader`] never indexes past the end of its input: every read is
//! checked and a short input is an error naming the structure, the field and
//! the byte offset. Counts read from tape go through [`ByteReader::count`],
//! which bounds them by a limit *and* by the bytes actually left, so a corrupt
//! count can never make a decoder allocate more than its input's size.
//!
//! Envelope layout (all integers little-endian):
//!
//! | offset | size | type    | meaning                                        |
//! |-------:|-----:|---------|------------------------------------------------|
//! | 0      | 8    | [u8; 8] | magic, names the structure and its version     |
//! | 8      | 2    | u16     | structure version (1; ABS metadata: 1 or 2)    |
//! | 10     | 2    | u16     | reserved, 0                                    |
//! | 12     | 4    | u32     | payload length L                               |
//! | 16     | L    | bytes   | payload                                        |
//! | 16+L   | 4    | u32     | CRC32C of bytes 0 .. 16+L                      |
//!
//! The envelope fills its tape file exactly: 20 + L bytes, no more, no less.

use super::error::Location;
use super::TapeError;

/// Bytes an envelope adds around its payload.
pub const ENVELOPE_OVERHEAD: usize = 20;

/// Render bytes from tape for an error message: printable ASCII as is,
/// everything else escaped, at most 16 bytes.
pub fn show_bytes(bytes: &[u8]) -> String {
    let shown = bytes.get(..bytes.len().min(16)).unwrap_or(&[]);
    let mut s = format!("b\"{}\"", shown.escape_ascii());
    if bytes.len() > 16 {
        s.push('…');
    }
    s
}

/// Appends little-endian fields to a buffer.
#[derive(Debug, Default, Clone)]
pub struct ByteWriter {
    buf: Vec<u8>,
}

impl ByteWriter {
    pub fn new() -> ByteWriter {
        ByteWriter { buf: Vec::new() }
    }
    pub fn with_capacity(n: usize) -> ByteWriter {
        ByteWriter {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// A count or length as u32 (saturating; the callers validate limits
    /// far below `u32::MAX` before encoding).
    pub fn len32(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }
    /// A string: u32 byte length, then UTF-8 bytes.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.len32(s.len());
        self.bytes(s.as_bytes())
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads little-endian fields from a slice, with every access checked.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` within the structure, for error messages.
    base: u64,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    /// `what` names the structure in error messages (e.g. "NODE-HEADER").
    pub fn new(buf: &'a [u8], what: &'static str) -> ByteReader<'a> {
        ByteReader {
            buf,
            pos: 0,
            base: 0,
            what,
        }
    }
    /// Like [`ByteReader::new`], for a slice that starts at byte `base` of its structure.
    pub fn with_base(buf: &'a [u8], what: &'static str, base: u64) -> ByteReader<'a> {
        ByteReader {
            buf,
            pos: 0,
            base,
            what,
        }
    }
    /// Offset of the next byte within the structure.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn what(&self) -> &'static str {
        self.what
    }
    /// An error at the current offset.
    pub fn error(&self, field: &str, expected: impl Into<String>, found: impl Into<String>) -> TapeError {
        TapeError::corrupt(
            Location::offset(self.offset()),
            format!("{} field {field}", self.what),
            expected,
            found,
        )
    }

    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], TapeError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.error(
                field,
                format!("{n} bytes"),
                format!("{} bytes before the end of the {}", self.remaining(), self.what),
            )),
        }
    }
    pub fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], TapeError> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub fn u8(&mut self, field: &str) -> Result<u8, TapeError> {
        Ok(u8::from_le_bytes(self.array::<1>(field)?))
    }
    pub fn u16(&mut self, field: &str) -> Result<u16, TapeError> {
        Ok(u16::from_le_bytes(self.array::<2>(field)?))
    }
    pub fn u32(&mut self, field: &str) -> Result<u32, TapeError> {
        Ok(u32::from_le_bytes(self.array::<4>(field)?))
    }
    pub fn u64(&mut self, field: &str) -> Result<u64, TapeError> {
        Ok(u64::from_le_bytes(self.array::<8>(field)?))
    }
    /// A reserved field that must be zero.
    pub fn zeros(&mut self, n: usize, field: &str) -> Result<(), TapeError> {
        let at = self.offset();
        let s = self.take(n, field)?;
        if s.iter().any(|&b| b != 0) {
            return Err(TapeError::corrupt(
                Location::offset(at),
                format!("{} field {field}", self.what),
                format!("{n} zero bytes (reserved)"),
                show_bytes(s),
            ));
        }
        Ok(())
    }
    /// A boolean byte: 0 or 1.
    pub fn bool(&mut self, field: &str) -> Result<bool, TapeError> {
        let at = self.offset();
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(TapeError::corrupt(
                Location::offset(at),
                format!("{} field {field}", self.what),
                "0 or 1",
                v.to_string(),
            )),
        }
    }
    /// A string written by [`ByteWriter::str`], at most `max` bytes.
    pub fn str(&mut self, field: &str, max: usize) -> Result<String, TapeError> {
        let at = self.offset();
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(TapeError::corrupt(
                Location::offset(at),
                format!("{} field {field}", self.what),
                format!("a string of at most {max} bytes"),
                format!("length {len}"),
            ));
        }
        let data_at = self.offset();
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(TapeError::corrupt(
                Location::offset(data_at),
                format!("{} field {field}", self.what),
                "UTF-8 text",
                format!("invalid UTF-8 ({e})"),
            )),
        }
    }
    /// A u32 count of items that each take at least `min_item_bytes` bytes:
    /// refused if above `max` or if the bytes left cannot hold that many.
    pub fn count(&mut self, field: &str, max: usize, min_item_bytes: usize) -> Result<usize, TapeError> {
        let at = self.offset();
        let n = self.u32(field)? as usize;
        let fits = n
            .checked_mul(min_item_bytes.max(1))
            .is_some_and(|need| need <= self.remaining());
        if n > max || !fits {
            return Err(TapeError::corrupt(
                Location::offset(at),
                format!("{} field {field}", self.what),
                format!(
                    "a count of at most {max} that fits in the {} bytes left ({min_item_bytes} bytes per item)",
                    self.remaining()
                ),
                n.to_string(),
            ));
        }
        Ok(n)
    }
    /// Every byte must have been consumed.
    pub fn finish(self) -> Result<(), TapeError> {
        if self.remaining() != 0 {
            return Err(TapeError::corrupt(
                Location::offset(self.offset()),
                self.what,
                format!("the end of the {}", self.what),
                format!("{} more bytes", self.remaining()),
            ));
        }
        Ok(())
    }
}

/// Wrap a payload in an envelope (see the module docs).
pub fn seal(magic: &[u8; 8], version: u16, payload: &[u8]) -> Vec<u8> {
    let mut w = ByteWriter::with_capacity(payload.len() + ENVELOPE_OVERHEAD);
    w.bytes(magic).u16(version).u16(0).len32(payload.len()).bytes(payload);
    let crc = crc32c::crc32c(w.as_slice());
    w.u32(crc);
    w.into_vec()
}

/// Check an envelope (magic, version, reserved, length, CRC32C) that must fill
/// `bytes` exactly, and return a reader over its payload.
pub fn unseal<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u16,
    what: &'static str,
    max_payload: usize,
) -> Result<ByteReader<'a>, TapeError> {
    unseal_versions(bytes, magic, version, version, what, max_payload).map(|(_, r)| r)
}

/// Like [`unseal`], for a structure with several versions: accepts any
/// version in `min..=max` and returns the version found with the reader
/// over the payload, for the caller to decode that version's layout.
pub fn unseal_versions<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    min: u16,
    max: u16,
    what: &'static str,
    max_payload: usize,
) -> Result<(u16, ByteReader<'a>), TapeError> {
    let mut r = ByteReader::new(bytes, what);
    let m = r.take(8, "magic")?;
    if m != magic {
        return Err(TapeError::corrupt(
            Location::offset(0),
            format!("{what} field magic"),
            show_bytes(magic),
            show_bytes(m),
        ));
    }
    let v = r.u16("version")?;
    if !(min..=max).contains(&v) {
        let expected = if min >= max {
            format!("version {min}")
        } else if max - min == 1 {
            format!("version {min} or {max}")
        } else {
            format!("a version from {min} to {max}")
        };
        return Err(TapeError::corrupt(
            Location::offset(8),
            format!("{what} field version"),
            expected,
            format!("version {v}"),
        ));
    }
    r.zeros(2, "reserved")?;
    let len = r.u32("payload length")? as usize;
    if len > max_payload {
        return Err(TapeError::too_large(
            Location::offset(12),
            format!("{what} payload"),
            max_payload as u64,
            len as u64,
        ));
    }
    let total = len + ENVELOPE_OVERHEAD;
    if bytes.len() != total {
        return Err(TapeError::corrupt(
            Location::offset(12),
            format!("{what} length"),
            format!("{total} bytes ({len} bytes of payload + {ENVELOPE_OVERHEAD})"),
            format!("{} bytes", bytes.len()),
        ));
    }
    let payload = r.take(len, "payload")?;
    let stored = r.u32("crc32c")?;
    let covered = bytes.get(..16 + len).unwrap_or(&[]);
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Err(TapeError::checksum(
            Location::offset(16 + len as u64),
            what,
            stored,
            computed,
        ));
    }
    Ok((v, ByteReader::with_base(payload, what, 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_short_input() {
        let mut r = ByteReader::new(&[1, 2, 3], "THING");
        assert_eq!(r.u16("a").unwrap(), 0x0201);
        let e = r.u32("b").unwrap_err().to_string();
        assert!(
            e.contains("THING field b") && e.contains("expected 4 bytes") && e.contains("found 1 bytes"),
            "{e}"
        );
        assert!(e.contains("byte 2"), "{e}");
    }

    #[test]
    fn count_is_bounded_by_remaining_bytes() {
        let mut w = ByteWriter::new();
        w.u32(1_000_000).bytes(&[0; 40]);
        let v = w.into_vec();
        let mut r = ByteReader::new(&v, "X");
        assert!(r.count("n", usize::MAX, 4).is_err());
        let mut r = ByteReader::new(&v, "X");
        assert!(r.count("n", 10, 0).is_err());
        let mut w = ByteWriter::new();
        w.u32(10).bytes(&[0; 40]);
        let v = w.into_vec();
        assert_eq!(ByteReader::new(&v, "X").count("n", 10, 4).unwrap(), 10);
    }

    #[test]
    fn strings_round_trip_and_are_bounded() {
        let mut w = ByteWriter::new();
        w.str("héllo");
        let v = w.into_vec();
        assert_eq!(ByteReader::new(&v, "X").str("s", 16).unwrap(), "héllo");
        assert!(ByteReader::new(&v, "X").str("s", 3).is_err());
        let bad = [2, 0, 0, 0, 0xff, 0xfe];
        assert!(ByteReader::new(&bad, "X").str("s", 16).is_err());
    }

    #[test]
    fn envelope_round_trip_and_every_byte_checked() {
        let sealed = seal(b"DMCTEST1", 1, b"payload!");
        let mut r = unseal(&sealed, b"DMCTEST1", 1, "TEST", 100).unwrap();
        assert_eq!(r.take(8, "p").unwrap(), b"payload!");
        r.finish().unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(
                unseal(&bad, b"DMCTEST1", 1, "TEST", 100).is_err(),
                "flip at {i} accepted"
            );
        }
        assert!(unseal(&sealed[..sealed.len() - 1], b"DMCTEST1", 1, "TEST", 100).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(unseal(&longer, b"DMCTEST1", 1, "TEST", 100).is_err());
        assert!(matches!(
            unseal(&sealed, b"DMCTEST1", 1, "TEST", 4),
            Err(TapeError::TooLarge { .. })
        ));
    }

    #[test]
    fn unseal_versions_accepts_a_range_and_names_it() {
        for v in [1u16, 2] {
            let sealed = seal(b"DMCTEST1", v, b"x");
            let (found, mut r) = unseal_versions(&sealed, b"DMCTEST1", 1, 2, "TEST", 100).unwrap();
            assert_eq!(found, v);
            assert_eq!(r.u8("x").unwrap(), b'x');
            r.finish().unwrap();
        }
        let e = unseal_versions(&seal(b"DMCTEST1", 3, b"x"), b"DMCTEST1", 1, 2, "TEST", 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected version 1 or 2, found version 3"), "{e}");
        let e = unseal_versions(&seal(b"DMCTEST1", 0, b"x"), b"DMCTEST1", 1, 4, "TEST", 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a version from 1 to 4, found version 0"), "{e}");
        let e = unseal(&seal(b"DMCTEST1", 2, b"x"), b"DMCTEST1", 1, "TEST", 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected version 1, found version 2"), "{e}");
    }
}
