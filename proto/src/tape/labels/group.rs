//! The label groups: VOL1 HDR1 HDR2 at the start of a tape (tape file 0),
//! EOF1 EOF2 or EOV1 EOV2 at its end.

use crate::tape::error::Location;
use crate::tape::TapeError;

use super::{FileLabel1, FileLabel2, LabelKind, Vol1, LABEL_LEN};

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
