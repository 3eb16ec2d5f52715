//! The directory library: a [`MediaChanger`] over a directory of SIMH
//! images (`LABEL.tap`, the storage slots) and a mailbox directory (the
//! import/export slots), as the cluster's virtual library keeps tapes, and
//! [`LibraryMounter`] to mount a tape in one of its drives by label.
//!
//! A directory has no physical slots: storage slot *n* (from 1) is the
//! *n*-th image in label order, and import/export slots are numbered after
//! the storage slots, the mailbox's images in label order. A tape in a drive
//! keeps its place (its slot shows empty); unloading puts it back there,
//! whichever empty storage slot is named. Loading moves no bytes: the drive
//! opens the image where it lies.

use proto::num::saturating_u32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use proto::tape::block::{Capacity, SimhTape};

use proto::wire::ImageContents;

use super::images::{describe_device, volume_label, ImageError, ImageLibrary};
use super::TapeDrive;
use super::{load_volume, ChangerError, DeviceError, DriveBay, Inventory, MediaChanger, MountMode, Mounter, Slot};
use proto::tape::volume::TapeDescription;

/// A library of SIMH images in a directory (see the module docs).
#[derive(Debug)]
pub struct DirectoryLibrary {
    dir: PathBuf,
    mailbox: PathBuf,
    /// Storage slots (at least the number of images held).
    slots: u32,
    /// Import/export slots.
    mailbox_slots: u32,
    /// What each drive holds: (label, slot it came from).
    drives: Vec<Option<(String, u32)>>,
}

impl DirectoryLibrary {
    /// A library of `slots` storage slots in `dir`, `mailbox_slots`
    /// import/export slots in `mailbox`, and `drives` drives (all empty).
    pub fn new(
        dir: impl Into<PathBuf>,
        mailbox: impl Into<PathBuf>,
        slots: u32,
        mailbox_slots: u32,
        drives: u32,
    ) -> Self {
        DirectoryLibrary {
            dir: dir.into(),
            mailbox: mailbox.into(),
            slots,
            mailbox_slots,
            drives: vec![None; drives as usize],
        }
    }

    /// The image of the tape in drive `drive`, if it holds one.
    pub fn image_in_drive(&self, drive: u32) -> Option<PathBuf> {
        let (label, _) = self.drives.get(drive as usize)?.as_ref()?;
        Some(self.dir.join(format!("{label}.tap")))
    }

    /// Put a blank image for tape `label` into a free storage slot (a new
    /// scratch cartridge). Returns its slot.
    pub fn add_blank(&mut self, label: &str) -> Result<u32, ChangerError> {
        let held = self.labels_in(&self.dir)?.len();
        if held >= self.slots as usize {
            return Err(self.element(
                "storage slots",
                "a free one",
                format!("all {} holding images", self.slots),
            ));
        }
        let path = self.dir.join(format!("{label}.tap"));
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::OpenOptions::new().write(true).create_new(true).open(&path))
            .map_err(|e| self.io(format!("creating blank image {}", path.display()), e))?;
        self.inventory()?
            .slot_of(label)
            .ok_or_else(|| self.element(label, "a slot holding the new image", "none"))
    }

    fn io(&self, action: String, source: std::io::Error) -> ChangerError {
        ChangerError::Io {
            changer: self.name(),
            action,
            source,
        }
    }

    fn element(
        &self,
        element: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> ChangerError {
        ChangerError::Element {
            changer: self.name(),
            element: element.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Labels of the images in `dir`, sorted.
    fn labels_in(&self, dir: &Path) -> Result<Vec<String>, ChangerError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(format!("listing {}", dir.display()), e)),
        };
        let mut labels = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io(format!("listing {}", dir.display()), e))?;
            let name = entry.file_name();
            if let Some(label) = name.to_str().and_then(|n| n.strip_suffix(".tap")) {
                labels.push(label.to_string());
            }
        }
        labels.sort();
        Ok(labels)
    }

    fn slot<'a>(&self, inv: &'a Inventory, number: u32) -> Result<&'a Slot, ChangerError> {
        inv.slots.iter().find(|s| s.number == number).ok_or_else(|| {
            self.element(
                format!("slot {number}"),
                format!("a slot numbered 1 to {}", inv.slots.len()),
                "no such slot",
            )
        })
    }

    fn move_image(&self, label: &str, from: &Path, to: &Path) -> Result<(), ChangerError> {
        let (src, dest) = (from.join(format!("{label}.tap")), to.join(format!("{label}.tap")));
        if dest.exists() {
            return Err(self.element(dest.display().to_string(), "no image there", "an image"));
        }
        std::fs::create_dir_all(to).map_err(|e| self.io(format!("creating {}", to.display()), e))?;
        tracing::info!(changer = %self.name(), %label, from = %src.display(), to = %dest.display(), "moving image");
        std::fs::rename(&src, &dest).map_err(|e| self.io(format!("moving {} to {}", src.display(), dest.display()), e))
    }
}

