//! Recording what tapes describe ([`super::plan::Plan`]) in a catalog:
//! for a rebuild into an empty catalog (every id as on tape), or for an
//! import of tapes the catalog never saw (ids that collide are given new
//! ones, UUIDs and the writing cluster kept, media sets renumbered, the
//! tapes read-only).

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use proto::domain::{AbsId, Level, MapId, MediaSetId, SegmentSeq, TapeId, TapeState, Uuid};

use super::plan::{AbsPlan, Plan, TapeSeen};
use crate::catalog::{CapturedEpoch, Catalog, NewSegment, NewSegmentCopy};

/// How the catalog's ids relate to those on tape.
pub enum Ids {
    /// A rebuild: every ABS under the id its tapes carry, media sets as
    /// on tape, the cluster's id from the tapes.
    Keep,
    /// An import: ABSs whose id is free here (above every id the catalog
    /// gave) keep it, the others get new ones; `known` maps the ids on
    /// tape of ABSs already in the catalog (bases found by UUID) and
    /// grows with every ABS recorded. ABSs another cluster wrote go under
    /// node `NODE.CLUSTER` (the first 8 hex digits of that cluster's id),
    /// apart from this cluster's nodes and chains: `ours` is this cluster.
    Import { known: HashMap<u64, AbsId>, ours: Uuid },
}

/// What was recorded.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub complete: usize,
    pub failed: usize,
    pub segments: usize,
    pub copies: usize,
    /// (id on tape, id in the catalog) of each ABS recorded.
    pub abs: Vec<(u64, AbsId)>,
    pub tapes: Vec<String>,
}

/// `ms` Unix milliseconds as a time.
fn at_ms(abs: u64, ms: u64) -> Result<DateTime<Utc>> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| anyhow!("ABS {abs} metadata: time {ms} ms is out of range"))
}

/// Record `plan` (made from `tapes`) in `catalog`.
pub async fn record(
    catalog: &Catalog,
    tapes: &[TapeSeen],
    plan: &Plan,
    ids: &mut Ids,
    label_prefix: &str,
) -> Result<Recorded> {
    let import = matches!(ids, Ids::Import { .. });
    if let (Ids::Keep, Some(id)) = (&ids, plan.cluster_id) {
        catalog.set_cluster_id(id).await?;
    }
    for p in &plan.pools {
        catalog
            .define_pool(&p.name, p.kind, &p.copies_of, None)
            .await
            .with_context(|| format!("recording pool {} ({})", p.name, p.kind))?;
    }
    // Tapes, oldest first; an import renumbers media sets (ids are this
    // catalog's) and keeps the tapes from being written.
    let mut tape_ids: Vec<Option<TapeId>> = vec![None; tapes.len()];
    let mut sets: BTreeMap<u64, MediaSetId> = BTreeMap::new();
    let mut out = Recorded::default();
    for tp in &plan.tapes {
        let t = &tapes[tp.tape];
        let row = catalog
            .create_tape(&t.label, &t.pool, &t.path)
            .await
            .with_context(|| format!("recording tape {} ({})", t.label, t.path))?;
        let set = if import {
            match sets.get(&t.media_set) {
                Some(s) => *s,
                None => {
                    let s = catalog.fresh_media_set(row.id).await?;
                    sets.insert(t.media_set, s);
                    s
                }
            }
        } else {
            MediaSetId::new(t.media_set)
        };
        catalog
            .set_tape_media_set(row.id, set, t.sequence)
            .await
            .with_context(|| format!("tape {}: media set {} volume {}", t.label, t.media_set, t.sequence))?;
        tape_ids[tp.tape] = Some(row.id);
        out.tapes.push(t.label.clone());
    }
    let id_of = |tape: usize| tape_ids[tape].ok_or_else(|| anyhow!("tape {} was not recorded", tapes[tape].label));
    for a in &plan.abs {
        let on_tape = a.abs_id();
        let id = record_abs(catalog, a, ids)
            .await
            .with_context(|| format!("recording ABS {on_tape} of {:?}", a.meta.object_name))?;
        out.abs.push((on_tape, id));
        for s in &a.segments {
            let c = s
                .counts
                .ok_or_else(|| anyhow!("ABS {id} segment {}: its counts were not read", s.seq))?;
            catalog
                .record_segment(&NewSegment {
                    abs_id: id,
                    seq: SegmentSeq::from(s.seq),
                    tape_id: id_of(s.at.tape)?,
                    tape_file: s.at.file,
                    bytes: s.at.bytes,
                    data_bytes: c.data_bytes,
                    track_count: u64::from(c.track_count),
                    crc32c: c.crc32c,
                })
                .await
                .with_context(|| format!("ABS {id} segment {}", s.seq))?;
            out.segments += 1;
        }
        if let Some((tape, file)) = a.metadata_at {
            catalog.record_abs_metadata(id, id_of(tape)?, file).await?;
        }
        if !a.missing.is_empty() {
            let reason = format!(
                "recorded from tape: segments {:?} of {} are on no tape of pool {}",
                a.missing, a.meta.segment_count, a.home_pool
            );
            catalog.fail_abs(id, &reason).await?;
            out.failed += 1;
            continue;
        }
        catalog
            .complete_abs(id, a.meta.data_bytes, a.meta.track_count, a.meta.segment_count)
            .await?;
        out.complete += 1;
        // Copies: each segment's, then each whole copy.
        let rows = catalog.segments_of(id).await?;
        for s in &a.segments {
            let Some(row) = rows.iter().find(|r| r.seq == SegmentSeq::from(s.seq)) else {
                bail!("ABS {id} segment {} was not recorded", s.seq);
            };
            for c in &s.copies {
                catalog
                    .record_segment_copy(&NewSegmentCopy {
                        segment_id: row.id,
                        tape_id: id_of(c.tape)?,
                        tape_file: c.file,
                        bytes: c.bytes,
                        crc32c: row.crc32c,
                    })
                    .await
                    .with_context(|| format!("ABS {id} segment {}: its copy on tape {}", s.seq, tapes[c.tape].label))?;
                out.copies += 1;
            }
        }
        for &(tape, file) in &a.copies {
            catalog
                .record_abs_copy(id, id_of(tape)?, file)
                .await
                .with_context(|| format!("ABS {id}: its copy on tape {}", tapes[tape].label))?;
        }
    }
    // What each tape holds, as it will be reported at its next dismount;
    // an imported tape is full: never written here.
    for tp in &plan.tapes {
        let state = match (import, tp.state) {
            (true, _) => TapeState::Full,
            (false, s) => s,
        };
        if state != TapeState::Scratch {
            catalog
                .record_tape_contents(id_of(tp.tape)?, state, tp.bytes, tp.files)
                .await?;
        }
    }
    catalog.advance_sequences(label_prefix).await?;
    Ok(out)
}

