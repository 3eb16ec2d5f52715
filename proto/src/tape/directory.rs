//! The directory and catalog written at the end of a tape.
//!
//! Both are envelopes ([`super::bytes`]). They only speed up what a scan of
//! the data files could also find: every segment and metadata file is
//! self-describing.
//!
//! DIRECTORY (magic `DMCDIR01`, version 1) payload:
//!
//! | size    | type | field                                   |
//! |--------:|------|-----------------------------------------|
//! | 4+n     | str  | label                                   |
//! | 8       | u64  | media_set                               |
//! | 4       | u32  | sequence                                |
//! | 4       | u32  | entry count N (≤ 4,194,304)             |
//! | N × 37  |      | entries (see [`DirectoryEntry`])        |
//!
//! CATALOG (magic `DMCCAT01`, version 2; version 1 still read) payload:
//!
//! | size    | type | field                                   |
//! |--------:|------|-----------------------------------------|
//! | 4+n     | str  | label                                   |
//! | 4+n     | str  | pool                                    |
//! | 8       | u64  | media_set                               |
//! | 4       | u32  | sequence                                |
//! | 4       | u32  | ABS count A                             |
//! | A ×     |      | u64 abs_id, str object_name, u8 has_metadata (0/1), u32 metadata_file (0 when none), u32 segment count S, S × 37-byte entries; version 2 adds u8 has_record (0/1) and, when 1, the ABS's management record ([`super::management`]) |
//!
//! The record of an ABS whose metadata is on the tape is the one in that
//! metadata (every segment placed). An ABS the tape holds only segments of
//! (its media set goes on on another tape, where its metadata follows) has
//! the record its writer was given when the tape was finished, with every
//! segment known then placed; or none. A record names its ABS last in its
//! chain (checked).

use super::bytes::{seal, unseal, unseal_versions, ByteReader, ByteWriter};
use super::error::Location;
use super::management::Management;
use super::metadata::MAX_OBJECT_NAME;
use super::node::MAX_POOL_LEN;
use super::TapeError;

/// Magic of the DIRECTORY.
pub const DIRECTORY_MAGIC: &[u8; 8] = b"DMCDIR01";
/// Magic of the CATALOG.
pub const CATALOG_MAGIC: &[u8; 8] = b"DMCCAT01";
/// Envelope version of the DIRECTORY, and of the first CATALOG.
pub const DIRECTORY_VERSION: u16 = 1;
/// Envelope version of the CATALOG written (management records).
pub const CATALOG_VERSION: u16 = 2;
/// Most entries in a directory (and segments in a catalog).
pub const MAX_DIRECTORY_ENTRIES: usize = 1 << 22;
/// Largest DIRECTORY or CATALOG payload (256 MiB).
pub const MAX_DIRECTORY_PAYLOAD: usize = 256 << 20;
/// Bytes of one encoded entry.
pub const ENTRY_BYTES: usize = 37;

/// Kind of a data tape file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Segment,
    AbsMetadata,
}

impl FileKind {
    /// Code on tape: 1 = segment, 2 = ABS metadata.
    pub fn code(self) -> u8 {
        match self {
            FileKind::Segment => 1,
            FileKind::AbsMetadata => 2,
        }
    }
    pub fn from_code(code: u8) -> Option<FileKind> {
        match code {
            1 => Some(FileKind::Segment),
            2 => Some(FileKind::AbsMetadata),
            _ => None,
        }
    }
}

/// One data tape file.
///
/// Encoded in 37 bytes:
///
/// | offset | size | type | field                                       |
/// |-------:|-----:|------|---------------------------------------------|
/// | 0      | 4    | u32  | file_number                                 |
/// | 4      | 1    | u8   | kind: 1 = segment, 2 = ABS metadata         |
/// | 5      | 8    | u64  | abs_id                                      |
/// | 13     | 4    | u32  | seq (0 for metadata)                        |
/// | 17     | 8    | u64  | bytes of the tape file                      |
/// | 25     | 4    | u32  | CRC32C of all bytes of the tape file        |
/// | 29     | 8    | u64  | records the tape file occupies              |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub file_number: u32,
    pub kind: FileKind,
    pub abs_id: u64,
    /// Segment sequence (0 for metadata).
    pub seq: u32,
    pub bytes: u64,
    /// CRC32C of the whole tape file's bytes (for a segment this is not the
    /// body CRC in its trailer, which leaves out the trailer).
    pub crc32c: u32,
    /// Records (blocks) the file occupies.
    pub records: u64,
}

