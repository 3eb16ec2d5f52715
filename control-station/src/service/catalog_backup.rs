//! Catalog backup (seed 000 claim 12): the catalog database itself goes to
//! tape, like any backup.
//!
//! The station takes a consistent dump of its database (`pg_dump`, custom
//! format: one repeatable-read snapshot), records it as a full ABS of
//! object [`CATALOG_OBJECT`] of the reserved primary node [`STATION_NODE`]
//! in a pool of kind `catalog`, and has a mover pair write it: the
//! front-end fetches the dump from the station ([`serve_dump`]: raw bytes
//! after one header frame, on a stream of its own), seals it into segments
//! like any accumulation file, and its back-end writes them and the ABS
//! metadata on a scratch tape of that pool. The tape is self-describing:
//! `control-station catalog restore --from IMAGE` rebuilds the database
//! from it with no catalog at all (see [`crate::catalog_restore`]).
//!
//! The dump is taken before the catalog backup's own ABS is recorded, so
//! a restored catalog learns of that ABS from the tape it was read from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use proto::abs::{AbsMap, Geometry, MapExtent, VolumeRef};
use proto::domain::{ChannelId, Failure, Level};
use proto::wire::{ChannelEvent, Command, StationReply, CATALOG_OBJECT, MAX_CATALOG_DUMP, STATION_NODE};
use tokio::io::AsyncReadExt;
use transport::{FramedSend, Peer};

use super::backup::{await_written, close_written, open_writing_channel, settle, Held};
use super::events::EventSink;
use super::merge::{open_writer, started_event};
use super::{failure_of, registry, NoteRx, Station};
use crate::catalog::Abs;
use crate::channel::ChannelInput;

/// Track size of a catalog dump's map: the front-end reads and seals it
/// this many bytes at a time.
pub const DUMP_TRACK_SIZE: u32 = 256 * 1024;

/// The volume of the reserved node a dump is mapped onto.
pub const DUMP_VOLUME: &str = "catalog-dump";

/// A running catalog backup's dump, served to its front-end only.
pub(crate) struct Dump {
    pub path: PathBuf,
    pub bytes: u64,
    pub front_end: String,
}

/// The map of a dump of `bytes` bytes: one volume, one extent, byte `i` of
/// the dump at logical offset `i`.
pub fn dump_map(bytes: u64) -> Result<AbsMap> {
    if bytes == 0 || bytes > MAX_CATALOG_DUMP {
        bail!("a catalog dump of {bytes} bytes: expected 1 to {MAX_CATALOG_DUMP} bytes");
    }
    let map = AbsMap {
        volumes: vec![VolumeRef {
            name: DUMP_VOLUME.into(),
            geometry: Geometry {
                block_size: 1,
                track_size: DUMP_TRACK_SIZE,
            },
            size: bytes,
        }],
        extents: vec![MapExtent {
            logical_offset: 0,
            length: bytes,
            volume: 0,
            volume_offset: 0,
        }],
        object_size: bytes,
    };
    map.validate()
        .map_err(|e| anyhow!("the map of a {bytes}-byte dump: {e}"))?;
    Ok(map)
}

