//! `control-station catalog rebuild --library DIR`: a lost catalog made
//! again from the tapes alone (seed 002 FIG. 15), into an empty database,
//! with no station running.
//!
//! 1. [`read`]: every tape image's labels, DIRECTORY, CATALOG and ABS
//!    metadata with its management record (a damaged DIRECTORY or CATALOG:
//!    the tape's data files are scanned instead).
//! 2. [`plan`]: the pools, tapes, ABSs (levels, chains, points in time,
//!    epochs, changed tracks, UUIDs, clients, labels, times), segments and
//!    copies those describe: pure, unit-tested.
//! 3. Recorded in the database under the ids the tapes carry (ABS ids are
//!    in every segment header), the cluster taking the tapes' cluster id,
//!    the sequences moved past every label and media set found.
//!
//! Not on tape, so not rebuilt: grants, backup definitions, channel
//! history, registered movers and drives (they register again), damaged
//! marks.

pub mod plan;
pub mod read;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use proto::domain::{AbsId, Level, MapId, MediaSetId, SegmentSeq, TapeId, TapeState};

use crate::catalog::{CapturedEpoch, Catalog, NewSegment, NewSegmentCopy};
use crate::catalog_restore::{redacted, require_empty};
use plan::{AbsPlan, Plan, TapeSeen};

/// Where to read, where to write.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// The library directory holding the tape images.
    pub library: PathBuf,
    /// The empty database to rebuild into.
    pub database_url: String,
}

/// What was rebuilt.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub tapes: usize,
    pub pools: usize,
    /// Complete ABSs recorded, and those recorded as failed.
    pub complete: usize,
    pub failed: usize,
    pub segments: usize,
    pub copies: usize,
    /// Segments read to count them (tapes older than segment counts in
    /// management records); 0 for tapes written since.
    pub segments_read: u32,
    /// Bytes this process read while reading the tapes (Linux: `rchar` of
    /// /proc/self/io; None elsewhere).
    pub bytes_read: Option<u64>,
    pub seconds_reading: f64,
    pub seconds_total: f64,
    pub notes: Vec<String>,
}

/// Rebuild the catalog of the tapes in `opts.library` into the empty
/// database `opts.database_url`.
pub async fn rebuild(opts: &RebuildOptions) -> Result<Rebuilt> {
    let started = Instant::now();
    require_empty(&opts.database_url).await?;
    let dir = opts.library.clone();
    let read_before = bytes_read_so_far();
    let (tapes, mut plan, segments_read) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut notes = Vec::new();
        let tapes = read::read_library(&dir, &mut notes)?;
        if tapes.is_empty() {
            bail!("no tape images (*.tap) with labels in {}", dir.display());
        }
        let mut plan = plan::plan(&tapes);
        plan.notes.splice(0..0, notes);
        let read = read::read_missing_counts(&tapes, &mut plan)?;
        Ok((tapes, plan, read))
    })
    .await
    .context("the tape reading task")??;
    let seconds_reading = started.elapsed().as_secs_f64();
    let bytes_read = bytes_read_so_far()
        .zip(read_before)
        .map(|(after, before)| after.saturating_sub(before));
    tracing::info!(
        tapes = tapes.len(),
        abs = plan.abs.len(),
        seconds = seconds_reading,
        "tapes read"
    );
    let catalog = Catalog::connect(&opts.database_url)
        .await
        .with_context(|| format!("creating the catalog in {}", redacted(&opts.database_url)))?;
    let counts = record(&catalog, &tapes, &mut plan).await?;
    Ok(Rebuilt {
        tapes: plan.tapes.len(),
        pools: plan.pools.len(),
        complete: counts.0,
        failed: counts.1,
        segments: counts.2,
        copies: counts.3,
        segments_read,
        bytes_read,
        seconds_reading,
        seconds_total: started.elapsed().as_secs_f64(),
        notes: plan.notes,
    })
}

