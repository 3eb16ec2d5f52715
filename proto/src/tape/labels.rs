//! Layer 3: ANSI X3.27 / ECMA-13 (4th edition) tape labels: 80-byte ASCII
//! records. Positions below are 1-based and inclusive, as in the standards.
//!
//! VOL1 (volume label):
//!
//! | pos   | len | field                                   | written        |
//! |-------|----:|-----------------------------------------|----------------|
//! | 1-3   | 3   | label identifier                        | `VOL`          |
//! | 4     | 1   | label number                            | `1`            |
//! | 5-10  | 6   | volume identifier                       | tape label     |
//! | 11    | 1   | volume accessibility                    | space          |
//! | 12-24 | 13  | reserved                                | spaces         |
//! | 25-37 | 13  | implementation identifier               | `DMCLUSTER`    |
//! | 38-51 | 14  | owner identifier                        | params.owner   |
//! | 52-79 | 28  | reserved                                | spaces         |
//! | 80    | 1   | label standard version                  | `4`            |
//!
//! HDR1 / EOF1 / EOV1 (first file label):
//!
//! | pos   | len | field                        | written                                  |
//! |-------|----:|------------------------------|------------------------------------------|
//! | 1-4   | 4   | label identifier and number  | `HDR1` / `EOF1` / `EOV1`                  |
//! | 5-21  | 17  | file identifier              | `M` + media set id, 16 hex digits         |
//! | 22-27 | 6   | file-set identifier          | tape label                               |
//! | 28-31 | 4   | file section number          | media-set sequence of this tape          |
//! | 32-35 | 4   | file sequence number         | `0001`                                   |
//! | 36-39 | 4   | generation number            | `0001`                                   |
//! | 40-41 | 2   | generation version number    | `00`                                     |
//! | 42-47 | 6   | creation date                | ` yyddd` (19xx) or `cyyddd` (c=0: 20xx)  |
//! | 48-53 | 6   | expiration date              | ` 00000` (none)                          |
//! | 54    | 1   | file accessibility           | space                                    |
//! | 55-60 | 6   | block count                  | HDR1: `000000`; EOF1/EOV1: see below     |
//! | 61-73 | 13  | implementation identifier    | `DMCLUSTER`                              |
//! | 74-80 | 7   | reserved                     | spaces                                   |
//!
//! Block count in EOF1/EOV1: the number of data records written between the
//! tape mark after HDR2 and the EOF/EOV labels (NODE-HEADER, data files,
//! DIRECTORY, NODE-TRAILER and CATALOG; tape marks are not counted), modulo
//! 1,000,000.
//!
//! HDR2 / EOF2 / EOV2 (second file label):
//!
//! | pos   | len | field                        | written                                   |
//! |-------|----:|------------------------------|-------------------------------------------|
//! | 1-4   | 4   | label identifier and number  | `HDR2` / `EOF2` / `EOV2`                   |
//! | 5     | 1   | record format                | `U` (undefined: one record = one block)   |
//! | 6-10  | 5   | block length                 | block size, or `00000` if above 99999     |
//! | 11-15 | 5   | record length                | same as the block length                  |
//! | 16-50 | 35  | implementation use           | 16-25: block size, 10 digits; 26-50 spaces |
//! | 51-52 | 2   | buffer-offset length         | `00`                                      |
//! | 53-80 | 28  | reserved                     | spaces                                    |
//!
//! Parsing is strict: every position is checked, and an error names the
//! label, the positions and the field, what was expected and what was found.

use super::error::Location;
use super::TapeError;

/// Length of every label record.
pub const LABEL_LEN: usize = 80;
/// Implementation identifier written in VOL1 and HDR1/EOF1/EOV1.
pub const IMPLEMENTATION_ID: &str = "DMCLUSTER";
/// The label standard version written in VOL1 position 80.
pub const LABEL_STANDARD_VERSION: u8 = b'4';

/// ANSI "a-characters": the only characters allowed in label text fields.
pub fn is_a_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || b" !\"%&'()*+,-./:;<=>?_".contains(&c)
}

/// A date in a label: year and day of the year (1..=366).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelDate {
    pub year: u16,
    pub day_of_year: u16,
}

// `is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn is_leap(y: u64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

