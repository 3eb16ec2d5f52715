//! The back-end's tape hardware: the traits a drive and a changer are
//! driven through, in layers like Proxmox's `pbs-tape`.
//!
//! ```text
//! proto::tape::volume   TapeWriter / TapeReader (labels, segments, directory)
//! proto::tape::block    BlockDevice: records, tape marks, locate, capacity
//! ----------------------------------------------------------------- (here)
//! TapeDrive             BlockDevice + space files forward/back, status
//!   ├─ SimhTape<File>          a SIMH .tap image (what the cluster runs on)
//!   ├─ SimhTape<SharedImage>   an image in memory, kept across mounts (tests)
//!   └─ scsi::ScsiDrive         /dev/nstN through the Linux st driver (feature `scsi`)
//! MediaChanger          inventory, load slot → drive, unload, import, export
//!   ├─ library::DirectoryLibrary  a directory of LABEL.tap images
//!   └─ scsi::mtx::MtxChanger      a SCSI medium changer through `mtx -f /dev/sgN`
//! ImageLibrary          read an outside image's label, import, export
//!   ├─ library::DirectoryLibrary  LABEL.tap files, moved in and out by path
//!   └─ images::MemoryImages       images in memory (tests)
//! Mounter               "mount tape LABEL (which the station keeps at PATH)"
//!   ├─ ImageMounter            opens LIBRARY/LABEL.tap (--library), else PATH
//!   ├─ MemoryMounter           images in memory by label (tests)
//!   └─ scsi::ScsiMounter       changer load by volume tag, then open the drive
//! ```
//!
//! Why here and not in `proto`: `proto` is the on-tape *format*, shared by
//! the control station, `smapp tape inspect` and the fuzzers, and its
//! [`BlockDevice`] is all the format needs. Spacing, status bits, ioctls,
//! `mtx` and cartridges moving between slots are the back-end's business;
//! keeping them here keeps `libc` ioctls and external commands out of every
//! other crate. The back-end's [`super::drive::Drive`] holds a [`Mounter`]
//! and mounts whatever [`TapeDrive`] it returns behind its speed limit.

use std::path::Path;

use proto::tape::block::{BlockDevice, Position};
use proto::tape::{Location, TapeError};
use thiserror::Error;

pub mod images;
pub mod library;
pub mod memory;
pub mod simh;

#[cfg(feature = "scsi")]
pub mod scsi;

/// What a drive reports about itself and its medium.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveStatus {
    /// Tape file and record the drive is at (as it reports them).
    pub position: Position,
    /// A medium is loaded and the drive is ready.
    pub online: bool,
    /// The medium refuses writes (write-protect tab, or an image opened
    /// read-only).
    pub write_protected: bool,
    /// At the beginning of the tape.
    pub beginning_of_tape: bool,
    /// A tape mark was just crossed.
    pub at_filemark: bool,
    /// At the end of recorded data.
    pub end_of_data: bool,
    /// At or past the early-warning point: writes still succeed, and the
    /// writer should finish the tape (the zone is for the end labels).
    pub early_warning: bool,
    /// At the physical end of the medium: writes are refused.
    pub end_of_medium: bool,
    /// Block size (None: variable-length records, the only mode used).
    pub block_size: Option<u32>,
}

/// A tape drive: the record layer ([`BlockDevice`]: write record, write
/// filemark, read, rewind, locate, position, early warning) plus spacing over
/// tape files and a status.
pub trait TapeDrive: BlockDevice + Send {
    /// Move forward over `count` tape marks, to the start of tape file
    /// `position().file + count` (like `MTFSF`). Past the end of data:
    /// [`TapeError::NotFound`], and the drive is at the end of data.
    fn space_files_forward(&mut self, count: u32) -> Result<(), TapeError>;
    /// Move backward over `count` tape marks, stopping on the
    /// beginning-of-tape side of the last one, i.e. at the end of tape file
    /// `position().file - count` (like `MTBSF`). More marks than there are:
    /// [`TapeError::NotFound`], and the drive is at the beginning.
    fn space_files_back(&mut self, count: u32) -> Result<(), TapeError>;
    /// What the drive reports now.
    fn status(&mut self) -> Result<DriveStatus, TapeError>;
}

