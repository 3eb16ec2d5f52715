//! Copying a version back (seed 004): the target of one source volume
//! onto that source, or onto another data volume, node to node. The
//! target is read through a snapshot (no host writes it: target volumes
//! are read-only to hosts); the destination is written as host writes, so
//! its change map records the restore and the next version copies it.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use proto::abs::VolumeRef;
use proto::domain::{Failure, VersionRecordKind, VersionState, VolumeKey};
use proto::wire::CopyLane;

use super::copy::{copy, snapshots, Group, Lane};
use super::run::Busy;
use super::Station;

/// A data volume a node registered.
async fn registered(st: &Arc<Station>, key: &VolumeKey) -> Result<VolumeRef> {
    let reg = st.registry.lock().await;
    let node = reg.primaries.get(&key.node).ok_or_else(|| {
        anyhow!(Failure::not_found(format!(
            "primary node {} is not registered",
            key.node
        )))
    })?;
    node.volumes
        .iter()
        .find(|v| v.name == key.volume)
        .cloned()
        .ok_or_else(|| {
            anyhow!(Failure::not_found(format!(
                "primary node {} has no volume {}",
                key.node, key.volume
            )))
        })
}

/// Copy version `version` of `set` back: the target of source `volume`
/// onto `to` (None: onto `volume`). Returns (destination, tracks, bytes).
pub(crate) async fn versions_restore(
    st: &Arc<Station>,
    set: &str,
    version: u64,
    volume: &VolumeKey,
    to: Option<&VolumeKey>,
    by: &str,
) -> Result<(VolumeKey, u64, u64)> {
    let _busy = Busy::take(st, set)?;
    let records = st.catalog.version_records(Some(set)).await?;
    let kept: Vec<u64> = records
        .iter()
        .filter(|r| r.kind == VersionRecordKind::Replication && r.state == VersionState::Complete)
        .map(|r| r.number)
        .collect();
    let record = records
        .iter()
        .find(|r| r.kind == VersionRecordKind::Replication && r.number == version && r.state == VersionState::Complete)
        .ok_or_else(|| {
            anyhow!(Failure::not_found(format!(
                "set {set} keeps no version {version} (it keeps {kept:?})"
            )))
        })?;
    let pair = record.pairs.iter().find(|p| &p.source == volume).ok_or_else(|| {
        anyhow!(Failure::not_found(format!(
            "version {version} of set {set} has no copy of volume {volume}"
        )))
    })?;
    // The target must still hold this version of this source.
    let pools = st.catalog.vpools(Some(&record.target_vpool)).await?;
    let v = proto::wire::VersionRef {
        set: set.to_string(),
        version,
    };
    let target = super::holding_target(&pools, &pair.target, &v, volume)?;
    let dest = to.unwrap_or(volume).clone();
    let source = registered(st, volume).await;
    let dest_ref = registered(st, &dest).await?;
    // The bytes the version holds: the source's size (its target may be larger).
    let limit = source.map_or(dest_ref.size, |s| s.size);
    if dest_ref.size < limit || dest_ref.geometry != target.geometry {
        bail!(Failure::refused(format!(
            "{dest} ({} bytes, {:?}) cannot take the {limit} bytes of {volume} ({:?})",
            dest_ref.size, dest_ref.geometry, target.geometry
        )));
    }
    let group = Group {
        sender: pair.target.node.clone(),
        receiver: dest.node.clone(),
        lanes: vec![Lane {
            from: VolumeRef {
                name: pair.target.volume.clone(),
                geometry: target.geometry,
                size: target.size,
            },
            lane: CopyLane {
                to: dest.volume.clone(),
                limit,
                stamp: None,
            },
            since: None,
        }],
    };
    tracing::info!(set, version, from = %pair.target, to = %dest, %by, "copying a version back");
    let captured = snapshots(st, std::slice::from_ref(&group)).await?;
    let c = captured
        .first()
        .ok_or_else(|| anyhow!("no snapshot of {}", pair.target))?;
    let (tracks, bytes) = copy(st, &group, c).await?;
    tracing::info!(set, version, to = %dest, tracks, bytes, "version copied back");
    Ok((dest, tracks, bytes))
}
