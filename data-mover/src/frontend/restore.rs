//! Front-end side of a restore channel: take the segments the back-end
//! reads back from tape and relay their (verified) tracks to the primary
//! node, each as a [`RestoreFrame::Track`] header and its raw bytes.

use proto::domain::{ChannelId, Failure, FailureCode, SegmentSeq};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use proto::abs::TrackAddr;
use proto::wire::{RestoreChannel, RestoreFrame, SegmentRef, StationRequest};
use transport::FramedSend;

use super::context::FrontEnd;
use super::running::RunningChannel;
use super::staged::{read_segments, TrackSink};

/// Relay restore channel `ch`'s tracks to the primary node (`running`
/// until it ends); any error is reported to the node and the station.
pub async fn serve(fe: Arc<FrontEnd>, ch: RestoreChannel, running: RunningChannel, mut send: FramedSend) {
    let result = tokio::select! {
        r = relay(&fe, &ch, &mut send) => r,
        _ = running.token.cancelled() => Err(anyhow::anyhow!("the station aborted the channel")),
    };
    drop(running);
    if let Err(e) = result {
        let failure = transport::failure_in(&format!("front-end {}", fe.name), &e, FailureCode::Internal);
        tracing::error!(channel_id = %ch.channel_id, reason = %failure, "restore relay failed");
        let _ = send.send(&RestoreFrame::Failed(failure.clone())).await;
        let _ = fe
            .link
            .request_ok(&StationRequest::ChannelFailed {
                channel_id: ch.channel_id,
                failure,
            })
            .await;
    }
    let _ = send.finish().await;
}

/// Sends each track to the primary node as it is taken over.
struct ToPrimary<'a> {
    fe: &'a FrontEnd,
    channel_id: ChannelId,
    send: &'a mut FramedSend,
}

impl TrackSink for ToPrimary<'_> {
    async fn track(&mut self, addr: TrackAddr, len: u32, crc32c: u32, data: &mut Vec<Bytes>) -> Result<()> {
        self.send
            .send_with(&RestoreFrame::Track { addr, len, crc32c }, data)
            .await?;
        Ok(())
    }

    async fn segment_done(&mut self, seq: SegmentSeq) -> Result<()> {
        self.send.send(&RestoreFrame::SegmentDone { seq }).await?;
        Ok(())
    }

    /// The station learns it first (it reads the segment from a copy once
    /// this tape is done), then the node, which no longer expects its
    /// tracks on this stream.
    async fn unreadable(&mut self, file: &SegmentRef, failure: Failure) -> Result<()> {
        self.fe
            .link
            .request_ok(&StationRequest::SegmentUnreadable {
                channel_id: self.channel_id,
                seq: file.seq,
                tape_label: file.tape_label.clone(),
                tape_file: file.tape_file,
                failure,
            })
            .await
            .context("reporting an unreadable segment to the station")?;
        self.send.send(&RestoreFrame::Skipped { seq: file.seq }).await?;
        Ok(())
    }
}

async fn relay(fe: &FrontEnd, ch: &RestoreChannel, send: &mut FramedSend) -> Result<()> {
    let mut sink = ToPrimary {
        fe,
        channel_id: ch.channel_id,
        send,
    };
    let (path, totals) = read_segments(fe, ch, &mut sink).await?;
    tracing::debug!(channel = %ch.channel_id, path = %path.describe(), tracks = totals.tracks, "restore relayed");
    send.send(&RestoreFrame::End { tracks: totals.tracks }).await?;
    Ok(())
}
