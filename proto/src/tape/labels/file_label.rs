//! The file labels: HDR1 / EOF1 / EOV1 and HDR2 / EOF2 / EOV2, which
//! open (HDR) and close (EOF, EOV) the data of a tape.

use crate::tape::TapeError;

use super::field::{is_a_char, In, LabelDate, Out};
use super::{IMPLEMENTATION_ID, LABEL_LEN};

/// Which group a file label belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    /// HDRn: before a file.
    Hdr,
    /// EOFn: end of the file (the media set ends on this tape).
    Eof,
    /// EOVn: end of volume (the media set continues on another tape).
    Eov,
}

impl LabelKind {
    pub(super) fn prefix(self) -> &'static [u8; 3] {
        match self {
            LabelKind::Hdr => b"HDR",
            LabelKind::Eof => b"EOF",
            LabelKind::Eov => b"EOV",
        }
    }
}

/// HDR1 / EOF1 / EOV1: the first file label (80 bytes; positions 1-based
/// and inclusive):
///
/// | pos   | len | field                        | written                                  |
/// |-------|----:|------------------------------|------------------------------------------|
/// | 1-4   | 4   | label identifier and number  | `HDR1` / `EOF1` / `EOV1`                  |
/// | 5-21  | 17  | file identifier              | `M` + media set id, 16 hex digits         |
/// | 22-27 | 6   | file-set identifier          | tape label                               |
/// | 28-31 | 4   | file section number          | media-set sequence of this tape          |
/// | 32-35 | 4   | file sequence number         | `0001`                                   |
/// | 36-39 | 4   | generation number            | `0001`                                   |
/// | 40-41 | 2   | generation version number    | `00`                                     |
/// | 42-47 | 6   | creation date                | ` yyddd` (19xx) or `cyyddd` (c=0: 20xx)  |
/// | 48-53 | 6   | expiration date              | ` 00000` (none)                          |
/// | 54    | 1   | file accessibility           | space                                    |
/// | 55-60 | 6   | block count                  | HDR1: `000000`; EOF1/EOV1: see below     |
/// | 61-73 | 13  | implementation identifier    | `DMCLUSTER`                              |
/// | 74-80 | 7   | reserved                     | spaces                                   |
///
/// Block count in EOF1/EOV1: the number of data records written between the
/// tape mark after HDR2 and the EOF/EOV labels (NODE-HEADER, data files,
/// DIRECTORY, NODE-TRAILER and CATALOG; tape marks are not counted), modulo
/// 1,000,000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLabel1 {
    pub kind: LabelKind,
    pub file_id: String,
    pub file_set_id: String,
    pub file_section: u16,
    pub file_sequence: u16,
    pub generation: u16,
    pub generation_version: u8,
    pub created: Option<LabelDate>,
    pub expires: Option<LabelDate>,
    pub accessibility: u8,
    /// Block count (positions 55-60), see the type's docs.
    pub block_count: u32,
    pub implementation_id: String,
}

/// HDR2 / EOF2 / EOV2: the second file label (80 bytes; positions 1-based
/// and inclusive):
///
/// | pos   | len | field                        | written                                   |
/// |-------|----:|------------------------------|-------------------------------------------|
/// | 1-4   | 4   | label identifier and number  | `HDR2` / `EOF2` / `EOV2`                   |
/// | 5     | 1   | record format                | `U` (undefined: one record = one block)   |
/// | 6-10  | 5   | block length                 | block size, or `00000` if above 99999     |
/// | 11-15 | 5   | record length                | same as the block length                  |
/// | 16-50 | 35  | implementation use           | 16-25: block size, 10 digits; 26-50 spaces |
/// | 51-52 | 2   | buffer-offset length         | `00`                                      |
/// | 53-80 | 28  | reserved                     | spaces                                    |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLabel2 {
    pub kind: LabelKind,
    /// Record format (position 5), `U`.
    pub record_format: u8,
    /// Block length (positions 6-10): the block size, or 0 when above 99999.
    pub block_length: u32,
    /// Record length (positions 11-15): equal to the block length.
    pub record_length: u32,
    /// The block size of data files (positions 16-25 of implementation use).
    pub block_size: u32,
    /// Buffer-offset length (positions 51-52), 0.
    pub buffer_offset_length: u8,
}

fn kind_of(i: &In<'_>, number: u8) -> Result<LabelKind, TapeError> {
    let id = i.field(1, 4);
    for kind in [LabelKind::Hdr, LabelKind::Eof, LabelKind::Eov] {
        let mut want = kind.prefix().to_vec();
        want.push(number);
        if id == want.as_slice() {
            return Ok(kind);
        }
    }
    let n = char::from(number);
    Err(i.err(1, 4, "label identifier and number", format!("HDR{n}, EOF{n} or EOV{n}")))
}

impl FileLabel1 {
    /// HDR1 as this system writes it.
    pub fn new(volume_id: &str, media_set: u64, sequence: u32, created_unix: u64) -> Result<FileLabel1, TapeError> {
        let file_section = u16::try_from(sequence)
            .ok()
            .filter(|s| (1..=9999).contains(s))
            .ok_or_else(|| TapeError::invalid("media-set sequence", "1 to 9999", sequence.to_string()))?;
        Ok(FileLabel1 {
            kind: LabelKind::Hdr,
            file_id: format!("M{media_set:016X}"),
            file_set_id: volume_id.to_owned(),
            file_section,
            file_sequence: 1,
            generation: 1,
            generation_version: 0,
            created: Some(LabelDate::from_unix(created_unix)?),
            expires: None,
            accessibility: b' ',
            block_count: 0,
            implementation_id: IMPLEMENTATION_ID.to_owned(),
        })
    }