impl MediaChanger for DirectoryLibrary {
    fn name(&self) -> String {
        format!("directory library {}", self.dir.display())
    }

    fn inventory(&mut self) -> Result<Inventory, ChangerError> {
        let stored = self.labels_in(&self.dir)?;
        let mailed = self.labels_in(&self.mailbox)?;
        let loaded = |label: &str| self.drives.iter().flatten().any(|(l, _)| l == label);
        let storage = self.slots.max(saturating_u32(stored.len()));
        let mut slots: Vec<Slot> = (1..=storage)
            .map(|n| {
                let label = stored.get(n as usize - 1).filter(|l| !loaded(l));
                Slot {
                    number: n,
                    import_export: false,
                    full: label.is_some(),
                    volume: label.cloned(),
                }
            })
            .collect();
        let ie = self.mailbox_slots.max(saturating_u32(mailed.len()));
        slots.extend((1..=ie).map(|n| Slot {
            number: storage + n,
            import_export: true,
            full: (n as usize) <= mailed.len(),
            volume: mailed.get(n as usize - 1).cloned(),
        }));
        let drives = self
            .drives
            .iter()
            .enumerate()
            .map(|(i, d)| DriveBay {
                number: saturating_u32(i),
                full: d.is_some(),
                volume: d.as_ref().map(|(l, _)| l.clone()),
                source_slot: d.as_ref().map(|(_, s)| *s),
            })
            .collect();
        Ok(Inventory { drives, slots })
    }

    fn load(&mut self, slot: u32, drive: u32) -> Result<(), ChangerError> {
        let inv = self.inventory()?;
        let s = self.slot(&inv, slot)?;
        let (false, Some(label)) = (s.import_export, s.volume.clone()) else {
            return Err(self.element(
                format!("slot {slot}"),
                "a full storage slot",
                "an empty or import/export slot",
            ));
        };
        match self.drives.get(drive as usize) {
            Some(None) => {}
            Some(Some((held, _))) => {
                return Err(self.element(format!("drive {drive}"), "an empty drive", format!("tape {held}")))
            }
            None => {
                return Err(self.element(
                    format!("drive {drive}"),
                    format!("drive 0 to {}", self.drives.len().saturating_sub(1)),
                    "no such drive",
                ))
            }
        }
        self.drives[drive as usize] = Some((label, slot));
        Ok(())
    }

    fn unload(&mut self, drive: u32, slot: u32) -> Result<(), ChangerError> {
        let inv = self.inventory()?;
        let s = self.slot(&inv, slot)?;
        if s.import_export || s.full {
            return Err(self.element(
                format!("slot {slot}"),
                "an empty storage slot",
                "a full or import/export slot",
            ));
        }
        match self.drives.get_mut(drive as usize) {
            Some(d @ Some(_)) => {
                *d = None;
                Ok(())
            }
            _ => Err(self.element(
                format!("drive {drive}"),
                "a drive holding a tape",
                "an empty or missing drive",
            )),
        }
    }

    fn import(&mut self, from: u32, to: u32) -> Result<(), ChangerError> {
        let inv = self.inventory()?;
        let (src, dest) = (self.slot(&inv, from)?, self.slot(&inv, to)?);
        let (true, Some(label)) = (src.import_export, src.volume.clone()) else {
            return Err(self.element(format!("slot {from}"), "a full import/export slot", "another"));
        };
        if dest.import_export || dest.full {
            return Err(self.element(
                format!("slot {to}"),
                "an empty storage slot",
                "a full or import/export slot",
            ));
        }
        self.move_image(&label, &self.mailbox.clone(), &self.dir.clone())
    }

