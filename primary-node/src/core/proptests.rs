//! Property tests of the cores against simple models.
//!
//! - [`ProtectionMap`] with its [`SideFile`](super::side_file::SideFile)s:
//!   random interleavings of backups beginning and ending, host writes
//!   (some of whose side copies fail), backup reads and acknowledgements,
//!   driven by a toy shell (a volume of numbered track contents, side files
//!   as maps) and checked against a map of snapshot images.
//! - [`RequestQueue`]: random pushes, acknowledgements (late, early, past
//!   what was sent) and lost streams resumed from where the front-end says,
//!   checked against the track set as a list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use proto::abs::{TrackAddr, TrackRun, TrackSet};

use super::protection::{BackupId, Broken, Event, ProtectionMap, ReadError, ReadFrom, Track, WriteAction};
use super::request_queue::{PushError, Released, RequestQueue};
use super::side_file::tests::Budget;
use super::side_file::Slot;

/// A failed case with a reason.
fn failure(reason: &str) -> TestCaseError {
    TestCaseError::fail(reason.to_string())
}

// ---------------------------------------------------------------------------
// ProtectionMap and SideFile

/// Tracks of the toy volume.
const TRACKS: u64 = 8;
/// Bytes of a track, so of a side-file slot.
const TS: u64 = 4;

#[derive(Debug, Clone)]
enum Op {
    /// A backup begins with the tracks of `mask` (bit i: track i).
    Begin {
        backup: u64,
        mask: u8,
    },
    /// A host writes `len` tracks from `first`; the copy aside number
    /// `fail` (of this write) fails, if any.
    Write {
        first: u64,
        len: u64,
        fail: Option<usize>,
    },
    /// A backup reads (or sends again) one of its tracks not yet
    /// acknowledged (`pick`-th).
    Read {
        backup: u64,
        pick: usize,
    },
    /// The front-end acknowledges the tracks of `mask` the backup read.
    Release {
        backup: u64,
        mask: u8,
    },
    End {
        backup: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3u64, any::<u8>()).prop_map(|(backup, mask)| Op::Begin { backup, mask }),
        4 => (0..TRACKS, 1..4u64, proptest::option::weighted(0.15, 0..3usize))
            .prop_map(|(first, len, fail)| Op::Write { first, len, fail }),
        4 => (0..4u64, any::<usize>()).prop_map(|(backup, pick)| Op::Read { backup, pick }),
        2 => (0..3u64, any::<u8>()).prop_map(|(backup, mask)| Op::Release { backup, mask }),
        1 => (0..4u64).prop_map(|backup| Op::End { backup }),
    ]
}

/// What the model knows of one running backup.
#[derive(Debug, Default)]
struct Model {
    /// Its image: each track of its track set as it was at its start.
    image: BTreeMap<Track, u32>,
    /// Tracks it read (sent), and those acknowledged.
    read: BTreeSet<Track>,
    acked: BTreeSet<Track>,
    /// Its side copies: track → slot, and the slots its side file has.
    held: BTreeMap<Track, Slot>,
    slots: u64,
    copies: u64,
    broken: bool,
}

impl Model {
    fn free_slots(&self) -> BTreeSet<u64> {
        let held: BTreeSet<u64> = self.held.values().map(|s| s.index()).collect();
        (0..self.slots).filter(|i| !held.contains(i)).collect()
    }

    /// Tracks whose contents at the start the backup may still read.
    fn needed(&self) -> impl Iterator<Item = (&Track, &u32)> + '_ {
        self.image.iter().filter(|(t, _)| !self.acked.contains(t))
    }
}

/// The toy shell: a volume, side files, the core, and the model.
struct World {
    volume: Vec<u32>,
    side: HashMap<(BackupId, Slot), u32>,
    map: ProtectionMap,
    budget: Budget,
    models: BTreeMap<BackupId, Model>,
    next_value: u32,
}

impl World {
    fn new(limit: u64) -> World {
        World {
            volume: (0..TRACKS as u32).collect(),
            side: HashMap::new(),
            map: ProtectionMap::new(TS),
            budget: Budget::new(limit),
            models: BTreeMap::new(),
            next_value: 1000,
        }
    }