impl LabelDate {
    /// The UTC date of a unix timestamp. Years past 2999 cannot be written.
    pub fn from_unix(secs: u64) -> Result<LabelDate, TapeError> {
        let mut days = secs / 86_400;
        let mut year = 1970u64;
        loop {
            let len = if is_leap(year) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
            if year > 2999 {
                return Err(TapeError::invalid(
                    "label date",
                    "a time before the year 3000",
                    format!("unix time {secs}"),
                ));
            }
        }
        Ok(LabelDate {
            year: year as u16,
            day_of_year: days as u16 + 1,
        })
    }

    fn encode(date: Option<LabelDate>) -> Result<[u8; 6], TapeError> {
        let Some(d) = date else { return Ok(*b" 00000") };
        let c = match d.year {
            1900..=1999 => b' ',
            2000..=2999 => b'0' + ((d.year - 2000) / 100) as u8,
            _ => {
                return Err(TapeError::invalid(
                    "label date",
                    "a year from 1900 to 2999",
                    d.year.to_string(),
                ))
            }
        };
        let max_day = if is_leap(d.year as u64) { 366 } else { 365 };
        if d.day_of_year == 0 || d.day_of_year > max_day {
            return Err(TapeError::invalid(
                "label date",
                format!("a day of the year 1 to {max_day}"),
                d.day_of_year.to_string(),
            ));
        }
        let s = format!("{:02}{:03}", d.year % 100, d.day_of_year);
        let mut out = [c; 6];
        for (o, d) in out.iter_mut().skip(1).zip(s.bytes()) {
            *o = d;
        }
        Ok(out)
    }
}

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
    fn prefix(self) -> &'static [u8; 3] {
        match self {
            LabelKind::Hdr => b"HDR",
            LabelKind::Eof => b"EOF",
            LabelKind::Eov => b"EOV",
        }
    }
}

/// VOL1: the volume label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vol1 {
    /// Volume identifier (serial), 1 to 6 a-characters.
    pub volume_id: String,
    /// Volume accessibility (position 11); space = unrestricted.
    pub accessibility: u8,
    /// Implementation identifier (positions 25-37).
    pub implementation_id: String,
    /// Owner identifier (positions 38-51).
    pub owner_id: String,
    /// Label standard version (position 80).
    pub label_version: u8,
}

/// HDR1 / EOF1 / EOV1.
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
    /// Block count (positions 55-60), see the module docs.
    pub block_count: u32,
    pub implementation_id: String,
}

/// HDR2 / EOF2 / EOV2.
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

/// Fills an 80-byte label, checking every value fits its field.
struct Out {
    rec: [u8; LABEL_LEN],
    label: &'static str,
}

