//! The management region of a target volume (seed 004 with seed 002 FIG.
//! 11): a version's management record kept *on* the volume it was copied
//! to, outside the address space the volume exposes, so that the volume
//! says by itself which version of which source it holds — across a node
//! restart, and for a catalog rebuilt from the media.
//!
//! The region is [`REGION_BYTES`] (64 KiB) long: two slots of
//! [`SLOT_BYTES`] (32 KiB). A record is written into the slot that does not
//! hold the newest valid record, with a sequence number one higher, so a
//! write torn by a crash leaves the previous record readable in the other
//! slot. A slot is all zero (empty) or an envelope (see
//! [`crate::tape::bytes`]: magic `DMCVRG01`, version, length, payload,
//! CRC32C) followed by zeros. Payload (little-endian; `str` = u32 byte length
//! + UTF-8; `key` = str node, str volume):
//!
//! | size | type | field |
//! |-----:|------|-------|
//! | 8    | u64  | sequence: higher is newer |
//! | 16   | uuid | cluster_id: the cluster that made the version |
//! | 4+n  | str  | set: the version set (≤ 64) |
//! | 8    | u64  | version number (≥ 1) |
//! | 8    | u64  | point_in_time_ms: the version's one point in time (Unix ms) |
//! | var  | key  | source: the volume this one is a copy of |
//! | var  | key  | target: this volume |
//! | 8    | u64  | source_size: the bytes copied cover 0 .. source_size |
//! | 4    | u32  | block_size |
//! | 4    | u32  | track_size |
//! | 8    | u64  | bytes_copied |
//! | 8    | u64  | base_version: the version the target held before, whose unchanged tracks it keeps (0: copied whole) |
//! | 4    | u32  | pair count P (≤ [`MAX_REGION_PAIRS`]) |
//! | P × var | key, key | every pair of the version (source, target), so any target describes the whole version |
//! | 8    | u64  | written_ms (Unix ms) |
//!
//! A record of another version than 1 is refused, naming it.

use crate::domain::volume::MAX_VOLUME_KEY_PART;
use rkyv::{Archive, Deserialize, Serialize};

use crate::domain::{Uuid, VolumeKey};
use crate::tape::bytes::{seal, unseal_versions, ByteReader, ByteWriter, ENVELOPE_OVERHEAD};
use crate::tape::TapeError;

/// Bytes of a management region.
pub const REGION_BYTES: usize = 64 << 10;
/// Bytes of one of its two slots.
pub const SLOT_BYTES: usize = REGION_BYTES / 2;
/// Magic of a region record.
pub const REGION_MAGIC: &[u8; 8] = b"DMCVRG01";
/// Version of the record layout.
pub const REGION_VERSION: u16 = 1;
/// Most pairs one record lists.
pub const MAX_REGION_PAIRS: usize = 256;
/// Longest set name.
pub const MAX_SET_NAME: usize = 64;

/// What a target volume holds: one version of one source volume (it also
/// travels on the wire: a node reports its target volumes' stamps).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VersionStamp {
    pub cluster_id: Uuid,
    pub set: String,
    pub version: u64,
    pub point_in_time_ms: u64,
    pub source: VolumeKey,
    pub target: VolumeKey,
    pub source_size: u64,
    pub block_size: u32,
    pub track_size: u32,
    pub bytes_copied: u64,
    /// The version the target held before (its unchanged tracks kept), 0: none.
    pub base_version: u64,
    pub pairs: Vec<(VolumeKey, VolumeKey)>,
    pub written_ms: u64,
}

fn key(w: &mut ByteWriter, k: &VolumeKey) {
    w.str(&k.node).str(&k.volume);
}

fn read_key(r: &mut ByteReader<'_>, what: &str) -> Result<VolumeKey, TapeError> {
    let node = r.str(&format!("{what} node"), MAX_VOLUME_KEY_PART)?;
    let volume = r.str(&format!("{what} volume"), MAX_VOLUME_KEY_PART)?;
    Ok(VolumeKey { node, volume })
}

impl VersionStamp {
    /// The slot bytes (envelope and zero padding, [`SLOT_BYTES`] long) of
    /// this stamp with sequence `sequence`; too large a record is refused.
    pub fn encode_slot(&self, sequence: u64) -> Result<Vec<u8>, TapeError> {
        if self.set.is_empty() || self.set.len() > MAX_SET_NAME {
            return Err(TapeError::invalid(
                "region record set",
                format!("1 to {MAX_SET_NAME} bytes"),
                format!("{} bytes", self.set.len()),
            ));
        }
        if self.pairs.len() > MAX_REGION_PAIRS {
            return Err(TapeError::invalid(
                "region record pairs",
                format!("at most {MAX_REGION_PAIRS}"),
                self.pairs.len().to_string(),
            ));
        }
        let mut w = ByteWriter::new();
        w.u64(sequence)
            .bytes(self.cluster_id.as_bytes())
            .str(&self.set)
            .u64(self.version)
            .u64(self.point_in_time_ms);
        key(&mut w, &self.source);
        key(&mut w, &self.target);
        w.u64(self.source_size)
            .u32(self.block_size)
            .u32(self.track_size)
            .u64(self.bytes_copied)
            .u64(self.base_version)
            .len32(self.pairs.len());
        for (s, t) in &self.pairs {
            key(&mut w, s);
            key(&mut w, t);
        }
        w.u64(self.written_ms);
        let mut slot = seal(REGION_MAGIC, REGION_VERSION, w.as_slice());
        if slot.len() > SLOT_BYTES {
            return Err(TapeError::invalid(
                "region record",
                format!("at most {SLOT_BYTES} bytes"),
                format!("{} bytes", slot.len()),
            ));
        }
        slot.resize(SLOT_BYTES, 0);
        Ok(slot)
    }

