//! One ABS being written: its tracks (from a primary node, or read back
//! from tape for a synthetic full) accumulated into the ABS's accumulation
//! file, sealed segments handed to the back-end and released only when on
//! tape and in the catalog, then the ABS metadata.
//!
//! ```text
//!            ┌──────── Arc<Mutex<Release>> (the ABS's release protocol) ────────┐
//!  tracks ─► Accumulator: Received → Durable → Sealed ─queue─► upload::run: OnTape → InCatalog → Released
//!                                                                 └─ Ack(n) ─► on_tape ─► primary node
//!  finish: every segment Released ─► metadata ─► RemoveAbs(Finished)
//!  dropped unfinished ─► RemoveAbs(Abandoned)
//! ```
//!
//! The first copy of a track is kept; later copies are ignored (a
//! redelivered track, or an older version of a track while merging a chain
//! newest first).

use proto::domain::AbsId;
use proto::num::to_usize;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::TrackAddr;
use proto::tape::metadata::{AbsKind, AbsMetadata};
use proto::wire::{BackEndReply, BackEndRequest, BackupChannel, StationReply, StationRequest, MAX_CONTROL_FRAME};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use super::accumulator::{Accumulator, SealedSegment};
use super::context::FrontEnd;
use super::index::TrackIndex;
use super::release::{Effect, Release};
use super::resume::ResumePlan;
use super::store::{block, execute, lock, Spool};
use super::upload::{self, Queued, Uploaded};

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
    /// Appended.
    Added,
    /// Appended, and a segment was sealed: hand it on with
    /// [`AbsWriter::queue`].
    Sealed(SealedSegment),
}

pub struct AbsWriter {
    fe: Arc<FrontEnd>,
    ch: BackupChannel,
    index: TrackIndex,
    spool: Arc<dyn Spool>,
    core: Arc<Mutex<Release>>,
    acc: Accumulator,
    seg_tx: Option<mpsc::Sender<Queued>>,
    /// Sealed segments the spool may hold for this ABS.
    spool_slots: Arc<Semaphore>,
    uploader: Option<JoinHandle<Result<Uploaded>>>,
    on_tape: watch::Receiver<u64>,
    /// Track frames consumed (duplicates included).
    frames: u64,
    /// The track being streamed in: (address, length).
    current: Option<(TrackAddr, u32)>,
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
                abs = %self.ch.abs_id,
                channel = %self.ch.channel_id,
                "discarding the spool of an unfinished ABS"
            );
            let fx = match lock(&self.core) {
                Ok(mut core) => core.abandon(),
                Err(_) => Vec::new(),
            };
            if let Err(e) = execute(self.spool.as_ref(), &self.core, fx) {
                tracing::warn!(abs = %self.ch.abs_id, error = %e, "could not discard the spool of an unfinished ABS");
            }
        }
    }
}

impl AbsWriter {
    /// Create the accumulation file and start the segment uploads. The
    /// channel's `track_set` is what the ABS must hold in the end.
    /// `window`: the most tracks the source keeps unacknowledged (a
    /// primary node's request queue), or None when the source does not
    /// wait for acknowledgements; segments are sealed small enough that
    /// the window always covers the open one and a full spool.
    pub fn open(fe: &Arc<FrontEnd>, ch: &BackupChannel, window: Option<u64>) -> Result<AbsWriter> {
        let (w, _) = Self::start(fe, ch, window, Release::new(ch.abs_id), Vec::new())?;
        Ok(w)
    }

    /// Continue an ABS a restarted front-end kept in its spool (see
    /// [`super::resume`]): the first `plan.frames` track frames are in its
    /// segments (the source sends the rest), the placed segments are in the
    /// catalog (their files released, their tracks acknowledged), and the
    /// sealed segments returned must be queued again.
    pub fn resume(
        fe: &Arc<FrontEnd>,
        ch: &BackupChannel,
        window: Option<u64>,
        plan: &ResumePlan,
    ) -> Result<(AbsWriter, Vec<SealedSegment>)> {
        let (core, fx) = Release::resume(ch.abs_id, plan);
        let (mut w, requeue) = Self::start(fe, ch, window, core, fx)?;
        // A primary node sends its track set in order: the first frames
        // are its first tracks.
        for addr in ch.track_set.iter().take(to_usize(plan.frames)) {
            w.index.mark(addr).map_err(|e| anyhow!(e))?;
        }
        let (tracks, bytes) = plan.kept();
        if tracks > w.index.len() {
            bail!("the spool holds {tracks} tracks of a track set of {}", w.index.len());
        }
        w.frames = tracks;
        w.received = tracks;
        w.data_bytes = bytes;
        Ok((w, requeue))
    }

