//! `smapp agent`: the long-running SMAPP process on a host. It registers
//! with the control station under its client certificate, sends heartbeats
//! like the movers, and runs the pre and post commands of the backup
//! definitions naming its host (seed 003 FIG. 12 steps 122 and 125) when
//! the station asks ([`Command::RunHook`]). It runs nothing else: every
//! other command is refused.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use proto::domain::{Failure, HookPhase};
use proto::wire::{Command, CommandReply, StationRequest, MAX_HOOK_OUTPUT};
use transport::link::StationLink;
use transport::Identity;

/// How often the agent tells the station it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long what a hook left running may keep its output open after the
/// hook exited, before its process group is killed.
const LINGER: Duration = Duration::from_secs(2);

/// Where the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Its certificate name: the host name definitions give.
    pub name: String,
    pub pki: PathBuf,
    pub station: SocketAddr,
    pub station_name: String,
    /// Directory hooks run in.
    pub workdir: PathBuf,
}

/// Run the agent until the process is stopped.
pub async fn run(cfg: AgentConfig) -> Result<()> {
    let identity = Identity::load(&cfg.pki, &cfg.name)
        .with_context(|| format!("loading certificate {} from {}", cfg.name, cfg.pki.display()))?;
    let any: SocketAddr = if cfg.station.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let endpoint = transport::bind(any, &identity).context("binding the agent's QUIC endpoint")?;
    let link = StationLink::connect(endpoint, cfg.station, &cfg.station_name, Duration::from_secs(30))
        .await
        .context("connecting to the control station")?;
    let boot: u64 = rand::random();
    let registration = StationRequest::RegisterAgent {
        name: cfg.name.clone(),
        boot,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    link.request_ok(&registration)
        .await
        .context("registering with the control station")?;
    tracing::info!(name = %cfg.name, boot, "agent registered");
    let register = Arc::new(tokio::sync::Notify::new());
    link.spawn_heartbeats(cfg.name.clone(), HEARTBEAT, register.clone());
    let workdir = Arc::new(cfg.workdir.clone());
    loop {
        let wd = workdir.clone();
        tokio::select! {
            res = link.serve_commands(move |cmd| handle(wd.clone(), cmd)) => {
                tracing::warn!(result = ?res, "station connection lost; reconnecting");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ = register.notified() => {}
        }
        match link.request_ok(&registration).await {
            Ok(()) => tracing::info!(name = %cfg.name, boot, "agent registered again"),
            Err(e) => tracing::warn!(error = %e, "registering again failed"),
        }
    }
}

async fn handle(workdir: Arc<PathBuf>, cmd: Command) -> CommandReply {
    match cmd {
        Command::RunHook {
            definition,
            phase,
            command,
            timeout_seconds,
            abs_id,
            succeeded,
        } => {
            let hook = Hook {
                definition,
                phase,
                command,
                timeout: Duration::from_secs(u64::from(timeout_seconds)),
                abs_id: abs_id.get(),
                succeeded,
            };
            match hook.run(&workdir).await {
                Ok(ran) => CommandReply::HookRan {
                    status: ran.status,
                    output: ran.output,
                    millis: u64::try_from(ran.elapsed.as_millis()).unwrap_or(u64::MAX),
                },
                Err(e) => CommandReply::Error(Failure::internal(format!("{e:#}"))),
            }
        }
        other => {
            tracing::warn!(command = ?other, "refused a command an agent does not run");
            CommandReply::Error(Failure::refused("an agent runs only backup definitions' hooks"))
        }
    }
}

/// One hook to run.
#[derive(Debug, Clone)]
pub struct Hook {
    pub definition: String,
    pub phase: HookPhase,
    /// Given to `sh -c`.
    pub command: String,
    pub timeout: Duration,
    pub abs_id: u64,
    /// Post phase: how the backup ended.
    pub succeeded: bool,
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Exit status; None: killed (its timeout, or a signal).
    pub status: Option<i32>,
    /// Its stdout and stderr together, as they came: the last
    /// [`MAX_HOOK_OUTPUT`] bytes, with a note when more came before.
    pub output: String,
    pub elapsed: Duration,
}

impl Hook {
    /// Run the command in `workdir`, in a process group of its own, killed
    /// (with everything it started) at its timeout.
    pub async fn run(&self, workdir: &std::path::Path) -> Result<Ran> {
        let started = Instant::now();
        let (mut reader, writer) = std::io::pipe().context("making the hook's output pipe")?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .current_dir(workdir)
            .env("DMC_DEFINITION", &self.definition)
            .env("DMC_PHASE", self.phase.as_str())
            .env("DMC_ABS_ID", self.abs_id.to_string())
            .stdin(Stdio::null())
            .stdout(writer.try_clone().context("sharing the hook's output pipe")?)
            .stderr(writer)
            .process_group(0)
            .kill_on_drop(true);
        if self.phase == HookPhase::Post {
            cmd.env("DMC_RESULT", if self.succeeded { "succeeded" } else { "failed" });
        }
        tracing::info!(definition = %self.definition, phase = %self.phase, command = %self.command, "running hook");
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting `sh -c {:?}` in {}", self.command, workdir.display()))?;
        // The command's copies of the pipe's write end went with `cmd`.
        drop(cmd);
        let pid = child.id();
        let collect = tokio::task::spawn_blocking(move || {
            let mut tail = Tail::new(MAX_HOOK_OUTPUT);
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => tail.push(&buf[..n]),
                }
            }
            tail.text()
        });
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(s) => s.context("waiting for the hook")?.code(),
            Err(_) => {
                tracing::warn!(definition = %self.definition, phase = %self.phase, timeout = ?self.timeout, "hook timed out; killing its process group");
                kill_group(pid);
                let _ = child.kill().await;
                None
            }
        };
        // Something the command left running in its group may hold the
        // pipe open: give it a moment, then end the group.
        let mut collect = collect;
        let mut output = match tokio::time::timeout(LINGER, &mut collect).await {
            Ok(out) => out.unwrap_or_default(),
            Err(_) => {
                kill_group(pid);
                collect.await.unwrap_or_default()
            }
        };
        if status.is_none() {
            output.push_str(&format!(
                "\n[killed: no exit within {} s, or by a signal]",
                self.timeout.as_secs()
            ));
        }
        Ok(Ran {
            status,
            output,
            elapsed: started.elapsed(),
        })
    }
}

