//! Protection bits and side copies of one volume (concurrent copy, seed
//! FIG. 19/20): what a host write must do before it lands, and where a
//! backup reads each track of its image from.
//!
//! A backup starts with a *snapshot*: every track of its track set is
//! protected. A host write to a track that a running backup protects first
//! copies the track's current contents into that backup's side file
//! ([`WriteAction::CopyFirst`]); then the track is no longer protected for
//! it, and the backup reads the copy instead of the volume. A track stays
//! protected, or its side copy stays, until the front-end acknowledges it
//! ([`ProtectionMap::release`]), not merely until the backup read it: a
//! stream resumed after the front-end was lost reads its tracks again, and
//! must read the same bytes. A copy's slot is then reused. A copy that
//! cannot be made (the side file is full, or the copy failed) breaks the
//! backup, never the host write.
//!
//! Pure state: the shell ([`crate::host`]) reads the volume, writes the
//! side file and holds the lock that makes each call and its I/O one step
//! with respect to host writes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::side_file::{Allocation, SideFile, SideFull, SideSpace, Slot};

/// A backup: the channel it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(pub u64);

/// A track of the volume (byte offset / track size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Track(pub u64);

/// Why a snapshot can no longer hold its backup's image: a side copy could
/// not be made, and the host write went on. The backup fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error(transparent)]
    SideFull(#[from] SideFull),
    /// Reading the track or writing the side file failed (the shell's reason).
    #[error("{0}")]
    CopyFailed(String),
}

/// What a host write to a track must do before it lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAction {
    /// No running backup needs the track's contents any more: write.
    PassThrough,
    /// Copy the track's current contents into a backup's side file first,
    /// report the outcome ([`ProtectionMap::copied`] or
    /// [`ProtectionMap::copy_failed`]), and ask again: another backup may
    /// protect the track too.
    CopyFirst(SideCopy),
}

/// One side copy to make: the track's current contents go to `offset` of
/// the backup's side file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideCopy {
    pub backup: BackupId,
    pub track: Track,
    pub slot: Slot,
    /// Byte offset of the slot in the backup's side file.
    pub offset: u64,
    alloc: Allocation,
}

impl SideCopy {
    /// The side file grows by one slot for this copy.
    pub fn grows(&self) -> bool {
        self.alloc.grew
    }
}

/// Where a backup reads a track of its image from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The volume: no host write reached the track since the backup started.
    Volume,
    /// The side copy made before a host write, at `offset` of the side file.
    Side { slot: Slot, offset: u64 },
}

/// Why a backup cannot read its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The backup has no snapshot of this volume (never began, or ended).
    NotRunning,
    /// The snapshot broke.
    Broken(Broken),
}

/// Something the shell reports (logs, counts) after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A backup's snapshot broke: the backup fails, host writes went on.
    Broken { backup: BackupId, cause: Broken },
}

/// What a backup's snapshot held when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Tracks copied aside for host writes.
    pub copies: u64,
    /// Bytes of the side file, given back to the node's budget.
    pub side_bytes: u64,
}

/// A backup began twice on the same volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backup {} already has a snapshot", .0 .0)]
pub struct AlreadyRunning(pub BackupId);

/// One running backup's view of the volume.
#[derive(Debug)]
struct Snapshot {
    /// Tracks of the track set whose contents at the backup's start are
    /// still only on the volume, and not yet acknowledged.
    protected: BTreeSet<Track>,
    /// Side copies not yet acknowledged: track → slot.
    side: BTreeMap<Track, Slot>,
    file: SideFile,
    /// Tracks copied aside so far.
    copies: u64,
    broken: Option<Broken>,
}

/// The protection bits and side copies of one volume's running backups.
///
/// Invariants: a track a running, unbroken backup protects is written by a
/// host only after [`WriteAction::CopyFirst`] for that backup and its
/// [`ProtectionMap::copied`] (so its contents at the backup's start are
/// safe in the side file); a backup reads each track of its image either
/// from the volume (never written since its start) or from its side copy,
/// as often as it reads it until the track is acknowledged; a side copy's
/// slot is freed only when the backup's front-end acknowledged the track,
/// or the backup ends; a broken backup protects nothing and reads nothing.
/// At most one side copy is in flight.
#[derive(Debug)]
pub struct ProtectionMap {
    /// Bytes of one side-file slot: the track size.
    slot_size: u64,
    snapshots: BTreeMap<BackupId, Snapshot>,
    /// The side copy handed out and not yet reported.
    copying: Option<SideCopy>,
    events: VecDeque<Event>,
}

impl ProtectionMap {
    /// No backup running; side-file slots of `track_size` bytes.
    pub fn new(track_size: u64) -> ProtectionMap {
        ProtectionMap {
            slot_size: track_size,
            snapshots: BTreeMap::new(),
            copying: None,
            events: VecDeque::new(),
        }
    }

