//! Host I/O: every read and write a host makes to a volume passes through
//! here (the NBD export is its front door), and so does every read a backup
//! makes. Two duties:
//!
//! - **Change tracking.** A write stamps the tracks it touches in the
//!   volume's change map (durably, when a stamp changes) before it lands.
//! - **Concurrent copy** (seed FIG. 19/20). A backup starts with a
//!   *snapshot*: every track of its track set is protected. A host write to
//!   a protected track first copies the track's current contents into the
//!   backup's side file, then lands; the backup reads that copy instead of
//!   the volume. A track stays protected (or its copy stays) until the
//!   front-end acknowledges it as durable (the request queue entry leaves
//!   then), not merely until the backup read it: a stream resumed after the
//!   front-end was lost reads its tracks again and must send the same bytes.
//!   So the backup is the exact image of the object at its start while
//!   hosts keep writing, and no host write ever waits for more than one
//!   track copy per backup. A released copy's slot in the side file is
//!   reused. The snapshot (and its side file) goes away when the backup
//!   ends, however it ends.
//! - **Differential snapshots** (seed FIG. 23). A snapshot can be limited
//!   to the tracks changed since a base backup's epoch; it protects only
//!   those, and the backup sends only those.
//!
//! One lock per volume covers the copy-on-write check, the change stamp and
//! the write itself, and the start of a backup (snapshot and epoch
//! together), so a write is either wholly before a backup's start (in its
//! image and its epoch) or wholly after (copied aside, next epoch).
//!
//! The decisions (which track to copy aside for which backup, into which
//! side-file slot, where a backup reads a track from, when a slot is free)
//! are the pure [`ProtectionMap`]'s; this shell does the I/O they call for
//! under the volume's lock.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{anyhow, bail, Context, Result};
use proto::num::{at_most, to_usize};

use crate::change_map::ChangeFile;
use crate::core::protection::{
    BackupId, Broken, Event, ProtectionMap, ReadError, ReadFrom, SideCopy, Track, WriteAction,
};
use crate::core::side_file::SideSpace;
use crate::volume::Volume;

/// A running backup's side file on disk (created with its first copy).
struct SideIo {
    path: PathBuf,
    file: Option<File>,
}

/// Side-file space all snapshots of the node share (`--side-file-limit`):
/// one counter across the volumes' locks.
///
/// Invariant: the bytes taken and not given back never pass the limit.
pub struct SideBudget {
    limit: u64,
    used: std::sync::atomic::AtomicU64,
}