/// Bytes this process has read so far (`rchar` of /proc/self/io).
fn bytes_read_so_far() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Record `plan` in `catalog`: (complete, failed, segments, copies).
async fn record(catalog: &Catalog, tapes: &[TapeSeen], plan: &mut Plan) -> Result<(usize, usize, usize, usize)> {
    if let Some(id) = plan.cluster_id {
        catalog.set_cluster_id(id).await?;
    }
    for p in &plan.pools {
        catalog
            .define_pool(&p.name, p.kind, &p.copies_of, None)
            .await
            .with_context(|| format!("recording pool {}", p.name))?;
    }
    let mut tape_ids: Vec<Option<TapeId>> = vec![None; tapes.len()];
    for tp in &plan.tapes {
        let t = &tapes[tp.tape];
        let row = catalog
            .create_tape(&t.label, &t.pool, &t.path)
            .await
            .with_context(|| format!("recording tape {} ({})", t.label, t.path))?;
        catalog
            .set_tape_media_set(row.id, MediaSetId::new(t.media_set), t.sequence)
            .await
            .with_context(|| format!("tape {}: media set {} volume {}", t.label, t.media_set, t.sequence))?;
        tape_ids[tp.tape] = Some(row.id);
    }
    let id_of = |tape: usize| tape_ids[tape].ok_or_else(|| anyhow!("tape {} was not recorded", tapes[tape].label));
    let (mut complete, mut failed, mut segments, mut copies) = (0, 0, 0, 0);
    for a in &plan.abs {
        let id = AbsId::from(a.abs_id());
        record_abs(catalog, a)
            .await
            .with_context(|| format!("recording ABS {id} of {:?}", a.meta.object_name))?;
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
            segments += 1;
        }
        if let Some((tape, file)) = a.metadata_at {
            catalog.record_abs_metadata(id, id_of(tape)?, file).await?;
        }
        if !a.missing.is_empty() {
            let reason = format!(
                "rebuilt from tape: segments {:?} of {} are on no tape of pool {}",
                a.missing, a.meta.segment_count, a.home_pool
            );
            catalog.fail_abs(id, &reason).await?;
            failed += 1;
            continue;
        }
        catalog
            .complete_abs(id, a.meta.data_bytes, a.meta.track_count, a.meta.segment_count)
            .await?;
        complete += 1;
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
                copies += 1;
            }
        }
        for &(tape, file) in &a.copies {
            catalog
                .record_abs_copy(id, id_of(tape)?, file)
                .await
                .with_context(|| format!("ABS {id}: its copy on tape {}", tapes[tape].label))?;
        }
    }
    // What each tape holds, as it will be reported at its next dismount.
    for tp in &plan.tapes {
        if tp.state != TapeState::Scratch {
            catalog
                .record_tape_contents(id_of(tp.tape)?, tp.state, tp.bytes, tp.files)
                .await?;
        }
    }
    catalog.advance_sequences(crate::service::TAPE_LABEL_PREFIX).await?;
    Ok((complete, failed, segments, copies))
}

/// `ms` Unix milliseconds as a time.
fn at_ms(abs: u64, ms: u64) -> Result<DateTime<Utc>> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| anyhow!("ABS {abs} metadata: time {ms} ms is out of range"))
}

/// Record one ABS (state running; its segments follow) with its map,
/// lineage, snapshot, identity and times, under the id its tapes carry.
async fn record_abs(catalog: &Catalog, a: &AbsPlan) -> Result<()> {
    let m = &a.meta;
    let id = AbsId::from(m.abs_id);
    let node = catalog.register_primary_node(&a.primary_node, &m.map.volumes).await?;
    catalog.reserve_abs_id(id).await?;
    let base = (m.base_abs_id != 0).then(|| AbsId::from(m.base_abs_id));
    let (_, created) = if a.level == Level::Synthetic {
        catalog.create_synthetic_abs(AbsId::from(m.merged_from_abs_id)).await?
    } else {
        catalog
            .create_abs(&m.object_name, node, a.level, base, &m.map, &a.home_pool)
            .await?
    };
    if created != id {
        bail!("the catalog gave it id {created}");
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
                .set_abs_time(id, at_ms(m.abs_id, r.created_ms)?, at_ms(m.abs_id, r.point_in_time_ms)?)
                .await?;
        }
        None => {
            let t = at_ms(m.abs_id, m.created_unix.saturating_mul(1000))?;
            catalog.set_abs_time(id, t, t).await?;
        }
    }
    Ok(())
}