    /// Events right after the call that caused them: a backup breaks for
    /// want of space only when its side file had no free slot and the
    /// budget refused to grow it.
    fn check_events(&mut self, refused_before: u64, injected: &mut bool) -> Result<(), TestCaseError> {
        while let Some(Event::Broken { backup, cause }) = self.map.poll_event() {
            let m = self
                .models
                .get_mut(&backup)
                .ok_or_else(|| failure("an unknown backup broke"))?;
            prop_assert!(!m.broken, "broke twice");
            match cause {
                Broken::SideFull(full) => {
                    prop_assert_eq!(full.limit, self.budget.limit);
                    prop_assert!(self.budget.refused.get() > refused_before, "broke with room left");
                    prop_assert!(m.free_slots().is_empty(), "broke with a free slot");
                    prop_assert!(self.budget.used.get() + TS > self.budget.limit);
                }
                Broken::CopyFailed(_) => {
                    prop_assert!(*injected, "a copy failed that did not");
                    *injected = false;
                }
            }
            m.broken = true;
        }
        Ok(())
    }

    fn write(&mut self, first: u64, len: u64, fail: Option<usize>) -> Result<(), TestCaseError> {
        let last = (first + len).min(TRACKS) - 1;
        let mut copy_no = 0;
        for t in first..=last {
            let track = Track(t);
            loop {
                let refused = self.budget.refused.get();
                let action = self.map.write(track, &self.budget);
                let mut injected = false;
                self.check_events(refused, &mut injected)?;
                let WriteAction::CopyFirst(c) = action else { break };
                prop_assert_eq!(c.track, track);
                let failing = fail == Some(copy_no);
                copy_no += 1;
                let m = self
                    .models
                    .get_mut(&c.backup)
                    .ok_or_else(|| failure("a copy for an unknown backup"))?;
                prop_assert!(!m.broken && m.image.contains_key(&track));
                prop_assert!(!m.held.contains_key(&track), "copied twice");
                prop_assert!(!m.acked.contains(&track));
                // Slots are reused, lowest first, before the file grows.
                match m.free_slots().first() {
                    Some(&lowest) => prop_assert!(!c.grows() && c.slot.index() == lowest),
                    None => prop_assert!(c.grows() && c.slot.index() == m.slots),
                }
                prop_assert_eq!(c.offset, c.slot.index() * TS);
                if c.grows() && !failing {
                    m.slots += 1;
                }
                if failing {
                    injected = true;
                    prop_assert!(self.map.copy_failed(c, "injected".into(), &self.budget));
                    self.check_events(refused, &mut injected)?;
                    prop_assert!(!injected, "a failed copy did not break its backup");
                } else {
                    self.side.insert((c.backup, c.slot), self.volume[t as usize]);
                    m.held.insert(track, c.slot);
                    m.copies += 1;
                    prop_assert!(self.map.copied(c));
                }
            }
            // The write may land: every image's contents of the track are
            // safe (its side copy, or no backup needs it any more).
            for (b, m) in &self.models {
                if m.broken || !m.needed().any(|(&n, _)| n == track) {
                    continue;
                }
                match self.map.read(*b, track) {
                    Ok(ReadFrom::Side { slot, .. }) => {
                        prop_assert_eq!(self.side.get(&(*b, slot)), m.image.get(&track));
                    }
                    other => prop_assert!(false, "{b:?} track {t}: {other:?} before a write"),
                }
            }
        }
        for t in first..=last {
            self.volume[t as usize] = self.next_value;
            self.next_value += 1;
        }
        Ok(())
    }

