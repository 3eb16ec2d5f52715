//! Restore: receive a restore stream from a front-end and write each track's
//! bytes where the remap table says (FIG. 15/16).
//!
//! The back-end verified every checksum of a segment before handing it
//! over; the node checks again that every track belongs to the ABS, that
//! its length matches the map and its bytes their CRC32C, before writing it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::{DestTarget, Placer, TrackAddr};
use proto::wire::{RestoreFrame, RestoreOrder, RestoreTarget, TrackStreamOpen, MAX_DATA_FRAME};
use transport::{BufPool, Dialer, PooledBuf, Role};

use crate::host::HostIo;
use crate::restore_dir::RestoreDir;

/// Where the placements land.
pub enum Destination {
    /// Volumes of this node, written as host writes (their change maps
    /// record the restore; a backup running on them keeps its image).
    Volumes { host: Arc<HostIo>, names: Vec<String> },
    /// A file in the node's restore directory (shared by the restore
    /// job's streams).
    File { path: PathBuf, file: Arc<File> },
}

impl Destination {
    /// Resolve the order's target on this node.
    pub fn open(order: &RestoreOrder, host: &Arc<HostIo>, restore_dir: &RestoreDir) -> Result<Destination> {
        match &order.target {
            RestoreTarget::File { name, replace, .. } => {
                let (path, file) = restore_dir.file(order.job, name, *replace, order.remap.object_size)?;
                Ok(Destination::File { path, file })
            }
            RestoreTarget::Original | RestoreTarget::Volumes { .. } => {
                let names = order
                    .remap
                    .volumes
                    .iter()
                    .map(|v| {
                        let local = &host.volume(&v.name)?.volume;
                        if local.is_target() {
                            bail!(proto::domain::Failure::refused(format!(
                                "volume {} is a target volume: it holds copy versions, a restore does not write it",
                                v.name
                            )));
                        }
                        if local.size < v.size || local.geometry != v.geometry {
                            bail!("destination volume {} does not match the remap table", v.name);
                        }
                        Ok(v.name.clone())
                    })
                    .collect::<Result<Vec<_>>>()?;
                // Stamp every destination track changed with one sync per
                // volume, not one per track written.
                for (volume, name) in (0..=u16::MAX).zip(&names) {
                    let ranges: Vec<(u64, u64)> = order
                        .remap
                        .extents
                        .iter()
                        .filter(|e| e.target == DestTarget::Volume(volume))
                        .map(|e| (e.offset, e.length))
                        .collect();
                    host.volume(name)?
                        .premark(&ranges)
                        .with_context(|| format!("marking the restore's tracks of {name} changed"))?;
                }
                Ok(Destination::Volumes {
                    host: host.clone(),
                    names,
                })
            }
        }
    }

    fn write(&self, target: DestTarget, offset: u64, data: &[u8]) -> Result<()> {
        match (self, target) {
            (Destination::Volumes { host, names }, DestTarget::Volume(i)) => {
                let name = names
                    .get(i as usize)
                    .ok_or_else(|| anyhow!("remap volume index {i} out of range"))?;
                host.volume(name)?.write(offset, data)
            }
            (Destination::File { path, file }, DestTarget::File) => file
                .write_all_at(data, offset)
                .with_context(|| format!("writing {} bytes at {offset} of {}", data.len(), path.display())),
            _ => bail!("remap target {target:?} does not match the destination"),
        }
    }

    fn sync(&self) -> Result<()> {
        match self {
            Destination::Volumes { host, names } => names.iter().try_for_each(|n| host.volume(n)?.flush()),
            Destination::File { path, file } => file.sync_all().with_context(|| format!("syncing {}", path.display())),
        }
    }
}

/// Totals of one restore stream.
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreTotals {
    pub tracks: u64,
    pub bytes_written: u64,
    pub segments: u32,
}

/// Tracks received but not yet written (each in a pooled buffer).
const WRITE_QUEUE: usize = 16;

/// One track for the writer thread.
struct Received {
    addr: TrackAddr,
    crc32c: u32,
    data: PooledBuf,
}