impl DirectoryEntry {
    fn encode(&self, w: &mut ByteWriter) {
        w.u32(self.file_number)
            .u8(self.kind.code())
            .u64(self.abs_id)
            .u32(self.seq)
            .u64(self.bytes)
            .u32(self.crc32c)
            .u64(self.records);
    }

    fn decode(r: &mut ByteReader<'_>) -> Result<DirectoryEntry, TapeError> {
        let file_number = r.u32("entry file_number")?;
        let kind_at = r.offset();
        let code = r.u8("entry kind")?;
        let kind = FileKind::from_code(code).ok_or_else(|| {
            TapeError::corrupt(
                Location::offset(kind_at),
                format!("{} entry kind", r.what()),
                "1 (segment) or 2 (ABS metadata)",
                code.to_string(),
            )
        })?;
        Ok(DirectoryEntry {
            file_number,
            kind,
            abs_id: r.u64("entry abs_id")?,
            seq: r.u32("entry seq")?,
            bytes: r.u64("entry bytes")?,
            crc32c: r.u32("entry crc32c")?,
            records: r.u64("entry records")?,
        })
    }
}

/// The DIRECTORY tape file: every data tape file of the tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub label: String,
    pub media_set: u64,
    pub sequence: u32,
    pub entries: Vec<DirectoryEntry>,
}

impl Directory {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::with_capacity(32 + self.entries.len() * ENTRY_BYTES);
        w.str(&self.label)
            .u64(self.media_set)
            .u32(self.sequence)
            .len32(self.entries.len());
        for e in &self.entries {
            e.encode(&mut w);
        }
        seal(DIRECTORY_MAGIC, DIRECTORY_VERSION, w.as_slice())
    }

    pub fn decode(bytes: &[u8]) -> Result<Directory, TapeError> {
        let mut r = unseal(
            bytes,
            DIRECTORY_MAGIC,
            DIRECTORY_VERSION,
            "DIRECTORY",
            MAX_DIRECTORY_PAYLOAD,
        )?;
        let label = r.str("label", 6)?;
        let media_set = r.u64("media_set")?;
        let sequence = r.u32("sequence")?;
        let n = r.count("entry count", MAX_DIRECTORY_ENTRIES, ENTRY_BYTES)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(DirectoryEntry::decode(&mut r)?);
        }
        r.finish()?;
        Ok(Directory {
            label,
            media_set,
            sequence,
            entries,
        })
    }
}

/// Enough to rebuild the catalog of one tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub label: String,
    pub pool: String,
    pub media_set: u64,
    pub sequence: u32,
    pub entries: Vec<CatalogAbs>,
}

/// One ABS with data on this tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogAbs {
    pub abs_id: u64,
    pub object_name: String,
    pub metadata_file: Option<u32>,
    pub segments: Vec<DirectoryEntry>,
    /// Its management record (None in a version-1 CATALOG).
    pub record: Option<Management>,
}

