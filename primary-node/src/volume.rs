//! Volumes served by a primary node: image files (or block devices) with a
//! geometry. A *target volume* (copy versions, seed 004) ends with a
//! management region ([`proto::region`], 64 KiB) that is not part of the
//! space it exposes: hosts, backups and restores see `size` bytes, the
//! region after them holds the record of the version it was copied to.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use proto::abs::{Geometry, VolumeRef};
use proto::region::{next_write, read_region, RegionState, VersionStamp, REGION_BYTES};
use proto::wire::TargetVolume;

/// One volume: a file or block device read and written at byte offsets.
#[derive(Debug)]
pub struct Volume {
    pub name: String,
    pub path: PathBuf,
    pub geometry: Geometry,
    /// The bytes it exposes (a target volume: its file without the region).
    pub size: u64,
    /// A target volume: the offset of its management region (= `size`).
    region_at: Option<u64>,
    file: File,
}

impl Volume {
    /// Open `path` read-write. Its size is the volume size.
    pub fn open(name: &str, path: &Path, geometry: Geometry) -> Result<Volume> {
        if !geometry.is_valid() {
            bail!(
                "volume {name}: track size {} must be a positive multiple of the block size {}",
                geometry.track_size,
                geometry.block_size
            );
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening volume {name} at {}", path.display()))?;
        let size = file.metadata().with_context(|| format!("stat of volume {name}"))?.len();
        Ok(Volume {
            name: name.to_string(),
            path: path.to_path_buf(),
            geometry,
            size,
            region_at: None,
            file,
        })
    }

    /// Open target volume `path`: its last [`REGION_BYTES`] are its
    /// management region, the bytes before them what it exposes.
    pub fn open_target(name: &str, path: &Path, geometry: Geometry) -> Result<Volume> {
        let mut v = Volume::open(name, path, geometry)?;
        let region = REGION_BYTES as u64;
        if v.size <= region {
            bail!(
                "target volume {name} ({}): {} bytes; a target volume needs more than its {region}-byte management region",
                path.display(),
                v.size
            );
        }
        v.size -= region;
        v.region_at = Some(v.size);
        // Readable now, or the node does not start with it.
        v.region_state()?;
        Ok(v)
    }

    /// Whether this is a target volume.
    pub fn is_target(&self) -> bool {
        self.region_at.is_some()
    }

    /// Read the management region.
    pub fn region_state(&self) -> Result<RegionState> {
        let Some(at) = self.region_at else {
            bail!("volume {} has no management region (not a target volume)", self.name);
        };
        let mut buf = vec![0u8; REGION_BYTES];
        self.file
            .read_exact_at(&mut buf, at)
            .with_context(|| format!("reading the management region of volume {}", self.name))?;
        read_region(&buf).with_context(|| format!("the management region of volume {}", self.name))
    }

    /// Record `stamp` in the management region (the other slot than the
    /// newest record's) and sync it.
    pub fn write_stamp(&self, stamp: &VersionStamp) -> Result<()> {
        let state = match self.region_state() {
            Ok(s) => s,
            // Both slots unreadable: start again in slot 0.
            Err(e) if self.is_target() => {
                tracing::warn!(volume = %self.name, error = %format!("{e:#}"), "management region unreadable: writing a new record");
                RegionState {
                    newest: None,
                    next_slot: 0,
                    damaged: None,
                }
            }
            Err(e) => return Err(e),
        };
        let (off, bytes) = next_write(&state, stamp).with_context(|| format!("the record for volume {}", self.name))?;
        let at = self.region_at.unwrap_or(self.size) + off as u64;
        self.file
            .write_all_at(&bytes, at)
            .with_context(|| format!("writing the management region of volume {}", self.name))?;
        self.sync()
    }

    /// Clear the management region (both slots, synced): the volume holds
    /// no version now (a copy onto it starts).
    pub fn clear_stamp(&self) -> Result<()> {
        let Some(at) = self.region_at else {
            bail!("volume {} has no management region (not a target volume)", self.name);
        };
        self.file
            .write_all_at(&vec![0u8; REGION_BYTES], at)
            .with_context(|| format!("clearing the management region of volume {}", self.name))?;
        self.sync()
    }

    /// What a target volume reports at registration (None: not a target).
    pub fn target_report(&self) -> Option<TargetVolume> {
        self.is_target().then(|| match self.region_state() {
            Ok(s) => TargetVolume {
                volume: self.name.clone(),
                stamp: s.newest.map(|(_, st)| st),
                damaged: s.damaged.map(|(slot, why)| format!("slot {slot}: {why}")),
            },
            Err(e) => TargetVolume {
                volume: self.name.clone(),
                stamp: None,
                damaged: Some(format!("{e:#}")),
            },
        })
    }

    pub fn reference(&self) -> VolumeRef {
        VolumeRef {
            name: self.name.clone(),
            geometry: self.geometry,
            size: self.size,
        }
    }

    /// Read `len` bytes at `offset` (must be inside the volume).
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_into(offset, &mut buf)?;
        Ok(buf)
    }

