//! Registration of primary nodes and movers; pairing front-ends with
//! back-ends; choosing a pair and a drive for a channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use proto::abs::VolumeRef;
use proto::domain::{Failure, MoverId, MoverRole, NodeId};

use super::Station;
use crate::catalog::{DriveRow, PairRow, TapeRow};

#[derive(Debug, Clone)]
pub(crate) struct PrimaryEntry {
    pub id: NodeId,
    pub volumes: Vec<VolumeRef>,
    /// Its target volumes as it reported them (the version records their
    /// management regions hold).
    pub targets: Vec<proto::wire::TargetVolume>,
}

#[derive(Debug, Clone)]
pub(crate) struct MoverEntry {
    pub id: MoverId,
    pub back_end: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub primaries: HashMap<String, PrimaryEntry>,
    pub movers: HashMap<String, MoverEntry>,
}

pub(crate) async fn register_primary(
    st: &Arc<Station>,
    name: &str,
    volumes: Vec<VolumeRef>,
    targets: &[proto::wire::TargetVolume],
) -> Result<NodeId> {
    for t in targets {
        if !volumes.iter().any(|v| v.name == t.volume) {
            anyhow::bail!(proto::domain::Failure::invalid(format!(
                "target volume {} of node {name} is not among its volumes",
                t.volume
            )));
        }
        if let Some(d) = &t.damaged {
            tracing::warn!(node = name, volume = %t.volume, damaged = %d, "a target volume's management region is damaged");
        }
    }
    let id = st.catalog.register_primary_node(name, &volumes).await?;
    st.catalog.record_targets(id, targets).await?;
    tracing::info!(name, volumes = volumes.len(), "primary node registered");
    st.registry.lock().await.primaries.insert(
        name.to_string(),
        PrimaryEntry {
            id,
            volumes,
            targets: targets.to_vec(),
        },
    );
    // Versions the catalog lost come back from the regions that hold them.
    if !targets.is_empty() {
        if let Err(e) = super::versions::recover(st).await {
            tracing::warn!(node = name, error = %format!("{e:#}"), "could not recover versions from the management regions");
        }
    }
    Ok(id)
}

pub(crate) async fn register_mover(
    st: &Arc<Station>,
    name: &str,
    role: MoverRole,
    address: &str,
    drives: &[String],
    back_end: Option<String>,
) -> Result<MoverId> {
    let id = st.catalog.register_mover(name, role, address).await?;
    for d in drives {
        st.catalog.register_drive(id, d).await?;
    }
    let mut reg = st.registry.lock().await;
    reg.movers.insert(name.to_string(), MoverEntry { id, back_end });
    // Pair every front-end whose back-end is known.
    let pairs: Vec<(MoverId, MoverId)> = reg
        .movers
        .values()
        .filter_map(|m| {
            let be = reg.movers.get(m.back_end.as_ref()?)?;
            Some((m.id, be.id))
        })
        .collect();
    drop(reg);
    for (fe, be) in pairs {
        st.catalog.register_pair(fe, be).await?;
    }
    tracing::info!(
        name,
        %role,
        address,
        drives = drives.len(),
        "mover registered"
    );
    Ok(id)
}

pub(crate) async fn heartbeat(st: &Arc<Station>, name: &str) -> Result<()> {
    let id = st.registry.lock().await.movers.get(name).map(|m| m.id);
    if let Some(id) = id {
        st.catalog.touch_mover(id).await?;
    }
    Ok(())
}

pub(crate) async fn primary(st: &Arc<Station>, name: &str) -> Result<PrimaryEntry> {
    let reg = st.registry.lock().await;
    match reg.primaries.get(name) {
        Some(p) if st.peers.lock().await.contains_key(name) => Ok(p.clone()),
        Some(_) => bail!(Failure::retryable(format!(
            "primary node {name} is registered but not connected"
        ))),
        None => bail!(Failure::not_found(format!(
            "no primary node named {name} has registered"
        ))),
    }
}

/// Most backup channels that share one drive (their segments interleave on its tape).
pub(crate) const MAX_CHANNELS_PER_DRIVE: usize = 8;

/// What a drive is doing, as the station planned it.
#[derive(Debug, Clone)]
pub(crate) enum DriveUse {
    /// One restore channel reads from it.
    Reading,
    /// Backup channels write to its tape, interleaved. `tape` is `None`
    /// while the first channel mounts it; `closing` once the last channel
    /// left and the tape is being finished. `joinable`: the pool whose
    /// backups may join it (None: nobody joins, e.g. a copy's drive).
    Writing {
        tape: Option<Box<TapeRow>>,
        users: usize,
        closing: bool,
        joinable: Option<String>,
    },
}

