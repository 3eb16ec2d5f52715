//! The primary node → front-end hop in isolation, for the benchmark.
//!
//! A backup's hop cannot be timed inside a running backup: the node may
//! only run `window` tracks ahead of the tape, so the hop runs at the
//! speed of the whole pipeline. This measures it alone, both ends in one
//! process (like the raw quinn reference it is compared with), with the
//! pieces the node and the front-end use: tracks read by a blocking thread
//! into pooled buffers (`transport::BufPool`) and CRC32C'd there, sent as a
//! validated rkyv [`TrackFrame`] header with the raw bytes after it, 16
//! tracks handed to quinn at once (`FramedSend::queue_with` + `flush`), received with `FramedRecv::recv`/`recv_raw`,
//! checked against the declared CRC, and written by the front-end's
//! [`Accumulator`] into spool files it reuses; the receiver acknowledges every 256 tracks and the sender keeps
//! at most `window` tracks unacknowledged, as the node does.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use data_mover::frontend::accumulator::Accumulator;
use data_mover::frontend::release::Release;
use data_mover::frontend::store::{execute, lock, FileSpool, Spool};
use data_mover::spool::{Slots, SpoolDir};
use proto::abs::TrackAddr;
use proto::domain::{AbsId, ChannelId};
use proto::wire::{TrackAck, TrackFrame, MAX_DATA_FRAME};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use transport::pki::{self, Component};
use transport::{BufPool, Role};

/// Where the sender's tracks come from.
pub enum Source {
    /// One pooled buffer of fixed bytes sent over and over (no reads).
    Memory,
    /// Tracks read with `pread` from this file, front to back (wrapping).
    File(PathBuf),
}

/// What the receiver does with the bytes.
pub enum Sink {
    /// Check their CRC, nothing else.
    Discard,
    /// The front-end's own accumulator on a spool in this directory
    /// (16 MiB segments, CRC checked per track); each sealed segment is
    /// released at once, as if its back-end had put it on tape.
    Spool(PathBuf),
}

const TRACK: usize = 64 * 1024;
const WINDOW: u64 = 4096;
const ACK_EVERY: u64 = 256;
const SEGMENT: u64 = 16 << 20;
/// Tracks the reader hands over at once, and the sender gives quinn at once.
const BATCH: usize = 16;

/// The front-end's spool and its release protocol core for one ABS.
type Store = (Arc<dyn Spool>, Arc<Mutex<Release>>);

/// As if the back-end had put `sealed` on tape and in the catalog: the
/// release protocol frees its spool file (the acknowledgement it also
/// yields goes nowhere here: the receiver acknowledges by count).
fn placed(store: &Store, sealed: &data_mover::frontend::accumulator::SealedSegment) -> Result<()> {
    let (spool, core) = store;
    let fx = lock(core)?.placed(sealed.seq)?;
    execute(spool.as_ref(), core, fx)?;
    Ok(())
}

