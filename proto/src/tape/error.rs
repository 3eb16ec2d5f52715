use std::fmt;

use thiserror::Error;

/// Where on a tape (or in a structure held in memory) something happened.
///
/// Every part is optional: the lower layers fill in what they know (the block
/// device knows the tape file and record, a decoder knows the byte offset in
/// its structure and, for a segment, the ABS id and sequence) and the volume
/// layer adds the tape label. Tape files and records are numbered from 0:
/// tape file N is the one after the N-th tape mark, record R the R-th record
/// of that file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Volume serial of the tape (VOL1).
    pub label: Option<String>,
    /// Tape file number, from 0.
    pub file: Option<u32>,
    /// Record number within the tape file, from 0.
    pub record: Option<u64>,
    /// Segment identity: (ABS id, segment sequence).
    pub segment: Option<(u64, u32)>,
    /// Byte offset within the tape file (or the structure being decoded).
    pub offset: Option<u64>,
}

impl Location {
    /// A location that only knows a byte offset.
    pub fn offset(offset: u64) -> Location {
        Location {
            offset: Some(offset),
            ..Location::default()
        }
    }

    /// A location on the tape: file and record.
    pub fn record(file: u32, record: u64) -> Location {
        Location {
            file: Some(file),
            record: Some(record),
            ..Location::default()
        }
    }

