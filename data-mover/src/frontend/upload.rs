//! Sealed segments to tape: each one handed to the back-end (announced in
//! the shared spool, or sent over QUIC), deleted only when the back-end
//! says it is on tape, synced, and in the catalog; several in flight at
//! once, so the drive always has the next one while the front-end
//! accumulates the one after.
//!
//! The uploads report how far the input is safe on tape: the track frames
//! consumed up to the end of the last segment of an unbroken run of placed
//! segments (0, 1, 2, … in sequence order), which is what the primary node
//! may drop from its request queue.

use proto::domain::{ChannelId, SegmentSeq};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::wire::{BackEndReply, BackEndRequest, BackupChannel, StationRequest, MAX_CONTROL_FRAME};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use super::accumulator::SealedSegment;
use super::pairing::{data_path, report_data_path};
use crate::mover::{Mover, CHUNK};

/// A sealed segment and its place in the spool (released when it is gone).
pub type Queued = (SealedSegment, OwnedSemaphorePermit);

/// What the uploads of an ABS did.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub segments: u32,
    /// The drive that wrote the highest sequence number (the ABS's
    /// metadata goes after it).
    pub last_drive: String,
}

/// What an ABS resumed after a front-end restart already has on tape.
#[derive(Debug, Clone, Default)]
pub struct Resumed {
    /// Segments on tape and in the catalog: (seq, frames through, data bytes).
    pub placed: Vec<(u32, u64, u64)>,
}

/// Upload every segment that comes through `rx` until it closes; report
/// on `on_tape` the frames that are safe on tape. Fails on the first
/// segment the back-end refuses.
pub async fn run(
    mover: Arc<Mover>,
    ch: BackupChannel,
    mut rx: mpsc::Receiver<Queued>,
    on_tape: watch::Sender<u64>,
    resumed: Resumed,
) -> Result<Uploaded> {
    if ch.drives.is_empty() {
        bail!("backup channel {} names no drive", ch.channel_id);
    }
    let progress = progress_reporter(mover.clone(), ch.channel_id);
    let conn = mover.back_end(&ch.back_end).await?;
    report_data_path(&mover, ch.channel_id, &data_path(&mover, &ch.back_end, &conn).await?);
    let mut in_flight: HashMap<String, usize> = ch.drives.iter().map(|d| (d.clone(), 0)).collect();
    let mut tasks: JoinSet<Result<(u32, u64, u64, String)>> = JoinSet::new();
    let mut placed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut next_seq = 0u32;
    let mut segments = 0u32;
    let mut bytes_on_tape = 0u64;
    let mut top: Option<(u32, String)> = None;
    let mut closed = false;
    for (seq, frames, data_bytes) in resumed.placed {
        placed.insert(seq, frames);
        segments += 1;
        bytes_on_tape += data_bytes;
    }
    while let Some(frames) = placed.remove(&next_seq) {
        let _ = on_tape.send(frames);
        next_seq += 1;
    }
    loop {
        if closed && tasks.is_empty() {
            break;
        }
        tokio::select! {
            item = rx.recv(), if !closed => match item {
                None => closed = true,
                Some((seg, slot)) => {
                    // The drive with the fewest segments in flight.
                    let drive = ch
                        .drives
                        .iter()
                        .min_by_key(|d| in_flight.get(*d).copied().unwrap_or(0))
                        .cloned()
                        .ok_or_else(|| anyhow!("no drive"))?;
                    *in_flight.entry(drive.clone()).or_default() += 1;
                    let (m, c) = (mover.clone(), ch.clone());
                    tasks.spawn(async move {
                        let seq = seg.summary.header.seq;
                        upload(&m, &c, &drive, &seg).await?;
                        // Released: on tape, synced, in the catalog. The file
                        // is kept to be written over by a later segment.
                        m.fe_slots.release(&seg.path);
                        drop(slot);
                        metrics::counter!("dmc_fe_segments_released_total").increment(1);
                        Ok((seq, seg.frames_through, seg.summary.data_bytes, drive))
                    });
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                // Returning early drops the set, which stops the other uploads.
                let (seq, frames, data_bytes, drive) = joined.context("segment upload task")??;
                if let Some(n) = in_flight.get_mut(&drive) {
                    *n = n.saturating_sub(1);
                }
                segments += 1;
                bytes_on_tape += data_bytes;
                let _ = progress.send(bytes_on_tape);
                if top.as_ref().is_none_or(|(s, _)| seq > *s) {
                    top = Some((seq, drive));
                }
                placed.insert(seq, frames);
                while let Some(frames) = placed.remove(&next_seq) {
                    let _ = on_tape.send(frames);
                    next_seq += 1;
                }
            }
        }
    }
    let last_drive = top.map(|(_, d)| d).unwrap_or_else(|| ch.drives[0].clone());
    Ok(Uploaded { segments, last_drive })
}

/// Report a channel's bytes on tape to the station, at most one request at
/// a time, never holding up the uploads.
fn progress_reporter(mover: Arc<Mover>, channel_id: ChannelId) -> watch::Sender<u64> {
    let (tx, mut rx) = watch::channel(0u64);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let bytes = *rx.borrow_and_update();
            let _ = mover
                .link
                .request_ok(&StationRequest::ChannelProgress {
                    channel_id,
                    bytes,
                    tracks: 0,
                })
                .await;
        }
    });
    tx
}

/// Hand one sealed segment to the back-end's `drive` and wait until it is
/// on tape, synced, and in the catalog.
async fn upload(mover: &Mover, ch: &BackupChannel, drive: &str, seg: &SealedSegment) -> Result<()> {
    let seq = seg.summary.header.seq;
    let conn = mover.back_end(&ch.back_end).await?;
    let path = data_path(mover, &ch.back_end, &conn).await?;
    let (mut bs, mut br) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
    let total = seg.summary.total_bytes;
    bs.send(&BackEndRequest::WriteSegment {
        channel_id: ch.channel_id,
        drive: drive.to_string(),
        object_name: ch.object_name.clone(),
        abs_id: ch.abs_id,
        seq: SegmentSeq::new(seq),
        bytes: total,
        crc32c: seg.summary.crc32c,
        shared: path.shared(),
    })
    .await?;
    if !path.shared() {
        send_file(mover, &mut bs, seg, total).await?;
    }
    bs.finish().await?;
    match br.recv::<BackEndReply>().await? {
        Some(BackEndReply::Placed { tape_label, tape_file }) => {
            tracing::debug!(abs = %ch.abs_id, %seq, %drive, %tape_label, tape_file, "segment on tape");
            Ok(())
        }
        Some(BackEndReply::Error(failure)) => {
            Err(anyhow::Error::new(failure).context(format!("the back-end refused segment {seq} of ABS {}", ch.abs_id)))
        }
        Some(other) => bail!("unexpected answer to segment {seq}: {other:?}"),
        None => bail!("the back-end closed the stream without placing segment {seq}"),
    }
}

/// Send a sealed segment's bytes raw, read in pooled pieces.
async fn send_file(mover: &Mover, bs: &mut transport::FramedSend, seg: &SealedSegment, total: u64) -> Result<()> {
    let mut file = std::fs::File::open(&seg.path).with_context(|| format!("opening {}", seg.path.display()))?;
    let mut sent = 0u64;
    while sent < total {
        let want = CHUNK.min((total - sent) as usize);
        let mut buf = mover.chunks.take(want);
        tokio::task::block_in_place(|| file.read_exact(buf.as_mut_slice()))
            .with_context(|| format!("reading {}", seg.path.display()))?;
        bs.send_raw(buf.freeze()).await?;
        sent += want as u64;
    }
    Ok(())
}