impl<D: TapeDrive + ?Sized> TapeDrive for Box<D> {
    fn space_files_forward(&mut self, count: u32) -> Result<(), TapeError> {
        (**self).space_files_forward(count)
    }
    fn space_files_back(&mut self, count: u32) -> Result<(), TapeError> {
        (**self).space_files_back(count)
    }
    fn status(&mut self) -> Result<DriveStatus, TapeError> {
        (**self).status()
    }
}

/// A drive bay of a changer (numbered as the changer numbers them: `mtx`
/// "Data Transfer Element" numbers, from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveBay {
    pub number: u32,
    /// A cartridge is in the drive.
    pub full: bool,
    /// Its volume tag (barcode / label), if it has one.
    pub volume: Option<String>,
    /// The storage slot it was loaded from, if the changer knows.
    pub source_slot: Option<u32>,
}

/// A storage slot or an import/export slot (mail slot) of a changer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub number: u32,
    /// An import/export slot: cartridges enter and leave the library here.
    pub import_export: bool,
    pub full: bool,
    pub volume: Option<String>,
}

/// Everything a changer holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub drives: Vec<DriveBay>,
    pub slots: Vec<Slot>,
}

impl Inventory {
    /// The storage (not import/export) slot holding volume `label`.
    pub fn slot_of(&self, label: &str) -> Option<u32> {
        self.slots
            .iter()
            .find(|s| !s.import_export && s.volume.as_deref().is_some_and(|t| tag_names(t, label)))
            .map(|s| s.number)
    }
    /// The first empty storage slot.
    pub fn free_slot(&self) -> Option<u32> {
        self.slots
            .iter()
            .find(|s| !s.import_export && !s.full)
            .map(|s| s.number)
    }
    /// Every volume tag held (slots and drives), for error messages.
    pub fn volumes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .slots
            .iter()
            .filter_map(|s| s.volume.clone())
            .chain(self.drives.iter().filter_map(|d| d.volume.clone()))
            .collect();
        v.sort();
        v
    }
}

/// A changer (robot) could not do what was asked.
#[derive(Debug, Error)]
pub enum ChangerError {
    #[error("changer {changer}: {action} failed: {source}")]
    Io {
        changer: String,
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("changer {changer}: `{command}` exited with {status}: {stderr}")]
    Command {
        changer: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("changer {changer}: line {line} of `mtx status`: expected {expected}, found {found:?}")]
    Parse {
        changer: String,
        line: usize,
        expected: String,
        found: String,
    },
    #[error("changer {changer}: {element}: expected {expected}, found {found}")]
    Element {
        changer: String,
        element: String,
        expected: String,
        found: String,
    },
    #[error("changer {changer}: no cartridge with volume tag {label:?}; it holds {held:?}")]
    NoSuchVolume {
        changer: String,
        label: String,
        held: Vec<String>,
    },
}

/// A medium changer: a robot moving cartridges between storage slots,
/// import/export slots and drives.
pub trait MediaChanger: Send {
    /// The changer's name in logs and errors (device or directory).
    fn name(&self) -> String;
    /// What every drive and slot holds.
    fn inventory(&mut self) -> Result<Inventory, ChangerError>;
    /// Move the cartridge in storage slot `slot` into drive `drive`.
    fn load(&mut self, slot: u32, drive: u32) -> Result<(), ChangerError>;
    /// Move the cartridge in drive `drive` to the empty storage slot `slot`.
    fn unload(&mut self, drive: u32, slot: u32) -> Result<(), ChangerError>;
    /// Move a cartridge from import/export slot `from` to storage slot `to`.
    fn import(&mut self, from: u32, to: u32) -> Result<(), ChangerError>;
    /// Move the cartridge in storage slot `from` to import/export slot `to`.
    fn export(&mut self, from: u32, to: u32) -> Result<(), ChangerError>;
}

