//! The accumulation file of one ABS on the front-end's spool directory.
//!
//! Tracks are appended, in arrival order, as track records of the open
//! segment `abs-<id>/seg-<seq>.open`. [`Accumulator::sync`] makes everything
//! appended so far durable (the front-end acknowledges tracks to the primary
//! node only after it). When the open segment passes the threshold it is
//! sealed: trailer written, synced, renamed `seg-<seq>.sealed`; a sealed
//! segment is deleted only after the back-end reports it on tape and in the
//! catalog.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use proto::abs::TrackAddr;
use proto::tape::segment::{SegmentHeader, SegmentSummary, SegmentWriter};

/// A sealed segment waiting for the back-end.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub path: PathBuf,
    pub summary: SegmentSummary,
}

/// Per-ABS accumulation on the spool directory.
pub struct Accumulator {
    dir: PathBuf,
    abs_id: u64,
    channel_id: u64,
    created_unix: u64,
    threshold: u64,
    next_seq: u32,
    open: Option<(PathBuf, SegmentWriter<BufWriter<File>>)>,
}

impl Accumulator {
    /// Create (or reuse) `spool/abs-<id>/`.
    pub fn create(spool: &Path, abs_id: u64, channel_id: u64, created_unix: u64, threshold: u64) -> Result<Self> {
        let dir = spool.join(format!("abs-{abs_id}"));
        fs::create_dir_all(&dir).with_context(|| format!("creating accumulation directory {}", dir.display()))?;
        Ok(Accumulator {
            dir,
            abs_id,
            channel_id,
            created_unix,
            threshold: threshold.max(1),
            next_seq: 0,
            open: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one track; returns a sealed segment when the threshold was passed.
    pub fn append(&mut self, addr: TrackAddr, data: &[u8]) -> Result<Option<SealedSegment>> {
        if self.open.is_none() {
            let seq = self.next_seq;
            let path = self.dir.join(format!("seg-{seq:06}.open"));
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            let header = SegmentHeader {
                abs_id: self.abs_id,
                seq,
                channel_id: self.channel_id,
                created_unix: self.created_unix,
            };
            let writer = SegmentWriter::new(BufWriter::with_capacity(1 << 20, file), header)?;
            self.open = Some((path, writer));
            self.next_seq += 1;
        }
        let Some((_, writer)) = self.open.as_mut() else {
            anyhow::bail!("no open segment");
        };
        writer.append_track(addr, data)?;
        if writer.bytes_written() >= self.threshold {
            return self.seal();
        }
        Ok(None)
    }

    /// Make every appended track durable.
    pub fn sync(&mut self) -> Result<()> {
        if let Some((path, writer)) = self.open.as_mut() {
            let w = writer.get_mut();
            w.flush().with_context(|| format!("flushing {}", path.display()))?;
            w.get_ref()
                .sync_data()
                .with_context(|| format!("syncing {}", path.display()))?;
        }
        Ok(())
    }

    /// Seal the open segment, if it has any track.
    pub fn seal(&mut self) -> Result<Option<SealedSegment>> {
        let Some((path, writer)) = self.open.take() else {
            return Ok(None);
        };
        let (buf, summary) = writer.finish()?;
        let file = buf
            .into_inner()
            .map_err(|e| anyhow::anyhow!("flushing {}: {}", path.display(), e.error()))?;
        file.sync_all().with_context(|| format!("syncing {}", path.display()))?;
        let sealed = path.with_extension("sealed");
        fs::rename(&path, &sealed).with_context(|| format!("sealing {}", path.display()))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", self.dir.display()))?;
        Ok(Some(SealedSegment { path: sealed, summary }))
    }

    /// Segments sealed or open so far.
    pub fn segments(&self) -> u32 {
        self.next_seq
    }

    /// Remove the (empty) accumulation directory at the end of a channel.
    pub fn remove_dir(&self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_at_threshold_and_keeps_every_track() {
        let dir = tempfile::tempdir().unwrap();
        let mut acc = Accumulator::create(dir.path(), 7, 3, 0, 200_000).unwrap();
        let mut sealed = Vec::new();
        for t in 0..10u64 {
            let data = vec![t as u8; 65536];
            if let Some(s) = acc.append(TrackAddr { volume: 0, track: t }, &data).unwrap() {
                sealed.push(s);
            }
        }
        acc.sync().unwrap();
        if let Some(s) = acc.seal().unwrap() {
            sealed.push(s);
        }
        let mut tracks = 0;
        let mut per_segment: Vec<usize> = Vec::new();
        for (i, s) in sealed.iter().enumerate() {
            let bytes = fs::read(&s.path).unwrap();
            let seg = proto::tape::segment::parse(&bytes).unwrap();
            assert_eq!(seg.summary.header.seq as usize, i);
            assert_eq!(seg.summary.header.abs_id, 7);
            for tr in &seg.tracks {
                assert_eq!(tr.data, vec![tr.addr.track as u8; 65536]);
            }
            tracks += seg.tracks.len();
            per_segment.push(seg.tracks.len());
            assert!(
                !s.path.with_extension("open").exists(),
                "a sealed segment leaves no open file"
            );
        }
        assert_eq!(tracks, 10);
        // 3 tracks with their headers stay under 200 000 bytes; the 4th passes it.
        assert_eq!(per_segment, [4, 4, 2]);
    }
}
