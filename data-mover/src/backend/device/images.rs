//! A library whose cartridges are SIMH image files: tapes enter it from,
//! and leave it to, image files outside it (an operator's vault or
//! import directory). The back-end owns its library's images: the control
//! station asks it to read an outside image's labels, to import one, or to
//! export a tape, and never opens an image itself.
//!
//! ```text
//! ImageLibrary
//!   ├─ library::DirectoryLibrary   LABEL.tap files in the library directory
//!   └─ MemoryImages                images in memory (tests)
//! ```

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use proto::tape::block::{BlockDevice, SimhTape};
use proto::tape::volume::{describe, TapeDescription, TapeReader};
use proto::tape::TapeError;
use proto::wire::ImageContents;
use thiserror::Error;

/// An image could not be read, imported or exported.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("{path}: no such image")]
    NotFound { path: PathBuf },
    #[error("{path} already exists; not overwriting it")]
    Exists { path: PathBuf },
    #[error("{path}: expected a tape image file, found {found}")]
    NotAFile { path: PathBuf, found: String },
    #[error("{path} is not a readable SIMH tape image: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: TapeError,
    },
    #[error("{path} is inside the library {library}: images enter and leave it only by import and export")]
    InsideLibrary { path: PathBuf, library: PathBuf },
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

/// A library of tape images (see the module docs). Outside paths are
/// absolute paths the caller already checked for `.` and `..`.
pub trait ImageLibrary: Send {
    /// The library in logs and errors.
    fn describe(&self) -> String;
    /// Where tape `label`'s image is kept in the library (whether or not
    /// it exists yet).
    fn image_of(&self, label: &str) -> PathBuf;
    /// What the image at `outside` holds.
    fn read_label(&self, outside: &Path) -> Result<ImageContents, ImageError>;
    /// What the labelled image at `outside` holds, as a catalog needs it
    /// (see [`proto::tape::volume::describe`]).
    fn describe_image(&self, outside: &Path) -> Result<TapeDescription, ImageError>;
    /// Move the image at `outside` into the library as tape `label`'s
    /// (never over an image already there). Returns where it is now.
    fn import_image(&mut self, outside: &Path, label: &str) -> Result<PathBuf, ImageError>;
    /// Move tape `label`'s image to `outside` (which must not exist yet).
    /// A tape with no image leaves as an empty one. Returns whether the
    /// library held an image.
    fn export_image(&mut self, label: &str, outside: &Path) -> Result<bool, ImageError>;
}

/// What the tape on `dev` holds (labels, data files, metadata bytes).
pub fn describe_device<D: BlockDevice>(dev: D) -> Result<TapeDescription, TapeError> {
    describe(&mut TapeReader::open(dev)?)
}

/// The volume label of a tape image's device.
pub fn volume_label<D: BlockDevice>(dev: D) -> Result<String, TapeError> {
    Ok(TapeReader::open(dev)?.label().to_string())
}

/// Tape images held in memory, for tests: the library's by label, and
/// the "outside" files by path. Outside paths under `root` count as
/// inside the library.
#[derive(Debug, Clone)]
pub struct MemoryImages {
    pub root: PathBuf,
    pub library: BTreeMap<String, Vec<u8>>,
    pub outside: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemoryImages {
    /// An empty library at `root` (a name only: nothing touches the disk).
    pub fn new(root: impl Into<PathBuf>) -> MemoryImages {
        MemoryImages {
            root: root.into(),
            library: BTreeMap::new(),
            outside: BTreeMap::new(),
        }
    }

    fn check_outside(&self, path: &Path) -> Result<(), ImageError> {
        if path.starts_with(&self.root) {
            return Err(ImageError::InsideLibrary {
                path: path.to_path_buf(),
                library: self.root.clone(),
            });
        }
        Ok(())
    }
}

impl ImageLibrary for MemoryImages {
    fn describe(&self) -> String {
        format!("in-memory library {}", self.root.display())
    }

    fn image_of(&self, label: &str) -> PathBuf {
        self.root.join(format!("{label}.tap"))
    }

    fn read_label(&self, outside: &Path) -> Result<ImageContents, ImageError> {
        self.check_outside(outside)?;
        let bytes = self.outside.get(outside).ok_or_else(|| ImageError::NotFound {
            path: outside.to_path_buf(),
        })?;
        if bytes.is_empty() {
            return Ok(ImageContents::Blank);
        }
        let corrupt = |source| ImageError::Corrupt {
            path: outside.to_path_buf(),
            source,
        };
        let dev = SimhTape::new(Cursor::new(bytes.clone())).map_err(corrupt)?;
        volume_label(dev).map(ImageContents::Labelled).map_err(corrupt)
    }

    fn describe_image(&self, outside: &Path) -> Result<TapeDescription, ImageError> {
        self.check_outside(outside)?;
        let bytes = self.outside.get(outside).ok_or_else(|| ImageError::NotFound {
            path: outside.to_path_buf(),
        })?;
        let corrupt = |source| ImageError::Corrupt {
            path: outside.to_path_buf(),
            source,
        };
        let dev = SimhTape::new(Cursor::new(bytes.clone())).map_err(corrupt)?;
        describe_device(dev).map_err(corrupt)
    }

    fn import_image(&mut self, outside: &Path, label: &str) -> Result<PathBuf, ImageError> {
        self.check_outside(outside)?;
        let dest = self.image_of(label);
        if self.library.contains_key(label) {
            return Err(ImageError::Exists { path: dest });
        }
        let bytes = self.outside.remove(outside).ok_or_else(|| ImageError::NotFound {
            path: outside.to_path_buf(),
        })?;
        self.library.insert(label.to_string(), bytes);
        Ok(dest)
    }

    fn export_image(&mut self, label: &str, outside: &Path) -> Result<bool, ImageError> {
        self.check_outside(outside)?;
        if self.outside.contains_key(outside) {
            return Err(ImageError::Exists {
                path: outside.to_path_buf(),
            });
        }
        let held = self.library.remove(label);
        let had = held.is_some();
        self.outside.insert(outside.to_path_buf(), held.unwrap_or_default());
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_images_move_between_the_library_and_outside() {
        let mut m = MemoryImages::new("/lib");
        m.outside.insert("/in/b.tap".into(), Vec::new());
        assert_eq!(m.read_label(Path::new("/in/b.tap")).unwrap(), ImageContents::Blank);
        assert!(matches!(
            m.read_label(Path::new("/in/none.tap")),
            Err(ImageError::NotFound { .. })
        ));
        assert_eq!(
            m.import_image(Path::new("/in/b.tap"), "B1").unwrap(),
            Path::new("/lib/B1.tap")
        );
        assert!(m.outside.is_empty() && m.library.contains_key("B1"));
        assert!(
            m.export_image("B1", Path::new("/lib/x.tap")).is_err(),
            "inside the library"
        );
        assert!(m.export_image("B1", Path::new("/out/B1.tap")).unwrap());
        assert!(
            !m.export_image("NONE", Path::new("/out/NONE.tap")).unwrap(),
            "no image: blank"
        );
        assert!(matches!(
            m.export_image("B1", Path::new("/out/B1.tap")),
            Err(ImageError::Exists { .. })
        ));
        m.outside.insert("/in/junk.tap".into(), b"junk".to_vec());
        assert!(matches!(
            m.read_label(Path::new("/in/junk.tap")),
            Err(ImageError::Corrupt { .. })
        ));
    }
}