/// Whether volume tag (barcode) `tag` names tape `label`: the same, or an
/// LTO barcode: the six-character volume serial and a two-character media
/// suffix (`DM0001L8` names `DM0001`).
pub fn tag_names(tag: &str, label: &str) -> bool {
    let tag = tag.trim();
    tag == label
        || (label.len() == 6
            && tag.len() == 8
            && tag.starts_with(label)
            && tag.as_bytes()[6].is_ascii_uppercase()
            && tag.as_bytes()[7].is_ascii_alphanumeric())
}

/// Make drive `drive` hold volume `label`: nothing if it already does;
/// otherwise unload what it holds (to the slot it came from, else the first
/// free one) and load `label` from its slot.
pub fn load_volume(ch: &mut dyn MediaChanger, label: &str, drive: u32) -> Result<(), ChangerError> {
    let inv = ch.inventory()?;
    let bay = inv
        .drives
        .iter()
        .find(|d| d.number == drive)
        .ok_or_else(|| ChangerError::Element {
            changer: ch.name(),
            element: format!("drive {drive}"),
            expected: "a drive of this changer".into(),
            found: format!("drives {:?}", inv.drives.iter().map(|d| d.number).collect::<Vec<_>>()),
        })?;
    if bay.full && bay.volume.as_deref().is_some_and(|t| tag_names(t, label)) {
        return Ok(());
    }
    let Some(slot) = inv.slot_of(label) else {
        return Err(ChangerError::NoSuchVolume {
            changer: ch.name(),
            label: label.into(),
            held: inv.volumes(),
        });
    };
    if bay.full {
        let back = bay
            .source_slot
            .or_else(|| inv.free_slot())
            .ok_or_else(|| ChangerError::Element {
                changer: ch.name(),
                element: format!("drive {drive}"),
                expected: "an empty storage slot to unload it to".into(),
                found: "every storage slot full".into(),
            })?;
        tracing::info!(changer = %ch.name(), drive, slot = back, volume = ?bay.volume, "unloading");
        ch.unload(drive, back)?;
    }
    tracing::info!(changer = %ch.name(), drive, slot, volume = label, "loading");
    ch.load(slot, drive)
}

/// How a tape is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMode {
    /// A scratch tape to be labelled from its beginning.
    Create,
    /// A tape of this system, to append to.
    Append,
    /// A tape to read only.
    Read,
}

/// A tape could not be mounted.
#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("{action}: {source}")]
    Tape {
        action: String,
        #[source]
        source: TapeError,
    },
    #[error(transparent)]
    Changer(#[from] ChangerError),
    #[error("{device}: tape {label:?} is already mounted")]
    Busy { device: String, label: String },
    #[error("drive configuration: expected {expected}, found {found}")]
    Config { expected: String, found: String },
}

/// What mounting a tape means for a back-end drive's hardware.
pub trait Mounter: Send {
    /// The drive's device in logs (an image directory, `/dev/nst0`).
    fn describe(&self) -> String;
    /// Bring tape `label` into the drive and open it for `mode`. The
    /// mounter alone knows where the tape is (its library's slot, its
    /// image file): the station names tapes, never paths.
    fn mount(&mut self, label: &str, mode: MountMode) -> Result<Box<dyn TapeDrive>, DeviceError>;
    /// The drive is done with tape `label` (its device was dropped).
    fn unmount(&mut self, label: &str) -> Result<(), DeviceError> {
        let _ = label;
        Ok(())
    }
}