/// The node another cluster's ABSs of node `node` are recorded under.
pub fn foreign_node(node: &str, cluster: Uuid) -> String {
    let c = cluster.to_string();
    format!("{node}.{}", c.get(..8).unwrap_or(&c))
}

/// The catalog id of the ABS carrying `on_tape` on tape.
fn mapped(ids: &Ids, on_tape: u64) -> Result<AbsId> {
    match ids {
        Ids::Keep => Ok(AbsId::from(on_tape)),
        Ids::Import { known, .. } => known
            .get(&on_tape)
            .copied()
            .ok_or_else(|| anyhow!("ABS {on_tape} (on tape) is not in the catalog")),
    }
}

/// Record one ABS (state running; its segments follow) with its map,
/// lineage, snapshot, identity and times. Returns its id in the catalog.
async fn record_abs(catalog: &Catalog, a: &AbsPlan, ids: &mut Ids) -> Result<AbsId> {
    let m = &a.meta;
    let on_tape = m.abs_id;
    let node_name = match (&ids, m.management.as_ref()) {
        (Ids::Import { ours, .. }, Some(r)) if r.cluster_id != *ours => foreign_node(&a.primary_node, r.cluster_id),
        _ => a.primary_node.clone(),
    };
    // An import leaves a node this catalog knows as it is.
    let node = match (&ids, catalog.primary_node_id(&node_name).await?) {
        (Ids::Import { .. }, Some(n)) => n,
        _ => catalog.register_primary_node(&node_name, &m.map.volumes).await?,
    };
    // A rebuild keeps every id; an import keeps one that is free here
    // (above every id given) and takes a new one otherwise.
    let reserved = catalog.reserve_abs_id(AbsId::from(on_tape)).await;
    let keep = match (&ids, reserved) {
        (Ids::Keep, r) => r.map(|_| true)?,
        (Ids::Import { .. }, r) => r.is_ok(),
    };
    let base = (m.base_abs_id != 0).then(|| mapped(ids, m.base_abs_id)).transpose()?;
    let (_, id) = if a.level == Level::Synthetic {
        catalog.create_synthetic_abs(mapped(ids, m.merged_from_abs_id)?).await?
    } else {
        catalog
            .create_abs(&m.object_name, node, a.level, base, &m.map, &a.home_pool)
            .await?
    };
    if keep && id != AbsId::from(on_tape) {
        bail!("the catalog gave it id {id}");
    }
    let record = m.management.as_ref();
    if a.level != Level::Synthetic {
        let epochs: Vec<CapturedEpoch> = record
            .map(|r| r.epochs.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(|e| {
                Ok(CapturedEpoch {
                    volume_index: e.volume,
                    map_id: MapId::new(e.map_id),
                    epoch: u32::try_from(e.epoch).map_err(|_| anyhow!("epoch {} out of range", e.epoch))?,
                })
            })
            .collect::<Result<_>>()?;
        let changed = base.map(|_| m.map.tracks_of_ranges(&m.changed));
        catalog.record_snapshot(id, &epochs, changed.as_ref()).await?;
    }
    match record {
        Some(r) => {
            catalog.set_abs_identity(id, r.abs_uuid, &r.client, &r.label).await?;
            catalog
                .set_abs_time(id, at_ms(on_tape, r.created_ms)?, at_ms(on_tape, r.point_in_time_ms)?)
                .await?;
        }
        None => {
            let t = at_ms(on_tape, m.created_unix.saturating_mul(1000))?;
            catalog.set_abs_time(id, t, t).await?;
        }
    }
    if let Ids::Import { known, .. } = ids {
        let origin: Option<Uuid> = record.map(|r| r.cluster_id);
        let tape_id = (id != AbsId::from(on_tape)).then(|| AbsId::from(on_tape));
        catalog.set_abs_origin(id, tape_id, origin).await?;
        known.insert(on_tape, id);
    }
    Ok(id)
}
