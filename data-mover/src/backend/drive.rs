//! A tape drive owned by a back-end: empty, or holding a tape image mounted
//! for writing or for reading. Every tape it mounts gets the configured
//! capacity (with its early-warning zone) and the drive's speed limit, and
//! the drive accounts its busy and idle time across mounts.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proto::tape::block::{Capacity, SimhTape};
use proto::tape::directory::DirectoryEntry;
use proto::tape::metadata::AbsMetadata;
use proto::tape::segment::SegmentSummary;
use proto::tape::throttle::Throttle;
use proto::tape::volume::{TapeParams, TapeReader, TapeWriter};
use proto::tape::TapeError;
use proto::wire::NewTape;

type Image = Throttle<SimhTape<File>>;

/// Where a data file landed: the tape, its directory entry, and (for a
/// segment) what the copy verified.
#[derive(Debug, Clone)]
pub struct Landed {
    pub label: String,
    pub entry: DirectoryEntry,
    pub summary: Option<SegmentSummary>,
}

/// A data file written, or the tape-full refusal (nothing written).
pub type Written = std::result::Result<Landed, TapeError>;

/// What every tape in a drive is like.
#[derive(Debug, Clone, Copy, Default)]
pub struct DriveSpec {
    /// Capacity of each tape mounted (None: unlimited).
    pub capacity: Option<Capacity>,
    /// Speed limit in bytes per second (None: unlimited).
    pub speed: Option<u64>,
}

/// Busy and idle time of a drive since the back-end started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveTime {
    pub busy: Duration,
    pub idle: Duration,
}

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
    spec: DriveSpec,
    since: Instant,
    /// Busy time of the tapes already unloaded.
    busy_unloaded: Duration,
}

impl Drive {
    pub fn new(name: &str, spec: DriveSpec) -> Drive {
        Drive {
            name: name.to_string(),
            mounted: Mounted::Empty,
            spec,
            since: Instant::now(),
            busy_unloaded: Duration::ZERO,
        }
    }

    /// Busy and idle time so far (an empty drive is idle).
    pub fn time(&self) -> DriveTime {
        let current = match &self.mounted {
            Mounted::Empty => Duration::ZERO,
            Mounted::Writing { writer, .. } => writer.device().busy(),
            Mounted::Reading { reader, .. } => reader.device().busy(),
        };
        let busy = self.busy_unloaded + current;
        DriveTime {
            busy,
            idle: self.since.elapsed().saturating_sub(busy),
        }
    }

    /// Publish the drive's busy and idle seconds as gauges.
    pub fn publish_time(&self) {
        let t = self.time();
        metrics::gauge!("dmc_be_drive_busy_seconds", "drive" => self.name.clone()).set(t.busy.as_secs_f64());
        metrics::gauge!("dmc_be_drive_idle_seconds", "drive" => self.name.clone()).set(t.idle.as_secs_f64());
    }

    fn device(&self, dev: SimhTape<File>) -> Image {
        let dev = match self.spec.capacity {
            Some(c) => dev.with_capacity(c),
            None => dev,
        };
        Throttle::new(dev, self.spec.speed)
    }

    /// Whether the tape in the drive holds no data file yet.
    pub fn writing_empty_tape(&self) -> bool {
        matches!(&self.mounted, Mounted::Writing { writer, .. } if writer.directory().is_empty())
    }

