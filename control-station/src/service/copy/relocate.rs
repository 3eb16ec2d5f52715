//! One ABS copied or moved tape to tape by an operator (seed 002 FIG. 16):
//! `abs copy` makes its copy in a copy pool now, as a pool backup would;
//! `abs move` rewrites its segments and metadata onto tapes of another
//! primary pool (a new management record naming that pool and the new
//! places goes with the metadata), points the catalog there and frees the
//! old places — a copy, then the delete of the old one. A rerun of a move
//! that failed part way picks up what is not on the new pool's tapes yet.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use proto::domain::{AbsId, AbsState, Failure, TapeId, TapeLocation};
use proto::wire::ChannelEvent;
use tokio::sync::mpsc;
use transport::FramedSend;

use super::{check_copy_pool, copy_one_abs, execute, forward, plan, tell, Sink, Target};
use crate::catalog::{Abs, CopyCandidate, MetadataSource};
use crate::service::restore::{choose_sources, readable};
use crate::service::{backup, Station};

pub(crate) async fn abs_copy(st: Arc<Station>, abs_id: AbsId, pool: String, send: &mut FramedSend) {
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    forward(copy_one(&st, abs_id, &pool, tx, started), rx, send).await;
}

pub(crate) async fn abs_move(st: Arc<Station>, abs_id: AbsId, pool: String, send: &mut FramedSend) {
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    forward(move_one(&st, abs_id, &pool, tx, started), rx, send).await;
}

/// ABS `abs_id`, which must be complete.
async fn complete_abs(st: &Arc<Station>, abs_id: AbsId) -> Result<Abs> {
    let abs = st
        .catalog
        .load_abs(abs_id)
        .await?
        .filter(|a| a.state != AbsState::Deleted)
        .ok_or_else(|| anyhow!(Failure::not_found(format!("there is no ABS {abs_id}"))))?;
    if abs.state != AbsState::Complete {
        bail!(Failure::refused(format!(
            "ABS {abs_id} is {}: only a complete ABS is copied or moved",
            abs.state
        )));
    }
    Ok(abs)
}

async fn copy_one(st: &Arc<Station>, abs_id: AbsId, pool: &str, sink: Sink, started: Instant) -> Result<ChannelEvent> {
    let abs = complete_abs(st, abs_id).await?;
    check_copy_pool(st, &abs.pool, pool).await?;
    let wanted = st
        .catalog
        .copy_candidates(&abs.pool, pool)
        .await?
        .iter()
        .any(|c| c.abs_id == abs_id);
    if !wanted {
        bail!(Failure::conflict(format!(
            "ABS {abs_id} already has a whole, healthy copy in pool {pool}"
        )));
    }
    let total = copy_one_abs(st, abs_id, &abs.pool, pool, &sink).await?;
    tracing::info!(abs = %abs_id, pool, segments = total.segments, "ABS copied");
    Ok(total.into_event(started))
}

async fn move_one(st: &Arc<Station>, abs_id: AbsId, pool: &str, sink: Sink, started: Instant) -> Result<ChannelEvent> {
    let abs = complete_abs(st, abs_id).await?;
    let pool = backup::primary_pool(st, Some(pool)).await?;
    // What is not on the new pool's tapes yet, from its best readable copy.
    let primaries: Vec<_> = st
        .catalog
        .segments_of(abs_id)
        .await?
        .into_iter()
        .filter(|s| s.pool != pool)
        .collect();
    let mut old_tapes: BTreeSet<TapeId> = primaries.iter().map(|s| s.tape_id).collect();
    let copies = st.catalog.segment_copies_of(abs_id).await?;
    let sources = choose_sources(primaries, &copies).segments;
    let lost: Vec<String> = sources
        .iter()
        .filter(|s| !readable(s))
        .map(|s| {
            format!(
                "segment {} (tape {} is {}, status {})",
                s.seq, s.tape_label, s.tape_location, s.status
            )
        })
        .collect();
    if !lost.is_empty() {
        bail!(Failure::refused(format!(
            "ABS {abs_id} cannot move: no readable copy of {}",
            lost.join(", ")
        )));
    }
    let metadata = metadata_source(st, &abs, &pool).await?;
    if let Some(m) = &metadata {
        old_tapes.insert(m.tape_id);
    }
    if sources.is_empty() && metadata.is_none() {
        bail!(Failure::conflict(format!("ABS {abs_id} is in pool {pool} already")));
    }
    st.catalog.set_abs_pool(abs_id, &pool).await?;
    let candidate = CopyCandidate {
        abs_id,
        object_name: abs.object_name.clone(),
        segments: sources,
        damaged: Vec::new(),
        metadata,
    };
    let job = plan(st, &[candidate], 1).await?;
    tell(
        &sink,
        ChannelEvent::Planned {
            detail: format!(
                "moving ABS {abs_id} from pool {} to pool {pool}: {} segments, {} bytes",
                abs.pool, job.segments, job.bytes
            ),
        },
    );
    let (total, error) = execute(st, &job, &Target::Primaries { pool: pool.clone() }, &sink).await;
    if let Some(e) = error {
        return Err(e.context(format!(
            "moving ABS {abs_id} to pool {pool}: {} segments moved before the failure; run it again to go on",
            total.segments
        )));
    }
    if let Some((_, why)) = total.failed.first() {
        bail!(Failure::corrupt(format!("ABS {abs_id} did not move whole: {why}")));
    }
    let old: Vec<TapeId> = old_tapes.into_iter().collect();
    let emptied = st.catalog.empty_if_unused(&old).await?;
    st.catalog.recycle_tapes().await?;
    if !emptied.is_empty() {
        tell(
            &sink,
            ChannelEvent::Planned {
                detail: format!(
                    "tape(s) {} now hold nothing wanted: scratch again after their pool's retention",
                    emptied.join(", ")
                ),
            },
        );
    }
    tracing::info!(abs = %abs_id, from = %abs.pool, to = %pool, segments = total.segments, "ABS moved");
    Ok(total.into_event(started))
}

/// Where the ABS metadata to rewrite is read: its place, if that is not on
/// a tape of `pool` yet (a copy's when its tape left the library).
async fn metadata_source(st: &Arc<Station>, abs: &Abs, pool: &str) -> Result<Option<MetadataSource>> {
    let (Some(tape_id), Some(tape_file)) = (abs.metadata_tape_id, abs.metadata_file) else {
        bail!(Failure::corrupt(format!("ABS {} has no metadata on tape", abs.id)));
    };
    let tape = st.catalog.tape(tape_id).await?.ok_or_else(|| {
        anyhow!(Failure::not_found(format!(
            "the metadata tape of ABS {} is gone",
            abs.id
        )))
    })?;
    if tape.pool == pool {
        return Ok(None);
    }
    if tape.location == TapeLocation::Library {
        return Ok(Some(MetadataSource {
            tape_id,
            tape_label: tape.label,
            tape_file,
        }));
    }
    let copies = st.catalog.abs_copy_metadata(abs.id).await?;
    match copies.into_iter().find(|m| m.tape_location == TapeLocation::Library) {
        Some(m) => Ok(Some(MetadataSource {
            tape_id: m.tape_id,
            tape_label: m.tape_label,
            tape_file: m.tape_file,
        })),
        None => bail!(Failure::refused(format!(
            "ABS {} cannot move: its metadata is on tape {}, which is {}, and no copy of it is in the library",
            abs.id, tape.label, tape.location
        ))),
    }
}
