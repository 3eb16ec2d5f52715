//! VOL1, the volume label: the first record of a tape.

use crate::tape::TapeError;

use super::field::{is_a_char, In, Out};
use super::{IMPLEMENTATION_ID, LABEL_LEN, LABEL_STANDARD_VERSION};

/// VOL1: the volume label (80 bytes; positions 1-based and inclusive):
///
/// | pos   | len | field                                   | written        |
/// |-------|----:|-----------------------------------------|----------------|
/// | 1-3   | 3   | label identifier                        | `VOL`          |
/// | 4     | 1   | label number                            | `1`            |
/// | 5-10  | 6   | volume identifier                       | tape label     |
/// | 11    | 1   | volume accessibility                    | space          |
/// | 12-24 | 13  | reserved                                | spaces         |
/// | 25-37 | 13  | implementation identifier               | `DMCLUSTER`    |
/// | 38-51 | 14  | owner identifier                        | params.owner   |
/// | 52-79 | 28  | reserved                                | spaces         |
/// | 80    | 1   | label standard version                  | `4`            |
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
