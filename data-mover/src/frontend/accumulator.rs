//! The accumulation file of one ABS on the front-end's spool directory.
//!
//! Tracks are appended, in arrival order, as track records of the open
//! segment `abs-<id>/seg-<seq>.open` (see [`crate::spool`]), streamed as
//! they arrive from the network. When the open segment passes the
//! threshold it is sealed: trailer written, renamed `seg-<seq>.sealed`, and
//! handed to the back-end; a sealed segment is deleted only after the
//! back-end reports it on tape, synced, and in the catalog.
//!
//! Segment files are not synced: the primary node keeps every track until
//! it is on tape, so a front-end that dies loses nothing that cannot be
//! sent again, and a segment written to tape soon after it was sealed
//! never has to reach the disk (seed FIG. 32: "still in cache"). Each seal
//! is recorded in the ABS's journal (synced, a few bytes), from which a
//! restarted front-end resumes ([`super::resume`]).

use proto::domain::{AbsId, ChannelId, SegmentSeq};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use proto::abs::TrackAddr;
use proto::tape::segment::{SegmentHeader, SegmentSummary, SegmentWriter};

use super::resume::{journal_sealed, JournalEntry};
use crate::spool::{Slots, Spool};

/// Bytes buffered before a write to the spool file.
const WRITE_BUFFER: usize = 1 << 20;

/// A sealed segment waiting for the back-end.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub path: PathBuf,
    pub summary: SegmentSummary,
    /// Track frames of the input consumed up to the end of this segment
    /// (the primary node's request queue can drop that many once this
    /// segment and every earlier one are on tape).
    pub frames_through: u64,
}

/// A spool file written through a large buffer; the write itself runs with
/// [`tokio::task::block_in_place`] inside a multi-threaded runtime, so a
/// slow disk does not stall the runtime's other tasks.
struct SpoolFile {
    file: File,
    buf: Vec<u8>,
}

