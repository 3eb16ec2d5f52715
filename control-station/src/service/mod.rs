//! The control station service: accepts QUIC connections from every
//! process, enforces what each role may ask, keeps the registry of connected
//! peers, and runs the backup and restore channels.

mod access;
mod audit;
mod authorize;
mod backup;
pub mod catalog_backup;
mod copy;
pub(crate) mod definitions;
mod dispatch;
mod events;
mod failure;
mod import;
mod library;
pub(crate) mod library_admin;
pub(crate) mod listing;
pub mod live;
mod merge;
pub mod notify;
pub(crate) mod recovery;
pub(crate) mod registry;
mod restore;
mod serve;
mod versions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use proto::domain::{ChannelId, DriveId, Failure, MoverState, PairId, SegmentSeq};
use proto::wire::{Command, CommandReply, PeerAddr, MAX_CONTROL_FRAME};
use tokio::sync::{mpsc, Mutex};
use transport::Role;

use crate::catalog::Catalog;
pub(crate) use failure::failure_of;
pub use serve::{serve, REQUEST_TIMEOUT};

/// The prefix of the labels the station gives new tapes (`DM0001`, …)
/// unless `--label-prefix` says otherwise.
pub const TAPE_LABEL_PREFIX: &str = "DM";

/// A label prefix: 1 to 5 of A–Z 0–9 (a number completes the label's six
/// characters).
pub fn check_label_prefix(prefix: &str) -> Result<()> {
    let ok = (1..=5).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        bail!("label prefix {prefix:?}: expected 1 to 5 of A-Z 0-9 (a number completes the 6-character label)");
    }
    Ok(())
}

/// Station configuration.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub listen: SocketAddr,
    /// Where the operators' web console listens (HTTPS), if anywhere.
    pub http: Option<SocketAddr>,
    /// Directory of the virtual tape library's images.
    pub library: PathBuf,
    /// Pool new backups write to.
    pub pool: String,
    /// Record size of new tapes.
    pub block_size: u32,
    /// How long a command to a peer may take.
    pub command_timeout: Duration,
    /// A mover or primary node silent for this long is declared dead: its
    /// channels go to `Error` and its drives are freed.
    pub heartbeat_timeout: Duration,
    /// How long a backup waits for its front-end to come back and resume
    /// from its spool after it died.
    pub resume_patience: Duration,
    /// Time the library takes to put a tape in a drive, and to take it out.
    pub mount_delay: Duration,
    pub dismount_delay: Duration,
    /// Tapes the library holds.
    pub slots: u32,
    /// The catalog database, as `pg_dump` reaches it (catalog backups).
    pub database_url: String,
    /// The PostgreSQL programs catalog backups run.
    pub pg_tools: crate::pg_tools::PgTools,
    /// Prefix of new tape labels ([`TAPE_LABEL_PREFIX`] unless set).
    pub label_prefix: String,
    /// How long a job waits for a drive before the drives left idle
    /// meanwhile are reported to the operators.
    pub idle_notice: Duration,
}

/// Notes a running channel's queue holds before reporters wait.
const NOTE_QUEUE: usize = 64;

/// The sending and receiving ends of a running channel's note queue.
pub(crate) type NoteRx = mpsc::Receiver<ChannelNote>;

/// A new bounded note queue for a channel.
pub(crate) fn note_channel() -> (mpsc::Sender<ChannelNote>, NoteRx) {
    mpsc::channel(NOTE_QUEUE)
}

