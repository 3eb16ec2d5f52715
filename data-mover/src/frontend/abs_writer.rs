//! One ABS being written by a front-end: tracks in (from a primary node's
//! stream, or read back from tape for a synthetic full), accumulated into
//! the ABS's accumulation file, sealed segments handed to the back-end and
//! released only when on tape and in the catalog, then the ABS metadata.
//!
//! The first copy of a track is kept; later copies are ignored (a
//! redelivered track, or an older version of a track while merging a chain
//! newest first).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::TrackAddr;
use proto::tape::metadata::{AbsKind, AbsMetadata};
use proto::wire::{BackEndReply, BackEndRequest, BackupChannel, StationRequest, MAX_CONTROL_FRAME};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::accumulator::{Accumulator, SealedSegment};
use super::backup::upload_segments;
use super::index::TrackIndex;
use crate::mover::Mover;

/// Totals of a finished ABS.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub tracks: u64,
    pub data_bytes: u64,
    pub segments: u32,
}

/// What [`AbsWriter::append`] did with a track.
pub enum Appended {
    /// A copy of this track is already in the ABS.
    Duplicate,
    /// Appended (not yet durable).
    Added,
    /// Appended, and a segment was sealed: everything so far is durable.
    /// Hand it on with [`AbsWriter::queue`].
    Sealed(SealedSegment),
}

pub struct AbsWriter {
    mover: Arc<Mover>,
    ch: BackupChannel,
    index: TrackIndex,
    acc: Accumulator,
    seg_tx: Option<mpsc::Sender<SealedSegment>>,
    uploader: Option<JoinHandle<Result<(u32, String)>>>,
    received: u64,
    data_bytes: u64,
    /// The ABS is on tape and in the catalog: its spool is already empty.
    finished: bool,
}

impl Drop for AbsWriter {
    /// An ABS dropped unfinished failed (its channel is failed, its source
    /// still holds the data): its uploads stop and its spool is discarded,
    /// so failed backups leave nothing behind on the front-end's disk.
    fn drop(&mut self) {
        if let Some(u) = self.uploader.take() {
            u.abort();
        }
        if !self.finished {
            tracing::warn!(
                abs = self.ch.abs_id,
                channel = self.ch.channel_id,
                dir = %self.acc.dir().display(),
                "discarding the spool of an unfinished ABS"
            );
            let _ = std::fs::remove_dir_all(self.acc.dir());
        }
    }
}

impl AbsWriter {
    /// Create the accumulation file and start the segment uploaders. The
    /// channel's `track_set` is what the ABS must hold in the end.
    pub fn open(mover: &Arc<Mover>, ch: &BackupChannel) -> Result<AbsWriter> {
        ch.map.validate().context("the channel's ABS map is invalid")?;
        let acc = Accumulator::create(
            &mover.cfg.spool,
            ch.abs_id,
            ch.channel_id,
            ch.created_unix,
            mover.cfg.segment_size,
        )?;
        // Segments go to the back-end through a bounded queue: when the spool
        // holds `spool_segments` sealed segments, accumulation waits (and so
        // does the source), it does not fail.
        let (seg_tx, seg_rx) = mpsc::channel::<SealedSegment>(mover.cfg.spool_segments.max(1));
        let uploader = tokio::spawn(upload_segments(mover.clone(), ch.clone(), seg_rx));
        Ok(AbsWriter {
            mover: mover.clone(),
            ch: ch.clone(),
            index: TrackIndex::new(&ch.track_set),
            acc,
            seg_tx: Some(seg_tx),
            uploader: Some(uploader),
            received: 0,
            data_bytes: 0,
            finished: false,
        })
    }

    /// Tracks appended so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Tracks the ABS must hold.
    pub fn expected(&self) -> u64 {
        self.index.len()
    }

