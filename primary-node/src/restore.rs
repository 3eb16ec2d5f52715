//! Restore: receive a restore stream from a front-end and write each track's
//! bytes where the remap table says (FIG. 15/16).
//!
//! The back-end verified every checksum of a segment before handing it
//! over; the node checks again that every track belongs to the ABS, that
//! its length matches the map and its bytes their CRC32C, before writing it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::{DestTarget, Placer};
use proto::wire::{RestoreFrame, RestoreOrder, RestoreTarget, TrackStreamOpen, MAX_DATA_FRAME};
use transport::{Dialer, Role};

use crate::host::HostIo;

/// Where the placements land.
pub enum Destination {
    /// Volumes of this node, written as host writes (their change maps
    /// record the restore; a backup running on them keeps its image).
    Volumes {
        host: Arc<HostIo>,
        names: Vec<String>,
    },
    File {
        path: PathBuf,
        file: File,
    },
}

impl Destination {
    /// Resolve the order's target on this node.
    pub fn open(order: &RestoreOrder, host: &Arc<HostIo>) -> Result<Destination> {
        match &order.target {
            RestoreTarget::File { path, .. } => {
                let path = PathBuf::from(path);
                // Never truncated: restore streams of several drives write
                // into the same file, each its own tracks; every byte of the
                // object is rewritten, and set_len cuts anything beyond it.
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .with_context(|| format!("creating restore file {}", path.display()))?;
                file.set_len(order.remap.object_size)
                    .with_context(|| format!("sizing restore file {}", path.display()))?;
                Ok(Destination::File { path, file })
            }
            RestoreTarget::Original | RestoreTarget::Volumes { .. } => {
                let names = order
                    .remap
                    .volumes
                    .iter()
                    .map(|v| {
                        let local = &host.volume(&v.name)?.volume;
                        if local.size < v.size || local.geometry != v.geometry {
                            bail!("destination volume {} does not match the remap table", v.name);
                        }
                        Ok(v.name.clone())
                    })
                    .collect::<Result<Vec<_>>>()?;
                // Stamp every destination track changed with one sync per
                // volume, not one per track written.
                for (i, name) in names.iter().enumerate() {
                    let ranges: Vec<(u64, u64)> = order
                        .remap
                        .extents
                        .iter()
                        .filter(|e| e.target == DestTarget::Volume(i as u16))
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

/// Dial the front-end, receive the stream, write it, sync.
///
/// Each track's raw bytes are read into one reused buffer and checked
/// against the CRC32C its frame carries before any of them is written.
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
        .connect(&order.front_end.name, addr, Role::Mover)
        .await
        .with_context(|| format!("dialling front-end {}", order.front_end.name))?;
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_DATA_FRAME).await?;
    send.send(&TrackStreamOpen::Restore {
        channel_id: order.channel_id,
    })
    .await?;

    let mut totals = RestoreTotals::default();
    let mut data: Vec<u8> = Vec::new();
    loop {
        let frame = recv
            .recv::<RestoreFrame>()
            .await?
            .ok_or_else(|| anyhow!("the front-end closed the restore stream early"))?;
        match frame {
            RestoreFrame::Track { addr, len, crc32c } => {
                let (_, want) = order.map.track_extent(addr).context("track not in the ABS map")?;
                if u64::from(len) != want {
                    bail!("track {addr:?} has {len} bytes, the map says {want}");
                }
                data.clear();
                while data.len() < len as usize {
                    let piece = recv
                        .recv_raw(len as usize - data.len())
                        .await
                        .with_context(|| format!("reading the data of track {addr:?}"))?;
                    data.extend_from_slice(&piece);
                }
                let got = crc32c::crc32c(&data);
                if got != crc32c {
                    bail!("track {addr:?} arrived with CRC32C {got:08x}, its frame says {crc32c:08x}: nothing of it was written");
                }
                let placements = placer.place(addr, data.len());
                if placements.is_empty() {
                    bail!("track {addr:?} holds no byte of the object");
                }
                tokio::task::block_in_place(|| {
                    for p in &placements {
                        let bytes = data
                            .get(p.data.clone())
                            .ok_or_else(|| anyhow!("placement outside the track"))?;
                        dest.write(p.target, p.offset, bytes)?;
                        totals.bytes_written += bytes.len() as u64;
                    }
                    Ok::<_, anyhow::Error>(())
                })?;
                totals.tracks += 1;
                metrics::counter!("dmc_primary_restored_bytes_total").increment(data.len() as u64);
                progress(totals.bytes_written);
            }
            RestoreFrame::SegmentDone { .. } => totals.segments += 1,
            RestoreFrame::End { tracks } => {
                if tracks != totals.tracks {
                    bail!("the front-end says {tracks} tracks, {} arrived", totals.tracks);
                }
                break;
            }
            RestoreFrame::Failed { reason } => bail!("{reason}"),
        }
    }
    tokio::task::block_in_place(|| dest.sync())?;
    let _ = send.finish().await;
    Ok(totals)
}
