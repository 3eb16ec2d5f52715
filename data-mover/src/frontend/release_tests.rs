//! Property tests of the segment release protocol: the real
//! [`Accumulator`] and [`Release`] core over a [`MemSpool`], driven by
//! random interleavings of track arrivals, seals, upload completions (in
//! any order, some replies lost), upload failures and crashes at any spool
//! operation followed by a recovery, against a model of the catalog and of
//! the primary node.
//!
//! ```text
//!  model: catalog  seq → frames through   (the back-end commits before it replies)
//!         primary  acked: the most frames it heard were safe (it keeps the rest)
//!  checked after every step:
//!    a released file's segment is in the catalog; nothing is discarded outside a resume
//!    acked only grows, and never passes the contiguous catalog prefix
//!    the core's ack point is exactly the contiguous prefix of the placements it heard of
//!    every segment being uploaded is sealed in the spool
//!  at every recovery:
//!    the resume point keeps every acknowledged frame
//!    the uploads asked for are exactly the journaled segments not in the catalog
//!    (unless sealed files were torn: then at worst the ABS cannot resume)
//!    the journal is cut to the kept segments before anything is sealed again
//!  at the end: everything sent is in the catalog, acknowledged, and the spool is empty
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proto::abs::TrackAddr;
use proto::domain::{AbsId, ChannelId, SegmentSeq};

use super::accumulator::{Accumulator, SealedSegment};
use super::mem_spool::{Deleted, MemSpool};
use super::release::{Effect, Release};
use super::resume::{plan, verify_sealed};
use super::store::{execute, lock, Spool};

const ABS: AbsId = AbsId::new(9);
const THRESHOLD: u64 = 200;

#[derive(Debug, Clone)]
enum Op {
    Track,
    Seal,
    /// The back-end places an in-flight segment; its reply may be lost;
    /// `two_step`: the core hears "on tape" before "in the catalog".
    Complete {
        pick: usize,
        reply_lost: bool,
        two_step: bool,
    },
    Fail {
        pick: usize,
    },
    /// The spool dies after this many more operations.
    CrashAfter(u8),
    /// Crash now (if not yet) and recover; `tear`: sealed files damaged.
    Restart {
        tear: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Track),
        1 => Just(Op::Seal),
        5 => (any::<usize>(), prop::bool::weighted(0.1), any::<bool>())
            .prop_map(|(pick, reply_lost, two_step)| Op::Complete { pick, reply_lost, two_step }),
        1 => any::<usize>().prop_map(|pick| Op::Fail { pick }),
        1 => (0u8..16).prop_map(Op::CrashAfter),
        1 => any::<u16>().prop_map(|tear| Op::Restart { tear }),
    ]
}

/// One run of the front-end process.
struct Life {
    core: Arc<Mutex<Release>>,
    acc: Accumulator,
    in_flight: Vec<SealedSegment>,
    /// Frames of the stream consumed.
    frames: u64,
    /// Placements this run heard of (or found at its start).
    known: BTreeMap<SegmentSeq, u64>,
    /// A spool operation failed (the crash): only a restart goes on.
    dead: bool,
}

struct World {
    spool: MemSpool,
    tearing: bool,
    catalog: BTreeMap<SegmentSeq, u64>,
    acked: u64,
    life: Option<Life>,
}

/// Frames through the end of the unbroken run 0, 1, 2, … of `placed`.
fn prefix(placed: &BTreeMap<SegmentSeq, u64>) -> u64 {
    let mut frames = 0;
    let mut seq = SegmentSeq::new(0);
    while let Some(f) = placed.get(&seq) {
        frames = *f;
        seq = SegmentSeq::new(seq.get() + 1);
    }
    frames
}

fn track(frame: u64) -> (TrackAddr, Vec<u8>) {
    let len = 16 + (frame * 7 % 48) as usize;
    (
        TrackAddr {
            volume: 0,
            track: frame,
        },
        vec![(frame % 251) as u8; len],
    )
}

impl World {
    fn new(tearing: bool) -> World {
        let spool = MemSpool::new();
        let core = Arc::new(Mutex::new(Release::new(ABS)));
        let life = Life {
            acc: Accumulator::create(Arc::new(spool.clone()), core.clone(), ChannelId::new(1), 0, THRESHOLD).unwrap(),
            core,
            in_flight: Vec::new(),
            frames: 0,
            known: BTreeMap::new(),
            dead: false,
        };
        World {
            spool,
            tearing,
            catalog: BTreeMap::new(),
            acked: 0,
            life: Some(life),
        }
    }

    fn ack(&mut self, tracks: u64) {
        assert!(
            tracks >= self.acked,
            "the ack point went back from {} to {tracks}",
            self.acked
        );
        assert!(
            tracks <= prefix(&self.catalog),
            "acknowledged {tracks} frames, the catalog's prefix holds {}",
            prefix(&self.catalog)
        );
        self.acked = tracks;
    }

