//! The data mover process: front-end and/or back-end role, its link to the
//! control station, and the QUIC endpoint peers dial.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{ChannelId, Failure, SegmentSeq};
use proto::wire::{
    tokens_equal, BackupChannel, Command, CommandReply, MoverRole, PeerAddr, RestoreChannel, StationRequest,
    TrackStreamOpen, MAX_DATA_FRAME,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use transport::link::StationLink;
use transport::{BufPool, Dialer, Identity, Role};

use crate::backend::drive::{Drive, DriveSpec};
use crate::backend::schedule::Policy;
use crate::backend::writer::DriveWriter;
use crate::frontend::pairing::Pairings;
use crate::frontend::resume::{self, Recovered, ResumePlan};
use crate::frontend::store::{FileSpool, Spool};
use crate::spool::{Slots, SpoolDir};

/// Bytes of the pieces segments are moved in.
pub const CHUNK: usize = 1 << 20;

/// How long a peer has to send a stream's opening request once it opened
/// the stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of one mover process.
pub struct MoverConfig {
    pub name: String,
    /// This mover's certificate directory (its revocation list is
    /// reloaded when it changes).
    pub pki: PathBuf,
    pub role: MoverRole,
    pub listen: SocketAddr,
    pub station: SocketAddr,
    pub station_name: String,
    /// FE: name of the back-end it pairs with.
    pub back_end: Option<String>,
    /// Spool directory: accumulation files (FE), segments received or read
    /// back (BE); shared by a pair on one machine.
    pub spool: PathBuf,
    /// FE: use the spool it shares with its back-end when pairing proves
    /// it does (false: always send segments over QUIC).
    pub shared_spool: bool,
    /// FE: seal a segment when it reaches this many bytes.
    pub segment_size: u64,
    /// FE: sealed segments a channel may hold before accumulation waits.
    pub spool_segments: usize,
    /// BE: drives.
    pub drives: Vec<String>,
    /// BE: largest segment accepted or read.
    pub max_segment: usize,
    /// BE: capacity and speed of every drive.
    pub drive_spec: DriveSpec,
    /// BE (feature `scsi`): the SCSI tape device of each drive, in order
    /// (empty: drives mount SIMH images).
    pub drive_devices: Vec<PathBuf>,
    /// BE (feature `scsi`): the SCSI changer (`/dev/sgN`, through `mtx`).
    pub changer: Option<PathBuf>,
    /// BE: which ready segment a drive writes next.
    pub schedule: Policy,
    /// BE: the tape library directory whose images this back-end owns
    /// (None: drives open the images the station names, and library
    /// commands are refused).
    pub library: Option<PathBuf>,
}

pub struct Mover {
    pub name: String,
    pub cfg: MoverConfig,
    pub endpoint: quinn::Endpoint,
    pub link: StationLink,
    pub spool: SpoolDir,
    /// Free spool files of the front-end and of the back-end role.
    pub fe_slots: Slots,
    pub be_slots: Slots,
    /// Buffers for segments moved in pieces (read from the spool, sent or
    /// received raw): one pool for every channel, so idle memory stays
    /// bounded whatever the number of channels.
    pub chunks: BufPool,
    /// FE: what pairing found with each back-end.
    pub(crate) pairings: Pairings,
    backups: Mutex<HashMap<ChannelId, BackupChannel>>,
    /// Backup channels found in the spool at start, and once the station
    /// resumed one ([`Command::ResumeBackup`]), where its stream continues.
    recovered: Mutex<HashMap<ChannelId, (Recovered, Option<ResumePlan>)>>,
    restores: Mutex<HashMap<ChannelId, RestoreChannel>>,
    /// Running merges (synthetic fulls), by channel.
    pub(crate) merges: Mutex<HashMap<ChannelId, tokio::sync::mpsc::UnboundedSender<crate::frontend::merge::MergeStep>>>,
    drives: HashMap<String, Arc<std::sync::Mutex<Drive>>>,
    writers: HashMap<String, DriveWriter>,
    /// Connections to back-ends.
    dialer: Dialer,
    /// This start of the process (see `PeerAddr::boot`).
    pub boot: u64,
    /// Channels whose streams run here, each with the token that stops it.
    running: std::sync::Mutex<HashMap<ChannelId, CancellationToken>>,
}

/// A channel's stream running in this mover; dropping it forgets the channel.
pub struct RunningChannel {
    mover: Arc<Mover>,
    channel_id: ChannelId,
    pub token: CancellationToken,
}

impl Drop for RunningChannel {
    fn drop(&mut self) {
        if let Ok(mut r) = self.mover.running.lock() {
            r.remove(&self.channel_id);
        }
    }
}

impl Mover {
    /// The front-end's spool, as the segment release protocol uses it.
    pub fn fe_spool(&self) -> Arc<dyn Spool> {
        Arc::new(FileSpool::new(self.spool.clone(), self.fe_slots.clone()))
    }

    pub fn drive(&self, name: &str) -> Result<Arc<std::sync::Mutex<Drive>>> {
        self.drives
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("back-end {} has no drive {name:?}", self.name))
    }

    /// The writer (task) of a drive.
    pub fn writer(&self, name: &str) -> Result<&DriveWriter> {
        self.writers
            .get(name)
            .ok_or_else(|| anyhow!("back-end {} has no drive {name:?}", self.name))
    }

    /// The connection to a back-end (reused; a back-end that restarted
    /// registers again, and is dialled again).
    pub async fn back_end(&self, be: &PeerAddr) -> Result<quinn::Connection> {
        let addr: SocketAddr = be
            .address
            .parse()
            .with_context(|| format!("back-end address {:?}", be.address))?;
        self.dialer
            .connect(&be.name, addr, be.boot, Role::Mover)
            .await
            .with_context(|| format!("dialling back-end {} at {addr}", be.name))
    }

    /// Note that channel `channel_id`'s stream runs here until the guard
    /// is dropped; the station's `AbortChannel` cancels its token.
    pub fn run_channel(self: &Arc<Self>, channel_id: ChannelId) -> RunningChannel {
        let token = CancellationToken::new();
        if let Ok(mut r) = self.running.lock() {
            r.insert(channel_id, token.clone());
        }
        RunningChannel {
            mover: self.clone(),
            channel_id,
            token,
        }
    }

    /// Every channel this mover holds state for: opened, running or merging.
    async fn channels(&self) -> Vec<ChannelId> {
        let mut all: Vec<ChannelId> = self.backups.lock().await.keys().copied().collect();
        all.extend(self.recovered.lock().await.keys().copied());
        all.extend(self.restores.lock().await.keys().copied());
        all.extend(self.merges.lock().await.keys().copied());
        if let Ok(r) = self.running.lock() {
            all.extend(r.keys().copied());
        }
        all.sort_unstable();
        all.dedup();
        all
    }

    fn is_front_end(&self) -> bool {
        matches!(self.cfg.role, MoverRole::FrontEnd | MoverRole::Both)
    }

    fn is_back_end(&self) -> bool {
        matches!(self.cfg.role, MoverRole::BackEnd | MoverRole::Both)
    }

    async fn registration(&self) -> StationRequest {
        StationRequest::RegisterMover {
            boot: self.boot,
            channels: self.channels().await,
            name: self.name.clone(),
            role: self.cfg.role,
            address: self.cfg.listen.to_string(),
            drives: if self.is_back_end() {
                self.cfg.drives.clone()
            } else {
                Vec::new()
            },
            back_end: if self.is_front_end() {
                self.cfg.back_end.clone()
            } else {
                None
            },
        }
    }
}

