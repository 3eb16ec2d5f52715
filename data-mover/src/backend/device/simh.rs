//! The SIMH image drive: a [`SimhTape`] is a [`TapeDrive`], and the
//! [`ImageMounter`] mounts a tape by opening its image: `LABEL.tap` in the
//! back-end's library directory (the station names tapes, never files).

use std::path::{Path, PathBuf};

use proto::tape::block::{Block, BlockDevice, Capacity, Position, SimhTape, TapeImage};
use proto::tape::node::check_label;
use proto::tape::TapeError;

use super::{corrupt, not_found, DeviceError, DriveStatus, MountMode, Mounter, TapeDrive};

impl<F: TapeImage + Send> TapeDrive for SimhTape<F> {
    fn space_files_forward(&mut self, count: u32) -> Result<(), TapeError> {
        if count == 0 {
            return Ok(());
        }
        let pos = self.position();
        let target = pos
            .file
            .checked_add(count)
            .ok_or_else(|| not_found(pos, format!("{count} more tape marks"), "tape file numbers end at 2^32"))?;
        self.locate_file(target)
    }

    fn space_files_back(&mut self, count: u32) -> Result<(), TapeError> {
        if count == 0 {
            return Ok(());
        }
        let pos = self.position();
        let Some(target) = pos.file.checked_sub(count) else {
            self.rewind()?;
            return Err(not_found(
                pos,
                format!("{count} tape marks before tape file {}", pos.file),
                format!("{} (then the beginning of the tape)", pos.file),
            ));
        };
        // The end of tape file `target`: its start, then over its records.
        self.locate_file(target)?;
        let mut records = 0u64;
        loop {
            match self.skip_block()? {
                Block::Record(_) => records += 1,
                Block::FileMark => break,
                Block::EndOfData => {
                    return Err(corrupt(
                        self.position(),
                        "tape",
                        format!("a tape mark ending tape file {target} (one was crossed going forward)"),
                        "the end of data",
                    ))
                }
            }
        }
        self.locate_file(target)?;
        for _ in 0..records {
            self.skip_block()?;
        }
        Ok(())
    }

    fn status(&mut self) -> Result<DriveStatus, TapeError> {
        let position = self.position();
        Ok(DriveStatus {
            position,
            online: true,
            write_protected: self.is_read_only(),
            beginning_of_tape: position == Position::default(),
            at_filemark: position.record == 0 && position.file > 0,
            end_of_data: self.image_offset() >= self.image_len(),
            early_warning: self.early_warning(),
            end_of_medium: self.capacity_left() == Some(0),
            block_size: None,
        })
    }
}

/// Mounts a tape by opening its SIMH image, `LABEL.tap` in the back-end's
/// library directory, with the drive's tape capacity (and early-warning
/// zone). Labels are checked (1 to 6 of A–Z 0–9), so a mount never opens
/// or creates a file outside the library.
#[derive(Debug, Clone)]
pub struct ImageMounter {
    capacity: Option<Capacity>,
    library: PathBuf,
}

impl ImageMounter {
    /// Images are `LABEL.tap` in `library`; each mounted gets `capacity`
    /// (None: unlimited).
    pub fn in_library(library: &Path, capacity: Option<Capacity>) -> ImageMounter {
        ImageMounter {
            capacity,
            library: library.to_path_buf(),
        }
    }
}

impl Mounter for ImageMounter {
    fn describe(&self) -> String {
        format!("SIMH tape images in {}", self.library.display())
    }