pub(crate) async fn run(st: Arc<Station>, client: &Peer, pool: String, send: &mut FramedSend) {
    let started = Instant::now();
    let event = match backup(&st, client, &pool, send, started).await {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

async fn backup(
    st: &Arc<Station>,
    client: &Peer,
    pool: &str,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    st.catalog.ensure_catalog_pool(pool).await?;
    let dir = tempfile::Builder::new()
        .prefix("dmc-catalog-dump")
        .tempdir()
        .context("a temporary directory for the catalog dump")?;
    let path = dir.path().join("catalog.dump");
    let bytes = st
        .cfg
        .pg_tools
        .dump(&st.cfg.database_url, &path)
        .await
        .context("dumping the catalog database")?;
    tracing::info!(bytes, pool, "catalog dumped");
    let map = dump_map(bytes)?;
    let node = st.catalog.register_primary_node(STATION_NODE, &map.volumes).await?;
    let (_, abs_id) = st
        .catalog
        .create_abs(CATALOG_OBJECT, node, Level::Full, None, &map, pool)
        .await?;
    let abs = st
        .catalog
        .load_abs(abs_id)
        .await?
        .ok_or_else(|| anyhow!("ABS {abs_id} vanished"))?;
    let (mut held, mut notes) = open_writing_channel(st, client, abs_id, "catalog backup").await?;
    let channel_id = held.channel.id();
    send.emit(ChannelEvent::Accepted { channel_id, abs_id }).await;
    let outcome = write(st, &mut held, &mut notes, &abs, path, send, started).await;
    st.dumps.lock().await.remove(&channel_id);
    st.channels.lock().await.remove(&channel_id);
    st.depends_on(channel_id, &[]).await;
    settle(st, &mut held, outcome, &[]).await
}

/// Write the dump at `path` as ABS `abs` on one drive.
async fn write(
    st: &Arc<Station>,
    held: &mut Held,
    notes: &mut NoteRx,
    abs: &Abs,
    path: PathBuf,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let channel_id = held.channel.id();
    held.expected_tracks = Some(abs.map.track_set().len());
    send.emit(started_event(channel_id, abs.id, &abs.map)).await;
    let (pair, drives) = registry::assign_drives(st, Duration::from_secs(600), 1, "a catalog backup", None)
        .await
        .context("a catalog backup writes on one drive")?;
    let drive = drives
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no drive was assigned to the catalog backup"))?;
    held.assignment = Some((pair.clone(), vec![drive.clone()]));
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name]).await;
    let opened = format!(
        "front-end {}, back-end {}, drive {} writes",
        pair.fe_name, pair.be_name, drive.name
    );
    held.channel.step(st, ChannelInput::Assigned(opened), send).await?;
    let tape = open_writer(st, held, &pair, &drive, abs, None, send)
        .await
        .context("opening the catalog backup on the front-end")?;
    st.dumps.lock().await.insert(
        channel_id,
        Dump {
            path,
            bytes: abs.map.object_size,
            front_end: pair.fe_name.clone(),
        },
    );
    st.command_ok(&pair.fe_name, &Command::MergeFromStation { channel_id })
        .await
        .context("sending the dump to the front-end")?;
    let writing = format!(
        "writing the catalog dump ({} bytes) to tape {}",
        abs.map.object_size, tape.label
    );
    held.channel.step(st, ChannelInput::StreamOpened(writing), send).await?;
    st.command_ok(&pair.fe_name, &Command::FinishMerge { channel_id })
        .await
        .context("finishing the catalog backup")?;
    let drives = std::slice::from_ref(&drive);
    let written = await_written(st, &mut held.channel, drives, None, notes, send).await?;
    close_written(st, held, written, "catalog backup: ", send, started).await
}

/// Bytes read from the dump file and sent at a time.
const DUMP_CHUNK: usize = 1 << 20;

/// Answer a front-end's [`proto::wire::StationRequest::FetchDump`]: the
/// dump of catalog backup channel `channel_id`, to the front-end that
/// channel was assigned to and no other.
pub(crate) async fn serve_dump(st: &Arc<Station>, peer: &Peer, channel_id: ChannelId, send: &mut FramedSend) {
    let mut announced = false;
    if let Err(e) = send_dump(st, peer, channel_id, send, &mut announced).await {
        let failure = failure_of(&e);
        tracing::warn!(peer = %peer.name, channel = %channel_id, error = %failure.message, "dump not sent");
        if announced {
            // The front-end is counting raw bytes: a reset stream tells it
            // the dump ended early.
            let _ = send.reset(transport::codes::REFUSED);
        } else {
            let _ = send.send(&StationReply::Error(failure)).await;
        }
    }
}

async fn send_dump(
    st: &Arc<Station>,
    peer: &Peer,
    channel_id: ChannelId,
    send: &mut FramedSend,
    announced: &mut bool,
) -> Result<()> {
    let (path, bytes) = {
        let dumps = st.dumps.lock().await;
        let dump = dumps.get(&channel_id).ok_or_else(|| {
            anyhow!(Failure::not_found(format!(
                "channel {channel_id} is not a running catalog backup"
            )))
        })?;
        if dump.front_end != peer.name {
            bail!(Failure::refused(format!(
                "not authorized: catalog backup channel {channel_id} writes through front-end {}, not {}",
                dump.front_end, peer.name
            )));
        }
        (dump.path.clone(), dump.bytes)
    };
    let mut file = tokio::fs::File::open(&path)
        .await
        .with_context(|| format!("opening the catalog dump {}", path.display()))?;
    *announced = true;
    send.send(&StationReply::Dump { bytes }).await?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(DUMP_CHUNK);
        let mut buf = vec![0u8; n];
        file.read_exact(&mut buf)
            .await
            .with_context(|| format!("reading the catalog dump {}", path.display()))?;
        send.send_raw(Bytes::from(buf)).await?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_maps_onto_whole_tracks_and_a_short_last_one() {
        let n = u64::from(DUMP_TRACK_SIZE) * 3 + 17;
        let map = dump_map(n).unwrap();
        let tracks: Vec<_> = map.track_set().iter().collect();
        assert_eq!(tracks.len(), 4);
        let lens: Vec<u64> = tracks.iter().map(|t| map.track_extent(*t).unwrap().1).collect();
        assert_eq!(
            lens,
            vec![u64::from(DUMP_TRACK_SIZE); 3]
                .into_iter()
                .chain([17])
                .collect::<Vec<_>>()
        );
        assert_eq!(lens.iter().sum::<u64>(), n);
    }

    #[test]
    fn an_empty_or_huge_dump_is_refused() {
        assert!(dump_map(0).is_err());
        assert!(dump_map(MAX_CATALOG_DUMP + 1).is_err());
        assert!(dump_map(1).is_ok());
    }
}
