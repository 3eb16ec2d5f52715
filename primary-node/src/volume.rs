//! Volumes served by a primary node: image files (or block devices) with a geometry.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use proto::abs::{Geometry, VolumeRef};

/// One volume: a file or block device read and written at byte offsets.
#[derive(Debug)]
pub struct Volume {
    pub name: String,
    pub path: PathBuf,
    pub geometry: Geometry,
    pub size: u64,
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
            file,
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
            .with_context(|| format!("reading {len} bytes at {offset} of volume {}", self.name))
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