    fn mount(&mut self, label: &str, mode: MountMode) -> Result<Box<dyn TapeDrive>, DeviceError> {
        check_label(label).map_err(|source| DeviceError::Tape {
            action: format!("mounting tape {label:?}"),
            source,
        })?;
        if mode == MountMode::Create {
            let action = format!("creating the library directory {}", self.library.display());
            std::fs::create_dir_all(&self.library).map_err(|e| DeviceError::Tape {
                source: super::io_error(Position::default(), action.clone(), e),
                action,
            })?;
        }
        let path = &self.library.join(format!("{label}.tap"));
        let action = match mode {
            MountMode::Create => format!("creating tape image {} for {label}", path.display()),
            MountMode::Append | MountMode::Read => format!("opening tape image {} of {label}", path.display()),
        };
        let opened = match mode {
            MountMode::Create => SimhTape::create(path),
            MountMode::Append => SimhTape::open_rw(path),
            MountMode::Read => SimhTape::open(path),
        };
        let mut tape = opened.map_err(|source| DeviceError::Tape { action, source })?;
        tape.set_capacity(self.capacity);
        Ok(Box::new(tape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::tape::block::MemTape;

    fn three_files() -> MemTape {
        let mut t = MemTape::memory();
        for f in 0..3u8 {
            for r in 0..=f {
                t.write_record(&[f, r]).unwrap();
            }
            t.write_filemark().unwrap();
        }
        t
    }

    #[test]
    fn spacing_over_files_lands_where_mtfsf_and_mtbsf_do() {
        let mut t = three_files();
        t.rewind().unwrap();
        t.space_files_forward(2).unwrap();
        assert_eq!(t.position(), Position { file: 2, record: 0 });
        // Back over 2 marks from the start of file 2: the end of file 0.
        t.space_files_back(2).unwrap();
        assert_eq!(t.position(), Position { file: 0, record: 1 });
        let mut buf = Vec::new();
        assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::FileMark);
        // From the middle of file 2, back over one mark: the end of file 1.
        t.locate_file(2).unwrap();
        t.read_block(&mut buf, 10).unwrap();
        t.space_files_back(1).unwrap();
        assert_eq!(t.position(), Position { file: 1, record: 2 });
        t.space_files_forward(0).unwrap();
        t.space_files_back(0).unwrap();
        assert_eq!(t.position(), Position { file: 1, record: 2 });
    }

    #[test]
    fn spacing_past_either_end_is_not_found() {
        let mut t = three_files();
        t.locate_file(1).unwrap();
        let e = t.space_files_forward(5).unwrap_err();
        assert!(matches!(e, TapeError::NotFound { .. }), "{e}");
        assert!(t.status().unwrap().end_of_data);
        t.locate_file(1).unwrap();
        let e = t.space_files_back(2).unwrap_err().to_string();
        assert!(e.contains("2 tape marks before tape file 1"), "{e}");
        assert!(t.status().unwrap().beginning_of_tape);
    }

    #[test]
    fn status_reports_early_warning_and_the_physical_end() {
        let cap = Capacity::new(100, 40).unwrap();
        let mut t = MemTape::memory().with_capacity(cap);
        let s = t.status().unwrap();
        assert!(s.beginning_of_tape && s.end_of_data && !s.early_warning && !s.write_protected);
        t.write_record(&[0; 60]).unwrap(); // 68 bytes: past the early-warning point (60)
        let s = t.status().unwrap();
        assert!(s.early_warning && !s.end_of_medium);
        t.write_record(&[0; 24]).unwrap(); // 32 bytes: exactly the end
        assert!(t.status().unwrap().end_of_medium);
        assert!(t.write_filemark().unwrap_err().is_end_of_medium());
    }

    #[test]
    fn the_image_mounter_opens_label_images_with_the_drive_s_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ImageMounter::in_library(dir.path(), Some(Capacity::new(1000, 100).unwrap()));
        let e = m.mount("DM0001", MountMode::Read).err().unwrap().to_string();
        assert!(
            e.contains("opening tape image") && e.contains("DM0001.tap of DM0001"),
            "{e}"
        );
        let mut d = m.mount("DM0001", MountMode::Create).unwrap();
        d.write_record(b"VOL1").unwrap();
        assert_eq!(d.early_warning_left(), Some(900 - 12));
        drop(d);
        let mut d = m.mount("DM0001", MountMode::Read).unwrap();
        assert!(d.status().unwrap().write_protected);
        assert!(d.write_record(b"x").is_err());
        assert_eq!(std::fs::metadata(dir.path().join("DM0001.tap")).unwrap().len(), 12);
    }

    #[test]
    fn the_library_image_mounter_opens_only_label_images_in_its_library() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        let mut m = ImageMounter::in_library(&lib, None);
        let mut d = m.mount("DM0001", MountMode::Create).unwrap();
        d.write_record(b"VOL1").unwrap();
        drop(d);
        assert_eq!(std::fs::metadata(lib.join("DM0001.tap")).unwrap().len(), 12);
        for bad in ["../x", "/etc/x", "", "dm0001", "TOOLONG7", "A.B"] {
            let e = m.mount(bad, MountMode::Create).err().unwrap().to_string();
            assert!(e.contains("tape label"), "{bad:?}: {e}");
        }
        assert_eq!(std::fs::read_dir(&lib).unwrap().count(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing written outside the library"
        );
    }
}