/// Kill process group `pid` (the hook and whatever it started), if any.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The last `max` bytes of a stream, and whether more came before.
#[derive(Debug)]
pub struct Tail {
    max: usize,
    bytes: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    pub fn new(max: usize) -> Tail {
        Tail {
            max,
            bytes: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        let over = self.bytes.len().saturating_sub(self.max);
        if over > 0 {
            self.bytes.drain(..over);
            self.dropped += u64::try_from(over).unwrap_or(u64::MAX);
        }
    }

    /// The kept bytes as text (invalid UTF-8 replaced), after a note of
    /// how much was dropped.
    pub fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut kept = a.to_vec();
        kept.extend_from_slice(b);
        let body = String::from_utf8_lossy(&kept).into_owned();
        if self.dropped > 0 {
            format!("[{} earlier bytes not kept]\n{body}", self.dropped)
        } else {
            body
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &str, phase: HookPhase, timeout: Duration) -> Hook {
        Hook {
            definition: "nightly".into(),
            phase,
            command: command.into(),
            timeout,
            abs_id: 42,
            succeeded: false,
        }
    }

    #[tokio::test]
    async fn a_hook_reports_its_status_and_both_outputs_in_order_with_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let h = hook(
            "echo out; echo err >&2; echo $DMC_DEFINITION $DMC_PHASE $DMC_ABS_ID $DMC_RESULT; pwd; exit 3",
            HookPhase::Post,
            Duration::from_secs(30),
        );
        let ran = h.run(dir.path()).await.unwrap();
        assert_eq!(ran.status, Some(3));
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            ran.output,
            format!("out\nerr\nnightly post 42 failed\n{}\n", cwd.display())
        );
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        // A background child keeps the output pipe open: it must die too.
        let h = hook(
            "echo started; sleep 60 & sleep 60",
            HookPhase::Pre,
            Duration::from_secs(1),
        );
        let ran = h.run(dir.path()).await.unwrap();
        assert_eq!(ran.status, None);
        assert!(ran.output.starts_with("started\n"), "{}", ran.output);
        assert!(ran.output.contains("[killed"), "{}", ran.output);
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_and_says_how_many_went() {
        let mut t = Tail::new(4);
        t.push(b"abc");
        assert_eq!(t.text(), "abc");
        t.push(b"defg");
        assert_eq!(t.text(), "[3 earlier bytes not kept]\ndefg");
    }
}
