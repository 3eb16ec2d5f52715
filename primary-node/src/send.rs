//! Backup: stream an ABS's track set to a front-end mover.
//!
//! Tracks are read in volume order (the cheapest for the node) by a blocking
//! reader thread and sent as [`TrackFrame`]s, each followed by its raw
//! bytes. The request queue is the set of tracks sent but not yet on tape:
//! the front-end keeps them only in its spool, which is not durable, until
//! its back-end wrote them to tape, synced, and the catalog committed them.
//! The queue holds addresses only (the data is still on the volume, or in
//! the snapshot's side file) and is bounded (`window`), so a slow front-end
//! slows the node down instead of growing memory. An entry leaves the queue
//! only on the front-end's [`TrackAck::OnTape`], and with it the track's
//! side copy, if a host write made one (the `release` callback). The queue
//! itself is the pure [`RequestQueue`]; this shell reads, sends and
//! receives for it.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use proto::abs::{AbsMap, TrackAddr, TrackSet};
use proto::domain::{AbsId, ChannelId};
use proto::num::to_usize;
use proto::wire::{PeerAddr, TrackAck, TrackFrame, TrackStreamOpen, MAX_DATA_FRAME};
use tokio::sync::{mpsc, watch};
use transport::{BufPool, Dialer, Role};

pub use crate::core::request_queue::Released;
use crate::core::request_queue::RequestQueue;
use crate::volume::Volume;

/// What a track stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A backup's ABS, to a front-end mover.
    Backup { abs_id: AbsId },
    /// A copy (`channel_id` is the copy's id), to another primary node
    /// (see [`proto::wire::CopyReceive`]).
    Copy,
}

/// What the node needs to send one track set.
pub struct SendOrder {
    pub channel_id: ChannelId,
    pub purpose: Purpose,
    /// The receiver: a front-end (backup) or a primary node (copy).
    pub front_end: PeerAddr,
    pub map: AbsMap,
    /// The tracks to send (of the map): all, or a differential's.
    pub tracks: TrackSet,
    /// Most tracks in flight (sent, not yet on tape).
    pub window: u64,
    /// Bytes per second the stream may send (None: no limit).
    pub rate: Option<u64>,
    /// The channel's capability, presented to the front-end.
    pub token: proto::wire::ChannelToken,
}