/// The mounters of a back-end's `drives` drives: SIMH images (no
/// `devices`) of the `library` directory by label (required then); or one
/// SCSI tape device per drive, in
/// order, with an optional `mtx` changer they share (feature `scsi`; drive
/// *i* is the changer's Data Transfer Element *i*).
pub fn drive_mounters(
    drives: usize,
    devices: &[std::path::PathBuf],
    changer: Option<&Path>,
    capacity: Option<proto::tape::block::Capacity>,
    library: Option<&Path>,
) -> Result<Vec<Box<dyn Mounter>>, DeviceError> {
    if devices.is_empty() {
        if let Some(c) = changer {
            return Err(DeviceError::Config {
                expected: "--changer together with one --drive-device per --drive".into(),
                found: format!("--changer {} and no --drive-device", c.display()),
            });
        }
        if drives == 0 {
            return Ok(Vec::new()); // a front-end
        }
        let Some(dir) = library else {
            return Err(DeviceError::Config {
                expected: "--library DIR: where the back-end keeps its tape images".into(),
                found: format!("{drives} image drives and no --library"),
            });
        };
        let images = (0..drives).map(|_| Box::new(simh::ImageMounter::in_library(dir, capacity)) as Box<dyn Mounter>);
        return Ok(images.collect());
    }
    if devices.len() != drives {
        return Err(DeviceError::Config {
            expected: format!("one --drive-device per --drive ({drives})"),
            found: format!("{} --drive-device", devices.len()),
        });
    }
    #[cfg(feature = "scsi")]
    {
        Ok(scsi::mounters(devices, changer))
    }
    #[cfg(not(feature = "scsi"))]
    {
        Err(DeviceError::Config {
            expected: "a data-mover built with `--features scsi` for --drive-device and --changer".into(),
            found: "one built without it".into(),
        })
    }
}

/// A [`TapeError::Io`] at `pos`.
pub(crate) fn io_error(pos: Position, action: impl Into<String>, source: std::io::Error) -> TapeError {
    TapeError::Io {
        at: Box::new(Location::record(pos.file, pos.record)),
        action: action.into(),
        source,
    }
}

/// A [`TapeError::NotFound`] at `pos`.
pub(crate) fn not_found(pos: Position, expected: impl Into<String>, found: impl Into<String>) -> TapeError {
    TapeError::NotFound {
        at: Box::new(Location::record(pos.file, pos.record)),
        expected: expected.into(),
        found: found.into(),
    }
}

/// A [`TapeError::Corrupt`] at `pos`.
pub(crate) fn corrupt(
    pos: Position,
    what: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> TapeError {
    TapeError::Corrupt {
        at: Box::new(Location::record(pos.file, pos.record)),
        what: what.into(),
        expected: expected.into(),
        found: found.into(),
    }
}

#[cfg(test)]
mod drive_config_tests {
    use super::*;

    fn config_error(r: Result<Vec<Box<dyn Mounter>>, DeviceError>) -> String {
        match r {
            Err(e @ DeviceError::Config { .. }) => e.to_string(),
            Err(e) => panic!("expected a configuration error, got {e}"),
            Ok(m) => panic!("expected a configuration error, got {} mounters", m.len()),
        }
    }

    #[test]
    fn image_drives_live_in_the_back_end_s_library_and_nowhere_else() {
        let dir = tempfile::tempdir().unwrap();
        // A front-end has no drives and needs no library.
        assert!(drive_mounters(0, &[], None, None, None).unwrap().is_empty());
        // Image drives without a library are refused: nobody else may say
        // where the back-end writes.
        let e = config_error(drive_mounters(2, &[], None, None, None));
        assert!(e.contains("--library DIR") && e.contains("2 image drives"), "{e}");
        let mut m = drive_mounters(2, &[], None, None, Some(dir.path())).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[0].describe().contains(&dir.path().display().to_string()));
        m[1].mount("DM0001", MountMode::Create).unwrap();
        assert!(dir.path().join("DM0001.tap").exists());
        let e = config_error(drive_mounters(
            1,
            &[],
            Some(Path::new("/dev/sg9")),
            None,
            Some(dir.path()),
        ));
        assert!(e.contains("--changer"), "{e}");
    }
}
