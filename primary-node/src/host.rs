//! Host I/O: every read and write a host makes to a volume passes through
//! here (the NBD export is its front door). A write first marks the tracks
//! it touches in the volume's change map — persisted before the write is
//! acknowledged whenever a track becomes newly changed — then lands on the
//! volume. Differential backups read the change map.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};

use crate::change_map::ChangeFile;
use crate::volume::Volume;

/// A volume with its change map.
pub struct HostVolume {
    pub volume: Arc<Volume>,
    changes: Mutex<ChangeFile>,
}

/// The volumes hosts write to, by name.
pub struct HostIo {
    volumes: HashMap<String, HostVolume>,
}

impl HostIo {
    /// Open (or create) the change map of each volume in `state_dir`
    /// (`<volume>.changes`).
    pub fn open(volumes: &HashMap<String, Arc<Volume>>, state_dir: &Path) -> Result<HostIo> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating state directory {}", state_dir.display()))?;
        let mut out = HashMap::new();
        for (name, v) in volumes {
            let tracks = v.size.div_ceil(u64::from(v.geometry.track_size));
            let path = state_dir.join(format!("{name}.changes"));
            let changes = ChangeFile::open_or_create(&path, tracks)
                .with_context(|| format!("the change map of volume {name} ({})", path.display()))?;
            out.insert(
                name.clone(),
                HostVolume {
                    volume: v.clone(),
                    changes: Mutex::new(changes),
                },
            );
        }
        Ok(HostIo { volumes: out })
    }

    /// Names and sizes of the volumes, sorted by name.
    pub fn exports(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.volumes.iter().map(|(n, h)| (n.clone(), h.volume.size)).collect();
        v.sort();
        v
    }

    pub fn volume(&self, name: &str) -> Result<&HostVolume> {
        self.volumes
            .get(name)
            .ok_or_else(|| anyhow!("this node has no volume {name:?}"))
    }

    /// Run `f` on a volume's change map.
    pub fn with_changes<T>(&self, name: &str, f: impl FnOnce(&mut ChangeFile) -> Result<T>) -> Result<T> {
        let v = self.volume(name)?;
        let mut c = v.changes.lock().map_err(|_| anyhow!("change map of {name} poisoned"))?;
        f(&mut c)
    }
}

impl HostVolume {
    /// Read for a host.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.volume.read_at(offset, len)
    }

    /// Write for a host: mark the tracks changed (durably, if new), then write.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let track = u64::from(self.volume.geometry.track_size);
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= self.volume.size)
            .ok_or_else(|| {
                anyhow!(
                    "write of {} bytes at {offset} past the end of {}",
                    data.len(),
                    self.volume.name
                )
            })?;
        let (first, last) = (offset / track, (end - 1) / track);
        {
            let mut c = self
                .changes
                .lock()
                .map_err(|_| anyhow!("change map of {} poisoned", self.volume.name))?;
            c.mark(first, last)
                .with_context(|| format!("marking tracks {first}..={last} of {} changed", self.volume.name))?;
        }
        metrics::counter!("dmc_primary_host_bytes_written_total").increment(data.len() as u64);
        self.volume.write_at(offset, data)
    }

    /// Make every acknowledged write durable.
    pub fn flush(&self) -> Result<()> {
        self.volume.sync()
    }

    /// Zero a range (as host writes of zeroes, in pieces).
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        const PIECE: u64 = 1 << 20;
        if offset.checked_add(len).is_none_or(|e| e > self.volume.size) {
            bail!(
                "zeroing {len} bytes at {offset} runs past the end of {}",
                self.volume.name
            );
        }
        let zeroes = vec![0u8; PIECE.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = PIECE.min(len - done);
            self.write(offset + done, &zeroes[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}