/// Run blocking file work: in place on a multi-threaded runtime (so the
/// runtime's other tasks go on), directly elsewhere.
fn block<T>(f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

impl SpoolFile {
    fn new(file: File) -> SpoolFile {
        SpoolFile {
            file,
            buf: Vec::with_capacity(WRITE_BUFFER),
        }
    }

    fn write_out(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (file, buf) = (&mut self.file, &self.buf);
        block(|| file.write_all(buf))?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for SpoolFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.write_out()?;
        }
        if data.len() >= WRITE_BUFFER {
            // Large pieces go straight through.
            self.file.write_all(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out()
    }
}

/// Per-ABS accumulation on the spool directory.
pub struct Accumulator {
    spool: Spool,
    slots: Slots,
    abs_id: AbsId,
    channel_id: ChannelId,
    created_unix: u64,
    threshold: u64,
    next_seq: u32,
    open: Option<(PathBuf, SegmentWriter<SpoolFile>)>,
}

impl Accumulator {
    /// Create (or reuse) the ABS's directory in the spool. Segments are
    /// sealed once they pass `threshold` bytes.
    pub fn create(
        spool: &Spool,
        slots: &Slots,
        abs_id: AbsId,
        channel_id: ChannelId,
        created_unix: u64,
        threshold: u64,
    ) -> Result<Self> {
        let dir = spool.abs_dir(abs_id);
        fs::create_dir_all(&dir).with_context(|| format!("creating accumulation directory {}", dir.display()))?;
        Ok(Accumulator {
            spool: spool.clone(),
            slots: slots.clone(),
            abs_id,
            channel_id,
            created_unix,
            threshold: threshold.max(1),
            next_seq: 0,
            open: None,
        })
    }

    pub fn dir(&self) -> PathBuf {
        self.spool.abs_dir(self.abs_id)
    }

    /// The segment being written, opened if none is.
    fn writer(&mut self) -> Result<&mut SegmentWriter<SpoolFile>> {
        if self.open.is_none() {
            let seq = self.next_seq;
            let path = self.spool.open_segment(self.abs_id, SegmentSeq::new(seq));
            let file = self
                .slots
                .create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let header = SegmentHeader {
                abs_id: self.abs_id.get(),
                seq,
                channel_id: self.channel_id.get(),
                created_unix: self.created_unix,
            };
            let writer = SegmentWriter::new(SpoolFile::new(file), header)?;
            self.open = Some((path, writer));
            self.next_seq += 1;
        }
        match self.open.as_mut() {
            Some((_, w)) => Ok(w),
            None => anyhow::bail!("no open segment"),
        }
    }

    /// Append one whole track (its data checksum `crc32c` known, or
    /// computed here); returns a sealed segment when the threshold was
    /// passed.
    pub fn append(
        &mut self,
        addr: TrackAddr,
        data: &[u8],
        crc32c: Option<u32>,
        frames: u64,
    ) -> Result<Option<SealedSegment>> {
        let w = self.writer()?;
        match crc32c {
            Some(crc) => w.append_track_with_crc(addr, data, crc)?,
            None => w.append_track(addr, data)?,
        }
        self.maybe_seal(frames)
    }

    /// Start a track whose bytes follow ([`Accumulator::track_data`]);
    /// `crc32c` is what its sender declared, checked at the end.
    pub fn begin_track(&mut self, addr: TrackAddr, len: u32, crc32c: u32) -> Result<()> {
        self.writer()?.begin_track(addr, len, crc32c)?;
        Ok(())
    }

    /// The next bytes of the track begun.
    pub fn track_data(&mut self, chunk: &[u8]) -> Result<()> {
        match self.open.as_mut() {
            Some((_, w)) => Ok(w.track_data(chunk)?),
            None => anyhow::bail!("track data with no open segment"),
        }
    }

    /// End the track begun (its checksum is checked); returns a sealed
    /// segment when the threshold was passed. `frames`: track frames of the
    /// input consumed so far.
    pub fn end_track(&mut self, frames: u64) -> Result<Option<SealedSegment>> {
        match self.open.as_mut() {
            Some((_, w)) => w.end_track()?,
            None => anyhow::bail!("the end of a track with no open segment"),
        }
        self.maybe_seal(frames)
    }

    fn maybe_seal(&mut self, frames: u64) -> Result<Option<SealedSegment>> {
        let full = self
            .open
            .as_ref()
            .is_some_and(|(_, w)| w.bytes_written() >= self.threshold);
        if full {
            return self.seal(frames);
        }
        Ok(None)
    }

    /// Seal the open segment, if it has any track.
    pub fn seal(&mut self, frames: u64) -> Result<Option<SealedSegment>> {
        let Some((path, writer)) = self.open.take() else {
            return Ok(None);
        };
        let (out, summary) = writer.finish()?;
        // A reused spool file may be longer than this segment.
        Slots::finish(&out.file, summary.total_bytes).with_context(|| format!("sealing {}", path.display()))?;
        let sealed = self
            .spool
            .sealed_segment(self.abs_id, SegmentSeq::new(summary.header.seq));
        fs::rename(&path, &sealed).with_context(|| format!("sealing {}", path.display()))?;
        // The journal says what a restart may resume from.
        let entry = JournalEntry {
            seq: summary.header.seq,
            frames_through: frames,
            track_count: summary.track_count,
            data_bytes: summary.data_bytes,
            total_bytes: summary.total_bytes,
            crc32c: summary.crc32c,
        };
        block(|| journal_sealed(&self.spool, self.abs_id, &entry))?;
        Ok(Some(SealedSegment {
            path: sealed,
            summary,
            frames_through: frames,
        }))
    }

    /// Continue a resumed ABS: the next segment is `next_seq` (the ones
    /// before are sealed).
    pub fn resume_at(&mut self, next_seq: u32) {
        self.next_seq = next_seq;
    }

    /// Segments sealed or open so far.
    pub fn segments(&self) -> u32 {
        self.next_seq
    }

    /// Remove the accumulation directory at the end of a channel (its
    /// segments are gone; its channel file and journal go with it).
    pub fn remove_dir(&self) {
        let _ = fs::remove_file(self.spool.journal(self.abs_id));
        let _ = fs::remove_file(self.spool.channel_file(self.abs_id));
        let _ = fs::remove_dir(self.dir());
    }
}

/// Whether a directory is empty (or gone).
pub fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_at_threshold_and_keeps_every_track() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let slots = spool.front_end_slots().unwrap();
        let mut acc = Accumulator::create(&spool, &slots, AbsId::new(7), ChannelId::new(3), 0, 200_000).unwrap();
        let mut sealed = Vec::new();
        for t in 0..10u64 {
            let data = vec![t as u8; 65536];
            let addr = TrackAddr { volume: 0, track: t };
            // Even tracks whole, odd ones streamed in pieces.
            let s = if t % 2 == 0 {
                acc.append(addr, &data, None, t + 1).unwrap()
            } else {
                acc.begin_track(addr, 65536, crc32c::crc32c(&data)).unwrap();
                for piece in data.chunks(1000) {
                    acc.track_data(piece).unwrap();
                }
                acc.end_track(t + 1).unwrap()
            };
            sealed.extend(s);
        }
        sealed.extend(acc.seal(10).unwrap());
        let mut tracks = 0;
        let mut per_segment: Vec<(usize, u64)> = Vec::new();
        for (i, s) in sealed.iter().enumerate() {
            let bytes = fs::read(&s.path).unwrap();
            let seg = proto::tape::segment::parse(&bytes).unwrap();
            assert_eq!(seg.summary, s.summary);
            assert_eq!(seg.summary.header.seq as usize, i);
            assert_eq!(seg.summary.header.abs_id, 7);
            for tr in &seg.tracks {
                assert_eq!(tr.data, vec![tr.addr.track as u8; 65536]);
            }
            tracks += seg.tracks.len();
            per_segment.push((seg.tracks.len(), s.frames_through));
            assert!(
                !s.path.with_extension("open").exists(),
                "a sealed segment leaves no open file"
            );
            assert_eq!(s.path, spool.sealed_segment(AbsId::new(7), SegmentSeq::new(i as u32)));
        }
        assert_eq!(tracks, 10);
        // 3 tracks with their headers stay under 200 000 bytes; the 4th passes it.
        assert_eq!(per_segment, [(4, 4), (4, 8), (2, 10)]);
    }

    #[test]
    fn a_streamed_track_with_a_wrong_checksum_fails_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let slots = spool.front_end_slots().unwrap();
        let mut acc = Accumulator::create(&spool, &slots, AbsId::new(1), ChannelId::new(1), 0, 1 << 20).unwrap();
        acc.begin_track(TrackAddr { volume: 0, track: 0 }, 3, crc32c::crc32c(b"abc"))
            .unwrap();
        acc.track_data(b"abd").unwrap();
        let e = acc.end_track(1).unwrap_err();
        assert!(format!("{e:#}").contains("checksum"), "{e:#}");
    }
}