    /// Start the ABS with its release protocol `core` and the `effects`
    /// the core asked for so far (a resume's); returns the segments to
    /// upload among them.
    fn start(
        fe: &Arc<FrontEnd>,
        ch: &BackupChannel,
        window: Option<u64>,
        core: Release,
        effects: Vec<Effect>,
    ) -> Result<(AbsWriter, Vec<SealedSegment>)> {
        ch.map.validate().context("the channel's ABS map is invalid")?;
        let slots = fe.sealing.spool_segments.max(1);
        let threshold = match window {
            Some(w) => {
                let track = ch
                    .map
                    .volumes
                    .iter()
                    .map(|v| u64::from(v.geometry.track_size))
                    .max()
                    .unwrap_or(1);
                let fits = w.saturating_mul(track) / (slots as u64 + 2);
                fe.sealing.segment_size.min(fits).max(1)
            }
            None => fe.sealing.segment_size,
        };
        if threshold < fe.sealing.segment_size {
            tracing::info!(
                channel = %ch.channel_id,
                threshold,
                window,
                "sealing segments smaller than --segment-size to fit the source's window"
            );
        }
        let spool = fe.segment_spool();
        let core = Arc::new(Mutex::new(core));
        let (on_tape_tx, on_tape) = watch::channel(0u64);
        let mut requeue = Vec::new();
        for fx in block(|| execute(spool.as_ref(), &core, effects))? {
            match fx {
                Effect::Upload(seg) => requeue.push(seg),
                Effect::Ack(point) => {
                    let _ = on_tape_tx.send(point.tracks());
                }
                other => bail!("unexpected effect resuming ABS {}: {other:?}", ch.abs_id),
            }
        }
        let acc = Accumulator::create(spool.clone(), core.clone(), ch.channel_id, ch.created_unix, threshold)?;
        // Segments go to the back-end as they are sealed; when the spool
        // holds `spool_segments` sealed segments of this ABS, accumulation
        // waits (and so does the source), it does not fail.
        let (seg_tx, seg_rx) = mpsc::channel::<Queued>(slots);
        let uploader = tokio::spawn(upload::run(
            fe.clone(),
            ch.clone(),
            spool.clone(),
            core.clone(),
            seg_rx,
            on_tape_tx,
        ));
        let w = AbsWriter {
            fe: fe.clone(),
            ch: ch.clone(),
            index: TrackIndex::new(&ch.track_set),
            spool,
            core,
            acc,
            seg_tx: Some(seg_tx),
            spool_slots: Arc::new(Semaphore::new(slots)),
            uploader: Some(uploader),
            on_tape,
            frames: 0,
            current: None,
            received: 0,
            data_bytes: 0,
            finished: false,
        };
        Ok((w, requeue))
    }

    /// Tracks appended so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Track frames consumed so far (duplicates included).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Tracks the ABS must hold.
    pub fn expected(&self) -> u64 {
        self.index.len()
    }

    /// How many of the first track frames are on tape and in the catalog.
    pub fn on_tape(&self) -> watch::Receiver<u64> {
        self.on_tape.clone()
    }

    /// Check a track against the map and the track set; false if a copy of
    /// it is already in the ABS.
    fn admit(&mut self, addr: TrackAddr, len: u64) -> Result<bool> {
        self.frames += 1;
        let (_, want) = self
            .ch
            .map
            .track_extent(addr)
            .map_err(|e| anyhow!("track {addr:?}: {e}"))?;
        if len != want {
            bail!("track {addr:?} has {len} bytes, the map says {want}");
        }
        self.index.mark(addr).map_err(|e| anyhow!(e))
    }

    /// Append one whole track (`crc32c`: its data checksum if known).
    pub fn append(&mut self, addr: TrackAddr, data: &[u8], crc32c: Option<u32>) -> Result<Appended> {
        if !self.admit(addr, data.len() as u64)? {
            return Ok(Appended::Duplicate);
        }
        let sealed = self.acc.append(addr, data, crc32c, self.frames)?;
        self.count(data.len() as u64);
        Ok(match sealed {
            Some(s) => Appended::Sealed(s),
            None => Appended::Added,
        })
    }

    /// Start a track whose `len` bytes follow ([`AbsWriter::track_data`]),
    /// with the CRC32C its sender declared. Returns false for a copy of a
    /// track already in the ABS: the caller skips its bytes.
    pub fn begin_track(&mut self, addr: TrackAddr, len: u32, crc32c: u32) -> Result<bool> {
        if let Some((open, _)) = self.current {
            bail!("track {addr:?} began before track {open:?} ended");
        }
        if !self.admit(addr, u64::from(len))? {
            return Ok(false);
        }
        self.acc.begin_track(addr, len, crc32c)?;
        self.current = Some((addr, len));
        Ok(true)
    }

    /// The next bytes of the track begun.
    pub fn track_data(&mut self, chunk: &[u8]) -> Result<()> {
        self.acc.track_data(chunk)
    }

