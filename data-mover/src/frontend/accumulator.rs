//! The accumulation file of one ABS on the front-end's spool: the
//! Received → Durable → Sealed part of the segment release protocol
//! ([`super::release`]), carried out on a [`Spool`].
//!
//! ```text
//!  track ─► (no open segment: core.open → Create) ─► write into seg-<seq>.open      Received
//!  threshold passed / end of input:
//!    trailer ─► core.seal → Sync ─► file.sync ─► core.synced                          Durable
//!            ─► Seal (rename .sealed) ─► Journal (synced line) ─► core.journaled     Sealed
//!            ─► Upload: the sealed segment is returned, for the back-end
//! ```
//!
//! Tracks are appended, in arrival order, as track records of the open
//! segment, streamed as they arrive from the network. A sealed segment is
//! freed only after the back-end reports it on tape and in the catalog
//! ([`super::upload`]).
//!
//! Segment files are not fsynced: the primary node keeps every track until
//! it is on tape, so a front-end that dies loses nothing that cannot be
//! sent again, and a segment written to tape soon after it was sealed
//! never has to reach the disk (seed FIG. 32: "still in cache"). Each seal
//! is recorded in the ABS's journal (synced, a few bytes), from which a
//! restarted front-end resumes ([`super::resume`]).

use proto::domain::{AbsId, ChannelId, SegmentSeq};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use proto::abs::TrackAddr;
use proto::tape::segment::{SegmentHeader, SegmentWriter};

use super::release::{Effect, Release};
use super::resume::JournalEntry;
use super::store::{block, execute, lock, SegmentFile, Spool};

/// A sealed segment waiting for the back-end: its journal entry
/// (`frames_through`: track frames of the input consumed up to the end of
/// this segment; the primary node's request queue can drop that many once
/// this segment and every earlier one are in the catalog).
pub type SealedSegment = JournalEntry;

/// Per-ABS accumulation on the spool.
pub struct Accumulator {
    spool: Arc<dyn Spool>,
    core: Arc<Mutex<Release>>,
    abs_id: AbsId,
    channel_id: ChannelId,
    created_unix: u64,
    threshold: u64,
    open: Option<(SegmentSeq, SegmentWriter<Box<dyn SegmentFile>>)>,
}

impl Accumulator {
    /// Accumulate the ABS of `core` on `spool`. Segments are sealed once
    /// they pass `threshold` bytes.
    pub fn create(
        spool: Arc<dyn Spool>,
        core: Arc<Mutex<Release>>,
        channel_id: ChannelId,
        created_unix: u64,
        threshold: u64,
    ) -> Result<Self> {
        let abs_id = lock(&core)?.abs_id();
        Ok(Accumulator {
            spool,
            core,
            abs_id,
            channel_id,
            created_unix,
            threshold: threshold.max(1),
            open: None,
        })
    }

    /// The segment being written, opened if none is.
    fn writer(&mut self) -> Result<&mut SegmentWriter<Box<dyn SegmentFile>>> {
        if self.open.is_none() {
            let fx = lock(&self.core)?.open()?;
            let [Effect::Create(seq)] = fx[..] else {
                bail!("unexpected effects opening a segment: {fx:?}");
            };
            let file = self.spool.create(self.abs_id, seq)?;
            let header = SegmentHeader {
                abs_id: self.abs_id.get(),
                seq: seq.get(),
                channel_id: self.channel_id.get(),
                created_unix: self.created_unix,
            };
            let writer = SegmentWriter::new(file, header)?;
            self.open = Some((seq, writer));
        }
        match self.open.as_mut() {
            Some((_, w)) => Ok(w),
            None => bail!("no open segment"),
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
            None => bail!("track data with no open segment"),
        }
    }

