//! Copying volumes between primary nodes for versions: one point in time
//! across every source volume, then one copy stream per (sending node,
//! receiving node), node to node; the station only orders and waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use proto::abs::{AbsMap, ObjectExtent, TrackSet, VolumeRef};
use proto::domain::{ChannelId, Failure, JobId, MapId};
use proto::wire::{Command, CommandReply, CopyLane, CopyReceive, CopySend, PeerAddr, VolumeEpoch};

use super::Station;

/// Longest a node holds host writes while snapshots are taken.
const HOLD_MS: u32 = 30_000;

/// Longest one copy stream may take before the station gives it up.
const COPY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// One volume to copy: bytes `0 .. limit` of `from` (a volume of the
/// sending node) onto the receiving node's volume `lane.to`.
pub(super) struct Lane {
    pub from: VolumeRef,
    pub lane: CopyLane,
    /// Copy only the tracks changed since this capture of `from`.
    pub since: Option<(MapId, u32)>,
}

/// The volumes one node sends to one node.
pub(super) struct Group {
    pub sender: String,
    pub receiver: String,
    pub lanes: Vec<Lane>,
}

/// A group's snapshot: its copy id, map, the tracks to send and what each
/// volume's snapshot captured.
pub(super) struct Captured {
    pub copy_id: ChannelId,
    pub map: AbsMap,
    pub tracks: TrackSet,
    pub epochs: Vec<VolumeEpoch>,
    pub notes: Vec<String>,
}

impl Captured {
    /// Bytes the copy writes onto volume `i` of its map.
    pub fn bytes_of(&self, i: u16, limit: u64) -> u64 {
        self.tracks
            .iter()
            .filter(|t| t.volume == i)
            .filter_map(|t| self.map.track_extent(t).ok())
            .map(|(off, len)| len.min(limit.saturating_sub(off)))
            .sum()
    }
}

/// The map of a group: bytes `0 .. limit` of each volume, in lane order.
fn group_map(g: &Group) -> Result<AbsMap> {
    let volumes: Vec<VolumeRef> = g.lanes.iter().map(|l| l.from.clone()).collect();
    let extents: Vec<ObjectExtent> = g
        .lanes
        .iter()
        .map(|l| ObjectExtent {
            volume: l.from.name.clone(),
            offset: 0,
            length: l.lane.limit,
        })
        .collect();
    let map = AbsMap::from_extents(&volumes, &extents)
        .map_err(|e| anyhow!(Failure::invalid(format!("the volumes {} sends: {e}", g.sender))))?;
    // from_extents keeps the volumes in order of first use: the lane order.
    if map.volumes.len() != g.lanes.len() {
        bail!(
            "the copy map of {} lists {} volumes for {} lanes",
            g.sender,
            map.volumes.len(),
            g.lanes.len()
        );
    }
    Ok(map)
}

/// Take every group's snapshot at one point in time: hold host writes on
/// every sending node (all held before any snapshot), take the snapshots,
/// let writes go on. Returns the point in time and each group's capture;
/// on failure nothing stays held or snapshotted.
pub(super) async fn capture(
    st: &Arc<Station>,
    hold: JobId,
    groups: &[Group],
) -> Result<(DateTime<Utc>, Vec<Captured>)> {
    let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for g in groups {
        by_node
            .entry(g.sender.as_str())
            .or_default()
            .extend(g.lanes.iter().map(|l| l.from.name.clone()));
    }
    let holds = by_node.iter().map(|(node, volumes)| {
        let cmd = Command::HoldWrites {
            hold,
            volumes: volumes.clone(),
            max_ms: HOLD_MS,
        };
        async move {
            st.command_ok(node, &cmd)
                .await
                .with_context(|| format!("holding host writes on {node}"))
        }
    });
    let held = futures::future::join_all(holds).await;
    let result = match held.into_iter().collect::<Result<Vec<_>>>() {
        Ok(_) => {
            let at = Utc::now();
            snapshots(st, groups).await.map(|c| (at, c))
        }
        Err(e) => Err(e),
    };
    for node in by_node.keys() {
        if let Err(e) = st.command_ok(node, &Command::ReleaseWrites { hold }).await {
            // The node lets writes go on by itself after HOLD_MS.
            tracing::warn!(node, error = %format!("{e:#}"), "could not end a write hold");
        }
    }
    result
}

