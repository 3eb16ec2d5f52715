//! A backup channel (seed FIG. 28): Requested → Opened → BeginningOfTape →
//! Writing → Closed, or → Error with a reason.
//!
//! The shell fetches what the plan needs from the catalog, [`job`] plans
//! the backup (level, base, map, drives) without I/O, and [`act`] carries
//! the plan out, every channel transition going through the channel's
//! state machine ([`crate::service::events::LiveChannel`]).

mod act;
mod job;
mod tape_switch;
mod writing;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use proto::domain::{Failure, Level, PoolKind};
use proto::tape::management::MAX_LABEL_TEXT;
use proto::wire::{ChannelEvent, StationReply};
use transport::{FramedSend, Peer};

use super::access::{Access, Right};
use super::events::{Abandon, EventSink};
use super::{copy, failure_of, registry, Station};
use crate::plan::ChainMember;
pub(crate) use job::{check_level, BackupJob, BackupRequest, Reader};
pub(crate) use writing::{await_written, close_written, open_writing_channel, settle, Held};

/// Run one backup for a client, streaming events to it.
pub(crate) async fn run(
    st: Arc<Station>,
    client: &Peer,
    req: BackupRequest,
    conn: &quinn::Connection,
    send: &mut FramedSend,
) {
    let started = Instant::now();
    let abandon = if req.detach {
        Abandon::Never
    } else {
        Abandon::IfGone(Some(conn))
    };
    let event = match backup(&st, client, req, abandon, send, started).await {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

/// Plan the backup from the catalog, create its ABS and channel, act. A
/// definition's run has its pre command run first (the backup acts only
/// once it succeeded) and its post command after, whatever happened.
/// Everything it logs carries the channel and ABS ids (span `backup`).
#[tracing::instrument(name = "backup", skip_all, fields(
    primary = %req.primary, object = %req.object_name,
    channel_id = tracing::field::Empty, abs_id = tracing::field::Empty,
))]
pub(crate) async fn backup(
    st: &Arc<Station>,
    client: &Peer,
    req: BackupRequest,
    abandon: Abandon<'_>,
    send: &mut impl EventSink,
    started: Instant,
) -> Result<ChannelEvent> {
    job::check_level(req.level)?;
    if req.label.len() > MAX_LABEL_TEXT {
        bail!(Failure::invalid(format!(
            "--label: {} bytes, at most {MAX_LABEL_TEXT}",
            req.label.len()
        )));
    }
    Access::of(st, client)
        .await?
        .require(Right::Backup, &req.primary, Some(&req.object_name))?;
    let node = registry::primary(st, &req.primary).await?;
    let map = job::object_map(&req.primary, &node.volumes, req.object.clone())?;
    let base = differential_base(st, &req).await?;
    let pool = primary_pool(st, req.pool.as_deref()).await?;
    if let Some(copy_pool) = &req.copy_to {
        copy::check_copy_pool(st, &pool, copy_pool).await?;
    }
    // A backup from a copy version reads the version's targets; the set
    // makes no version meanwhile (that would overwrite them).
    let (_busy, reader) = match &req.from_version {
        None => (None, None),
        Some(v) => {
            if !req.level.is_full() {
                bail!(Failure::invalid(format!(
                    "--from-version {v}: a backup from a version is a full backup (the version is one point in time of the whole object)"
                )));
            }
            let busy = super::versions::Busy::take(st, &v.set)?;
            let reader = super::versions::reader(st, v, &req.primary, &map).await?;
            (Some(busy), Some(reader))
        }
    };
    let mut job = BackupJob::plan(&req, map, base, &pool)?;
    job.reader = reader;
    let (_, abs_id) = st
        .catalog
        .create_abs(
            &job.object_name,
            node.id,
            job.level,
            job.base_abs_id,
            &job.map,
            &job.pool,
        )
        .await?;
    let (mut held, rx) = open_writing_channel(st, client, abs_id, &req.label).await?;
    let channel_id = held.channel.id();
    let span = tracing::Span::current();
    span.record("channel_id", tracing::field::display(channel_id));
    span.record("abs_id", tracing::field::display(abs_id));
    send.emit(ChannelEvent::Accepted { channel_id, abs_id }).await;
    let hooks = req.definition.as_ref();
    // A definition's run: recorded with its ABS and channel, then its pre
    // command; a failure of either ends the channel like any other.
    let ready = match hooks {
        Some(d) => d.start(st, abs_id, channel_id, send).await,
        None => Ok(()),
    };
    let outcome = match ready {
        Ok(()) => act::act(st, &mut held, &job, abandon, rx, send, started).await,
        Err(e) => Err(e),
    };
    st.resumable.lock().await.remove(&channel_id);
    st.channels.lock().await.remove(&channel_id);
    st.depends_on(channel_id, &[]).await;
    // The primary node drops the channel's snapshot, if it took one.
    let done = settle(st, &mut held, outcome, &[job.read_node()]).await;
    if let Some(d) = hooks {
        d.post(st, abs_id, channel_id, done.is_ok(), send).await;
    }
    let done = done?;
    if let Some(copy_pool) = &req.copy_to {
        // Synchronous copy: done only once the copy is on tape too. The
        // ABS is complete on its primary tape whatever happens here; a
        // failed copy fails the command and is made by the next pool
        // backup.
        copy::copy_abs(st, abs_id, &pool, copy_pool, send).await.map_err(|e| {
            e.context(format!(
                "ABS {abs_id} is complete on tape in pool {pool}, but its copy to pool {copy_pool} failed \
                 (`smapp pool backup {pool} --to {copy_pool}` makes it)"
            ))
        })?;
    }
    Ok(done)
}