    /// A failed operation: only a crash of the spool is expected.
    fn failed(&mut self, what: &str, e: impl std::fmt::Display) {
        assert!(self.spool.crashed(), "{what} failed without a crash: {e}");
        if let Some(l) = self.life.as_mut() {
            l.dead = true;
        }
    }

    fn sealed(&mut self, res: anyhow::Result<Option<SealedSegment>>, frames: u64) {
        match res {
            Ok(seg) => {
                let life = self.life.as_mut().unwrap();
                life.frames = frames;
                if let Some(seg) = seg {
                    assert_eq!(seg.frames_through, frames);
                    life.in_flight.push(seg);
                }
            }
            Err(e) => self.failed("sealing", format!("{e:#}")),
        }
    }

    fn step(&mut self, op: &Op) {
        if let Op::Restart { tear } = op {
            self.restart(*tear);
            return;
        }
        let Some(life) = self.life.as_mut().filter(|l| !l.dead) else {
            return;
        };
        match op {
            Op::Track => {
                let f = life.frames + 1;
                let (addr, data) = track(f);
                let res = life.acc.append(addr, &data, None, f);
                self.sealed(res, f);
            }
            Op::Seal => {
                let f = life.frames;
                let res = life.acc.seal(f);
                self.sealed(res, f);
            }
            Op::Complete {
                pick,
                reply_lost,
                two_step,
            } => {
                if life.in_flight.is_empty() {
                    return;
                }
                let seg = life.in_flight.remove(pick % life.in_flight.len());
                // The back-end copies the sealed file: it is whole.
                assert!(
                    verify_sealed(&self.spool, ABS, &seg),
                    "segment {} to upload is damaged",
                    seg.seq
                );
                let core = life.core.clone();
                if *two_step && !*reply_lost {
                    // On tape, not yet in the catalog: nothing released or acknowledged.
                    assert_eq!(lock(&core).unwrap().on_tape(seg.seq).unwrap(), []);
                    assert_eq!(lock(&core).unwrap().acked().tracks(), prefix(&life.known));
                }
                self.catalog.insert(seg.seq, seg.frames_through);
                if *reply_lost {
                    // The upload fails on the front-end: the ABS stops.
                    life.dead = true;
                    return;
                }
                life.known.insert(seg.seq, seg.frames_through);
                let fx = if *two_step {
                    lock(&core).unwrap().in_catalog(seg.seq).unwrap()
                } else {
                    lock(&core).unwrap().placed(seg.seq).unwrap()
                };
                match execute(&self.spool, &core, fx) {
                    Ok(left) => {
                        for fx in left {
                            match fx {
                                Effect::Ack(p) => self.ack(p.tracks()),
                                other => panic!("unexpected effect of a placement: {other:?}"),
                            }
                        }
                    }
                    Err(e) => self.failed("releasing", e),
                }
            }
            Op::Fail { pick } => {
                if life.in_flight.is_empty() {
                    return;
                }
                let seg = life.in_flight.remove(pick % life.in_flight.len());
                lock(&life.core).unwrap().upload_failed(seg.seq).unwrap();
            }
            Op::CrashAfter(n) => self.spool.crash_after(u64::from(*n)),
            Op::Restart { .. } => {}
        }
    }

    fn restart(&mut self, tear: u16) {
        if self.life.is_none() {
            return;
        }
        self.life = None;
        self.spool.restart();
        self.check_deleted(None);
        let journal = self.spool.read_journal(ABS);
        if self.tearing {
            for e in &journal {
                if !self.catalog.contains_key(&e.seq) && tear & (1 << (e.seq.get() % 16)) != 0 {
                    self.spool.tear(ABS, e.seq);
                }
            }
        }
        let placed: Vec<SegmentSeq> = self.catalog.keys().copied().collect();
        let p = match plan(&journal, &placed, |e| verify_sealed(&self.spool, ABS, e)) {
            Ok(p) => p,
            Err(e) => {
                // Only torn files past which something is in the catalog.
                assert!(self.tearing, "recovery failed without damage: {e:#}");
                return;
            }
        };
        assert!(
            p.frames >= self.acked,
            "the resume point {} is before the {} frames acknowledged",
            p.frames,
            self.acked
        );
        let kept = &journal[..p.next_seq.get() as usize];
        let unplaced: BTreeSet<SegmentSeq> = kept
            .iter()
            .map(|e| e.seq)
            .filter(|s| !self.catalog.contains_key(s))
            .collect();
        if !self.tearing {
            assert!(p.dropped.is_empty(), "nothing torn, yet {:?} dropped", p.dropped);
            assert_eq!(p.next_seq.get() as usize, journal.len());
        }
        let (core, fx) = Release::resume(ABS, &p);
        let core = Arc::new(Mutex::new(core));
        let left = execute(&self.spool, &core, fx).unwrap();
        let mut in_flight = Vec::new();
        for fx in left {
            match fx {
                Effect::Ack(a) => self.ack(a.tracks()),
                Effect::Upload(e) => in_flight.push(e),
                other => panic!("unexpected effect of a resume: {other:?}"),
            }
        }
        let requeued: BTreeSet<SegmentSeq> = in_flight.iter().map(|e| e.seq).collect();
        assert_eq!(
            requeued, unplaced,
            "the resume must upload exactly the unplaced segments"
        );
        self.check_deleted(Some(p.next_seq));
        assert_eq!(
            self.spool.read_journal(ABS),
            p.kept,
            "the journal holds what the resume kept"
        );
        let known: BTreeMap<SegmentSeq, u64> = p.placed.iter().map(|s| (s.seq, s.frames_through)).collect();
        assert_eq!(lock(&core).unwrap().acked().tracks(), prefix(&known));
        self.life = Some(Life {
            acc: Accumulator::create(
                Arc::new(self.spool.clone()),
                core.clone(),
                ChannelId::new(1),
                0,
                THRESHOLD,
            )
            .unwrap(),
            core,
            in_flight,
            frames: p.frames,
            known,
            dead: false,
        });
    }

