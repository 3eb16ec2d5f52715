//! The in-memory drive for tests: SIMH images held in memory by label
//! ([`SharedImage`]), so a tape written in one mount can be appended to or
//! read in the next, and [`MemoryMounter`] to mount them.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use proto::tape::block::{Capacity, SimhTape, TapeImage};
use proto::tape::{Location, TapeError};

use super::{DeviceError, MountMode, Mounter, TapeDrive};

/// A SIMH image in memory, shared: every handle sees the same bytes, each
/// with its own position.
#[derive(Debug, Clone, Default)]
pub struct SharedImage {
    bytes: Arc<Mutex<Vec<u8>>>,
    pos: u64,
}

impl SharedImage {
    pub fn new() -> SharedImage {
        SharedImage::default()
    }
    /// A copy of the image's bytes.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().map(|b| b.clone()).unwrap_or_default()
    }
    fn lock(&self) -> io::Result<MutexGuard<'_, Vec<u8>>> {
        self.bytes
            .lock()
            .map_err(|_| io::Error::other("the in-memory tape image's lock is poisoned"))
    }
}

impl Read for SharedImage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = self.lock()?;
        let start = usize::try_from(self.pos).unwrap_or(usize::MAX).min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        drop(bytes);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SharedImage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let start = usize::try_from(self.pos).map_err(|_| io::Error::other("position beyond memory"))?;
        let mut bytes = self.lock()?;
        if bytes.len() < start {
            bytes.resize(start, 0);
        }
        let overlap = buf.len().min(bytes.len() - start);
        bytes[start..start + overlap].copy_from_slice(&buf[..overlap]);
        bytes.extend_from_slice(&buf[overlap..]);
        drop(bytes);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SharedImage {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.lock()?.len() as u64;
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before byte 0"))?;
        Ok(self.pos)
    }
}

impl TapeImage for SharedImage {
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("length beyond memory"))?;
        self.lock()?.truncate(len);
        Ok(())
    }
    fn sync_image(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The in-memory drive: a SIMH tape over a shared in-memory image.
pub type MemDrive = SimhTape<SharedImage>;

/// Mounts in-memory tapes by label, each
/// with the same capacity; remembers which one is mounted.
#[derive(Debug, Default)]
pub struct MemoryMounter {
    capacity: Option<Capacity>,
    images: HashMap<String, SharedImage>,
    mounted: Option<String>,
    /// Labels in the order they were mounted.
    pub history: Vec<(String, MountMode)>,
}

impl MemoryMounter {
    pub fn new(capacity: Option<Capacity>) -> MemoryMounter {
        MemoryMounter {
            capacity,
            ..MemoryMounter::default()
        }
    }
    /// The image of tape `label`, if it was ever created.
    pub fn image(&self, label: &str) -> Option<SharedImage> {
        self.images.get(label).cloned()
    }
}

impl Mounter for MemoryMounter {
    fn describe(&self) -> String {
        "in-memory tapes".to_string()
    }

    fn mount(&mut self, label: &str, mode: MountMode) -> Result<Box<dyn TapeDrive>, DeviceError> {
        if let Some(m) = &self.mounted {
            return Err(DeviceError::Busy {
                device: self.describe(),
                label: m.clone(),
            });
        }
        let image = match mode {
            MountMode::Create => {
                let img = SharedImage::new();
                self.images.insert(label.to_string(), img.clone());
                img
            }
            MountMode::Append | MountMode::Read => self.image(label).ok_or_else(|| DeviceError::Tape {
                action: format!("mounting in-memory tape {label}"),
                source: TapeError::NotFound {
                    at: Box::new(Location {
                        label: Some(label.to_string()),
                        ..Location::default()
                    }),
                    expected: format!("an in-memory tape labelled {label}"),
                    found: format!("tapes {:?}", self.images.keys().collect::<Vec<_>>()),
                },
            })?,
        };
        let action = || format!("opening in-memory tape {label}");
        let mut tape = SimhTape::new(image).map_err(|source| DeviceError::Tape {
            action: action(),
            source,
        })?;
        tape.set_capacity(self.capacity);
        self.mounted = Some(label.to_string());
        self.history.push((label.to_string(), mode));
        Ok(Box::new(tape))
    }

    fn unmount(&mut self, label: &str) -> Result<(), DeviceError> {
        if self.mounted.as_deref() == Some(label) {
            self.mounted = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::tape::block::{Block, BlockDevice};

    #[test]
    fn a_tape_written_in_one_mount_is_read_in_the_next() {
        let mut m = MemoryMounter::new(None);
        let mut d = m.mount("T1", MountMode::Create).unwrap();
        assert!(matches!(
            m.mount("T2", MountMode::Create),
            Err(DeviceError::Busy { .. })
        ));
        d.write_record(b"hello").unwrap();
        d.write_filemark().unwrap();
        drop(d);
        m.unmount("T1").unwrap();
        let mut d = m.mount("T1", MountMode::Read).unwrap();
        let mut buf = Vec::new();
        assert_eq!(d.read_block(&mut buf, 100).unwrap(), Block::Record(5));
        assert_eq!(buf, b"hello");
        assert_eq!(m.image("T1").unwrap().contents().len(), 5 + 1 + 8 + 4);
        m.unmount("T1").unwrap();
        let e = m.mount("T9", MountMode::Append).err().unwrap().to_string();
        assert!(e.contains("expected an in-memory tape labelled T9"), "{e}");
    }

    #[test]
    fn the_shared_image_cuts_and_overwrites_like_a_file() {
        let mut img = SharedImage::new();
        img.write_all(b"abcdef").unwrap();
        img.seek(SeekFrom::Start(2)).unwrap();
        img.write_all(b"XY").unwrap();
        img.truncate_to(5).unwrap();
        assert_eq!(img.contents(), b"abXYe");
        let mut other = img.clone();
        other.seek(SeekFrom::Start(3)).unwrap();
        let mut s = String::new();
        other.read_to_string(&mut s).unwrap();
        assert_eq!(s, "Ye");
        assert!(img.seek(SeekFrom::Current(-100)).is_err());
    }
}