    /// End the track begun (its checksum is checked); a sealed segment
    /// when the threshold was passed.
    pub fn end_track(&mut self) -> Result<Option<SealedSegment>> {
        let (addr, len) = self.current.take().ok_or_else(|| anyhow!("no track to end"))?;
        let sealed = self
            .acc
            .end_track(self.frames)
            .with_context(|| format!("track {addr:?}"))?;
        self.count(u64::from(len));
        Ok(sealed)
    }

    fn count(&mut self, len: u64) {
        self.received += 1;
        self.data_bytes += len;
        metrics::counter!("dmc_fe_tracks_received_total").increment(1);
    }

    /// Hand a sealed segment to the uploads (waits while the spool is full).
    pub async fn queue(&mut self, s: SealedSegment) -> Result<()> {
        let slot = self
            .spool_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| anyhow!("the spool slots are closed"))?;
        let sent = match &self.seg_tx {
            Some(tx) => tx.send((s, slot)).await.is_ok(),
            None => false,
        };
        if !sent || self.uploader.as_ref().is_none_or(|u| u.is_finished()) {
            // The uploads' error is the real cause.
            self.seg_tx = None;
            if let Some(u) = self.uploader.take() {
                u.await
                    .context("segment uploads")?
                    .context("sending segments to the back-end")?;
            }
            bail!("the segment uploads stopped");
        }
        Ok(())
    }

    /// Seal the last segment and queue it (the end of the input).
    pub async fn seal_last(&mut self) -> Result<()> {
        if let Some(s) = self.acc.seal(self.frames)? {
            self.queue(s).await?;
        }
        Ok(())
    }

    /// Every track is in: wait for the segments to be on tape, write the
    /// ABS metadata after the last one, remove the accumulation directory
    /// and report the channel finished to the station.
    pub async fn finish(mut self) -> Result<Totals> {
        self.seal_last().await?;
        self.seg_tx = None;
        let uploader = self
            .uploader
            .take()
            .ok_or_else(|| anyhow!("the segment uploads stopped"))?;
        let uploaded = uploader
            .await
            .context("segment uploads")?
            .context("sending segments to the back-end")?;
        if self.received != self.index.len() {
            bail!("only {} of {} tracks arrived", self.received, self.index.len());
        }
        let ch = &self.ch;
        let totals = Totals {
            tracks: self.received,
            data_bytes: self.data_bytes,
            segments: uploaded.segments,
        };
        let differential = ch.base_abs_id.is_some();
        // Every segment is in the catalog now: the station's management
        // record places them all (seed 002: the ABS describes itself).
        let management = match self
            .fe
            .link
            .request(&StationRequest::ManagementRecord {
                channel_id: ch.channel_id,
            })
            .await
            .context("asking the station for the ABS's management record")?
        {
            StationReply::Management(m) => m,
            StationReply::Error(f) => {
                return Err(anyhow::Error::new(f).context("the station refused the ABS's management record"))
            }
            other => bail!("expected the ABS's management record from the station, got {other:?}"),
        };
        if management.placements.len() != usize::try_from(totals.segments).unwrap_or(usize::MAX) {
            bail!(
                "the station places {} segments of ABS {}, the front-end wrote {}",
                management.placements.len(),
                ch.abs_id,
                totals.segments
            );
        }
        // Metadata after the last segment, on the tape of the last segment.
        let meta = AbsMetadata {
            abs_id: ch.abs_id.get(),
            object_name: ch.object_name.clone(),
            kind: if differential {
                AbsKind::Differential
            } else {
                AbsKind::Full
            },
            base_abs_id: ch.base_abs_id.map_or(0, AbsId::get),
            merged_from_abs_id: ch.merged_from_abs_id.map_or(0, AbsId::get),
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
            management: Some(management),
        };
        meta.validate().context("the ABS metadata")?;
        let fe = &self.fe;
        let conn = fe.back_end(&ch.back_end).await?;
        let (mut bs, mut br) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
        bs.send(&BackEndRequest::WriteMetadata {
            channel_id: ch.channel_id,
            drive: uploaded.last_drive,
            object_name: ch.object_name.clone(),
            abs_id: ch.abs_id,
            metadata: meta.encode(),
        })
        .await?;
        bs.finish().await?;
        match br.recv::<BackEndReply>().await? {
            Some(BackEndReply::Placed { .. }) => {}
            Some(BackEndReply::Error(failure)) => {
                return Err(anyhow::Error::new(failure).context("the back-end could not write the ABS metadata"))
            }
            Some(other) => bail!("unexpected answer to the ABS metadata: {other:?}"),
            None => bail!("the back-end closed the stream without placing the metadata"),
        }
        // Every segment is released: the ABS's directory goes.
        let fx = lock(&self.core)?.finish()?;
        let left = block(|| execute(self.spool.as_ref(), &self.core, fx))?;
        if !left.is_empty() {
            bail!("unexpected effects finishing ABS {}: {left:?}", ch.abs_id);
        }
        self.finished = true;
        fe.link
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
