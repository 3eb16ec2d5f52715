//! A tape drive owned by a back-end: empty, or holding a tape image mounted
//! for writing or for reading.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use proto::tape::block::SimhTape;
use proto::tape::directory::DirectoryEntry;
use proto::tape::metadata::AbsMetadata;
use proto::tape::segment::VerifiedSegment;
use proto::tape::volume::{TapeParams, TapeReader, TapeWriter};
use proto::wire::NewTape;

type Image = SimhTape<File>;

/// What is in the drive.
pub enum Mounted {
    Empty,
    Writing {
        label: String,
        writer: Box<TapeWriter<Image>>,
    },
    Reading {
        label: String,
        reader: Box<TapeReader<Image>>,
    },
}

pub struct Drive {
    pub name: String,
    pub mounted: Mounted,
}

impl Drive {
    pub fn new(name: &str) -> Drive {
        Drive {
            name: name.to_string(),
            mounted: Mounted::Empty,
        }
    }

    /// Load an image for writing: label a scratch tape, or append to a tape
    /// of this system. Returns (data files, data bytes) already on it.
    pub fn mount_for_write(&mut self, label: &str, path: &Path, new: Option<&NewTape>) -> Result<(u32, u64)> {
        self.unload_checked()?;
        let writer = match new {
            Some(n) => {
                let dev = SimhTape::create(path)
                    .with_context(|| format!("creating tape image {} for {label}", path.display()))?;
                let params = TapeParams {
                    label: label.to_string(),
                    pool: n.pool.clone(),
                    media_set: n.media_set,
                    sequence: n.sequence,
                    block_size: n.block_size as usize,
                    owner: "DMC".to_string(),
                };
                TapeWriter::create(dev, params).with_context(|| format!("labelling tape {label}"))?
            }
            None => {
                let dev = SimhTape::open_rw(path)
                    .with_context(|| format!("opening tape image {} of {label}", path.display()))?;
                TapeWriter::append(dev).with_context(|| format!("positioning tape {label} for append"))?
            }
        };
        let found = &writer.node_header().label;
        if found != label {
            bail!(
                "drive {}: the tape in {} is labelled {found}, expected {label}",
                self.name,
                path.display()
            );
        }
        let files = writer.directory().len() as u32;
        let bytes = writer.data_bytes();
        self.mounted = Mounted::Writing {
            label: label.to_string(),
            writer: Box::new(writer),
        };
        Ok((files, bytes))
    }

    pub fn mount_for_read(&mut self, label: &str, path: &Path) -> Result<()> {
        self.unload_checked()?;
        let dev = SimhTape::open(path).with_context(|| format!("opening tape image {} of {label}", path.display()))?;
        let reader = TapeReader::open(dev).with_context(|| format!("reading the labels of tape {label}"))?;
        let found = &reader.node_header().label;
        if found != label {
            bail!(
                "drive {}: the tape in {} is labelled {found}, expected {label}",
                self.name,
                path.display()
            );
        }
        self.mounted = Mounted::Reading {
            label: label.to_string(),
            reader: Box::new(reader),
        };
        Ok(())
    }

    fn unload_checked(&mut self) -> Result<()> {
        if !matches!(self.mounted, Mounted::Empty) {
            self.dismount()?;
        }
        Ok(())
    }

    /// Finish a written tape (directory, trailer, catalog, EOF labels) and
    /// unload. Returns (label, data files, data bytes).
    pub fn dismount(&mut self) -> Result<(String, u32, u64)> {
        match std::mem::replace(&mut self.mounted, Mounted::Empty) {
            Mounted::Empty => Ok((String::new(), 0, 0)),
            Mounted::Writing { label, writer } => {
                let files = writer.directory().len() as u32;
                let bytes = writer.data_bytes();
                writer
                    .finish(false)
                    .with_context(|| format!("finishing tape {label}"))?;
                Ok((label, files, bytes))
            }
            Mounted::Reading { label, .. } => Ok((label, 0, 0)),
        }
    }

    fn writer(&mut self) -> Result<(&str, &mut TapeWriter<Image>)> {
        match &mut self.mounted {
            Mounted::Writing { label, writer } => Ok((label.as_str(), writer.as_mut())),
            _ => bail!("drive {} has no tape mounted for writing", self.name),
        }
    }

    /// Write a sealed segment as one tape file and sync.
    pub fn write_segment(&mut self, bytes: &[u8], object_name: &str) -> Result<(String, DirectoryEntry)> {
        let drive = self.name.clone();
        let (label, w) = self.writer()?;
        let entry = w
            .write_segment(bytes, object_name)
            .with_context(|| format!("writing a segment to tape {label} in drive {drive}"))?;
        w.sync().with_context(|| format!("syncing tape {label}"))?;
        Ok((label.to_string(), entry))
    }

    /// Write ABS metadata as one tape file and sync.
    pub fn write_metadata(&mut self, meta: &AbsMetadata) -> Result<(String, DirectoryEntry)> {
        let (label, w) = self.writer()?;
        let entry = w
            .write_abs_metadata(meta)
            .with_context(|| format!("writing ABS metadata to tape {label}"))?;
        w.sync().with_context(|| format!("syncing tape {label}"))?;
        Ok((label.to_string(), entry))
    }

    /// Read and verify one segment.
    pub fn read_segment(&mut self, label: &str, file: u32, max: usize) -> Result<VerifiedSegment> {
        match &mut self.mounted {
            Mounted::Reading { label: l, reader } if l == label => Ok(reader.read_segment(file, max)?),
            _ => bail!("drive {} does not hold tape {label} for reading", self.name),
        }
    }
}
