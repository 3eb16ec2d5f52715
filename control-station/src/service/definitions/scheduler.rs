//! The station's scheduler: every tick, each definition whose slot came
//! runs once (slots missed while the station was down: once, not once per
//! slot), and its next slot moves past now. Claiming a slot is one
//! conditional update, so a slot runs once even if two ticks race.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proto::domain::{Failure, Schedule};
use proto::wire::ChannelEvent;

use super::execute;
use crate::catalog::DefinitionRow;
use crate::service::events::EventSink;
use crate::service::Station;

/// How often the scheduler looks for due definitions.
const TICK: Duration = Duration::from_millis(500);

/// What a run left running when the station stopped is recorded as.
const STOPPED: &str = "the station stopped during the run (its backup's channel ended in error)";

/// At start: runs an earlier start left running failed.
pub(crate) async fn at_start(st: &Arc<Station>) -> anyhow::Result<()> {
    let n = st.catalog.fail_running_runs(STOPPED).await?;
    if n > 0 {
        tracing::warn!(runs = n, "definition runs an earlier start left running: failed");
    }
    Ok(())
}

/// Run due definitions, forever (a background task).
pub(crate) async fn scheduler(st: Arc<Station>) {
    loop {
        tokio::time::sleep(TICK).await;
        if let Err(e) = tick(&st).await {
            tracing::warn!(error = %format!("{e:#}"), "scheduler tick failed; retrying");
        }
    }
}

async fn tick(st: &Arc<Station>) -> anyhow::Result<()> {
    let now = Utc::now();
    for d in st.catalog.definitions(None).await? {
        let schedule: Schedule = match d.schedule.parse() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(definition = %d.name, error = %e, "stored schedule does not parse; not run");
                continue;
            }
        };
        let due = schedule.due(d.next_due.timestamp_millis(), now.timestamp_millis());
        if !due.run {
            continue;
        }
        let Some(next) = DateTime::from_timestamp_millis(due.next_due_ms) else {
            tracing::error!(definition = %d.name, "next slot out of range; not run");
            continue;
        };
        if !st.catalog.claim_slot(d.id, d.next_due, next).await? {
            continue;
        }
        match st.catalog.start_run(d.id, d.next_due).await? {
            Some(run) => {
                tracing::info!(definition = %d.name, due = %d.next_due, %next, "definition due");
                tokio::spawn(scheduled(st.clone(), d, run));
            }
            None => tracing::warn!(definition = %d.name, "skipped a slot: the previous run is still going"),
        }
    }
    Ok(())
}

/// A scheduled run: nobody follows it; its events go to the log.
async fn scheduled(st: Arc<Station>, d: DefinitionRow, run: proto::domain::RunId) {
    let mut sink = LogSink {
        definition: d.name.clone(),
    };
    if let Err(e) = execute(&st, d, run, &mut sink).await {
        let f = crate::service::failure_of(&e);
        tracing::warn!(%run, code = %f.code, error = %f.message, "scheduled run failed");
    }
}

/// Where a scheduled run's events go: the station's log.
struct LogSink {
    definition: String,
}

impl EventSink for LogSink {
    async fn emit(&mut self, ev: ChannelEvent) {
        match ev {
            ChannelEvent::Progress { .. } => {}
            ChannelEvent::Failed(Failure { code, message }) => {
                tracing::warn!(definition = %self.definition, %code, %message, "run event: failed")
            }
            other => tracing::info!(definition = %self.definition, event = ?other, "run event"),
        }
    }

    async fn emit_checked(&mut self, ev: ChannelEvent) -> bool {
        self.emit(ev).await;
        true
    }
}
