//! The change map of a volume (issue 4, "Change tracking"): for each track,
//! the **epoch** in which a host last wrote it.
//!
//! The volume's epoch counter starts at 1 and advances each time a backup
//! starts: [`ChangeMap::begin_backup`] returns the epoch the backup
//! captures (every write stamped with it or earlier is in the backup's
//! image, by point-in-time semantics) and moves writes after it into the
//! next epoch. A differential backup based on a backup that captured epoch
//! `e` copies exactly the tracks stamped later than `e`. Nothing is ever
//! cleared, so a failed backup loses no change, and any number of objects
//! (and backup chains) on one volume share the map.
//!
//! The map is identified by a random `map_id` chosen when it is created;
//! an epoch means nothing under another map (a volume whose map was lost
//! and recreated needs a full backup). A map created for a volume with
//! history unknown stamps every track with epoch 1: the first differential
//! copies everything.
//!
//! On disk (`<volume>.changes`), little-endian, fixed layout so a track's
//! stamp is updated in place (one 8-byte entry, written and synced before
//! the host write it covers is acknowledged, only when the stamp changes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `DMCCHG01` |
//! | 8 | 8 | map id |
//! | 16 | 8 | track count `n` |
//! | 24 | 4 | current epoch |
//! | 28 | 4 | CRC32C of bytes 0..28 |
//! | 32 + 8·t | 4 | epoch of track `t` |
//! | 36 + 8·t | 4 | CRC32C of (map id, t, epoch) |
//!
//! An entry whose CRC does not match (a torn write) is read as changed in
//! the current epoch: the next differential copies the track, never misses it.

use proto::num::to_usize;
use thiserror::Error;

/// Magic and version of the file.
pub const MAGIC: &[u8; 8] = b"DMCCHG01";
/// Bytes before the first track entry.
pub const HEADER_LEN: usize = 32;
/// Bytes per track entry.
pub const ENTRY_LEN: usize = 8;

/// A bad change map.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("change map: {what} at byte {at}: expected {expected}, found {found}")]
    Corrupt {
        what: &'static str,
        at: u64,
        expected: String,
        found: String,
    },
    #[error("change map: track {track} is outside the volume's {tracks} tracks")]
    OutOfRange { track: u64, tracks: u64 },
    #[error("change map: epoch counter exhausted")]
    EpochOverflow,
}

/// The change map of one volume (pure: see [`ChangeMap::encode`] and the
/// entry helpers for the bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMap {
    map_id: u64,
    epoch: u32,
    stamps: Vec<u32>,
}

/// What a write did to the map: the tracks whose stamp changed (their
/// entries must be persisted before the write is acknowledged).
pub type Restamped = Vec<u64>;

fn entry_crc(map_id: u64, track: u64, epoch: u32) -> u32 {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&map_id.to_le_bytes());
    b[8..16].copy_from_slice(&track.to_le_bytes());
    b[16..].copy_from_slice(&epoch.to_le_bytes());
    crc32c::crc32c(&b)
}

impl ChangeMap {
    /// A new map of `tracks` tracks whose history is unknown: every track
    /// is stamped with epoch 1, the current epoch.
    pub fn new(map_id: u64, tracks: u64) -> ChangeMap {
        ChangeMap {
            map_id,
            epoch: 1,
            stamps: vec![1; to_usize(tracks)],
        }
    }

    pub fn map_id(&self) -> u64 {
        self.map_id
    }

    pub fn tracks(&self) -> u64 {
        self.stamps.len() as u64
    }

    /// The epoch writes are stamped with now.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// A host wrote tracks `first..=last`: stamp them with the current
    /// epoch. Returns the tracks whose stamp changed.
    pub fn mark(&mut self, first: u64, last: u64) -> Result<Restamped, ChangeError> {
        let tracks = self.tracks();
        if first > last || last >= tracks {
            return Err(ChangeError::OutOfRange {
                track: last.max(first),
                tracks,
            });
        }
        let mut changed = Vec::new();
        for t in first..=last {
            let Some(s) = self.stamps.get_mut(to_usize(t)) else {
                break;
            };
            if *s != self.epoch {
                *s = self.epoch;
                changed.push(t);
            }
        }
        Ok(changed)
    }

