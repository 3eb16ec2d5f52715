//! A restore (seed FIG. 29, and "parallel restore operation" after FIG. 33).
//!
//! A [`RestoreJob`] groups the ABS's segments by tape and spreads the
//! tapes over the free drives (at most the number asked for). Each drive
//! gets its own restore channel ("a separate virtual channel may be
//! established for each tape drive"): Requested → Opened → BeginningOfTape
//! → Reading (→ EndOfTape → BeginningOfTape → Reading for each further
//! tape) → Closed, or → Error with a reason naming tape, tape file and
//! segment. Each tape is mounted once and only the ABS's own tape files
//! are read, in position order. The client sees one merged event stream.
//!
//! The shell fetches the catalog rows, [`job`] plans without I/O,
//! [`lanes`] runs the lanes and [`read`] one lane's tapes.

mod job;
mod lanes;
mod read;
mod sources;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::{RemapTable, VolumeRef};
use proto::domain::{AbsId, AbsState, Failure, JobId};
use proto::wire::{ChannelEvent, Command, RestoreTarget, StationReply};
use transport::{FramedSend, Peer};

use super::access::Access;
use super::backup::chain_members;
use super::events::EventSink;
use super::{failure_of, registry, Station};
use crate::plan::{chain_at, chain_of};
pub(crate) use job::{planned, AbsFacts, Destination, RestoreJob};
pub(crate) use lanes::LaneTotals;
pub(crate) use read::{read_tapes_on, ReadInto, TapeReading};
pub(crate) use sources::{choose as choose_sources, readable};

/// What to restore.
pub(crate) enum Wanted {
    /// The object as it was when this ABS was taken (its chain).
    Abs(AbsId),
    /// The object as it was at a time (None: its latest backup).
    At {
        primary: String,
        object_name: String,
        at_unix_ms: Option<i64>,
    },
}

/// What a client asked to restore, where, on how many drives (0: all free).
pub(crate) struct RestoreRequest {
    pub wanted: Wanted,
    pub target: RestoreTarget,
    pub drives: u32,
}