impl Out {
    fn new(label: &'static str) -> Out {
        Out {
            rec: [b' '; LABEL_LEN],
            label,
        }
    }
    fn raw(&mut self, from: usize, bytes: &[u8]) {
        if let Some(dst) = self.rec.get_mut(from - 1..from - 1 + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    fn text(&mut self, from: usize, to: usize, field: &str, value: &str) -> Result<(), TapeError> {
        let width = to - from + 1;
        if value.len() > width || !value.bytes().all(is_a_char) {
            return Err(TapeError::invalid(
                format!("{} positions {from}-{to} ({field})", self.label),
                format!("at most {width} a-characters (A-Z, 0-9, space, !\"%&'()*+,-./:;<=>?_)"),
                format!("{value:?}"),
            ));
        }
        self.raw(from, value.as_bytes());
        Ok(())
    }
    fn digits(&mut self, from: usize, to: usize, field: &str, value: u64) -> Result<(), TapeError> {
        let width = to - from + 1;
        let s = format!("{value:0width$}");
        if s.len() != width {
            return Err(TapeError::invalid(
                format!("{} positions {from}-{to} ({field})", self.label),
                format!("a number of at most {width} digits"),
                value.to_string(),
            ));
        }
        self.raw(from, s.as_bytes());
        Ok(())
    }
}

/// Reads an 80-byte label strictly.
struct In<'a> {
    rec: &'a [u8],
    label: String,
}

impl<'a> In<'a> {
    fn new(rec: &'a [u8], label: &str) -> Result<In<'a>, TapeError> {
        if rec.len() != LABEL_LEN {
            return Err(TapeError::corrupt(
                Location::default(),
                format!("{label} label"),
                format!("a record of {LABEL_LEN} bytes"),
                format!("{} bytes", rec.len()),
            ));
        }
        Ok(In {
            rec,
            label: label.to_owned(),
        })
    }
    fn field(&self, from: usize, to: usize) -> &'a [u8] {
        self.rec.get(from - 1..to).unwrap_or(&[])
    }
    fn err(&self, from: usize, to: usize, field: &str, expected: impl Into<String>) -> TapeError {
        let found = self.field(from, to);
        TapeError::corrupt(
            Location::offset(from as u64 - 1),
            format!("{} label positions {from}-{to} ({field})", self.label),
            expected,
            format!("{:?}", found.escape_ascii().to_string()),
        )
    }
    fn literal(&self, from: usize, to: usize, field: &str, want: &[u8]) -> Result<(), TapeError> {
        if self.field(from, to) != want {
            return Err(self.err(from, to, field, format!("{:?}", want.escape_ascii().to_string())));
        }
        Ok(())
    }
    fn spaces(&self, from: usize, to: usize, field: &str) -> Result<(), TapeError> {
        if !self.field(from, to).iter().all(|&c| c == b' ') {
            return Err(self.err(from, to, field, "spaces"));
        }
        Ok(())
    }
    /// A left-justified a-character field, trailing spaces removed.
    fn text(&self, from: usize, to: usize, field: &str) -> Result<String, TapeError> {
        let f = self.field(from, to);
        if !f.iter().all(|&c| is_a_char(c)) {
            return Err(self.err(from, to, field, "a-characters (A-Z, 0-9, space, !\"%&'()*+,-./:;<=>?_)"));
        }
        let s = String::from_utf8_lossy(f);
        let t = s.trim_end();
        if t.starts_with(' ') {
            return Err(self.err(from, to, field, "a left-justified value"));
        }
        Ok(t.to_owned())
    }
    fn digits(&self, from: usize, to: usize, field: &str) -> Result<u64, TapeError> {
        let f = self.field(from, to);
        if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
            return Err(self.err(from, to, field, format!("{} decimal digits", to - from + 1)));
        }
        Ok(f.iter().fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0')))
    }
    fn byte(&self, pos: usize) -> u8 {
        self.field(pos, pos).first().copied().unwrap_or(0)
    }
    fn date(&self, from: usize, field: &str) -> Result<Option<LabelDate>, TapeError> {
        let to = from + 5;
        let f = self.field(from, to);
        if f == b" 00000" || f == b"000000" {
            return Ok(None);
        }
        let c = self.byte(from);
        let century: u16 = match c {
            b' ' => 1900,
            b'0'..=b'9' => 2000 + 100 * u16::from(c - b'0'),
            _ => return Err(self.err(from, to, field, "\" yyddd\" or \"cyyddd\"")),
        };
        let yy = self.digits(from + 1, from + 2, field)? as u16;
        let ddd = self.digits(from + 3, from + 5, field)? as u16;
        let year = century + yy;
        let max = if is_leap(year as u64) { 366 } else { 365 };
        if ddd == 0 || ddd > max {
            return Err(self.err(from, to, field, format!("a day of the year 1 to {max}")));
        }
        Ok(Some(LabelDate { year, day_of_year: ddd }))
    }
}

impl Vol1 {
    /// A VOL1 label as this system writes it.
    pub fn new(volume_id: &str, owner_id: &str) -> Vol1 {
        Vol1 {
            volume_id: volume_id.to_owned(),
            accessibility: b' ',
            implementation_id: IMPLEMENTATION_ID.to_owned(),
            owner_id: owner_id.to_owned(),
            label_version: LABEL_STANDARD_VERSION,
        }
    }

    pub fn encode(&self) -> Result<[u8; LABEL_LEN], TapeError> {
        let mut o = Out::new("VOL1");
        o.raw(1, b"VOL1");
        if self.volume_id.is_empty() {
            return Err(TapeError::invalid(
                "VOL1 positions 5-10 (volume identifier)",
                "1 to 6 a-characters",
                "\"\"",
            ));
        }
        o.text(5, 10, "volume identifier", &self.volume_id)?;
        o.text(11, 11, "accessibility", &char::from(self.accessibility).to_string())?;
        o.text(25, 37, "implementation identifier", &self.implementation_id)?;
        o.text(38, 51, "owner identifier", &self.owner_id)?;
        o.text(
            80,
            80,
            "label standard version",
            &char::from(self.label_version).to_string(),
        )?;
        Ok(o.rec)
    }

