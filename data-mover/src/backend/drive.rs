//! A tape drive owned by a back-end: empty, or holding a tape mounted for
//! writing or for reading. What mounting means is its [`Mounter`]'s
//! business (open a SIMH image, or have a changer load a cartridge into
//! `/dev/nstN`); every tape device it gets is put behind the drive's speed
//! limit, and the drive accounts its busy and idle time across mounts.

use proto::num::saturating_u32;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proto::tape::block::Capacity;
use proto::tape::directory::DirectoryEntry;
use proto::tape::management::Management;
use proto::tape::metadata::AbsMetadata;
use proto::tape::segment::SegmentSummary;
use proto::tape::throttle::Throttle;
use proto::tape::volume::{TapeParams, TapeReader, TapeWriter};
use proto::tape::TapeError;
use proto::wire::NewTape;

use super::device::{MountMode, Mounter, TapeDrive};

/// A mounted tape's device, behind the drive's speed limit (which also
/// accounts its busy time).
pub type DriveDevice = Throttle<Box<dyn TapeDrive>>;

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
    /// Capacity of each SIMH image mounted (None: unlimited; a real drive
    /// reports its own early warning).
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
        writer: Box<TapeWriter<DriveDevice>>,
    },
    Reading {
        label: String,
        reader: Box<TapeReader<DriveDevice>>,
    },
}

pub struct Drive {
    pub name: String,
    pub mounted: Mounted,
    spec: DriveSpec,
    mounter: Box<dyn Mounter>,
    since: Instant,
    /// Busy time of the tapes already unloaded.
    busy_unloaded: Duration,
}