/// The primary pool a backup writes to: the one asked for, which must be a
/// defined primary pool, else the station's default.
pub(crate) async fn primary_pool(st: &Arc<Station>, asked: Option<&str>) -> Result<String> {
    let Some(name) = asked else {
        return Ok(st.cfg.pool.clone());
    };
    match st.catalog.pool_named(name).await? {
        Some(p) if p.kind == PoolKind::Primary => Ok(p.name),
        Some(p) => Err(anyhow!(Failure::refused(format!(
            "pool {name} is a {} pool: backups go to primary pools",
            p.kind
        )))),
        None => Err(anyhow!(Failure::not_found(format!(
            "there is no pool {name}: define it first (smapp pool define {name} --kind primary)"
        )))),
    }
}

/// The base of a differential backup as the catalog holds it (None: a full).
async fn differential_base(st: &Arc<Station>, req: &BackupRequest) -> Result<Option<job::Base>> {
    let level = req.level;
    if level.is_full() {
        return Ok(None);
    }
    let members = chain_members(st, &req.primary, &req.object_name).await?;
    let id = base_of(&req.object_name, &members, level)?;
    let row = st
        .catalog
        .load_abs(id)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("base ABS {id} vanished from the catalog"))))?;
    let epochs = st.catalog.abs_epochs(id).await?;
    Ok(Some(job::Base {
        id,
        map: row.map,
        epochs,
    }))
}

/// The base a differential of `level` is taken against.
fn base_of(object_name: &str, members: &[ChainMember], level: Level) -> Result<proto::domain::AbsId> {
    crate::plan::base_for(object_name, members, level)?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no base for a {level} backup"))))
}

/// The complete ABSs of an object on a primary node, as chain members.
pub(crate) async fn chain_members(st: &Arc<Station>, primary: &str, object_name: &str) -> Result<Vec<ChainMember>> {
    // An object never backed up has no members (a chain error says so).
    let Some((_, rows)) = st.catalog.chain_members(primary, object_name).await? else {
        return Ok(Vec::new());
    };
    Ok(rows
        .into_iter()
        .map(|r| ChainMember {
            id: r.id,
            level: r.level,
            base: r.base_abs_id,
            point_in_time: r.point_in_time,
        })
        .collect())
}