    /// Read one slot: None when it is empty (all zero).
    pub fn decode_slot(slot: &[u8]) -> Result<Option<(u64, VersionStamp)>, TapeError> {
        if slot.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let mut head = ByteReader::new(slot, "region slot");
        head.take(12, "magic and version")?;
        let len = head.u32("payload length")? as usize;
        let end = len
            .checked_add(ENVELOPE_OVERHEAD)
            .filter(|e| *e <= slot.len())
            .ok_or_else(|| {
                head.error(
                    "payload length",
                    format!("at most {} bytes", slot.len() - ENVELOPE_OVERHEAD),
                    format!("{len} bytes"),
                )
            })?;
        let (_, mut r) = unseal_versions(
            &slot[..end],
            REGION_MAGIC,
            REGION_VERSION,
            REGION_VERSION,
            "region record",
            SLOT_BYTES,
        )?;
        let sequence = r.u64("sequence")?;
        let cluster_id = Uuid(r.array("cluster_id")?);
        let set = r.str("set", MAX_SET_NAME)?;
        let version = r.u64("version")?;
        let point_in_time_ms = r.u64("point_in_time_ms")?;
        let source = read_key(&mut r, "source")?;
        let target = read_key(&mut r, "target")?;
        let source_size = r.u64("source_size")?;
        let block_size = r.u32("block_size")?;
        let track_size = r.u32("track_size")?;
        let bytes_copied = r.u64("bytes_copied")?;
        let base_version = r.u64("base_version")?;
        let n = r.count("pair count", MAX_REGION_PAIRS, 16)?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            pairs.push((read_key(&mut r, "pair source")?, read_key(&mut r, "pair target")?));
        }
        let written_ms = r.u64("written_ms")?;
        r.finish()?;
        if slot[end..].iter().any(|b| *b != 0) {
            return Err(TapeError::invalid(
                "region slot",
                "zeros after the record",
                "other bytes",
            ));
        }
        Ok(Some((
            sequence,
            VersionStamp {
                cluster_id,
                set,
                version,
                point_in_time_ms,
                source,
                target,
                source_size,
                block_size,
                track_size,
                bytes_copied,
                base_version,
                pairs,
                written_ms,
            },
        )))
    }
}

/// What a region holds: its newest valid record, and where the next write goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionState {
    /// The newest valid record and its sequence.
    pub newest: Option<(u64, VersionStamp)>,
    /// The slot (0 or 1) the next record is written to.
    pub next_slot: usize,
    /// A slot that held something unreadable (a torn write), with why.
    pub damaged: Option<(usize, String)>,
}

/// Read a region ([`REGION_BYTES`]). Both slots unreadable is an error;
/// one is a torn write, reported in [`RegionState::damaged`], and the
/// other holds the record.
pub fn read_region(region: &[u8]) -> Result<RegionState, TapeError> {
    if region.len() != REGION_BYTES {
        return Err(TapeError::invalid(
            "management region",
            format!("{REGION_BYTES} bytes"),
            format!("{} bytes", region.len()),
        ));
    }
    let mut newest: Option<(usize, u64, VersionStamp)> = None;
    let mut damaged = None;
    let mut errors = Vec::new();
    for (i, slot) in region.chunks(SLOT_BYTES).enumerate() {
        match VersionStamp::decode_slot(slot) {
            Ok(Some((seq, s))) => {
                if newest.as_ref().is_none_or(|(_, n, _)| seq > *n) {
                    newest = Some((i, seq, s));
                }
            }
            Ok(None) => {}
            Err(e) => {
                errors.push(format!("slot {i}: {e}"));
                damaged = Some((i, e.to_string()));
            }
        }
    }
    if errors.len() == 2 {
        return Err(TapeError::invalid(
            "management region",
            "a readable record in one of its two slots",
            errors.join("; "),
        ));
    }
    Ok(match newest {
        Some((i, seq, s)) => RegionState {
            newest: Some((seq, s)),
            next_slot: 1 - i,
            damaged,
        },
        None => RegionState {
            newest: None,
            next_slot: damaged.as_ref().map_or(0, |(i, _)| *i),
            damaged,
        },
    })
}

/// The write that records `stamp` in a region now in `state`: (byte offset
/// in the region, the slot's bytes).
pub fn next_write(state: &RegionState, stamp: &VersionStamp) -> Result<(usize, Vec<u8>), TapeError> {
    let seq = state.newest.as_ref().map_or(1, |(s, _)| s.saturating_add(1));
    Ok((state.next_slot * SLOT_BYTES, stamp.encode_slot(seq)?))
}

#[cfg(test)]
mod tests;
