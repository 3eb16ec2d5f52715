//! Tape recovery (seed 000 FIG. 6A/6B, claims 7–8, step 680): an operator
//! declares a primary tape destroyed; every segment the catalog still
//! places on it is read from its best copy (the copy tapes grouped so each
//! is mounted once, a copy on a tape already chosen first) and written to
//! new tapes of the tape's pool, its ABS metadata too where it lay there.
//! The catalog's segment rows then point at the new tapes (new location,
//! time, status `ok`); the copies stay linked under them. A rerun picks up
//! what a failed run left on the destroyed tape.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use proto::domain::{AbsId, Failure, PoolKind, TapeLocation};
use proto::wire::ChannelEvent;
use tokio::sync::mpsc;
use transport::FramedSend;

use super::{execute, forward, lanes, plan, tell, Sink, Target};
use crate::catalog::{CopyCandidate, MetadataSource, Segment};
use crate::service::restore::choose_sources;
use crate::service::Station;

/// What an operator asked to recover.
pub(crate) struct RecoverRequest {
    pub label: String,
    pub drives: u32,
}

pub(crate) async fn recover(st: Arc<Station>, req: RecoverRequest, send: &mut FramedSend) {
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    forward(recover_tape(&st, &req, tx, started), rx, send).await;
}

async fn recover_tape(st: &Arc<Station>, req: &RecoverRequest, sink: Sink, started: Instant) -> Result<ChannelEvent> {
    let sink = &sink;
    let tape = st
        .catalog
        .tape_by_label(&req.label)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("there is no tape {}", req.label))))?;
    let pool = st.catalog.pool_named(&tape.pool).await?.ok_or_else(|| {
        anyhow!(Failure::not_found(format!(
            "tape {}'s pool {} is gone",
            tape.label, tape.pool
        )))
    })?;
    if pool.kind != PoolKind::Primary {
        bail!(Failure::refused(format!(
            "tape {} is in copy pool {}: a lost copy is made again by `pool backup` once the tape is audited or exported",
            tape.label, pool.name
        )));
    }
    if tape.location != TapeLocation::Destroyed {
        st.catalog.mark_tape_destroyed(tape.id).await?;
        tell(
            sink,
            ChannelEvent::Planned {
                detail: format!("tape {} marked destroyed: it is never mounted again", tape.label),
            },
        );
    }
    // Every segment the catalog still places on the tape, by ABS.
    let mut on_tape: Vec<Segment> = st
        .catalog
        .segments_on_tape(tape.id)
        .await?
        .into_iter()
        .filter(|s| s.copy_id.is_none())
        .collect();
    on_tape.sort_by_key(|s| (s.abs_id, s.seq));
    let mut abs_ids: Vec<AbsId> = on_tape.iter().map(|s| s.abs_id).collect();
    abs_ids.dedup();
    let mut candidates = Vec::new();
    let mut lost = Vec::new();
    for abs_id in abs_ids {
        let Some(abs) = st.catalog.load_abs(abs_id).await? else {
            continue;
        };
        let primaries: Vec<Segment> = on_tape.iter().filter(|s| s.abs_id == abs_id).cloned().collect();
        let copies = st.catalog.segment_copies_of(abs_id).await?;
        let chosen = choose_sources(primaries, &copies).segments;
        let (from_copies, none): (Vec<Segment>, Vec<Segment>) = chosen.into_iter().partition(|s| s.copy_id.is_some());
        for s in none {
            lost.push(format!("segment {} of ABS {abs_id} (no readable copy)", s.seq));
        }
        let metadata = if abs.metadata_tape_id == Some(tape.id) {
            let copies = st.catalog.abs_copy_metadata(abs_id).await?;
            match copies.into_iter().find(|m| m.tape_location == TapeLocation::Library) {
                Some(m) => Some(MetadataSource {
                    tape_id: m.tape_id,
                    tape_label: m.tape_label,
                    tape_file: m.tape_file,
                }),
                None => {
                    lost.push(format!("the metadata of ABS {abs_id} (no copy in the library)"));
                    None
                }
            }
        } else {
            None
        };
        if from_copies.is_empty() && metadata.is_none() {
            continue;
        }
        candidates.push(CopyCandidate {
            abs_id,
            object_name: abs.object_name,
            segments: from_copies,
            damaged: Vec::new(),
            metadata,
        });
    }
    let job = plan(st, &candidates, lanes(req.drives)).await?;
    tell(
        sink,
        ChannelEvent::Planned {
            detail: job.recovery_detail(&tape.label, &pool.name),
        },
    );
    let target = Target::Primaries {
        pool: pool.name.clone(),
    };
    let (total, error) = execute(st, &job, &target, sink).await;
    if let Some(e) = error {
        return Err(e.context(format!(
            "recovering tape {}: {} segments rewritten before the failure; run it again to go on",
            tape.label, total.segments
        )));
    }
    lost.extend(total.failed.iter().map(|(a, why)| format!("ABS {a}: {why}")));
    if !lost.is_empty() {
        bail!(Failure::corrupt(format!(
            "tape {}: {} segments recovered onto {}, but not: {}",
            tape.label,
            total.segments,
            total.tapes_written.iter().cloned().collect::<Vec<_>>().join(", "),
            lost.join("; ")
        )));
    }
    tracing::info!(tape = %tape.label, segments = total.segments, bytes = total.bytes, "tape recovered");
    Ok(ChannelEvent::Copied {
        abs: u32::try_from(candidates.len()).unwrap_or(u32::MAX),
        segments: total.segments,
        bytes: total.bytes,
        tapes_read: total.tapes_read,
        tapes_written: total.tapes_written.into_iter().collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
