//! Backup definitions (seed 002 FIG. 5, 10): named backups the station
//! runs on their schedule ([`scheduler`]), each run an ordinary backup
//! whose ABS records the definition, with the host's pre and post commands
//! around it ([`hooks`]).
//!
//! Who may do what: a client defines backups of what it may back up, and
//! its hooks run on its own host (its agent has its name); an operator may
//! define any and name the host. Each run backs up with its definer's
//! rights as they are at that moment (a revoked grant fails the run).

mod hooks;
mod scheduler;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use proto::domain::{Failure, Level, RunState, Schedule};
use proto::tape::management::MAX_LABEL_TEXT;
use proto::wire::{ChannelEvent, DefinitionInfo, DefinitionSpec, RunInfo, StationReply};
use transport::{FramedSend, Peer, Role};

pub(crate) use hooks::{how, on_agent, shown, DefinitionRun};
pub(crate) use scheduler::{at_start, scheduler};

use super::access::{Access, Right};
use super::backup::{self, BackupRequest};
use super::events::{Abandon, EventSink};
use super::listing::ts;
use super::{failure_of, Station};
use crate::catalog::{DefinitionRow, RunRow};

/// Longest pre or post command.
pub(crate) const MAX_COMMAND: usize = 4096;
/// Runs `definitions` lists per definition.
const RUNS_SHOWN: i64 = 5;

