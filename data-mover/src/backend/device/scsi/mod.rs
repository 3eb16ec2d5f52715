//! Real tape hardware on Linux (cargo feature `scsi`): a SCSI tape drive
//! through the `st` driver ([`drive::ScsiDrive`] over [`sys::Syscalls`]), a
//! SCSI medium changer through `mtx` ([`mtx::MtxChanger`]), and
//! [`ScsiMounter`], which mounts a tape by having the changer load it (by
//! volume tag) and opening the drive. `HARDWARE.md` says what was and was
//! not tried on real hardware.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{load_volume, ChangerError, DeviceError, MediaChanger, MountMode, Mounter, TapeDrive};

pub mod drive;
pub mod mtx;
pub mod sys;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use drive::ScsiDrive;

/// One [`ScsiMounter`] per device (real syscalls), sharing an `mtx`
/// changer at `changer` if given; drive *i* is its element *i*.
pub fn mounters(devices: &[PathBuf], changer: Option<&Path>) -> Vec<Box<dyn Mounter>> {
    let changer: Option<Arc<Mutex<dyn MediaChanger>>> = changer
        .map(|c| Arc::new(Mutex::new(mtx::MtxChanger::new(c, mtx::SystemRunner))) as Arc<Mutex<dyn MediaChanger>>);
    devices
        .iter()
        .zip(0u32..)
        .map(|(dev, drive)| {
            let slot = changer.as_ref().map(|c| ChangerSlot {
                changer: c.clone(),
                drive,
            });
            Box::new(ScsiMounter::new(sys::Libc, dev, slot)) as Box<dyn Mounter>
        })
        .collect()
}

/// The changer a drive shares with the other drives of its library, and
/// the drive's element number in it.
#[derive(Clone)]
pub struct ChangerSlot {
    pub changer: Arc<Mutex<dyn MediaChanger>>,
    pub drive: u32,
}

/// Mounts tapes in `/dev/nstN`: loads the tape by volume tag through the
/// changer (if there is one; a standalone drive holds whatever the operator
/// loaded, and the labels read check it), opens the drive, and at unmount
/// ejects it and puts it back in its slot.
pub struct ScsiMounter<S: sys::Syscalls + Clone + 'static> {
    sys: S,
    device: PathBuf,
    changer: Option<ChangerSlot>,
}

impl<S: sys::Syscalls + Clone + 'static> ScsiMounter<S> {
    pub fn new(sys: S, device: &Path, changer: Option<ChangerSlot>) -> Self {
        ScsiMounter {
            sys,
            device: device.to_path_buf(),
            changer,
        }
    }

    fn with_changer<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut dyn MediaChanger, u32) -> Result<T, ChangerError>,
    ) -> Result<Option<T>, DeviceError> {
        let Some(c) = &self.changer else {
            return Ok(None);
        };
        let mut ch = c.changer.lock().map_err(|_| ChangerError::Io {
            changer: "changer".into(),
            action: what.to_string(),
            source: std::io::Error::other("its lock is poisoned"),
        })?;
        Ok(Some(f(&mut *ch, c.drive)?))
    }
}

impl<S: sys::Syscalls + Clone + 'static> Mounter for ScsiMounter<S> {
    fn describe(&self) -> String {
        format!("SCSI tape drive {}", self.device.display())
    }

    fn mount(&mut self, label: &str, mode: MountMode) -> Result<Box<dyn TapeDrive>, DeviceError> {
        self.with_changer(&format!("loading {label}"), |ch, drive| load_volume(ch, label, drive))?;
        let drive = ScsiDrive::open(self.sys.clone(), &self.device, mode != MountMode::Read).map_err(|source| {
            DeviceError::Tape {
                action: format!("opening {} for tape {label}", self.device.display()),
                source,
            }
        })?;
        Ok(Box::new(drive))
    }

    fn unmount(&mut self, label: &str) -> Result<(), DeviceError> {
        if self.changer.is_none() {
            return Ok(());
        }
        // The drive must eject before the robot can take the cartridge.
        let eject = ScsiDrive::open(self.sys.clone(), &self.device, false).and_then(ScsiDrive::eject);
        eject.map_err(|source| DeviceError::Tape {
            action: format!("ejecting tape {label} from {}", self.device.display()),
            source,
        })?;
        self.with_changer(&format!("unloading {label}"), |ch, drive| {
            let inv = ch.inventory()?;
            let bay = inv.drives.iter().find(|d| d.number == drive);
            let slot = bay.and_then(|b| b.source_slot).or_else(|| inv.free_slot());
            match slot {
                Some(slot) => ch.unload(drive, slot),
                None => Err(ChangerError::Element {
                    changer: ch.name(),
                    element: format!("drive {drive}"),
                    expected: "an empty storage slot to unload it to".into(),
                    found: "every storage slot full".into(),
                }),
            }
        })?;
        Ok(())
    }
}