    /// The matching EOF1/EOV1 with a block count (taken modulo 1,000,000).
    pub fn end(&self, continues: bool, records: u64) -> FileLabel1 {
        FileLabel1 {
            kind: if continues { LabelKind::Eov } else { LabelKind::Eof },
            block_count: (records % 1_000_000) as u32,
            ..self.clone()
        }
    }

    pub fn encode(&self) -> Result<[u8; LABEL_LEN], TapeError> {
        let mut o = Out::new("HDR1/EOF1/EOV1");
        o.raw(1, self.kind.prefix());
        o.raw(4, b"1");
        o.text(5, 21, "file identifier", &self.file_id)?;
        o.text(22, 27, "file-set identifier", &self.file_set_id)?;
        o.digits(28, 31, "file section number", self.file_section.into())?;
        o.digits(32, 35, "file sequence number", self.file_sequence.into())?;
        o.digits(36, 39, "generation number", self.generation.into())?;
        o.digits(40, 41, "generation version number", self.generation_version.into())?;
        o.raw(42, &LabelDate::encode(self.created)?);
        o.raw(48, &LabelDate::encode(self.expires)?);
        o.text(54, 54, "accessibility", &char::from(self.accessibility).to_string())?;
        o.digits(55, 60, "block count", self.block_count.into())?;
        o.text(61, 73, "implementation identifier", &self.implementation_id)?;
        Ok(o.rec)
    }

    pub fn parse(rec: &[u8]) -> Result<FileLabel1, TapeError> {
        let i = In::new(rec, "HDR1/EOF1/EOV1")?;
        let kind = kind_of(&i, b'1')?;
        let i = In {
            label: format!("{}1", String::from_utf8_lossy(kind.prefix())),
            ..i
        };
        let accessibility = i.byte(54);
        if !is_a_char(accessibility) {
            return Err(i.err(54, 54, "accessibility", "an a-character"));
        }
        let l = FileLabel1 {
            kind,
            file_id: i.text(5, 21, "file identifier")?,
            file_set_id: i.text(22, 27, "file-set identifier")?,
            file_section: i.number(28, 31, "file section number")?,
            file_sequence: i.number(32, 35, "file sequence number")?,
            generation: i.number(36, 39, "generation number")?,
            generation_version: i.number(40, 41, "generation version number")?,
            created: i.date(42, "creation date")?,
            expires: i.date(48, "expiration date")?,
            accessibility,
            block_count: i.number(55, 60, "block count")?,
            implementation_id: i.text(61, 73, "implementation identifier")?,
        };
        i.spaces(74, 80, "reserved")?;
        Ok(l)
    }
}

impl FileLabel2 {
    /// HDR2 as this system writes it for data files of `block_size` bytes.
    pub fn new(block_size: u32) -> FileLabel2 {
        let bl = if block_size <= 99_999 { block_size } else { 0 };
        FileLabel2 {
            kind: LabelKind::Hdr,
            record_format: b'U',
            block_length: bl,
            record_length: bl,
            block_size,
            buffer_offset_length: 0,
        }
    }

    pub fn end(&self, continues: bool) -> FileLabel2 {
        FileLabel2 {
            kind: if continues { LabelKind::Eov } else { LabelKind::Eof },
            ..self.clone()
        }
    }

    pub fn encode(&self) -> Result<[u8; LABEL_LEN], TapeError> {
        let mut o = Out::new("HDR2/EOF2/EOV2");
        o.raw(1, self.kind.prefix());
        o.raw(4, b"2");
        o.text(5, 5, "record format", &char::from(self.record_format).to_string())?;
        o.digits(6, 10, "block length", self.block_length.into())?;
        o.digits(11, 15, "record length", self.record_length.into())?;
        o.digits(16, 25, "block size (implementation use)", self.block_size.into())?;
        o.digits(51, 52, "buffer-offset length", self.buffer_offset_length.into())?;
        Ok(o.rec)
    }

    pub fn parse(rec: &[u8]) -> Result<FileLabel2, TapeError> {
        let i = In::new(rec, "HDR2/EOF2/EOV2")?;
        let kind = kind_of(&i, b'2')?;
        let i = In {
            label: format!("{}2", String::from_utf8_lossy(kind.prefix())),
            ..i
        };
        i.literal(5, 5, "record format", b"U")?;
        let block_length = i.number(6, 10, "block length")?;
        let record_length = i.number(11, 15, "record length")?;
        let block_size = i.digits(16, 25, "block size (implementation use)")?;
        i.spaces(26, 50, "implementation use")?;
        let buffer_offset_length = i.number(51, 52, "buffer-offset length")?;
        i.spaces(53, 80, "reserved")?;
        let block_size = u32::try_from(block_size)
            .map_err(|_| i.err(16, 25, "block size (implementation use)", "a block size below 2^32"))?;
        let want_bl = if block_size <= 99_999 { block_size } else { 0 };
        if block_length != want_bl {
            return Err(i.err(
                6,
                10,
                "block length",
                format!("{want_bl:05} (the block size {block_size})"),
            ));
        }
        if record_length != block_length {
            return Err(i.err(11, 15, "record length", format!("{block_length:05} (the block length)")));
        }
        if buffer_offset_length != 0 {
            return Err(i.err(51, 52, "buffer-offset length", "\"00\""));
        }
        Ok(FileLabel2 {
            kind,
            record_format: b'U',
            block_length,
            record_length,
            block_size,
            buffer_offset_length,
        })
    }
}