    /// Files deleted: released ones are in the catalog; discarded ones
    /// only at a resume, past its resume point.
    fn check_deleted(&self, resume_next: Option<SegmentSeq>) {
        for d in self.spool.take_deleted() {
            match d {
                Deleted::Released(_, seq) => {
                    assert!(self.catalog.contains_key(&seq), "released {seq} not in the catalog")
                }
                Deleted::Discarded(_, seq) => {
                    assert!(
                        resume_next.is_some_and(|n| seq >= n),
                        "discarded {seq} outside a resume"
                    )
                }
                Deleted::Removed(abs) => panic!("ABS {abs} removed before it finished"),
            }
        }
    }

    fn check(&self) {
        self.check_deleted(None);
        assert!(self.acked <= prefix(&self.catalog));
        if let Some(life) = self.life.as_ref().filter(|l| !l.dead) {
            assert_eq!(lock(&life.core).unwrap().acked().tracks(), prefix(&life.known));
            for seg in &life.in_flight {
                assert!(
                    self.spool.has_sealed(ABS, seg.seq),
                    "segment {} in flight is not in the spool",
                    seg.seq
                );
            }
        }
    }

    /// Recover, upload everything, finish: all sent is in the catalog.
    fn finish(&mut self) {
        self.restart(0);
        let Some(life) = self.life.as_mut() else {
            return;
        };
        let f = life.frames;
        let res = life.acc.seal(f);
        self.sealed(res, f);
        while !self.life.as_ref().unwrap().in_flight.is_empty() {
            self.step(&Op::Complete {
                pick: 0,
                reply_lost: false,
                two_step: false,
            });
            self.check();
        }
        let life = self.life.as_ref().unwrap();
        assert_eq!(self.acked, life.frames, "every frame sent is acknowledged");
        assert_eq!(prefix(&self.catalog), life.frames);
        let fx = lock(&life.core).unwrap().finish().unwrap();
        assert!(execute(&self.spool, &life.core, fx).unwrap().is_empty());
        assert_eq!(self.spool.take_deleted(), [Deleted::Removed(ABS)]);
        assert!(self.spool.names().is_empty(), "left: {:?}", self.spool.names());
        assert!(self.spool.list().is_empty());
    }
}

fn run(ops: &[Op], tearing: bool) {
    let mut w = World::new(tearing);
    for op in ops {
        w.step(op);
        w.check();
    }
    w.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Crashes drop whatever was not synced; recovery never loses an
    /// acknowledged track and resumes exactly the unplaced segments.
    #[test]
    fn crashes_never_lose_an_acknowledged_track(ops in proptest::collection::vec(op(), 0..120)) {
        run(&ops, false);
    }

    /// A machine crash may also tear sealed files not fsynced: recovery
    /// cuts at the first torn one, or refuses to resume when the catalog
    /// holds a segment past it; the catalog still holds every
    /// acknowledged track.
    #[test]
    fn torn_sealed_files_never_lose_an_acknowledged_track(ops in proptest::collection::vec(op(), 0..120)) {
        run(&ops, true);
    }
}

#[test]
fn a_crash_in_the_middle_of_each_seal_step_recovers() {
    // Crash at every operation of the first seal and placement in turn.
    for n in 0..40 {
        let mut ops = vec![Op::CrashAfter(n)];
        ops.extend(std::iter::repeat_n(Op::Track, 12));
        ops.push(Op::Complete {
            pick: 0,
            reply_lost: false,
            two_step: true,
        });
        ops.push(Op::Restart { tear: 0 });
        ops.extend(std::iter::repeat_n(Op::Track, 5));
        run(&ops, false);
    }
}
