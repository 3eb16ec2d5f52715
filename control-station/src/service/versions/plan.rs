//! The pairs of a set's next version (seed 004 FIG. 4, 5, 7, 8): its
//! target pool by rotation, its pairs from the pre-copy record (the
//! pre-pairing record, else the replication record of the version it
//! replaces in that pool) checked against the source pool now, else
//! chosen anew by the target scan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use proto::domain::{Failure, VersionRecordKind, VersionState, VolumeKey};
use proto::wire::VersionSetInfo;

use super::{online, version_sets, Station};
use crate::catalog::{NewVersionRecord, RecordPair, VersionRecordRow, VersionSetRow, VpoolRow};
use crate::plan::versions::{copy_record, target_pool_of, CopyPlan, Pair, VolumeFacts};

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

/// The next version of a set, as planned.
pub(super) struct NextVersion {
    pub set: VersionSetRow,
    pub number: u64,
    /// Its target pool.
    pub pool: String,
    /// Its pairs and what changed against the pre-copy record; or why no
    /// eligible target exists for some source (the version is refused).
    pub outcome: Result<(Vec<RecordPair>, String), String>,
    /// The replication record of the version it replaces in its pool.
    pub replaced: Option<VersionRecordRow>,
    /// The source and target pools as they are now.
    pub sources: VpoolRow,
    pub targets: VpoolRow,
}

/// Plan version set `name`'s next version. `from_pre_pairing`: start from
/// its pre-pairing record if one is ready (making the version), else from
/// the replaced version's pairs (preparing it).
pub(super) async fn plan_next(st: &Arc<Station>, name: &str, from_pre_pairing: bool) -> Result<NextVersion> {
    let set = st
        .catalog
        .version_sets(Some(name))
        .await?
        .pop()
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no version set {name}"))))?;
    let records = st.catalog.version_records(Some(name)).await?;
    let made = |r: &&VersionRecordRow| r.kind != VersionRecordKind::PrePairing;
    let number = records.iter().filter(made).map(|r| r.number).max().unwrap_or(0) + 1;
    let pool_index = target_pool_of(number, set.targets.len()).map_err(|e| anyhow!(Failure::invalid(e.to_string())))?;
    let pool_name = set.targets.get(pool_index).cloned().unwrap_or_default();
    let pools = st.catalog.vpools(None).await?;
    let pool = |n: &str| {
        pools
            .iter()
            .find(|p| p.name == n)
            .cloned()
            .ok_or_else(|| anyhow!(Failure::not_found(format!("no volume pool {n}"))))
    };
    let up = online(st).await;
    let sources = pool(&set.source)?;
    let targets = pool(&pool_name)?;
    // The version this one replaces in its pool (the newest complete one there).
    let replaced = records
        .iter()
        .filter(|r| r.kind == VersionRecordKind::Replication && r.target_vpool == pool_name)
        .filter(|r| r.state == VersionState::Complete)
        .max_by_key(|r| r.number)
        .cloned();
    let pre_pairing = records
        .iter()
        .find(|r| r.kind == VersionRecordKind::PrePairing && r.number == number && r.state == VersionState::Ready)
        .filter(|_| from_pre_pairing);
    let pre_record = pre_pairing.or(replaced.as_ref());
    let pre: Option<Vec<Pair>> = pre_record.map(|r| {
        r.pairs
            .iter()
            .map(|p| Pair {
                source: p.source.clone(),
                target: p.target.clone(),
            })
            .collect()
    });
    // Targets held by every other record that still holds its targets.
    let all = st.catalog.version_records(None).await?;
    let mut reserved = BTreeMap::new();
    for r in all.iter().filter(|r| holds_targets(r)) {
        let mine = r.set_name == name && (Some(r.id) == replaced.as_ref().map(|x| x.id) || r.number == number);
        if !mine {
            for p in &r.pairs {
                reserved.insert(p.target.clone(), p.source.clone());
            }
        }
    }
    if sources.volumes.is_empty() {
        bail!(Failure::refused(format!(
            "version set {name}: source pool {} has no volumes",
            set.source
        )));
    }
    let from = match (pre_pairing, &replaced) {
        (Some(_), _) => format!("the pre-pairing record of version {number}"),
        (None, Some(r)) => format!("version {}", r.number),
        (None, None) => "no earlier version in the pool".to_string(),
    };
    let outcome = match copy_record(
        &facts(&sources, &up),
        pre.as_deref(),
        &pool_name,
        &facts(&targets, &up),
        &reserved,
    ) {
        Ok(plan) => {
            let pairs = plan
                .pairs
                .iter()
                .map(|p| RecordPair::new(p.source.clone(), p.target.clone()))
                .collect();
            Ok((pairs, describe(&plan, &from)))
        }
        Err(no) => Err(no.to_string()),
    };
    Ok(NextVersion {
        set,
        number,
        pool: pool_name,
        outcome,
        replaced,
        sources,
        targets,
    })
}

/// A version refused before any copy: counted, logged, and its record
/// (`kind`) stored with the reason; returns the failure to answer with.
pub(super) async fn refuse(
    st: &Arc<Station>,
    next: &NextVersion,
    kind: VersionRecordKind,
    reason: &str,
) -> Result<Failure> {
    let name = &next.set.name;
    metrics::counter!("dmc_station_versions_refused_total").increment(1);
    tracing::warn!(set = %name, version = next.number, %reason, "the next version is refused: no eligible target");
    crate::service::notify::raise(
        st,
        proto::domain::NotificationKind::VersionRefused,
        &format!("version_refused:{name}:{}", next.number),
        &format!("version set {name}"),
        &format!("version {} is refused before any copy: {reason}", next.number),
        None,
    )
    .await;
    st.catalog
        .put_version_record(&NewVersionRecord {
            set_name: name,
            number: next.number,
            kind,
            target_vpool: &next.pool,
            state: VersionState::Refused,
            reason,
            pairs: &[],
            point_in_time: None,
            bytes_copied: 0,
            source_bytes: 0,
        })
        .await?;
    Ok(Failure::refused(format!(
        "version {} of set {name} is refused before any copy: {reason}",
        next.number
    )))
}

/// Make the pre-pairing record of version set `name`'s next version (seed
/// 004 FIG. 4, 5, 7, 8). With no eligible target for a source the record
/// is `refused` with the reason (and the operator told in the log and by
/// `dmc_station_versions_refused_total`); nothing is copied.
pub(crate) async fn versions_prepare(st: &Arc<Station>, name: &str, by: &str) -> Result<Vec<VersionSetInfo>> {
    let next = plan_next(st, name, false).await?;
    let (pairs, reason) = match &next.outcome {
        Ok(x) => x,
        Err(reason) => bail!(refuse(st, &next, VersionRecordKind::PrePairing, reason).await?),
    };
    st.catalog
        .put_version_record(&NewVersionRecord {
            set_name: name,
            number: next.number,
            kind: VersionRecordKind::PrePairing,
            target_vpool: &next.pool,
            state: VersionState::Ready,
            reason,
            pairs,
            point_in_time: None,
            bytes_copied: 0,
            source_bytes: 0,
        })
        .await?;
    tracing::info!(set = name, version = next.number, pool = %next.pool, %by, "pre-pairing record made");
    version_sets(st, Some(name)).await
}

/// The pairs as (source, target) keys.
pub(super) fn keys(pairs: &[RecordPair]) -> Vec<(VolumeKey, VolumeKey)> {
    pairs.iter().map(|p| (p.source.clone(), p.target.clone())).collect()
}
