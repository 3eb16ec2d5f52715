//! The control station service: accepts QUIC connections from every
//! process, enforces what each role may ask, keeps the registry of connected
//! peers, and runs the backup and restore channels.

mod access;
mod backup;
mod failure;
mod library;
mod library_admin;
mod listing;
mod merge;
mod recovery;
mod registry;
mod restore;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use access::Access;
use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{AbsId, ChannelId, DriveId, Failure, MoverState, PairId};
use proto::wire::{Command, CommandReply, PeerAddr, StationReply, StationRequest, MAX_CONTROL_FRAME};
use tokio::sync::{mpsc, Mutex};
use transport::FramedSend;
use transport::{Identity, Peer, Role};

use crate::catalog::Catalog;
pub(crate) use failure::failure_of;

/// Station configuration.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub listen: SocketAddr,
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
    /// When this start of the station began.
    pub(crate) started: Instant,
}

impl Station {
    pub fn new(catalog: Catalog, cfg: StationConfig) -> Arc<Station> {
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
            started: Instant::now(),
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
    async fn restarted(&self, name: &str, boot: u64) {
        let earlier = self.peers.lock().await.get(name).map(|p| (p.boot, p.conn.stable_id()));
        if let Some((_, conn)) = earlier.filter(|(b, _)| *b != boot) {
            self.peer_lost(name, conn, "restarted (its earlier start died)").await;
        }
    }

    /// Whether `conn` is the connection `name` registered on.
    async fn registered_on(&self, name: &str, conn: &quinn::Connection) -> bool {
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

    /// Record which peers a running channel depends on (empty: forget it).
    pub(crate) async fn depends_on(&self, channel_id: ChannelId, peers: &[&str]) {
        let mut map = self.channel_peers.lock().await;
        if peers.is_empty() {
            map.remove(&channel_id);
        } else {
            map.insert(channel_id, peers.iter().map(|p| p.to_string()).collect());
        }
    }

    /// Fail unless `peer` takes part in running channel `channel_id` (its
    /// front-end, back-end or primary node): nobody else may report on it.
    pub(crate) async fn require_participant(&self, channel_id: ChannelId, peer: &str) -> Result<()> {
        let map = self.channel_peers.lock().await;
        match map.get(&channel_id) {
            Some(peers) if peers.iter().any(|p| p == peer) => Ok(()),
            Some(_) => bail!(Failure::refused(format!(
                "not authorized: {peer} takes no part in channel {channel_id}"
            ))),
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
        let affected: Vec<ChannelId> = self
            .channel_peers
            .lock()
            .await
            .iter()
            .filter(|(_, ps)| ps.iter().any(|p| p == peer))
            .map(|(c, _)| *c)
            .collect();
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
        match tokio::time::timeout(self.cfg.command_timeout, fut).await {
            Ok(r) => r,
            Err(_) => bail!(Failure::retryable(format!(
                "{peer} did not answer within {:?}",
                self.cfg.command_timeout
            ))),
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
            ChannelNote::Progress { .. } => {
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
async fn watchdog(st: Arc<Station>) {
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

/// How long a peer has to send a whole request once it opened a stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve until the endpoint closes.
/// `pki`: the station's certificate directory, whose `crl.pem` is reloaded
/// when it changes (a revoked peer's connections are dropped).
pub async fn serve(station: Arc<Station>, identity: Identity, pki: PathBuf) -> Result<()> {
    let endpoint = transport::bind(station.cfg.listen, &identity).context("binding the station's QUIC endpoint")?;
    let revoked = transport::crl::watch(endpoint.clone(), pki, identity.name().to_string(), &identity);
    recovery::at_start(&station).await?;
    tracing::info!(address = %endpoint.local_addr()?, "control station listening");
    tokio::spawn(watchdog(station.clone()));
    tokio::spawn(recovery::sweeper(station.clone()));
    while let Some(incoming) = endpoint.accept().await {
        let st = station.clone();
        let revoked = revoked.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let (conn, peer) = match transport::accept(incoming).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "refused a connection");
                    metrics::counter!("dmc_station_connections_refused_total").increment(1);
                    return;
                }
            };
            tracing::info!(peer = %peer.name, role = peer.role.as_str(), %remote, "peer connected");
            serve_connection(st, conn, peer, revoked).await;
        });
    }
    Ok(())
}

async fn serve_connection(
    st: Arc<Station>,
    conn: quinn::Connection,
    peer: Peer,
    mut revoked: tokio::sync::watch::Receiver<transport::crl::Revoked>,
) {
    let serial = transport::crl::peer_serial(&conn);
    loop {
        let is_revoked = serial.as_ref().is_some_and(|s| revoked.borrow_and_update().contains(s));
        if is_revoked {
            tracing::warn!(peer = %peer.name, "certificate revoked: connection closed");
            conn.close(transport::codes::REFUSED, b"certificate revoked");
        }
        let accepted = tokio::select! {
            a = transport::accept_bi(&conn, MAX_CONTROL_FRAME) => a,
            _ = revoked.changed() => continue,
        };
        let (send, mut recv) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(peer = %peer.name, reason = %e, "peer disconnected");
                st.peer_lost(&peer.name, conn.stable_id(), &format!("disconnected ({e})"))
                    .await;
                return;
            }
        };
        let st = st.clone();
        let peer = peer.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            let mut send = send;
            // A request arrives whole within REQUEST_TIMEOUT, or its stream
            // (and the buffer its frame was filling) is dropped.
            let req = match tokio::time::timeout(REQUEST_TIMEOUT, recv.recv::<StationRequest>()).await {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => return,
                Err(_) => {
                    tracing::warn!(peer = %peer.name, timeout = ?REQUEST_TIMEOUT, "request not received in time; stream dropped");
                    let _ = recv.stop(transport::codes::REFUSED);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer.name, error = %e, "malformed request");
                    metrics::counter!("dmc_station_requests_malformed_total").increment(1);
                    let _ = send.send(&StationReply::Error(Failure::invalid(e.to_string()))).await;
                    return;
                }
            };
            if let Err(e) = authorize(&peer, &req) {
                tracing::warn!(peer = %peer.name, role = peer.role.as_str(), "refused: {e}");
                metrics::counter!("dmc_station_requests_refused_total").increment(1);
                let _ = send.send(&StationReply::Error(failure_of(&e))).await;
                let _ = send.finish().await;
                return;
            }
            dispatch(st, conn, peer, req, &mut send).await;
            let _ = send.finish().await;
        });
    }
}

