//! The fields of one 80-byte label record: a-characters, digits and dates,
//! written with every value checked to fit ([`Out`]) and read strictly
//! ([`In`]), errors naming the label, positions and field.

use crate::tape::error::Location;
use crate::tape::TapeError;

use super::LABEL_LEN;

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
        // year <= 2999 and days < 366, checked by the loop.
        let fits = |n: u64| u16::try_from(n).unwrap_or(u16::MAX);
        Ok(LabelDate {
            year: fits(year),
            day_of_year: fits(days + 1),
        })
    }

    pub(super) fn encode(date: Option<LabelDate>) -> Result<[u8; 6], TapeError> {
        let Some(d) = date else { return Ok(*b" 00000") };
        let c = match d.year {
            1900..=1999 => b' ',
            2000..=2999 => b'0' + u8::try_from((d.year - 2000) / 100).unwrap_or(9),
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

/// Fills an 80-byte label, checking every value fits its field.
pub(super) struct Out {
    pub(super) rec: [u8; LABEL_LEN],
    label: &'static str,
}

impl Out {
    pub(super) fn new(label: &'static str) -> Out {
        Out {
            rec: [b' '; LABEL_LEN],
            label,
        }
    }
    pub(super) fn raw(&mut self, from: usize, bytes: &[u8]) {
        if let Some(dst) = self.rec.get_mut(from - 1..from - 1 + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    pub(super) fn text(&mut self, from: usize, to: usize, field: &str, value: &str) -> Result<(), TapeError> {
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
    pub(super) fn digits(&mut self, from: usize, to: usize, field: &str, value: u64) -> Result<(), TapeError> {
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
pub(super) struct In<'a> {
    pub(super) rec: &'a [u8],
    pub(super) label: String,
}

impl<'a> In<'a> {
    pub(super) fn new(rec: &'a [u8], label: &str) -> Result<In<'a>, TapeError> {
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
    pub(super) fn field(&self, from: usize, to: usize) -> &'a [u8] {
        self.rec.get(from - 1..to).unwrap_or(&[])
    }
    pub(super) fn err(&self, from: usize, to: usize, field: &str, expected: impl Into<String>) -> TapeError {
        let found = self.field(from, to);
        TapeError::corrupt(
            Location::offset(from as u64 - 1),
            format!("{} label positions {from}-{to} ({field})", self.label),
            expected,
            format!("{:?}", found.escape_ascii().to_string()),
        )
    }
    pub(super) fn literal(&self, from: usize, to: usize, field: &str, want: &[u8]) -> Result<(), TapeError> {
        if self.field(from, to) != want {
            return Err(self.err(from, to, field, format!("{:?}", want.escape_ascii().to_string())));
        }
        Ok(())
    }
    pub(super) fn spaces(&self, from: usize, to: usize, field: &str) -> Result<(), TapeError> {
        if !self.field(from, to).iter().all(|&c| c == b' ') {
            return Err(self.err(from, to, field, "spaces"));
        }
        Ok(())
    }
    /// A left-justified a-character field, trailing spaces removed.
    pub(super) fn text(&self, from: usize, to: usize, field: &str) -> Result<String, TapeError> {
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
    pub(super) fn digits(&self, from: usize, to: usize, field: &str) -> Result<u64, TapeError> {
        let f = self.field(from, to);
        if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
            return Err(self.err(from, to, field, format!("{} decimal digits", to - from + 1)));
        }
        Ok(f.iter().fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0')))
    }
    /// Digits `from..=to` as a `T`, refused if the value does not fit it.
    pub(super) fn number<T: TryFrom<u64>>(&self, from: usize, to: usize, field: &str) -> Result<T, TapeError> {
        let v = self.digits(from, to, field)?;
        T::try_from(v).map_err(|_| {
            let bits = std::mem::size_of::<T>() * 8;
            self.err(from, to, field, format!("a number that fits {bits} bits"))
        })
    }
    pub(super) fn byte(&self, pos: usize) -> u8 {
        self.field(pos, pos).first().copied().unwrap_or(0)
    }
    pub(super) fn date(&self, from: usize, field: &str) -> Result<Option<LabelDate>, TapeError> {
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
        let yy: u16 = self.number(from + 1, from + 2, field)?;
        let ddd: u16 = self.number(from + 3, from + 5, field)?;
        let year = century + yy;
        let max = if is_leap(year as u64) { 366 } else { 365 };
        if ddd == 0 || ddd > max {
            return Err(self.err(from, to, field, format!("a day of the year 1 to {max}")));
        }
        Ok(Some(LabelDate { year, day_of_year: ddd }))
    }
}
