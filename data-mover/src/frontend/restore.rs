//! Front-end side of a restore channel: read the segments from the
//! back-end and relay their (verified) tracks to the primary node.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use proto::wire::{BackEndRequest, RestoreChannel, RestoreFrame, StationRequest, MAX_DATA_FRAME};
use transport::FramedSend;

use crate::mover::Mover;

pub async fn serve(mover: Arc<Mover>, ch: RestoreChannel, mut send: FramedSend) {
    if let Err(e) = relay(&mover, &ch, &mut send).await {
        let reason = format!("front-end {}: {e:#}", mover.name);
        tracing::error!(channel_id = ch.channel_id, %reason, "restore relay failed");
        let _ = send.send(&RestoreFrame::Failed { reason: reason.clone() }).await;
        let _ = mover
            .link
            .request_ok(&StationRequest::ChannelFailed {
                channel_id: ch.channel_id,
                reason,
            })
            .await;
    }
    let _ = send.finish().await;
}

async fn relay(mover: &Arc<Mover>, ch: &RestoreChannel, send: &mut FramedSend) -> Result<()> {
    let conn = mover.back_end_connection(&ch.back_end).await?;
    let (mut bs, mut br) = transport::open_bi(&conn, MAX_DATA_FRAME).await?;
    bs.send(&BackEndRequest::ReadSegments {
        channel_id: ch.channel_id,
        drive: ch.drive.clone(),
        abs_id: ch.abs_id,
        files: ch.files.clone(),
    })
    .await?;
    bs.finish().await?;
    loop {
        let frame = br
            .recv::<RestoreFrame>()
            .await
            .context("reading the back-end's restore stream")?
            .ok_or_else(|| anyhow!("the back-end closed the restore stream early"))?;
        let end = matches!(frame, RestoreFrame::End { .. } | RestoreFrame::Failed { .. });
        send.send(&frame).await?;
        if end {
            return Ok(());
        }
    }
}