/// What a peer told the station about a running channel.
#[derive(Debug, Clone)]
pub(crate) enum ChannelNote {
    Progress {
        bytes: u64,
    },
    Finished {
        data_bytes: u64,
        tracks: u64,
        segments: u32,
    },
    /// A participant reported the channel failed (its failure's code is
    /// what the client gets), or one it depends on was lost.
    Failed {
        failure: Failure,
    },
    /// The channel's front-end died (`reason`); its backup can resume from
    /// the front-end's spool when it comes back.
    FrontEndLost {
        reason: String,
    },
    /// The channel's front-end registered again; `kept`: it still holds the
    /// channel in its spool.
    FrontEndBack {
        kept: bool,
    },
    /// The channel's front-end could not read segment `seq` from tape
    /// `tape_label` file `tape_file` and went on without it.
    Unreadable {
        seq: SegmentSeq,
        tape_label: String,
        tape_file: u32,
        failure: Failure,
    },
    /// The tape in a drive was full; the media set continues on `next`.
    TapeSwitched {
        drive_id: DriveId,
        full: String,
        next: Box<crate::catalog::TapeRow>,
    },
}

/// A connected mover or primary node.
#[derive(Clone)]
pub(crate) struct PeerConn {
    pub conn: quinn::Connection,
    /// Which start of the process registered (see `PeerAddr::boot`).
    pub boot: u64,
    pub role: Role,
    /// The program's version it registered with.
    pub version: String,
}

pub struct Station {
    pub(crate) catalog: Catalog,
    pub(crate) cfg: StationConfig,
    pub(crate) peers: Mutex<HashMap<String, PeerConn>>,
    pub(crate) registry: Mutex<registry::Registry>,
    pub(crate) channels: Mutex<HashMap<ChannelId, mpsc::Sender<ChannelNote>>>,
    pub(crate) drive_use: Mutex<HashMap<DriveId, registry::DriveUse>>,
    pub(crate) pair_load: Mutex<HashMap<PairId, usize>>,
    /// When each mover and primary node was last heard from.
    pub(crate) last_seen: Mutex<HashMap<String, Instant>>,
    /// The peers each running channel depends on.
    pub(crate) channel_peers: Mutex<HashMap<ChannelId, Vec<String>>>,
    /// Backup channels that survive the death of their front-end (it
    /// resumes them from its spool), with that front-end's name.
    pub(crate) resumable: Mutex<HashMap<ChannelId, String>>,
    /// Held while a peer's loss is noted to its channels, and while a
    /// returning front-end's channels learn it is back: a channel always
    /// hears of the loss first, whichever of the watchdog, the closed
    /// connection or the new registration noticed it.
    pub(crate) lifecycle: Mutex<()>,
    /// The dumps of the running catalog backups, by channel.
    pub(crate) dumps: Mutex<HashMap<ChannelId, catalog_backup::Dump>>,
    /// When this start of the station began.
    pub(crate) started: Instant,
    /// Version sets a version of which is being made or copied back.
    pub(crate) version_runs: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Held while versions are recovered from target volumes' regions.
    pub(crate) recovering: Mutex<()>,
    /// What operators watch live (the web console).
    pub live: live::Live,
    /// Where notifications go.
    pub(crate) notifier: notify::Notifier,
    /// Restore channels that have not delivered a byte yet, with when
    /// they opened (histogram `dmc_station_restore_first_byte_seconds`).
    pub(crate) awaiting_first_byte: std::sync::Mutex<HashMap<ChannelId, Instant>>,
}

