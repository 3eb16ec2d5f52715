//! Capacity accounting of a [`TapeWriter`]: what a tape file costs on the
//! medium, what `finish` needs, and whether a data file still fits (see the
//! writer's docs on capacity).

use crate::num::to_usize;
use crate::tape::block::BlockDevice;
use crate::tape::bytes::ENVELOPE_OVERHEAD;
use crate::tape::directory::{ENTRY_BYTES, MAX_DIRECTORY_ENTRIES};
use crate::tape::error::Location;
use crate::tape::labels::LABEL_LEN;
use crate::tape::node::NodeTrailer;
use crate::tape::TapeError;

use super::TapeWriter;

/// Bytes of medium a tape file of `len` bytes takes on `dev` when cut into
/// records of `block_size` bytes (the last one shorter), tape mark included.
pub fn file_cost<D: BlockDevice + ?Sized>(dev: &D, block_size: usize, len: u64) -> u64 {
    let bs = block_size.max(1);
    let full = len / bs as u64;
    let rest = len % bs as u64;
    let mut cost = full.saturating_mul(dev.record_cost(bs));
    if rest > 0 {
        cost = cost.saturating_add(dev.record_cost(to_usize(rest)));
    }
    cost.saturating_add(dev.filemark_cost())
}

/// Bytes a CATALOG adds per ABS besides its object name and record:
/// abs_id, name length, has_metadata, metadata_file, segment count,
/// has_record.
const CATALOG_ABS_BYTES: u64 = 8 + 4 + 1 + 4 + 4 + 1;

impl<D: BlockDevice> TapeWriter<D> {
    /// Bytes of medium a data tape file of `len` bytes takes on this tape
    /// (records of the tape's block size, framing and tape mark included).
    pub fn file_cost(&self, len: u64) -> u64 {
        file_cost(&self.dev, self.block_size(), len)
    }

    /// An upper bound of the medium [`TapeWriter::finish`] needs with
    /// `extra_files` more data files that add `extra_catalog` bytes to the
    /// CATALOG's ABS part: DIRECTORY (exact), NODE-TRAILER (exact), CATALOG
    /// (exact but that a metadata file counts 37 bytes, which it does not
    /// take; records supplied at the end are not reserved), the end labels and the two tape marks.
    pub(super) fn reserve_with(&self, extra_files: u64, extra_catalog: u64) -> u64 {
        let h = &self.head.header;
        let n = self.entries.len() as u64 + extra_files;
        let label = h.label.len() as u64;
        let env = ENVELOPE_OVERHEAD as u64;
        let entry = ENTRY_BYTES as u64;
        let directory = env + (4 + label) + 8 + 4 + 4 + n * entry;
        let trailer = NodeTrailer {
            label: h.label.clone(),
            media_set: h.media_set,
            sequence: h.sequence,
            file_count: 0,
            data_bytes: 0,
            finished_unix: 0,
            directory_file: 0,
            continues: true,
        }
        .encode()
        .len() as u64;
        // `names` has one entry per ABS with a data file on the tape; the
        // records held are those of metadata files on it.
        let abs: u64 = self
            .names
            .values()
            .map(|s| CATALOG_ABS_BYTES + s.len() as u64)
            .sum::<u64>()
            + self.records.held_bytes()
            + extra_catalog;
        let catalog = env + (4 + label) + (4 + h.pool.len() as u64) + 8 + 4 + 4 + abs + n * entry;
        let bs = self.block_size();
        let labels = 2 * self.dev.record_cost(LABEL_LEN) + 2 * self.dev.filemark_cost();
        file_cost(&self.dev, bs, directory)
            + file_cost(&self.dev, bs, trailer)
            + file_cost(&self.dev, bs, catalog)
            + labels
    }

    /// Bytes of medium [`TapeWriter::finish`] needs now (an upper bound, a
    /// few bytes per ABS over; see the type's docs on capacity).
    pub fn finish_reserve(&self) -> u64 {
        self.reserve_with(0, 0)
    }

    /// Bytes the CATALOG grows by for a data file of ABS `abs_id` with
    /// object name `name` (`replaces`: a metadata file, whose name replaces
    /// the one known; a segment only sets a name not known yet).
    pub(super) fn catalog_growth(&self, abs_id: u64, name: &str, replaces: bool) -> u64 {
        match self.names.get(&abs_id) {
            None => CATALOG_ABS_BYTES + name.len() as u64,
            Some(old) if replaces || old.is_empty() => (name.len() as u64).saturating_sub(old.len() as u64),
            Some(_) => 0,
        }
    }

    /// Bytes of medium the next data tape file may take (its
    /// [`TapeWriter::file_cost`]) and still be accepted, if it belongs to an
    /// ABS already on the tape and does not lengthen its name (a new ABS
    /// needs 21 bytes more and its name); None on a device without a
    /// capacity. 0 inside the early-warning zone.
    pub fn remaining_before_warning(&self) -> Option<u64> {
        let ew = self.dev.early_warning_left()?;
        let phys = self.dev.capacity_left()?.saturating_sub(self.reserve_with(1, 0));
        Some(ew.min(phys))
    }

    /// Whether the tape is at or past the early-warning point.
    pub fn early_warning(&self) -> bool {
        self.dev.early_warning()
    }

    /// Refuse, with [`TapeError::TapeFull`], a data tape file of `len` bytes
    /// (adding `catalog` bytes to the CATALOG) that does not end before the
    /// early-warning point or would leave too little room to finish the tape.
    pub(super) fn check_fits(&self, len: u64, catalog: u64) -> Result<(), TapeError> {
        let needed = self.file_cost(len);
        let at = || Location {
            label: Some(self.label().to_owned()),
            ..Location::record(self.next_file, 0)
        };
        if let Some(ew) = self.dev.early_warning_left() {
            if needed > ew {
                return Err(TapeError::tape_full(at(), needed, ew));
            }
        }
        if let Some(left) = self.dev.capacity_left() {
            let reserve = self.reserve_with(1, catalog);
            if needed.saturating_add(reserve) > left {
                return Err(TapeError::tape_full(at(), needed, left.saturating_sub(reserve)));
            }
        }
        Ok(())
    }

    pub(super) fn check_room(&self) -> Result<(), TapeError> {
        if self.entries.len() >= MAX_DIRECTORY_ENTRIES {
            return Err(TapeError::invalid(
                format!("data file on tape {:?}", self.label()),
                format!("at most {MAX_DIRECTORY_ENTRIES} data files per tape"),
                "one more",
            ));
        }
        Ok(())
    }
}