/// Each group's snapshot (while writes are held).
pub(super) async fn snapshots(st: &Arc<Station>, groups: &[Group]) -> Result<Vec<Captured>> {
    let mut out: Vec<Captured> = Vec::with_capacity(groups.len());
    for g in groups {
        let taken = async {
            let map = group_map(g)?;
            let copy_id = ChannelId::new(st.catalog.next_copy_id().await?);
            let since: Vec<VolumeEpoch> = g
                .lanes
                .iter()
                .filter_map(|l| {
                    l.since.map(|(map_id, epoch)| VolumeEpoch {
                        volume: l.from.name.clone(),
                        map_id,
                        epoch,
                    })
                })
                .collect();
            let cmd = Command::TakeSnapshot {
                channel_id: copy_id,
                map: map.clone(),
                since,
            };
            match st.command_ok(&g.sender, &cmd).await? {
                CommandReply::Snapshot { epochs, tracks, notes } => Ok(Captured {
                    copy_id,
                    map,
                    tracks,
                    epochs,
                    notes,
                }),
                other => Err(anyhow!("{} answered a snapshot with {other:?}", g.sender)),
            }
        }
        .await;
        match taken {
            Ok(c) => out.push(c),
            Err(e) => {
                for (c, g) in out.iter().zip(groups) {
                    abort(st, &g.sender, c.copy_id, "another snapshot of the version failed").await;
                }
                return Err(e.context(format!("snapshot of the volumes of {}", g.sender)));
            }
        }
    }
    Ok(out)
}

/// Drop a copy's snapshot (or expectation) on `node`.
pub(super) async fn abort(st: &Arc<Station>, node: &str, copy_id: ChannelId, reason: &str) {
    let cmd = Command::AbortChannel {
        channel_id: copy_id,
        reason: reason.to_string(),
    };
    if let Err(e) = st.command_ok(node, &cmd).await {
        tracing::warn!(node, %copy_id, error = %format!("{e:#}"), "could not drop a copy");
    }
}

/// Where peers reach primary node `name` (its connection's address: the
/// one its QUIC endpoint listens on).
async fn node_addr(st: &Arc<Station>, name: &str) -> Result<PeerAddr> {
    let peers = st.peers.lock().await;
    let p = peers.get(name).ok_or_else(|| {
        anyhow!(Failure::retryable(format!(
            "primary node {name} is not connected to the station"
        )))
    })?;
    Ok(PeerAddr {
        name: name.to_string(),
        address: p.conn.remote_address().to_string(),
        boot: p.boot,
    })
}

/// Copy one group: the receiver expects it, the sender sends it. Returns
/// (tracks, bytes) once the receiver synced it (and wrote its records).
/// The sender's snapshot goes however it ends.
pub(super) async fn copy(st: &Arc<Station>, g: &Group, c: &Captured) -> Result<(u64, u64)> {
    let token: [u8; 16] = rand::random();
    let receive = CopyReceive {
        copy_id: c.copy_id,
        token,
        sender: g.sender.clone(),
        map: c.map.clone(),
        lanes: g.lanes.iter().map(|l| l.lane.clone()).collect(),
        tracks: c.tracks.len(),
    };
    let sent = async {
        st.command_ok(&g.receiver, &Command::ReceiveCopy(receive))
            .await
            .with_context(|| format!("{} cannot take the copy", g.receiver))?;
        let send = CopySend {
            copy_id: c.copy_id,
            token,
            receiver: node_addr(st, &g.receiver).await?,
            map: c.map.clone(),
            tracks: c.tracks.clone(),
        };
        match st
            .command_within(&g.sender, &Command::SendCopy(send), COPY_TIMEOUT)
            .await?
        {
            CommandReply::Copied { tracks, bytes } => Ok((tracks, bytes)),
            CommandReply::Error(f) => Err(anyhow!(f)),
            other => Err(anyhow!("{} answered a copy with {other:?}", g.sender)),
        }
    }
    .await;
    if sent.is_err() {
        abort(st, &g.sender, c.copy_id, "the copy failed").await;
        abort(st, &g.receiver, c.copy_id, "the copy failed").await;
    }
    sent.with_context(|| format!("copy {} from {} to {}", c.copy_id, g.sender, g.receiver))
}