    /// Load an image for writing: label a scratch tape, or append to a tape
    /// of this system. Returns (data files, data bytes) already on it.
    pub fn mount_for_write(&mut self, label: &str, path: &Path, new: Option<&NewTape>) -> Result<(u32, u64)> {
        self.unload_checked()?;
        let writer = match new {
            Some(n) => {
                let dev = self.device(
                    SimhTape::create(path)
                        .with_context(|| format!("creating tape image {} for {label}", path.display()))?,
                );
                let params = TapeParams {
                    label: label.to_string(),
                    pool: n.pool.clone(),
                    media_set: n.media_set.get(),
                    sequence: n.sequence,
                    block_size: n.block_size as usize,
                    owner: "DMC".to_string(),
                };
                TapeWriter::create(dev, params).with_context(|| format!("labelling tape {label}"))?
            }
            None => {
                let dev = self.device(
                    SimhTape::open_rw(path)
                        .with_context(|| format!("opening tape image {} of {label}", path.display()))?,
                );
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
        let dev = self
            .device(SimhTape::open(path).with_context(|| format!("opening tape image {} of {label}", path.display()))?);
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
        self.unload(false)
    }

    /// Finish a full tape with EOV labels (the media set continues on
    /// another tape) and unload. Returns (label, data files, data bytes).
    pub fn finish_full(&mut self) -> Result<(String, u32, u64)> {
        self.unload(true)
    }

    fn unload(&mut self, continues: bool) -> Result<(String, u32, u64)> {
        let out = match std::mem::replace(&mut self.mounted, Mounted::Empty) {
            Mounted::Empty => (String::new(), 0, 0),
            Mounted::Writing { label, writer } => {
                let files = writer.directory().len() as u32;
                let bytes = writer.data_bytes();
                let dev = writer
                    .finish(continues)
                    .with_context(|| format!("finishing tape {label}"))?;
                self.busy_unloaded += dev.busy();
                (label, files, bytes)
            }
            Mounted::Reading { label, reader } => {
                self.busy_unloaded += reader.device().busy();
                (label, 0, 0)
            }
        };
        self.publish_time();
        Ok(out)
    }

    fn writer(&mut self) -> Result<(&str, &mut TapeWriter<Image>)> {
        match &mut self.mounted {
            Mounted::Writing { label, writer } => Ok((label.as_str(), writer.as_mut())),
            _ => bail!("drive {} has no tape mounted for writing", self.name),
        }
    }

    /// Copy a sealed segment of `len` bytes from `src` (a spool file) to
    /// the tape as one tape file, verifying it on the way (segment `expect`
    /// = (ABS, seq)), and sync. `Ok(Err(_))`: the tape is full
    /// ([`TapeError::is_tape_full`]) and nothing was written. A bad segment
    /// is an error and leaves nothing on the tape.
    pub fn write_segment_from(
        &mut self,
        src: &mut dyn std::io::Read,
        len: u64,
        object_name: &str,
        expect: (u64, u32),
        scratch: &mut Vec<u8>,
    ) -> Result<Written> {
        let drive = self.name.clone();
        let (label, w) = self.writer()?;
        let (entry, summary) = match w.write_segment_from(src, len, object_name, Some(expect), scratch) {
            Ok(e) => e,
            Err(e) if e.is_tape_full() => return Ok(Err(e)),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("writing a segment to tape {label} in drive {drive}")))
            }
        };
        w.sync().with_context(|| format!("syncing tape {label}"))?;
        let label = label.to_string();
        self.publish_time();
        Ok(Ok(Landed {
            label,
            entry,
            summary: Some(summary),
        }))
    }

    /// Write ABS metadata as one tape file and sync; a full tape as in
    /// [`Drive::write_segment`].
    pub fn write_metadata(&mut self, meta: &AbsMetadata) -> Result<Written> {
        let (label, w) = self.writer()?;
        let entry = match w.write_abs_metadata(meta) {
            Ok(e) => e,
            Err(e) if e.is_tape_full() => return Ok(Err(e)),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("writing ABS metadata to tape {label}"))),
        };
        w.sync().with_context(|| format!("syncing tape {label}"))?;
        let label = label.to_string();
        self.publish_time();
        Ok(Ok(Landed {
            label,
            entry,
            summary: None,
        }))
    }

    /// Read one segment into `out` (a staging file), verifying every
    /// checksum on the way; returns what was verified.
    pub fn read_segment_into(
        &mut self,
        label: &str,
        file: u32,
        max: usize,
        out: &mut dyn std::io::Write,
    ) -> Result<SegmentSummary> {
        match &mut self.mounted {
            Mounted::Reading { label: l, reader } if l == label => {
                let s = reader.read_segment_into(file, max, out)?;
                self.publish_time();
                Ok(s)
            }
            _ => bail!("drive {} does not hold tape {label} for reading", self.name),
        }
    }

    /// Records read from the tape mounted for reading (labels included).
    pub fn records_read(&self) -> u64 {
        match &self.mounted {
            Mounted::Reading { reader, .. } => reader.records_read(),
            _ => 0,
        }
    }
}
