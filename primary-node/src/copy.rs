//! Copies between primary nodes, storage to storage (copy versions, seed
//! 004): the receiving side of a copy stream.
//!
//! The station first tells the receiving node what to expect
//! ([`CopyReceive`]: which node sends, its capability, where each of its
//! volumes lands); the sending node then streams the tracks of its
//! snapshot with the backup stream's frames ([`crate::send`]). Each track
//! is checked (it belongs to the map, its length, its CRC32C) and written
//! at the same offset of its lane's volume; every `window / 2` tracks the
//! volumes are synced and only then acknowledged, so the sender releases
//! its side copies only for tracks durable here. At the end every volume
//! is synced and each version copy's management record written, then the
//! stream is acknowledged complete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{ChannelId, Failure};
use proto::wire::{tokens_equal, CopyReceive, TrackAck, TrackFrame};
use transport::{FramedRecv, FramedSend};

use crate::host::HostIo;

/// Most copies one node expects at once.
const MAX_EXPECTED: usize = 1024;

/// Copies the station announced and whose stream has not arrived yet.
#[derive(Default)]
pub struct Expected {
    copies: Mutex<HashMap<ChannelId, CopyReceive>>,
}

impl Expected {
    /// Check `order` against this node's volumes, clear the management
    /// region of every target it writes a version onto (from now on they
    /// hold no version), and expect its stream.
    pub fn expect(&self, host: &HostIo, order: CopyReceive) -> Result<()> {
        check(host, &order)?;
        for lane in order.lanes.iter().filter(|l| l.stamp.is_some()) {
            host.volume(&lane.to)?.volume.clear_stamp()?;
        }
        let mut copies = self.copies.lock().map_err(|_| anyhow!("expected copies poisoned"))?;
        if copies.len() >= MAX_EXPECTED {
            bail!("this node expects {MAX_EXPECTED} copies already");
        }
        tracing::info!(
            copy_id = %order.copy_id,
            sender = %order.sender,
            volumes = order.lanes.len(),
            tracks = order.tracks,
            "expecting a copy"
        );
        copies.insert(order.copy_id, order);
        Ok(())
    }

    /// Stop expecting copy `copy_id` (the station gave it up).
    pub fn forget(&self, copy_id: ChannelId) {
        if let Ok(mut c) = self.copies.lock() {
            c.remove(&copy_id);
        }
    }

    /// The expected copy `copy_id`, if `peer` is its sender and presents
    /// its token (taken: a stream is received once).
    fn take(&self, copy_id: ChannelId, token: &[u8; 16], peer: &str) -> Result<CopyReceive> {
        let mut copies = self.copies.lock().map_err(|_| anyhow!("expected copies poisoned"))?;
        let order = copies
            .get(&copy_id)
            .ok_or_else(|| anyhow!(Failure::not_found(format!("this node expects no copy {copy_id}"))))?;
        if order.sender != peer || !tokens_equal(&order.token, token) {
            bail!(Failure::refused(format!(
                "copy {copy_id} is not {peer}'s to send (wrong node or capability)"
            )));
        }
        copies
            .remove(&copy_id)
            .ok_or_else(|| anyhow!("copy {copy_id} vanished"))
    }
}