impl Drive {
    /// A drive whose tapes `mounter` brings in.
    pub fn with_mounter(name: &str, spec: DriveSpec, mounter: Box<dyn Mounter>) -> Drive {
        Drive {
            name: name.to_string(),
            mounted: Mounted::Empty,
            spec,
            mounter,
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

    /// Have the mounter bring tape `label` in, behind the speed limit.
    fn open(&mut self, label: &str, mode: MountMode) -> Result<DriveDevice> {
        let dev = self.mounter.mount(label, mode)?;
        tracing::debug!(drive = %self.name, device = %self.mounter.describe(), %label, ?mode, "tape opened");
        Ok(Throttle::new(dev, self.spec.speed))
    }

    /// Tell the mounter the drive is done with tape `label` (its device is
    /// dropped); a failure is logged, the drive is empty either way.
    fn release(&mut self, label: &str) {
        if let Err(e) = self.mounter.unmount(label) {
            tracing::warn!(drive = %self.name, %label, error = %e, "releasing the tape failed");
        }
    }

    /// Whether the tape in the drive holds no data file yet.
    pub fn writing_empty_tape(&self) -> bool {
        matches!(&self.mounted, Mounted::Writing { writer, .. } if writer.directory().is_empty())
    }

    /// Load an image for writing: label a scratch tape, or append to a tape
    /// of this system. Returns (data files, data bytes) already on it.
    pub fn mount_for_write(&mut self, label: &str, new: Option<&NewTape>) -> Result<(u32, u64)> {
        self.unload_checked()?;
        let writer = match new {
            Some(n) => {
                let dev = self.open(label, MountMode::Create)?;
                let params = TapeParams {
                    label: label.to_string(),
                    pool: n.pool.clone(),
                    media_set: n.media_set.get(),
                    sequence: n.sequence,
                    block_size: n.block_size as usize,
                    owner: "DMC".to_string(),
                };
                let w = TapeWriter::create(dev, params);
                self.release_on_error(label, w)
                    .with_context(|| format!("labelling tape {label}"))?
            }
            None => {
                let dev = self.open(label, MountMode::Append)?;
                let w = TapeWriter::append(dev);
                self.release_on_error(label, w)
                    .with_context(|| format!("positioning tape {label} for append"))?
            }
        };
        let found = &writer.node_header().label;
        if found != label {
            let found = found.clone();
            drop(writer);
            self.release(label);
            bail!(
                "drive {} ({}): the tape mounted as {label} is labelled {found}",
                self.name,
                self.mounter.describe()
            );
        }
        let files = saturating_u32(writer.directory().len());
        let bytes = writer.data_bytes();
        self.mounted = Mounted::Writing {
            label: label.to_string(),
            writer: Box::new(writer),
        };
        Ok((files, bytes))
    }

    pub fn mount_for_read(&mut self, label: &str) -> Result<()> {
        self.unload_checked()?;
        let dev = self.open(label, MountMode::Read)?;
        let reader = TapeReader::open(dev);
        let reader = self
            .release_on_error(label, reader)
            .with_context(|| format!("reading the labels of tape {label}"))?;
        let found = &reader.node_header().label;
        if found != label {
            let found = found.clone();
            drop(reader);
            self.release(label);
            bail!(
                "drive {} ({}): the tape mounted as {label} is labelled {found}",
                self.name,
                self.mounter.describe()
            );
        }
        self.mounted = Mounted::Reading {
            label: label.to_string(),
            reader: Box::new(reader),
        };
        Ok(())
    }

    /// A mount that failed after the tape was brought in releases it.
    fn release_on_error<T>(&mut self, label: &str, r: Result<T, TapeError>) -> Result<T, TapeError> {
        if r.is_err() {
            self.release(label);
        }
        r
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

    /// The tape being written and the ABSs on it without a management
    /// record for its CATALOG (their metadata is not on it); None when no
    /// tape is mounted for writing.
    pub fn abs_without_record(&self) -> Option<(String, Vec<u64>)> {
        match &self.mounted {
            Mounted::Writing { label, writer } => Some((label.clone(), writer.abs_without_record())),
            _ => None,
        }
    }

    /// Give the tape being written the records of ABSs without one (see
    /// [`TapeWriter::supply_record`]).
    pub fn supply_records(&mut self, records: Vec<(u64, Management)>) {
        if let Mounted::Writing { writer, .. } = &mut self.mounted {
            for (abs_id, m) in records {
                writer.supply_record(abs_id, m);
            }
        }
    }

    fn unload(&mut self, continues: bool) -> Result<(String, u32, u64)> {
        let out = match std::mem::replace(&mut self.mounted, Mounted::Empty) {
            Mounted::Empty => (String::new(), 0, 0),
            Mounted::Writing { label, writer } => {
                let files = saturating_u32(writer.directory().len());
                let bytes = writer.data_bytes();
                // The device is dropped (closed) before the mounter releases it.
                let finished = writer.finish(continues).map(|dev| self.busy_unloaded += dev.busy());
                self.release(&label);
                finished.with_context(|| format!("finishing tape {label}"))?;
                (label, files, bytes)
            }
            Mounted::Reading { label, reader } => {
                self.busy_unloaded += reader.device().busy();
                drop(reader);
                self.release(&label);
                (label, 0, 0)
            }
        };
        self.publish_time();
        Ok(out)
    }

    fn writer(&mut self) -> Result<(&str, &mut TapeWriter<DriveDevice>)> {
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
        let started = std::time::Instant::now();
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
        // Written, verified and synced: what a segment costs the drive.
        metrics::histogram!("dmc_be_segment_write_seconds", "drive" => drive.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("dmc_be_drive_written_bytes_total", "drive" => drive).increment(entry.bytes);
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
                metrics::counter!("dmc_be_drive_read_bytes_total", "drive" => self.name.clone())
                    .increment(s.total_bytes);
                self.publish_time();
                Ok(s)
            }
            _ => bail!("drive {} does not hold tape {label} for reading", self.name),
        }
    }

    /// Read the ABS metadata in tape file `file`, checked.
    pub fn read_metadata(&mut self, label: &str, file: u32) -> Result<AbsMetadata> {
        match &mut self.mounted {
            Mounted::Reading { label: l, reader } if l == label => {
                let m = reader.read_abs_metadata(file)?;
                self.publish_time();
                Ok(m)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::device::memory::MemoryMounter;
    use proto::abs::TrackAddr;
    use proto::tape::segment::{SegmentHeader, SegmentWriter};

    fn segment(seq: u32, len: usize) -> Vec<u8> {
        let hdr = SegmentHeader {
            abs_id: 7,
            seq,
            channel_id: 1,
            created_unix: 1_700_000_000,
        };
        let mut w = SegmentWriter::new(Vec::new(), hdr).unwrap();
        w.append_track(TrackAddr { volume: 0, track: 1 }, &vec![seq as u8; len])
            .unwrap();
        w.finish().unwrap().0
    }

    fn new_tape() -> NewTape {
        NewTape {
            pool: "default".into(),
            media_set: proto::domain::MediaSetId::new(1),
            sequence: 1,
            block_size: 4096,
        }
    }

    fn drive(capacity: Option<Capacity>) -> Drive {
        let spec = DriveSpec { capacity, speed: None };
        Drive::with_mounter("d0", spec, Box::new(MemoryMounter::new(capacity)))
    }

    fn write(d: &mut Drive, seq: u32, len: usize) -> Written {
        let seg = segment(seq, len);
        let mut scratch = Vec::new();
        d.write_segment_from(&mut &seg[..], seg.len() as u64, "vm", (7, seq), &mut scratch)
            .unwrap()
    }

    #[test]
    fn a_tape_is_written_appended_and_read_back_through_any_mounter() {
        let mut d = drive(None);
        assert_eq!(d.mount_for_write("T00001", Some(&new_tape())).unwrap(), (0, 0));
        assert!(d.writing_empty_tape());
        let landed = write(&mut d, 0, 3000).unwrap();
        assert_eq!((landed.label.as_str(), landed.entry.seq), ("T00001", 0));
        let (label, files, _) = d.dismount().unwrap();
        assert_eq!((label.as_str(), files), ("T00001", 1));
        // The mounter was told: the same tape mounts again, to append.
        assert_eq!(d.mount_for_write("T00001", None).unwrap().0, 1);
        let file = write(&mut d, 1, 100).unwrap().entry.file_number;
        d.mount_for_read("T00001").unwrap(); // finishes and unloads the written tape first
        let mut out = Vec::new();
        let s = d.read_segment_into("T00001", file, 1 << 20, &mut out).unwrap();
        assert_eq!((s.header.abs_id, s.header.seq, s.data_bytes), (7, 1, 100));
        assert!(d.records_read() > 0);
        d.dismount().unwrap();
        // A failed mount leaves the drive empty and the mounter free.
        let e = d.mount_for_read("NOPE01").unwrap_err();
        assert!(format!("{e:#}").contains("an in-memory tape labelled NOPE01"), "{e:#}");
        assert!(matches!(d.mounted, Mounted::Empty));
        d.mount_for_read("T00001").unwrap();
        assert!(d.time().busy + d.time().idle > Duration::ZERO);
    }

    #[test]
    fn a_full_tape_is_refused_then_finished_with_eov() {
        let mut d = drive(Some(Capacity::new(60_000, 30_000).unwrap()));
        d.mount_for_write("T00002", Some(&new_tape())).unwrap();
        let mut written = 0;
        while write(&mut d, written, 8000).is_ok() {
            written += 1;
        }
        assert!(write(&mut d, written, 8000).unwrap_err().is_tape_full());
        let (_, files, _) = d.finish_full().unwrap();
        assert_eq!(files, written);
        assert!(written > 0);
    }
}