/// What a channel needs a drive for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose<'a> {
    /// Writing a backup to a tape of this pool.
    Backup {
        pool: &'a str,
    },
    Restore,
}

impl Purpose<'_> {
    /// The job, as a notification names it.
    pub(crate) fn job(&self) -> String {
        match self {
            Purpose::Backup { pool } => format!("a backup to pool {pool}"),
            Purpose::Restore => "a restore".to_string(),
        }
    }
}

/// A pair and a drive handed to a channel.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub pair: PairRow,
    pub drive: DriveRow,
    /// The drive already had a tape mounted for writing: this channel joins
    /// it and its segments interleave with the others'.
    pub joined: bool,
}

fn connected_pairs(pairs: Vec<PairRow>, peers: &std::collections::HashMap<String, super::PeerConn>) -> Vec<PairRow> {
    pairs
        .into_iter()
        .filter(|p| peers.contains_key(&p.fe_name) && peers.contains_key(&p.be_name))
        .collect()
}

/// A pair whose both movers are connected, least loaded first, and a drive
/// of its back-end: a free one if there is one; for a backup, else a drive
/// already writing (fewest channels first, up to
/// [`MAX_CHANNELS_PER_DRIVE`]). Waits up to `patience` while all are busy.
pub(crate) async fn assign(st: &Arc<Station>, patience: Duration, purpose: Purpose<'_>) -> Result<Assignment> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut waiting = Waiting::new(purpose.job(), 1);
    loop {
        waiting.notice_idle_drives(st).await;
        let pairs = st.catalog.list_pairs().await?;
        let connected = connected_pairs(pairs, &*st.peers.lock().await);
        if connected.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                bail!(Failure::retryable("no front-end/back-end pair is connected"));
            }
        } else {
            let loads = st.pair_load.lock().await.clone();
            let mut ordered = connected;
            ordered.sort_by_key(|p| loads.get(&p.id).copied().unwrap_or(0));
            let mut candidates = Vec::new();
            for pair in &ordered {
                for d in st.catalog.drives_of(pair.be_id).await? {
                    candidates.push((pair.clone(), d));
                }
            }
            // Both locks before anything is claimed, and no await after:
            // a wait dropped at any await leaves nothing half-claimed.
            let mut load = st.pair_load.lock().await;
            let mut uses = st.drive_use.lock().await;
            // A free drive first: parallel drives before interleaving.
            let free = candidates
                .iter()
                .find(|(_, d)| !uses.contains_key(&d.id) && d.tape_id.is_none())
                .cloned();
            let chosen = match (free, purpose) {
                (Some((pair, drive)), _) => {
                    let u = match purpose {
                        Purpose::Backup { pool } => DriveUse::Writing {
                            tape: None,
                            users: 1,
                            closing: false,
                            joinable: Some(pool.to_string()),
                        },
                        Purpose::Restore => DriveUse::Reading,
                    };
                    uses.insert(drive.id, u);
                    Some(Assignment {
                        pair,
                        drive,
                        joined: false,
                    })
                }
                (None, Purpose::Backup { pool }) => {
                    let best = candidates
                        .iter()
                        .filter_map(|(p, d)| match uses.get(&d.id) {
                            Some(DriveUse::Writing {
                                users,
                                closing: false,
                                joinable: Some(j),
                                ..
                            }) if *users < MAX_CHANNELS_PER_DRIVE && j == pool => Some((*users, p, d)),
                            _ => None,
                        })
                        .min_by_key(|(users, _, _)| *users)
                        .map(|(_, p, d)| (p.clone(), d.clone()));
                    best.map(|(pair, drive)| {
                        if let Some(DriveUse::Writing { users, .. }) = uses.get_mut(&drive.id) {
                            *users += 1;
                        }
                        Assignment {
                            pair,
                            drive,
                            joined: true,
                        }
                    })
                }
                (None, Purpose::Restore) => None,
            };
            if let Some(a) = chosen {
                *load.entry(a.pair.id).or_default() += 1;
                return Ok(a);
            }
            drop((uses, load));
            if tokio::time::Instant::now() >= deadline {
                bail!(Failure::retryable(format!("every drive stayed busy for {patience:?}")));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A job waiting for `need` drives: counted in the gauge
/// `dmc_station_jobs_waiting` while it lives, and once it has waited
/// `--idle-notice`, the drives left idle meanwhile are notified (once).
struct Waiting {
    job: String,
    need: usize,
    started: tokio::time::Instant,
    noticed: bool,
}

impl Waiting {
    fn new(job: String, need: usize) -> Waiting {
        metrics::gauge!("dmc_station_jobs_waiting").increment(1.0);
        Waiting {
            job,
            need,
            started: tokio::time::Instant::now(),
            noticed: false,
        }
    }

    /// Notifies the idle drives the first time the job has waited long
    /// enough; nothing before or after.
    async fn notice_idle_drives(&mut self, st: &Arc<Station>) {
        let waited = self.started.elapsed();
        if !self.noticed && waited >= st.cfg.idle_notice {
            self.noticed = true;
            notice_idle_drives(st, &self.job, self.need, waited).await;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!("dmc_station_jobs_waiting").decrement(1.0);
    }
}

/// `job` has waited `waited` for `need` drives: raise a notification for
/// each drive nobody uses, saying why it cannot take the job (one per drive
/// while open).
async fn notice_idle_drives(st: &Arc<Station>, job: &str, need: usize, waited: Duration) {
    let (drives, pairs) = match (st.catalog.list_drives().await, st.catalog.list_pairs().await) {
        (Ok(d), Ok(p)) => (d, p),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "idle drives not checked");
            return;
        }
    };
    let connected = connected_pairs(pairs, &*st.peers.lock().await);
    let uses = st.drive_use.lock().await.clone();
    let wanted = if need > 1 {
        format!("{need} drives on one back-end")
    } else {
        "a drive".to_string()
    };
    for d in drives.iter().filter(|d| !uses.contains_key(&d.id)) {
        let why = match (&d.tape_label, connected.iter().any(|p| p.be_id == d.be_mover_id)) {
            (Some(t), _) => format!("it holds tape {t}, which no job is using (unload it)"),
            (None, false) => "no connected front-end/back-end pair serves it".to_string(),
            (None, true) if need > 1 => format!("the job needs {need} free drives of one back-end at once"),
            (None, true) => "the station could not hand it to the job".to_string(),
        };
        super::notify::raise(
            st,
            proto::domain::NotificationKind::DriveIdle,
            &format!("drive_idle:{}", d.name),
            &format!("drive {}", d.name),
            &format!(
                "{job} has waited {}s for {wanted} while drive {} is idle: {why}",
                waited.as_secs(),
                d.name
            ),
            None,
        )
        .await;
    }
}

/// Several free drives of one back-end for a backup that splits its ABS
/// across them. Waits up to `patience` until some back-end has `n` free
/// drives; fails at once when no back-end has that many drives at all.
///
/// `job` says what waits (in idle-drive notifications); `joinable`: the
/// pool whose backups may join these drives (None: they are the job's
/// alone).
pub(crate) async fn assign_drives(
    st: &Arc<Station>,
    patience: Duration,
    n: usize,
    job: &str,
    joinable: Option<&str>,
) -> Result<(PairRow, Vec<DriveRow>)> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut waiting = Waiting::new(job.to_string(), n);
    loop {
        waiting.notice_idle_drives(st).await;
        let pairs = st.catalog.list_pairs().await?;
        let mut ordered = connected_pairs(pairs, &*st.peers.lock().await);
        let load = st.pair_load.lock().await.clone();
        ordered.sort_by_key(|p| load.get(&p.id).copied().unwrap_or(0));
        let mut most = 0;
        let mut chosen = None;
        let mut by_pair = Vec::with_capacity(ordered.len());
        for pair in &ordered {
            by_pair.push(st.catalog.drives_of(pair.be_id).await?);
        }
        {
            // No await once a drive is claimed (see `assign`).
            let mut load = st.pair_load.lock().await;
            let mut uses = st.drive_use.lock().await;
            for (pair, drives) in ordered.iter().zip(by_pair) {
                most = most.max(drives.len());
                let free: Vec<DriveRow> = drives
                    .into_iter()
                    .filter(|d| !uses.contains_key(&d.id) && d.tape_id.is_none())
                    .take(n)
                    .collect();
                if free.len() == n {
                    for d in &free {
                        uses.insert(
                            d.id,
                            DriveUse::Writing {
                                tape: None,
                                users: 1,
                                closing: false,
                                joinable: joinable.map(str::to_string),
                            },
                        );
                    }
                    *load.entry(pair.id).or_default() += free.len();
                    chosen = Some((pair.clone(), free));
                    break;
                }
            }
        }
        if let Some((pair, drives)) = chosen {
            return Ok((pair, drives));
        }
        if !ordered.is_empty() && most < n {
            bail!(Failure::refused(format!(
                "{n} drives requested on one back-end; no connected back-end has more than {most}"
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(Failure::retryable(format!(
                "no back-end had {n} free drives within {patience:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Free drives (no channel, no tape) of connected pairs.
pub(crate) async fn free_drives(st: &Arc<Station>) -> Result<usize> {
    let pairs = st.catalog.list_pairs().await?;
    let connected = connected_pairs(pairs, &*st.peers.lock().await);
    let mut seen = std::collections::HashSet::new();
    let uses = st.drive_use.lock().await.clone();
    for pair in &connected {
        for d in st.catalog.drives_of(pair.be_id).await? {
            if !uses.contains_key(&d.id) && d.tape_id.is_none() {
                seen.insert(d.id);
            }
        }
    }
    Ok(seen.len())
}

/// The tape a writing drive holds now (it changes at end of tape).
pub(crate) async fn current_tape(st: &Arc<Station>, drive: &DriveRow) -> Option<TapeRow> {
    match st.drive_use.lock().await.get(&drive.id) {
        Some(DriveUse::Writing { tape, .. }) => tape.as_deref().cloned(),
        _ => None,
    }
}

/// The first writer mounted the tape: joiners may use it.
pub(crate) async fn tape_mounted(st: &Arc<Station>, drive: &DriveRow, tape: &TapeRow) {
    if let Some(DriveUse::Writing { tape: t, .. }) = st.drive_use.lock().await.get_mut(&drive.id) {
        *t = Some(Box::new(tape.clone()));
    }
}

/// The first writer could not mount a tape: channels waiting to join fail.
pub(crate) async fn mount_failed(st: &Arc<Station>, drive: &DriveRow) {
    if let Some(DriveUse::Writing { closing, .. }) = st.drive_use.lock().await.get_mut(&drive.id) {
        *closing = true;
    }
}

/// One of the drives [`assign_drives`] handed out reads instead (a merge).
pub(crate) async fn use_for_reading(st: &Arc<Station>, drive: &DriveRow) {
    st.drive_use.lock().await.insert(drive.id, DriveUse::Reading);
}

/// A joiner waits for the tape the first writer mounts.
pub(crate) async fn wait_for_tape(st: &Arc<Station>, drive: &DriveRow, patience: Duration) -> Result<TapeRow> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match st.drive_use.lock().await.get(&drive.id) {
            Some(DriveUse::Writing {
                tape: Some(t),
                closing: false,
                ..
            }) => return Ok((**t).clone()),
            Some(DriveUse::Writing {
                tape: None,
                closing: false,
                ..
            }) => {}
            _ => bail!(Failure::retryable(format!(
                "the tape of drive {} could not be mounted",
                drive.name
            ))),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(Failure::retryable(format!(
                "drive {} got no tape within {patience:?}",
                drive.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A backup channel leaves its drive. Returns true when it was the last
/// writer: the caller then finishes and dismounts the tape and calls
/// [`release`].
pub(crate) async fn leave_writing(st: &Arc<Station>, pair: &PairRow, drive: &DriveRow) -> bool {
    if let Some(n) = st.pair_load.lock().await.get_mut(&pair.id) {
        *n = n.saturating_sub(1);
    }
    let mut uses = st.drive_use.lock().await;
    match uses.get_mut(&drive.id) {
        Some(DriveUse::Writing { users, closing, .. }) => {
            *users = users.saturating_sub(1);
            if *users == 0 {
                *closing = true;
                return true;
            }
            false
        }
        _ => true,
    }
}

/// The drive is free again (after a restore, or after the last writer
/// dismounted its tape).
pub(crate) async fn release(st: &Arc<Station>, pair: Option<&PairRow>, drive: &DriveRow) {
    st.drive_use.lock().await.remove(&drive.id);
    if let Some(pair) = pair {
        if let Some(n) = st.pair_load.lock().await.get_mut(&pair.id) {
            *n = n.saturating_sub(1);
        }
    }
}
