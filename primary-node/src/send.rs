//! Backup: stream an ABS's track set to a front-end mover.
//!
//! Tracks are read in volume order (the cheapest for the node) by a blocking
//! reader thread and sent as [`TrackFrame`]s. The request queue is the set of
//! tracks sent but not yet acknowledged as durable by the front-end; it is
//! bounded (`window`), so a slow front-end slows the node down instead of
//! growing memory. An entry leaves the queue only on the front-end's
//! [`TrackAck::Durable`], and with it the track's side copy, if a host
//! write made one (the `release` callback).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::{AbsMap, TrackAddr, TrackSet};
use proto::wire::{PeerAddr, TrackAck, TrackFrame, TrackStreamOpen, MAX_DATA_FRAME};
use tokio::sync::{mpsc, watch};
use transport::Role;

use crate::volume::Volume;

/// What the node needs to send one track set.
pub struct SendOrder {
    pub channel_id: u64,
    pub abs_id: u64,
    pub front_end: PeerAddr,
    pub map: AbsMap,
    /// The tracks to send (of the map): all, or a differential's.
    pub tracks: TrackSet,
    /// Most tracks in flight (sent, not yet durable at the front-end).
    pub window: u64,
    /// Bytes per second the stream may send (None: no limit).
    pub rate: Option<u64>,
}

/// Resolve the map's volume indices to local volumes, checking geometry.
pub fn resolve_volumes(map: &AbsMap, volumes: &HashMap<String, Arc<Volume>>) -> Result<Vec<Arc<Volume>>> {
    map.volumes
        .iter()
        .map(|v| {
            let local = volumes
                .get(&v.name)
                .ok_or_else(|| anyhow!("this node has no volume {:?}", v.name))?;
            if local.geometry != v.geometry || local.size != v.size {
                bail!(
                    "volume {}: the request says geometry {:?} and {} bytes, the node has {:?} and {} bytes",
                    v.name,
                    v.geometry,
                    v.size,
                    local.geometry,
                    local.size
                );
            }
            Ok(local.clone())
        })
        .collect()
}

/// Send the whole track set; returns the number of tracks once the
/// front-end reported the ABS complete (on tape and in the catalog).
///
/// `read(track, offset, len)` reads one track for the backup (through the
/// node's snapshot of the volume, see [`crate::host`]).
pub async fn send_track_set(
    endpoint: &quinn::Endpoint,
    order: SendOrder,
    read: impl Fn(TrackAddr, u64, usize) -> Result<Vec<u8>> + Send + 'static,
    release: impl Fn(&[TrackAddr]),
    progress: impl Fn(u64, u64) + Send + 'static,
) -> Result<u64> {
    let addr = order
        .front_end
        .address
        .parse()
        .with_context(|| format!("front-end address {:?}", order.front_end.address))?;
    let (conn, _peer) = transport::connect(endpoint, addr, &order.front_end.name, Role::Mover)
        .await
        .with_context(|| {
            format!(
                "dialling front-end {} at {}",
                order.front_end.name, order.front_end.address
            )
        })?;
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_DATA_FRAME).await?;
    send.send(&TrackStreamOpen::Backup {
        channel_id: order.channel_id,
        abs_id: order.abs_id,
    })
    .await?;

    let tracks = order.tracks.clone();
    let total = tracks.len();

    // Reader thread: volume reads are blocking; a small channel bounds memory.
    let (tx, mut rx) = mpsc::channel::<Result<(TrackAddr, Vec<u8>)>>(8);
    let map = order.map.clone();
    let reader = tokio::task::spawn_blocking(move || {
        for addr in tracks.iter() {
            let item = (|| {
                let (offset, len) = map.track_extent(addr)?;
                let len = usize::try_from(len).context("track length")?;
                Ok((addr, read(addr, offset, len)?))
            })();
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });

    // Acknowledgements: the durable count, and the final outcome.
    let (acked_tx, mut acked_rx) = watch::channel(0u64);
    let acks = tokio::spawn(async move {
        loop {
            match recv.recv::<TrackAck>().await {
                Ok(Some(TrackAck::Durable { tracks })) => {
                    let _ = acked_tx.send(tracks);
                }
                Ok(Some(TrackAck::Complete)) => return Ok(()),
                Ok(Some(TrackAck::Failed { reason })) => bail!("the front-end failed the backup: {reason}"),
                Ok(None) => bail!("the front-end closed the stream before the backup completed"),
                Err(e) => return Err(anyhow::Error::from(e).context("reading acknowledgements")),
            }
        }
    });

    // The request queue: tracks sent, oldest first, not yet acknowledged.
    let mut queue: VecDeque<TrackAddr> = VecDeque::new();
    let mut released = 0u64;
    let mut release_acked = |queue: &mut VecDeque<TrackAddr>, acked: u64| {
        let n = (acked.saturating_sub(released) as usize).min(queue.len());
        if n > 0 {
            let batch: Vec<TrackAddr> = queue.drain(..n).collect();
            release(&batch);
            released += n as u64;
        }
    };
    let mut sent = 0u64;
    let mut sent_bytes = 0u64;
    let started = tokio::time::Instant::now();
    let window = order.window.max(1);
    while let Some(item) = rx.recv().await {
        let (addr, data) = item?;
        // Bounded request queue: wait while too many tracks are unacknowledged.
        while sent - *acked_rx.borrow() >= window {
            if acked_rx.changed().await.is_err() {
                break;
            }
            if acks.is_finished() {
                break;
            }
        }
        if acks.is_finished() {
            break;
        }
        if let Some(rate) = order.rate {
            // Pace: the bytes sent so far may not run ahead of the rate.
            let due = std::time::Duration::from_secs_f64(sent_bytes as f64 / rate as f64);
            tokio::time::sleep_until(started + due).await;
        }
        release_acked(&mut queue, *acked_rx.borrow());
        sent_bytes += data.len() as u64;
        send.send(&TrackFrame::Track { addr, data }).await?;
        queue.push_back(addr);
        sent += 1;
        metrics::counter!("dmc_primary_tracks_sent_total").increment(1);
        progress(sent, total);
    }
    reader.await.context("track reader thread")?;
    if !acks.is_finished() {
        send.send(&TrackFrame::End { tracks: sent }).await?;
    }
    acks.await.context("acknowledgement task")??;
    release_acked(&mut queue, *acked_rx.borrow());
    if sent != total {
        bail!("sent {sent} of {total} tracks");
    }
    let _ = send.finish().await;
    Ok(sent)
}