impl SideBudget {
    pub fn new(limit: u64) -> SideBudget {
        SideBudget {
            limit,
            used: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl SideSpace for SideBudget {
    fn limit(&self) -> u64 {
        self.limit
    }

    fn take(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
    }
}

struct VolState {
    changes: ChangeFile,
    protection: ProtectionMap,
    /// Side files of the running backups.
    sides: HashMap<u64, SideIo>,
}

/// A volume with its change map and the snapshots of running backups.
pub struct HostVolume {
    pub volume: Arc<Volume>,
    /// Every host write holds it shared; a hold ([`HostIo::hold_writes`])
    /// holds it exclusively, so no write lands while snapshots are taken.
    gate: std::sync::RwLock<()>,
    state: Mutex<VolState>,
    state_dir: PathBuf,
    budget: Arc<SideBudget>,
}

/// The volumes hosts write to, by name.
pub struct HostIo {
    volumes: HashMap<String, HostVolume>,
    /// Write holds in force, each with the channel that ends it.
    holds: Mutex<HashMap<u64, std::sync::mpsc::Sender<()>>>,
}

impl HostIo {
    /// Open (or create) the change map of each volume in `state_dir`
    /// (`<volume>.changes`); side files of backups that were running when
    /// the node stopped are removed (those backups failed).
    /// `side_limit`: bytes all side files of the node may hold together.
    pub fn open(volumes: &HashMap<String, Arc<Volume>>, state_dir: &Path, side_limit: u64) -> Result<HostIo> {
        let budget = Arc::new(SideBudget::new(side_limit));
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating state directory {}", state_dir.display()))?;
        if let Ok(entries) = std::fs::read_dir(state_dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("side-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let mut out = HashMap::new();
        for (name, v) in volumes {
            let tracks = v.size.div_ceil(u64::from(v.geometry.track_size));
            let path = state_dir.join(format!("{name}.changes"));
            let changes = ChangeFile::open_or_create(&path, tracks)
                .with_context(|| format!("the change map of volume {name} ({})", path.display()))?;
            out.insert(
                name.clone(),
                HostVolume {
                    volume: v.clone(),
                    gate: std::sync::RwLock::new(()),
                    state: Mutex::new(VolState {
                        changes,
                        protection: ProtectionMap::new(u64::from(v.geometry.track_size)),
                        sides: HashMap::new(),
                    }),
                    state_dir: state_dir.to_path_buf(),
                    budget: budget.clone(),
                },
            );
        }
        Ok(HostIo {
            volumes: out,
            holds: Mutex::new(HashMap::new()),
        })
    }

    /// Names, sizes and whether read-only (target volumes: they hold copy
    /// versions), sorted by name.
    pub fn exports(&self) -> Vec<(String, u64, bool)> {
        let mut v: Vec<(String, u64, bool)> = self
            .volumes
            .iter()
            .map(|(n, h)| (n.clone(), h.volume.size, h.volume.is_target()))
            .collect();
        v.sort();
        v
    }

    /// Hold host writes to `names` until [`HostIo::release_writes`] of
    /// `hold`, or `max` passed: returns once every volume is held (writes
    /// in progress finished, new ones wait). A thread holds them: the
    /// volumes' gates, taken in name order.
    pub fn hold_writes(self: &Arc<Self>, hold: u64, names: &[String], max: std::time::Duration) -> Result<()> {
        let mut names: Vec<String> = names.to_vec();
        names.sort();
        names.dedup();
        for n in &names {
            self.volume(n)?;
        }
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        {
            let mut holds = self.holds.lock().map_err(|_| anyhow!("write holds poisoned"))?;
            if holds.contains_key(&hold) {
                bail!("hold {hold} is in force already");
            }
            holds.insert(hold, release_tx);
        }
        let (held_tx, held_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let host = self.clone();
        std::thread::Builder::new()
            .name(format!("hold-{hold}"))
            .spawn(move || {
                let started = std::time::Instant::now();
                let guards: Vec<_> = names
                    .iter()
                    .filter_map(|n| host.volumes.get(n))
                    .map(|v| v.gate.write().unwrap_or_else(std::sync::PoisonError::into_inner))
                    .collect();
                let _ = held_tx.send(());
                tracing::info!(hold, volumes = guards.len(), "host writes held");
                let ended = match release_rx.recv_timeout(max.saturating_sub(started.elapsed())) {
                    Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => "released",
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => "timed out",
                };
                drop(guards);
                if let Ok(mut h) = host.holds.lock() {
                    h.remove(&hold);
                }
                tracing::info!(
                    hold,
                    ended,
                    millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "host writes go on"
                );
            })
            .context("starting the write hold thread")?;
        held_rx
            .recv()
            .map_err(|_| anyhow!("the write hold thread ended before holding the volumes"))
    }

    /// End hold `hold` (already ended: nothing to do).
    pub fn release_writes(&self, hold: u64) {
        if let Some(tx) = self.holds.lock().ok().and_then(|mut h| h.remove(&hold)) {
            let _ = tx.send(());
        }
    }

    pub fn volume(&self, name: &str) -> Result<&HostVolume> {
        self.volumes
            .get(name)
            .ok_or_else(|| anyhow!("this node has no volume {name:?}"))
    }

    /// The backups (channels) holding a snapshot of some volume.
    pub fn backups(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .volumes
            .values()
            .filter_map(|h| {
                h.lock()
                    .ok()
                    .map(|st| st.protection.backups().map(|b| b.0).collect::<Vec<_>>())
            })
            .flatten()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// What a backup's snapshot of one volume captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStart {
    /// The change map's id and the epoch the snapshot captured.
    pub map_id: u64,
    pub epoch: u32,
    /// The tracks the backup sends (ascending): all it asked for, or
    /// those changed since the base.
    pub tracks: Vec<u64>,
    /// Why every track counts as changed although a base was given.
    pub all_because: Option<String>,
}

impl HostVolume {
    fn lock(&self) -> Result<MutexGuard<'_, VolState>> {
        self.state
            .lock()
            .map_err(|_| anyhow!("state of volume {} poisoned", self.volume.name))
    }

    fn track_span(&self, t: u64) -> (u64, usize) {
        let ts = u64::from(self.volume.geometry.track_size);
        let off = t * ts;
        (
            off,
            at_most(
                self.volume.size.saturating_sub(off),
                self.volume.geometry.track_size as usize,
            ),
        )
    }

    /// A full backup starts: protect `tracks` for it and capture the
    /// change map's epoch, as one step with respect to host writes.
    pub fn begin_backup(&self, backup: u64, tracks: impl IntoIterator<Item = u64>) -> Result<u32> {
        Ok(self.begin_snapshot(backup, tracks, None)?.epoch)
    }

    /// A backup starts: of `tracks`, take those changed since the base's
    /// `(map_id, epoch)` (all of them without a base, or when the change
    /// map was recreated since), protect them and capture the epoch, as one
    /// step with respect to host writes.
    pub fn begin_snapshot(
        &self,
        backup: u64,
        tracks: impl IntoIterator<Item = u64>,
        since: Option<(u64, u32)>,
    ) -> Result<SnapshotStart> {
        let mut st = self.lock()?;
        if st.protection.is_running(BackupId(backup)) {
            bail!("backup {backup} already has a snapshot of volume {}", self.volume.name);
        }
        let map = st.changes.map();
        let map_id = map.map_id();
        let mut all_because = None;
        let chosen: BTreeSet<u64> = match since {
            None => tracks.into_iter().collect(),
            Some((id, epoch)) if id == map_id => {
                if epoch >= map.epoch() {
                    bail!(
                        "volume {}: the base's epoch {epoch} is not older than the change map's current epoch {}",
                        self.volume.name,
                        map.epoch()
                    );
                }
                tracks.into_iter().filter(|&t| map.is_changed_since(t, epoch)).collect()
            }
            Some((id, _)) => {
                all_because = Some(format!(
                    "volume {}: the change map was recreated since the base (map {id:016x}, now {map_id:016x}); every track counts as changed",
                    self.volume.name
                ));
                tracks.into_iter().collect()
            }
        };
        let epoch = st.changes.begin_backup()?;
        let side_path = self.state_dir.join(format!("side-{backup}-{}.bin", self.volume.name));
        let list: Vec<u64> = chosen.into_iter().collect();
        st.protection
            .begin(BackupId(backup), list.iter().map(|&t| Track(t)))
            .with_context(|| format!("volume {}", self.volume.name))?;
        st.sides.insert(
            backup,
            SideIo {
                path: side_path,
                file: None,
            },
        );
        Ok(SnapshotStart {
            map_id,
            epoch,
            tracks: list,
            all_because,
        })
    }

    /// The front-end acknowledged these tracks of the backup as durable:
    /// their request-queue entries leave, they are no longer protected,
    /// and their side copies leave (the slots are reused).
    pub fn release(&self, backup: u64, tracks: &[u64]) {
        if let Ok(mut st) = self.lock() {
            let tracks: Vec<Track> = tracks.iter().map(|&t| Track(t)).collect();
            st.protection.release(BackupId(backup), &tracks);
        }
    }

    /// Side copies held for a backup (copied, not yet acknowledged).
    pub fn side_copies(&self, backup: u64) -> usize {
        self.lock()
            .ok()
            .map_or(0, |st| st.protection.side_copies(BackupId(backup)))
    }

    /// The backup ended (done or failed): drop its snapshot and side file.
    pub fn end_backup(&self, backup: u64) {
        if let Ok(mut st) = self.lock() {
            if let Some(side) = st.sides.remove(&backup) {
                if side.file.is_some() {
                    let _ = std::fs::remove_file(&side.path);
                }
            }
            if let Some(ended) = st.protection.end(BackupId(backup), &*self.budget) {
                tracing::info!(
                    backup,
                    volume = %self.volume.name,
                    copied = ended.copies,
                    "snapshot released: {} tracks were copied aside for host writes",
                    ended.copies
                );
                metrics::gauge!("dmc_primary_side_file_bytes").decrement(ended.side_bytes as f64);
            }
        }
    }

    /// The backup reads `len` bytes at `offset` of track `t`: its side
    /// copy if a host wrote the track meanwhile, else the volume. The same
    /// bytes however often it reads the track until it is acknowledged.
    pub fn read_for_backup(&self, backup: u64, t: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        let st = self.lock()?;
        match st.protection.read(BackupId(backup), Track(t)) {
            Err(ReadError::NotRunning) => bail!("backup {backup} has no snapshot of volume {}", self.volume.name),
            Err(ReadError::Broken(cause)) => bail!("{}", self.broken_reason(backup, &cause)),
            Ok(ReadFrom::Side { offset: at, .. }) => {
                let (start, n) = self.track_span(t);
                let skip = to_usize(offset.checked_sub(start).context("read before the track")?);
                if skip.checked_add(len).is_none_or(|end| end > n) {
                    bail!("read of {len} bytes at {offset} outside the side copy of track {t}");
                }
                let side = st.sides.get(&backup).context("side file missing")?;
                let file = side.file.as_ref().context("side file missing")?;
                file.read_exact_at(buf, at + skip as u64)
                    .with_context(|| format!("reading the side copy of track {t} from {}", side.path.display()))?;
            }
            Ok(ReadFrom::Volume) => self.volume.read_into(offset, buf)?,
        }
        Ok(())
    }

    /// Why `backup` fails: its snapshot broke.
    fn broken_reason(&self, backup: u64, cause: &Broken) -> String {
        format!(
            "backup {backup} lost its image of volume {}: {cause}; host writes went on",
            self.volume.name
        )
    }

    /// Read for a host.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.volume.read_at(offset, len)
    }

    /// Write for a host: copy protected tracks aside, stamp the tracks
    /// changed (durably, if new), then write. A target volume is read-only
    /// to hosts: only a version copy writes it ([`HostVolume::write_version`]).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        if self.volume.is_target() {
            bail!(
                "volume {} is a target volume: it holds copy versions and only a version copy writes it",
                self.volume.name
            );
        }
        if data.is_empty() {
            return Ok(());
        }
        // A hold in force makes the write wait (see [`HostIo::hold_writes`]).
        let _open = self.gate.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let track = u64::from(self.volume.geometry.track_size);
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= self.volume.size)
            .ok_or_else(|| {
                anyhow!(
                    "write of {} bytes at {offset} past the end of {}",
                    data.len(),
                    self.volume.name
                )
            })?;
        let (first, last) = (offset / track, (end - 1) / track);
        let mut guard = self.lock()?;
        let st = &mut *guard;
        // Every protected track's contents are safe before the write lands;
        // a copy that cannot be made breaks its backup, never the write.
        for t in first..=last {
            while let WriteAction::CopyFirst(copy) = st.protection.write(Track(t), &*self.budget) {
                match self.copy_aside(&mut st.sides, copy) {
                    Ok(()) => {
                        st.protection.copied(copy);
                        if copy.grows() {
                            metrics::gauge!("dmc_primary_side_file_bytes")
                                .increment(f64::from(self.volume.geometry.track_size));
                        }
                        metrics::counter!("dmc_primary_side_copies_total").increment(1);
                        tracing::debug!(backup = copy.backup.0, track = t, volume = %self.volume.name, "protected track copied aside");
                    }
                    Err(e) => {
                        st.protection.copy_failed(copy, format!("{e:#}"), &*self.budget);
                    }
                }
            }
        }
        while let Some(Event::Broken { backup, cause }) = st.protection.poll_event() {
            let reason = self.broken_reason(backup.0, &cause);
            tracing::warn!(backup = backup.0, volume = %self.volume.name, %reason, "snapshot broken");
            metrics::counter!("dmc_primary_snapshots_broken_total").increment(1);
        }
        st.changes
            .mark(first, last)
            .with_context(|| format!("marking tracks {first}..={last} of {} changed", self.volume.name))?;
        metrics::counter!("dmc_primary_host_bytes_written_total").increment(data.len() as u64);
        self.volume.write_at(offset, data)
    }

    /// Copy a protected track's current contents into its backup's side
    /// file (created with the first copy), where the core said.
    fn copy_aside(&self, sides: &mut HashMap<u64, SideIo>, copy: SideCopy) -> Result<()> {
        let t = copy.track.0;
        let side = sides.get_mut(&copy.backup.0).context("side file of the backup")?;
        let (start, len) = self.track_span(t);
        let old = self.volume.read_at(start, len)?;
        if side.file.is_none() {
            side.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&side.path)
                    .with_context(|| format!("creating side file {}", side.path.display()))?,
            );
        }
        let file = side.file.as_ref().context("side file")?;
        file.write_all_at(&old, copy.offset)
            .with_context(|| format!("copying track {t} to {}", side.path.display()))
    }