    fn export(&mut self, from: u32, to: u32) -> Result<(), ChangerError> {
        let inv = self.inventory()?;
        let (src, dest) = (self.slot(&inv, from)?, self.slot(&inv, to)?);
        let (false, Some(label)) = (src.import_export, src.volume.clone()) else {
            return Err(self.element(
                format!("slot {from}"),
                "a full storage slot",
                "an empty or import/export slot",
            ));
        };
        if !dest.import_export || dest.full {
            return Err(self.element(
                format!("slot {to}"),
                "an empty import/export slot",
                "a full or storage slot",
            ));
        }
        self.move_image(&label, &self.dir.clone(), &self.mailbox.clone())
    }
}

/// The directory's images as an [`ImageLibrary`]: tape `label` is
/// `DIR/LABEL.tap`; images move in and out with a hard link and a removal
/// (a copy, synced, across file systems), never over an existing file.
impl ImageLibrary for DirectoryLibrary {
    fn describe(&self) -> String {
        self.name()
    }

    fn image_of(&self, label: &str) -> PathBuf {
        self.dir.join(format!("{label}.tap"))
    }

    fn read_label(&self, outside: &Path) -> Result<ImageContents, ImageError> {
        self.check_outside(outside)?;
        let meta = match std::fs::metadata(outside) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound {
                    path: outside.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(ImageError::Io {
                    action: format!("reading {}", outside.display()),
                    source,
                })
            }
        };
        if !meta.is_file() {
            return Err(ImageError::NotAFile {
                path: outside.to_path_buf(),
                found: format!("{:?}", meta.file_type()),
            });
        }
        if meta.len() == 0 {
            return Ok(ImageContents::Blank);
        }
        let corrupt = |source| ImageError::Corrupt {
            path: outside.to_path_buf(),
            source,
        };
        let dev = SimhTape::open(outside).map_err(corrupt)?;
        volume_label(dev).map(ImageContents::Labelled).map_err(corrupt)
    }

    fn describe_image(&self, outside: &Path) -> Result<TapeDescription, ImageError> {
        self.check_outside(outside)?;
        let corrupt = |source| ImageError::Corrupt {
            path: outside.to_path_buf(),
            source,
        };
        let dev = SimhTape::open(outside).map_err(|e| match std::fs::metadata(outside) {
            Err(io) if io.kind() == std::io::ErrorKind::NotFound => ImageError::NotFound {
                path: outside.to_path_buf(),
            },
            _ => corrupt(e),
        })?;
        describe_device(dev).map_err(corrupt)
    }

    fn import_image(&mut self, outside: &Path, label: &str) -> Result<PathBuf, ImageError> {
        self.check_outside(outside)?;
        std::fs::create_dir_all(&self.dir).map_err(|source| ImageError::Io {
            action: format!("creating the library directory {}", self.dir.display()),
            source,
        })?;
        let dest = self.image_of(label);
        move_new(outside, &dest)?;
        tracing::info!(library = %self.name(), %label, from = %outside.display(), "image imported");
        Ok(dest)
    }

    fn export_image(&mut self, label: &str, outside: &Path) -> Result<bool, ImageError> {
        self.check_outside(outside)?;
        if let Some(parent) = outside.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ImageError::Io {
                action: format!("creating {}", parent.display()),
                source,
            })?;
        }
        self.check_outside(outside)?;
        let src = self.image_of(label);
        if src.exists() {
            move_new(&src, outside)?;
            tracing::info!(library = %self.name(), %label, to = %outside.display(), "image exported");
            return Ok(true);
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(outside)
            .map_err(|e| new_file_error(outside, e))?;
        tracing::info!(library = %self.name(), %label, to = %outside.display(), "tape without an image exported blank");
        Ok(false)
    }
}

