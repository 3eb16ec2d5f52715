//! The management record of an ABS (seed 002 FIG. 11): what a backup
//! product needs to put the ABS back in a catalog that never saw it — whose
//! it is, what it is, where it fits in its chain, where its pieces lie.
//!
//! It travels inside ABS-METADATA (version 3, see [`super::metadata`]) and
//! will travel in the CATALOG file. Layout (little-endian; `str` = u32 byte
//! length + UTF-8; `uuid` = 16 bytes, all zero for none):
//!
//! | size | type | field |
//! |-----:|------|-------|
//! | 4    | u32  | record version (1, 2 or 3) |
//! | 16   | uuid | cluster_id: the cluster that wrote the ABS |
//! | 16   | uuid | abs_uuid |
//! | 4+n  | str  | client: the certificate name that asked (≤ 255) |
//! | 4+n  | str  | primary_node (≤ 255) |
//! | 1    | u8   | level: 0 full, 1 cumulative, 2 incremental, 3 synthetic |
//! | 16   | uuid | base_uuid: a differential's base (nil for none) |
//! | 4    | u32  | chain length C (≤ 65536) |
//! | C × 8 | u64 | chain: the ABS ids a restore reads, full first, this ABS last |
//! | 8    | u64  | point_in_time_ms: when the snapshot was taken (Unix ms) |
//! | 4    | u32  | epoch count P (≤ 65536) |
//! | P × 18 |    | epoch: u16 volume index, u64 change map id, u64 epoch |
//! | 4+n  | str  | pool (≤ 64) |
//! | 4    | u32  | copy_number: 0 the primary copy, 1… copies |
//! | 4+n  | str  | label: the user's label text (≤ 1024) |
//! | 8    | u64  | created_ms (Unix ms) |
//! | 4    | u32  | placement count S (≤ 4,194,304) |
//! | S × var |   | placement: u32 seq, str tape_label (≤ 6), u32 tape_file, u64 bytes, u32 crc32c; versions 2 and 3 add u64 data_bytes, u32 track_count |
//! | 8    | u64  | written_ms (version 3): when this record was written (Unix ms) |
//!
//! Placements are the segments of the ABS known when the record was
//! written: every segment for ABS-METADATA (it follows the last one).
//! `crc32c` is the segment's body CRC (as in its trailer); `data_bytes`
//! and `track_count` (version 2) are its track bytes and tracks, so a
//! catalog rebuilt from tape needs no segment read. `written_ms` (version 3)
//! orders the records of one ABS: an ABS moved to another pool (`abs move`)
//! has its metadata written again with a new record, and the newest record
//! says where the ABS is (its pool and places); older ones describe places
//! it left. A writer uses version 3 when every placement has its counts and
//! the write time is known, version 2 with the counts alone, else version
//! 1. A record version other than 1, 2 or 3 is refused, naming the version.

use rkyv::{Archive, Deserialize, Serialize};

use crate::domain::{Level, Uuid};

use super::bytes::{ByteReader, ByteWriter};
use super::error::Location;
use super::TapeError;

/// Version of the management record layout written when every placement
/// has its counts and the record its write time.
pub const MANAGEMENT_VERSION: u32 = 3;
/// Placements with their counts, no write time.
pub const MANAGEMENT_VERSION_2: u32 = 2;
/// The first version: placements without counts.
pub const MANAGEMENT_VERSION_1: u32 = 1;
/// Longest client or primary node name.
pub const MAX_PEER_NAME: usize = 255;
/// Longest pool name.
pub const MAX_POOL: usize = 64;
/// Longest user label.
pub const MAX_LABEL_TEXT: usize = 1024;
/// Longest tape label.
pub const MAX_TAPE_LABEL: usize = 6;
/// Most ABSs in a chain, most epochs.
pub const MAX_CHAIN: usize = 65536;
/// Most placements in one record.
pub const MAX_PLACEMENTS: usize = 1 << 22;

/// Where one segment of the ABS lies.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub seq: u32,
    pub tape_label: String,
    pub tape_file: u32,
    pub bytes: u64,
    /// The segment's body CRC32C (as in its trailer).
    pub crc32c: u32,
    /// Its track bytes and tracks (None in a version-1 record).
    pub counts: Option<PlacementCounts>,
}

/// What a segment holds (record version 2).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementCounts {
    pub data_bytes: u64,
    pub track_count: u32,
}