    /// A backup starts: protect `tracks` (its track set on this volume).
    pub fn begin(&mut self, backup: BackupId, tracks: impl IntoIterator<Item = Track>) -> Result<(), AlreadyRunning> {
        if self.snapshots.contains_key(&backup) {
            return Err(AlreadyRunning(backup));
        }
        self.snapshots.insert(
            backup,
            Snapshot {
                protected: tracks.into_iter().collect(),
                side: BTreeMap::new(),
                file: SideFile::new(self.slot_size),
                copies: 0,
                broken: None,
            },
        );
        Ok(())
    }

    /// A host is about to write `track`: may it land, or must its contents
    /// be copied aside first? A backup whose side file cannot take the
    /// copy within `space` breaks ([`Event::Broken`]); the write goes on.
    /// While a copy is in flight, it is the answer.
    pub fn write(&mut self, track: Track, space: &dyn SideSpace) -> WriteAction {
        if let Some(c) = self.copying {
            return WriteAction::CopyFirst(c);
        }
        for (&backup, snap) in self.snapshots.iter_mut() {
            if snap.broken.is_some() || !snap.protected.contains(&track) {
                continue;
            }
            match snap.file.allocate(space) {
                Ok(alloc) => {
                    let copy = SideCopy {
                        backup,
                        track,
                        slot: alloc.slot,
                        offset: snap.file.offset(alloc.slot),
                        alloc,
                    };
                    self.copying = Some(copy);
                    return WriteAction::CopyFirst(copy);
                }
                Err(full) => Self::break_snapshot(&mut self.events, backup, snap, full.into()),
            }
        }
        WriteAction::PassThrough
    }

    /// The shell made `copy`: the backup reads the track from it from now
    /// on. False if `copy` was not the one in flight (nothing changes).
    pub fn copied(&mut self, copy: SideCopy) -> bool {
        if self.copying != Some(copy) {
            return false;
        }
        self.copying = None;
        if let Some(snap) = self.snapshots.get_mut(&copy.backup) {
            snap.protected.remove(&copy.track);
            snap.side.insert(copy.track, copy.slot);
            snap.copies += 1;
        }
        true
    }

    /// The shell could not make `copy` (`reason`): its slot is given up
    /// and the backup breaks; the write goes on. False if `copy` was not
    /// the one in flight (nothing changes).
    pub fn copy_failed(&mut self, copy: SideCopy, reason: String, space: &dyn SideSpace) -> bool {
        if self.copying != Some(copy) {
            return false;
        }
        self.copying = None;
        if let Some(snap) = self.snapshots.get_mut(&copy.backup) {
            snap.file.cancel(copy.alloc, space);
            Self::break_snapshot(&mut self.events, copy.backup, snap, Broken::CopyFailed(reason));
        }
        true
    }

    fn break_snapshot(events: &mut VecDeque<Event>, backup: BackupId, snap: &mut Snapshot, cause: Broken) {
        snap.protected.clear();
        snap.broken = Some(cause.clone());
        events.push_back(Event::Broken { backup, cause });
    }

    /// Where `backup` reads `track` of its image from (the same, however
    /// often, until the track is acknowledged).
    pub fn read(&self, backup: BackupId, track: Track) -> Result<ReadFrom, ReadError> {
        let snap = self.snapshots.get(&backup).ok_or(ReadError::NotRunning)?;
        if let Some(cause) = &snap.broken {
            return Err(ReadError::Broken(cause.clone()));
        }
        Ok(match snap.side.get(&track) {
            Some(&slot) => ReadFrom::Side {
                slot,
                offset: snap.file.offset(slot),
            },
            None => ReadFrom::Volume,
        })
    }

    /// The front-end acknowledged `tracks` of `backup` as durable: they are
    /// no longer protected, their side copies leave and their slots are
    /// free for the next. Returns the slots freed.
    pub fn release(&mut self, backup: BackupId, tracks: &[Track]) -> Vec<Slot> {
        let Some(snap) = self.snapshots.get_mut(&backup) else {
            return Vec::new();
        };
        let mut freed = Vec::new();
        for t in tracks {
            snap.protected.remove(t);
            if let Some(slot) = snap.side.remove(t) {
                snap.file.free(slot);
                freed.push(slot);
            }
        }
        freed
    }

    /// Side copies held for `backup` (copied, not yet acknowledged).
    pub fn side_copies(&self, backup: BackupId) -> usize {
        self.snapshots.get(&backup).map_or(0, |s| s.side.len())
    }

    /// Bytes of `backup`'s side file (of the node's budget).
    pub fn side_bytes(&self, backup: BackupId) -> u64 {
        self.snapshots.get(&backup).map_or(0, |s| s.file.bytes())
    }

    /// Whether `backup` has a snapshot of the volume.
    pub fn is_running(&self, backup: BackupId) -> bool {
        self.snapshots.contains_key(&backup)
    }

