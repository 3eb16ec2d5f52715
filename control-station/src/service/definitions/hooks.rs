//! A definition's pre and post commands (seed 003 FIG. 12 steps 122 and
//! 125: put the application into backup mode, and back), run by the
//! agent of the definition's host and recorded in the run, the channel's
//! history and the client's events.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use proto::domain::{AbsId, ChannelId, Failure, HookPhase, RunId};
use proto::wire::{ChannelEvent, Command, CommandReply};
use transport::Role;

use crate::service::events::EventSink;
use crate::service::Station;

/// How much longer than a hook's own timeout the station waits for the
/// agent's answer.
const ANSWER_GRACE: Duration = Duration::from_secs(15);

/// The run of a definition a backup is: what its hooks need.
#[derive(Debug, Clone)]
pub(crate) struct DefinitionRun {
    pub name: String,
    pub run: RunId,
    /// The host whose agent runs the hooks.
    pub host: String,
    /// Shell commands (empty: none).
    pub pre: String,
    pub post: String,
    pub timeout_seconds: u32,
}

/// How a hook ended.
struct Ran {
    /// Exit status (None: killed, or it could not run).
    status: Option<i32>,
    output: String,
}

impl DefinitionRun {
    /// The backup has its ABS and channel: record them with the run, then
    /// run the pre command (if any); the backup goes on only if it exited 0.
    pub(crate) async fn start(
        &self,
        st: &Arc<Station>,
        abs_id: AbsId,
        channel_id: ChannelId,
        send: &mut impl EventSink,
    ) -> Result<()> {
        st.catalog.set_abs_definition(abs_id, &self.name).await?;
        st.catalog.run_attached(self.run, abs_id, channel_id).await?;
        if self.pre.is_empty() {
            return Ok(());
        }
        let ran = self.hook(st, HookPhase::Pre, abs_id, channel_id, false, send).await;
        if ran.status == Some(0) {
            return Ok(());
        }
        bail!(Failure::refused(format!(
            "pre command `{}` on {} {}; the backup did not start. Its output: {}",
            self.pre,
            self.host,
            how(ran.status),
            shown(&ran.output)
        )))
    }

    /// Run the post command (if any), whatever happened; its result is
    /// recorded, never the backup's outcome.
    pub(crate) async fn post(
        &self,
        st: &Arc<Station>,
        abs_id: AbsId,
        channel_id: ChannelId,
        succeeded: bool,
        send: &mut impl EventSink,
    ) {
        if !self.post.is_empty() {
            self.hook(st, HookPhase::Post, abs_id, channel_id, succeeded, send)
                .await;
        }
    }

    async fn hook(
        &self,
        st: &Arc<Station>,
        phase: HookPhase,
        abs_id: AbsId,
        channel_id: ChannelId,
        succeeded: bool,
        send: &mut impl EventSink,
    ) -> Ran {
        let command = match phase {
            HookPhase::Pre => &self.pre,
            HookPhase::Post => &self.post,
        };
        let cmd = Command::RunHook {
            definition: self.name.clone(),
            phase,
            command: command.clone(),
            timeout_seconds: self.timeout_seconds,
            abs_id,
            succeeded,
        };
        let ran = match self.on_agent(st, &cmd).await {
            Ok(CommandReply::HookRan { status, output, .. }) => Ran { status, output },
            Ok(CommandReply::Error(f)) => Ran {
                status: None,
                output: format!("the agent could not run it: {}", f.message),
            },
            Ok(other) => Ran {
                status: None,
                output: format!("the agent answered {other:?}"),
            },
            Err(e) => Ran {
                status: None,
                output: format!("{e:#}"),
            },
        };
        tracing::info!(definition = %self.name, run = %self.run, %phase, host = %self.host, status = ?ran.status, "hook ran");
        if let Err(e) = st.catalog.run_hook(self.run, phase, ran.status, &ran.output).await {
            tracing::error!(run = %self.run, error = %e, "could not record the hook's result");
        }
        let note = format!(
            "{phase} command `{command}` {}. Output: {}",
            how(ran.status),
            shown(&ran.output)
        );
        if let Err(e) = st.catalog.channel_note(channel_id, &self.host, &note).await {
            tracing::error!(%channel_id, error = %e, "could not note the hook in the channel's history");
        }
        send.emit(ChannelEvent::Hook {
            phase,
            host: self.host.clone(),
            status: ran.status,
            output: ran.output.clone(),
        })
        .await;
        ran
    }

    async fn on_agent(&self, st: &Arc<Station>, cmd: &Command) -> Result<CommandReply> {
        on_agent(st, &self.host, self.timeout_seconds, cmd).await
    }
}

/// Send `cmd` to `host`'s agent (a client-certificate peer that registered
/// as an agent), waiting as long as a hook of `timeout_seconds` may take.
pub(crate) async fn on_agent(
    st: &Arc<Station>,
    host: &str,
    timeout_seconds: u32,
    cmd: &Command,
) -> Result<CommandReply> {
    let role = st.peers.lock().await.get(host).map(|p| p.role);
    match role {
        Some(Role::Client) => {}
        Some(_) => bail!(Failure::refused(format!(
            "{host} is not an agent (no `smapp agent` runs under that name)"
        ))),
        None => bail!(Failure::retryable(format!(
            "no agent of host {host} is connected (start `smapp --name {host} agent` there)"
        ))),
    }
    let wait = Duration::from_secs(u64::from(timeout_seconds)) + ANSWER_GRACE;
    st.command_within(host, cmd, wait).await
}

/// How a hook ended, in words.
pub(crate) fn how(status: Option<i32>) -> String {
    match status {
        Some(0) => "succeeded".into(),
        Some(s) => format!("failed (exit status {s})"),
        None => "did not finish (killed, timed out, or could not run)".into(),
    }
}

/// A hook's output as a note shows it.
pub(crate) fn shown(output: &str) -> String {
    let out = output.trim_end();
    if out.is_empty() {
        "(none)".into()
    } else {
        out.to_string()
    }
}
