//! The act step of a restore of one ABS: one channel per lane of the
//! [`RestoreJob`], run side by side, their events merged into the client's
//! stream; a failed lane stops the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use futures::stream::{FuturesUnordered, StreamExt};
use proto::domain::{ChannelId, Failure};
use proto::wire::{ChannelEvent, StationReply};
use tokio::sync::mpsc;
use transport::{FramedSend, Peer};

use super::job::RestoreJob;
use super::read::run_lane;
use crate::channel::ChannelKind;
use crate::service::events::{EventSink, LiveChannel};
use crate::service::{note_channel, ChannelNote, Station};

/// The events of one drive's channel, tagged with its lane.
struct LaneSink {
    lane: usize,
    tx: mpsc::UnboundedSender<(usize, ChannelEvent)>,
    /// Set once the client's stream failed.
    gone: Arc<AtomicBool>,
}

impl EventSink for LaneSink {
    async fn emit(&mut self, ev: ChannelEvent) {
        let _ = self.tx.send((self.lane, ev));
    }

    async fn emit_checked(&mut self, ev: ChannelEvent) -> bool {
        self.tx.send((self.lane, ev)).is_ok() && !self.gone.load(Ordering::Relaxed)
    }
}

/// What one drive's channel (or a whole restore) restored.
#[derive(Debug, Default)]
pub(crate) struct LaneTotals {
    pub bytes: u64,
    pub tracks: u64,
    pub segments: u32,
    pub tapes: Vec<String>,
}

impl LaneTotals {
    /// Add what another ABS of a chain restored (each tape named once).
    pub(crate) fn add(&mut self, t: LaneTotals) {
        self.bytes += t.bytes;
        self.tracks += t.tracks;
        self.segments += t.segments;
        for tape in t.tapes {
            if !self.tapes.contains(&tape) {
                self.tapes.push(tape);
            }
        }
    }

    pub(crate) fn finished(self, started: Instant) -> ChannelEvent {
        ChannelEvent::Finished {
            bytes: self.bytes,
            tracks: self.tracks,
            segments: self.segments,
            tapes: self.tapes,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Restore the ABS of `job`: a channel per lane; every byte it holds must
/// reach the destination.
pub(super) async fn act(
    st: &Arc<Station>,
    client: &Peer,
    job: &RestoreJob,
    send: &mut FramedSend,
) -> Result<LaneTotals> {
    let abs_id = job.abs_id;
    // One channel per drive.
    let mut lanes = Vec::new();
    for tapes in &job.lanes {
        let channel_id = st
            .catalog
            .create_channel(ChannelKind::Restore, abs_id, &client.name)
            .await?;
        let (tx, rx) = note_channel();
        st.channels.lock().await.insert(channel_id, tx);
        st.awaiting_first_byte
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel_id, std::time::Instant::now());
        lanes.push((LiveChannel::new(channel_id, ChannelKind::Restore), tapes.clone(), rx));
    }
    let channel_ids: Vec<ChannelId> = lanes.iter().map(|(c, _, _)| c.id()).collect();
    send.emit(ChannelEvent::Started {
        channel_id: channel_ids.first().copied().unwrap_or_default(),
        abs_id,
        object_size: job.map.object_size,
        tracks: job.track_count,
        // Restore progress counts object bytes written at the destination.
        track_bytes: job.expected_bytes,
    })
    .await;
    if let Some(detail) = job.lanes_detail(&channel_ids) {
        send.emit(ChannelEvent::Planned { detail }).await;
    }

    let (etx, mut erx) = mpsc::unbounded_channel();
    let gone = Arc::new(AtomicBool::new(false));
    let n_lanes = lanes.len();
    let mut running: FuturesUnordered<_> = lanes
        .into_iter()
        .enumerate()
        .map(|(lane, (channel, tapes, rx))| {
            let mut sink = LaneSink {
                lane,
                tx: etx.clone(),
                gone: gone.clone(),
            };
            let channel_id = channel.id();
            let span = tracing::info_span!("lane", %channel_id, abs_id = %job.abs_id);
            tracing::Instrument::instrument(
                async move {
                    let res = run_lane(st, channel, job, tapes, rx, &mut sink).await;
                    (channel_id, res)
                },
                span,
            )
        })
        .collect();
    drop(etx);
    let mut lane_bytes = vec![0u64; n_lanes];
    let mut totals = LaneTotals::default();
    let mut failure: Option<anyhow::Error> = None;
    let mut forward = |lane: usize, ev: ChannelEvent, send_ev: &mut Vec<ChannelEvent>| match ev {
        ChannelEvent::Progress { bytes } => {
            lane_bytes[lane] = bytes;
            send_ev.push(ChannelEvent::Progress {
                bytes: lane_bytes.iter().sum(),
            });
        }
        ChannelEvent::State { state, reason } if n_lanes > 1 => send_ev.push(ChannelEvent::State {
            state,
            reason: format!("[channel {}] {reason}", channel_ids[lane]),
        }),
        other => send_ev.push(other),
    };
    loop {
        let mut out = Vec::new();
        tokio::select! {
            done = running.next() => {
                let Some((channel_id, res)) = done else { break };
                match res {
                    Ok(t) => {
                        totals.bytes += t.bytes;
                        totals.tracks += t.tracks;
                        totals.segments += t.segments;
                        totals.tapes.extend(t.tapes);
                    }
                    Err(e) => {
                        // The other drives stop too.
                        for other in &channel_ids {
                            if *other != channel_id {
                                let failure = Failure::cancelled(format!("channel {channel_id} of the same restore failed"));
                                st.note(*other, ChannelNote::Failed { failure }).await;
                            }
                        }
                        if failure.is_none() {
                            failure = Some(e);
                        }
                    }
                }
            }
            Some((lane, ev)) = erx.recv() => forward(lane, ev, &mut out),
        }
        for ev in out {
            if send.send(&StationReply::Event(ev)).await.is_err() {
                gone.store(true, Ordering::Relaxed);
            }
        }
    }
    while let Ok((lane, ev)) = erx.try_recv() {
        let mut out = Vec::new();
        forward(lane, ev, &mut out);
        for ev in out {
            send.emit(ev).await;
        }
    }
    for c in &channel_ids {
        st.channels.lock().await.remove(c);
        st.awaiting_first_byte
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(c);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if totals.bytes != job.expected_bytes {
        bail!(Failure::corrupt(format!(
            "{} bytes of ABS {abs_id} written, it holds {}",
            totals.bytes, job.expected_bytes
        )));
    }
    Ok(totals)
}
