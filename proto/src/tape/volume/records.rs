//! The management records a [`super::TapeWriter`] puts in the tape's
//! CATALOG (see [`crate::tape::directory`]): per ABS with a data file on
//! the tape, the record of its metadata when that is on the tape (or was,
//! in the CATALOG of a tape opened for append), else the record its writer
//! supplied before finishing, completed with the segments written to this
//! tape that the supplied record did not place yet.

use std::collections::HashMap;

use crate::tape::bytes::ByteWriter;
use crate::tape::management::{Management, Placement};

/// Records of the ABSs on one tape.
#[derive(Debug, Default)]
pub(super) struct CatalogRecords {
    /// Records the finish reserve counts: (record, its encoded bytes).
    held: HashMap<u64, (Management, u64)>,
    /// Records supplied for ABSs without a held one; written only if the
    /// tape has room for them when it is finished.
    supplied: HashMap<u64, Management>,
    /// Segments written to this tape in this session, by ABS.
    placed: HashMap<u64, Vec<Placement>>,
}

/// Bytes `m` takes in a CATALOG.
fn encoded_len(m: &Management) -> u64 {
    let mut w = ByteWriter::new();
    m.encode_into(&mut w);
    w.len() as u64
}

impl CatalogRecords {
    /// Keep `m` as the record of ABS `abs_id` (from its metadata).
    pub(super) fn hold(&mut self, abs_id: u64, m: Management) {
        let n = encoded_len(&m);
        self.supplied.remove(&abs_id);
        self.held.insert(abs_id, (m, n));
    }

    /// Bytes the CATALOG grows by if `m` becomes the held record of `abs_id`.
    pub(super) fn growth(&self, abs_id: u64, m: &Management) -> u64 {
        let old = self.held.get(&abs_id).map_or(0, |(_, n)| *n);
        encoded_len(m).saturating_sub(old)
    }

    /// Bytes of every held record.
    pub(super) fn held_bytes(&self) -> u64 {
        self.held.values().map(|(_, n)| *n).sum()
    }

    /// Whether ABS `abs_id` has a held record.
    pub(super) fn holds(&self, abs_id: u64) -> bool {
        self.held.contains_key(&abs_id)
    }

    /// A record for an ABS without a held one.
    pub(super) fn supply(&mut self, abs_id: u64, m: Management) {
        if !self.holds(abs_id) {
            self.supplied.insert(abs_id, m);
        }
    }

    /// Whether any record was supplied.
    pub(super) fn any_supplied(&self) -> bool {
        !self.supplied.is_empty()
    }

    /// Note a segment written to the tape.
    pub(super) fn place(&mut self, abs_id: u64, p: Placement) {
        self.placed.entry(abs_id).or_default().push(p);
    }

    /// The record of ABS `abs_id` to write: the held one, else (with
    /// `supplied`) the supplied one with this tape's segments it lacks.
    pub(super) fn record(&self, abs_id: u64, supplied: bool) -> Option<Management> {
        if let Some((m, _)) = self.held.get(&abs_id) {
            return Some(m.clone());
        }
        if !supplied {
            return None;
        }
        let mut m = self.supplied.get(&abs_id)?.clone();
        for p in self.placed.get(&abs_id).into_iter().flatten() {
            if !m.placements.iter().any(|q| q.seq == p.seq) {
                m.placements.push(p.clone());
            }
        }
        m.placements.sort_by_key(|p| p.seq);
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::management::tests::sample;

    fn placement(seq: u32, file: u32) -> Placement {
        Placement {
            seq,
            tape_label: "T00001".into(),
            tape_file: file,
            bytes: 100,
            crc32c: 7,
            counts: None,
        }
    }

    #[test]
    fn a_held_record_wins_and_is_written_as_held() {
        let mut r = CatalogRecords::default();
        let m = sample();
        r.supply(7, m.clone());
        r.place(7, placement(9, 2));
        let mut held = m.clone();
        held.label = "from the metadata".into();
        assert_eq!(r.growth(7, &held), encoded_len(&held));
        r.hold(7, held.clone());
        assert!(!r.any_supplied());
        assert_eq!(r.record(7, true), Some(held.clone()));
        assert_eq!(r.growth(7, &held), 0);
        assert_eq!(r.held_bytes(), encoded_len(&held));
    }

    #[test]
    fn a_supplied_record_gets_the_segments_it_lacks_in_order() {
        let mut r = CatalogRecords::default();
        let mut m = sample();
        m.placements.truncate(1); // seq 0
        r.supply(7, m);
        r.place(7, placement(0, 2)); // known already: not twice
        r.place(7, placement(2, 5));
        r.place(7, placement(1, 4));
        let got = r.record(7, true).unwrap();
        assert_eq!(got.placements.iter().map(|p| p.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(got.placements[0].tape_label, "DM0001", "the supplied placement is kept");
        assert_eq!(r.record(7, false), None, "no room: no supplied record");
        assert_eq!(r.record(8, true), None);
        assert_eq!(r.held_bytes(), 0, "supplied records are not reserved");
    }
}
