//! ABS metadata on tape: written after an ABS's last segment on a tape.
//!
//! An envelope ([`super::bytes`]) with magic `DMCMET01`, version 1, 2 or 3.
//! Payload (little-endian; `str` = u32 byte length + UTF-8):
//!
//! | size | type | field                                               |
//! |-----:|------|-----------------------------------------------------|
//! | 8    | u64  | abs_id                                              |
//! | 1    | u8   | kind: 0 = full, 1 = differential                    |
//! | 8    | u64  | base_abs_id (0 for none)                            |
//! | 8    | u64  | created_unix                                        |
//! | 4    | u32  | segment_count                                       |
//! | 8    | u64  | track_count                                         |
//! | 8    | u64  | data_bytes                                          |
//! | 4+n  | str  | object_name (≤ 4096 bytes)                          |
//! | 8    | u64  | map.object_size                                     |
//! | 4    | u32  | volume count V (≤ 65536)                            |
//! | V ×  |      | volume: str name (≤ 1024), u32 block_size, u32 track_size, u64 size |
//! | 4    | u32  | extent count E (≤ 2,097,152)                         |
//! | E × 26 |    | extent: u64 logical_offset, u64 length, u16 volume, u64 volume_offset |
//! |        |      | *version 2 only, after all of the above:*           |
//! | 8    | u64  | merged_from_abs_id (0 for none)                     |
//! | 4    | u32  | changed range count C (≤ 2,097,152)                 |
//! | C × 16 |    | changed range: u64 offset, u64 length               |
//! |        |      | *version 3 only, after all of the above:*           |
//! | var  |      | the management record ([`super::management`])       |
//!
//! The encoder writes the oldest version that holds the metadata: version 1
//! (the version-1 payload alone) when `merged_from_abs_id` is 0, `changed`
//! is empty and there is no management record, version 2 when there is no
//! management record, version 3 otherwise; so metadata without the newer
//! fields is byte-identical to what older writers produced. The decoder
//! accepts all three; version 1 decodes with `merged_from_abs_id` 0 and no
//! changed ranges, versions 1 and 2 without a management record. Changed ranges must be
//! non-empty, inside `[0, map.object_size)`, sorted and non-overlapping.
//!
//! Counts are also bounded by the bytes left, so a corrupt count can never
//! make the decoder allocate more than the metadata's own size.

use crate::abs::{AbsMap, Geometry, LogicalRange, MapExtent, VolumeRef};

use super::bytes::{seal, unseal_versions, ByteWriter};
use super::error::Location;
use super::management::Management;
use super::TapeError;

/// Magic of ABS-METADATA.
pub const METADATA_MAGIC: &[u8; 8] = b"DMCMET01";
/// Envelope version of the newest layout written (version 3: the version-2
/// payload followed by the management record).
pub const METADATA_VERSION: u16 = 3;
/// Envelope version of the version-1 payload followed by
/// `merged_from_abs_id` and the changed ranges.
pub const METADATA_VERSION_2: u16 = 2;
/// Envelope version of the original layout, still written when
/// `merged_from_abs_id` is 0 and `changed` is empty, and still read.
pub const METADATA_VERSION_1: u16 = 1;
/// Largest payload accepted (64 MiB).
pub const MAX_METADATA_PAYLOAD: usize = 64 << 20;
/// Longest object name.
pub const MAX_OBJECT_NAME: usize = 4096;
/// Longest volume name.
pub const MAX_VOLUME_NAME: usize = 1024;
/// Most volumes in a map (volume indices are u16).
pub const MAX_MAP_VOLUMES: usize = 65536;
/// Most extents in a map.
pub const MAX_MAP_EXTENTS: usize = 1 << 21;

const VOLUME_MIN_BYTES: usize = 4 + 4 + 4 + 8;
const EXTENT_BYTES: usize = 8 + 8 + 2 + 8;
const CHANGED_RANGE_BYTES: usize = 8 + 8;