/// The change map of one volume and the epoch the backup captured on it
/// (the next differential's base point).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeEpoch {
    /// The volume's index in the ABS map.
    pub volume: u16,
    pub map_id: u64,
    pub epoch: u64,
}

/// The management record (see the module docs). It also travels on the
/// wire: the station makes it, the front-end writes it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Management {
    pub cluster_id: Uuid,
    pub abs_uuid: Uuid,
    pub client: String,
    pub primary_node: String,
    pub level: Level,
    pub base_uuid: Uuid,
    pub chain: Vec<u64>,
    pub point_in_time_ms: u64,
    pub epochs: Vec<VolumeEpoch>,
    pub pool: String,
    pub copy_number: u32,
    pub label: String,
    pub created_ms: u64,
    pub placements: Vec<Placement>,
    /// When this record was written (Unix ms; None in versions 1 and 2).
    pub written_ms: Option<u64>,
}

fn level_code(l: Level) -> u8 {
    match l {
        Level::Full => 0,
        Level::Cumulative => 1,
        Level::Incremental => 2,
        Level::Synthetic => 3,
    }
}

impl Management {
    /// Check the record fits its limits (before writing).
    pub fn validate(&self) -> Result<(), TapeError> {
        let long = |field: &str, max: usize, len: usize| {
            TapeError::invalid(
                format!("management record field {field}"),
                format!("at most {max} bytes"),
                format!("{len} bytes"),
            )
        };
        for (field, max, s) in [
            ("client", MAX_PEER_NAME, &self.client),
            ("primary_node", MAX_PEER_NAME, &self.primary_node),
            ("pool", MAX_POOL, &self.pool),
            ("label", MAX_LABEL_TEXT, &self.label),
        ] {
            if s.len() > max {
                return Err(long(field, max, s.len()));
            }
        }
        let many = |field: &str, max: usize, n: usize| {
            TapeError::invalid(
                format!("management record field {field}"),
                format!("at most {max} items"),
                n.to_string(),
            )
        };
        if self.chain.len() > MAX_CHAIN {
            return Err(many("chain", MAX_CHAIN, self.chain.len()));
        }
        if self.epochs.len() > MAX_CHAIN {
            return Err(many("epochs", MAX_CHAIN, self.epochs.len()));
        }
        if self.placements.len() > MAX_PLACEMENTS {
            return Err(many("placements", MAX_PLACEMENTS, self.placements.len()));
        }
        if let Some(p) = self.placements.iter().find(|p| p.tape_label.len() > MAX_TAPE_LABEL) {
            return Err(long("placement tape_label", MAX_TAPE_LABEL, p.tape_label.len()));
        }
        Ok(())
    }

    /// Append the record to `w`.
    pub fn encode_into(&self, w: &mut ByteWriter) {
        let version = self.version();
        w.u32(version)
            .bytes(self.cluster_id.as_bytes())
            .bytes(self.abs_uuid.as_bytes())
            .str(&self.client)
            .str(&self.primary_node)
            .u8(level_code(self.level))
            .bytes(self.base_uuid.as_bytes())
            .len32(self.chain.len());
        for id in &self.chain {
            w.u64(*id);
        }
        w.u64(self.point_in_time_ms).len32(self.epochs.len());
        for e in &self.epochs {
            w.u16(e.volume).u64(e.map_id).u64(e.epoch);
        }
        w.str(&self.pool)
            .u32(self.copy_number)
            .str(&self.label)
            .u64(self.created_ms)
            .len32(self.placements.len());
        for p in &self.placements {
            w.u32(p.seq)
                .str(&p.tape_label)
                .u32(p.tape_file)
                .u64(p.bytes)
                .u32(p.crc32c);
            if let (MANAGEMENT_VERSION | MANAGEMENT_VERSION_2, Some(c)) = (version, p.counts) {
                w.u64(c.data_bytes).u32(c.track_count);
            }
        }
        if let (MANAGEMENT_VERSION, Some(t)) = (version, self.written_ms) {
            w.u64(t);
        }
    }

    /// The version [`Management::encode_into`] writes: 3 when every
    /// placement has its counts and the write time is known, 2 with the
    /// counts alone, else 1.
    pub fn version(&self) -> u32 {
        match (self.placements.iter().all(|p| p.counts.is_some()), self.written_ms) {
            (true, Some(_)) => MANAGEMENT_VERSION,
            (true, None) => MANAGEMENT_VERSION_2,
            (false, _) => MANAGEMENT_VERSION_1,
        }
    }