/// Check a definition's name: what the catalog accepts, said plainly.
fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        bail!(Failure::invalid(format!(
            "definition name {name:?}: expected 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Store a new definition for `peer`.
pub(crate) async fn define(st: &Arc<Station>, peer: &Peer, spec: DefinitionSpec) -> Result<DefinitionInfo> {
    check_name(&spec.name)?;
    let schedule: Schedule = spec
        .schedule
        .parse()
        .map_err(|e: proto::domain::BadSchedule| anyhow!(Failure::invalid(e.to_string())))?;
    backup::check_level(spec.level)?;
    if spec.label.len() > MAX_LABEL_TEXT {
        bail!(Failure::invalid(format!(
            "--label: {} bytes, at most {MAX_LABEL_TEXT}",
            spec.label.len()
        )));
    }
    for (what, c) in [("--pre", &spec.pre), ("--post", &spec.post)] {
        if c.len() > MAX_COMMAND {
            bail!(Failure::invalid(format!(
                "{what}: {} bytes, at most {MAX_COMMAND}",
                c.len()
            )));
        }
    }
    if spec.hook_timeout_seconds == 0 || i32::try_from(spec.hook_timeout_seconds).is_err() {
        bail!(Failure::invalid("--hook-timeout: at least 1 second"));
    }
    let access = Access::of(st, peer).await?;
    access.require(Right::Backup, &spec.primary, Some(&spec.object_name))?;
    let host = match (&spec.host, access.is_operator()) {
        (Some(h), true) => h.clone(),
        (Some(h), false) if *h != peer.name => bail!(Failure::refused(format!(
            "not authorized: a client's hooks run on its own host ({}); only an operator may name host {h}",
            peer.name
        ))),
        (None, true) if !spec.pre.is_empty() || !spec.post.is_empty() => {
            bail!(Failure::invalid(
                "an operator's definition with hooks names the host that runs them (--host)"
            ))
        }
        _ => peer.name.clone(),
    };
    if let Some(pool) = &spec.pool {
        backup::primary_pool(st, Some(pool)).await?;
    }
    let now = Utc::now();
    let next_due = chrono::DateTime::from_timestamp_millis(schedule.first_due(now.timestamp_millis()))
        .ok_or_else(|| anyhow!(Failure::invalid("the schedule's first slot is out of range")))?;
    let row = DefinitionRow {
        id: Default::default(),
        name: spec.name,
        client: peer.name.clone(),
        client_is_operator: access.is_operator(),
        host,
        primary_node: spec.primary,
        object_name: spec.object_name,
        object: spec.object,
        level: spec.level,
        label: spec.label,
        pool: spec.pool,
        schedule: schedule.to_string(),
        pre_command: spec.pre,
        post_command: spec.post,
        hook_timeout_seconds: spec.hook_timeout_seconds,
        created: now,
        next_due,
    };
    st.catalog.define(&row).await?;
    tracing::info!(definition = %row.name, by = %peer.name, schedule = %row.schedule, host = %row.host, "backup defined");
    let row = st.catalog.definition_named(&row.name).await?;
    info(row, Vec::new())
}

/// Remove definition `name` (a client: only its own).
pub(crate) async fn undefine(st: &Arc<Station>, peer: &Peer, name: &str) -> Result<()> {
    let owner = (peer.role != Role::Operator).then_some(peer.name.as_str());
    st.catalog.undefine(name, owner).await?;
    tracing::info!(definition = %name, by = %peer.name, "backup undefined");
    Ok(())
}

/// The definitions `peer` may see (an operator: all), with their runs.
pub(crate) async fn list(st: &Arc<Station>, peer: &Peer) -> Result<Vec<DefinitionInfo>> {
    let owner = (peer.role != Role::Operator).then_some(peer.name.as_str());
    let mut out = Vec::new();
    for d in st.catalog.definitions(owner).await? {
        let runs = st.catalog.runs_of(d.id, RUNS_SHOWN).await?;
        out.push(info(d, runs)?);
    }
    Ok(out)
}

fn info(d: DefinitionRow, runs: Vec<RunRow>) -> Result<DefinitionInfo> {
    Ok(DefinitionInfo {
        name: d.name,
        client: d.client,
        host: d.host,
        primary: d.primary_node,
        object_name: d.object_name,
        level: d.level,
        label: d.label,
        pool: d.pool.unwrap_or_default(),
        schedule: d.schedule,
        pre: d.pre_command,
        post: d.post_command,
        hook_timeout_seconds: d.hook_timeout_seconds,
        created: ts(d.created),
        next_due: ts(d.next_due),
        runs: runs
            .into_iter()
            .map(|r| RunInfo {
                run_id: r.id,
                due: ts(r.due),
                started: ts(r.started),
                finished: r.finished.map(ts).unwrap_or_default(),
                state: r.state,
                abs_id: r.abs_id,
                channel_id: r.channel_id,
                reason: r.reason,
                pre_status: r.pre_status,
                pre_output: r.pre_output,
                post_status: r.post_status,
                post_output: r.post_output,
            })
            .collect(),
    })
}

/// Run definition `name` now for `peer` (its definer or an operator),
/// streaming the backup's events to it.
pub(crate) async fn run_now(st: Arc<Station>, peer: &Peer, name: &str, send: &mut FramedSend) {
    let event = match run_now_inner(&st, peer, name, send).await {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

async fn run_now_inner(st: &Arc<Station>, peer: &Peer, name: &str, send: &mut FramedSend) -> Result<ChannelEvent> {
    let d = st.catalog.definition_named(name).await?;
    if peer.role != Role::Operator && d.client != peer.name {
        bail!(Failure::not_found(format!("no definition {name} of {}", peer.name)));
    }
    let Some(run) = st.catalog.start_run(d.id, Utc::now()).await? else {
        bail!(Failure::conflict(format!("definition {name} is running already")));
    };
    execute(st, d, run, send).await
}

/// One run of definition `d` (run `run`, started): an ordinary backup with
/// its definer's rights and the definition's hooks; the run records how
/// it ended.
pub(crate) async fn execute(
    st: &Arc<Station>,
    d: DefinitionRow,
    run: proto::domain::RunId,
    send: &mut impl EventSink,
) -> Result<ChannelEvent> {
    let definer = Peer {
        name: d.client.clone(),
        role: if d.client_is_operator {
            Role::Operator
        } else {
            Role::Client
        },
        addr: st.cfg.listen,
    };
    // Like other schedulers: a differential with no full to build on yet
    // is taken as a full, and the run says so.
    let members = backup::chain_members(st, &d.primary_node, &d.object_name).await?;
    let level = match crate::plan::base_for(&d.object_name, &members, d.level) {
        Err(crate::plan::ChainError::NoFull { .. }) => {
            let detail = format!(
                "no full backup of {} yet: this {} run is taken as a full",
                d.object_name, d.level
            );
            tracing::info!(definition = %d.name, %run, "{detail}");
            send.emit(ChannelEvent::Planned { detail }).await;
            Level::Full
        }
        _ => d.level,
    };
    let req = BackupRequest {
        object_name: d.object_name,
        primary: d.primary_node,
        object: d.object,
        drives: 1,
        level,
        // A run belongs to no client: it waits for a drive as long as it must.
        detach: true,
        pool: d.pool,
        copy_to: None,
        label: d.label,
        definition: Some(DefinitionRun {
            name: d.name.clone(),
            run,
            host: d.host,
            pre: d.pre_command,
            post: d.post_command,
            timeout_seconds: d.hook_timeout_seconds,
        }),
        from_version: None,
    };
    tracing::info!(definition = %d.name, %run, "definition run starts");
    let outcome = backup::backup(st, &definer, req, Abandon::Never, send, Instant::now()).await;
    let (state, reason) = match &outcome {
        Ok(ChannelEvent::Failed(f)) => (RunState::Failed, f.message.clone()),
        Ok(_) => (RunState::Succeeded, String::new()),
        Err(e) => (RunState::Failed, format!("{e:#}")),
    };
    tracing::info!(definition = %d.name, %run, %state, %reason, "definition run ended");
    if let Err(e) = st.catalog.finish_run(run, state, &reason).await {
        tracing::error!(%run, error = %e, "could not record how the run ended");
    }
    outcome
}