/// What each role may ask.
fn authorize(peer: &Peer, req: &StationRequest) -> Result<()> {
    use StationRequest as R;
    let (allowed, action): (&[Role], &str) = match req {
        R::RegisterPrimary { .. } => (&[Role::PrimaryNode], "register a primary node"),
        R::RegisterMover { .. } => (&[Role::Mover], "register a mover"),
        R::Heartbeat { .. } => (&[Role::Mover, Role::PrimaryNode], "send heartbeats"),
        R::SegmentPlaced(_) | R::MetadataPlaced { .. } | R::TapeFull { .. } => {
            (&[Role::Mover], "report tape placements")
        }
        R::ChannelProgress { .. } | R::ChannelFinished { .. } | R::ChannelFailed { .. } => {
            (&[Role::Mover, Role::PrimaryNode], "report channel progress")
        }
        R::ChannelDataPath { .. } => (&[Role::Mover], "report a channel's data path"),
        R::CheckPair { .. } => (&[Role::Mover], "check a pairing"),
        R::Backup { .. } | R::Restore { .. } | R::RestoreAt { .. } | R::Merge { .. } => {
            (&[Role::Client, Role::Operator], "start backups and restores")
        }
        R::LibraryLabel { .. } | R::LibraryExport { .. } | R::LibraryImport { .. } => {
            (&[Role::Operator], "manage the tape library")
        }
        R::ListAbs | R::ListSegments { .. } | R::Channels { .. } | R::ListGrants => {
            (&[Role::Client, Role::Operator], "read the catalog")
        }
        R::ListTapes | R::ListMovers => (&[Role::Operator], "list the tapes and movers"),
        R::Health => (&[Role::Client, Role::Operator], "ask the station's health"),
        R::Grant { .. } | R::Revoke { .. } => (&[Role::Operator], "grant or revoke rights"),
    };
    transport::require_role(peer, allowed, action)?;
    let claimed = match req {
        R::RegisterPrimary { name, .. } | R::RegisterMover { name, .. } | R::Heartbeat { name } => Some(name),
        _ => None,
    };
    if let Some(name) = claimed {
        if name != &peer.name {
            bail!(Failure::refused(format!("peer {} may not speak for {name}", peer.name)));
        }
    }
    Ok(())
}