    /// Append one track, checked against the map and the track set.
    pub fn append(&mut self, addr: TrackAddr, data: &[u8]) -> Result<Appended> {
        let (_, len) = self
            .ch
            .map
            .track_extent(addr)
            .map_err(|e| anyhow!("track {addr:?}: {e}"))?;
        if data.len() as u64 != len {
            bail!("track {addr:?} has {} bytes, the map says {len}", data.len());
        }
        if !self.index.mark(addr).map_err(|e| anyhow!(e))? {
            return Ok(Appended::Duplicate);
        }
        let sealed = tokio::task::block_in_place(|| self.acc.append(addr, data))?;
        self.received += 1;
        self.data_bytes += data.len() as u64;
        metrics::counter!("dmc_fe_tracks_received_total").increment(1);
        Ok(match sealed {
            Some(s) => Appended::Sealed(s),
            None => Appended::Added,
        })
    }

    /// Make every appended track durable.
    pub fn sync(&mut self) -> Result<()> {
        tokio::task::block_in_place(|| self.acc.sync())
    }

    /// Hand a sealed segment to the uploaders (waits while the spool is full).
    pub async fn queue(&mut self, s: SealedSegment) -> Result<()> {
        let sent = match &self.seg_tx {
            Some(tx) => tx.send(s).await.is_ok(),
            None => false,
        };
        if !sent || self.uploader.as_ref().is_none_or(|u| u.is_finished()) {
            // The uploader's error is the real cause.
            self.seg_tx = None;
            if let Some(u) = self.uploader.take() {
                u.await
                    .context("segment uploader")?
                    .context("sending segments to the back-end")?;
            }
            bail!("the segment uploader stopped");
        }
        Ok(())
    }

    /// Seal the last segment and queue it (the end of the input).
    pub async fn seal_last(&mut self) -> Result<()> {
        if let Some(s) = tokio::task::block_in_place(|| self.acc.seal())? {
            self.queue(s).await?;
        }
        Ok(())
    }

    /// Every track is in: wait for the segments to be on tape, write the
    /// ABS metadata after the last one, remove the accumulation file and
    /// report the channel finished to the station.
    pub async fn finish(mut self) -> Result<Totals> {
        self.seal_last().await?;
        self.seg_tx = None;
        let uploader = self
            .uploader
            .take()
            .ok_or_else(|| anyhow!("the segment uploader stopped"))?;
        let (uploaded, last_drive) = uploader
            .await
            .context("segment uploader")?
            .context("sending segments to the back-end")?;
        if self.received != self.index.len() {
            bail!("only {} of {} tracks arrived", self.received, self.index.len());
        }
        let ch = &self.ch;
        let totals = Totals {
            tracks: self.received,
            data_bytes: self.data_bytes,
            segments: uploaded,
        };
        let differential = ch.base_abs_id != 0;
        // Metadata after the last segment, on the tape of the last segment.
        let meta = AbsMetadata {
            abs_id: ch.abs_id,
            object_name: ch.object_name.clone(),
            kind: if differential {
                AbsKind::Differential
            } else {
                AbsKind::Full
            },
            base_abs_id: ch.base_abs_id,
            merged_from_abs_id: ch.merged_from_abs_id,
            changed: if differential {
                ch.map.logical_ranges(&ch.track_set)
            } else {
                Vec::new()
            },
            created_unix: ch.created_unix,
            segment_count: totals.segments,
            track_count: totals.tracks,
            data_bytes: totals.data_bytes,
            map: ch.map.clone(),
        };
        meta.validate().context("the ABS metadata")?;
        let mover = &self.mover;
        let conn = mover.back_end_connection(&ch.back_end).await?;
        let (mut bs, mut br) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
        bs.send(&BackEndRequest::WriteMetadata {
            channel_id: ch.channel_id,
            drive: last_drive,
            object_name: ch.object_name.clone(),
            abs_id: ch.abs_id,
            metadata: meta.encode(),
        })
        .await?;
        bs.finish().await?;
        match br.recv::<BackEndReply>().await? {
            Some(BackEndReply::Placed { .. }) => {}
            Some(BackEndReply::Error { message }) => bail!("the back-end could not write the ABS metadata: {message}"),
            None => bail!("the back-end closed the stream without placing the metadata"),
        }
        self.acc.remove_dir();
        self.finished = true;
        mover
            .link
            .request_ok(&StationRequest::ChannelFinished {
                channel_id: ch.channel_id,
                data_bytes: totals.data_bytes,
                tracks: totals.tracks,
                segments: totals.segments,
            })
            .await
            .context("reporting the finished channel to the station")?;
        Ok(totals)
    }
}