    /// The backups holding a snapshot, ascending.
    pub fn backups(&self) -> impl Iterator<Item = BackupId> + '_ {
        self.snapshots.keys().copied()
    }

    /// The backup ended (done or failed): its snapshot goes, and its side
    /// file's bytes go back to `space`. None if it had no snapshot.
    pub fn end(&mut self, backup: BackupId, space: &dyn SideSpace) -> Option<Ended> {
        let snap = self.snapshots.remove(&backup)?;
        if self.copying.is_some_and(|c| c.backup == backup) {
            self.copying = None;
        }
        Some(Ended {
            copies: snap.copies,
            side_bytes: snap.file.close(space),
        })
    }

    /// The next thing to report, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::side_file::tests::Budget;

    fn copy_of(a: WriteAction) -> SideCopy {
        match a {
            WriteAction::CopyFirst(c) => c,
            WriteAction::PassThrough => panic!("expected a copy"),
        }
    }

    #[test]
    fn each_backup_gets_its_own_copy_then_the_write_passes() {
        let budget = Budget::new(u64::MAX);
        let mut m = ProtectionMap::new(10);
        m.begin(BackupId(1), [Track(5)]).unwrap();
        m.begin(BackupId(2), [Track(5), Track(6)]).unwrap();
        assert_eq!(m.begin(BackupId(2), []), Err(AlreadyRunning(BackupId(2))));
        let c1 = copy_of(m.write(Track(5), &budget));
        assert_eq!(m.write(Track(5), &budget), WriteAction::CopyFirst(c1), "in flight");
        assert!(m.copied(c1));
        let c2 = copy_of(m.write(Track(5), &budget));
        assert_eq!((c1.backup, c2.backup), (BackupId(1), BackupId(2)));
        assert!(m.copied(c2));
        assert!(!m.copied(c2), "reported twice");
        assert_eq!(m.write(Track(5), &budget), WriteAction::PassThrough);
        assert_eq!(
            m.read(BackupId(2), Track(5)),
            Ok(ReadFrom::Side {
                slot: c2.slot,
                offset: 0
            })
        );
        // Read, not yet acknowledged: still protected (it may be sent again).
        assert_eq!(m.read(BackupId(2), Track(6)), Ok(ReadFrom::Volume));
        let c3 = copy_of(m.write(Track(6), &budget));
        assert!(m.copied(c3));
        assert_eq!(
            m.read(BackupId(2), Track(6)),
            Ok(ReadFrom::Side {
                slot: c3.slot,
                offset: 10
            })
        );
        assert_eq!(m.release(BackupId(2), &[Track(5), Track(6)]), vec![c2.slot, c3.slot]);
        assert_eq!(m.write(Track(6), &budget), WriteAction::PassThrough, "acknowledged");
        assert_eq!(m.side_copies(BackupId(2)), 0);
        let ended = m.end(BackupId(2), &budget).unwrap();
        assert_eq!((ended.copies, ended.side_bytes), (2, 20));
        assert_eq!(m.read(BackupId(2), Track(5)), Err(ReadError::NotRunning));
        assert_eq!(m.backups().collect::<Vec<_>>(), vec![BackupId(1)]);
    }

    #[test]
    fn a_copy_that_cannot_be_made_breaks_only_its_backup() {
        let budget = Budget::new(20);
        let mut m = ProtectionMap::new(10);
        m.begin(BackupId(1), [Track(0), Track(1)]).unwrap();
        m.begin(BackupId(2), [Track(1), Track(2)]).unwrap();
        // Backup 2 gets a free slot: a copy, acknowledged.
        let c = copy_of(m.write(Track(2), &budget));
        assert!(m.copied(c));
        m.release(BackupId(2), &[Track(2)]);
        let c = copy_of(m.write(Track(0), &budget));
        assert!(m.copied(c));
        // Backup 1's side file cannot grow: it breaks; backup 2 reuses its slot.
        let c = copy_of(m.write(Track(1), &budget));
        assert_eq!((c.backup, c.grows()), (BackupId(2), false));
        let full = Broken::SideFull(SideFull { limit: 20 });
        assert_eq!(
            m.poll_event(),
            Some(Event::Broken {
                backup: BackupId(1),
                cause: full.clone()
            })
        );
        assert_eq!(m.poll_event(), None);
        assert_eq!(m.read(BackupId(1), Track(0)), Err(ReadError::Broken(full)));
        // Backup 2's copy fails: it breaks too; the write passes.
        assert!(m.copy_failed(c, "disk gone".into(), &budget));
        assert_eq!(m.write(Track(1), &budget), WriteAction::PassThrough);
        assert_eq!(
            m.read(BackupId(2), Track(1)),
            Err(ReadError::Broken(Broken::CopyFailed("disk gone".into())))
        );
        assert_eq!(m.end(BackupId(1), &budget).map(|e| e.side_bytes), Some(10));
        assert_eq!(m.end(BackupId(2), &budget).map(|e| e.side_bytes), Some(10));
        assert_eq!(budget.used.get(), 0);
    }
}
