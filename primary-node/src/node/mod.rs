//! The primary node process: register with the station, obey its commands.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use proto::abs::{TrackRun, TrackSet};
use proto::domain::{ChannelId, Failure, FailureCode, JobId, MapId};
use proto::wire::{Command, CommandReply, PeerAddr, StationRequest, VolumeEpoch};
use transport::link::StationLink;
use transport::{BufPool, Dialer, Identity};

mod copies;
use copies::{accept_copies, send_copy, snapshot_reader};

use crate::restore::{receive_restore, Destination};
use crate::send::{resolve_volumes, send_track_set, Purpose, ReadTrack, Released, SendOrder, Stopped, TrackSource};
use crate::volume::Volume;

/// Configuration of one primary node.
pub struct NodeConfig {
    pub name: String,
    /// This node's certificate directory (its revocation list is reloaded
    /// when it changes).
    pub pki: std::path::PathBuf,
    pub identity: Identity,
    pub listen: SocketAddr,
    pub station: SocketAddr,
    pub station_name: String,
    pub volumes: Vec<Volume>,
    pub window: u64,
    /// Bytes per second each backup stream may send (None: no limit).
    pub stream_rate: Option<u64>,
    /// Where the NBD export listens (None: no export).
    pub nbd: Option<SocketAddr>,
    /// The node's state: change maps.
    pub state_dir: std::path::PathBuf,
    /// The only directory restores into files write to.
    pub restore_dir: std::path::PathBuf,
    /// Bytes the side files of all running backups may hold together.
    pub side_file_limit: u64,
}

#[derive(Clone)]
struct Node {
    name: String,
    /// Connections to front-ends, one per front-end, reused by every stream.
    dialer: Arc<Dialer>,
    /// Buffers tracks are read into for every backup stream.
    tracks: BufPool,
    link: StationLink,
    volumes: Arc<HashMap<String, Arc<Volume>>>,
    window: u64,
    stream_rate: Option<u64>,
    host: Arc<crate::host::HostIo>,
    restore_dir: Arc<crate::restore_dir::RestoreDir>,
    /// This start of the process (see `PeerAddr::boot`).
    boot: u64,
    /// Restore channels, each with the token that stops its stream and its
    /// job, from the order until the station finishes the job (so a job
    /// whose station restarted is found at registration and its partial
    /// file removed).
    restores: Arc<std::sync::Mutex<HashMap<ChannelId, (tokio_util::sync::CancellationToken, JobId)>>>,
    /// Backup streams, each with the queue a resume order reaches it on
    /// (the new start of its front-end); removed when the stream ends or
    /// the channel is aborted.
    resumes: Arc<std::sync::Mutex<HashMap<ChannelId, tokio::sync::mpsc::Sender<PeerAddr>>>>,
    /// Copies the station announced, whose stream has not arrived yet.
    expected: Arc<crate::copy::Expected>,
}