/// Run the mover until it is killed.
pub async fn run(cfg: MoverConfig, identity: Identity) -> Result<()> {
    if matches!(cfg.role, MoverRole::FrontEnd) && cfg.back_end.is_none() {
        bail!("a front-end needs --back-end NAME");
    }
    std::fs::create_dir_all(&cfg.spool).with_context(|| format!("creating spool {}", cfg.spool.display()))?;
    let spool = SpoolDir::new(&cfg.spool);
    let fe_slots = spool.front_end_slots().context("the front-end's spool slots")?;
    let recovered = if matches!(cfg.role, MoverRole::FrontEnd | MoverRole::Both) {
        spool.discard_front_end_leftovers();
        resume::recover(&FileSpool::new(spool.clone(), fe_slots.clone()))
    } else {
        Vec::new()
    };
    if matches!(cfg.role, MoverRole::BackEnd | MoverRole::Both) {
        spool.discard_back_end_leftovers();
    }
    let endpoint = transport::bind(cfg.listen, &identity).context("binding the QUIC endpoint")?;
    // New handshakes check the revocation list as it changes.
    let _revoked = transport::crl::watch(
        endpoint.clone(),
        cfg.pki.clone(),
        identity.name().to_string(),
        &identity,
    );
    let mut cfg = cfg;
    cfg.listen = endpoint.local_addr().context("local address")?;
    let link = StationLink::connect(
        endpoint.clone(),
        cfg.station,
        &cfg.station_name,
        Duration::from_secs(30),
    )
    .await
    .context("connecting to the control station")?;
    let mounters = crate::backend::device::drive_mounters(
        cfg.drives.len(),
        &cfg.drive_devices,
        cfg.changer.as_deref(),
        cfg.drive_spec.capacity,
        cfg.library.as_deref(),
    )?;
    let drives: HashMap<String, Arc<std::sync::Mutex<Drive>>> = cfg
        .drives
        .iter()
        .zip(mounters)
        .map(|(d, m)| {
            tracing::info!(drive = %d, device = %m.describe(), "drive");
            (
                d.clone(),
                Arc::new(std::sync::Mutex::new(Drive::with_mounter(d, cfg.drive_spec, m))),
            )
        })
        .collect();
    let mut writers = HashMap::new();
    for (name, d) in &drives {
        let w = DriveWriter::spawn(
            name,
            d.clone(),
            cfg.schedule,
            link.clone(),
            tokio::runtime::Handle::current(),
        )?;
        writers.insert(name.clone(), w);
    }
    // Busy and idle time of idle drives too.
    let published: Vec<_> = drives.values().cloned().collect();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for d in &published {
                if let Ok(d) = d.try_lock() {
                    d.publish_time();
                }
            }
        }
    });
    let mover = Arc::new(Mover {
        name: cfg.name.clone(),
        cfg,
        endpoint: endpoint.clone(),
        link: link.clone(),
        fe_slots,
        be_slots: spool.back_end_slots().context("the back-end's spool slots")?,
        spool,
        chunks: BufPool::new(CHUNK, 8),
        pairings: Pairings::default(),
        backups: Mutex::new(HashMap::new()),
        recovered: Mutex::new(recovered.into_iter().map(|r| (r.ch.channel_id, (r, None))).collect()),
        restores: Mutex::new(HashMap::new()),
        merges: Mutex::new(HashMap::new()),
        drives,
        writers,
        dialer: Dialer::new(endpoint.clone()),
        boot: rand::random(),
        running: std::sync::Mutex::new(HashMap::new()),
    });
    link.request_ok(&mover.registration().await)
        .await
        .context("registering with the control station")?;
    tracing::info!(name = %mover.name, role = mover.cfg.role.as_str(), address = %mover.cfg.listen, boot = mover.boot, "mover registered");

    let register = Arc::new(tokio::sync::Notify::new());
    link.spawn_heartbeats(mover.name.clone(), HEARTBEAT, register.clone());

    let acceptor = mover.clone();
    tokio::spawn(async move {
        while let Some(incoming) = acceptor.endpoint.accept().await {
            let m = acceptor.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_connection(m, incoming).await {
                    tracing::warn!(error = %format!("{e:#}"), "peer connection ended with an error");
                }
            });
        }
    });

    loop {
        let m = mover.clone();
        tokio::select! {
            res = link.serve_commands(move |cmd| handle_command(m.clone(), cmd)) => {
                tracing::warn!(result = ?res, "station connection lost; reconnecting");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ = register.notified() => {}
        }
        match link.request_ok(&mover.registration().await).await {
            Ok(()) => tracing::info!(name = %mover.name, boot = mover.boot, "mover registered again"),
            Err(e) => tracing::warn!(error = %e, "registering again failed"),
        }
    }
}