    pub fn parse(rec: &[u8]) -> Result<Vol1, TapeError> {
        let i = In::new(rec, "VOL1")?;
        i.literal(1, 4, "label identifier and number", b"VOL1")?;
        let volume_id = i.text(5, 10, "volume identifier")?;
        if volume_id.is_empty() {
            return Err(i.err(5, 10, "volume identifier", "1 to 6 a-characters"));
        }
        let accessibility = i.byte(11);
        if !is_a_char(accessibility) {
            return Err(i.err(11, 11, "accessibility", "an a-character"));
        }
        i.spaces(12, 24, "reserved")?;
        let implementation_id = i.text(25, 37, "implementation identifier")?;
        let owner_id = i.text(38, 51, "owner identifier")?;
        i.spaces(52, 79, "reserved")?;
        i.literal(80, 80, "label standard version", &[LABEL_STANDARD_VERSION])?;
        Ok(Vol1 {
            volume_id,
            accessibility,
            implementation_id,
            owner_id,
            label_version: LABEL_STANDARD_VERSION,
        })
    }
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
            file_section: i.digits(28, 31, "file section number")? as u16,
            file_sequence: i.digits(32, 35, "file sequence number")? as u16,
            generation: i.digits(36, 39, "generation number")? as u16,
            generation_version: i.digits(40, 41, "generation version number")? as u8,
            created: i.date(42, "creation date")?,
            expires: i.date(48, "expiration date")?,
            accessibility,
            block_count: i.digits(55, 60, "block count")? as u32,
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
        let block_length = i.digits(6, 10, "block length")? as u32;
        let record_length = i.digits(11, 15, "record length")? as u32;
        let block_size = i.digits(16, 25, "block size (implementation use)")?;
        i.spaces(26, 50, "implementation use")?;
        let buffer_offset_length = i.digits(51, 52, "buffer-offset length")? as u8;
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

/// The labels at the start of a tape: tape file 0 holds VOL1, HDR1, HDR2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeLabels {
    pub vol1: Vol1,
    pub hdr1: FileLabel1,
    pub hdr2: FileLabel2,
}

impl VolumeLabels {
    /// The labels this system writes on a new tape.
    pub fn new(
        volume_id: &str,
        owner_id: &str,
        media_set: u64,
        sequence: u32,
        block_size: u32,
        created_unix: u64,
    ) -> Result<VolumeLabels, TapeError> {
        let labels = VolumeLabels {
            vol1: Vol1::new(volume_id, owner_id),
            hdr1: FileLabel1::new(volume_id, media_set, sequence, created_unix)?,
            hdr2: FileLabel2::new(block_size),
        };
        labels.encode()?;
        Ok(labels)
    }

    /// The three 80-byte records.
    pub fn encode(&self) -> Result<[[u8; LABEL_LEN]; 3], TapeError> {
        if self.hdr1.kind != LabelKind::Hdr || self.hdr2.kind != LabelKind::Hdr {
            return Err(TapeError::invalid("volume labels", "HDR1 and HDR2", "EOF/EOV labels"));
        }
        Ok([self.vol1.encode()?, self.hdr1.encode()?, self.hdr2.encode()?])
    }

    /// Parse the three records of tape file 0. Errors give the record number.
    pub fn parse(records: &[Vec<u8>]) -> Result<VolumeLabels, TapeError> {
        if records.len() != 3 {
            return Err(TapeError::corrupt(
                Location {
                    file: Some(0),
                    ..Location::default()
                },
                "volume label group",
                "3 records (VOL1, HDR1, HDR2)",
                format!("{} records", records.len()),
            ));
        }
        let at = |r: u64, e: TapeError| {
            let mut e = e;
            if let Some(l) = e.location_mut() {
                l.file = Some(0);
                l.record = Some(r);
            }
            e
        };
        let rec = |n: usize| records.get(n).map(Vec::as_slice).unwrap_or(&[]);
        let vol1 = Vol1::parse(rec(0)).map_err(|e| at(0, e))?;
        let hdr1 = FileLabel1::parse(rec(1)).map_err(|e| at(1, e))?;
        let hdr2 = FileLabel2::parse(rec(2)).map_err(|e| at(2, e))?;
        if hdr1.kind != LabelKind::Hdr {
            return Err(at(
                1,
                TapeError::corrupt(Location::default(), "second label", "HDR1", format!("{:?}1", hdr1.kind)),
            ));
        }
        if hdr2.kind != LabelKind::Hdr {
            return Err(at(
                2,
                TapeError::corrupt(Location::default(), "third label", "HDR2", format!("{:?}2", hdr2.kind)),
            ));
        }
        Ok(VolumeLabels { vol1, hdr1, hdr2 })
    }
}

/// The labels at the end of a tape: EOF1 EOF2 or EOV1 EOV2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndLabels {
    pub label1: FileLabel1,
    pub label2: FileLabel2,
}

