//! Front-end side of a backup channel: accept a primary node's track stream,
//! accumulate it, hand sealed segments to the back-end, release them only
//! when they are on tape and in the catalog, then write the ABS metadata.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use proto::wire::{
    BackEndReply, BackEndRequest, BackupChannel, SegmentChunk, StationRequest, TrackAck, TrackFrame, MAX_CONTROL_FRAME,
};
use tokio::sync::mpsc;
use transport::{FramedRecv, FramedSend};

use super::abs_writer::{AbsWriter, Appended};
use super::accumulator::SealedSegment;
use crate::mover::Mover;

/// Sync and acknowledge at least this often.
const ACK_EVERY_TRACKS: u64 = 128;
const ACK_EVERY: Duration = Duration::from_millis(500);
/// Chunk size of a segment on its way to the back-end.
const CHUNK: usize = 1 << 20;

/// Serve one backup track stream; any error is reported to the primary node
/// and the station.
pub async fn serve(mover: Arc<Mover>, channel: BackupChannel, mut send: FramedSend, recv: FramedRecv) {
    let channel_id = channel.channel_id;
    match run(&mover, &channel, &mut send, recv).await {
        Ok(()) => {
            let _ = send.send(&TrackAck::Complete).await;
            let _ = send.finish().await;
        }
        Err(e) => {
            let reason = format!("front-end {}: {e:#}", mover.name);
            tracing::error!(channel_id, %reason, "backup channel failed");
            let _ = send.send(&TrackAck::Failed { reason: reason.clone() }).await;
            let _ = mover
                .link
                .request_ok(&StationRequest::ChannelFailed { channel_id, reason })
                .await;
        }
    }
}

async fn run(mover: &Arc<Mover>, ch: &BackupChannel, send: &mut FramedSend, mut recv: FramedRecv) -> Result<()> {
    let mut abs = AbsWriter::open(mover, ch)?;
    let mut unacked = 0u64;
    let mut last_ack = Instant::now();
    loop {
        let frame = recv
            .recv::<TrackFrame>()
            .await
            .context("reading the track stream")?
            .ok_or_else(|| anyhow!("the primary node closed the track stream before its end"))?;
        match frame {
            TrackFrame::Track { addr, data } => match abs.append(addr, &data)? {
                // Redelivery is harmless: the track is already accumulated.
                Appended::Duplicate => {}
                Appended::Sealed(s) => {
                    // Sealing synced everything: acknowledge before waiting on the queue.
                    send.send(&TrackAck::Durable { tracks: abs.received() }).await?;
                    unacked = 0;
                    last_ack = Instant::now();
                    abs.queue(s).await?;
                }
                Appended::Added => {
                    unacked += 1;
                    if unacked >= ACK_EVERY_TRACKS || last_ack.elapsed() >= ACK_EVERY {
                        abs.sync()?;
                        send.send(&TrackAck::Durable { tracks: abs.received() }).await?;
                        unacked = 0;
                        last_ack = Instant::now();
                    }
                }
            },
            TrackFrame::End { tracks } => {
                let received = abs.received();
                if tracks != received || received != abs.expected() {
                    bail!(
                        "the track stream ended after {received} tracks ({tracks} announced); the track set has {}",
                        abs.expected()
                    );
                }
                abs.seal_last().await?;
                send.send(&TrackAck::Durable { tracks: received }).await?;
                break;
            }
        }
    }
    abs.finish().await?;
    Ok(())
}

/// Send sealed segments to the back-end: one worker per drive of the
/// channel, each taking the next sealed segment (a channel with several
/// drives splits its ABS across them). Returns the number of segments and
/// the drive that wrote the last one.
pub(super) async fn upload_segments(
    mover: Arc<Mover>,
    ch: BackupChannel,
    rx: mpsc::Receiver<SealedSegment>,
) -> Result<(u32, String)> {
    if ch.drives.is_empty() {
        bail!("backup channel {} names no drive", ch.channel_id);
    }
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let on_tape = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for drive in &ch.drives {
        workers.spawn(upload_to_drive(
            mover.clone(),
            ch.clone(),
            drive.clone(),
            rx.clone(),
            on_tape.clone(),
        ));
    }
    let mut count = 0u32;
    let mut last: Option<(u32, String)> = None;
    while let Some(joined) = workers.join_next().await {
        // Returning early drops the set, which stops the other workers.
        let (n, top) = joined.context("segment upload worker")??;
        count += n;
        if let Some(top) = top {
            if last.as_ref().is_none_or(|(seq, _)| top.0 > *seq) {
                last = Some(top);
            }
        }
    }
    let drive = last.map(|(_, d)| d).unwrap_or_else(|| ch.drives[0].clone());
    Ok((count, drive))
}

/// One drive's share of the uploads: send each segment, delete it only
/// when the back-end says it is on tape, synced, and in the catalog.
/// Returns the number sent and the highest sequence number with its drive.
async fn upload_to_drive(
    mover: Arc<Mover>,
    ch: BackupChannel,
    drive: String,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<SealedSegment>>>,
    on_tape: Arc<std::sync::atomic::AtomicU64>,
) -> Result<(u32, Option<(u32, String)>)> {
    let mut count = 0u32;
    let mut top: Option<(u32, String)> = None;
    loop {
        let Some(seg) = rx.lock().await.recv().await else {
            break;
        };
        let seq = seg.summary.header.seq;
        let conn = mover.back_end_connection(&ch.back_end).await?;
        let (mut bs, mut br) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
        let total = seg.summary.total_bytes;
        bs.send(&BackEndRequest::WriteSegment {
            channel_id: ch.channel_id,
            drive: drive.clone(),
            object_name: ch.object_name.clone(),
            abs_id: ch.abs_id,
            seq,
            bytes: total,
        })
        .await?;
        let mut file = std::fs::File::open(&seg.path).with_context(|| format!("opening {}", seg.path.display()))?;
        let mut sent = 0u64;
        while sent < total {
            let want = CHUNK.min((total - sent) as usize);
            let mut buf = vec![0u8; want];
            tokio::task::block_in_place(|| std::io::Read::read_exact(&mut file, &mut buf))
                .with_context(|| format!("reading {}", seg.path.display()))?;
            bs.send(&SegmentChunk { data: buf }).await?;
            sent += want as u64;
        }
        bs.finish().await?;
        match br.recv::<BackEndReply>().await? {
            Some(BackEndReply::Placed { tape_label, tape_file }) => {
                tracing::debug!(abs = ch.abs_id, seq, %drive, %tape_label, tape_file, "segment on tape");
            }
            Some(BackEndReply::Error { message }) => {
                bail!("the back-end refused segment {seq} of ABS {}: {message}", ch.abs_id)
            }
            None => bail!("the back-end closed the stream without placing segment {seq}"),
        }
        // Released: on tape, synced, in the catalog.
        std::fs::remove_file(&seg.path).with_context(|| format!("removing {}", seg.path.display()))?;
        count += 1;
        if top.as_ref().is_none_or(|(s, _)| seq > *s) {
            top = Some((seq, drive.clone()));
        }
        let bytes =
            on_tape.fetch_add(seg.summary.data_bytes, std::sync::atomic::Ordering::SeqCst) + seg.summary.data_bytes;
        metrics::counter!("dmc_fe_segments_released_total").increment(1);
        let _ = mover
            .link
            .request_ok(&StationRequest::ChannelProgress {
                channel_id: ch.channel_id,
                bytes,
                tracks: u64::from(seg.summary.track_count),
            })
            .await;
    }
    Ok((count, top))
}