    /// Fill in what is not known yet: the tape label, the tape file, and the
    /// record (derived from the byte offset when the file's records are
    /// `block_size` bytes each, the last one possibly short).
    pub fn fill(&mut self, label: Option<&str>, file: Option<u32>, block_size: Option<usize>) {
        if self.label.is_none() {
            self.label = label.map(str::to_owned);
        }
        if self.file.is_none() {
            self.file = file;
        }
        if self.record.is_none() {
            if let (Some(off), Some(bs)) = (self.offset, block_size) {
                if bs > 0 {
                    self.record = Some(off / bs as u64);
                }
            }
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(l) = &self.label {
            parts.push(format!("tape {l:?}"));
        }
        if let Some(n) = self.file {
            parts.push(format!("tape file {n}"));
        }
        if let Some(r) = self.record {
            parts.push(format!("record {r}"));
        }
        if let Some((abs, seq)) = self.segment {
            parts.push(format!("segment ABS {abs} seq {seq}"));
        }
        if let Some(o) = self.offset {
            parts.push(format!("byte {o}"));
        }
        if parts.is_empty() {
            f.write_str("an unknown position")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A tape could not be read or written. Every variant says what was
/// expected, what was found and where ([`Location`]).
#[derive(Debug, Error)]
pub enum TapeError {
    /// The device or image failed.
    #[error("tape I/O error while {action} at {at}: {source}")]
    Io {
        at: Box<Location>,
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// A structure or the container holds something it must not.
    #[error("corrupt {what} at {at}: expected {expected}, found {found}")]
    Corrupt {
        at: Box<Location>,
        what: String,
        expected: String,
        found: String,
    },
    /// A CRC32C stored on tape does not match the bytes it covers.
    #[error("checksum mismatch in {what} at {at}: expected CRC32C {computed:#010x} (computed over the bytes read), found {stored:#010x} stored on tape")]
    Checksum {
        at: Box<Location>,
        what: String,
        stored: u32,
        computed: u32,
    },
    /// Something is larger than the limit that bounds memory.
    #[error("{what} too large at {at}: expected at most {limit} bytes, found {found}")]
    TooLarge {
        at: Box<Location>,
        what: String,
        limit: u64,
        found: u64,
    },
    /// The tape (image) ends where more was expected: a torn write.
    #[error("tape ends early at {at}: expected {expected}, found {found}")]
    Truncated {
        at: Box<Location>,
        expected: String,
        found: String,
    },
    /// A tape file or structure that was asked for is not on the tape.
    #[error("not found at {at}: expected {expected}, found {found}")]
    NotFound {
        at: Box<Location>,
        expected: String,
        found: String,
    },
    /// A write would pass the physical end of the medium (the tape image's
    /// capacity). Nothing was written; the tape is as it was before the write.
    #[error("end of medium at {at}: the write needs {needed} bytes, {available} bytes are left before the physical end of the tape")]
    EndOfMedium {
        at: Box<Location>,
        needed: u64,
        available: u64,
    },
    /// A data tape file does not fit before the early-warning point (or would
    /// leave too little room to finish the tape). Nothing was written and the
    /// writer is still usable: finish the tape (`finish(true)`: EOV1/EOV2) and
    /// go on on the next one. `needed` and `available` are in bytes of the
    /// medium (for a SIMH image: image bytes, framing included).
    #[error("tape full at {at}: the tape file needs {needed} bytes of medium, {available} bytes are left before the early-warning point (finish this tape and continue on the next)")]
    TapeFull {
        at: Box<Location>,
        needed: u64,
        available: u64,
    },
    /// The caller asked for something the format cannot hold (nothing was written).
    #[error("invalid {what}: expected {expected}, found {found}")]
    Invalid {
        what: String,
        expected: String,
        found: String,
    },
}

impl TapeError {
    pub(crate) fn io(at: Location, action: impl Into<String>, source: std::io::Error) -> TapeError {
        TapeError::Io {
            at: Box::new(at),
            action: action.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        at: Location,
        what: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> TapeError {
        TapeError::Corrupt {
            at: Box::new(at),
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn checksum(at: Location, what: impl Into<String>, stored: u32, computed: u32) -> TapeError {
        TapeError::Checksum {
            at: Box::new(at),
            what: what.into(),
            stored,
            computed,
        }
    }

    pub(crate) fn too_large(at: Location, what: impl Into<String>, limit: u64, found: u64) -> TapeError {
        TapeError::TooLarge {
            at: Box::new(at),
            what: what.into(),
            limit,
            found,
        }
    }

    pub(crate) fn truncated(at: Location, expected: impl Into<String>, found: impl Into<String>) -> TapeError {
        TapeError::Truncated {
            at: Box::new(at),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn not_found(at: Location, expected: impl Into<String>, found: impl Into<String>) -> TapeError {
        TapeError::NotFound {
            at: Box::new(at),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn end_of_medium(at: Location, needed: u64, available: u64) -> TapeError {
        TapeError::EndOfMedium {
            at: Box::new(at),
            needed,
            available,
        }
    }

    pub(crate) fn tape_full(at: Location, needed: u64, available: u64) -> TapeError {
        TapeError::TapeFull {
            at: Box::new(at),
            needed,
            available,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> TapeError {
        TapeError::Invalid {
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Where the error happened (None for [`TapeError::Invalid`]).
    pub fn location(&self) -> Option<&Location> {
        match self {
            TapeError::Io { at, .. }
            | TapeError::Corrupt { at, .. }
            | TapeError::Checksum { at, .. }
            | TapeError::TooLarge { at, .. }
            | TapeError::Truncated { at, .. }
            | TapeError::NotFound { at, .. }
            | TapeError::EndOfMedium { at, .. }
            | TapeError::TapeFull { at, .. } => Some(&**at),
            TapeError::Invalid { .. } => None,
        }
    }

    /// Mutable access to the location, to add what an upper layer knows.
    pub fn location_mut(&mut self) -> Option<&mut Location> {
        match self {
            TapeError::Io { at, .. }
            | TapeError::Corrupt { at, .. }
            | TapeError::Checksum { at, .. }
            | TapeError::TooLarge { at, .. }
            | TapeError::Truncated { at, .. }
            | TapeError::NotFound { at, .. }
            | TapeError::EndOfMedium { at, .. }
            | TapeError::TapeFull { at, .. } => Some(&mut **at),
            TapeError::Invalid { .. } => None,
        }
    }

    /// Fill in the tape label, tape file and (from the byte offset) record
    /// where the error does not say them yet. See [`Location::fill`].
    pub fn within(mut self, label: Option<&str>, file: Option<u32>, block_size: Option<usize>) -> TapeError {
        if let Some(at) = self.location_mut() {
            at.fill(label, file, block_size);
        }
        self
    }

    /// Whether the error means the tape ends before a structure or tape file
    /// is complete (a torn write), as opposed to wrong bytes.
    pub fn is_truncated(&self) -> bool {
        matches!(self, TapeError::Truncated { .. })
    }

    /// Whether a data tape file was refused because it does not fit before
    /// the early-warning point ([`TapeError::TapeFull`]): nothing was
    /// written; finish the tape with `continues = true` and use the next one.
    pub fn is_tape_full(&self) -> bool {
        matches!(self, TapeError::TapeFull { .. })
    }

    /// Whether a write was refused at the physical end of the medium
    /// ([`TapeError::EndOfMedium`]); nothing was written.
    pub fn is_end_of_medium(&self) -> bool {
        matches!(self, TapeError::EndOfMedium { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_names_every_part() {
        let at = Location {
            label: Some("DMC001".into()),
            file: Some(5),
            record: Some(3),
            segment: Some((42, 7)),
            offset: Some(1234),
        };
        assert_eq!(
            at.to_string(),
            "tape \"DMC001\", tape file 5, record 3, segment ABS 42 seq 7, byte 1234"
        );
        assert_eq!(Location::default().to_string(), "an unknown position");
    }

    #[test]
    fn within_fills_record_from_offset() {
        let e = TapeError::corrupt(Location::offset(1000), "thing", "a", "b");
        let e = e.within(Some("T1"), Some(4), Some(256));
        let at = e.location().unwrap();
        assert_eq!(at.record, Some(3));
        assert_eq!(at.file, Some(4));
        assert_eq!(at.label.as_deref(), Some("T1"));
        let msg = e.to_string();
        assert!(
            msg.contains("expected a") && msg.contains("found b") && msg.contains("tape file 4"),
            "{msg}"
        );
    }
}