/// A copy order fits this node: every lane's volume exists, has the
/// geometry of the volume it copies and room for its bytes, and is a
/// target volume exactly when a version is written onto it.
fn check(host: &HostIo, order: &CopyReceive) -> Result<()> {
    order
        .map
        .validate()
        .map_err(|e| anyhow!(Failure::invalid(format!("copy {}: invalid map: {e}", order.copy_id))))?;
    if order.lanes.len() != order.map.volumes.len() {
        bail!(Failure::invalid(format!(
            "copy {}: {} lanes for {} volumes",
            order.copy_id,
            order.lanes.len(),
            order.map.volumes.len()
        )));
    }
    if order.tracks > order.map.track_set().len() {
        bail!(Failure::invalid(format!(
            "copy {}: {} tracks, the map has {}",
            order.copy_id,
            order.tracks,
            order.map.track_set().len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (lane, from) in order.lanes.iter().zip(&order.map.volumes) {
        let to = &host
            .volume(&lane.to)
            .map_err(|e| anyhow!(Failure::not_found(format!("{e:#}"))))?
            .volume;
        if !seen.insert(lane.to.as_str()) {
            bail!(Failure::invalid(format!(
                "copy {}: volume {} is written twice",
                order.copy_id, lane.to
            )));
        }
        if to.geometry != from.geometry {
            bail!(Failure::refused(format!(
                "copy {}: volume {} has geometry {:?}, the copied volume {} has {:?}",
                order.copy_id, lane.to, to.geometry, from.name, from.geometry
            )));
        }
        if lane.limit > from.size || lane.limit > to.size {
            bail!(Failure::refused(format!(
                "copy {}: {} bytes of {} ({} bytes) onto {} ({} bytes): too large",
                order.copy_id, lane.limit, from.name, from.size, lane.to, to.size
            )));
        }
        match (&lane.stamp, to.is_target()) {
            (Some(_), false) => bail!(Failure::refused(format!(
                "copy {}: volume {} is not a target volume: no version is copied onto it",
                order.copy_id, lane.to
            ))),
            (None, true) => bail!(Failure::refused(format!(
                "copy {}: volume {} is a target volume: only a version copy writes it",
                order.copy_id, lane.to
            ))),
            _ => {}
        }
    }
    Ok(())
}

/// Serve one copy stream from `peer` (its opening frame read: `copy_id`,
/// `token`, `window`).
pub async fn serve(
    host: Arc<HostIo>,
    expected: &Expected,
    peer: &str,
    open: (ChannelId, [u8; 16], u64),
    mut send: FramedSend,
    mut recv: FramedRecv,
) {
    let (copy_id, token, window) = open;
    let outcome = match expected.take(copy_id, &token, peer) {
        Ok(order) => receive(&host, order, window, &mut send, &mut recv).await,
        Err(e) => Err(e),
    };
    let reply = match outcome {
        Ok((tracks, bytes)) => {
            tracing::info!(%copy_id, sender = peer, tracks, bytes, "copy received and synced");
            TrackAck::Complete
        }
        Err(e) => {
            tracing::error!(%copy_id, sender = peer, error = %format!("{e:#}"), "copy failed");
            TrackAck::Failed(Failure::from_chain(
                e.chain(),
                format!("copy {copy_id} onto this node: {e:#}"),
                proto::domain::FailureCode::Internal,
            ))
        }
    };
    if send.send(&reply).await.is_ok() {
        let _ = send.finish().await;
    }
}

/// Receive the tracks, write them, sync, write the records. Returns
/// (tracks, bytes written).
async fn receive(
    host: &HostIo,
    order: CopyReceive,
    window: u64,
    send: &mut FramedSend,
    recv: &mut FramedRecv,
) -> Result<(u64, u64)> {
    let ack_every = (window / 2).max(1);
    let max_track = order.map.largest_track().min(proto::tape::MAX_TRACK_SIZE);
    let mut buf = vec![0u8; max_track];
    let (mut tracks, mut bytes, mut unsynced) = (0u64, 0u64, 0u64);
    let mut seen = std::collections::HashSet::new();
    loop {
        let frame = recv
            .recv::<TrackFrame>()
            .await?
            .ok_or_else(|| anyhow!("the sender closed the copy stream before its end"))?;
        match frame {
            TrackFrame::Track { addr, len, crc32c } => {
                let (offset, want) = order.map.track_extent(addr).context("track not in the copy's map")?;
                let n = len as usize;
                if u64::from(len) != want || n > buf.len() {
                    bail!("track {addr:?} has {len} bytes, the map says {want}");
                }
                if tracks >= order.tracks || !seen.insert(addr) {
                    bail!(
                        "track {addr:?}: more tracks than the {} expected, or twice",
                        order.tracks
                    );
                }
                let mut got = 0usize;
                while got < n {
                    let piece = recv
                        .recv_raw(n - got)
                        .await
                        .with_context(|| format!("reading the data of track {addr:?}"))?;
                    buf[got..got + piece.len()].copy_from_slice(&piece);
                    got += piece.len();
                }
                let data = &buf[..n];
                let crc = crc32c::crc32c(data);
                if crc != crc32c {
                    bail!("track {addr:?} arrived with CRC32C {crc:08x}, its frame says {crc32c:08x}");
                }
                let lane = order
                    .lanes
                    .get(usize::from(addr.volume))
                    .ok_or_else(|| anyhow!("track {addr:?}: no lane"))?;
                // Only bytes 0 .. limit of the volume are copied.
                let keep = usize::try_from(lane.limit.saturating_sub(offset))
                    .unwrap_or(usize::MAX)
                    .min(n);
                let to = host.volume(&lane.to)?;
                tokio::task::block_in_place(|| {
                    if lane.stamp.is_some() {
                        to.write_version(offset, &data[..keep])
                    } else {
                        to.write(offset, &data[..keep])
                    }
                })?;
                tracks += 1;
                unsynced += 1;
                bytes += keep as u64;
                metrics::counter!("dmc_primary_copy_bytes_received_total").increment(keep as u64);
                if unsynced >= ack_every {
                    sync(host, &order)?;
                    unsynced = 0;
                    send.send(&TrackAck::OnTape { tracks }).await?;
                }
            }
            TrackFrame::End { tracks: n } => {
                if n != tracks || tracks != order.tracks {
                    bail!(
                        "the sender ended after {n} tracks; {tracks} arrived, {} were expected",
                        order.tracks
                    );
                }
                sync(host, &order)?;
                for lane in &order.lanes {
                    if let Some(stamp) = &lane.stamp {
                        host.volume(&lane.to)?.volume.write_stamp(stamp)?;
                        tracing::info!(volume = %lane.to, set = %stamp.set, version = stamp.version, "version recorded in the management region");
                    }
                }
                send.send(&TrackAck::OnTape { tracks }).await?;
                return Ok((tracks, bytes));
            }
        }
    }
}

/// Make every write of the copy durable.
fn sync(host: &HostIo, order: &CopyReceive) -> Result<()> {
    tokio::task::block_in_place(|| order.lanes.iter().try_for_each(|l| host.volume(&l.to)?.flush()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::abs::{AbsMap, Geometry, ObjectExtent, VolumeRef};
    use proto::domain::{FailureCode, Uuid, VolumeKey};
    use proto::region::VersionStamp;
    use proto::wire::CopyLane;

    use crate::volume::Volume;

    const G: Geometry = Geometry {
        block_size: 4096,
        track_size: 65536,
    };
    const SIZE: u64 = 1 << 20;

    fn host(dir: &std::path::Path) -> HostIo {
        let t = dir.join("t.img");
        std::fs::File::create(&t)
            .unwrap()
            .set_len(SIZE + proto::region::REGION_BYTES as u64)
            .unwrap();
        let d = dir.join("d.img");
        std::fs::File::create(&d).unwrap().set_len(SIZE).unwrap();
        let vols = HashMap::from([
            ("t".to_string(), Arc::new(Volume::open_target("t", &t, G).unwrap())),
            ("d".to_string(), Arc::new(Volume::open("d", &d, G).unwrap())),
        ]);
        HostIo::open(&vols, &dir.join("state"), u64::MAX).unwrap()
    }

    fn stamp() -> VersionStamp {
        VersionStamp {
            cluster_id: Uuid::from_random_bytes([3; 16]),
            set: "s".into(),
            version: 2,
            point_in_time_ms: 1,
            source: VolumeKey::new("pn1", "src"),
            target: VolumeKey::new("pn2", "t"),
            source_size: SIZE,
            block_size: G.block_size,
            track_size: G.track_size,
            bytes_copied: SIZE,
            base_version: 0,
            pairs: Vec::new(),
            written_ms: 1,
        }
    }

    fn order(to: &str, stamp: Option<VersionStamp>, size: u64) -> CopyReceive {
        let from = VolumeRef {
            name: "src".into(),
            geometry: G,
            size,
        };
        let map = AbsMap::from_extents(
            std::slice::from_ref(&from),
            &[ObjectExtent {
                volume: "src".into(),
                offset: 0,
                length: size,
            }],
        )
        .unwrap();
        CopyReceive {
            copy_id: ChannelId::new(5),
            token: [9; 16],
            sender: "pn1".into(),
            map,
            lanes: vec![CopyLane {
                to: to.into(),
                limit: size,
                stamp,
            }],
            tracks: size / u64::from(G.track_size),
        }
    }

    fn code(e: &anyhow::Error) -> Option<FailureCode> {
        e.chain().find_map(|c| c.downcast_ref::<Failure>()).map(|f| f.code)
    }

    #[test]
    fn a_copy_stream_is_taken_once_from_its_sender_with_its_token() {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path());
        let t = &host.volume("t").unwrap().volume;
        t.write_stamp(&VersionStamp { version: 1, ..stamp() }).unwrap();
        let expected = Expected::default();
        expected.expect(&host, order("t", Some(stamp()), SIZE)).unwrap();
        // From now on the target holds no version (until the copy ends).
        assert_eq!(t.target_report().unwrap().stamp, None);
        let e = expected.take(ChannelId::new(5), &[9; 16], "pn3").unwrap_err();
        assert_eq!(code(&e), Some(FailureCode::Refused), "{e:#}");
        let e = expected.take(ChannelId::new(5), &[8; 16], "pn1").unwrap_err();
        assert_eq!(code(&e), Some(FailureCode::Refused), "{e:#}");
        assert!(expected.take(ChannelId::new(5), &[9; 16], "pn1").is_ok());
        let e = expected.take(ChannelId::new(5), &[9; 16], "pn1").unwrap_err();
        assert_eq!(code(&e), Some(FailureCode::NotFound), "{e:#}");
        // Forgotten (the station aborted it): not taken.
        expected.expect(&host, order("t", Some(stamp()), SIZE)).unwrap();
        expected.forget(ChannelId::new(5));
        assert!(expected.take(ChannelId::new(5), &[9; 16], "pn1").is_err());
    }

    #[test]
    fn a_copy_onto_the_wrong_kind_of_volume_or_too_large_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let host = host(dir.path());
        let expected = Expected::default();
        for (o, why) in [
            (order("d", Some(stamp()), SIZE), "not a target volume"),
            (order("t", None, SIZE), "only a version copy writes it"),
            (order("t", Some(stamp()), 2 * SIZE), "too large"),
            (order("nope", Some(stamp()), SIZE), "no volume"),
        ] {
            let e = expected.expect(&host, o).unwrap_err();
            assert!(format!("{e:#}").contains(why), "{e:#}");
        }
        let mut wrong = order("t", Some(stamp()), SIZE);
        wrong.map.volumes[0].geometry.track_size = 131072;
        assert!(expected.expect(&host, wrong).is_err());
    }
}