    /// Fill `buf` from `offset` (must be inside the volume).
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        let end = offset.checked_add(len as u64).context("offset overflow")?;
        if end > self.size {
            bail!(
                "read of {len} bytes at {offset} runs past the end of volume {} ({} bytes)",
                self.name,
                self.size
            );
        }
        self.file
            .read_exact_at(buf, offset)
            .with_context(|| format!("reading {len} bytes at {offset} of volume {}", self.name))?;
        // Every read of the volume's data (hosts, backups, copies) counts.
        metrics::counter!("dmc_primary_volume_read_bytes_total", "volume" => self.name.clone()).increment(len as u64);
        Ok(())
    }

    /// Write `data` at `offset` (must be inside the volume).
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset.checked_add(data.len() as u64).context("offset overflow")?;
        if end > self.size {
            bail!(
                "write of {} bytes at {offset} runs past the end of volume {} ({} bytes)",
                data.len(),
                self.name,
                self.size
            );
        }
        self.file
            .write_all_at(data, offset)
            .with_context(|| format!("writing {} bytes at {offset} of volume {}", data.len(), self.name))
    }

    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("syncing volume {}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::domain::{Uuid, VolumeKey};

    const G: Geometry = Geometry {
        block_size: 4096,
        track_size: 65536,
    };

    fn stamp(version: u64) -> VersionStamp {
        VersionStamp {
            cluster_id: Uuid::from_random_bytes([1; 16]),
            set: "daily".into(),
            version,
            point_in_time_ms: 1000 * version,
            source: VolumeKey::new("pn1", "a"),
            target: VolumeKey::new("pn2", "t"),
            source_size: 1 << 20,
            block_size: 4096,
            track_size: 65536,
            bytes_copied: 1 << 20,
            base_version: 0,
            pairs: Vec::new(),
            written_ms: 5,
        }
    }

    #[test]
    fn a_target_volume_hides_its_region_and_keeps_its_record_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.img");
        let total = (1 << 20) + REGION_BYTES as u64;
        std::fs::File::create(&path).unwrap().set_len(total).unwrap();
        let v = Volume::open_target("t", &path, G).unwrap();
        assert_eq!(v.size, 1 << 20, "the region is not exposed");
        assert_eq!(v.reference().size, 1 << 20);
        assert!(
            v.write_at(v.size - 4096, &[7u8; 8192]).is_err(),
            "no write reaches the region"
        );
        assert_eq!(v.target_report().unwrap().stamp, None);
        v.write_stamp(&stamp(1)).unwrap();
        v.write_stamp(&stamp(3)).unwrap();
        drop(v);
        // The node restarts: the record is read back from the volume.
        let v = Volume::open_target("t", &path, G).unwrap();
        let r = v.target_report().unwrap();
        assert_eq!((r.stamp, r.damaged), (Some(stamp(3)), None));
        // A copy starting onto it clears the record first.
        v.clear_stamp().unwrap();
        let r = v.target_report().unwrap();
        assert_eq!((r.stamp, r.damaged), (None, None));
        v.write_stamp(&stamp(4)).unwrap();
        assert_eq!(v.target_report().unwrap().stamp, Some(stamp(4)));
        // A plain volume on the same file exposes everything and has no region.
        let plain = Volume::open("t", &path, G).unwrap();
        assert_eq!(plain.size, total);
        assert!(plain.target_report().is_none());
        // Too small for a region.
        let small = dir.path().join("s.img");
        std::fs::File::create(&small)
            .unwrap()
            .set_len(REGION_BYTES as u64)
            .unwrap();
        let e = Volume::open_target("s", &small, G).unwrap_err().to_string();
        assert!(e.contains("needs more than its 65536-byte management region"), "{e}");
    }
}