/// How long a backup stream that lost its front-end waits for the station
/// to resume it (the station decides sooner, see `--resume-patience`; this
/// bounds the wait when nobody tells it anything).
const RESUME_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Run until the station link fails for good.
pub async fn run(cfg: NodeConfig) -> Result<()> {
    let endpoint = transport::bind(cfg.listen, &cfg.identity).context("binding the QUIC endpoint")?;
    // New handshakes check the revocation list as it changes.
    let _revoked = transport::crl::watch(
        endpoint.clone(),
        cfg.pki.clone(),
        cfg.identity.name().to_string(),
        &cfg.identity,
    );
    let link = StationLink::connect(
        endpoint.clone(),
        cfg.station,
        &cfg.station_name,
        Duration::from_secs(30),
    )
    .await
    .context("connecting to the control station")?;
    let volumes: HashMap<String, Arc<Volume>> =
        cfg.volumes.into_iter().map(|v| (v.name.clone(), Arc::new(v))).collect();
    let host = Arc::new(crate::host::HostIo::open(
        &volumes,
        &cfg.state_dir,
        cfg.side_file_limit,
    )?);
    let volume_files: Vec<std::path::PathBuf> = volumes.values().map(|v| v.path.clone()).collect();
    let restore_dir = Arc::new(crate::restore_dir::RestoreDir::open(&cfg.restore_dir, &volume_files)?);
    tracing::info!(dir = %restore_dir.path().display(), "restores into files go to this directory");
    let max_track = volumes
        .values()
        .map(|v| v.geometry.track_size as usize)
        .max()
        .unwrap_or(0)
        .min(proto::tape::MAX_TRACK_SIZE);
    if let Some(addr) = cfg.nbd {
        let listener = crate::nbd::bind(addr).await?;
        tracing::info!(address = %listener.local_addr()?, volumes = volumes.len(), "NBD export listening");
        tokio::spawn(crate::nbd::serve(listener, host.clone()));
    }
    let boot: u64 = rand::random();
    let node = Node {
        boot,
        restores: Arc::new(std::sync::Mutex::new(HashMap::new())),
        resumes: Arc::new(std::sync::Mutex::new(HashMap::new())),
        name: cfg.name,
        dialer: Arc::new(Dialer::new(endpoint.clone())),
        tracks: BufPool::new(max_track, 64),
        link: link.clone(),
        volumes: Arc::new(volumes),
        window: cfg.window,
        stream_rate: cfg.stream_rate,
        host,
        restore_dir,
        expected: Arc::new(crate::copy::Expected::default()),
    };
    // Other primary nodes open copy streams to this one.
    tokio::spawn(accept_copies(endpoint.clone(), node.clone()));
    link.request_ok(&node.registration())
        .await
        .context("registering with the control station")?;
    tracing::info!(name = %node.name, volumes = node.volumes.len(), boot, "primary node registered");

    let register = Arc::new(tokio::sync::Notify::new());
    link.spawn_heartbeats(node.name.clone(), Duration::from_secs(2), register.clone());

    loop {
        let n = node.clone();
        tokio::select! {
            res = link.serve_commands(move |cmd| handle(n.clone(), cmd)) => {
                tracing::warn!(result = ?res, "station connection lost; reconnecting");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ = register.notified() => {}
        }
        match link.request_ok(&node.registration()).await {
            Ok(()) => tracing::info!(name = %node.name, boot, "primary node registered again"),
            Err(e) => tracing::warn!(error = %e, "registering again failed"),
        }
    }
}

impl Node {
    /// The registration: volumes, this start, and the channels the node
    /// holds (snapshots of backups, restores being written).
    fn registration(&self) -> StationRequest {
        let mut channels: Vec<ChannelId> = self.host.backups().into_iter().map(ChannelId::new).collect();
        if let Ok(r) = self.restores.lock() {
            channels.extend(r.keys().copied());
        }
        channels.sort_unstable();
        channels.dedup();
        StationRequest::RegisterPrimary {
            version: env!("CARGO_PKG_VERSION").to_string(),
            name: self.name.clone(),
            volumes: self.volumes.values().map(|v| v.reference()).collect(),
            boot: self.boot,
            channels,
            targets: self.volumes.values().filter_map(|v| v.target_report()).collect(),
        }
    }
}

async fn handle(node: Node, cmd: Command) -> CommandReply {
    match cmd {
        Command::TakeSnapshot { channel_id, map, since } => take_snapshot(&node, channel_id, &map, &since),
        Command::SendTrackSet {
            channel_id,
            abs_id,
            front_end,
            map,
            tracks,
            token,
        } => {
            if let Err(e) = map.validate() {
                end_backup(&node.host, channel_id, &map_volume_names(&map));
                return CommandReply::Error(Failure::invalid(format!("invalid ABS map: {e}")));
            }
            let names = map_volume_names(&map);
            if let Some(t) = tracks.iter().find(|t| map.track_extent(*t).is_err()) {
                end_backup(&node.host, channel_id, &names);
                return CommandReply::Error(Failure::invalid(format!(
                    "track {t:?} of the order is not in the ABS map"
                )));
            }
            let order = SendOrder {
                channel_id,
                purpose: Purpose::Backup { abs_id },
                front_end,
                map,
                tracks,
                window: node.window,
                rate: node.stream_rate,
                token,
            };
            let (resume_tx, resume_rx) = tokio::sync::mpsc::channel::<PeerAddr>(1);
            if let Ok(mut r) = node.resumes.lock() {
                r.insert(channel_id, resume_tx);
            }
            tokio::spawn(async move {
                let (read, release) = snapshot_reader(&node.host, channel_id, &names);
                let res = stream_with_resumes(&node, order, resume_rx, read, &release).await;
                if let Ok(mut r) = node.resumes.lock() {
                    r.remove(&channel_id);
                }
                end_backup(&node.host, channel_id, &names);
                match res {
                    Ok(tracks) => tracing::info!(%channel_id, %abs_id, tracks, "track set sent and on tape"),
                    Err(None) => tracing::info!(%channel_id, %abs_id, "backup stream ended: its channel was aborted"),
                    Err(Some(e)) => {
                        let reason = format!("primary node {}: {e}", node.name);
                        tracing::error!(%channel_id, %reason, "backup stream failed");
                        let _ = node
                            .link
                            .request_ok(&StationRequest::ChannelFailed {
                                channel_id,
                                failure: Failure::internal(reason),
                            })
                            .await;
                    }
                }
            });
            CommandReply::Ok
        }
        Command::ReceiveRestore(order) => {
            let dest = match Destination::open(&order, &node.host, &node.restore_dir) {
                Ok(d) => d,
                Err(e) => return CommandReply::Error(failure_of(&e, format!("{e:#}"))),
            };
            if let Err(e) = proto::abs::Placer::new(&order.map, &order.remap) {
                return CommandReply::Error(Failure::invalid(format!("invalid restore order: {e}")));
            }
            let channel_id = order.channel_id;
            let job = order.job;
            let cancel = tokio_util::sync::CancellationToken::new();
            if let Ok(mut r) = node.restores.lock() {
                r.insert(channel_id, (cancel.clone(), job));
            }
            tokio::spawn(async move {
                // Progress goes to the station at most every 16 MiB, without
                // holding up the writes.
                let (ptx, mut prx) = tokio::sync::watch::channel(0u64);
                let link = node.link.clone();
                let reporter = tokio::spawn(async move {
                    let mut last = 0u64;
                    while prx.changed().await.is_ok() {
                        let bytes = *prx.borrow_and_update();
                        if bytes >= last + (16 << 20) {
                            last = bytes;
                            let _ = link
                                .request_ok(&StationRequest::ChannelProgress {
                                    channel_id,
                                    bytes,
                                    tracks: 0,
                                })
                                .await;
                        }
                    }
                });
                let result = tokio::select! {
                    r = receive_restore(&node.dialer, order, dest, move |b| {
                        let _ = ptx.send(b);
                    }) => r,
                    _ = cancel.cancelled() => Err(anyhow::anyhow!("the station aborted the restore")),
                };
                if result.is_err() {
                    if let Ok(mut r) = node.restores.lock() {
                        r.remove(&channel_id);
                    }
                }
                let _ = reporter.await;
                match result {
                    Ok(t) => {
                        tracing::info!(
                            %channel_id,
                            tracks = t.tracks,
                            bytes = t.bytes_written,
                            "restore stream written"
                        );
                        let req = StationRequest::ChannelFinished {
                            channel_id,
                            data_bytes: t.bytes_written,
                            tracks: t.tracks,
                            segments: t.segments,
                        };
                        if let Err(e) = node.link.request_ok(&req).await {
                            tracing::error!(error = %e, "could not report the restore");
                        }
                    }
                    Err(e) => {
                        let reason = format!("primary node {}: {e:#}", node.name);
                        tracing::error!(%channel_id, %reason, "restore stream failed");
                        // The whole restore failed with this stream: its
                        // partial file goes now, whether or not the station
                        // lives to say so.
                        node.restore_dir.discard(job);
                        let _ = node
                            .link
                            .request_ok(&StationRequest::ChannelFailed {
                                channel_id,
                                failure: failure_of(&e, reason),
                            })
                            .await;
                    }
                }
            });
            CommandReply::Ok
        }
        Command::HoldWrites { hold, volumes, max_ms } => {
            let host = node.host.clone();
            let max = Duration::from_millis(u64::from(max_ms.clamp(1, MAX_HOLD_MS)));
            let held = tokio::task::spawn_blocking(move || host.hold_writes(hold.get(), &volumes, max)).await;
            match held {
                Ok(Ok(())) => CommandReply::Ok,
                Ok(Err(e)) => CommandReply::Error(failure_of(&e, format!("primary node {}: {e:#}", node.name))),
                Err(e) => CommandReply::Error(Failure::internal(format!("write hold: {e}"))),
            }
        }
        Command::ReleaseWrites { hold } => {
            node.host.release_writes(hold.get());
            CommandReply::Ok
        }
        Command::ReceiveCopy(order) => match node.expected.expect(&node.host, order) {
            Ok(()) => CommandReply::Ok,
            Err(e) => CommandReply::Error(failure_of(&e, format!("primary node {}: {e:#}", node.name))),
        },
        Command::SendCopy(order) => send_copy(&node, order).await,
        Command::FinishRestore { job, commit } => {
            if let Ok(mut r) = node.restores.lock() {
                r.retain(|_, (_, j)| *j != job);
            }
            finish_restore(&node, job, commit)
        }
        Command::ResumeTrackSet { channel_id, front_end } => {
            let waiting = node.resumes.lock().ok().and_then(|r| r.get(&channel_id).cloned());
            match waiting {
                Some(tx) => {
                    tracing::info!(%channel_id, front_end = %front_end.name, boot = front_end.boot, "resuming a backup stream");
                    // A second order before the first was taken changes nothing.
                    let _ = tx.try_send(front_end);
                    CommandReply::Ok
                }
                None => CommandReply::Error(Failure::not_found(format!(
                    "primary node {} sends no backup stream of channel {channel_id}",
                    node.name
                ))),
            }
        }
        Command::AbortChannel { channel_id, reason } => {
            tracing::warn!(%channel_id, %reason, "channel aborted by the station");
            // A stream waiting to be resumed stops waiting.
            if let Ok(mut r) = node.resumes.lock() {
                r.remove(&channel_id);
            }
            // A snapshot the channel took goes (a running stream then fails
            // on its next read, as its channel already did); a copy it
            // announced is no longer expected.
            node.expected.forget(channel_id);
            let names: Vec<String> = node.volumes.keys().cloned().collect();
            end_backup(&node.host, channel_id, &names);
            // A restore stream stops; a restore whose stream already ended
            // will never be finished: its partial file goes.
            if let Some((t, job)) = node.restores.lock().ok().and_then(|mut r| r.remove(&channel_id)) {
                t.cancel();
                node.restore_dir.discard(job);
            }
            CommandReply::Ok
        }
        other => CommandReply::Error(Failure::invalid(format!("a primary node does not do {other:?}"))),
    }
}

/// Longest write hold a station may ask for.
const MAX_HOLD_MS: u32 = 60_000;

/// Send a backup's track set; when the front-end is lost, wait for the
/// station to resume the stream with its next start, and go on from what
/// it kept. `Err(None)`: the channel was aborted (the station already
/// knows why); `Err(Some(reason))`: the backup failed.
async fn stream_with_resumes(
    node: &Node,
    mut order: SendOrder,
    mut resumes: tokio::sync::mpsc::Receiver<PeerAddr>,
    read: Arc<ReadTrack>,
    release: &(dyn Fn(&[proto::abs::TrackAddr]) + Sync),
) -> Result<u64, Option<String>> {
    let mut released = Released::default();
    let mut resume = false;
    loop {
        // The station may know before this stream that the front-end
        // restarted (a stream waiting for acknowledgements sends nothing,
        // so nothing tells it): its order ends the stream at once.
        let mut ordered = None;
        let sent = tokio::select! {
            sent = send_track_set(
                &node.dialer,
                &node.tracks,
                &order,
                resume,
                &mut released,
                TrackSource {
                    read: read.clone(),
                    release,
                    progress: &|_, _| {},
                },
            ) => sent,
            Some(front_end) = resumes.recv() => {
                ordered = Some(front_end);
                Err(Stopped::Lost(anyhow::anyhow!("the station reports that the front-end restarted")))
            }
        };
        let cause = match sent {
            Ok(tracks) => return Ok(tracks),
            Err(Stopped::Failed(e)) => return Err(Some(format!("{e:#}"))),
            Err(Stopped::Lost(e)) => e,
        };
        if let Some(front_end) = ordered {
            tracing::info!(
                channel_id = %order.channel_id,
                on_tape = released.0,
                "front-end restarted; resuming the stream"
            );
            order.front_end = front_end;
            resume = true;
            continue;
        }
        tracing::warn!(
            channel_id = %order.channel_id,
            front_end = %order.front_end.name,
            on_tape = released.0,
            error = %format!("{cause:#}"),
            "lost the front-end; the stream waits for the station to resume it"
        );
        match tokio::time::timeout(RESUME_WAIT, resumes.recv()).await {
            Ok(Some(front_end)) => {
                order.front_end = front_end;
                resume = true;
            }
            Ok(None) => return Err(None),
            Err(_) => {
                return Err(Some(format!(
                    "lost front-end {} ({cause:#}) and the station did not resume the stream within {RESUME_WAIT:?}",
                    order.front_end.name
                )))
            }
        }
    }
}

fn finish_restore(node: &Node, job: JobId, commit: bool) -> CommandReply {
    if !commit {
        node.restore_dir.discard(job);
        return CommandReply::Ok;
    }
    match node.restore_dir.commit(job) {
        Ok(path) => {
            tracing::info!(%job, file = %path.display(), "restore file complete");
            CommandReply::Ok
        }
        Err(e) => CommandReply::Error(failure_of(&e, format!("primary node {}: {e:#}", node.name))),
    }
}

fn map_volume_names(map: &proto::abs::AbsMap) -> Vec<String> {
    map.volumes.iter().map(|v| v.name.clone()).collect()
}

/// Take a backup's snapshot on every volume of the map: all its tracks,
/// or (with `since`) those changed since the base's epochs.
fn take_snapshot(node: &Node, channel_id: ChannelId, map: &proto::abs::AbsMap, since: &[VolumeEpoch]) -> CommandReply {
    if let Err(e) = map.validate() {
        return CommandReply::Error(Failure::invalid(format!("invalid ABS map: {e}")));
    }
    if let Err(e) = resolve_volumes(map, &node.volumes) {
        return CommandReply::Error(failure_of(&e, format!("{e:#}")));
    }
    let names = map_volume_names(map);
    let track_set = map.track_set();
    let mut epochs = Vec::with_capacity(names.len());
    let mut runs = Vec::new();
    let mut notes = Vec::new();
    // validate() allows at most 65536 volumes: every index is a u16.
    for ((i, name), volume) in names.iter().enumerate().zip(0..=u16::MAX) {
        let tracks = track_set
            .runs()
            .iter()
            .filter(|r| r.volume == volume)
            .flat_map(|r| r.first..r.first.saturating_add(r.count));
        let base = if since.is_empty() {
            None
        } else {
            match since.iter().find(|e| &e.volume == name) {
                Some(e) => Some((e.map_id.get(), e.epoch)),
                None => {
                    notes.push(format!(
                        "volume {name}: the base has no epoch for it; every track counts as changed"
                    ));
                    None
                }
            }
        };
        let res = node
            .host
            .volume(name)
            .and_then(|h| h.begin_snapshot(channel_id.get(), tracks, base));
        match res {
            Ok(s) => {
                tracing::info!(
                    %channel_id,
                    volume = %name,
                    epoch = s.epoch,
                    tracks = s.tracks.len(),
                    differential = !since.is_empty(),
                    "backup captures epoch"
                );
                notes.extend(s.all_because);
                runs.extend(s.tracks.iter().map(|&t| TrackRun {
                    volume,
                    first: t,
                    count: 1,
                }));
                epochs.push(VolumeEpoch {
                    volume: name.clone(),
                    map_id: MapId::new(s.map_id),
                    epoch: s.epoch,
                });
            }
            Err(e) => {
                end_backup(&node.host, channel_id, &names[..i]);
                return CommandReply::Error(failure_of(&e, format!("snapshot of volume {name}: {e:#}")));
            }
        }
    }
    CommandReply::Snapshot {
        epochs,
        tracks: TrackSet::from_runs(runs),
        notes,
    }
}

/// Drop a backup's snapshots (it ended, or never started).
fn end_backup(host: &crate::host::HostIo, backup: ChannelId, volumes: &[String]) {
    for name in volumes {
        if let Ok(h) = host.volume(name) {
            h.end_backup(backup.get());
        }
    }
}

/// The failure to answer for `e`: `message`, with the code of the cause
/// that knew its kind (see [`Failure::from_chain`]).
fn failure_of(e: &anyhow::Error, message: String) -> Failure {
    Failure::from_chain(e.chain(), message, FailureCode::Internal)
}