/// Dial the front-end, receive the stream, write it, sync.
///
/// The network task reads each track's raw bytes into a pooled buffer and
/// hands it to a writer thread, which checks them against the CRC32C their
/// frame carries before writing any of them where the remap table says: the
/// next track is received (and decrypted) while the last one is written.
pub async fn receive_restore(
    dialer: &Dialer,
    order: RestoreOrder,
    dest: Destination,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<RestoreTotals> {
    let placer = Placer::new(&order.map, &order.remap).context("the restore order's map or remap table is invalid")?;
    let addr = order
        .front_end
        .address
        .parse()
        .with_context(|| format!("front-end address {:?}", order.front_end.address))?;
    let conn = dialer
        .connect(&order.front_end.name, addr, order.front_end.boot, Role::Mover)
        .await
        .with_context(|| format!("dialling front-end {}", order.front_end.name))?;
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_DATA_FRAME).await?;
    send.send(&TrackStreamOpen::Restore {
        channel_id: order.channel_id,
        token: order.token,
    })
    .await?;

    let track_size = order.map.largest_track().min(proto::tape::MAX_TRACK_SIZE);
    let pool = BufPool::new(track_size, WRITE_QUEUE + 2);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Received>(WRITE_QUEUE);
    let writer = tokio::task::spawn_blocking(move || write_tracks(rx, placer, dest, progress));

    let mut tracks = 0u64;
    let mut segments = 0u32;
    let mut skipped = 0u32;
    // Every expected track exactly once: a repeat is refused, a shortfall
    // fails the restore naming what is missing.
    let mut seen: std::collections::HashSet<TrackAddr> = std::collections::HashSet::new();
    let received: Result<()> = async {
        loop {
            let frame = recv
                .recv::<RestoreFrame>()
                .await?
                .ok_or_else(|| anyhow!("the front-end closed the restore stream early"))?;
            match frame {
                RestoreFrame::Track { addr, len, crc32c } => {
                    let (_, want) = order.map.track_extent(addr).context("track not in the ABS map")?;
                    if u64::from(len) != want || len as usize > pool.size() {
                        bail!("track {addr:?} has {len} bytes, the map says {want}");
                    }
                    if !seen.insert(addr) {
                        bail!("track {addr:?} arrived twice in restore channel {}", order.channel_id);
                    }
                    if tracks >= order.tracks {
                        bail!(
                            "more tracks than the {} restore channel {} should bring",
                            order.tracks,
                            order.channel_id
                        );
                    }
                    let mut data = pool.take(len as usize);
                    let mut got = 0usize;
                    while got < len as usize {
                        let piece = recv
                            .recv_raw(len as usize - got)
                            .await
                            .with_context(|| format!("reading the data of track {addr:?}"))?;
                        data.as_mut_slice()[got..got + piece.len()].copy_from_slice(&piece);
                        got += piece.len();
                    }
                    tracks += 1;
                    if tx.send(Received { addr, crc32c, data }).is_err() {
                        // The writer stopped: its error says why.
                        return Ok(());
                    }
                }
                RestoreFrame::SegmentDone { .. } => segments += 1,
                // Read from a copy on another stream of the same job; the
                // station counts every byte of the job at its end.
                RestoreFrame::Skipped { seq } => {
                    tracing::warn!(channel_id = %order.channel_id, %seq, "segment skipped: it comes from a copy");
                    skipped += 1;
                }
                RestoreFrame::End { tracks: n } => {
                    if n != tracks {
                        bail!("the front-end says {n} tracks, {tracks} arrived");
                    }
                    if tracks != order.tracks && skipped == 0 {
                        bail!(
                            "restore channel {} brought {tracks} of its {} tracks: {} missing",
                            order.channel_id,
                            order.tracks,
                            order.tracks - tracks
                        );
                    }
                    return Ok(());
                }
                RestoreFrame::Failed(failure) => bail!("{failure}"),
            }
        }
    }
    .await;
    drop(tx);
    let written = writer.await.context("the restore writer thread")?;
    received?;
    let (written_tracks, bytes_written) = written?;
    if written_tracks != tracks {
        bail!("{tracks} tracks arrived, {written_tracks} were written");
    }
    let _ = send.finish().await;
    Ok(RestoreTotals {
        tracks,
        bytes_written,
        segments,
    })
}

/// The writer thread: check each track, place its bytes, sync at the end.
/// Returns (tracks, bytes written).
fn write_tracks(
    rx: std::sync::mpsc::Receiver<Received>,
    placer: Placer,
    dest: Destination,
    progress: impl Fn(u64),
) -> Result<(u64, u64)> {
    let (mut tracks, mut bytes_written) = (0u64, 0u64);
    let mut placements = Vec::new();
    let mut run = WriteRun::default();
    for Received { addr, crc32c, data } in rx {
        let data = data.as_ref();
        let got = crc32c::crc32c(data);
        if got != crc32c {
            bail!(
                "track {addr:?} arrived with CRC32C {got:08x}, its frame says {crc32c:08x}: nothing of it was written"
            );
        }
        placements.clear();
        placer.place_into(addr, data.len(), &mut placements);
        if placements.is_empty() {
            bail!("track {addr:?} holds no byte of the object");
        }
        for p in &placements {
            let bytes = data
                .get(p.data.clone())
                .ok_or_else(|| anyhow!("placement outside the track"))?;
            run.add(&dest, p.target, p.offset, bytes)?;
            bytes_written += bytes.len() as u64;
        }
        tracks += 1;
        metrics::counter!("dmc_primary_restored_bytes_total").increment(data.len() as u64);
        progress(bytes_written);
    }
    run.flush(&dest)?;
    dest.sync()?;
    Ok((tracks, bytes_written))
}

/// Most bytes gathered into one write.
const RUN_LIMIT: usize = 1 << 20;

/// Placements that continue each other (consecutive tracks of one extent
/// land next to each other) gathered into one write: fewer, larger writes.
#[derive(Default)]
struct WriteRun {
    at: Option<(DestTarget, u64)>,
    buf: Vec<u8>,
}

impl WriteRun {
    fn add(&mut self, dest: &Destination, target: DestTarget, offset: u64, bytes: &[u8]) -> Result<()> {
        let continues = self
            .at
            .is_some_and(|(t, o)| t == target && o + self.buf.len() as u64 == offset);
        if !continues || self.buf.len() + bytes.len() > RUN_LIMIT {
            self.flush(dest)?;
            self.at = Some((target, offset));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self, dest: &Destination) -> Result<()> {
        if let Some((target, offset)) = self.at.take() {
            if !self.buf.is_empty() {
                dest.write(target, offset, &self.buf)?;
            }
        }
        self.buf.clear();
        Ok(())
    }
}