impl Station {
    pub fn new(catalog: Catalog, cfg: StationConfig, webhook: Option<notify::Webhook>) -> Arc<Station> {
        Arc::new(Station {
            catalog,
            cfg,
            peers: Mutex::new(HashMap::new()),
            registry: Mutex::new(registry::Registry::default()),
            channels: Mutex::new(HashMap::new()),
            drive_use: Mutex::new(HashMap::new()),
            pair_load: Mutex::new(HashMap::new()),
            last_seen: Mutex::new(HashMap::new()),
            channel_peers: Mutex::new(HashMap::new()),
            resumable: Mutex::new(HashMap::new()),
            lifecycle: Mutex::new(()),
            dumps: Mutex::new(HashMap::new()),
            started: Instant::now(),
            version_runs: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            recovering: Mutex::new(()),
            live: live::Live::default(),
            notifier: notify::Notifier::new(webhook),
            awaiting_first_byte: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Where peers reach `name` (its registered address and start).
    pub(crate) async fn peer_addr(&self, name: &str, address: &str) -> PeerAddr {
        let boot = self.peers.lock().await.get(name).map(|p| p.boot).unwrap_or(0);
        PeerAddr {
            name: name.to_string(),
            address: address.to_string(),
            boot,
        }
    }

    /// `name` registers as start `boot`: if an earlier start is registered,
    /// that process died, and every channel that depended on it fails now
    /// (not when its heartbeats are missed).
    pub(crate) async fn restarted(&self, name: &str, boot: u64) {
        let earlier = self.peers.lock().await.get(name).map(|p| (p.boot, p.conn.stable_id()));
        if let Some((_, conn)) = earlier.filter(|(b, _)| *b != boot) {
            self.peer_lost(name, conn, "restarted (its earlier start died)").await;
        }
    }

    /// Whether `conn` is the connection `name` registered on.
    pub(crate) async fn registered_on(&self, name: &str, conn: &quinn::Connection) -> bool {
        self.peers
            .lock()
            .await
            .get(name)
            .is_some_and(|p| p.conn.stable_id() == conn.stable_id())
    }

    /// Note that `peer` is alive.
    pub(crate) async fn seen(&self, peer: &str) {
        self.last_seen.lock().await.insert(peer.to_string(), Instant::now());
    }

    /// A registration was recorded: `name` is heard from now, and reached
    /// on `conn` (replacing any earlier connection of it).
    pub(crate) async fn admit(&self, name: &str, conn: PeerConn) {
        self.seen(name).await;
        self.peers.lock().await.insert(name.to_string(), conn);
    }

    /// Record which peers a running channel depends on (empty: forget it).
    pub(crate) async fn depends_on(&self, channel_id: ChannelId, peers: &[&str]) {
        let mut map = self.channel_peers.lock().await;
        if peers.is_empty() {
            map.remove(&channel_id);
        } else {
            map.insert(channel_id, peers.iter().map(|p| p.to_string()).collect());
        }
    }

    /// The running channels `peer` takes part in.
    pub(crate) async fn channels_of(&self, peer: &str) -> Vec<ChannelId> {
        self.channel_peers
            .lock()
            .await
            .iter()
            .filter(|(_, ps)| ps.iter().any(|p| p == peer))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Fail unless `peer` takes part in running channel `channel_id` (its
    /// front-end, back-end or primary node): nobody else may report on it.
    pub(crate) async fn require_participant(&self, channel_id: ChannelId, peer: &str) -> Result<()> {
        let map = self.channel_peers.lock().await;
        match map.get(&channel_id) {
            Some(peers) if peers.iter().any(|p| p == peer) => Ok(()),
            Some(_) => {
                metrics::counter!("dmc_station_requests_refused_total").increment(1);
                bail!(Failure::refused(format!(
                    "not authorized: {peer} takes no part in channel {channel_id}"
                )))
            }
            None => bail!(Failure::not_found(format!("channel {channel_id} is not running"))),
        }
    }

    /// A peer is gone: forget its connection `conn` (a `stable_id`; a
    /// newer connection the peer registered on since is left alone), mark
    /// it offline, and fail every channel that depends on it (a backup
    /// whose front-end it was waits for it to come back and resume).
    pub(crate) async fn peer_lost(&self, peer: &str, conn: usize, why: &str) {
        let lifecycle = self.lifecycle.lock().await;
        {
            let mut peers = self.peers.lock().await;
            if peers.get(peer).is_none_or(|p| p.conn.stable_id() != conn) {
                return;
            }
            peers.remove(peer);
        }
        self.last_seen.lock().await.remove(peer);
        tracing::warn!(peer, reason = why, "peer lost");
        let affected = self.channels_of(peer).await;
        for channel_id in affected {
            let reason = format!("{peer} {why}");
            let resumes = self
                .resumable
                .lock()
                .await
                .get(&channel_id)
                .is_some_and(|fe| fe == peer);
            let note = if resumes {
                ChannelNote::FrontEndLost { reason }
            } else {
                ChannelNote::Failed {
                    failure: Failure::retryable(reason),
                }
            };
            self.note(channel_id, note).await;
        }
        drop(lifecycle);
        let mover = self.registry.lock().await.movers.get(peer).map(|m| m.id);
        if let Some(id) = mover {
            if let Err(e) = self.catalog.set_mover_state(id, MoverState::Offline).await {
                tracing::error!(error = %e, "could not mark {peer} offline");
            }
        }
    }

    /// Send a command to a connected peer and wait for its reply.
    pub(crate) async fn command(&self, peer: &str, cmd: &Command) -> Result<CommandReply> {
        self.command_within(peer, cmd, self.cfg.command_timeout).await
    }

    /// [`Station::command`], waiting at most `timeout` for the reply.
    pub(crate) async fn command_within(&self, peer: &str, cmd: &Command, timeout: Duration) -> Result<CommandReply> {
        let conn = self
            .peers
            .lock()
            .await
            .get(peer)
            .map(|p| p.conn.clone())
            .ok_or_else(|| anyhow!(Failure::retryable(format!("{peer} is not connected to the station"))))?;
        let fut = async {
            let (mut send, mut recv) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
            send.send(cmd).await?;
            send.finish().await?;
            recv.recv::<CommandReply>()
                .await?
                .ok_or_else(|| anyhow!(Failure::retryable(format!("{peer} closed the stream without a reply"))))
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => bail!(Failure::retryable(format!("{peer} did not answer within {timeout:?}"))),
        }
    }

    /// A command whose reply must not be an error.
    pub(crate) async fn command_ok(&self, peer: &str, cmd: &Command) -> Result<CommandReply> {
        match self.command(peer, cmd).await? {
            // The peer's failure, with its code, as the cause.
            CommandReply::Error(failure) => Err(failure.into()),
            other => Ok(other),
        }
    }

    pub(crate) async fn note(&self, channel_id: ChannelId, note: ChannelNote) {
        let tx = self.channels.lock().await.get(&channel_id).cloned();
        let Some(tx) = tx else {
            tracing::debug!(%channel_id, ?note, "note for a channel that is not running");
            return;
        };
        match note {
            // A full queue drops a progress note: the next one carries the
            // total anyway.
            ChannelNote::Progress { bytes } => {
                if bytes > 0 {
                    let opened = self
                        .awaiting_first_byte
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&channel_id);
                    if let Some(t) = opened {
                        metrics::histogram!("dmc_station_restore_first_byte_seconds").record(t.elapsed().as_secs_f64());
                    }
                }
                self.live.publish(live::LiveEvent::Progress {
                    channel_id,
                    bytes,
                    at_ms: live::now_ms(),
                });
                let _ = tx.try_send(note);
            }
            // The others wait their turn: the reporter is held back, not
            // the station's memory grown.
            other => {
                let _ = tx.send(other).await;
            }
        }
    }
}

/// Declare dead the peers that stopped sending heartbeats.
pub(crate) async fn watchdog(st: Arc<Station>) {
    let timeout = st.cfg.heartbeat_timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Each stale peer with the connection it was stale on (taken
        // together: a registration in between refreshes both).
        let stale: Vec<(String, usize)> = {
            let peers = st.peers.lock().await;
            let seen = st.last_seen.lock().await;
            seen.iter()
                .filter(|(_, t)| t.elapsed() > timeout)
                .filter_map(|(p, _)| peers.get(p).map(|c| (p.clone(), c.conn.stable_id())))
                .collect()
        };
        for (peer, conn) in stale {
            st.peer_lost(
                &peer,
                conn,
                &format!("stopped answering (no heartbeat for {timeout:?})"),
            )
            .await;
        }
    }
}
