//! Copy versions (seed 004, issue 15): volume pools, version sets, the
//! pre-pairing record of a set's next version ([`plan`]), making a version
//! ([`run`]) and copying one back ([`restore`]). The choices are made by
//! the pure core [`crate::plan::versions`]; this gathers its inputs from
//! the catalog and the registry, stores what it decided, and has the
//! primary nodes copy.

mod copy;
mod plan;
mod recover;
mod restore;
mod run;
mod source;

pub(crate) use plan::versions_prepare;
pub(crate) use recover::recover;
pub(crate) use restore::versions_restore;
pub(crate) use run::versions_run;
pub(crate) use run::Busy;
pub(crate) use source::reader;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use proto::domain::{Failure, VolumeKey, VpoolKind};
use proto::wire::{VersionPair, VersionRecordInfo, VersionSetInfo, VpoolInfo, VpoolVolume};

use super::Station;
use crate::catalog::VersionRecordRow;
use crate::plan::versions::check_shape;

/// Most volumes one request names.
const MAX_VOLUMES: usize = 4096;

fn unix_ms(t: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// Check a request's volume list.
fn check_volumes(volumes: &[VolumeKey]) -> Result<()> {
    if volumes.is_empty() || volumes.len() > MAX_VOLUMES {
        bail!(Failure::invalid(format!(
            "--volumes: 1 to {MAX_VOLUMES} volumes (NODE:VOLUME, comma-separated), not {}",
            volumes.len()
        )));
    }
    Ok(())
}

/// The peers connected now (a node is online while its connection is).
async fn online(st: &Arc<Station>) -> BTreeSet<String> {
    st.peers.lock().await.keys().cloned().collect()
}

/// Define, grow or shrink a volume pool, then list them all.
pub(crate) async fn vpool_define(
    st: &Arc<Station>,
    name: &str,
    kind: VpoolKind,
    volumes: &[VolumeKey],
) -> Result<Vec<VpoolInfo>> {
    check_volumes(volumes)?;
    st.catalog.vpool_define(name, kind, volumes).await?;
    tracing::info!(vpool = name, %kind, volumes = volumes.len(), "volume pool defined");
    vpools(st).await
}

pub(crate) async fn vpool_change(
    st: &Arc<Station>,
    name: &str,
    volumes: &[VolumeKey],
    add: bool,
) -> Result<Vec<VpoolInfo>> {
    check_volumes(volumes)?;
    if add {
        st.catalog.vpool_add(name, volumes).await?;
    } else {
        st.catalog.vpool_remove(name, volumes).await?;
    }
    tracing::info!(vpool = name, add, volumes = volumes.len(), "volume pool changed");
    vpools(st).await
}

/// Every volume pool.
pub(crate) async fn vpools(st: &Arc<Station>) -> Result<Vec<VpoolInfo>> {
    let up = online(st).await;
    Ok(st
        .catalog
        .vpools(None)
        .await?
        .into_iter()
        .map(|p| VpoolInfo {
            volumes: p
                .volumes
                .into_iter()
                .map(|v| VpoolVolume {
                    online: up.contains(&v.key.node),
                    volume: v.key,
                    size: v.size,
                    block_size: v.geometry.block_size,
                    track_size: v.geometry.track_size,
                    target: v.target,
                    holds: v.holds,
                    region_damaged: v.region_damaged,
                })
                .collect(),
            name: p.name,
            kind: p.kind,
            version_set: p.version_set,
        })
        .collect())
}

/// Define a version set.
pub(crate) async fn versions_define(
    st: &Arc<Station>,
    name: &str,
    source: &str,
    targets: &[String],
    keep: u32,
    pre: Option<&proto::wire::PreCommand>,
    by: &str,
) -> Result<Vec<VersionSetInfo>> {
    check_shape(targets.len(), keep).map_err(|e| anyhow!(Failure::invalid(format!("version set {name}: {e}"))))?;
    if let Some(p) = pre {
        let max = crate::service::definitions::MAX_COMMAND;
        if p.command.is_empty() || p.command.len() > max {
            bail!(Failure::invalid(format!(
                "--pre: 1 to {max} bytes, not {}",
                p.command.len()
            )));
        }
        if p.timeout_seconds == 0 || p.timeout_seconds > 86_400 {
            bail!(Failure::invalid("--hook-timeout: 1 to 86400 seconds"));
        }
    }
    st.catalog
        .version_set_define(name, source, targets, keep, pre, by)
        .await?;
    tracing::info!(set = name, source, ?targets, keep, %by, "version set defined");
    // A set defined again after the catalog was lost: the versions its
    // targets hold come back.
    recover(st).await?;
    version_sets(st, Some(name)).await
}

/// Version sets with their records.
pub(crate) async fn version_sets(st: &Arc<Station>, only: Option<&str>) -> Result<Vec<VersionSetInfo>> {
    let sets = st.catalog.version_sets(only).await?;
    if let (Some(n), true) = (only, sets.is_empty()) {
        bail!(Failure::not_found(format!("no version set {n}")));
    }
    let mut records: BTreeMap<String, Vec<VersionRecordInfo>> = BTreeMap::new();
    for r in st.catalog.version_records(only).await? {
        records.entry(r.set_name.clone()).or_default().push(record_info(r));
    }
    Ok(sets
        .into_iter()
        .map(|s| VersionSetInfo {
            records: records.remove(&s.name).unwrap_or_default(),
            name: s.name,
            source: s.source,
            targets: s.targets,
            keep: s.keep,
            pre: s.pre,
        })
        .collect())
}

fn record_info(r: VersionRecordRow) -> VersionRecordInfo {
    VersionRecordInfo {
        number: r.number,
        kind: r.kind,
        target_pool: r.target_vpool,
        state: r.state,
        reason: r.reason,
        point_in_time_ms: r.point_in_time.map(unix_ms),
        bytes_copied: r.bytes_copied,
        created_ms: unix_ms(r.created),
        pairs: r
            .pairs
            .into_iter()
            .map(|p| VersionPair {
                source: p.source,
                target: p.target,
                bytes_copied: p.bytes_copied,
                base_version: p.base_version,
            })
            .collect(),
    }
}

/// The volume of `pools` that is `target`, which must still hold version
/// `v` of `source` (its management region says so, as its node reported).
fn holding_target<'p>(
    pools: &'p [crate::catalog::VpoolRow],
    target: &VolumeKey,
    v: &proto::wire::VersionRef,
    source: &VolumeKey,
) -> Result<&'p crate::catalog::VpoolVolumeRow> {
    let row = pools
        .iter()
        .flat_map(|p| &p.volumes)
        .find(|t| &t.key == target)
        .ok_or_else(|| anyhow!(Failure::not_found(format!("target {target} is in no target pool"))))?;
    let wanted = crate::catalog::Holding {
        set: v.set.clone(),
        version: v.version,
        source: source.to_string(),
    };
    if row.holding.as_ref() != Some(&wanted) {
        bail!(Failure::refused(format!(
            "target {target} no longer holds version {v} of {source} (its region says {})",
            row.holds.as_deref().unwrap_or("nothing")
        )));
    }
    Ok(row)
}
