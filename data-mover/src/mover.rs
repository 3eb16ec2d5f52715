//! The data mover process: front-end and/or back-end role, its link to the
//! control station, and the QUIC endpoint peers dial.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use proto::wire::{Command, CommandReply, MoverRole, StationRequest, MAX_DATA_FRAME};
use transport::link::StationLink;
use transport::{BufPool, Dialer, Identity, Role};

use crate::backend::commands;
use crate::backend::context::BackEnd;
use crate::backend::drive::{Drive, DriveSpec};
use crate::backend::schedule::Policy;
use crate::backend::writer::DriveWriter;
use crate::frontend::channels::Channels;
use crate::frontend::context::{FrontEnd, Sealing};
use crate::frontend::merge::{self, MergeStep};
use crate::frontend::pairing::Pairings;
use crate::frontend::resume;
use crate::frontend::store::FileSpool;
use crate::limits::CHUNK;
use crate::spool::SpoolDir;

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
    /// (required for image drives; None with SCSI drives, and library
    /// commands are refused).
    pub library: Option<PathBuf>,
}

pub struct Mover {
    pub cfg: MoverConfig,
    pub endpoint: quinn::Endpoint,
    pub link: StationLink,
    /// What the front-end role's handlers use.
    pub fe: Arc<FrontEnd>,
    /// Every channel the front-end holds state for.
    pub channels: Arc<Channels>,
    /// What the back-end role's handlers use.
    pub be: Arc<BackEnd>,
    /// This start of the process (see `PeerAddr::boot`).
    pub boot: u64,
}

impl Mover {
    fn is_front_end(&self) -> bool {
        matches!(self.cfg.role, MoverRole::FrontEnd | MoverRole::Both)
    }

    fn is_back_end(&self) -> bool {
        matches!(self.cfg.role, MoverRole::BackEnd | MoverRole::Both)
    }

    async fn registration(&self) -> StationRequest {
        StationRequest::RegisterMover {
            version: env!("CARGO_PKG_VERSION").to_string(),
            boot: self.boot,
            channels: self.channels.ids().await,
            name: self.cfg.name.clone(),
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
    tokio::spawn(crate::spool::publish_spool_bytes(spool.clone()));
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
    let chunks = BufPool::new(CHUNK, 8);
    let fe = Arc::new(FrontEnd {
        name: cfg.name.clone(),
        link: link.clone(),
        pairings: Pairings::new(spool.clone(), cfg.shared_spool),
        spool: spool.clone(),
        slots: fe_slots,
        chunks: chunks.clone(),
        sealing: Sealing {
            segment_size: cfg.segment_size,
            spool_segments: cfg.spool_segments,
        },
        back_ends: Dialer::new(endpoint.clone()),
    });
    let be = Arc::new(BackEnd {
        name: cfg.name.clone(),
        link: link.clone(),
        slots: spool.back_end_slots().context("the back-end's spool slots")?,
        spool,
        chunks,
        max_segment: cfg.max_segment,
        drives,
        writers,
    });
    let mover = Arc::new(Mover {
        cfg,
        endpoint: endpoint.clone(),
        link: link.clone(),
        fe,
        channels: Arc::new(Channels::new(recovered)),
        be,
        boot: rand::random(),
    });
    link.request_ok(&mover.registration().await)
        .await
        .context("registering with the control station")?;
    tracing::info!(name = %mover.cfg.name, role = mover.cfg.role.as_str(), address = %mover.cfg.listen, boot = mover.boot, "mover registered");

    let register = Arc::new(tokio::sync::Notify::new());
    link.spawn_heartbeats(mover.cfg.name.clone(), HEARTBEAT, register.clone());

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
            Ok(()) => tracing::info!(name = %mover.cfg.name, boot = mover.boot, "mover registered again"),
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
                mover.cfg.name,
                peer.role.as_str(),
                peer.name
            );
            tracing::warn!(peer = %peer.name, role = peer.role.as_str(), "refused: {reason}");
            metrics::counter!("dmc_mover_peers_refused_total").increment(1);
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
            let reason = format!("back-end {} does not serve {}: {e:#}", mover.cfg.name, peer.name);
            tracing::warn!(peer = %peer.name, "refused: {reason}");
            metrics::counter!("dmc_mover_peers_refused_total").increment(1);
            conn.close(transport::codes::REFUSED, reason.as_bytes());
            return Ok(());
        }
    }
    loop {
        let (send, recv) = match transport::accept_bi(&conn, MAX_DATA_FRAME).await {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        if as_front_end {
            tokio::spawn(crate::frontend::intake::serve(
                mover.fe.clone(),
                mover.channels.clone(),
                peer.name.clone(),
                send,
                recv,
            ));
        } else {
            tokio::spawn(crate::backend::serve::serve(mover.be.clone(), send, recv));
        }
    }
}

