//! Front-end side of a backup channel: accept a primary node's track
//! stream, accumulate it, have its sealed segments written to tape, and
//! tell the node how far the stream is on tape so it can let go of tracks.
//!
//! Each track arrives as a small [`TrackFrame::Track`] header and its raw
//! bytes, which go straight from quinn's buffers into the accumulation
//! file, checked against the CRC32C the node declared.

use proto::domain::{Failure, FailureCode};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::wire::{BackupChannel, StationRequest, TrackAck, TrackFrame};
use tokio::sync::{oneshot, watch};
use transport::{FramedRecv, FramedSend};

use super::abs_writer::AbsWriter;
use super::context::FrontEnd;
use super::resume::ResumePlan;
use super::running::RunningChannel;

/// Serve one backup track stream (`running` until it ends); any error is
/// reported to the primary node and the station.
/// `resume`: the channel continues what a restarted front-end kept in its
/// spool; the node first hears from which frame.
pub async fn serve(
    fe: Arc<FrontEnd>,
    channel: BackupChannel,
    running: RunningChannel,
    window: u64,
    resume: Option<ResumePlan>,
    mut send: FramedSend,
    recv: FramedRecv,
) {
    let channel_id = channel.channel_id;
    if let Some(plan) = &resume {
        if let Err(e) = send.send(&TrackAck::ResumeFrom { tracks: plan.frames }).await {
            tracing::warn!(%channel_id, error = %e, "the primary node left before the stream resumed");
        }
    }
    let (outcome_tx, outcome_rx) = oneshot::channel::<Result<u64, Failure>>();
    let (on_tape_tx, on_tape_rx) = watch::channel(0u64);
    let acker = tokio::spawn(tracing::Instrument::in_current_span(acknowledge(
        send, on_tape_rx, outcome_rx,
    )));
    let result = tokio::select! {
        r = run(&fe, &channel, window, resume, recv, on_tape_tx) => r,
        _ = running.token.cancelled() => Err(anyhow!("the station aborted the channel")),
    };
    drop(running);
    match result {
        Ok(frames) => {
            let _ = outcome_tx.send(Ok(frames));
        }
        Err(e) => {
            let failure = transport::failure_in(&format!("front-end {}", fe.name), &e, FailureCode::Internal);
            tracing::error!(%channel_id, reason = %failure, "backup channel failed");
            let _ = outcome_tx.send(Err(failure.clone()));
            let _ = fe
                .link
                .request_ok(&StationRequest::ChannelFailed { channel_id, failure })
                .await;
        }
    }
    let _ = acker.await;
}

/// Send the node [`TrackAck::OnTape`] whenever more of its stream is on
/// tape, then the outcome.
async fn acknowledge(
    mut send: FramedSend,
    mut on_tape: watch::Receiver<u64>,
    mut outcome: oneshot::Receiver<Result<u64, Failure>>,
) {
    let end = loop {
        tokio::select! {
            changed = on_tape.changed() => {
                if changed.is_err() {
                    break (&mut outcome).await.unwrap_or_else(|_| Err(Failure::internal("the backup stopped")));
                }
                let tracks = *on_tape.borrow_and_update();
                if send.send(&TrackAck::OnTape { tracks }).await.is_err() {
                    return;
                }
            }
            res = &mut outcome => break res.unwrap_or_else(|_| Err(Failure::internal("the backup stopped"))),
        }
    };
    match &end {
        Ok(frames) => tracing::info!(tracks = frames, "backup stream on tape"),
        Err(failure) => tracing::warn!(%failure, "backup stream failed"),
    }
    let _ = match end {
        Ok(frames) => match send.send(&TrackAck::OnTape { tracks: frames }).await {
            Ok(()) => send.send(&TrackAck::Complete).await,
            Err(e) => Err(e),
        },
        Err(failure) => send.send(&TrackAck::Failed(failure)).await,
    };
    let _ = send.finish().await;
}

/// Receive the whole stream and write the ABS; returns the frames consumed.
async fn run(
    fe: &Arc<FrontEnd>,
    ch: &BackupChannel,
    window: u64,
    resume: Option<ResumePlan>,
    mut recv: FramedRecv,
    on_tape_out: watch::Sender<u64>,
) -> Result<u64> {
    let (mut abs, requeue) = match &resume {
        Some(plan) => AbsWriter::resume(fe, ch, Some(window), plan)?,
        None => (AbsWriter::open(fe, ch, Some(window))?, Vec::new()),
    };
    // Relay how far the ABS is on tape to the acknowledgement task.
    let mut on_tape = abs.on_tape();
    let relay = tokio::spawn(async move {
        while on_tape.changed().await.is_ok() {
            let v = *on_tape.borrow_and_update();
            if on_tape_out.send(v).is_err() {
                break;
            }
        }
    });
    let result = async {
        // What the spool kept but is not on tape goes first.
        for sealed in requeue {
            abs.queue(sealed).await?;
        }
        loop {
            let frame = recv
                .recv::<TrackFrame>()
                .await
                .context("reading the track stream")?
                .ok_or_else(|| anyhow!("the primary node closed the track stream before its end"))?;
            match frame {
                TrackFrame::Track { addr, len, crc32c } => {
                    let keep = abs.begin_track(addr, len, crc32c)?;
                    let mut left = len as usize;
                    while left > 0 {
                        let piece = recv
                            .recv_raw(left)
                            .await
                            .with_context(|| format!("reading the data of track {addr:?}"))?;
                        left -= piece.len();
                        // Redelivery is harmless: a copy already in the ABS is skipped.
                        if keep {
                            abs.track_data(&piece)?;
                        }
                    }
                    if keep {
                        if let Some(sealed) = abs.end_track()? {
                            abs.queue(sealed).await?;
                        }
                    }
                }
                TrackFrame::End { tracks } => {
                    let frames = abs.frames();
                    if tracks != frames || abs.received() != abs.expected() {
                        bail!(
                            "the track stream ended after {frames} tracks ({tracks} announced, {} new); the track set has {}",
                            abs.received(),
                            abs.expected()
                        );
                    }
                    break;
                }
            }
        }
        let frames = abs.frames();
        abs.finish().await?;
        Ok(frames)
    }
    .await;
    relay.abort();
    result
}
