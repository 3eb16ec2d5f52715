//! Track streams a primary node opens: the opening names a channel and
//! carries its token; the channel is taken (only by its assigned node
//! with its token) and its stream served, or the stream is refused.

use std::sync::Arc;

use proto::domain::Failure;
use proto::wire::{tokens_equal, BackupChannel, TrackAck, TrackStreamOpen};
use transport::{FramedRecv, FramedSend};

use super::channels::Channels;
use super::context::FrontEnd;
use crate::limits::REQUEST_TIMEOUT;

/// Serve one stream that primary node `node` opened.
pub async fn serve(fe: Arc<FrontEnd>, channels: Arc<Channels>, node: String, send: FramedSend, mut recv: FramedRecv) {
    // The opening frame arrives within REQUEST_TIMEOUT or the stream is
    // dropped.
    let opening = match tokio::time::timeout(REQUEST_TIMEOUT, recv.recv::<TrackStreamOpen>()).await {
        Ok(o) => o,
        Err(_) => {
            tracing::warn!(peer = %node, "stream opening not received in time; dropped");
            let _ = recv.stop(transport::codes::REFUSED);
            return;
        }
    };
    match opening {
        Ok(Some(TrackStreamOpen::Backup {
            channel_id,
            abs_id,
            window,
            token,
            resume,
        })) => {
            // Taken only by its assigned node with its token: a wrong
            // guess leaves the channel to its owner.
            let opens =
                |ch: &BackupChannel| ch.abs_id == abs_id && ch.primary == node && tokens_equal(&ch.token, &token);
            match channels.take_backup(channel_id, resume, opens).await {
                Some((ch, plan)) => {
                    use tracing::Instrument;
                    let running = channels.running.start(channel_id);
                    let span = tracing::info_span!("backup", %channel_id, %abs_id, primary = %node);
                    super::backup::serve(fe, ch, running, window, plan, send, recv)
                        .instrument(span)
                        .await
                }
                None => {
                    let what = if resume { "resumed" } else { "open" };
                    refuse(
                        send,
                        format!(
                            "front-end {} has no {what} backup channel {channel_id} for {node} with that token",
                            fe.name
                        ),
                    )
                    .await
                }
            }
        }
        Ok(Some(TrackStreamOpen::Restore { channel_id, token })) => {
            let opens = |ch: &proto::wire::RestoreChannel| ch.primary == node && tokens_equal(&ch.token, &token);
            match channels.take_restore(channel_id, opens).await {
                Some(ch) => {
                    let running = channels.running.start(channel_id);
                    super::restore::serve(fe, ch, running, send).await
                }
                None => {
                    refuse(
                        send,
                        format!(
                            "front-end {} has no open restore channel {channel_id} for {node} with that token",
                            fe.name
                        ),
                    )
                    .await
                }
            }
        }
        Ok(Some(TrackStreamOpen::Copy { copy_id, .. })) => {
            refuse(
                send,
                format!(
                    "front-end {} takes no copy streams (copy {copy_id} goes to a primary node)",
                    fe.name
                ),
            )
            .await
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "bad track stream opening"),
    }
}

async fn refuse(mut send: FramedSend, reason: String) {
    tracing::warn!(%reason, "refusing a stream");
    let _ = send.send(&TrackAck::Failed(Failure::refused(reason))).await;
    let _ = send.finish().await;
}