/// Fail unless channel `channel_id` writes or reads ABS `abs_id` (a
/// placement names both; a participant of one channel may not place
/// segments of another's ABS).
async fn require_channel_of(st: &Arc<Station>, channel_id: ChannelId, abs_id: AbsId) -> Result<()> {
    let row = st
        .catalog
        .channel(channel_id)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no channel {channel_id}"))))?;
    if row.abs_id != abs_id {
        bail!(Failure::refused(format!(
            "not authorized: channel {channel_id} writes ABS {}, not ABS {abs_id}",
            row.abs_id
        )));
    }
    Ok(())
}

/// Fail unless `access` may see ABS `id`.
async fn require_visible_abs(st: &Arc<Station>, access: &Access, id: AbsId) -> Result<()> {
    let row = st.catalog.load_abs(id).await?;
    match row {
        Some(a) if access.may_see(&a.primary_node, &a.object_name) => Ok(()),
        _ if access.is_operator() => Ok(()),
        // The same answer whether the ABS exists or not.
        _ => bail!(Failure::refused(format!(
            "not authorized: no ABS {id} this client has a grant on"
        ))),
    }
}

async fn dispatch(st: Arc<Station>, conn: quinn::Connection, peer: Peer, req: StationRequest, send: &mut FramedSend) {
    use StationRequest as R;
    let reply = match req {
        R::Backup {
            object_name,
            primary,
            object,
            drives,
            level,
            detach,
        } => {
            let abandon = if detach {
                backup::Abandon::Never
            } else {
                backup::Abandon::IfGone(Some(&conn))
            };
            backup::run(st, &peer, object_name, primary, object, drives, level, abandon, send).await;
            return;
        }
        R::Restore { abs_id, target, drives } => {
            restore::run(st, &peer, restore::Wanted::Abs(abs_id), target, drives, send).await;
            return;
        }
        R::RestoreAt {
            primary,
            object_name,
            at_unix_ms,
            target,
            drives,
        } => {
            let wanted = restore::Wanted::At {
                primary,
                object_name,
                at_unix_ms,
            };
            restore::run(st, &peer, wanted, target, drives, send).await;
            return;
        }
        R::Merge {
            primary,
            object_name,
            abs_id,
        } => {
            merge::run(st, &peer, primary, object_name, abs_id, send).await;
            return;
        }
        other => match handle(&st, conn, &peer, other).await {
            Ok(r) => r,
            Err(e) => {
                let failure = failure_of(&e);
                tracing::warn!(peer = %peer.name, code = %failure.code, error = %failure.message, "request failed");
                StationReply::Error(failure)
            }
        },
    };
    let _ = send.send(&reply).await;
}