impl DirectoryLibrary {
    /// Refuse an outside path whose directory is the library's (or under
    /// it), links resolved.
    fn check_outside(&self, outside: &Path) -> Result<(), ImageError> {
        let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let resolved = outside.parent().and_then(|d| std::fs::canonicalize(d).ok());
        if outside.starts_with(&self.dir) || resolved.is_some_and(|p| p.starts_with(&dir)) {
            return Err(ImageError::InsideLibrary {
                path: outside.to_path_buf(),
                library: self.dir.clone(),
            });
        }
        Ok(())
    }
}

fn new_file_error(path: &Path, e: std::io::Error) -> ImageError {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        ImageError::Exists {
            path: path.to_path_buf(),
        }
    } else {
        ImageError::Io {
            action: format!("creating {}", path.display()),
            source: e,
        }
    }
}

/// Move a file to `to`, which must not exist: a hard link then removal of
/// `from`; across file systems, a copy (synced) then removal.
fn move_new(from: &Path, to: &Path) -> Result<(), ImageError> {
    let io = |action: String| move |source| ImageError::Io { action, source };
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ImageError::Exists { path: to.to_path_buf() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::NotFound {
                path: from.to_path_buf(),
            })
        }
        Err(_) => {
            let mut src = std::fs::File::open(from).map_err(io(format!("opening {}", from.display())))?;
            let mut dest = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(to)
                .map_err(|e| new_file_error(to, e))?;
            let copied = std::io::copy(&mut src, &mut dest).and_then(|_| dest.sync_all());
            if let Err(e) = copied {
                let _ = std::fs::remove_file(to);
                return Err(io(format!("copying {} to {}", from.display(), to.display()))(e));
            }
        }
    }
    std::fs::remove_file(from).map_err(io(format!("removing {}", from.display())))
}

/// Mounts tapes of a [`DirectoryLibrary`] in one of its drives: loads the
/// tape by label (a new scratch tape gets a blank image first) and opens
/// its image, with the drive's tape capacity.
pub struct LibraryMounter {
    library: Arc<Mutex<DirectoryLibrary>>,
    drive: u32,
    capacity: Option<Capacity>,
}

impl LibraryMounter {
    pub fn new(library: Arc<Mutex<DirectoryLibrary>>, drive: u32, capacity: Option<Capacity>) -> Self {
        LibraryMounter {
            library,
            drive,
            capacity,
        }
    }
}

impl Mounter for LibraryMounter {
    fn describe(&self) -> String {
        format!("drive {} of a directory library", self.drive)
    }