/// How often a mover tells the station it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A connection from a primary node (track streams, to the front-end) or
/// from a front-end mover (segment streams, to the back-end).
async fn serve_connection(mover: Arc<Mover>, incoming: quinn::Incoming) -> Result<()> {
    let (conn, peer) = transport::accept(incoming).await?;
    let as_front_end = match peer.role {
        Role::PrimaryNode if mover.is_front_end() => true,
        Role::Mover if mover.is_back_end() => false,
        _ => {
            let reason = format!(
                "mover {} does not serve role {} ({})",
                mover.name,
                peer.role.as_str(),
                peer.name
            );
            tracing::warn!(peer = %peer.name, role = peer.role.as_str(), "refused: {reason}");
            conn.close(transport::codes::REFUSED, reason.as_bytes());
            return Ok(());
        }
    };
    if !as_front_end {
        // A back-end serves segments only to its own front-ends.
        let check = StationRequest::CheckPair {
            front_end: peer.name.clone(),
        };
        if let Err(e) = mover.link.request_ok(&check).await {
            let reason = format!("back-end {} does not serve {}: {e:#}", mover.name, peer.name);
            tracing::warn!(peer = %peer.name, "refused: {reason}");
            conn.close(transport::codes::REFUSED, reason.as_bytes());
            return Ok(());
        }
    }
    loop {
        let (send, mut recv) = match transport::accept_bi(&conn, MAX_DATA_FRAME).await {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        let m = mover.clone();
        if as_front_end {
            let node = peer.name.clone();
            tokio::spawn(async move {
                // The opening frame arrives within REQUEST_TIMEOUT or the
                // stream is dropped.
                let opening = match tokio::time::timeout(REQUEST_TIMEOUT, recv.recv::<TrackStreamOpen>()).await {
                    Ok(o) => o,
                    Err(_) => {
                        tracing::warn!(peer = %node, "stream opening not received in time; dropped");
                        let _ = recv.stop(transport::codes::REFUSED);
                        return;
                    }
                };
                match opening {
                    Ok(Some(TrackStreamOpen::Backup {
                        channel_id,
                        abs_id,
                        window,
                        token,
                        resume,
                    })) => {
                        // Taken only by its assigned node with its token: a
                        // wrong guess leaves the channel to its owner.
                        let opens = |ch: &BackupChannel| {
                            ch.abs_id == abs_id && ch.primary == node && tokens_equal(&ch.token, &token)
                        };
                        let found = if resume {
                            let mut rec = m.recovered.lock().await;
                            let ok = rec
                                .get(&channel_id)
                                .is_some_and(|(r, plan)| plan.is_some() && opens(&r.ch));
                            if ok {
                                rec.remove(&channel_id).map(|(r, plan)| (r.ch, plan))
                            } else {
                                None
                            }
                        } else {
                            let mut open = m.backups.lock().await;
                            if open.get(&channel_id).is_some_and(opens) {
                                open.remove(&channel_id).map(|ch| (ch, None))
                            } else {
                                None
                            }
                        };
                        match found {
                            Some((ch, plan)) => crate::frontend::backup::serve(m, ch, window, plan, send, recv).await,
                            None => {
                                let what = if resume { "resumed" } else { "open" };
                                refuse(
                                    send,
                                    format!(
                                    "front-end {} has no {what} backup channel {channel_id} for {node} with that token",
                                    m.name
                                ),
                                )
                                .await
                            }
                        }
                    }
                    Ok(Some(TrackStreamOpen::Restore { channel_id, token })) => {
                        let ch = {
                            let mut open = m.restores.lock().await;
                            let ok = open
                                .get(&channel_id)
                                .is_some_and(|ch| ch.primary == node && tokens_equal(&ch.token, &token));
                            if ok {
                                open.remove(&channel_id)
                            } else {
                                None
                            }
                        };
                        match ch {
                            Some(ch) => crate::frontend::restore::serve(m, ch, send).await,
                            None => {
                                refuse(
                                    send,
                                    format!(
                                    "front-end {} has no open restore channel {channel_id} for {node} with that token",
                                    m.name
                                ),
                                )
                                .await
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "bad track stream opening"),
                }
            });
        } else {
            tokio::spawn(crate::backend::serve::serve(m, send, recv));
        }
    }
}

/// The station resumes a backup channel this front-end kept in its spool
/// when it restarted: plan where its stream continues (each sealed file
/// not on tape is verified), or drop it with the reason.
async fn resume_backup(mover: &Arc<Mover>, channel_id: ChannelId, placed: &[SegmentSeq]) -> Result<()> {
    let mut rec = mover.recovered.lock().await;
    let (r, plan) = rec.get_mut(&channel_id).ok_or_else(|| {
        anyhow!(
            "front-end {} kept no backup channel {channel_id} in its spool",
            mover.name
        )
    })?;
    let abs_id = r.ch.abs_id;
    let spool = &mover.spool;
    let fe_spool = mover.fe_spool();
    let planned = tokio::task::block_in_place(|| {
        resume::plan(&r.journal, placed, |e| {
            resume::verify_sealed(fe_spool.as_ref(), abs_id, e)
        })
    });
    match planned {
        Ok(p) => {
            tracing::info!(
                %channel_id,
                abs = %abs_id,
                frames = p.frames,
                on_tape = p.placed.len(),
                to_write = p.requeue.len(),
                dropped = p.dropped.len(),
                "resuming a backup channel from the spool"
            );
            *plan = Some(p);
            Ok(())
        }
        Err(e) => {
            rec.remove(&channel_id);
            let _ = std::fs::remove_dir_all(spool.abs_dir(abs_id));
            Err(e)
        }
    }
}

async fn refuse(mut send: transport::FramedSend, reason: String) {
    tracing::warn!(%reason, "refusing a stream");
    let _ = send
        .send(&proto::wire::TrackAck::Failed(Failure::refused(reason)))
        .await;
    let _ = send.finish().await;
}

async fn handle_command(mover: Arc<Mover>, cmd: Command) -> CommandReply {
    match exec(&mover, cmd).await {
        Ok(r) => r,
        Err(e) => CommandReply::Error(transport::failure_in(
            &format!("mover {}", mover.name),
            &e,
            proto::domain::FailureCode::Internal,
        )),
    }
}

async fn exec(mover: &Arc<Mover>, cmd: Command) -> Result<CommandReply> {
    match cmd {
        Command::OpenBackup(ch) if mover.is_front_end() => {
            ch.map.validate().context("invalid ABS map")?;
            // Kept in the spool, so that a restart can resume the channel.
            tokio::task::block_in_place(|| resume::save_channel(mover.fe_spool().as_ref(), &ch))
                .context("keeping the channel in the spool")?;
            tracing::info!(channel = %ch.channel_id, abs = %ch.abs_id, object = %ch.object_name, "backup channel opened");
            mover.backups.lock().await.insert(ch.channel_id, ch);
            Ok(CommandReply::Ok)
        }
        Command::ResumeBackup { channel_id, placed } if mover.is_front_end() => {
            resume_backup(mover, channel_id, &placed).await?;
            Ok(CommandReply::Ok)
        }
        Command::OpenRestore(ch) if mover.is_front_end() => {
            tracing::info!(
                channel = %ch.channel_id,
                abs = %ch.abs_id,
                files = ch.files.len(),
                "restore channel opened"
            );
            mover.restores.lock().await.insert(ch.channel_id, ch);
            Ok(CommandReply::Ok)
        }
        Command::OpenMerge(ch) if mover.is_front_end() => {
            crate::frontend::merge::open(mover, ch).await?;
            Ok(CommandReply::Ok)
        }
        Command::MergeRead { merge_channel_id, read } if mover.is_front_end() => {
            crate::frontend::merge::step(mover, merge_channel_id, crate::frontend::merge::MergeStep::Read(read))
                .await?;
            Ok(CommandReply::Ok)
        }
        Command::FinishMerge { channel_id } if mover.is_front_end() => {
            crate::frontend::merge::step(mover, channel_id, crate::frontend::merge::MergeStep::Finish).await?;
            Ok(CommandReply::Ok)
        }
        Command::MountForWrite {
            drive,
            tape_label,
            path,
            new,
        } if mover.is_back_end() => {
            let d = mover.drive(&drive)?;
            let (files, bytes) = tokio::task::block_in_place(|| {
                let mut d = d.lock().map_err(|_| anyhow!("drive lock poisoned"))?;
                d.mount_for_write(&tape_label, std::path::Path::new(&path), new.as_ref())
            })?;
            tracing::info!(%drive, %tape_label, files, "tape mounted for writing");
            if let Ok(w) = mover.writer(&drive) {
                w.tape_mounted(&tape_label);
            }
            Ok(CommandReply::Mounted {
                tape_label,
                files,
                bytes,
            })
        }
        Command::MountForRead {
            drive,
            tape_label,
            path,
        } if mover.is_back_end() => {
            let d = mover.drive(&drive)?;
            tokio::task::block_in_place(|| {
                let mut d = d.lock().map_err(|_| anyhow!("drive lock poisoned"))?;
                d.mount_for_read(&tape_label, std::path::Path::new(&path))
            })?;
            tracing::info!(%drive, %tape_label, "tape mounted for reading");
            Ok(CommandReply::Mounted {
                tape_label,
                files: 0,
                bytes: 0,
            })
        }
        Command::Dismount { drive } if mover.is_back_end() => {
            let d = mover.drive(&drive)?;
            let (tape_label, files, bytes, records_read) = tokio::task::block_in_place(|| {
                let mut d = d.lock().map_err(|_| anyhow!("drive lock poisoned"))?;
                let records_read = d.records_read();
                let (label, files, bytes) = d.dismount()?;
                Ok::<_, anyhow::Error>((label, files, bytes, records_read))
            })?;
            tracing::info!(%drive, %tape_label, files, bytes, records_read, "tape dismounted");
            Ok(CommandReply::Dismounted {
                tape_label,
                files,
                bytes,
                full: false,
                records_read,
            })
        }
        cmd if mover.is_back_end() && crate::backend::library_ops::is_library_command(&cmd) => {
            Ok(tokio::task::block_in_place(|| {
                crate::backend::library_ops::serve(&mover.name, mover.cfg.library.as_deref(), &cmd)
            }))
        }
        Command::AbortChannel { channel_id, reason } => {
            tracing::warn!(%channel_id, %reason, "channel aborted by the station");
            // A backup whose stream never started: its spool goes.
            let unstarted = mover.backups.lock().await.remove(&channel_id).map(|ch| ch.abs_id);
            let kept = mover
                .recovered
                .lock()
                .await
                .remove(&channel_id)
                .map(|(r, _)| r.ch.abs_id);
            for abs_id in unstarted.into_iter().chain(kept) {
                let _ = std::fs::remove_dir_all(mover.spool.abs_dir(abs_id));
            }
            mover.restores.lock().await.remove(&channel_id);
            // A running stream stops and fails with the station's reason.
            if let Some(t) = mover.running.lock().ok().and_then(|r| r.get(&channel_id).cloned()) {
                t.cancel();
            }
            // A merge stops: dropping its queue ends its task, which fails it.
            mover.merges.lock().await.remove(&channel_id);
            Ok(CommandReply::Ok)
        }
        other => bail!("a {} mover does not do {other:?}", mover.cfg.role.as_str()),
    }
}
