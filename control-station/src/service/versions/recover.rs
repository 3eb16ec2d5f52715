//! Versions recovered from the targets (seed 002 FIG. 11: disk backup
//! volumes carry their management information like tapes do). Each target
//! volume's management region names the version it holds, with every pair
//! of that version; a catalog that does not know the version (it was lost
//! and rebuilt from tapes, which do not carry versions) gets its
//! replication record back from them, once the operator defined the
//! version set again. What the copies captured of the sources is not in
//! the regions: the next version onto those targets copies whole. Only the
//! newest `keep` versions come back (an older one's targets that no later
//! version overwrote still name it, but the set retired it).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use proto::domain::{VersionRecordKind, VersionState, VolumeKey};
use proto::region::VersionStamp;

use super::Station;
use crate::catalog::{NewVersionRecord, RecordPair};

/// How a recovered record's reason starts.
const RECOVERED: &str = "recovered from the management regions of";

/// Recover the versions the registered nodes' target volumes hold that
/// the catalog does not know (or knows only as recovered, from fewer
/// targets). Versions of other clusters and of undefined sets are left.
pub(crate) async fn recover(st: &Arc<Station>) -> Result<()> {
    let _one = st.recovering.lock().await;
    let ours = st.catalog.cluster_id().await?;
    let stamps: Vec<VersionStamp> = st
        .registry
        .lock()
        .await
        .primaries
        .values()
        .flat_map(|p| p.targets.iter().filter_map(|t| t.stamp.clone()))
        .filter(|s| s.cluster_id == ours)
        .collect();
    let mut by_version: BTreeMap<(String, u64), Vec<VersionStamp>> = BTreeMap::new();
    for s in stamps {
        by_version.entry((s.set.clone(), s.version)).or_default().push(s);
    }
    if by_version.is_empty() {
        return Ok(());
    }
    let mut newest_stamped: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (set, version) in by_version.keys() {
        newest_stamped.entry(set.clone()).or_default().push(*version);
    }
    let sets = st.catalog.version_sets(None).await?;
    let pools = st.catalog.vpools(None).await?;
    let pool_of = |k: &VolumeKey| pools.iter().find(|p| p.volumes.iter().any(|v| &v.key == k));
    for ((set, version), seen) in by_version {
        let Some(def) = sets.iter().find(|s| s.name == set) else {
            tracing::debug!(%set, version, "a target holds a version of a set not defined here");
            continue;
        };
        let records = st.catalog.version_records(Some(&set)).await?;
        // Only the newest `keep` versions the catalog and the regions know
        // of: a retired version's targets that no later version overwrote
        // still say they hold it.
        let mut newest: Vec<u64> = records
            .iter()
            .filter(|r| r.kind == VersionRecordKind::Replication && r.state == VersionState::Complete)
            .map(|r| r.number)
            .chain(newest_stamped.get(&set).into_iter().flatten().copied())
            .collect();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        newest.dedup();
        if !newest
            .iter()
            .take(usize::try_from(def.keep).unwrap_or(usize::MAX))
            .any(|&n| n == version)
        {
            continue;
        }
        let known = records
            .iter()
            .find(|r| r.kind == VersionRecordKind::Replication && r.number == version);
        if known.is_some_and(|r| !r.reason.starts_with(RECOVERED)) {
            continue;
        }
        // Its pool: the set's target pool the targets are in.
        let Some(pool) = seen
            .iter()
            .filter_map(|s| pool_of(&s.target))
            .find(|p| def.targets.contains(&p.name))
        else {
            continue;
        };
        // Every pair the regions list whose volumes the catalog knows
        // (sources in the source pool, targets in that pool).
        let source_pool = pools.iter().find(|p| p.name == def.source);
        let known_source = |k: &VolumeKey| source_pool.is_some_and(|p| p.volumes.iter().any(|v| &v.key == k));
        let known_target = |k: &VolumeKey| pool.volumes.iter().any(|v| &v.key == k);
        let mut pairs: Vec<RecordPair> = Vec::new();
        let listed = seen.iter().flat_map(|s| s.pairs.iter().cloned());
        let own = seen.iter().map(|s| (s.source.clone(), s.target.clone()));
        for (source, target) in own.chain(listed) {
            if pairs.iter().any(|p| p.source == source || p.target == target)
                || !known_source(&source)
                || !known_target(&target)
            {
                continue;
            }
            let stamp = seen.iter().find(|s| s.source == source && s.target == target);
            pairs.push(RecordPair {
                bytes_copied: stamp.map_or(0, |s| s.bytes_copied),
                base_version: stamp.map_or(0, |s| s.base_version),
                ..RecordPair::new(source, target)
            });
        }
        if known.is_some_and(|r| r.pairs.len() >= pairs.len()) || pairs.is_empty() {
            continue;
        }
        let first = &seen[0];
        let reason = format!(
            "{RECOVERED} {} targets ({} pairs); what the copies captured is not there: the next version onto them copies whole",
            seen.len(),
            pairs.len()
        );
        st.catalog
            .put_version_record(&NewVersionRecord {
                set_name: &set,
                number: version,
                kind: VersionRecordKind::Replication,
                target_vpool: &pool.name,
                state: VersionState::Complete,
                reason: &reason,
                pairs: &pairs,
                point_in_time: chrono::DateTime::from_timestamp_millis(
                    i64::try_from(first.point_in_time_ms).unwrap_or(0),
                ),
                bytes_copied: seen.iter().map(|s| s.bytes_copied).sum(),
                source_bytes: seen.iter().map(|s| s.source_size).sum(),
            })
            .await?;
        tracing::info!(%set, version, pool = %pool.name, pairs = pairs.len(), "version recovered from its targets' management regions");
    }
    Ok(())
}
