//! Copy versions (seed 004, issue 15): volume pools, version sets and the
//! pre-pairing record of a set's next version. The choices are made by the
//! pure core [`crate::plan::versions`]; this gathers its inputs from the
//! catalog and the registry and stores what it decided.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use proto::domain::{Failure, VersionRecordKind, VersionState, VolumeKey, VpoolKind};
use proto::wire::{VersionPair, VersionRecordInfo, VersionSetInfo, VpoolInfo, VpoolVolume};

use super::Station;
use crate::catalog::{NewVersionRecord, VersionRecordRow, VpoolRow};
use crate::plan::versions::{check_shape, copy_record, target_pool_of, CopyPlan, Pair, VolumeFacts};

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
    by: &str,
) -> Result<Vec<VersionSetInfo>> {
    check_shape(targets.len(), keep).map_err(|e| anyhow!(Failure::invalid(format!("version set {name}: {e}"))))?;
    st.catalog.version_set_define(name, source, targets, keep, by).await?;
    tracing::info!(set = name, source, ?targets, keep, %by, "version set defined");
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
            .map(|(source, target)| VersionPair { source, target })
            .collect(),
    }
}

/// A pool's volumes as the pure core sees them.
fn facts(p: &VpoolRow, up: &BTreeSet<String>) -> Vec<VolumeFacts> {
    p.volumes
        .iter()
        .map(|v| VolumeFacts {
            key: v.key.clone(),
            size: v.size,
            geometry: v.geometry,
            online: up.contains(&v.key.node),
            target: v.target,
        })
        .collect()
}

/// Whether a record still holds its targets.
fn holds_targets(r: &VersionRecordRow) -> bool {
    matches!(
        r.state,
        VersionState::Ready | VersionState::Running | VersionState::Complete
    )
}

/// What a copy plan changed against its pre-copy record, for the record.
fn describe(plan: &CopyPlan, from: &str) -> String {
    let mut parts = vec![format!("{} pairs kept from {from}", plan.kept.len())];
    for (s, why) in &plan.paired {
        parts.push(match why {
            None => format!("{s} paired (new)"),
            Some(w) => format!("{s} paired again (its target: {w})"),
        });
    }
    for b in &plan.broken {
        parts.push(format!(
            "{} removed: pair with {} broken, target freed",
            b.source, b.target
        ));
    }
    parts.join("; ")
}

/// Make the pre-pairing record of version set `name`'s next version (seed
/// 004 FIG. 4, 5, 7, 8): its target pool by rotation, its pairs from the
/// replication record of the version it replaces there (checked against
/// the source pool now), else chosen anew. With no eligible target for a
/// source the record is `refused` with the reason (and the operator told
/// in the log and by `dmc_station_versions_refused_total`); nothing is copied.
pub(crate) async fn versions_prepare(st: &Arc<Station>, name: &str, by: &str) -> Result<Vec<VersionSetInfo>> {
    let set = st
        .catalog
        .version_sets(Some(name))
        .await?
        .pop()
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no version set {name}"))))?;
    let records = st.catalog.version_records(Some(name)).await?;
    let made = |r: &&VersionRecordRow| r.kind != VersionRecordKind::PrePairing;
    let next = records.iter().filter(made).map(|r| r.number).max().unwrap_or(0) + 1;
    let pool_index = target_pool_of(next, set.targets.len()).map_err(|e| anyhow!(Failure::invalid(e.to_string())))?;
    let pool_name = set.targets.get(pool_index).cloned().unwrap_or_default();
    let pools = st.catalog.vpools(None).await?;
    let pool = |n: &str| {
        pools
            .iter()
            .find(|p| p.name == n)
            .ok_or_else(|| anyhow!(Failure::not_found(format!("no volume pool {n}"))))
    };
    let up = online(st).await;
    let sources = facts(pool(&set.source)?, &up);
    let targets = facts(pool(&pool_name)?, &up);
    // The pre-copy record: the replication record of the version this one
    // replaces in its pool (the newest complete one there).
    let replaced = records
        .iter()
        .filter(|r| r.kind == VersionRecordKind::Replication && r.target_vpool == pool_name)
        .filter(|r| r.state == VersionState::Complete)
        .max_by_key(|r| r.number);
    let pre: Option<Vec<Pair>> = replaced.map(|r| {
        r.pairs
            .iter()
            .map(|(s, t)| Pair {
                source: s.clone(),
                target: t.clone(),
            })
            .collect()
    });
    // Targets held by every other record that still holds its targets.
    let all = st.catalog.version_records(None).await?;
    let mut reserved = BTreeMap::new();
    for r in all.iter().filter(|r| holds_targets(r)) {
        let mine = r.set_name == name && (Some(r.id) == replaced.map(|x| x.id) || r.number == next);
        if !mine {
            for (s, t) in &r.pairs {
                reserved.insert(t.clone(), s.clone());
            }
        }
    }
    if sources.is_empty() {
        bail!(Failure::refused(format!(
            "version set {name}: source pool {} has no volumes",
            set.source
        )));
    }
    let from = replaced.map_or_else(
        || "no earlier version in the pool".to_string(),
        |r| format!("version {}", r.number),
    );
    let (state, reason, pairs) = match copy_record(&sources, pre.as_deref(), &pool_name, &targets, &reserved) {
        Ok(plan) => {
            let pairs: Vec<(VolumeKey, VolumeKey)> = plan
                .pairs
                .iter()
                .map(|p| (p.source.clone(), p.target.clone()))
                .collect();
            (VersionState::Ready, describe(&plan, &from), pairs)
        }
        Err(no) => {
            metrics::counter!("dmc_station_versions_refused_total").increment(1);
            tracing::warn!(set = name, version = next, reason = %no, "the next version is refused: no eligible target");
            (VersionState::Refused, no.to_string(), Vec::new())
        }
    };
    st.catalog
        .put_version_record(&NewVersionRecord {
            set_name: name,
            number: next,
            kind: VersionRecordKind::PrePairing,
            target_vpool: &pool_name,
            state,
            reason: &reason,
            pairs: &pairs,
        })
        .await?;
    tracing::info!(set = name, version = next, pool = %pool_name, %state, %by, "pre-pairing record made");
    if state == VersionState::Refused {
        bail!(Failure::refused(format!(
            "version {next} of set {name} is refused before any copy: {reason}"
        )));
    }
    version_sets(st, Some(name)).await
}