    fn read(&mut self, backup: BackupId, pick: usize) -> Result<(), TestCaseError> {
        let Some(m) = self.models.get_mut(&backup) else {
            prop_assert_eq!(
                self.map.read(backup, Track(pick as u64 % TRACKS)),
                Err(ReadError::NotRunning)
            );
            return Ok(());
        };
        let open: Vec<Track> = m.needed().map(|(&t, _)| t).collect();
        let Some(&track) = open.get(pick % open.len().max(1)) else {
            return Ok(());
        };
        let got = self.map.read(backup, track);
        if m.broken {
            prop_assert!(matches!(got, Err(ReadError::Broken(_))), "{:?}", got);
            return Ok(());
        }
        let value = match got {
            Ok(ReadFrom::Volume) => self.volume[track.0 as usize],
            Ok(ReadFrom::Side { slot, offset }) => {
                prop_assert_eq!(offset, slot.index() * TS);
                prop_assert_eq!(m.held.get(&track), Some(&slot));
                *self
                    .side
                    .get(&(backup, slot))
                    .ok_or_else(|| failure("no such side copy"))?
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
        };
        prop_assert_eq!(Some(&value), m.image.get(&track), "read {:?} of {:?}", track, backup);
        m.read.insert(track);
        Ok(())
    }

    fn release(&mut self, backup: BackupId, mask: u8) -> Result<(), TestCaseError> {
        let acked: Vec<Track> = match self.models.get(&backup) {
            Some(m) => m.read.iter().filter(|t| mask & (1 << t.0) != 0).copied().collect(),
            None => (0..TRACKS).filter(|t| mask & (1 << t) != 0).map(Track).collect(),
        };
        let freed = self.map.release(backup, &acked);
        let Some(m) = self.models.get_mut(&backup) else {
            prop_assert!(freed.is_empty());
            return Ok(());
        };
        // A slot is freed only for an acknowledged track that held it.
        let mut expected = Vec::new();
        for t in &acked {
            m.acked.insert(*t);
            if let Some(slot) = m.held.remove(t) {
                expected.push(slot);
                self.side.remove(&(backup, slot));
            }
        }
        prop_assert_eq!(freed, expected);
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Begin { backup, mask } => {
                let b = BackupId(backup);
                let tracks: Vec<Track> = (0..TRACKS).filter(|t| mask & (1 << t) != 0).map(Track).collect();
                let began = self.map.begin(b, tracks.iter().copied());
                prop_assert_eq!(began.is_ok(), !self.models.contains_key(&b));
                if began.is_ok() {
                    let image = tracks.iter().map(|&t| (t, self.volume[t.0 as usize])).collect();
                    self.models.insert(
                        b,
                        Model {
                            image,
                            ..Model::default()
                        },
                    );
                }
            }
            Op::Write { first, len, fail } => self.write(first, len, fail)?,
            Op::Read { backup, pick } => self.read(BackupId(backup), pick)?,
            Op::Release { backup, mask } => self.release(BackupId(backup), mask)?,
            Op::End { backup } => {
                let b = BackupId(backup);
                let ended = self.map.end(b, &self.budget);
                match self.models.remove(&b) {
                    Some(m) => {
                        let ended = ended.ok_or_else(|| failure("a running backup did not end"))?;
                        prop_assert_eq!((ended.copies, ended.side_bytes), (m.copies, m.slots * TS));
                        self.side.retain(|(owner, _), _| *owner != b);
                    }
                    None => prop_assert!(ended.is_none()),
                }
            }
        }
        self.check_state()
    }

