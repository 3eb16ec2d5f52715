//! The head of a labelled tape: tape file 0 (VOL1 HDR1 HDR2) and tape
//! file 1 (NODE-HEADER), read and checked against each other.

use crate::tape::block::{Block, BlockDevice};
use crate::tape::bytes::ENVELOPE_OVERHEAD;
use crate::tape::error::Location;
use crate::tape::file::read_file;
use crate::tape::labels::{VolumeLabels, LABEL_LEN};
use crate::tape::node::{NodeHeader, MAX_NODE_PAYLOAD};
use crate::tape::{TapeError, MAX_BLOCK_SIZE};

/// Check that the labels and the node header describe the same tape.
pub(crate) fn check_head(labels: &VolumeLabels, header: &NodeHeader) -> Result<(), TapeError> {
    let at = || Location {
        label: Some(header.label.clone()),
        file: Some(1),
        ..Location::default()
    };
    let mismatch = |field: &str, expected: String, found: String| {
        TapeError::corrupt(
            at(),
            format!("NODE-HEADER field {field}"),
            format!("{expected} (from the labels)"),
            found,
        )
    };
    if header.label != labels.vol1.volume_id {
        return Err(mismatch(
            "label",
            format!("{:?}", labels.vol1.volume_id),
            format!("{:?}", header.label),
        ));
    }
    if header.block_size != labels.hdr2.block_size {
        return Err(mismatch(
            "block_size",
            labels.hdr2.block_size.to_string(),
            header.block_size.to_string(),
        ));
    }
    if header.sequence != u32::from(labels.hdr1.file_section) {
        return Err(mismatch(
            "sequence",
            labels.hdr1.file_section.to_string(),
            header.sequence.to_string(),
        ));
    }
    let file_id = format!("M{:016X}", header.media_set);
    if labels.hdr1.file_id != file_id {
        return Err(mismatch(
            "media_set",
            format!("HDR1 file identifier {:?}", labels.hdr1.file_id),
            format!("{} (file identifier {file_id:?})", header.media_set),
        ));
    }
    if labels.hdr1.file_set_id != labels.vol1.volume_id {
        return Err(TapeError::corrupt(
            Location {
                file: Some(0),
                record: Some(1),
                ..at()
            },
            "HDR1 file-set identifier",
            format!("{:?} (the volume identifier)", labels.vol1.volume_id),
            format!("{:?}", labels.hdr1.file_set_id),
        ));
    }
    Ok(())
}

/// Tape files 0 and 1 as read (or as written by a new tape's writer).
pub(super) struct Head {
    pub(super) labels: VolumeLabels,
    pub(super) header: NodeHeader,
    /// Records of tape file 1 (for the EOF1/EOV1 block count).
    pub(super) header_records: u64,
}

/// Read tape files 0 and 1: labels and node header.
pub(super) fn read_head<D: BlockDevice + ?Sized>(dev: &mut D) -> Result<Head, TapeError> {
    dev.rewind()?;
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let pos = dev.position();
        match dev.read_block(&mut buf, LABEL_LEN)? {
            Block::Record(_) if records.len() == 3 => {
                return Err(TapeError::corrupt(
                    Location::record(pos.file, pos.record),
                    "volume label group",
                    "a tape mark after VOL1 HDR1 HDR2",
                    "another record",
                ))
            }
            Block::Record(_) => records.push(buf.clone()),
            Block::FileMark => break,
            Block::EndOfData if records.is_empty() && pos.file == 0 => {
                return Err(TapeError::not_found(
                    Location::record(0, 0),
                    "a VOL1 label",
                    "the end of data (a blank tape)",
                ))
            }
            Block::EndOfData => {
                return Err(TapeError::truncated(
                    Location::record(pos.file, pos.record),
                    "the tape mark after the labels",
                    "the end of data",
                ))
            }
        }
    }
    let labels = VolumeLabels::parse(&records)?;
    let label = labels.vol1.volume_id.clone();
    let bs = labels.hdr2.block_size as usize;
    let (bytes, stats) = read_file(dev, MAX_BLOCK_SIZE, (MAX_NODE_PAYLOAD + ENVELOPE_OVERHEAD) as u64)
        .map_err(|e| e.within(Some(&label), Some(1), Some(bs)))?;
    let header = NodeHeader::decode(&bytes).map_err(|e| e.within(Some(&label), Some(1), Some(bs)))?;
    check_head(&labels, &header)?;
    Ok(Head {
        labels,
        header,
        header_records: stats.records,
    })
}