/// Move `bytes` bytes over the hop; returns MB/s (10^6 bytes per second).
pub async fn hop_throughput(bytes: u64, source: Source, sink: Sink) -> Result<f64> {
    let identities = pki::ephemeral(&[
        Component::new("hop-front-end", Role::Mover, ["localhost", "127.0.0.1"]),
        Component::new("hop-node", Role::PrimaryNode, ["localhost", "127.0.0.1"]),
    ])?;
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let receiver = transport::bind(local, &identities[0])?;
    let sender = transport::bind(local, &identities[1])?;
    let receiver_addr = receiver.local_addr()?;
    let tracks = bytes.div_ceil(TRACK as u64);

    let receiving = tokio::spawn(async move {
        let incoming = receiver
            .accept()
            .await
            .ok_or_else(|| anyhow!("receiver endpoint closed"))?;
        let (conn, _) = transport::accept(incoming).await?;
        let (mut send, mut recv) = transport::accept_bi(&conn, MAX_DATA_FRAME).await?;
        let mut acc = match &sink {
            Sink::Discard => None,
            Sink::Spool(dir) => {
                let slots = Slots::open(dir.join("slots"))?;
                let spool: Arc<dyn Spool> = Arc::new(FileSpool::new(SpoolDir::new(dir.clone()), slots));
                let core = Arc::new(Mutex::new(Release::new(AbsId::new(1))));
                let acc = Accumulator::create(spool.clone(), core.clone(), ChannelId::new(1), 0, SEGMENT)?;
                Some((acc, (spool, core)))
            }
        };
        let mut received = 0u64;
        let mut total = 0u64;
        loop {
            let frame = recv
                .recv::<TrackFrame>()
                .await?
                .ok_or_else(|| anyhow!("stream ended early"))?;
            let (addr, len, declared) = match frame {
                TrackFrame::Track { addr, len, crc32c } => (addr, len, crc32c),
                TrackFrame::End { tracks } if tracks == received => break,
                TrackFrame::End { tracks } => bail!("end after {received} tracks, {tracks} announced"),
            };
            let mut left = len as usize;
            let mut crc = 0u32;
            if let Some((acc, _)) = acc.as_mut() {
                acc.begin_track(addr, len, declared)?;
            }
            while left > 0 {
                let piece = recv.recv_raw(left).await?;
                left -= piece.len();
                match acc.as_mut() {
                    // The accumulator checks the CRC at the end of the track.
                    Some((acc, _)) => acc.track_data(&piece)?,
                    None => crc = crc32c::crc32c_append(crc, &piece),
                }
            }
            received += 1;
            match acc.as_mut() {
                Some((acc, store)) => {
                    // Written to "tape" at once: the slot is free again.
                    if let Some(sealed) = acc.end_track(received)? {
                        placed(store, &sealed)?;
                    }
                }
                None if crc != declared => {
                    bail!("track {received}: CRC32C {crc:#010x}, the sender declared {declared:#010x}")
                }
                None => {}
            }
            total += len as u64;
            if received.is_multiple_of(ACK_EVERY) {
                send.send(&TrackAck::OnTape { tracks: received }).await?;
            }
        }
        if let Some((mut acc, store)) = acc {
            if let Some(sealed) = acc.seal(received)? {
                placed(&store, &sealed)?;
            }
            let (spool, core) = &store;
            let fx = lock(core)?.finish()?;
            execute(spool.as_ref(), core, fx)?;
        }
        send.send(&TrackAck::Complete).await?;
        send.finish().await?;
        conn.closed().await;
        receiver.wait_idle().await;
        Ok::<u64, anyhow::Error>(total)
    });

    let (conn, _) = transport::connect(&sender, receiver_addr, "hop-front-end", Role::Mover).await?;
    let start = Instant::now();
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_DATA_FRAME).await?;
    let pool = BufPool::new(TRACK, 64);
    let (tx, mut rx) = mpsc::channel::<Result<Vec<(u32, Bytes)>>>(4);
    let reader_pool = pool.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let file = match &source {
            Source::Memory => None,
            Source::File(p) => Some(std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))),
        };
        let (file, file_len) = match file {
            None => (None, 0),
            Some(Err(e)) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            Some(Ok(f)) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                (Some(f), len)
            }
        };
        let tracks_in_file = (file_len / TRACK as u64).max(1);
        let mut batch = Vec::with_capacity(BATCH);
        for i in 0..tracks {
            let len = proto::num::at_most(bytes - i * TRACK as u64, TRACK);
            let mut buf = reader_pool.take(len);
            let read = match &file {
                None => {
                    buf.as_mut_slice().fill(0xA5);
                    Ok(())
                }
                Some(f) => f
                    .read_exact_at(buf.as_mut_slice(), (i % tracks_in_file) * TRACK as u64)
                    .context("reading a track"),
            };
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let crc = crc32c::crc32c(buf.as_ref());
            batch.push((crc, buf.freeze()));
            if (batch.len() == BATCH || i + 1 == tracks)
                && tx
                    .blocking_send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))
                    .is_err()
            {
                return;
            }
        }
    });
    let (acked_tx, mut acked_rx) = watch::channel(0u64);
    let acks = tokio::spawn(async move {
        while let Some(ack) = recv.recv::<TrackAck>().await? {
            match ack {
                TrackAck::OnTape { tracks } => {
                    let _ = acked_tx.send(tracks);
                }
                TrackAck::Complete => return Ok(()),
                TrackAck::Failed(failure) => bail!("receiver failed: {failure}"),
                TrackAck::ResumeFrom { tracks } => bail!("receiver asked to resume from {tracks}: nothing was lost"),
            }
        }
        bail!("receiver closed the stream")
    });
    let mut sent = 0u64;
    while let Some(batch) = rx.recv().await {
        for (crc32c, data) in batch? {
            if sent - *acked_rx.borrow() >= WINDOW {
                send.flush().await?;
                while sent - *acked_rx.borrow() >= WINDOW {
                    acked_rx.changed().await.context("receiver went away")?;
                }
            }
            let frame = TrackFrame::Track {
                addr: TrackAddr { volume: 0, track: sent },
                len: u32::try_from(data.len())?,
                crc32c,
            };
            send.queue_with(&frame, data)?;
            sent += 1;
        }
        send.flush().await?;
    }
    reader.await.context("reader thread")?;
    send.send(&TrackFrame::End { tracks: sent }).await?;
    acks.await.context("ack task")??;
    let elapsed = start.elapsed();
    let _ = send.finish().await;
    conn.close(transport::codes::DONE, b"done");
    sender.wait_idle().await;
    let received = receiving.await.context("receiver task")??;
    if received != bytes {
        bail!("sent {bytes} bytes, the receiver counted {received}");
    }
    Ok(bytes as f64 / 1e6 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE))
}