    /// Read a record written by [`Management::encode_into`].
    pub fn decode_from(r: &mut ByteReader<'_>) -> Result<Management, TapeError> {
        let at = r.offset();
        let version = r.u32("management record version")?;
        if !(MANAGEMENT_VERSION_1..=MANAGEMENT_VERSION).contains(&version) {
            return Err(TapeError::corrupt(
                Location::offset(at),
                "management record version",
                format!("version {MANAGEMENT_VERSION_1} to {MANAGEMENT_VERSION} (this program reads no other)"),
                format!("version {version}"),
            ));
        }
        let counted = version >= MANAGEMENT_VERSION_2;
        let cluster_id = Uuid(r.array("cluster_id")?);
        let abs_uuid = Uuid(r.array("abs_uuid")?);
        let client = r.str("client", MAX_PEER_NAME)?;
        let primary_node = r.str("primary_node", MAX_PEER_NAME)?;
        let at = r.offset();
        let level = match r.u8("level")? {
            0 => Level::Full,
            1 => Level::Cumulative,
            2 => Level::Incremental,
            3 => Level::Synthetic,
            l => {
                return Err(TapeError::corrupt(
                    Location::offset(at),
                    "management record field level",
                    "0 (full), 1 (cumulative), 2 (incremental) or 3 (synthetic)",
                    l.to_string(),
                ))
            }
        };
        let base_uuid = Uuid(r.array("base_uuid")?);
        let n = r.count("chain length", MAX_CHAIN, 8)?;
        let mut chain = Vec::with_capacity(n);
        for _ in 0..n {
            chain.push(r.u64("chain ABS id")?);
        }
        let point_in_time_ms = r.u64("point_in_time_ms")?;
        let n = r.count("epoch count", MAX_CHAIN, 18)?;
        let mut epochs = Vec::with_capacity(n);
        for _ in 0..n {
            epochs.push(VolumeEpoch {
                volume: r.u16("epoch volume")?,
                map_id: r.u64("epoch change map id")?,
                epoch: r.u64("epoch")?,
            });
        }
        let pool = r.str("pool", MAX_POOL)?;
        let copy_number = r.u32("copy_number")?;
        let label = r.str("label", MAX_LABEL_TEXT)?;
        let created_ms = r.u64("created_ms")?;
        let least = if counted { 36 } else { 24 };
        let n = r.count("placement count", MAX_PLACEMENTS, least)?;
        let mut placements = Vec::with_capacity(n);
        for _ in 0..n {
            placements.push(Placement {
                seq: r.u32("placement seq")?,
                tape_label: r.str("placement tape_label", MAX_TAPE_LABEL)?,
                tape_file: r.u32("placement tape_file")?,
                bytes: r.u64("placement bytes")?,
                crc32c: r.u32("placement crc32c")?,
                counts: if counted {
                    Some(PlacementCounts {
                        data_bytes: r.u64("placement data_bytes")?,
                        track_count: r.u32("placement track_count")?,
                    })
                } else {
                    None
                },
            });
        }
        Ok(Management {
            cluster_id,
            abs_uuid,
            client,
            primary_node,
            level,
            base_uuid,
            chain,
            point_in_time_ms,
            epochs,
            pool,
            copy_number,
            label,
            created_ms,
            placements,
            written_ms: if version == MANAGEMENT_VERSION {
                Some(r.u64("written_ms")?)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample() -> Management {
        Management {
            cluster_id: Uuid::from_random_bytes([7; 16]),
            abs_uuid: Uuid::from_random_bytes([9; 16]),
            client: "client".into(),
            primary_node: "pn1".into(),
            level: Level::Incremental,
            base_uuid: Uuid::from_random_bytes([3; 16]),
            chain: vec![3, 5, 7],
            point_in_time_ms: 1_700_000_100_123,
            epochs: vec![
                VolumeEpoch {
                    volume: 0,
                    map_id: 0xdead_beef,
                    epoch: 4,
                },
                VolumeEpoch {
                    volume: 1,
                    map_id: 0xfeed,
                    epoch: 2,
                },
            ],
            pool: "onsite".into(),
            copy_number: 0,
            label: "nightly orders".into(),
            created_ms: 1_700_000_100_456,
            placements: vec![
                Placement {
                    seq: 0,
                    tape_label: "DM0001".into(),
                    tape_file: 2,
                    bytes: 1 << 20,
                    crc32c: 0x1234_5678,
                    counts: Some(PlacementCounts {
                        data_bytes: (1 << 20) - 4096,
                        track_count: 3,
                    }),
                },
                Placement {
                    seq: 1,
                    tape_label: "DM0002".into(),
                    tape_file: 2,
                    bytes: 4096,
                    crc32c: 0x9abc_def0,
                    counts: Some(PlacementCounts {
                        data_bytes: 1024,
                        track_count: 1,
                    }),
                },
            ],
            written_ms: Some(1_700_000_200_789),
        }
    }

    fn round_trip(m: &Management) -> Result<Management, TapeError> {
        let mut w = ByteWriter::new();
        m.encode_into(&mut w);
        let mut r = ByteReader::new(w.as_slice(), "test");
        let d = Management::decode_from(&mut r)?;
        r.finish()?;
        Ok(d)
    }

    #[test]
    fn a_record_round_trips() {
        let m = sample();
        m.validate().unwrap();
        assert_eq!(round_trip(&m).unwrap(), m);
    }

    #[test]
    fn a_future_record_version_is_refused_naming_it() {
        let mut w = ByteWriter::new();
        sample().encode_into(&mut w);
        let mut b = w.into_vec();
        b[0] = 4;
        let e = Management::decode_from(&mut ByteReader::new(&b, "test"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 4") && e.contains("version 1 to 3"), "{e}");
    }

    #[test]
    fn a_record_without_counts_is_written_as_version_1_and_reads_back() {
        let mut m = sample();
        m.placements[1].counts = None;
        assert_eq!(m.version(), MANAGEMENT_VERSION_1);
        let mut w = ByteWriter::new();
        m.encode_into(&mut w);
        assert_eq!(&w.as_slice()[..4], &1u32.to_le_bytes());
        let back = round_trip(&m).unwrap();
        // Version 1 holds no counts at all.
        assert!(back.placements.iter().all(|p| p.counts.is_none()));
        assert_eq!(sample().version(), MANAGEMENT_VERSION);
        assert_eq!(round_trip(&sample()).unwrap(), sample());
    }

    #[test]
    fn a_record_without_its_write_time_is_written_as_version_2_and_reads_back() {
        let mut m = sample();
        m.written_ms = None;
        assert_eq!(m.version(), MANAGEMENT_VERSION_2);
        let mut w = ByteWriter::new();
        m.encode_into(&mut w);
        assert_eq!(&w.as_slice()[..4], &2u32.to_le_bytes());
        assert_eq!(round_trip(&m).unwrap(), m);
        // Version 3 is version 2 and the write time, 8 bytes more.
        let mut w3 = ByteWriter::new();
        sample().encode_into(&mut w3);
        assert_eq!(w3.as_slice().len(), w.as_slice().len() + 8);
    }

    #[test]
    fn oversized_fields_are_refused_before_writing() {
        let mut m = sample();
        m.label = "x".repeat(MAX_LABEL_TEXT + 1);
        assert!(m.validate().is_err());
        let mut m = sample();
        m.placements[0].tape_label = "DM00001".into();
        assert!(m.validate().is_err());
    }

    proptest! {
        #[test]
        fn any_record_round_trips(
            client in "[a-z0-9-]{0,20}",
            label in ".{0,40}",
            chain in proptest::collection::vec(any::<u64>(), 0..8),
            epochs in proptest::collection::vec((any::<u16>(), any::<u64>(), any::<u64>()), 0..8),
            level in 0u8..4,
            copy_number in any::<u32>(),
            pit in any::<u64>(),
            written in proptest::option::of(any::<u64>()),
        ) {
            let m = Management {
                written_ms: written,
                client,
                label,
                chain,
                epochs: epochs.into_iter().map(|(volume, map_id, epoch)| VolumeEpoch { volume, map_id, epoch }).collect(),
                level: [Level::Full, Level::Cumulative, Level::Incremental, Level::Synthetic][usize::from(level)],
                copy_number,
                point_in_time_ms: pit,
                ..sample()
            };
            prop_assert_eq!(round_trip(&m).unwrap(), m);
        }

        #[test]
        fn truncated_records_are_errors_never_panics(cut in 0usize..200) {
            let mut w = ByteWriter::new();
            sample().encode_into(&mut w);
            let b = w.into_vec();
            let cut = cut.min(b.len() - 1);
            let mut r = ByteReader::new(&b[..cut], "test");
            prop_assert!(Management::decode_from(&mut r).and_then(|_| r.finish()).is_err());
        }
    }
}