    /// End the track begun (its checksum is checked); returns a sealed
    /// segment when the threshold was passed. `frames`: track frames of the
    /// input consumed so far.
    pub fn end_track(&mut self, frames: u64) -> Result<Option<SealedSegment>> {
        match self.open.as_mut() {
            Some((_, w)) => w.end_track()?,
            None => bail!("the end of a track with no open segment"),
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

    /// Seal the open segment, if it has any track: synced, renamed,
    /// journaled; the segment is returned for the back-end.
    pub fn seal(&mut self, frames: u64) -> Result<Option<SealedSegment>> {
        let Some((seq, writer)) = self.open.take() else {
            return Ok(None);
        };
        let (mut file, summary) = writer.finish()?;
        let fx = lock(&self.core)?.seal(&summary, frames)?;
        if fx[..] != [Effect::Sync(seq)] {
            bail!("unexpected effects sealing segment {seq}: {fx:?}");
        }
        block(|| -> Result<Option<SealedSegment>> {
            file.sync(summary.total_bytes)?;
            drop(file);
            let fx = lock(&self.core)?.synced(seq)?;
            let left = execute(self.spool.as_ref(), &self.core, fx)?;
            match left[..] {
                [Effect::Upload(entry)] => Ok(Some(entry)),
                _ => Err(anyhow!("unexpected effects sealing segment {seq}: {left:?}")),
            }
        })
    }

    /// Segments sealed or open so far.
    pub fn segments(&self) -> Result<u32> {
        Ok(lock(&self.core)?.next_seq().get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::mem_spool::MemSpool;
    use crate::frontend::release::Stage;
    use crate::frontend::store::FileSpool;
    use crate::spool::SpoolDir;
    use std::io::Read;

    fn accumulator(spool: Arc<dyn Spool>, abs: u64, threshold: u64) -> (Accumulator, Arc<Mutex<Release>>) {
        let core = Arc::new(Mutex::new(Release::new(AbsId::new(abs))));
        let acc = Accumulator::create(spool, core.clone(), ChannelId::new(3), 0, threshold).unwrap();
        (acc, core)
    }

    #[test]
    fn seals_at_threshold_and_keeps_every_track() {
        let dir = tempfile::tempdir().unwrap();
        let sd = SpoolDir::new(dir.path());
        let spool = Arc::new(FileSpool::new(sd.clone(), sd.front_end_slots().unwrap()));
        let (mut acc, core) = accumulator(spool.clone(), 7, 200_000);
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
            let path = sd.sealed_segment(AbsId::new(7), SegmentSeq::new(i as u32));
            assert_eq!(s.seq.get() as usize, i);
            let bytes = std::fs::read(&path).unwrap();
            let seg = proto::tape::segment::parse(&bytes).unwrap();
            assert_eq!(
                (seg.summary.track_count, seg.summary.total_bytes, seg.summary.crc32c),
                (s.track_count, s.total_bytes, s.crc32c)
            );
            assert_eq!(seg.summary.header.abs_id, 7);
            for tr in &seg.tracks {
                assert_eq!(tr.data, vec![tr.addr.track as u8; 65536]);
            }
            tracks += seg.tracks.len();
            per_segment.push((seg.tracks.len(), s.frames_through));
            assert!(
                !path.with_extension("open").exists(),
                "a sealed segment leaves no open file"
            );
            assert_eq!(core.lock().unwrap().stage(s.seq), Some(Stage::Sealed));
        }
        assert_eq!(tracks, 10);
        // 3 tracks with their headers stay under 200 000 bytes; the 4th passes it.
        assert_eq!(per_segment, [(4, 4), (4, 8), (2, 10)]);
        // One journal line per seal, in order.
        assert_eq!(spool.read_journal(AbsId::new(7)), sealed);
        assert_eq!(acc.segments().unwrap(), 3);
    }

    #[test]
    fn the_same_segments_on_the_memory_spool() {
        let spool = MemSpool::new();
        let (mut acc, _core) = accumulator(Arc::new(spool.clone()), 2, 300);
        let mut sealed = Vec::new();
        for t in 0..7u64 {
            sealed.extend(
                acc.append(TrackAddr { volume: 0, track: t }, &[t as u8; 100], None, t + 1)
                    .unwrap(),
            );
        }
        sealed.extend(acc.seal(7).unwrap());
        assert_eq!(spool.read_journal(AbsId::new(2)), sealed);
        for s in &sealed {
            let (len, mut r) = spool.open_sealed(AbsId::new(2), s.seq).unwrap();
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes).unwrap();
            assert_eq!(len, s.total_bytes);
            assert!(crate::frontend::resume::verify_sealed(&spool, AbsId::new(2), s));
        }
        assert!(spool.names().iter().all(|n| !n.ends_with(".open")));
    }

    #[test]
    fn a_streamed_track_with_a_wrong_checksum_fails_the_segment() {
        let (mut acc, _core) = accumulator(Arc::new(MemSpool::new()), 1, 1 << 20);
        acc.begin_track(TrackAddr { volume: 0, track: 0 }, 3, crc32c::crc32c(b"abc"))
            .unwrap();
        acc.track_data(b"abd").unwrap();
        let e = acc.end_track(1).unwrap_err();
        assert!(format!("{e:#}").contains("checksum"), "{e:#}");
    }
}