impl EndLabels {
    /// Whether the media set continues on another tape (EOV).
    pub fn continues(&self) -> bool {
        self.label1.kind == LabelKind::Eov
    }

    pub fn encode(&self) -> Result<[[u8; LABEL_LEN]; 2], TapeError> {
        Ok([self.label1.encode()?, self.label2.encode()?])
    }

    /// Parse the two records of the end-label tape file (`file`).
    pub fn parse(records: &[Vec<u8>], file: u32) -> Result<EndLabels, TapeError> {
        if records.len() != 2 {
            return Err(TapeError::corrupt(
                Location {
                    file: Some(file),
                    ..Location::default()
                },
                "end label group",
                "2 records (EOF1 EOF2 or EOV1 EOV2)",
                format!("{} records", records.len()),
            ));
        }
        let at = |r: u64, e: TapeError| {
            let mut e = e;
            if let Some(l) = e.location_mut() {
                l.file = Some(file);
                l.record = Some(r);
            }
            e
        };
        let rec = |n: usize| records.get(n).map(Vec::as_slice).unwrap_or(&[]);
        let label1 = FileLabel1::parse(rec(0)).map_err(|e| at(0, e))?;
        let label2 = FileLabel2::parse(rec(1)).map_err(|e| at(1, e))?;
        if label1.kind == LabelKind::Hdr || label2.kind != label1.kind {
            return Err(at(
                0,
                TapeError::corrupt(
                    Location::default(),
                    "end label group",
                    "EOF1 EOF2 or EOV1 EOV2",
                    format!("{:?}1 {:?}2", label1.kind, label2.kind),
                ),
            ));
        }
        Ok(EndLabels { label1, label2 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-01 12:00:00 UTC: day 61 of a leap year.
    const T: u64 = 1_709_294_400;

    #[test]
    fn dates() {
        assert_eq!(
            LabelDate::from_unix(0).unwrap(),
            LabelDate {
                year: 1970,
                day_of_year: 1
            }
        );
        assert_eq!(
            LabelDate::from_unix(T).unwrap(),
            LabelDate {
                year: 2024,
                day_of_year: 61
            }
        );
        assert_eq!(
            LabelDate::from_unix(1_735_603_200).unwrap(),
            LabelDate {
                year: 2024,
                day_of_year: 366
            }
        );
        assert_eq!(&LabelDate::encode(LabelDate::from_unix(T).ok()).unwrap(), b"024061");
        assert_eq!(&LabelDate::encode(LabelDate::from_unix(0).ok()).unwrap(), b" 70001");
        assert_eq!(&LabelDate::encode(None).unwrap(), b" 00000");
        assert!(LabelDate::from_unix(u64::MAX).is_err());
    }

    #[test]
    fn vol1_fields_are_at_their_positions() {
        let rec = Vol1::new("DMC001", "OPERATOR").encode().unwrap();
        let s = std::str::from_utf8(&rec).unwrap();
        assert_eq!(s.len(), 80);
        assert_eq!(&s[0..4], "VOL1");
        assert_eq!(&s[4..10], "DMC001");
        assert_eq!(&s[10..24], " ".repeat(14));
        assert_eq!(&s[24..37], "DMCLUSTER    ");
        assert_eq!(&s[37..51], "OPERATOR      ");
        assert_eq!(&s[51..79], " ".repeat(28));
        assert_eq!(&s[79..80], "4");
        assert_eq!(Vol1::parse(&rec).unwrap(), Vol1::new("DMC001", "OPERATOR"));
    }

    #[test]
    fn hdr_labels_are_at_their_positions() {
        let l = VolumeLabels::new("TAPE01", "OWNER", 0xABCD, 3, 65536, T).unwrap();
        let [v, h1, h2] = l.encode().unwrap();
        let h1s = std::str::from_utf8(&h1).unwrap();
        assert_eq!(
            h1s,
            [
                "HDR1",
                "M000000000000ABCD", // 5-21 file identifier: M + media set in hex
                "TAPE01",            // 22-27 file-set identifier
                "0003",              // 28-31 file section number = media-set sequence
                "0001",              // 32-35 file sequence number
                "0001",              // 36-39 generation number
                "00",                // 40-41 generation version number
                "024061",            // 42-47 creation date: 2024, day 61
                " 00000",            // 48-53 expiration date: none
                " ",                 // 54 accessibility
                "000000",            // 55-60 block count
                "DMCLUSTER    ",     // 61-73 implementation identifier
                "       ",           // 74-80 reserved
            ]
            .concat()
        );
        let h2s = std::str::from_utf8(&h2).unwrap();
        assert_eq!(&h2s[0..15], "HDR2U6553665536");
        assert_eq!(&h2s[15..25], "0000065536");
        assert_eq!(&h2s[50..52], "00");
        assert_eq!(h2s.len(), 80);
        let parsed = VolumeLabels::parse(&[v.to_vec(), h1.to_vec(), h2.to_vec()]).unwrap();
        assert_eq!(parsed, l);

        let eof1 = l.hdr1.end(false, 1_234_567);
        assert_eq!(eof1.block_count, 234_567);
        let e1 = eof1.encode().unwrap();
        assert_eq!(&e1[0..4], b"EOF1");
        assert_eq!(&e1[54..60], b"234567");
        let end = EndLabels {
            label1: l.hdr1.end(true, 5),
            label2: l.hdr2.end(true),
        };
        let [a, b] = end.encode().unwrap();
        assert_eq!(&a[0..4], b"EOV1");
        assert_eq!(&b[0..4], b"EOV2");
        let back = EndLabels::parse(&[a.to_vec(), b.to_vec()], 9).unwrap();
        assert!(back.continues());
        assert_eq!(back, end);
    }

    #[test]
    fn large_block_size_goes_to_implementation_use() {
        let h = FileLabel2::new(1 << 20);
        let rec = h.encode().unwrap();
        assert_eq!(&rec[5..15], b"0000000000");
        assert_eq!(&rec[15..25], b"0001048576");
        assert_eq!(FileLabel2::parse(&rec).unwrap(), h);
    }

    #[test]
    fn strict_parsing_names_the_field() {
        let rec = Vol1::new("DMC001", "").encode().unwrap();
        let mut bad = rec;
        bad[79] = b'3';
        let e = Vol1::parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains("positions 80-80 (label standard version)") && e.contains("\"3\""),
            "{e}"
        );
        let mut bad = rec;
        bad[15] = b'X';
        let e = Vol1::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("positions 12-24"), "{e}");
        let mut bad = rec;
        bad[5] = b'a';
        assert!(Vol1::parse(&bad).is_err(), "lower case is not an a-character");
        assert!(Vol1::parse(&rec[..79]).is_err());

        let h1 = FileLabel1::new("DMC001", 1, 1, T).unwrap().encode().unwrap();
        let mut bad = h1;
        bad[56] = b'x';
        let e = FileLabel1::parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains("HDR1 label positions 55-60 (block count)") && e.contains("decimal digits"),
            "{e}"
        );
        let mut bad = h1;
        bad[44..47].copy_from_slice(b"999"); // creation date 024061 -> 024999

        assert!(FileLabel1::parse(&bad).is_err(), "day 999");
        let mut bad = h1;
        bad[0..4].copy_from_slice(b"HDR3");
        assert!(FileLabel1::parse(&bad).is_err());

        let h2 = FileLabel2::new(4096).encode().unwrap();
        let mut bad = h2;
        bad[9] = b'7';
        let e = FileLabel2::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("block length"), "{e}");
    }

    #[test]
    fn encoding_refuses_what_does_not_fit() {
        assert!(Vol1::new("TOOLONG1", "").encode().is_err());
        assert!(Vol1::new("abc", "").encode().is_err());
        assert!(Vol1::new("", "").encode().is_err());
        assert!(Vol1::new("A", "OWNER NAME TOO LONG").encode().is_err());
        assert!(FileLabel1::new("A", 0, 0, T).is_err());
        assert!(FileLabel1::new("A", 0, 10_000, T).is_err());
    }
}