    /// After every step: the budget holds exactly the side files' bytes,
    /// within the limit; every image is still whole.
    fn check_state(&self) -> Result<(), TestCaseError> {
        let used: u64 = self.models.values().map(|m| m.slots * TS).sum();
        prop_assert_eq!(self.budget.used.get(), used);
        prop_assert!(used <= self.budget.limit);
        for (b, m) in &self.models {
            prop_assert_eq!(self.map.side_bytes(*b), m.slots * TS);
            prop_assert_eq!(self.map.side_copies(*b), m.held.len());
            for (&t, &v) in m.needed() {
                let got = match self.map.read(*b, t) {
                    Err(ReadError::Broken(_)) if m.broken => continue,
                    Ok(ReadFrom::Volume) => self.volume[t.0 as usize],
                    Ok(ReadFrom::Side { slot, .. }) => {
                        *self.side.get(&(*b, slot)).ok_or_else(|| failure("no such side copy"))?
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{b:?} {t:?}: {e:?}"))),
                };
                prop_assert_eq!(got, v, "{:?} {:?}", b, t);
            }
        }
        prop_assert_eq!(
            self.map.backups().collect::<Vec<_>>(),
            self.models.keys().copied().collect::<Vec<_>>()
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn backups_read_their_start_images_and_full_side_files_fail_only_backups(
        limit in prop_oneof![Just(u64::MAX), (0..12u64).prop_map(|n| n * TS)],
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut world = World::new(limit);
        for op in ops {
            world.step(op)?;
        }
        for b in world.models.keys().copied().collect::<Vec<_>>() {
            world.step(Op::End { backup: b.0 })?;
        }
        prop_assert_eq!(world.budget.used.get(), 0);
    }
}

// ---------------------------------------------------------------------------
// RequestQueue

#[derive(Debug, Clone)]
enum QOp {
    /// The reader has the next track: send it if the window allows.
    Push,
    /// The front-end says this many tracks are on tape.
    OnTape(u64),
    /// The stream is lost; the next resumes from what the front-end kept
    /// (`keep`-th of the possible points), or from a point it cannot.
    Resume { keep: u64, bad: bool },
}

fn qop() -> impl Strategy<Value = QOp> {
    prop_oneof![
        6 => Just(QOp::Push),
        3 => (0..40u64).prop_map(QOp::OnTape),
        1 => (any::<u64>(), proptest::bool::weighted(0.2)).prop_map(|(keep, bad)| QOp::Resume { keep, bad }),
    ]
}

fn track_set() -> impl Strategy<Value = TrackSet> {
    proptest::collection::vec((0..3u16, 0..20u64, 0..6u64), 0..5).prop_map(|runs| {
        TrackSet::from_runs(
            runs.into_iter()
                .map(|(volume, first, count)| TrackRun { volume, first, count }),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_queue_releases_the_acknowledged_prefix_once_within_the_window(
        tracks in track_set(),
        window in 0..6u64,
        ops in proptest::collection::vec(qop(), 1..100),
    ) {
        let list: Vec<TrackAddr> = tracks.iter().collect();
        let total = list.len() as u64;
        let mut q = RequestQueue::start(&tracks, window, Released(0), 0)?;
        let window = window.max(1);
        // What left the queue, over all streams, in order.
        let mut released: Vec<TrackAddr> = Vec::new();
        // The most tracks on tape the current stream heard of.
        let mut acked = 0u64;
        for op in ops {
            match op {
                QOp::Push => {
                    let next = list.get(q.sent() as usize).copied();
                    let room = q.in_flight() < window;
                    let pushed = q.push(next.unwrap_or(TrackAddr { volume: 9, track: 9 }));
                    match next {
                        None => prop_assert_eq!(pushed, Err(PushError::AllSent { total })),
                        Some(_) if room => prop_assert_eq!(pushed, Ok(())),
                        Some(_) => prop_assert_eq!(pushed, Err(PushError::WindowFull { window })),
                    }
                }
                QOp::OnTape(n) => {
                    acked = acked.max(n);
                    let out = q.on_tape(n);
                    released.extend(out);
                    prop_assert_eq!(q.released().0, acked.min(q.sent()));
                }
                QOp::Resume { keep, bad } => {
                    // The front-end kept some of what it got and not on tape yet.
                    let (lo, hi) = (q.released().0, q.sent());
                    let from = if bad {
                        if keep % 2 == 0 && lo > 0 { keep % lo } else { total + 1 + keep % 3 }
                    } else {
                        lo + keep % (hi - lo + 1)
                    };
                    match RequestQueue::start(&tracks, window, q.released(), from) {
                        Ok(next) => {
                            prop_assert!(!bad);
                            // The tracks before `from` stay queued; the stream
                            // sends the rest: exactly what is not on tape.
                            prop_assert_eq!(next.sent(), from);
                            prop_assert_eq!(next.released(), q.released());
                            q = next;
                            acked = q.released().0;
                        }
                        Err(e) => {
                            prop_assert!(bad, "{}", e);
                            prop_assert_eq!((e.from, e.released, e.total), (from, lo, total));
                        }
                    }
                }
            }
            // The queue is the track set's tracks released..sent, in order;
            // what left is exactly the prefix before, each once.
            prop_assert!(q.in_flight() <= window);
            let (r, s) = (q.released().0 as usize, q.sent() as usize);
            prop_assert_eq!(q.entries().collect::<Vec<_>>(), list[r..s].to_vec());
            prop_assert_eq!(&released[..], &list[..r]);
            prop_assert_eq!(q.has_room(), q.in_flight() < window);
        }
        // Everything sent and on tape: every track left, once, in order.
        loop {
            released.extend(q.on_tape(q.sent()));
            match list.get(q.sent() as usize) {
                Some(&next) => q.push(next)?,
                None => break,
            }
        }
        prop_assert!(q.all_sent());
        prop_assert_eq!(released, list);
    }
}