/// Kind of an ABS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsKind {
    Full,
    Differential,
}

/// Everything needed to restore an ABS without the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsMetadata {
    pub abs_id: u64,
    pub object_name: String,
    pub kind: AbsKind,
    /// Base ABS of a differential (0 for none).
    pub base_abs_id: u64,
    pub created_unix: u64,
    pub segment_count: u32,
    pub track_count: u64,
    pub data_bytes: u64,
    pub map: AbsMap,
    /// Synthetic full: the ABS at the tip of the chain it was merged from (0 otherwise).
    pub merged_from_abs_id: u64,
    /// Differential: the logical ranges of the blocks it carries, i.e. the
    /// blocks that changed since its base (empty for a full). Non-empty,
    /// inside `[0, map.object_size)`, sorted and non-overlapping.
    pub changed: Vec<LogicalRange>,
    /// The management record (seed 002): None on tapes written before it.
    pub management: Option<Management>,
}

/// Checks changed range `r` that follows ranges ending at `prev_end`, in an
/// object of `object_size` bytes; returns its end, or (expected, found).
fn check_changed_range(r: &LogicalRange, prev_end: u64, object_size: u64) -> Result<u64, (String, String)> {
    let end = r
        .offset
        .checked_add(r.length)
        .filter(|&end| r.length > 0 && end <= object_size);
    let Some(end) = end else {
        return Err((
            format!("a non-empty range inside the object's {object_size} bytes"),
            format!("offset {} length {}", r.offset, r.length),
        ));
    };
    if r.offset < prev_end {
        return Err((
            format!("an offset of at least {prev_end}, the end of the range before it (sorted, not overlapping)"),
            format!("offset {}", r.offset),
        ));
    }
    Ok(end)
}

impl AbsMetadata {
    /// Check that the metadata fits the format's limits (done before writing).
    pub fn validate(&self) -> Result<(), TapeError> {
        let what = |f: &str| format!("ABS {} metadata {f}", self.abs_id);
        if self.object_name.len() > MAX_OBJECT_NAME {
            return Err(TapeError::invalid(
                what("object name"),
                format!("at most {MAX_OBJECT_NAME} bytes"),
                format!("{} bytes", self.object_name.len()),
            ));
        }
        if self.map.volumes.len() > MAX_MAP_VOLUMES {
            return Err(TapeError::invalid(
                what("volume count"),
                format!("at most {MAX_MAP_VOLUMES}"),
                self.map.volumes.len().to_string(),
            ));
        }
        if let Some(v) = self.map.volumes.iter().find(|v| v.name.len() > MAX_VOLUME_NAME) {
            return Err(TapeError::invalid(
                what("volume name"),
                format!("at most {MAX_VOLUME_NAME} bytes"),
                format!("{} bytes", v.name.len()),
            ));
        }
        if self.map.extents.len() > MAX_MAP_EXTENTS {
            return Err(TapeError::invalid(
                what("extent count"),
                format!("at most {MAX_MAP_EXTENTS}"),
                self.map.extents.len().to_string(),
            ));
        }
        if let Some((i, e)) = self
            .map
            .extents
            .iter()
            .enumerate()
            .find(|(_, e)| e.volume as usize >= self.map.volumes.len())
        {
            return Err(TapeError::invalid(
                what(&format!("extent {i}")),
                format!("a volume index below {}", self.map.volumes.len()),
                e.volume.to_string(),
            ));
        }
        if self.changed.len() > MAX_MAP_EXTENTS {
            return Err(TapeError::invalid(
                what("changed range count"),
                format!("at most {MAX_MAP_EXTENTS}"),
                self.changed.len().to_string(),
            ));
        }
        let mut prev_end = 0;
        for (i, r) in self.changed.iter().enumerate() {
            prev_end = check_changed_range(r, prev_end, self.map.object_size).map_err(|(expected, found)| {
                TapeError::invalid(what(&format!("changed range {i}")), expected, found)
            })?;
        }
        if let Some(m) = &self.management {
            m.validate()?;
        }
        Ok(())
    }