/// Resolve the map's volume indices to local volumes, checking geometry.
/// A target volume may be larger than the map says (it holds a copy of a
/// volume that size: a backup from a version reads its first bytes).
pub fn resolve_volumes(map: &AbsMap, volumes: &HashMap<String, Arc<Volume>>) -> Result<Vec<Arc<Volume>>> {
    map.volumes
        .iter()
        .map(|v| {
            let local = volumes
                .get(&v.name)
                .ok_or_else(|| anyhow!("this node has no volume {:?}", v.name))?;
            let size_fits = if local.is_target() {
                local.size >= v.size
            } else {
                local.size == v.size
            };
            if local.geometry != v.geometry || !size_fits {
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

/// Tracks the reader thread hands over at once, and the sender gives
/// quinn at once (each hand-over locks the connection and wakes threads).
const BATCH: usize = 16;

/// How long each track waits for its acknowledgement (histogram
/// `dmc_primary_track_ack_seconds`), and the tracks a stream holds in its
/// request queue (gauge `dmc_primary_request_queue_tracks`, summed over the
/// node's streams; what a stream held leaves it when the stream ends).
struct AckClock {
    sent_at: std::collections::VecDeque<tokio::time::Instant>,
    /// Tracks queued by an earlier stream this one resumes: acknowledged
    /// first, with no send time here.
    untimed: u64,
    queued: u64,
}

impl AckClock {
    fn new(untimed: u64, queued: u64) -> AckClock {
        metrics::gauge!("dmc_primary_request_queue_tracks").increment(queued as f64);
        AckClock {
            sent_at: std::collections::VecDeque::new(),
            untimed,
            queued,
        }
    }

    fn sent(&mut self) {
        self.sent_at.push_back(tokio::time::Instant::now());
        self.queued += 1;
        metrics::gauge!("dmc_primary_request_queue_tracks").increment(1.0);
    }

    fn acked(&mut self, n: usize) {
        let now = tokio::time::Instant::now();
        for _ in 0..n {
            if self.untimed > 0 {
                self.untimed -= 1;
            } else if let Some(t) = self.sent_at.pop_front() {
                metrics::histogram!("dmc_primary_track_ack_seconds").record((now - t).as_secs_f64());
            }
        }
        let n = u64::try_from(n).unwrap_or(u64::MAX).min(self.queued);
        self.queued -= n;
        metrics::gauge!("dmc_primary_request_queue_tracks").decrement(n as f64);
    }
}

impl Drop for AckClock {
    fn drop(&mut self) {
        metrics::gauge!("dmc_primary_request_queue_tracks").decrement(self.queued as f64);
    }
}

/// Largest track a node sends (the tape format's limit).
const MAX_TRACK: usize = proto::tape::MAX_TRACK_SIZE;

/// Why a stream stopped before the front-end reported the ABS complete.
#[derive(Debug)]
pub enum Stopped {
    /// The front-end went away (its connection or the stream was lost):
    /// the station may have the stream resumed with the front-end's next
    /// start ([`proto::wire::Command::ResumeTrackSet`]).
    Lost(anyhow::Error),
    /// The backup failed: the front-end said so, or this node could not
    /// read or send what it must.
    Failed(anyhow::Error),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Lost(e) => write!(f, "lost the front-end: {e:#}"),
            Stopped::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// A network error with the front-end.
fn lost(e: impl Into<anyhow::Error>) -> Stopped {
    Stopped::Lost(e.into())
}

/// Reads one track for the backup into the buffer: (track, offset on the
/// volume, buffer).
pub type ReadTrack = dyn Fn(TrackAddr, u64, &mut [u8]) -> Result<()> + Send + Sync;

/// The node's side of a stream's tracks: how they are read, what happens
/// to them once on tape, and where progress goes.
pub struct TrackSource<'a> {
    /// Reads one track for the backup into a buffer (through the node's
    /// snapshot of the volume, see [`crate::host`]).
    pub read: Arc<ReadTrack>,
    /// Tracks on tape leave the request queue: their side copies go.
    pub release: &'a (dyn Fn(&[TrackAddr]) + Sync),
    /// (tracks sent, tracks in the set).
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
}

/// Send the track set; returns the number of tracks once the front-end
/// reported the ABS complete (on tape and in the catalog).
///
/// Tracks go in the order of the track set. `resume`: the stream continues
/// one the front-end lost when it restarted; it answers from which track
/// it needs them ([`TrackAck::ResumeFrom`]), and the tracks before stay in
/// the request queue until they are on tape. `released` carries the
/// request queue's position from one stream to the next.
///
/// `source.read(track, offset, buf)` reads one track for the backup into
/// `buf` (through the node's snapshot of the volume, see [`crate::host`]).
/// Tracks are read by a blocking thread into pooled buffers, checksummed
/// there, and handed to quinn as they are: a track's bytes are never
/// copied or serialized on their way out.
#[tracing::instrument(name = "track_stream", skip_all, fields(channel_id = %order.channel_id, to = %order.front_end.name))]
pub async fn send_track_set(
    dialer: &Dialer,
    pool: &BufPool,
    order: &SendOrder,
    resume: bool,
    released: &mut Released,
    source: TrackSource<'_>,
) -> Result<u64, Stopped> {
    let TrackSource {
        read,
        release,
        progress,
    } = source;
    let addr = order
        .front_end
        .address
        .parse()
        .with_context(|| format!("front-end address {:?}", order.front_end.address))
        .map_err(Stopped::Failed)?;
    let (role, what) = match order.purpose {
        Purpose::Backup { .. } => (Role::Mover, "front-end"),
        Purpose::Copy => (Role::PrimaryNode, "receiving node"),
    };
    let conn = dialer
        .connect(&order.front_end.name, addr, order.front_end.boot, role)
        .await
        .with_context(|| {
            format!(
                "dialling {what} {} at {}",
                order.front_end.name, order.front_end.address
            )
        })
        .map_err(lost)?;
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_DATA_FRAME).await.map_err(lost)?;
    let window = order.window.max(1);
    let open = match order.purpose {
        Purpose::Backup { abs_id } => TrackStreamOpen::Backup {
            channel_id: order.channel_id,
            abs_id,
            window,
            token: order.token,
            resume,
        },
        Purpose::Copy => TrackStreamOpen::Copy {
            copy_id: order.channel_id,
            token: order.token,
            window,
        },
    };
    send.send(&open).await.map_err(lost)?;

    let total = order.tracks.len();
    let track_size = order.map.largest_track();
    if track_size == 0 || track_size > MAX_TRACK {
        return Err(Stopped::Failed(anyhow!(
            "tracks of {track_size} bytes: expected 1 to {MAX_TRACK}"
        )));
    }
    if track_size > pool.size() {
        return Err(Stopped::Failed(anyhow!(
            "tracks of {track_size} bytes: this node's buffers hold {}",
            pool.size()
        )));
    }

    // Where the stream starts: a resumed one where the front-end says.
    let from = if resume {
        match recv.recv::<TrackAck>().await {
            Ok(Some(TrackAck::ResumeFrom { tracks })) => tracks,
            Ok(Some(TrackAck::Failed(failure))) => {
                return Err(Stopped::Failed(anyhow!(
                    "the front-end could not resume the backup: {failure}"
                )))
            }
            Ok(Some(other)) => {
                return Err(Stopped::Failed(anyhow!(
                    "the front-end answered a resumed stream with {other:?}, not where to resume"
                )))
            }
            Ok(None) => return Err(lost(anyhow!("the front-end closed the resumed stream"))),
            Err(e) => return Err(lost(anyhow::Error::from(e).context("reading where to resume"))),
        }
    } else {
        0
    };
    // The request queue: tracks sent, oldest first, not yet on tape. A
    // resumed stream's queue starts with the tracks the front-end kept.
    let mut queue =
        RequestQueue::start(&order.tracks, window, *released, from).map_err(|e| Stopped::Failed(e.into()))?;
    if from > 0 {
        tracing::info!(
            channel_id = %order.channel_id,
            from,
            total,
            "the front-end kept the first tracks; sending the rest"
        );
    }

    // Reader thread: volume reads are blocking; a small channel bounds
    // memory, and the node's pool keeps reusing the same buffers (quinn
    // holds a track's buffer until the front-end acknowledged its packets).
    let pool = pool.clone();
    let (tx, mut rx) = mpsc::channel::<Result<Vec<(TrackAddr, u32, Bytes)>>>(4);
    let map = order.map.clone();
    let tracks = order.tracks.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH);
        let last = tracks.len();
        for (i, addr) in tracks.iter().enumerate().skip(to_usize(from)) {
            let item = (|| {
                let (offset, len) = map.track_extent(addr)?;
                let len = usize::try_from(len).context("track length")?;
                if len > pool.size() {
                    bail!(
                        "track {addr:?} has {len} bytes, more than the largest track size {}",
                        pool.size()
                    );
                }
                let mut buf = pool.take(len);
                read(addr, offset, buf.as_mut_slice())?;
                let crc = crc32c::crc32c(buf.as_ref());
                Ok((addr, crc, buf.freeze()))
            })();
            match item {
                Ok(track) => batch.push(track),
                Err(e) => {
                    // What was read before goes first.
                    if !batch.is_empty() && tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                        return;
                    }
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            if (batch.len() == BATCH || i as u64 + 1 == last)
                && tx
                    .blocking_send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))
                    .is_err()
            {
                return;
            }
        }
    });

    // Acknowledgements: how far the stream is on tape, and the outcome.
    let (acked_tx, mut acked_rx) = watch::channel(released.0);
    let acks = tokio::spawn(async move {
        loop {
            match recv.recv::<TrackAck>().await {
                Ok(Some(TrackAck::OnTape { tracks })) => {
                    let _ = acked_tx.send(tracks);
                }
                Ok(Some(TrackAck::Complete)) => return Ok(()),
                Ok(Some(TrackAck::Failed(failure))) => {
                    return Err(Stopped::Failed(anyhow!("the front-end failed the backup: {failure}")))
                }
                Ok(Some(TrackAck::ResumeFrom { .. })) => {
                    return Err(Stopped::Failed(anyhow!(
                        "the front-end sent a resume point in the middle of the stream"
                    )))
                }
                Ok(None) => {
                    return Err(lost(anyhow!(
                        "the front-end closed the stream before the backup completed"
                    )))
                }
                Err(e) => return Err(lost(anyhow::Error::from(e).context("reading acknowledgements"))),
            }
        }
    });

    // Tracks on tape leave the queue, with their side copies.
    let mut clock = AckClock::new(from.saturating_sub(released.0), queue.in_flight());
    let mut release_acked = |queue: &mut RequestQueue, clock: &mut AckClock, acked: u64| {
        let batch = queue.on_tape(acked);
        if !batch.is_empty() {
            release(&batch);
            clock.acked(batch.len());
        }
        *released = queue.released();
    };
    let mut sent_bytes = 0u64;
    let started = tokio::time::Instant::now();
    let streamed: Result<(), Stopped> = async {
        'stream: while let Some(batch) = rx.recv().await {
            for (addr, crc32c, data) in batch.map_err(Stopped::Failed)? {
                // Bounded request queue: wait while too many tracks are not on
                // tape (what is queued goes out first, or nothing would ack).
                release_acked(&mut queue, &mut clock, *acked_rx.borrow());
                if !queue.has_room() {
                    send.flush().await.map_err(lost)?;
                    while !queue.has_room() {
                        if acked_rx.changed().await.is_err() || acks.is_finished() {
                            // The acknowledgements ended: so does the stream.
                            break 'stream;
                        }
                        release_acked(&mut queue, &mut clock, *acked_rx.borrow());
                    }
                }
                if acks.is_finished() {
                    break 'stream;
                }
                if let Some(rate) = order.rate {
                    // Pace: the bytes sent so far may not run ahead of the rate.
                    let due = std::time::Duration::from_secs_f64(sent_bytes as f64 / rate as f64);
                    if tokio::time::Instant::now() < started + due {
                        send.flush().await.map_err(lost)?;
                        tokio::time::sleep_until(started + due).await;
                    }
                }
                release_acked(&mut queue, &mut clock, *acked_rx.borrow());
                sent_bytes += data.len() as u64;
                let frame = TrackFrame::Track {
                    addr,
                    len: u32::try_from(data.len()).map_err(|_| {
                        Stopped::Failed(anyhow!("track {}:{} of {} bytes", addr.volume, addr.track, data.len()))
                    })?,
                    crc32c,
                };
                queue.push(addr).map_err(|e| Stopped::Failed(e.into()))?;
                clock.sent();
                send.queue_with(&frame, data).map_err(lost)?;
                metrics::counter!("dmc_primary_tracks_sent_total").increment(1);
                progress(queue.sent(), total);
            }
            // A batch goes to quinn at once: one hand-over for up to BATCH tracks.
            send.flush().await.map_err(lost)?;
        }
        Ok(())
    }
    .await;
    // The reader stops at its next hand-over if it is still reading.
    drop(rx);
    if let Err(e) = streamed {
        // The acknowledgements may hold the real cause (the front-end's reason).
        reader.abort();
        release_acked(&mut queue, &mut clock, *acked_rx.borrow());
        if acks.is_finished() {
            if let Ok(Err(cause)) = acks.await {
                return Err(cause);
            }
        } else {
            acks.abort();
        }
        return Err(e);
    }
    reader.await.context("track reader thread").map_err(Stopped::Failed)?;
    if !acks.is_finished() {
        send.send(&TrackFrame::End { tracks: queue.sent() })
            .await
            .map_err(lost)?;
    }
    let outcome = acks.await.context("acknowledgement task").map_err(Stopped::Failed)?;
    release_acked(&mut queue, &mut clock, *acked_rx.borrow());
    outcome?;
    let sent = queue.sent();
    if sent != total {
        return Err(Stopped::Failed(anyhow!("sent {sent} of {total} tracks")));
    }
    let _ = send.finish().await;
    tracing::info!(tracks = sent, "track set on tape");
    Ok(sent)
}