    /// A backup starts: it captures the current epoch (returned); later
    /// writes belong to the next one.
    pub fn begin_backup(&mut self) -> Result<u32, ChangeError> {
        let captured = self.epoch;
        self.epoch = self.epoch.checked_add(1).ok_or(ChangeError::EpochOverflow)?;
        Ok(captured)
    }

    /// Tracks written after the backup that captured `epoch` started, in
    /// ascending order (all tracks for epoch 0).
    pub fn changed_since(&self, epoch: u32) -> Vec<u64> {
        self.stamps
            .iter()
            .enumerate()
            .filter(|(_, &s)| s > epoch)
            .map(|(t, _)| t as u64)
            .collect()
    }

    /// Whether track `t` was written after the backup that captured `epoch`.
    pub fn is_changed_since(&self, t: u64, epoch: u32) -> bool {
        self.stamps.get(to_usize(t)).is_some_and(|&s| s > epoch)
    }

    /// The header bytes (magic, id, track count, epoch, CRC).
    pub fn encode_header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.map_id.to_le_bytes());
        h[16..24].copy_from_slice(&self.tracks().to_le_bytes());
        h[24..28].copy_from_slice(&self.epoch.to_le_bytes());
        let crc = crc32c::crc32c(&h[..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Track `t`'s entry and its byte offset in the file.
    pub fn encode_entry(&self, t: u64) -> Option<(u64, [u8; ENTRY_LEN])> {
        let s = *self.stamps.get(to_usize(t))?;
        let mut e = [0u8; ENTRY_LEN];
        e[..4].copy_from_slice(&s.to_le_bytes());
        e[4..].copy_from_slice(&entry_crc(self.map_id, t, s).to_le_bytes());
        Some((HEADER_LEN as u64 + t * ENTRY_LEN as u64, e))
    }

    /// The whole file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.stamps.len() * ENTRY_LEN);
        out.extend_from_slice(&self.encode_header());
        for t in 0..self.tracks() {
            if let Some((_, e)) = self.encode_entry(t) {
                out.extend_from_slice(&e);
            }
        }
        out
    }

    /// Read a file. A torn entry reads as written in the current epoch.
    /// Returns the map and the tracks whose entries were torn.
    pub fn decode(bytes: &[u8]) -> Result<(ChangeMap, Vec<u64>), ChangeError> {
        let corrupt = |what, at: u64, expected: String, found: String| ChangeError::Corrupt {
            what,
            at,
            expected,
            found,
        };
        if bytes.len() < HEADER_LEN {
            return Err(corrupt(
                "header",
                0,
                format!("{HEADER_LEN} bytes"),
                format!("{} bytes", bytes.len()),
            ));
        }
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap_or([0; 4]));
        if &bytes[..8] != MAGIC {
            return Err(corrupt(
                "magic",
                0,
                format!("{:?}", String::from_utf8_lossy(MAGIC)),
                format!("{:?}", String::from_utf8_lossy(&bytes[..8])),
            ));
        }
        let crc = crc32c::crc32c(&bytes[..28]);
        if crc != u32_at(28) {
            return Err(corrupt(
                "header checksum",
                28,
                format!("{crc:08x}"),
                format!("{:08x}", u32_at(28)),
            ));
        }
        let map_id = u64_at(8);
        let tracks = u64_at(16);
        let epoch = u32_at(24);
        let want = (tracks as u128) * ENTRY_LEN as u128 + HEADER_LEN as u128;
        if want != bytes.len() as u128 {
            return Err(corrupt(
                "length",
                bytes.len() as u64,
                format!("{want} bytes for {tracks} tracks"),
                format!("{} bytes", bytes.len()),
            ));
        }
        if epoch == 0 {
            return Err(corrupt("epoch", 24, "an epoch of 1 or more".into(), "0".into()));
        }
        let mut stamps = Vec::with_capacity(to_usize(tracks));
        let mut torn = Vec::new();
        for t in 0..tracks {
            let o = HEADER_LEN + to_usize(t) * ENTRY_LEN;
            let s = u32_at(o);
            if u32_at(o + 4) != entry_crc(map_id, t, s) || s > epoch {
                torn.push(t);
                stamps.push(epoch);
            } else {
                stamps.push(s);
            }
        }
        Ok((ChangeMap { map_id, epoch, stamps }, torn))
    }
}

