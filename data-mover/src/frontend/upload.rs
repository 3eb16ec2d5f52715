//! Sealed segments to tape: the Sealed → OnTape → InCatalog → Released
//! part of the segment release protocol ([`super::release`]).
//!
//! ```text
//!  Upload(seg) ─► WriteSegment to the back-end (announced in the shared spool, or sent over QUIC)
//!              ◄─ Placed: on tape, synced, in the catalog ─► core.placed
//!                   ─► Release(permit): the spool file freed (kept to be written over)
//!                   ─► Ack(n): the primary node may drop its first n track frames
//!              ◄─ Error ─► core.upload_failed: the segment stays sealed; the ABS fails
//! ```
//!
//! Several segments are in flight at once, so the drive always has the
//! next one while the front-end accumulates the one after. Completions
//! come in any order; the core acknowledges only the unbroken run of
//! placed segments 0, 1, 2, …, and the acknowledgements leave from this
//! one task, in order.

use proto::domain::ChannelId;
use proto::num::at_most;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use proto::wire::{BackEndReply, BackEndRequest, BackupChannel, StationRequest, MAX_CONTROL_FRAME};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use transport::link::StationLink;

use super::accumulator::SealedSegment;
use super::context::FrontEnd;
use super::pairing::report_data_path;
use super::release::{Effect, Release};
use super::store::{execute, lock, Spool};
use crate::limits::CHUNK;

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

/// Carry out the effects of a placement: release the file, and send the
/// acknowledgement point on.
fn placed(spool: &dyn Spool, core: &Mutex<Release>, seg: &SealedSegment, on_tape: &watch::Sender<u64>) -> Result<()> {
    let fx = lock(core)?.placed(seg.seq)?;
    for left in execute(spool, core, fx)? {
        match left {
            Effect::Ack(point) => {
                let _ = on_tape.send(point.tracks());
            }
            other => bail!("unexpected effect of a placement: {other:?}"),
        }
    }
    Ok(())
}

/// Upload every segment that comes through `rx` until it closes; report
/// on `on_tape` the frames that are safe on tape and in the catalog. Fails
/// on the first segment the back-end refuses.
pub async fn run(
    fe: Arc<FrontEnd>,
    ch: BackupChannel,
    spool: Arc<dyn Spool>,
    core: Arc<Mutex<Release>>,
    mut rx: mpsc::Receiver<Queued>,
    on_tape: watch::Sender<u64>,
) -> Result<Uploaded> {
    if ch.drives.is_empty() {
        bail!("backup channel {} names no drive", ch.channel_id);
    }
    let progress = progress_reporter(fe.link.clone(), ch.channel_id);
    let conn = fe.back_end(&ch.back_end).await?;
    report_data_path(
        &fe.link,
        ch.channel_id,
        &fe.pairings.data_path(&ch.back_end, &conn).await?,
    );
    let mut in_flight: HashMap<String, usize> = ch.drives.iter().map(|d| (d.clone(), 0)).collect();
    type Done = (SealedSegment, OwnedSemaphorePermit, String, Result<()>);
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut top: Option<(u32, String)> = None;
    let mut closed = false;
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
                    let (fe, c, sp) = (fe.clone(), ch.clone(), spool.clone());
                    tasks.spawn(async move {
                        let res = upload(&fe, &c, sp.as_ref(), &drive, &seg).await;
                        (seg, slot, drive, res)
                    });
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                // Returning early drops the set, which stops the other uploads.
                let (seg, slot, drive, res) = joined.context("segment upload task")?;
                if let Err(e) = res {
                    lock(&core)?.upload_failed(seg.seq)?;
                    return Err(e);
                }
                if let Some(n) = in_flight.get_mut(&drive) {
                    *n = n.saturating_sub(1);
                }
                // On tape, synced, in the catalog: the file is released (kept
                // to be written over by a later segment), then its place.
                placed(spool.as_ref(), &core, &seg, &on_tape)?;
                drop(slot);
                let _ = progress.send(lock(&core)?.placed_totals().1);
                if top.as_ref().is_none_or(|(s, _)| seg.seq.get() > *s) {
                    top = Some((seg.seq.get(), drive));
                }
            }
        }
    }
    let last_drive = top.map(|(_, d)| d).unwrap_or_else(|| ch.drives[0].clone());
    let segments = lock(&core)?.placed_totals().0;
    Ok(Uploaded { segments, last_drive })
}

/// Report a channel's bytes on tape to the station, at most one request at
/// a time, never holding up the uploads.
fn progress_reporter(link: StationLink, channel_id: ChannelId) -> watch::Sender<u64> {
    let (tx, mut rx) = watch::channel(0u64);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let bytes = *rx.borrow_and_update();
            let _ = link
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
async fn upload(fe: &FrontEnd, ch: &BackupChannel, spool: &dyn Spool, drive: &str, seg: &SealedSegment) -> Result<()> {
    let seq = seg.seq;
    let conn = fe.back_end(&ch.back_end).await?;
    let path = fe.pairings.data_path(&ch.back_end, &conn).await?;
    let (mut bs, mut br) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
    let total = seg.total_bytes;
    bs.send(&BackEndRequest::WriteSegment {
        channel_id: ch.channel_id,
        drive: drive.to_string(),
        object_name: ch.object_name.clone(),
        abs_id: ch.abs_id,
        seq,
        bytes: total,
        crc32c: seg.crc32c,
        shared: path.shared(),
    })
    .await?;
    if !path.shared() {
        send_file(fe, &mut bs, spool, ch, seg, total).await?;
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
async fn send_file(
    fe: &FrontEnd,
    bs: &mut transport::FramedSend,
    spool: &dyn Spool,
    ch: &BackupChannel,
    seg: &SealedSegment,
    total: u64,
) -> Result<()> {
    let what = || format!("segment {} of ABS {} in the spool", seg.seq, ch.abs_id);
    let (len, mut file) = spool.open_sealed(ch.abs_id, seg.seq).with_context(what)?;
    if len < total {
        bail!("{}: {len} bytes, the journal says {total}", what());
    }
    let mut sent = 0u64;
    while sent < total {
        let want = at_most(total - sent, CHUNK);
        let mut buf = fe.chunks.take(want);
        tokio::task::block_in_place(|| file.read_exact(buf.as_mut_slice())).with_context(what)?;
        bs.send_raw(buf.freeze()).await?;
        sent += want as u64;
    }
    Ok(())
}