    fn mount(&mut self, label: &str, mode: MountMode) -> Result<Box<dyn TapeDrive>, DeviceError> {
        let mut lib = self.library.lock().map_err(|_| ChangerError::Io {
            changer: "directory library".into(),
            action: format!("locking it to mount {label}"),
            source: std::io::Error::other("lock poisoned"),
        })?;
        if mode == MountMode::Create && !lib.inventory()?.volumes().iter().any(|v| v == label) {
            lib.add_blank(label)?;
        }
        load_volume(&mut *lib, label, self.drive)?;
        let path = lib.image_in_drive(self.drive).ok_or_else(|| ChangerError::Element {
            changer: lib.name(),
            element: format!("drive {}", self.drive),
            expected: format!("tape {label} loaded"),
            found: "an empty drive".into(),
        })?;
        let opened = match mode {
            MountMode::Create => SimhTape::create(&path),
            MountMode::Append => SimhTape::open_rw(&path),
            MountMode::Read => SimhTape::open(&path),
        };
        let mut tape = opened.map_err(|source| DeviceError::Tape {
            action: format!(
                "opening image {} of tape {label} in drive {}",
                path.display(),
                self.drive
            ),
            source,
        })?;
        tape.set_capacity(self.capacity);
        Ok(Box::new(tape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::tape::block::BlockDevice;

    fn library(n: &[&str], mail: &[&str]) -> (tempfile::TempDir, DirectoryLibrary) {
        let dir = tempfile::tempdir().unwrap();
        let (lib, mbox) = (dir.path().join("lib"), dir.path().join("mail"));
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(&mbox).unwrap();
        for l in n {
            std::fs::write(lib.join(format!("{l}.tap")), b"").unwrap();
        }
        for l in mail {
            std::fs::write(mbox.join(format!("{l}.tap")), b"").unwrap();
        }
        let l = DirectoryLibrary::new(lib, mbox, 4, 2, 2);
        (dir, l)
    }

    #[test]
    fn inventory_numbers_slots_in_label_order_then_the_mailbox() {
        let (_d, mut lib) = library(&["DM0002", "DM0001"], &["X1"]);
        let inv = lib.inventory().unwrap();
        assert_eq!(inv.slots.len(), 6);
        assert_eq!(inv.slot_of("DM0001"), Some(1));
        assert_eq!(inv.slot_of("DM0002"), Some(2));
        assert_eq!(inv.free_slot(), Some(3));
        assert_eq!((inv.slots[4].number, inv.slots[4].import_export), (5, true));
        assert_eq!(inv.slots[4].volume.as_deref(), Some("X1"));
        assert_eq!(inv.slot_of("X1"), None, "a mailbox tape is not in storage");
        assert_eq!(inv.volumes(), vec!["DM0001", "DM0002", "X1"]);
    }

    #[test]
    fn load_unload_and_load_volume_move_tapes_between_slots_and_drives() {
        let (_d, mut lib) = library(&["A", "B"], &[]);
        lib.load(1, 0).unwrap();
        let inv = lib.inventory().unwrap();
        assert!(!inv.slots[0].full);
        assert_eq!(inv.drives[0].volume.as_deref(), Some("A"));
        assert_eq!(inv.drives[0].source_slot, Some(1));
        let e = lib.load(2, 0).unwrap_err().to_string();
        assert!(e.contains("drive 0: expected an empty drive, found tape A"), "{e}");
        assert!(lib.load(1, 1).is_err(), "slot 1 is empty now");
        assert!(lib.unload(0, 2).is_err(), "slot 2 is full");
        // B replaces A: A goes back to slot 1.
        load_volume(&mut lib, "B", 0).unwrap();
        let inv = lib.inventory().unwrap();
        assert_eq!(inv.drives[0].volume.as_deref(), Some("B"));
        assert_eq!(inv.slot_of("A"), Some(1));
        load_volume(&mut lib, "B", 0).unwrap();
        let e = load_volume(&mut lib, "ZZ", 1).unwrap_err().to_string();
        assert!(
            e.contains("no cartridge with volume tag \"ZZ\"") && e.contains("\"A\", \"B\""),
            "{e}"
        );
        assert!(lib.image_in_drive(0).unwrap().ends_with("B.tap"));
        assert!(lib.load(1, 7).is_err());
    }

    #[test]
    fn import_and_export_move_images_through_the_mailbox() {
        let (d, mut lib) = library(&["A"], &["NEW"]);
        lib.import(6, 2).unwrap_err(); // slot 6 is an empty mailbox slot
        lib.import(5, 2).unwrap();
        assert!(d.path().join("lib/NEW.tap").exists() && !d.path().join("mail/NEW.tap").exists());
        lib.load(1, 0).unwrap();
        assert!(lib.export(1, 5).is_err(), "A is in a drive");
        lib.unload(0, 1).unwrap();
        lib.export(1, 5).unwrap();
        assert!(d.path().join("mail/A.tap").exists());
        let inv = lib.inventory().unwrap();
        assert_eq!(inv.slot_of("NEW"), Some(1));
        assert!(lib.export(1, 5).is_err(), "mailbox slot 5 is full");
    }

    #[test]
    fn the_library_mounter_loads_by_label_and_opens_the_image() {
        let (d, lib) = library(&["A"], &[]);
        let lib = Arc::new(Mutex::new(lib));
        let mut m = LibraryMounter::new(lib.clone(), 1, None);
        let mut t = m.mount("NEW1", MountMode::Create).unwrap();
        t.write_record(b"VOL1").unwrap();
        drop(t);
        assert_eq!(std::fs::metadata(d.path().join("lib/NEW1.tap")).unwrap().len(), 12);
        let mut t = m.mount("A", MountMode::Read).unwrap();
        assert!(t.write_record(b"x").is_err());
        let inv = lib.lock().unwrap().inventory().unwrap();
        assert_eq!(inv.drives[1].volume.as_deref(), Some("A"));
        assert_eq!(inv.slot_of("NEW1"), Some(2));
    }
}
