//! Making a version (seed 004 FIG. 6): the copy record, one point in time
//! across every source volume, each source copied onto its target node to
//! node (only the tracks changed since the version the target holds, when
//! it holds one of the same source), the version's record in each
//! target's management region, the replication record, and the versions
//! it retires. Then the pre-pairing record of the next one.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use proto::abs::VolumeRef;
use proto::domain::{Failure, JobId, VersionRecordKind, VersionState, VolumeKey};
use proto::region::{VersionStamp, MAX_REGION_PAIRS};
use proto::wire::{CopyLane, VersionSetInfo};

use super::copy::{capture, copy, Group, Lane};
use super::plan::{keys, plan_next, refuse, NextVersion};
use super::{version_sets, versions_prepare, Station};
use crate::catalog::{Holding, NewVersionRecord, RecordPair, VpoolRow};
use crate::plan::versions::retire_after;

/// Version sets being made or copied back now: one thing at a time per set.
pub(crate) struct Busy<'a> {
    st: &'a Station,
    name: String,
}

impl<'a> Busy<'a> {
    pub(crate) fn take(st: &'a Station, name: &str) -> Result<Busy<'a>> {
        let mut busy = st.version_runs.lock().map_err(|_| anyhow!("version runs poisoned"))?;
        if !busy.insert(name.to_string()) {
            bail!(Failure::refused(format!(
                "version set {name} is busy: a version of it is being made, copied back or backed up"
            )));
        }
        Ok(Busy {
            st,
            name: name.to_string(),
        })
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.st.version_runs.lock() {
            busy.remove(&self.name);
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// A pool volume as the nodes see it.
fn volume_ref(pool: &VpoolRow, key: &VolumeKey) -> Result<(VolumeRef, Option<Holding>)> {
    let v = pool.volumes.iter().find(|v| &v.key == key).ok_or_else(|| {
        anyhow!(Failure::not_found(format!(
            "volume {key} is not in volume pool {}",
            pool.name
        )))
    })?;
    Ok((
        VolumeRef {
            name: v.key.volume.clone(),
            geometry: v.geometry,
            size: v.size,
        },
        v.holding.clone(),
    ))
}

/// One pair as planned for the copy.
struct Planned {
    pair: RecordPair,
    source_size: u64,
}

/// Make version set `name`'s next version.
pub(crate) async fn versions_run(st: &Arc<Station>, name: &str, by: &str) -> Result<Vec<VersionSetInfo>> {
    let _busy = Busy::take(st, name)?;
    let next = plan_next(st, name, true).await?;
    let (pairs, described) = match &next.outcome {
        Ok(x) => x.clone(),
        Err(reason) => bail!(refuse(st, &next, VersionRecordKind::Copy, reason).await?),
    };
    let number = next.number;
    st.catalog
        .put_version_record(&NewVersionRecord {
            set_name: name,
            number,
            kind: VersionRecordKind::Copy,
            target_vpool: &next.pool,
            state: VersionState::Running,
            reason: &described,
            pairs: &pairs,
            point_in_time: None,
            bytes_copied: 0,
            source_bytes: 0,
        })
        .await?;
    tracing::info!(set = name, version = number, pool = %next.pool, pairs = pairs.len(), %by, "making a version");
    // The set's pre command first (e.g. quiesce what writes the sources):
    // a failure fails the version before anything is touched.
    let pre_ran = match &next.set.pre {
        None => String::new(),
        Some(pre) => match run_pre(st, name, pre).await {
            Ok(ran) => format!("; {ran}"),
            Err(e) => {
                let reason = format!("{e:#}");
                st.catalog
                    .set_version_state(name, number, VersionRecordKind::Copy, VersionState::Failed, &reason)
                    .await?;
                return Err(e.context(format!("version {number} of set {name} was not made")));
            }
        },
    };
    // The version this one replaces is gone as soon as its targets are written.
    if let Some(r) = &next.replaced {
        let why = format!("its targets take version {number}");
        st.catalog
            .set_version_state(
                name,
                r.number,
                VersionRecordKind::Replication,
                VersionState::Retired,
                &why,
            )
            .await?;
    }
    match make(st, &next, &pairs).await {
        Ok((made, reason)) => {
            let reason = format!("{reason}{pre_ran}");
            finish(st, &next, &made, &reason).await?;
            tracing::info!(set = name, version = number, %reason, "version made");
            // The pre-pairing record of the next version, now: a refusal is
            // recorded with its reason, and this version stands.
            if let Err(e) = versions_prepare(st, name, by).await {
                tracing::warn!(set = name, error = %format!("{e:#}"), "the next version's pre-pairing was refused");
            }
            version_sets(st, Some(name)).await
        }
        Err(e) => {
            let reason = format!("{e:#}");
            tracing::error!(set = name, version = number, %reason, "making the version failed");
            metrics::counter!("dmc_station_versions_failed_total").increment(1);
            st.catalog
                .set_version_state(name, number, VersionRecordKind::Copy, VersionState::Failed, &reason)
                .await?;
            Err(e.context(format!("version {number} of set {name}")))
        }
    }
}

/// Run the set's pre command on its host's agent; what the record says of
/// it, or why the version cannot be made.
async fn run_pre(st: &Arc<Station>, set: &str, pre: &proto::wire::PreCommand) -> Result<String> {
    use crate::service::definitions::{how, on_agent, shown};
    let cmd = proto::wire::Command::RunHook {
        definition: set.to_string(),
        phase: proto::domain::HookPhase::Pre,
        command: pre.command.clone(),
        timeout_seconds: pre.timeout_seconds,
        abs_id: proto::domain::AbsId::default(),
        succeeded: false,
    };
    let (status, output) = match on_agent(st, &pre.host, pre.timeout_seconds, &cmd).await? {
        proto::wire::CommandReply::HookRan { status, output, .. } => (status, output),
        proto::wire::CommandReply::Error(f) => bail!(Failure::refused(format!(
            "the agent of {} could not run the pre command: {}",
            pre.host, f.message
        ))),
        other => bail!("the agent of {} answered the pre command with {other:?}", pre.host),
    };
    tracing::info!(set, host = %pre.host, ?status, "version pre command ran");
    let ran = format!("pre command `{}` on {} {}", pre.command, pre.host, how(status));
    if status != Some(0) {
        bail!(Failure::refused(format!(
            "{ran}; nothing was copied. Its output: {}",
            shown(&output)
        )));
    }
    Ok(ran)
}

/// Capture and copy every pair; returns the pairs as made and what the
/// record says of them.
async fn make(st: &Arc<Station>, next: &NextVersion, pairs: &[RecordPair]) -> Result<(Made, String)> {
    let name = &next.set.name;
    let cluster_id = st.catalog.cluster_id().await?;
    let all_pairs: Vec<(VolumeKey, VolumeKey)> = keys(pairs).into_iter().take(MAX_REGION_PAIRS).collect();
    let mut planned = Vec::with_capacity(pairs.len());
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for p in pairs {
        let (from, _) = volume_ref(&next.sources, &p.source)?;
        let (to, holding) = volume_ref(&next.targets, &p.target)?;
        // Only changed tracks when the target holds the replaced version
        // of this very source, and its capture is known.
        let base = next.replaced.as_ref().and_then(|r| {
            let before = r.pairs.iter().find(|b| b.source == p.source && b.target == p.target)?;
            let holds = holding.as_ref()?;
            (holds.set == *name && holds.version == r.number && holds.source == p.source.to_string())
                .then_some((before.captured?, r.number))
        });
        if to.size < from.size || to.geometry != from.geometry {
            bail!(Failure::refused(format!(
                "target {} no longer fits source {} (size or geometry changed)",
                p.target, p.source
            )));
        }
        let stamp = VersionStamp {
            cluster_id,
            set: name.clone(),
            version: next.number,
            point_in_time_ms: 0,
            source: p.source.clone(),
            target: p.target.clone(),
            source_size: from.size,
            block_size: from.geometry.block_size,
            track_size: from.geometry.track_size,
            bytes_copied: 0,
            base_version: base.map_or(0, |(_, v)| v),
            pairs: all_pairs.clone(),
            written_ms: 0,
        };
        planned.push(Planned {
            pair: RecordPair {
                base_version: stamp.base_version,
                ..p.clone()
            },
            source_size: from.size,
        });
        let group = groups
            .entry((p.source.node.clone(), p.target.node.clone()))
            .or_insert_with(|| Group {
                sender: p.source.node.clone(),
                receiver: p.target.node.clone(),
                lanes: Vec::new(),
            });
        group.lanes.push(Lane {
            lane: CopyLane {
                to: p.target.volume.clone(),
                limit: from.size,
                stamp: Some(stamp),
            },
            from,
            since: base.map(|(c, _)| c),
        });
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    let hold = JobId::new(st.catalog.next_copy_id().await?);
    let (at, captured) = capture(st, hold, &groups).await?;
    st.catalog
        .set_version_point_in_time(name, next.number, VersionRecordKind::Copy, at)
        .await?;
    tracing::info!(set = %name, version = next.number, point_in_time = %at, "point in time taken on every source volume");
    let at_ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    for (g, c) in groups.iter_mut().zip(&captured) {
        for (i, l) in (0..=u16::MAX).zip(g.lanes.iter_mut()) {
            let bytes = c.bytes_of(i, l.lane.limit);
            if let Some(s) = l.lane.stamp.as_mut() {
                s.point_in_time_ms = at_ms;
                s.bytes_copied = bytes;
                s.written_ms = now_ms();
            }
        }
    }
    let results = futures::future::join_all(groups.iter().zip(&captured).map(|(g, c)| copy(st, g, c))).await;
    // What each target holds now: the version, or (its copy failed) nothing.
    let mut failed = None;
    for ((g, c), r) in groups.iter().zip(&captured).zip(&results) {
        for l in &g.lanes {
            let target = VolumeKey::new(&g.receiver, &l.lane.to);
            let holds = r.as_ref().ok().and(l.lane.stamp.as_ref());
            st.catalog.set_target_holding(&target, holds).await?;
        }
        if let Err(e) = r {
            failed.get_or_insert_with(|| format!("{e:#}"));
        }
        if !c.notes.is_empty() {
            tracing::info!(notes = ?c.notes, "snapshot notes");
        }
    }
    if let Some(e) = failed {
        bail!(e);
    }
    let mut made = Made {
        point_in_time: at,
        pairs: Vec::with_capacity(planned.len()),
        bytes: 0,
        source_bytes: 0,
        notes: captured.iter().flat_map(|c| c.notes.clone()).collect(),
    };
    // What each pair's snapshot captured and its copy wrote.
    let mut done = BTreeMap::new();
    for (g, c) in groups.iter().zip(&captured) {
        for (i, l) in (0..=u16::MAX).zip(&g.lanes) {
            let epoch = c
                .epochs
                .iter()
                .find(|e| e.volume == l.from.name)
                .map(|e| (e.map_id, e.epoch));
            let key = (
                VolumeKey::new(&g.sender, &l.from.name),
                VolumeKey::new(&g.receiver, &l.lane.to),
            );
            done.insert(key, (epoch, c.bytes_of(i, l.lane.limit)));
        }
    }
    for p in planned {
        let (epoch, bytes) = done
            .get(&(p.pair.source.clone(), p.pair.target.clone()))
            .copied()
            .ok_or_else(|| anyhow!("pair {} → {} was not copied", p.pair.source, p.pair.target))?;
        made.bytes += bytes;
        made.source_bytes += p.source_size;
        made.pairs.push(RecordPair {
            captured: epoch,
            bytes_copied: bytes,
            ..p.pair
        });
    }
    let changed: Vec<&RecordPair> = made.pairs.iter().filter(|p| p.base_version > 0).collect();
    let mut reason = format!(
        "{} pairs; {} of {} source bytes copied",
        made.pairs.len(),
        made.bytes,
        made.source_bytes
    );
    if !changed.is_empty() {
        reason.push_str(&format!(
            "; changed tracks only for {} pairs (their targets held version {})",
            changed.len(),
            changed[0].base_version
        ));
    }
    for n in &made.notes {
        reason.push_str("; ");
        reason.push_str(n);
    }
    Ok((made, reason))
}

/// A version as made.
struct Made {
    point_in_time: chrono::DateTime<chrono::Utc>,
    pairs: Vec<RecordPair>,
    bytes: u64,
    source_bytes: u64,
    notes: Vec<String>,
}

/// Store the replication record, drop the copy and pre-pairing records it
/// came from, and retire what the set no longer keeps.
async fn finish(st: &Arc<Station>, next: &NextVersion, made: &Made, reason: &str) -> Result<()> {
    let name = &next.set.name;
    st.catalog
        .put_version_record(&NewVersionRecord {
            set_name: name,
            number: next.number,
            kind: VersionRecordKind::Replication,
            target_vpool: &next.pool,
            state: VersionState::Complete,
            reason,
            pairs: &made.pairs,
            point_in_time: Some(made.point_in_time),
            bytes_copied: made.bytes,
            source_bytes: made.source_bytes,
        })
        .await?;
    for kind in [VersionRecordKind::Copy, VersionRecordKind::PrePairing] {
        st.catalog.delete_version_record(name, next.number, Some(kind)).await?;
    }
    let live: Vec<u64> = st
        .catalog
        .version_records(Some(name))
        .await?
        .into_iter()
        .filter(|r| r.kind == VersionRecordKind::Replication)
        .filter(|r| matches!(r.state, VersionState::Complete | VersionState::Retired))
        .map(|r| r.number)
        .collect();
    for old in retire_after(&live, next.number, next.set.keep, next.set.targets.len()) {
        // Its targets keep their bytes (until a version overwrites them),
        // but the set no longer keeps it: its records go.
        st.catalog.delete_version_record(name, old, None).await?;
        tracing::info!(set = %name, version = old, kept = next.set.keep, "version retired: its records deleted");
    }
    Ok(())
}
