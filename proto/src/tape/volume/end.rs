//! The end of a labelled tape: found by spacing over records (no data
//! read) to the two tape marks of the logical end; then the end labels,
//! the DIRECTORY and the CATALOG before them are read and checked.

use crate::tape::block::{Block, BlockDevice};
use crate::tape::bytes::ENVELOPE_OVERHEAD;
use crate::tape::directory::{Catalog, Directory, MAX_DIRECTORY_PAYLOAD};
use crate::tape::error::Location;
use crate::tape::file::read_file;
use crate::tape::labels::{EndLabels, LABEL_LEN};
use crate::tape::TapeError;

use super::head::Head;
use super::FIRST_DATA_FILE;

/// How a tape ends, found by spacing over records (no data read) and
/// reading the end labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeEnd {
    /// Finished: DIRECTORY at `directory_file`, then NODE-TRAILER, CATALOG,
    /// the end labels and the logical end.
    Finished { directory_file: u32, labels: EndLabels },
    /// Never finished: tape files before `next_file` are complete (ended by
    /// a tape mark); `next_file` is empty or, when `torn`, was cut short.
    Unfinished { next_file: u32, torn: bool },
}

/// Space to the end of the tape (no data read) and, if it ends with two tape
/// marks, read and check the end labels.
pub(super) fn find_end<D: BlockDevice + ?Sized>(dev: &mut D, label: &str) -> Result<TapeEnd, TapeError> {
    let ctx = |e: TapeError| e.within(Some(label), None, None);
    dev.locate_file(FIRST_DATA_FILE).map_err(ctx)?;
    let mut records = 0u64;
    loop {
        match dev.skip_block() {
            Ok(Block::Record(_)) => records += 1,
            Ok(Block::FileMark) if records == 0 => break,
            Ok(Block::FileMark) => records = 0,
            Ok(Block::EndOfData) => {
                return Ok(TapeEnd::Unfinished {
                    next_file: dev.position().file,
                    torn: records > 0,
                })
            }
            Err(e) if e.is_truncated() => {
                return Ok(TapeEnd::Unfinished {
                    next_file: dev.position().file,
                    torn: true,
                })
            }
            Err(e) => return Err(ctx(e)),
        }
    }
    // Two tape marks: tape file `empty` is empty, the end labels precede it.
    let empty = dev.position().file.saturating_sub(1);
    let end_file = empty.saturating_sub(1);
    if end_file < FIRST_DATA_FILE + 3 {
        return Err(TapeError::corrupt(
            Location {
                label: Some(label.to_owned()),
                file: Some(empty),
                ..Location::default()
            },
            "end of tape",
            "DIRECTORY, NODE-TRAILER, CATALOG and end labels before the logical end (two tape marks)",
            format!("the logical end after tape file {end_file}"),
        ));
    }
    dev.locate_file(end_file).map_err(ctx)?;
    let mut recs = Vec::new();
    let mut buf = Vec::new();
    loop {
        let pos = dev.position();
        match dev.read_block(&mut buf, LABEL_LEN).map_err(ctx)? {
            Block::Record(_) if recs.len() < 3 => recs.push(buf.clone()),
            Block::Record(_) => {
                return Err(TapeError::corrupt(
                    Location {
                        label: Some(label.to_owned()),
                        ..Location::record(pos.file, pos.record)
                    },
                    "end label group",
                    "2 records (EOF1 EOF2 or EOV1 EOV2)",
                    "more records",
                ))
            }
            _ => break,
        }
    }
    let labels = EndLabels::parse(&recs, end_file).map_err(ctx)?;
    Ok(TapeEnd::Finished {
        directory_file: end_file - 3,
        labels,
    })
}

pub(super) fn read_directory_at<D: BlockDevice + ?Sized>(
    dev: &mut D,
    head: &Head,
    file: u32,
) -> Result<Directory, TapeError> {
    let label = head.header.label.as_str();
    let bs = head.header.block_size as usize;
    let ctx = |e: TapeError| e.within(Some(label), Some(file), Some(bs));
    dev.locate_file(file).map_err(ctx)?;
    let (bytes, _) = read_file(dev, bs, (MAX_DIRECTORY_PAYLOAD + ENVELOPE_OVERHEAD) as u64).map_err(ctx)?;
    let d = Directory::decode(&bytes).map_err(ctx)?;
    let at = || Location {
        label: Some(label.to_owned()),
        file: Some(file),
        ..Location::default()
    };
    if d.label != head.header.label || d.media_set != head.header.media_set || d.sequence != head.header.sequence {
        return Err(TapeError::corrupt(
            at(),
            "DIRECTORY",
            format!(
                "tape {:?} media set {} seq {}",
                head.header.label, head.header.media_set, head.header.sequence
            ),
            format!("tape {:?} media set {} seq {}", d.label, d.media_set, d.sequence),
        ));
    }
    let want = file.saturating_sub(FIRST_DATA_FILE) as usize;
    if d.entries.len() != want {
        return Err(TapeError::corrupt(
            at(),
            "DIRECTORY",
            format!("{want} entries (tape files 2 to {})", file.saturating_sub(1)),
            format!("{} entries", d.entries.len()),
        ));
    }
    for (want, (k, e)) in (FIRST_DATA_FILE..).zip(d.entries.iter().enumerate()) {
        if e.file_number != want {
            return Err(TapeError::corrupt(
                at(),
                format!("DIRECTORY entry {k}"),
                format!("tape file {want}"),
                format!("tape file {}", e.file_number),
            ));
        }
    }
    Ok(d)
}

pub(super) fn read_catalog_at<D: BlockDevice + ?Sized>(
    dev: &mut D,
    head: &Head,
    file: u32,
) -> Result<Catalog, TapeError> {
    let label = head.header.label.as_str();
    let bs = head.header.block_size as usize;
    let ctx = |e: TapeError| e.within(Some(label), Some(file), Some(bs));
    dev.locate_file(file).map_err(ctx)?;
    let (bytes, _) = read_file(dev, bs, (MAX_DIRECTORY_PAYLOAD + ENVELOPE_OVERHEAD) as u64).map_err(ctx)?;
    let c = Catalog::decode(&bytes).map_err(ctx)?;
    if c.label != head.header.label || c.media_set != head.header.media_set {
        return Err(TapeError::corrupt(
            Location {
                label: Some(label.to_owned()),
                file: Some(file),
                ..Location::default()
            },
            "CATALOG",
            format!("tape {:?} media set {}", head.header.label, head.header.media_set),
            format!("tape {:?} media set {}", c.label, c.media_set),
        ));
    }
    Ok(c)
}