impl Catalog {
    /// Build the catalog from a directory: ABSs in order of their first
    /// file on the tape; the metadata file is the last one of the ABS;
    /// `object_name` and `record` give each ABS's name and record.
    pub fn from_directory(
        label: &str,
        pool: &str,
        media_set: u64,
        sequence: u32,
        entries: &[DirectoryEntry],
        object_name: impl Fn(u64) -> String,
        record: impl Fn(u64) -> Option<Management>,
    ) -> Catalog {
        let mut out: Vec<CatalogAbs> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for e in entries {
            let i = *index.entry(e.abs_id).or_insert_with(|| {
                out.push(CatalogAbs {
                    abs_id: e.abs_id,
                    object_name: object_name(e.abs_id),
                    metadata_file: None,
                    segments: Vec::new(),
                    record: record(e.abs_id),
                });
                out.len() - 1
            });
            if let Some(abs) = out.get_mut(i) {
                match e.kind {
                    FileKind::Segment => abs.segments.push(e.clone()),
                    FileKind::AbsMetadata => abs.metadata_file = Some(e.file_number),
                }
            }
        }
        Catalog {
            label: label.to_owned(),
            pool: pool.to_owned(),
            media_set,
            sequence,
            entries: out,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.str(&self.label)
            .str(&self.pool)
            .u64(self.media_set)
            .u32(self.sequence)
            .len32(self.entries.len());
        for a in &self.entries {
            w.u64(a.abs_id)
                .str(&a.object_name)
                .u8(u8::from(a.metadata_file.is_some()))
                .u32(a.metadata_file.unwrap_or(0))
                .len32(a.segments.len());
            for s in &a.segments {
                s.encode(&mut w);
            }
            match &a.record {
                Some(m) => {
                    w.u8(1);
                    m.encode_into(&mut w);
                }
                None => {
                    w.u8(0);
                }
            }
        }
        seal(CATALOG_MAGIC, CATALOG_VERSION, w.as_slice())
    }

    /// The record of ABS `abs_id`, if the CATALOG has one.
    pub fn record_of(&self, abs_id: u64) -> Option<&Management> {
        self.entries
            .iter()
            .find(|a| a.abs_id == abs_id)
            .and_then(|a| a.record.as_ref())
    }

    pub fn decode(bytes: &[u8]) -> Result<Catalog, TapeError> {
        let (version, mut r) = unseal_versions(
            bytes,
            CATALOG_MAGIC,
            DIRECTORY_VERSION,
            CATALOG_VERSION,
            "CATALOG",
            MAX_DIRECTORY_PAYLOAD,
        )?;
        let label = r.str("label", 6)?;
        let pool = r.str("pool", MAX_POOL_LEN)?;
        let media_set = r.u64("media_set")?;
        let sequence = r.u32("sequence")?;
        let n = r.count("ABS count", MAX_DIRECTORY_ENTRIES, 8 + 4 + 1 + 4 + 4)?;
        let mut entries = Vec::with_capacity(n);
        let mut total = 0usize;
        for _ in 0..n {
            let abs_id = r.u64("abs_id")?;
            let object_name = r.str("object_name", MAX_OBJECT_NAME)?;
            let has_meta = r.bool("has_metadata")?;
            let mf_at = r.offset();
            let mf = r.u32("metadata_file")?;
            if !has_meta && mf != 0 {
                return Err(TapeError::corrupt(
                    Location::offset(mf_at),
                    "CATALOG field metadata_file",
                    "0 when has_metadata is 0",
                    mf.to_string(),
                ));
            }
            let s = r.count("segment count", MAX_DIRECTORY_ENTRIES - total, ENTRY_BYTES)?;
            total += s;
            let mut segments = Vec::with_capacity(s);
            for _ in 0..s {
                let at = r.offset();
                let e = DirectoryEntry::decode(&mut r)?;
                if e.kind != FileKind::Segment || e.abs_id != abs_id {
                    return Err(TapeError::corrupt(
                        Location::offset(at),
                        "CATALOG segment entry",
                        format!("a segment of ABS {abs_id}"),
                        format!("{:?} of ABS {}", e.kind, e.abs_id),
                    ));
                }
                segments.push(e);
            }
            let record = if version >= CATALOG_VERSION && r.bool("has_record")? {
                let at = r.offset();
                let m = Management::decode_from(&mut r)?;
                if m.chain.last() != Some(&abs_id) {
                    return Err(TapeError::corrupt(
                        Location::offset(at),
                        "CATALOG management record",
                        format!("the record of ABS {abs_id} (its chain ending with {abs_id})"),
                        format!("a chain ending with {:?}", m.chain.last()),
                    ));
                }
                Some(m)
            } else {
                None
            };
            entries.push(CatalogAbs {
                abs_id,
                object_name,
                metadata_file: has_meta.then_some(mf),
                segments,
                record,
            });
        }
        r.finish()?;
        Ok(Catalog {
            label,
            pool,
            media_set,
            sequence,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<DirectoryEntry> {
        let e = |file_number, kind, abs_id, seq| DirectoryEntry {
            file_number,
            kind,
            abs_id,
            seq,
            bytes: 1000 + file_number as u64,
            crc32c: 0xdead_0000 + file_number,
            records: 2,
        };
        vec![
            e(2, FileKind::Segment, 10, 0),
            e(3, FileKind::Segment, 11, 0),
            e(4, FileKind::Segment, 10, 1),
            e(5, FileKind::AbsMetadata, 10, 0),
            e(6, FileKind::Segment, 11, 1),
        ]
    }

    #[test]
    fn directory_round_trip_and_entry_layout() {
        let d = Directory {
            label: "T1".into(),
            media_set: 5,
            sequence: 1,
            entries: entries(),
        };
        let b = d.encode();
        assert_eq!(&b[..8], b"DMCDIR01");
        // payload: str(4+2) + 8 + 4 + 4 = 22 bytes, then entries.
        let first = &b[16 + 22..16 + 22 + ENTRY_BYTES];
        assert_eq!(&first[0..4], &2u32.to_le_bytes());
        assert_eq!(first[4], 1);
        assert_eq!(&first[5..13], &10u64.to_le_bytes());
        assert_eq!(b.len(), 20 + 22 + 5 * ENTRY_BYTES);
        assert_eq!(Directory::decode(&b).unwrap(), d);
    }

    #[test]
    fn catalog_groups_by_abs() {
        let c = Catalog::from_directory("T1", "pool", 5, 1, &entries(), |id| format!("obj{id}"), |_| None);
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[0].abs_id, 10);
        assert_eq!(c.entries[0].object_name, "obj10");
        assert_eq!(c.entries[0].metadata_file, Some(5));
        assert_eq!(c.entries[0].segments.iter().map(|s| s.seq).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(c.entries[1].metadata_file, None);
        let b = c.encode();
        assert_eq!(&b[..8], b"DMCCAT01");
        assert_eq!(Catalog::decode(&b).unwrap(), c);
        for i in (0..b.len()).step_by(7) {
            let mut bad = b.clone();
            bad[i] ^= 0x80;
            assert!(Catalog::decode(&bad).is_err());
        }
    }

    #[test]
    fn catalog_records_round_trip_and_version_1_still_reads() {
        let record = |id: u64| {
            let mut m = crate::tape::management::tests::sample();
            m.chain = vec![3, id];
            m
        };
        let c = Catalog::from_directory(
            "T1",
            "pool",
            5,
            1,
            &entries(),
            |id| format!("obj{id}"),
            |id| (id == 10).then(|| record(id)),
        );
        assert_eq!(c.record_of(10), Some(&record(10)));
        assert_eq!(c.record_of(11), None);
        let b = c.encode();
        assert_eq!(&b[8..10], &CATALOG_VERSION.to_le_bytes());
        assert_eq!(Catalog::decode(&b).unwrap(), c);

        // A record that is not its ABS's is refused.
        let wrong = Catalog::from_directory(
            "T1",
            "pool",
            5,
            1,
            &entries(),
            |id| format!("obj{id}"),
            |_| Some(record(99)),
        );
        let e = Catalog::decode(&wrong.encode()).unwrap_err().to_string();
        assert!(e.contains("the record of ABS 10"), "{e}");

        // Version 1: the same ABS part without has_record.
        let mut w = ByteWriter::new();
        w.str("T1").str("pool").u64(5).u32(1).len32(1);
        w.u64(11).str("obj11").u8(0).u32(0).len32(0);
        let v1 = seal(CATALOG_MAGIC, DIRECTORY_VERSION, w.as_slice());
        let old = Catalog::decode(&v1).unwrap();
        assert_eq!(old.entries[0].abs_id, 11);
        assert_eq!(old.entries[0].record, None);
        // A future version is refused, naming it.
        let future = seal(CATALOG_MAGIC, CATALOG_VERSION + 1, w.as_slice());
        let e = Catalog::decode(&future).unwrap_err().to_string();
        assert!(e.contains("version 3"), "{e}");
    }

    #[test]
    fn a_directory_is_not_a_catalog() {
        let d = Directory {
            label: "T1".into(),
            media_set: 5,
            sequence: 1,
            entries: vec![],
        };
        assert!(Catalog::decode(&d.encode()).is_err());
        assert!(Directory::decode(&d.encode()).is_ok());
    }
}
