//! What a tape holds, read as a catalog needs it (a rebuild, an import of
//! a tape the catalog never saw): its labels and node header, how it ends,
//! its data files from the DIRECTORY (checked against the CATALOG; either
//! damaged or missing: scanned from the data files themselves) and the
//! bytes of its ABS metadata files. No data segment is read unless the
//! tape has to be scanned.

use rkyv::{Archive, Deserialize, Serialize};

use crate::tape::block::BlockDevice;
use crate::tape::directory::{DirectoryEntry, FileKind};
use crate::tape::management::Management;
use crate::tape::TapeError;

use super::{TapeEnd, TapeReader};

/// One tape, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeDescription {
    pub label: String,
    pub pool: String,
    pub media_set: u64,
    pub sequence: u32,
    pub created_unix: u64,
    /// Finished with EOV labels: its media set goes on on another tape.
    pub continues: bool,
    pub files: Vec<DirectoryEntry>,
    /// Every ABS-METADATA file: (tape file, its bytes, not decoded).
    pub metadata: Vec<(u32, Vec<u8>)>,
    /// What was not as expected (a damaged DIRECTORY or CATALOG, a tape
    /// never finished): how its data files were found instead.
    pub notes: Vec<String>,
    /// The CATALOG's records of ABSs whose metadata is not on this tape
    /// (their media set went on on another tape).
    pub continued: Vec<ContinuedAbs>,
}

/// An ABS a tape holds only segments of, as its CATALOG describes it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ContinuedAbs {
    pub abs_id: u64,
    pub object_name: String,
    pub record: Management,
}

/// Describe the tape `r` reads.
pub fn describe<D: BlockDevice>(r: &mut TapeReader<D>) -> Result<TapeDescription, TapeError> {
    let h = r.node_header().clone();
    let label = h.label.clone();
    let end = r.tape_end()?.clone();
    let continues = matches!(&end, TapeEnd::Finished { labels, .. } if labels.continues());
    let mut notes = Vec::new();
    let mut continued = Vec::new();
    let files = match end {
        TapeEnd::Finished { .. } => match r.read_directory().and_then(|d| r.read_catalog().map(|c| (d, c))) {
            Ok((Some(d), Some(c))) => {
                for a in c.entries {
                    if let (None, Some(record)) = (a.metadata_file, a.record) {
                        continued.push(ContinuedAbs {
                            abs_id: a.abs_id,
                            object_name: a.object_name,
                            record,
                        });
                    }
                }
                d.entries
            }
            Ok(_) => r.scan_data_files()?,
            Err(e) => {
                notes.push(format!(
                    "tape {label}: its DIRECTORY or CATALOG cannot be read ({e}); its data files were scanned instead"
                ));
                r.scan_data_files()?
            }
        },
        TapeEnd::Unfinished { .. } => {
            notes.push(format!("tape {label}: never finished; its data files were scanned"));
            r.scan_data_files()?
        }
    };
    let mut metadata = Vec::new();
    for e in files.iter().filter(|e| e.kind == FileKind::AbsMetadata) {
        metadata.push((e.file_number, r.read_abs_metadata_bytes(e.file_number)?));
    }
    Ok(TapeDescription {
        label,
        pool: h.pool,
        media_set: h.media_set,
        sequence: h.sequence,
        created_unix: h.created_unix,
        continues,
        files,
        metadata,
        notes,
        continued,
    })
}