/// Everything a restore logs carries what it restores (span `restore`);
/// each lane's channel adds its own (span `lane`).
#[tracing::instrument(name = "restore", skip_all, fields(client = %client.name))]
pub(crate) async fn run(st: Arc<Station>, client: &Peer, req: RestoreRequest, send: &mut FramedSend) {
    let started = Instant::now();
    if let RestoreTarget::File { name, .. } = &req.target {
        if let Err(reason) = proto::wire::check_restore_file_name(name) {
            let _ = send
                .send(&StationReply::Event(ChannelEvent::Failed(Failure::invalid(reason))))
                .await;
            return;
        }
    }
    // One id for every stream of this request, so the node writes them
    // into one file.
    let job = JobId::new(rand::random());
    let file_on = match &req.target {
        RestoreTarget::File { primary, .. } => Some(primary.clone()),
        _ => None,
    };
    let mut result = restore_chain(&st, client, req, job, send, started).await;
    // A file gets its name only once every stream of the restore is in it.
    if let Some(node) = file_on {
        let finish = Command::FinishRestore {
            job,
            commit: result.is_ok(),
        };
        let done = st.command_ok(&node, &finish).await;
        if let (Ok(_), Err(e)) = (&result, done) {
            result = Err(e.context("naming the restored file"));
        }
    }
    let event = match result {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

/// An ABS that is complete, or why it cannot be restored.
async fn complete_abs(st: &Arc<Station>, id: AbsId) -> Result<crate::catalog::Abs> {
    let abs = st
        .catalog
        .load_abs(id)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no ABS {id} in the catalog"))))?;
    if abs.state == AbsState::Deleted {
        bail!(Failure::not_found(format!("ABS {id} was deleted")));
    }
    if abs.state != AbsState::Complete {
        bail!(Failure::refused(format!(
            "ABS {id} is {} ({}), not complete",
            abs.state,
            abs.reason.clone().unwrap_or_default()
        )));
    }
    Ok(abs)
}

/// Restore a chain: its full first, then each differential in order, all
/// to the same destination.
async fn restore_chain(
    st: &Arc<Station>,
    client: &Peer,
    req: RestoreRequest,
    job: JobId,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let RestoreRequest { wanted, target, drives } = req;
    let access = Access::of(st, client).await?;
    let chain = match wanted {
        Wanted::Abs(id) => {
            let abs = complete_abs(st, id).await?;
            access.require_restore(&abs.primary_node, &abs.object_name, &target)?;
            if abs.base_abs_id.is_none() {
                vec![id]
            } else {
                let members = chain_members(st, &abs.primary_node, &abs.object_name).await?;
                chain_of(&members, id)?
            }
        }
        Wanted::At {
            primary,
            object_name,
            at_unix_ms,
        } => {
            access.require_restore(&primary, &object_name, &target)?;
            let at = job::restore_time(at_unix_ms)?;
            let members = chain_members(st, &primary, &object_name).await?;
            chain_at(&object_name, &members, at)?
        }
    };
    if chain.len() > 1 {
        let ids: Vec<String> = chain.iter().map(|i| format!("ABS {i}")).collect();
        send.emit(ChannelEvent::Chain {
            members: chain.clone(),
            detail: format!("restoring {} in order", ids.join(", ")),
        })
        .await;
    }
    let mut totals = LaneTotals::default();
    for id in chain {
        let Some(planned) = plan_one(st, id, &target, drives, job).await? else {
            // A differential with no change: nothing to write.
            continue;
        };
        for detail in &planned.from_copies {
            send.emit(ChannelEvent::Planned { detail: detail.clone() }).await;
        }
        let t = lanes::act(st, client, &planned, send).await?;
        totals.add(t);
    }
    Ok(totals.finished(started))
}

/// The segments of ABS `id` to read: each primary copy the catalog knows
/// readable, else its best copy in a copy pool (see [`sources`]).
pub(crate) async fn readable_segments(st: &Arc<Station>, id: AbsId) -> Result<sources::Sources> {
    let primaries = st.catalog.segments_of(id).await?;
    let copies = if primaries.iter().all(sources::readable) {
        Vec::new()
    } else {
        st.catalog.segment_copies_of(id).await?
    };
    Ok(sources::choose(primaries, &copies))
}

/// Fetch what the plan of ABS `id`'s restore needs and plan it.
async fn plan_one(
    st: &Arc<Station>,
    id: AbsId,
    target: &RestoreTarget,
    drives: u32,
    job: JobId,
) -> Result<Option<RestoreJob>> {
    let abs = complete_abs(st, id).await?;
    let changed = st.catalog.changed_tracks(id).await?;
    // The remap table (FIG. 15/16) and the node that writes.
    let (node, remap) = match target {
        RestoreTarget::Original => (abs.primary_node.clone(), RemapTable::original(&abs.map)),
        RestoreTarget::Volumes { primary, allocation } => {
            let node = registry::primary(st, primary).await?;
            let vols: Vec<VolumeRef> = node.volumes.clone();
            (
                primary.clone(),
                RemapTable::to_volumes(&abs.map, &vols, allocation).context("the destination allocation")?,
            )
        }
        RestoreTarget::File { primary, .. } => (primary.clone(), RemapTable::to_file(&abs.map)),
    };
    registry::primary(st, &node).await?;
    let sources = readable_segments(st, id).await?;
    let free = registry::free_drives(st).await?;
    let facts = AbsFacts {
        abs_id: id,
        map: abs.map,
        track_count: abs.track_count,
        segment_count: abs.segment_count,
        changed,
        segments: sources.segments,
        from_copies: sources.from_copies,
    };
    let dest = Destination {
        node,
        remap,
        target: target.clone(),
        job,
    };
    Ok(RestoreJob::plan(facts, dest, job::lanes_wanted(drives, free))?)
}
