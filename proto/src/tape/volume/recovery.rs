//! Recovery of a tape that was never finished (a crash, a lost drive):
//! its directory is rebuilt from its complete data files, each of which
//! describes itself, and a damaged last file is discarded.

use std::collections::HashMap;

use crate::tape::block::BlockDevice;
use crate::tape::directory::DirectoryEntry;
use crate::tape::error::Location;
use crate::tape::management::Management;
use crate::tape::scan::{scan_file, FileContent, ScannedKind};
use crate::tape::skim::skim_file;
use crate::tape::TapeError;

use super::FIRST_DATA_FILE;

/// What a scan of the data files found.
pub(super) struct DataScan {
    pub(super) entries: Vec<DirectoryEntry>,
    pub(super) names: HashMap<u64, String>,
    /// The management records of the metadata files found.
    pub(super) records: HashMap<u64, Management>,
    /// First tape file after the data files.
    pub(super) next_file: u32,
}

/// Rebuild the directory of an unfinished tape by reading its complete data
/// files (`FIRST_DATA_FILE .. until`). Stops at a DIRECTORY, NODE-TRAILER,
/// CATALOG or end labels (a `finish` cut short). A last complete file that
/// fails its checks is discarded like a torn one; a bad file followed by
/// good ones is an error.
pub(super) fn scan_data_files<D: BlockDevice + ?Sized>(
    dev: &mut D,
    label: &str,
    block_size: usize,
    until: u32,
) -> Result<DataScan, TapeError> {
    let mut scan = DataScan {
        entries: Vec::new(),
        names: HashMap::new(),
        records: HashMap::new(),
        next_file: until,
    };
    for file in FIRST_DATA_FILE..until {
        dev.locate_file(file).map_err(|e| e.within(Some(label), None, None))?;
        // Every file but the last was synced before the next one began:
        // its ends suffice. The last may hold unsynced blocks of a crash.
        let s = if file + 1 == until {
            scan_file(dev, Some(label), Some(block_size))
        } else {
            skim_file(dev, label, block_size)
        };
        if let Some(problem) = s.problem {
            if file + 1 == until {
                tracing::warn!(tape = label, file, error = %problem, "discarding the damaged last tape file of an unfinished tape");
                scan.next_file = file;
                return Ok(scan);
            }
            return Err(problem);
        }
        match (&s.kind, &s.content) {
            (ScannedKind::Segment | ScannedKind::AbsMetadata, Some(c)) => {
                if let FileContent::AbsMetadata(m) = c {
                    scan.names.insert(m.abs_id, m.object_name.clone());
                    if let Some(r) = &m.management {
                        scan.records.insert(m.abs_id, r.clone());
                    }
                }
                if let Some(e) = s.directory_entry() {
                    scan.entries.push(e);
                }
            }
            (ScannedKind::Directory | ScannedKind::NodeTrailer | ScannedKind::Catalog | ScannedKind::EndLabels, _) => {
                scan.next_file = file;
                return Ok(scan);
            }
            (kind, _) => {
                return Err(TapeError::corrupt(
                    Location {
                        label: Some(label.to_owned()),
                        ..Location::record(file, 0)
                    },
                    "data tape file",
                    "a segment or ABS metadata",
                    kind.name(),
                ))
            }
        }
    }
    Ok(scan)
}