    /// A version copy writes a track onto this target volume (hosts
    /// cannot: [`HostVolume::write`]).
    pub fn write_version(&self, offset: u64, data: &[u8]) -> Result<()> {
        if !self.volume.is_target() {
            bail!(
                "volume {} is not a target volume: a version is copied only onto a target volume",
                self.volume.name
            );
        }
        self.volume.write_at(offset, data)
    }

    /// Stamp the tracks covering byte ranges `(offset, length)` changed
    /// with one sync, ahead of many writes (a restore): the writes then
    /// find their stamps current. Each write still stamps (and copies
    /// aside) as usual, so a backup starting in between misses nothing.
    pub fn premark(&self, ranges: &[(u64, u64)]) -> Result<()> {
        let ts = u64::from(self.volume.geometry.track_size);
        let tracks: Vec<(u64, u64)> = ranges
            .iter()
            .filter(|(_, len)| *len > 0)
            .map(|&(off, len)| (off / ts, (off + len - 1) / ts))
            .collect();
        self.lock()?.changes.mark_ranges(&tracks)
    }

    /// Make every acknowledged write durable.
    pub fn flush(&self) -> Result<()> {
        self.volume.sync()
    }

    /// Zero a range (as host writes of zeroes, in pieces).
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        const PIECE: usize = 1 << 20;
        if offset.checked_add(len).is_none_or(|e| e > self.volume.size) {
            bail!(
                "zeroing {len} bytes at {offset} runs past the end of {}",
                self.volume.name
            );
        }
        let zeroes = vec![0u8; at_most(len, PIECE)];
        let mut done = 0u64;
        while done < len {
            let n = at_most(len - done, PIECE);
            self.write(offset + done, &zeroes[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backup read of `len` bytes into a fresh buffer.
    fn read_backup(v: &HostVolume, backup: u64, t: u64, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        v.read_for_backup(backup, t, offset, &mut buf)?;
        Ok(buf)
    }
    use proto::abs::Geometry;

    const TS: usize = 4096;

    fn setup(dir: &Path) -> (HostIo, PathBuf) {
        setup_limited(dir, u64::MAX)
    }

    fn setup_limited(dir: &Path, side_limit: u64) -> (HostIo, PathBuf) {
        let path = dir.join("v.img");
        let mut bytes = Vec::new();
        for t in 0..8u8 {
            bytes.extend(std::iter::repeat_n(t, TS));
        }
        std::fs::write(&path, &bytes).unwrap();
        let geometry = Geometry {
            block_size: 512,
            track_size: TS as u32,
        };
        let v = Arc::new(Volume::open("v", &path, geometry).unwrap());
        let vols = HashMap::from([("v".to_string(), v)]);
        (HostIo::open(&vols, &dir.join("state"), side_limit).unwrap(), path)
    }

    #[test]
    fn a_hold_makes_host_writes_wait_until_released_or_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let (host, path) = setup(dir.path());
        let host = Arc::new(host);
        host.hold_writes(7, &["v".to_string()], std::time::Duration::from_secs(60))
            .unwrap();
        assert!(host
            .hold_writes(7, &["v".to_string()], std::time::Duration::from_secs(1))
            .is_err());
        assert!(host
            .hold_writes(8, &["nope".to_string()], std::time::Duration::from_secs(1))
            .is_err());
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = host.clone();
        std::thread::spawn(move || {
            writer.volume("v").unwrap().write(0, &[0xab; 16]).unwrap();
            tx.send(()).unwrap();
        });
        // Held: the write does not land (a snapshot taken now is of the
        // volume before it).
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err());
        let snap = host.volume("v").unwrap().begin_snapshot(1, 0..1, None).unwrap();
        assert_eq!(snap.tracks, vec![0]);
        host.release_writes(7);
        rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..16], &[0xab; 16]);
        assert_eq!(
            read_backup(host.volume("v").unwrap(), 1, 0, 0, 16).unwrap(),
            vec![0u8; 16]
        );
        // A hold nobody releases ends by itself.
        host.hold_writes(9, &["v".to_string()], std::time::Duration::from_millis(50))
            .unwrap();
        host.volume("v").unwrap().write(16, &[1; 4]).unwrap();
        host.release_writes(9);
    }

    #[test]
    fn a_target_volume_is_written_only_by_a_version_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.img");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(8 * TS as u64 + proto::region::REGION_BYTES as u64)
            .unwrap();
        let geometry = Geometry {
            block_size: 512,
            track_size: TS as u32,
        };
        let t = Arc::new(Volume::open_target("t", &path, geometry).unwrap());
        let (data, _) = {
            let d = dir.path().join("d");
            std::fs::create_dir_all(&d).unwrap();
            setup(&d)
        };
        let vols = HashMap::from([("t".to_string(), t)]);
        let host = HostIo::open(&vols, &dir.path().join("state"), u64::MAX).unwrap();
        let e = host.volume("t").unwrap().write(0, &[1; 8]).unwrap_err().to_string();
        assert!(e.contains("target volume"), "{e}");
        assert_eq!(host.exports(), vec![("t".to_string(), 8 * TS as u64, true)]);
        host.volume("t").unwrap().write_version(0, &[2; 8]).unwrap();
        assert_eq!(host.volume("t").unwrap().read(0, 8).unwrap(), vec![2; 8]);
        let e = data
            .volume("v")
            .unwrap()
            .write_version(0, &[2; 8])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a target volume"), "{e}");
    }

    #[test]
    fn a_full_side_file_fails_the_backup_never_the_host_write() {
        let dir = tempfile::tempdir().unwrap();
        // Room for two track copies across all snapshots.
        let (host, path) = setup_limited(dir.path(), 2 * TS as u64);
        let v = host.volume("v").unwrap();
        v.begin_backup(1, 0..8).unwrap();
        // Three protected tracks written: two fit aside, the third does not.
        v.write(0, &vec![0xee; 3 * TS]).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..3 * TS], &vec![0xee; 3 * TS][..]);
        let err = read_backup(v, 1, 5, 5 * TS as u64, TS).unwrap_err().to_string();
        assert!(
            err.contains("--side-file-limit") && err.contains("host writes went on"),
            "{err}"
        );
        // Further writes just land.
        v.write(6 * TS as u64, &[7; 8]).unwrap();
        // The broken backup ends; its space is free for the next.
        v.end_backup(1);
        v.begin_backup(2, 0..8).unwrap();
        v.write(0, &vec![0x11; 2 * TS]).unwrap();
        assert_eq!(read_backup(v, 2, 1, TS as u64, TS).unwrap(), vec![0xee; TS]);
    }

    #[test]
    fn a_backup_reads_the_image_at_its_start_while_writes_land() {
        let dir = tempfile::tempdir().unwrap();
        let (host, path) = setup(dir.path());
        let v = host.volume("v").unwrap();
        let epoch = v.begin_backup(1, 0..8).unwrap();
        // The backup reads track 0; then a host overwrites tracks 0..=2.
        assert_eq!(read_backup(v, 1, 0, 0, TS).unwrap(), vec![0u8; TS]);
        v.write(0, &vec![0xee; 3 * TS]).unwrap();
        // The write landed.
        assert_eq!(v.read(TS as u64, TS).unwrap(), vec![0xee; TS]);
        // Tracks 1 and 2 were copied aside before it: the backup sees the old bytes.
        assert_eq!(read_backup(v, 1, 1, TS as u64, TS).unwrap(), vec![1u8; TS]);
        assert_eq!(read_backup(v, 1, 2, 2 * TS as u64 + 100, 10).unwrap(), vec![2u8; 10]);
        assert!(dir.path().join("state/side-1-v.bin").exists());
        // Track 0 was copied aside already: no second copy.
        v.write(0, &[0x55; 16]).unwrap();
        // The writes after the start are changes for the next backup.
        let changed = host
            .volume("v")
            .unwrap()
            .lock()
            .unwrap()
            .changes
            .map()
            .changed_since(epoch);
        assert_eq!(changed, vec![0, 1, 2]);
        // The backup ends: snapshot and side file gone; writes just land.
        v.end_backup(1);
        assert!(!dir.path().join("state/side-1-v.bin").exists());
        assert!(read_backup(v, 1, 3, 3 * TS as u64, TS).is_err());
        v.write(3 * TS as u64, &[9; 8]).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[3 * TS..3 * TS + 8], &[9; 8]);
    }

    #[test]
    fn two_backups_each_keep_their_own_image() {
        let dir = tempfile::tempdir().unwrap();
        let (host, _) = setup(dir.path());
        let v = host.volume("v").unwrap();
        v.begin_backup(1, [5]).unwrap();
        v.write(5 * TS as u64, &vec![0xaa; TS]).unwrap();
        v.begin_backup(2, [5]).unwrap();
        v.write(5 * TS as u64, &vec![0xbb; TS]).unwrap();
        assert_eq!(read_backup(v, 1, 5, 5 * TS as u64, TS).unwrap(), vec![5u8; TS]);
        assert_eq!(read_backup(v, 2, 5, 5 * TS as u64, TS).unwrap(), vec![0xaa; TS]);
        assert!(v.begin_backup(2, [1]).is_err(), "one snapshot per backup");
    }

    #[test]
    fn premark_stamps_ahead_and_writes_still_stamp_after_a_new_backup() {
        let dir = tempfile::tempdir().unwrap();
        let (host, _) = setup(dir.path());
        let v = host.volume("v").unwrap();
        let e1 = v.begin_backup(1, []).unwrap();
        v.end_backup(1);
        v.premark(&[(0, 1), (6 * TS as u64, 2 * TS as u64)]).unwrap();
        let changes = |e| host.volume("v").unwrap().lock().unwrap().changes.map().changed_since(e);
        assert_eq!(changes(e1), vec![0, 6, 7]);
        let e2 = v.begin_backup(2, []).unwrap();
        v.write(6 * TS as u64, &[1; 4]).unwrap();
        assert_eq!(
            changes(e2),
            vec![6],
            "the write after the new backup's start is stamped anew"
        );
    }

    #[test]
    fn side_copies_stay_until_acknowledged_and_their_slots_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (host, _) = setup(dir.path());
        let v = host.volume("v").unwrap();
        v.begin_backup(1, 0..8).unwrap();
        v.write(0, &vec![0xee; 2 * TS]).unwrap();
        assert_eq!(v.side_copies(1), 2);
        // Read, but not yet acknowledged: the copy stays (a resend reads it again).
        assert_eq!(read_backup(v, 1, 0, 0, TS).unwrap(), vec![0u8; TS]);
        assert_eq!(read_backup(v, 1, 0, 0, TS).unwrap(), vec![0u8; TS]);
        assert_eq!(v.side_copies(1), 2);
        v.release(1, &[0, 1]);
        assert_eq!(v.side_copies(1), 0);
        let side = dir.path().join("state/side-1-v.bin");
        let len = std::fs::metadata(&side).unwrap().len();
        // Two more copies reuse the two freed slots: the side file does not grow.
        v.write(4 * TS as u64, &vec![0xdd; 2 * TS]).unwrap();
        assert_eq!(std::fs::metadata(&side).unwrap().len(), len);
        assert_eq!(read_backup(v, 1, 4, 4 * TS as u64, TS).unwrap(), vec![4u8; TS]);
        assert_eq!(read_backup(v, 1, 5, 5 * TS as u64, TS).unwrap(), vec![5u8; TS]);
    }

    #[test]
    fn a_track_sent_again_after_a_host_write_is_still_the_image_at_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (host, _) = setup(dir.path());
        let v = host.volume("v").unwrap();
        v.begin_backup(1, 0..8).unwrap();
        // Track 3 is read and sent; then a host overwrites it.
        assert_eq!(read_backup(v, 1, 3, 3 * TS as u64, TS).unwrap(), vec![3u8; TS]);
        v.write(3 * TS as u64, &vec![0xee; TS]).unwrap();
        // The front-end is lost before the track is on tape: the resumed
        // stream reads it again, and sends the same bytes.
        assert_eq!(read_backup(v, 1, 3, 3 * TS as u64, TS).unwrap(), vec![3u8; TS]);
        // On tape: the copy leaves and the track is no longer protected.
        v.release(1, &[3]);
        assert_eq!(v.side_copies(1), 0);
        v.write(3 * TS as u64, &[1; 4]).unwrap();
        assert_eq!(v.side_copies(1), 0);
    }

    #[test]
    fn a_differential_snapshot_takes_only_the_changed_tracks() {
        let dir = tempfile::tempdir().unwrap();
        let (host, _) = setup(dir.path());
        let v = host.volume("v").unwrap();
        let full = v.begin_snapshot(1, 0..8, None).unwrap();
        assert_eq!(full.tracks, (0..8).collect::<Vec<_>>());
        v.end_backup(1);
        v.write(2 * TS as u64 + 7, &[1; 3]).unwrap();
        v.write(6 * TS as u64, &vec![1; TS + 1]).unwrap();
        let diff = v.begin_snapshot(2, 0..8, Some((full.map_id, full.epoch))).unwrap();
        assert_eq!(diff.tracks, vec![2, 6, 7]);
        assert_eq!(diff.all_because, None);
        // Only the changed tracks are protected: a write elsewhere is not copied.
        v.write(0, &[9; 4]).unwrap();
        assert_eq!(v.side_copies(2), 0);
        v.write(2 * TS as u64, &[9; 4]).unwrap();
        assert_eq!(v.side_copies(2), 1);
        v.end_backup(2);
        // Relative to the differential: the two writes since it.
        let next = v.begin_snapshot(3, 0..8, Some((diff.map_id, diff.epoch))).unwrap();
        assert_eq!(next.tracks, vec![0, 2]);
        v.end_backup(3);
        // A base from another change map: everything, and the reason.
        let other = v.begin_snapshot(4, 0..8, Some((full.map_id ^ 1, full.epoch))).unwrap();
        assert_eq!(other.tracks.len(), 8);
        assert!(other.all_because.unwrap().contains("recreated"));
        v.end_backup(4);
        // A base epoch from the future is refused.
        assert!(v.begin_snapshot(5, 0..8, Some((full.map_id, 1000))).is_err());
    }
}