async fn handle_command(mover: Arc<Mover>, cmd: Command) -> CommandReply {
    match exec(&mover, cmd).await {
        Ok(r) => r,
        Err(e) => CommandReply::Error(transport::failure_in(
            &format!("mover {}", mover.cfg.name),
            &e,
            proto::domain::FailureCode::Internal,
        )),
    }
}

async fn exec(mover: &Arc<Mover>, cmd: Command) -> Result<CommandReply> {
    let (fe, channels, be) = (&mover.fe, &mover.channels, &mover.be);
    match cmd {
        Command::OpenBackup(ch) if mover.is_front_end() => {
            channels.open_backup(fe, ch).await?;
            Ok(CommandReply::Ok)
        }
        Command::ResumeBackup { channel_id, placed } if mover.is_front_end() => {
            channels.resume_backup(fe, channel_id, &placed).await?;
            Ok(CommandReply::Ok)
        }
        Command::OpenRestore(ch) if mover.is_front_end() => {
            channels.open_restore(ch).await;
            Ok(CommandReply::Ok)
        }
        Command::OpenMerge(ch) if mover.is_front_end() => {
            merge::open(fe, &channels.merges, ch).await?;
            Ok(CommandReply::Ok)
        }
        Command::MergeRead { merge_channel_id, read } if mover.is_front_end() => {
            channels.merges.step(merge_channel_id, MergeStep::Read(read)).await?;
            Ok(CommandReply::Ok)
        }
        Command::MergeFromStation { channel_id } if mover.is_front_end() => {
            channels.merges.step(channel_id, MergeStep::FromStation).await?;
            Ok(CommandReply::Ok)
        }
        Command::FinishMerge { channel_id } if mover.is_front_end() => {
            channels.merges.step(channel_id, MergeStep::Finish).await?;
            Ok(CommandReply::Ok)
        }
        Command::MountForWrite { drive, tape_label, new } if mover.is_back_end() => {
            commands::mount_for_write(be, &drive, tape_label, new.as_ref())
        }
        Command::MountForRead { drive, tape_label } if mover.is_back_end() => {
            commands::mount_for_read(be, &drive, tape_label)
        }
        Command::Dismount { drive } if mover.is_back_end() => commands::dismount(be, &drive),
        Command::CopySegment {
            read_drive,
            write_drive,
            abs_id,
            object_name,
            source,
        } if mover.is_back_end() => {
            crate::backend::copy::copy_segment(be, &read_drive, &write_drive, abs_id, object_name, &source).await
        }
        Command::ReadMetadata {
            drive,
            tape_label,
            tape_file,
            abs_id,
        } if mover.is_back_end() => crate::backend::copy::read_metadata(be, &drive, &tape_label, tape_file, abs_id),
        Command::VerifySegment { drive, abs_id, source } if mover.is_back_end() => {
            crate::backend::copy::verify_segment(be, &drive, abs_id, &source)
        }
        Command::WriteMetadata { drive, metadata } if mover.is_back_end() => {
            crate::backend::copy::write_metadata(be, &drive, &metadata).await
        }
        cmd if mover.is_back_end() && crate::backend::library_ops::is_library_command(&cmd) => {
            Ok(tokio::task::block_in_place(|| {
                crate::backend::library_ops::serve(&mover.cfg.name, mover.cfg.library.as_deref(), &cmd)
            }))
        }
        Command::AbortChannel { channel_id, reason } => {
            tracing::warn!(%channel_id, %reason, "channel aborted by the station");
            channels.abort(fe, channel_id).await;
            Ok(CommandReply::Ok)
        }
        other => bail!("a {} mover does not do {other:?}", mover.cfg.role.as_str()),
    }
}