    /// The envelope version [`AbsMetadata::encode`] writes: 3 with a
    /// management record; else 1 when the version-2 fields are at their
    /// defaults, else 2.
    pub fn version(&self) -> u16 {
        if self.management.is_some() {
            METADATA_VERSION
        } else if self.merged_from_abs_id == 0 && self.changed.is_empty() {
            METADATA_VERSION_1
        } else {
            METADATA_VERSION_2
        }
    }

    /// The bytes of the tape file (see the module docs), in version 1 when
    /// `merged_from_abs_id` is 0 and `changed` is empty, else version 2
    /// (see [`AbsMetadata::version`]). Call [`AbsMetadata::validate`] first:
    /// metadata beyond the limits encodes but will not decode.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::with_capacity(
            128 + self.map.extents.len() * EXTENT_BYTES + self.changed.len() * CHANGED_RANGE_BYTES,
        );
        w.u64(self.abs_id)
            .u8(match self.kind {
                AbsKind::Full => 0,
                AbsKind::Differential => 1,
            })
            .u64(self.base_abs_id)
            .u64(self.created_unix)
            .u32(self.segment_count)
            .u64(self.track_count)
            .u64(self.data_bytes)
            .str(&self.object_name)
            .u64(self.map.object_size)
            .len32(self.map.volumes.len());
        for v in &self.map.volumes {
            w.str(&v.name)
                .u32(v.geometry.block_size)
                .u32(v.geometry.track_size)
                .u64(v.size);
        }
        w.len32(self.map.extents.len());
        for e in &self.map.extents {
            w.u64(e.logical_offset).u64(e.length).u16(e.volume).u64(e.volume_offset);
        }
        let version = self.version();
        if version >= 2 {
            w.u64(self.merged_from_abs_id).len32(self.changed.len());
            for r in &self.changed {
                w.u64(r.offset).u64(r.length);
            }
        }
        if let Some(m) = &self.management {
            m.encode_into(&mut w);
        }
        seal(METADATA_MAGIC, version, w.as_slice())
    }

    /// Decode a tape file written by [`AbsMetadata::encode`], version 1 or
    /// 2. Checks the envelope and the structure (counts, volume indices,
    /// changed ranges); the meaning of the map is checked by
    /// [`AbsMap::validate`].
    pub fn decode(bytes: &[u8]) -> Result<AbsMetadata, TapeError> {
        let (version, mut r) = unseal_versions(
            bytes,
            METADATA_MAGIC,
            METADATA_VERSION_1,
            METADATA_VERSION,
            "ABS-METADATA",
            MAX_METADATA_PAYLOAD,
        )?;
        let abs_id = r.u64("abs_id")?;
        let kind_at = r.offset();
        let kind = match r.u8("kind")? {
            0 => AbsKind::Full,
            1 => AbsKind::Differential,
            k => {
                return Err(TapeError::corrupt(
                    Location::offset(kind_at),
                    "ABS-METADATA field kind",
                    "0 (full) or 1 (differential)",
                    k.to_string(),
                ))
            }
        };
        let base_abs_id = r.u64("base_abs_id")?;
        let created_unix = r.u64("created_unix")?;
        let segment_count = r.u32("segment_count")?;
        let track_count = r.u64("track_count")?;
        let data_bytes = r.u64("data_bytes")?;
        let object_name = r.str("object_name", MAX_OBJECT_NAME)?;
        let object_size = r.u64("object_size")?;
        let nvol = r.count("volume count", MAX_MAP_VOLUMES, VOLUME_MIN_BYTES)?;
        let mut volumes = Vec::with_capacity(nvol);
        for _ in 0..nvol {
            let name = r.str("volume name", MAX_VOLUME_NAME)?;
            let block_size = r.u32("volume block_size")?;
            let track_size = r.u32("volume track_size")?;
            let size = r.u64("volume size")?;
            volumes.push(VolumeRef {
                name,
                geometry: Geometry { block_size, track_size },
                size,
            });
        }
        let next = r.count("extent count", MAX_MAP_EXTENTS, EXTENT_BYTES)?;
        let mut extents = Vec::with_capacity(next);
        for i in 0..next {
            let logical_offset = r.u64("extent logical_offset")?;
            let length = r.u64("extent length")?;
            let vol_at = r.offset();
            let volume = r.u16("extent volume")?;
            if volume as usize >= nvol {
                return Err(TapeError::corrupt(
                    Location::offset(vol_at),
                    format!("ABS-METADATA extent {i} field volume"),
                    format!("a volume index below {nvol}"),
                    volume.to_string(),
                ));
            }
            let volume_offset = r.u64("extent volume_offset")?;
            extents.push(MapExtent {
                logical_offset,
                length,
                volume,
                volume_offset,
            });
        }
        let mut merged_from_abs_id = 0;
        let mut changed = Vec::new();
        if version >= 2 {
            merged_from_abs_id = r.u64("merged_from_abs_id")?;
            let n = r.count("changed range count", MAX_MAP_EXTENTS, CHANGED_RANGE_BYTES)?;
            changed.reserve_exact(n);
            let mut prev_end = 0;
            for i in 0..n {
                let at = r.offset();
                let range = LogicalRange {
                    offset: r.u64("changed range offset")?,
                    length: r.u64("changed range length")?,
                };
                prev_end = check_changed_range(&range, prev_end, object_size).map_err(|(expected, found)| {
                    TapeError::corrupt(
                        Location::offset(at),
                        format!("ABS-METADATA changed range {i}"),
                        expected,
                        found,
                    )
                })?;
                changed.push(range);
            }
        }
        let management = if version >= 3 {
            Some(Management::decode_from(&mut r)?)
        } else {
            None
        };
        r.finish()?;
        Ok(AbsMetadata {
            abs_id,
            object_name,
            kind,
            base_abs_id,
            created_unix,
            segment_count,
            track_count,
            data_bytes,
            map: AbsMap {
                volumes,
                extents,
                object_size,
            },
            merged_from_abs_id,
            changed,
            management,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> AbsMetadata {
        AbsMetadata {
            abs_id: 7,
            object_name: "/db/orders.dat".into(),
            kind: AbsKind::Differential,
            base_abs_id: 3,
            created_unix: 1_700_000_100,
            segment_count: 4,
            track_count: 100,
            data_bytes: 6_553_600,
            map: AbsMap {
                volumes: vec![
                    VolumeRef {
                        name: "vol-a".into(),
                        geometry: Geometry {
                            block_size: 4096,
                            track_size: 65536,
                        },
                        size: 1 << 30,
                    },
                    VolumeRef {
                        name: "vol-b".into(),
                        geometry: Geometry {
                            block_size: 512,
                            track_size: 32768,
                        },
                        size: 1 << 20,
                    },
                ],
                extents: vec![
                    MapExtent {
                        logical_offset: 0,
                        length: 8192,
                        volume: 1,
                        volume_offset: 4096,
                    },
                    MapExtent {
                        logical_offset: 8192,
                        length: 4096,
                        volume: 0,
                        volume_offset: 0,
                    },
                ],
                object_size: 12288,
            },
            merged_from_abs_id: 0,
            changed: Vec::new(),
            management: None,
        }
    }

    /// The sample as a version-2 differential of a synthetic full.
    fn sample_v2() -> AbsMetadata {
        AbsMetadata {
            merged_from_abs_id: 5,
            changed: vec![
                LogicalRange { offset: 0, length: 512 },
                LogicalRange {
                    offset: 4096,
                    length: 4096,
                },
                LogicalRange {
                    offset: 8192,
                    length: 4096,
                },
            ],
            ..sample()
        }
    }

    /// The sample with a management record: version 3.
    fn sample_v3() -> AbsMetadata {
        AbsMetadata {
            management: Some(crate::tape::management::tests::sample()),
            ..sample_v2()
        }
    }

    #[test]
    fn version_3_carries_the_management_record_and_every_byte_is_checked() {
        let m = sample_v3();
        m.validate().unwrap();
        let b = m.encode();
        assert_eq!(version_of(&b), METADATA_VERSION);
        assert_eq!(AbsMetadata::decode(&b).unwrap(), m);
        // The version-2 bytes are a prefix of the version-3 payload.
        let v2 = sample_v2().encode();
        assert_eq!(b[16..v2.len() - 4], v2[16..v2.len() - 4]);
        for i in (0..b.len()).step_by(7) {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert!(AbsMetadata::decode(&bad).is_err(), "flip at {i} accepted");
        }
        // A version-4 envelope is refused, naming the versions read.
        let payload = &b[16..b.len() - 4];
        let e = AbsMetadata::decode(&seal(METADATA_MAGIC, 4, payload))
            .unwrap_err()
            .to_string();
        assert!(e.contains("found version 4"), "{e}");
    }

    fn version_of(b: &[u8]) -> u16 {
        u16::from_le_bytes([b[8], b[9]])
    }

    #[test]
    fn round_trip() {
        let m = sample();
        m.validate().unwrap();
        let b = m.encode();
        assert_eq!(&b[..8], b"DMCMET01");
        assert_eq!(AbsMetadata::decode(&b).unwrap(), m);
    }

    #[test]
    fn every_byte_is_checked() {
        let b = sample().encode();
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(AbsMetadata::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn structural_errors_are_reported_even_with_a_valid_crc() {
        // A huge extent count with a valid envelope CRC must not allocate.
        let mut m = sample();
        m.map.extents.clear();
        let b = m.encode();
        let payload = &b[16..b.len() - 4];
        let mut p = payload[..payload.len() - 4].to_vec();
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        let forged = seal(METADATA_MAGIC, METADATA_VERSION_1, &p);
        let e = AbsMetadata::decode(&forged).unwrap_err().to_string();
        assert!(e.contains("extent count") && e.contains(&u32::MAX.to_string()), "{e}");

        let mut m = sample();
        m.map.extents[0].volume = 5;
        assert!(m.validate().is_err());
        let e = AbsMetadata::decode(&m.encode()).unwrap_err().to_string();
        assert!(e.contains("extent 0 field volume"), "{e}");
    }

    #[test]
    fn validate_refuses_oversized_names() {
        let mut m = sample();
        m.object_name = "x".repeat(MAX_OBJECT_NAME + 1);
        assert!(m.validate().is_err());
        assert!(AbsMetadata::decode(&m.encode()).is_err());
    }

    #[test]
    fn version_1_is_written_without_the_new_fields_and_decodes_with_defaults() {
        let m = sample();
        assert_eq!(m.version(), 1);
        let b = m.encode();
        assert_eq!(version_of(&b), METADATA_VERSION_1);
        let d = AbsMetadata::decode(&b).unwrap();
        assert_eq!(d.merged_from_abs_id, 0);
        assert!(d.changed.is_empty());
        assert_eq!(d, m);
        // Either new field alone makes it version 2.
        let only_merged = AbsMetadata {
            merged_from_abs_id: 1,
            ..sample()
        };
        assert_eq!(version_of(&only_merged.encode()), 2);
        assert_eq!(AbsMetadata::decode(&only_merged.encode()).unwrap(), only_merged);
        let only_changed = AbsMetadata {
            merged_from_abs_id: 0,
            ..sample_v2()
        };
        assert_eq!(version_of(&only_changed.encode()), 2);
        assert_eq!(AbsMetadata::decode(&only_changed.encode()).unwrap(), only_changed);
    }

    #[test]
    fn version_2_round_trip_extends_the_version_1_payload() {
        let m = sample_v2();
        m.validate().unwrap();
        let b = m.encode();
        assert_eq!(&b[..8], b"DMCMET01");
        assert_eq!(version_of(&b), METADATA_VERSION_2);
        assert_eq!(AbsMetadata::decode(&b).unwrap(), m);
        let v1 = sample().encode();
        let (p1, p2) = (&v1[16..v1.len() - 4], &b[16..b.len() - 4]);
        assert_eq!(&p2[..p1.len()], p1);
        assert_eq!(p2.len(), p1.len() + 8 + 4 + 3 * 16);
        assert_eq!(&p2[p1.len()..p1.len() + 8], &5u64.to_le_bytes());
    }

    #[test]
    fn every_byte_of_a_version_2_encoding_is_checked() {
        let b = sample_v2().encode();
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(AbsMetadata::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn other_versions_are_refused() {
        let b = sample_v2().encode();
        let payload = &b[16..b.len() - 4];
        for v in [0u16, 4, u16::MAX] {
            let e = AbsMetadata::decode(&seal(METADATA_MAGIC, v, payload))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("version from 1 to 3") && e.contains(&format!("found version {v}")),
                "{e}"
            );
        }
        // A version-2 payload labelled version 3 lacks the management record.
        assert!(AbsMetadata::decode(&seal(METADATA_MAGIC, 3, payload)).is_err());
        // A version-2 payload labelled version 1 has trailing bytes, and a
        // version-1 payload labelled version 2 lacks the tail.
        assert!(AbsMetadata::decode(&seal(METADATA_MAGIC, 1, payload)).is_err());
        let v1 = sample().encode();
        let e = AbsMetadata::decode(&seal(METADATA_MAGIC, 2, &v1[16..v1.len() - 4]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("merged_from_abs_id"), "{e}");
    }

    #[test]
    fn bad_changed_ranges_are_refused_by_validate_and_decode() {
        let size = sample().map.object_size;
        let r = |offset, length| LogicalRange { offset, length };
        let cases: [(Vec<LogicalRange>, &str); 6] = [
            (vec![r(4096, 512), r(0, 512)], "at least 4608"),
            (vec![r(0, 1024), r(512, 1024)], "at least 1024"),
            (vec![r(0, 512), r(size - 512, 1024)], "inside the object's 12288 bytes"),
            (vec![r(size, 1)], "inside the object's 12288 bytes"),
            (vec![r(u64::MAX, 2)], "inside the object's 12288 bytes"),
            (vec![r(512, 0)], "inside the object's 12288 bytes"),
        ];
        for (changed, want) in cases {
            let m = AbsMetadata {
                changed: changed.clone(),
                ..sample_v2()
            };
            let e = m.validate().unwrap_err().to_string();
            assert!(e.contains("changed range") && e.contains(want), "{changed:?}: {e}");
            let e = AbsMetadata::decode(&m.encode()).unwrap_err().to_string();
            assert!(
                e.contains("ABS-METADATA changed range") && e.contains(want),
                "{changed:?}: {e}"
            );
        }
        // Adjacent ranges and a range ending at the object's end are fine.
        let m = AbsMetadata {
            changed: vec![r(0, 512), r(512, size - 512)],
            ..sample_v2()
        };
        m.validate().unwrap();
        assert_eq!(AbsMetadata::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn changed_range_count_is_bounded() {
        let mut m = sample_v2();
        m.changed.clear();
        let b = m.encode();
        let payload = &b[16..b.len() - 4];
        let mut p = payload[..payload.len() - 4].to_vec();
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        let e = AbsMetadata::decode(&seal(METADATA_MAGIC, 2, &p))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("changed range count") && e.contains(&u32::MAX.to_string()),
            "{e}"
        );
        let m = AbsMetadata {
            changed: vec![LogicalRange { offset: 0, length: 1 }; MAX_MAP_EXTENTS + 1],
            ..sample_v2()
        };
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("changed range count"), "{e}");
    }
}