/// A volume's change map in its file: updates go to disk, synced, before
/// they count (see the module docs for the layout).
pub struct ChangeFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    map: ChangeMap,
}

impl ChangeFile {
    /// Open the map at `path`, or create one for a volume of `tracks`
    /// tracks with unknown history (every track changed).
    pub fn open_or_create(path: &std::path::Path, tracks: u64) -> anyhow::Result<ChangeFile> {
        use anyhow::Context;
        use std::hash::{BuildHasher, Hasher};
        if path.exists() {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let (map, torn) = ChangeMap::decode(&bytes).with_context(|| format!("{}", path.display()))?;
            if map.tracks() != tracks {
                anyhow::bail!(
                    "{} is the change map of a volume of {} tracks; this volume has {tracks}",
                    path.display(),
                    map.tracks()
                );
            }
            if !torn.is_empty() {
                tracing::warn!(path = %path.display(), tracks = torn.len(), "torn change-map entries read as changed");
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            return Ok(ChangeFile {
                path: path.to_path_buf(),
                file,
                map,
            });
        }
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let map = ChangeMap::new(h.finish(), tracks);
        let tmp = path.with_extension("changes.tmp");
        std::fs::write(&tmp, map.encode()).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("creating {}", path.display()))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing {}", dir.display()))?;
        }
        tracing::info!(path = %path.display(), tracks, "new change map: every track counts as changed");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(ChangeFile {
            path: path.to_path_buf(),
            file,
            map,
        })
    }

    pub fn map(&self) -> &ChangeMap {
        &self.map
    }

    /// A host is about to write tracks `first..=last`: stamp them, and make
    /// the new stamps durable before returning.
    pub fn mark(&mut self, first: u64, last: u64) -> anyhow::Result<()> {
        self.mark_ranges(&[(first, last)])
    }

    /// Stamp several ranges `(first, last)` with one sync (a restore
    /// announcing what it will write).
    pub fn mark_ranges(&mut self, ranges: &[(u64, u64)]) -> anyhow::Result<()> {
        use anyhow::Context;
        use std::os::unix::fs::FileExt;
        let mut changed = Vec::new();
        for &(first, last) in ranges {
            changed.extend(self.map.mark(first, last)?);
        }
        if changed.is_empty() {
            return Ok(());
        }
        for t in &changed {
            if let Some((off, e)) = self.map.encode_entry(*t) {
                self.file
                    .write_all_at(&e, off)
                    .with_context(|| format!("writing {}", self.path.display()))?;
            }
        }
        self.file
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))?;
        metrics::counter!("dmc_primary_change_map_syncs_total").increment(1);
        Ok(())
    }

    /// A backup starts: returns the epoch it captures, durably advanced.
    pub fn begin_backup(&mut self) -> anyhow::Result<u32> {
        use anyhow::Context;
        use std::os::unix::fs::FileExt;
        let epoch = self.map.begin_backup()?;
        self.file
            .write_all_at(&self.map.encode_header(), 0)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("advancing the epoch in {}", self.path.display()))?;
        Ok(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn differentials_see_exactly_the_writes_after_their_base() {
        let mut m = ChangeMap::new(7, 10);
        // Unknown history: everything counts as changed since any earlier epoch.
        assert_eq!(m.changed_since(0).len(), 10);
        let full = m.begin_backup().unwrap();
        assert!(m.changed_since(full).is_empty());
        assert_eq!(m.mark(2, 3).unwrap(), vec![2, 3]);
        assert_eq!(
            m.mark(3, 3).unwrap(),
            Vec::<u64>::new(),
            "same epoch: nothing to persist"
        );
        let inc1 = m.begin_backup().unwrap();
        assert_eq!(m.changed_since(full), vec![2, 3]);
        m.mark(5, 5).unwrap();
        assert_eq!(m.changed_since(inc1), vec![5], "incremental: since the last backup");
        assert_eq!(m.changed_since(full), vec![2, 3, 5], "cumulative: since the full");
        assert!(m.is_changed_since(5, inc1) && !m.is_changed_since(2, inc1));
        assert!(m.mark(9, 10).is_err() && m.mark(4, 3).is_err());
    }

    #[test]
    fn a_failed_backup_loses_nothing() {
        let mut m = ChangeMap::new(1, 4);
        let full = m.begin_backup().unwrap();
        m.mark(1, 1).unwrap();
        let _failed = m.begin_backup().unwrap();
        m.mark(2, 2).unwrap();
        // The failed backup is simply never used as a base.
        assert_eq!(m.changed_since(full), vec![1, 2]);
    }

    #[test]
    fn file_round_trip_in_place_entries_and_torn_writes() {
        let mut m = ChangeMap::new(0xfeed, 5);
        m.begin_backup().unwrap();
        m.mark(1, 2).unwrap();
        let mut bytes = m.encode();
        let (back, torn) = ChangeMap::decode(&bytes).unwrap();
        assert_eq!((back, torn), (m.clone(), vec![]));
        // In-place update of one entry equals re-encoding.
        m.begin_backup().unwrap();
        m.mark(4, 4).unwrap();
        bytes[..HEADER_LEN].copy_from_slice(&m.encode_header());
        let (off, e) = m.encode_entry(4).unwrap();
        bytes[off as usize..off as usize + ENTRY_LEN].copy_from_slice(&e);
        assert_eq!(bytes, m.encode());
        // A torn entry reads as changed now.
        bytes[HEADER_LEN] ^= 0xff;
        let (back, torn) = ChangeMap::decode(&bytes).unwrap();
        assert_eq!(torn, vec![0]);
        assert!(back.is_changed_since(0, back.epoch() - 1));
        // Header damage, wrong length and magic are errors.
        let good = m.encode();
        for (i, what) in [(0usize, "magic"), (20, "header checksum")] {
            let mut b = good.clone();
            b[i] ^= 1;
            let e = ChangeMap::decode(&b).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        assert!(ChangeMap::decode(&good[..good.len() - 1])
            .unwrap_err()
            .to_string()
            .contains("length"));
        assert!(ChangeMap::decode(&good[..10]).is_err());
    }

    proptest! {
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..3, 0u64..20, 0u64..20), 0..60)) {
            let mut m = ChangeMap::new(3, 20);
            let mut model: Vec<u32> = vec![1; 20];
            let mut epoch = 1u32;
            let mut bases = vec![0u32];
            for (op, a, b) in ops {
                match op {
                    0 => {
                        let (f, l) = (a.min(b), a.max(b));
                        m.mark(f, l).unwrap();
                        for t in f..=l { model[t as usize] = epoch; }
                    }
                    1 => { bases.push(m.begin_backup().unwrap()); epoch += 1; }
                    _ => {
                        let (back, torn) = ChangeMap::decode(&m.encode()).unwrap();
                        prop_assert!(torn.is_empty());
                        prop_assert_eq!(&back, &m);
                    }
                }
            }
            for base in bases {
                let want: Vec<u64> = (0..20).filter(|&t| model[t as usize] > base).collect();
                prop_assert_eq!(m.changed_since(base), want);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ChangeMap::decode(&bytes);
        }
    }
}
