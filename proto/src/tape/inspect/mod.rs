//! Whole-tape reports with no database: [`inspect()`] lists every tape file,
//! [`verify()`] checks every structure, checksum and cross-reference.
//!
//! Both read the tape from the beginning to its logical end (two tape
//! marks) or its end of data, one tape file at a time, with bounded memory:
//! segments are checked as a stream, other structures are bounded by their
//! size limits. A damaged file is reported and the scan goes on where the
//! container allows it.
//!
//! [`scan_tape`] (here) reads the tape file by file with
//! [`super::scan::scan_file`]; `report` turns the scan into a listing,
//! `verify` checks it as a whole.

mod report;
mod verify;

use crate::tape::block::BlockDevice;
use crate::tape::TapeError;

use report::report_from;

pub use super::scan::{scan_file, FileContent, FileEnd, MetadataSummary, ScannedFile, ScannedKind};
pub use report::{FileReport, TapeReport};
pub use verify::{verify, Problem, VerifyReport};

/// How a whole-tape scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStop {
    /// Two tape marks in a row: tape file `empty_file` is empty.
    LogicalEnd { empty_file: u32 },
    /// The recorded data ends (no logical end: the tape was never finished).
    EndOfData,
    /// The container is damaged and could not be read further.
    Error(String),
}

/// Scan the whole tape from the beginning, keeping every file's result.
pub fn scan_tape<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<(Vec<ScannedFile>, ScanStop), TapeError> {
    dev.rewind()?;
    let mut files = Vec::new();
    let mut label: Option<String> = None;
    let mut block_size: Option<usize> = None;
    loop {
        let file = dev.position().file;
        let s = scan_file(dev, label.as_deref(), if file == 0 { None } else { block_size });
        match &s.content {
            Some(FileContent::VolumeLabels(l)) if file == 0 => label = Some(l.vol1.volume_id.clone()),
            Some(FileContent::NodeHeader(h)) if file == 1 => block_size = Some(h.block_size as usize),
            _ => {}
        }
        let stop = match s.end {
            FileEnd::TapeMark if s.stats.records == 0 => Some(ScanStop::LogicalEnd { empty_file: file }),
            FileEnd::TapeMark => None,
            FileEnd::EndOfData => Some(ScanStop::EndOfData),
            FileEnd::Torn | FileEnd::Broken => Some(ScanStop::Error(
                s.problem.as_ref().map(ToString::to_string).unwrap_or_default(),
            )),
        };
        if s.stats.records > 0 || s.problem.is_some() {
            files.push(s);
        }
        if let Some(stop) = stop {
            return Ok((files, stop));
        }
    }
}

/// List every tape file by scanning the whole tape (no database needed).
pub fn inspect<D: BlockDevice>(mut dev: D) -> Result<TapeReport, TapeError> {
    let (files, stop) = scan_tape(&mut dev)?;
    Ok(report_from(&files, stop))
}