async fn handle(st: &Arc<Station>, conn: quinn::Connection, peer: &Peer, req: StationRequest) -> Result<StationReply> {
    use StationRequest as R;
    Ok(match req {
        R::RegisterPrimary {
            name,
            volumes,
            boot,
            channels,
        } => {
            st.restarted(&name, boot).await;
            let id = registry::register_primary(st, &name, volumes).await?;
            st.seen(&name).await;
            let role = peer.role;
            st.peers
                .lock()
                .await
                .insert(name.clone(), PeerConn { conn, boot, role });
            tokio::spawn(recovery::reconcile(st.clone(), name, channels, Vec::new()));
            StationReply::Registered { id: id.get() }
        }
        R::RegisterMover {
            name,
            role,
            address,
            drives,
            back_end,
            boot,
            channels,
        } => {
            st.restarted(&name, boot).await;
            let id = registry::register_mover(st, &name, role, &address, &drives, back_end).await?;
            st.seen(&name).await;
            let peer_role = peer.role;
            st.peers.lock().await.insert(
                name.clone(),
                PeerConn {
                    conn,
                    boot,
                    role: peer_role,
                },
            );
            tokio::spawn(recovery::reconcile(st.clone(), name, channels, drives));
            StationReply::Registered { id: id.get() }
        }
        R::Heartbeat { name } => {
            if !st.registered_on(&name, &conn).await {
                return Ok(StationReply::NotRegistered);
            }
            st.seen(&name).await;
            // The catalog's `last_seen` follows in the background: liveness
            // never waits on the database.
            let st = st.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), registry::heartbeat(&st, &name)).await;
            });
            StationReply::Ok
        }
        R::Health => StationReply::Health(recovery::health(st).await),
        R::TapeFull {
            drive,
            tape_label,
            files,
            bytes,
        } => library::continue_media_set(st, &peer.name, &drive, &tape_label, files, bytes).await?,
        R::SegmentPlaced(p) => {
            st.require_participant(p.channel_id, &peer.name).await?;
            require_channel_of(st, p.channel_id, p.abs_id).await?;
            library::record_segment(st, &p).await?;
            StationReply::Ok
        }
        R::MetadataPlaced {
            channel_id,
            abs_id,
            tape_label,
            tape_file,
            ..
        } => {
            st.require_participant(channel_id, &peer.name).await?;
            require_channel_of(st, channel_id, abs_id).await?;
            library::record_metadata(st, abs_id, &tape_label, tape_file).await?;
            StationReply::Ok
        }
        R::ChannelProgress { channel_id, bytes, .. } => {
            st.require_participant(channel_id, &peer.name).await?;
            st.note(channel_id, ChannelNote::Progress { bytes }).await;
            StationReply::Ok
        }
        R::ChannelFinished {
            channel_id,
            data_bytes,
            tracks,
            segments,
        } => {
            st.require_participant(channel_id, &peer.name).await?;
            st.note(
                channel_id,
                ChannelNote::Finished {
                    data_bytes,
                    tracks,
                    segments,
                },
            )
            .await;
            StationReply::Ok
        }
        R::ChannelFailed { channel_id, failure } => {
            st.require_participant(channel_id, &peer.name).await?;
            tracing::warn!(%channel_id, peer = %peer.name, code = %failure.code, reason = %failure.message, "channel failure reported");
            st.note(channel_id, ChannelNote::Failed { failure }).await;
            StationReply::Ok
        }
        R::ChannelDataPath {
            channel_id,
            shared,
            detail,
        } => {
            st.require_participant(channel_id, &peer.name).await?;
            let note = format!("data path: {detail}");
            let recorded = st.catalog.note_channel(channel_id, &peer.name, &note).await?;
            tracing::info!(%channel_id, peer = %peer.name, shared, recorded, "channel data path");
            StationReply::Ok
        }
        R::ListAbs => {
            let access = Access::of(st, peer).await?;
            let mut all = listing::abs(st).await?;
            all.retain(|a| access.may_see(&a.primary, &a.object_name));
            StationReply::Abs(all)
        }
        R::ListTapes => StationReply::Tapes(listing::tapes(st).await?),
        R::ListMovers => StationReply::Movers(listing::movers(st).await?),
        R::LibraryLabel { pool, count } => {
            let labels = library_admin::label(st, &pool, count).await?;
            StationReply::Tapes(listing::tapes_named(st, &labels).await?)
        }
        R::LibraryExport { label, to_dir } => {
            library_admin::export(st, &label, &to_dir).await?;
            StationReply::Tapes(listing::tapes_named(st, &[label]).await?)
        }
        R::LibraryImport { path, pool } => {
            let label = library_admin::import(st, &path, &pool).await?;
            StationReply::Tapes(listing::tapes_named(st, &[label]).await?)
        }
        R::ListSegments { abs_id } => {
            let access = Access::of(st, peer).await?;
            match abs_id {
                None if !access.is_operator() => {
                    bail!(Failure::refused(
                        "not authorized: every segment of the catalog is for operators; name an ABS (--abs N)"
                    ))
                }
                None => {}
                Some(id) => require_visible_abs(st, &access, id).await?,
            }
            StationReply::Segments(listing::segments(st, abs_id).await?)
        }
        R::Channels { channel_id } => {
            let access = Access::of(st, peer).await?;
            let visible: Option<std::collections::HashSet<AbsId>> = if access.is_operator() {
                None
            } else {
                let all = listing::abs(st).await?;
                Some(
                    all.into_iter()
                        .filter(|a| access.may_see(&a.primary, &a.object_name))
                        .map(|a| a.abs_id)
                        .collect(),
                )
            };
            match channel_id {
                None => {
                    let mut all = listing::channels(st).await?;
                    if let Some(v) = &visible {
                        all.retain(|c| v.contains(&c.abs_id));
                    }
                    StationReply::Channels(all)
                }
                Some(id) => {
                    let reply = listing::history(st, id).await?;
                    if let (Some(v), StationReply::History { channel, .. }) = (&visible, &reply) {
                        if !v.contains(&channel.abs_id) {
                            bail!(Failure::refused(format!(
                                "not authorized: channel {id} belongs to an object {} has no grant on",
                                peer.name
                            )));
                        }
                    }
                    reply
                }
            }
        }
        R::Grant {
            client,
            primary,
            object,
            backup,
            restore,
        } => {
            st.catalog
                .grant(&client, &primary, object.as_deref(), backup, restore, &peer.name)
                .await?;
            tracing::info!(by = %peer.name, %client, %primary, ?object, backup, restore, "granted");
            StationReply::Grants(listing::grants(st, Some(&client)).await?)
        }
        R::Revoke {
            client,
            primary,
            object,
            backup,
            restore,
        } => {
            if !st
                .catalog
                .revoke(&client, &primary, object.as_deref(), backup, restore)
                .await?
            {
                let scope = object.map(|o| format!(" object {o}")).unwrap_or_default();
                bail!(Failure::not_found(format!(
                    "client {client} has no grant on {primary}{scope} to revoke"
                )));
            }
            tracing::info!(by = %peer.name, %client, %primary, backup, restore, "revoked");
            StationReply::Grants(listing::grants(st, Some(&client)).await?)
        }
        R::CheckPair { front_end } => {
            let pairs = st.catalog.list_pairs().await?;
            if !pairs.iter().any(|p| p.fe_name == front_end && p.be_name == peer.name) {
                bail!(Failure::refused(format!(
                    "not authorized: {front_end} is not a front-end of back-end {}",
                    peer.name
                )));
            }
            StationReply::Ok
        }
        R::ListGrants => {
            let own = (peer.role != Role::Operator).then_some(peer.name.as_str());
            StationReply::Grants(listing::grants(st, own).await?)
        }
        R::Backup { .. } | R::Restore { .. } | R::RestoreAt { .. } | R::Merge { .. } => {
            bail!(Failure::internal("internal: backups, restores and merges are streamed"))
        }
    })
}
