//! Property tests of the [`WriterCore`] against a simple model: random
//! interleavings of segments and metadata queued (some asked again), writes
//! ending (placed, failed, abandoned, refused by a full tape whose capacity
//! is random), EOV finishing or failing, the station naming the next tape
//! or refusing, mounts failing, the station mounting a tape, and shutdown.
//! A toy drive (tapes as file counters) answers the core's effects; the
//! model checks, at every step:
//!
//! - one I/O operation at a time, and none after shutdown;
//! - every job is answered exactly once; `Ok` exactly for the jobs whose
//!   write the drive placed, with that placement (never before it was
//!   written); a job placed is never written again;
//! - each failure has its cause: the write failed, was abandoned, did not
//!   fit an empty tape, a later request replaced it, the drive stopped;
//! - a segment the tape refused is written next, on the tape the station
//!   named (the same media set), before anything else;
//! - no segment is written while a lower segment of its ABS waits;
//! - when the tape cannot be continued (EOV failed, refusal, mount failed)
//!   exactly the job at the end of the tape and every waiting job fail,
//!   with the reason, and so does new work until the station mounts a tape;
//! - at the end nothing is left waiting.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proto::wire::NewTape;

use super::core::*;
use crate::backend::schedule::{Policy, ReadySegment};

/// Where the toy drive placed a data file: (tape, file number).
type P = (String, u32);

#[derive(Debug, Clone)]
enum Op {
    Segment {
        abs: u64,
        seq: u32,
    },
    Metadata {
        abs: u64,
    },
    /// The operation under way ends; `choice` picks how.
    Complete(u8),
    StationMounted,
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0..3u64, 0..5u32).prop_map(|(abs, seq)| Op::Segment { abs, seq }),
        3 => (0..3u64).prop_map(|abs| Op::Metadata { abs }),
        30 => any::<u8>().prop_map(Op::Complete),
        2 => Just(Op::StationMounted),
        1 => Just(Op::Shutdown),
    ]
}

#[derive(Debug, Default)]
struct JobModel {
    work: Option<Work>,
    /// Where the toy drive placed it.
    placed: Option<P>,
    /// What its last write ended with (a short name).
    last: Option<&'static str>,
    replied: Option<Result<P, JobFailure>>,
    /// Moved to this tape after a full refusal.
    moved_to: Option<String>,
}

#[derive(Debug, Clone)]
struct Tape {
    label: String,
    room: u32,
    files: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Outstanding {
    Write(u64),
    Finish,
    Ask,
    Mount(String),
}

struct Model {
    core: WriterCore,
    jobs: BTreeMap<u64, JobModel>,
    next_id: u64,
    outstanding: Option<Outstanding>,
    tape: Option<Tape>,
    /// The tape last finished with EOV labels.
    finished: Option<String>,
    /// The tape the station named, until mounted.
    named: Option<Tape>,
    tapes: u32,
    capacities: Vec<u32>,
    /// The job a full tape refused, and the tape the station named for it.
    eot: Option<(u64, Option<String>)>,
    failed: Option<String>,
    stopping: bool,
}

/// What identifies a job's work (a segment asked again keeps the queue
/// entry of the request it replaces).
fn key(w: Work) -> (bool, u64, u32) {
    match w {
        Work::Segment(r) => (true, r.abs_id, r.seq),
        Work::Metadata { abs_id } => (false, abs_id, 0),
    }
}

fn fail(reason: String) -> TestCaseError {
    TestCaseError::fail(reason)
}

impl Model {
    fn new(policy: Policy, capacities: Vec<u32>) -> Model {
        let mut m = Model {
            core: WriterCore::new(policy),
            jobs: BTreeMap::new(),
            next_id: 0,
            outstanding: None,
            tape: None,
            finished: None,
            named: None,
            tapes: 0,
            capacities,
            eot: None,
            failed: None,
            stopping: false,
        };
        m.tape = Some(m.fresh_tape());
        m
    }

    fn fresh_tape(&mut self) -> Tape {
        let room = self.capacities[self.tapes as usize % self.capacities.len()];
        self.tapes += 1;
        Tape {
            label: format!("T{}", self.tapes),
            room,
            files: 0,
        }
    }

    /// Jobs not answered yet.
    fn unanswered(&self) -> Vec<u64> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.replied.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    fn submit(&mut self, work: Work) -> Result<(), TestCaseError> {
        let id = self.next_id;
        self.next_id += 1;
        self.jobs.insert(
            id,
            JobModel {
                work: Some(work),
                ..JobModel::default()
            },
        );
        let ev = match work {
            Work::Segment(ready) => Event::Segment { id: JobId(id), ready },
            Work::Metadata { abs_id } => Event::Metadata { id: JobId(id), abs_id },
        };
        let failed = self.failed.clone();
        self.step(ev)?;
        let replied = &self.jobs[&id].replied;
        match (&failed, replied) {
            (Some(r), Some(Err(JobFailure::MediaSet { reason, .. }))) if reason == r => Ok(()),
            (Some(_), _) if !self.stopping => Err(fail(format!("job {id} queued while failed: {replied:?}"))),
            _ => Ok(()),
        }
    }

    /// End the operation under way as `choice` says.
    fn complete(&mut self, choice: u8) -> Result<(), TestCaseError> {
        let Some(op) = self.outstanding.take() else {
            return Ok(());
        };
        let ev = match op {
            Outstanding::Write(id) => {
                let job = &self.jobs[&id];
                let (outcome, last) = match (&mut self.tape, job.work) {
                    (_, Some(Work::Segment(_))) if choice.is_multiple_of(16) => (WriteOutcome::Abandoned, "abandoned"),
                    (None, _) => (WriteOutcome::Failed("no tape mounted".into()), "failed"),
                    (Some(_), _) if choice % 16 == 1 => (WriteOutcome::Failed("bad CRC".into()), "failed"),
                    (Some(t), _) if t.room == 0 => {
                        let empty_tape = t.files == 0;
                        let reason = format!("tape {} is full", t.label);
                        let last = if empty_tape { "empty-full" } else { "full" };
                        (WriteOutcome::Full { empty_tape, reason }, last)
                    }
                    (Some(t), _) => {
                        t.room -= 1;
                        t.files += 1;
                        (WriteOutcome::Placed((t.label.clone(), t.files)), "placed")
                    }
                };
                let job = self.jobs.get_mut(&id).ok_or_else(|| fail(format!("no job {id}")))?;
                job.last = Some(last);
                if let WriteOutcome::Placed(p) = &outcome {
                    if job.placed.is_some() {
                        return Err(fail(format!("job {id} written twice")));
                    }
                    job.placed = Some(p.clone());
                }
                if last == "full" && job.moved_to.is_none() && !self.stopping {
                    self.eot = Some((id, None));
                }
                Event::Written { id: JobId(id), outcome }
            }
            Outstanding::Finish => {
                let tape = self.tape.take().ok_or_else(|| fail("EOV without a tape".into()))?;
                self.finished = Some(tape.label.clone());
                if choice.is_multiple_of(12) {
                    Event::TapeFinished(Err(format!("finishing {}: I/O error", tape.label)))
                } else {
                    let (label, files, bytes) = (tape.label, tape.files, u64::from(tape.files) * 100);
                    Event::TapeFinished(Ok(FullTape { label, files, bytes }))
                }
            }
            Outstanding::Ask if choice.is_multiple_of(4) => Event::Answered(Err(format!("refusal {choice}"))),
            Outstanding::Ask => {
                let next = self.fresh_tape();
                let label = next.label.clone();
                self.named = Some(next);
                let new = NewTape {
                    pool: "p".into(),
                    media_set: proto::domain::MediaSetId::new(1),
                    sequence: self.tapes,
                    block_size: 4096,
                };
                Event::Answered(Ok(NextTape { label, new }))
            }
            Outstanding::Mount(label) if choice.is_multiple_of(8) => {
                self.named = None;
                Event::Mounted(Err(format!("mounting {label}: no such slot")))
            }
            Outstanding::Mount(_) => {
                self.tape = self.named.take();
                Event::Mounted(Ok(()))
            }
        };
        let failure = match &ev {
            Event::TapeFinished(Err(r)) | Event::Answered(Err(r)) | Event::Mounted(Err(r)) => Some(r.clone()),
            _ => None,
        };
        let before = self.unanswered();
        if let Some(reason) = &failure {
            self.failed = Some(reason.clone());
            self.eot = None;
        }
        self.step(ev)?;
        if let Some(reason) = failure {
            // Exactly the job at the end of the tape and all waiting fail.
            for id in before {
                match &self.jobs[&id].replied {
                    Some(Err(JobFailure::MediaSet { reason: r, .. })) if *r == reason => {}
                    Some(Err(JobFailure::Stopped { .. })) if self.stopping => {}
                    other => return Err(fail(format!("job {id} after a failed switch ({reason}): {other:?}"))),
                }
            }
        }
        Ok(())
    }

    /// Apply an event to the core and check every effect.
    fn step(&mut self, ev: Event<P>) -> Result<(), TestCaseError> {
        let effects = self.core.apply(ev).map_err(|e| fail(e.to_string()))?;
        for e in effects {
            self.check(e)?;
        }
        match (&self.failed, self.core.state()) {
            (Some(r), State::Failed { reason }) if r == reason => {}
            (Some(_), State::Stopped) if self.stopping => {}
            (Some(r), s) => return Err(fail(format!("expected Failed({r}), found {s:?}"))),
            (None, State::Failed { reason }) => return Err(fail(format!("failed unexpectedly: {reason}"))),
            _ => {}
        }
        Ok(())
    }

    fn start(&mut self, op: Outstanding) -> Result<(), TestCaseError> {
        if self.stopping {
            return Err(fail(format!("{op:?} started after shutdown")));
        }
        if let Some(o) = &self.outstanding {
            return Err(fail(format!("{op:?} started while {o:?} runs")));
        }
        self.outstanding = Some(op);
        Ok(())
    }

    fn check(&mut self, e: Effect<P>) -> Result<(), TestCaseError> {
        match e {
            Effect::Write { id, work } => {
                let id = id.0;
                let job = self
                    .jobs
                    .get(&id)
                    .ok_or_else(|| fail(format!("write of unknown job {id}")))?;
                if job.work.map(key) != Some(key(work)) || job.replied.is_some() || job.placed.is_some() {
                    return Err(fail(format!("write of job {id} {work} out of place: {job:?}")));
                }
                match &self.eot {
                    Some((j, Some(next))) if *j == id => {
                        let t = self.tape.as_ref().map(|t| t.label.clone());
                        if t.as_ref() != Some(next) {
                            return Err(fail(format!("job {id} rewritten on {t:?}, not {next}")));
                        }
                        let next = next.clone();
                        if let Some(j) = self.jobs.get_mut(&id) {
                            j.moved_to = Some(next);
                        }
                        self.eot = None;
                    }
                    Some(eot) => return Err(fail(format!("write of job {id} at the end of a tape: {eot:?}"))),
                    None => self.check_order(id, work)?,
                }
                self.start(Outstanding::Write(id))
            }
            Effect::FinishTape { .. } => match self.eot {
                Some((_, None)) => self.start(Outstanding::Finish),
                _ => Err(fail("EOV without a refused job".into())),
            },
            Effect::AskNextTape(full) => {
                if self.eot.is_none() || self.tape.is_some() || self.finished.as_ref() != Some(&full.label) {
                    return Err(fail(format!("asked for the tape after {full:?} out of place")));
                }
                self.start(Outstanding::Ask)
            }
            Effect::Mount { next, full } => {
                if Some(&full) != self.finished.as_ref() || self.named.as_ref().map(|t| &t.label) != Some(&next.label) {
                    return Err(fail(format!("mount of {} is not the station's tape", next.label)));
                }
                let Some((_, named)) = &mut self.eot else {
                    return Err(fail(format!("mount of {} outside an end of tape", next.label)));
                };
                *named = Some(next.label.clone());
                self.start(Outstanding::Mount(next.label))
            }
            Effect::Reply { id, result } => self.check_reply(id.0, result),
        }
    }

    /// No lower segment of the same ABS waits.
    fn check_order(&self, id: u64, work: Work) -> Result<(), TestCaseError> {
        let Work::Segment(r) = work else { return Ok(()) };
        for (other, j) in &self.jobs {
            if let (Some(Work::Segment(o)), None) = (j.work, &j.replied) {
                if *other != id && o.abs_id == r.abs_id && o.seq < r.seq {
                    return Err(fail(format!(
                        "{work} written while {} (job {other}) waits",
                        Work::Segment(o)
                    )));
                }
            }
        }
        Ok(())
    }

    fn check_reply(&mut self, id: u64, result: Result<P, JobFailure>) -> Result<(), TestCaseError> {
        let later_same_key = |w: Option<Work>| {
            self.jobs
                .range(id + 1..)
                .any(|(_, j)| matches!((j.work, w), (Some(Work::Segment(a)), Some(Work::Segment(b))) if (a.abs_id, a.seq) == (b.abs_id, b.seq)))
        };
        let job = self
            .jobs
            .get(&id)
            .ok_or_else(|| fail(format!("reply to unknown job {id}")))?;
        if job.replied.is_some() {
            return Err(fail(format!("job {id} answered twice")));
        }
        if self.outstanding == Some(Outstanding::Write(id)) {
            return Err(fail(format!("job {id} answered while being written")));
        }
        let justified = match &result {
            Ok(p) => job.placed.as_ref() == Some(p),
            Err(f) => {
                job.placed.is_none()
                    && match f {
                        JobFailure::Replaced { .. } => later_same_key(job.work),
                        JobFailure::Abandoned { .. } => job.last == Some("abandoned"),
                        JobFailure::Write { .. } => job.last == Some("failed"),
                        JobFailure::DoesNotFit { .. } => job.last == Some("empty-full"),
                        JobFailure::FullTwice { .. } => job.last == Some("full") && job.moved_to.is_some(),
                        JobFailure::MediaSet { reason, .. } => self.failed.as_ref() == Some(reason),
                        JobFailure::Stopped { .. } => self.stopping,
                        JobFailure::Queue { .. } => false,
                    }
            }
        };
        if !justified {
            return Err(fail(format!("job {id} answered {result:?} after {job:?}")));
        }
        if let Some(j) = self.jobs.get_mut(&id) {
            j.replied = Some(result);
        }
        Ok(())
    }
}

fn run(policy: Policy, capacities: Vec<u32>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut m = Model::new(policy, capacities);
    for op in ops {
        match op {
            Op::Segment { abs, seq } => {
                let ready = ReadySegment {
                    channel_id: abs % 2,
                    abs_id: abs,
                    seq,
                    bytes: 10,
                    ready_at: m.next_id,
                };
                m.submit(Work::Segment(ready))?
            }
            Op::Metadata { abs } => m.submit(Work::Metadata { abs_id: abs })?,
            Op::Complete(choice) => m.complete(choice)?,
            Op::StationMounted if m.outstanding.is_none() => {
                m.tape = Some(m.fresh_tape());
                m.failed = None;
                let label = m.tape.as_ref().map(|t| t.label.clone()).unwrap_or_default();
                m.step(Event::StationMounted { label })?;
            }
            Op::StationMounted => {}
            Op::Shutdown => {
                m.stopping = true;
                m.step(Event::Shutdown)?;
            }
        }
    }
    // Let the drive finish: every operation ends well from here on.
    let mut rounds = 0;
    while m.outstanding.is_some() {
        rounds += 1;
        prop_assert!(rounds < 10_000, "the writer never settles");
        m.complete(7)?;
    }
    let left = m.unanswered();
    prop_assert!(left.is_empty(), "jobs never answered: {left:?}");
    prop_assert_eq!(m.core.waiting(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_writer_places_every_job_once_and_fails_only_with_a_cause(
        lifo in any::<bool>(),
        capacities in proptest::collection::vec(0..5u32, 1..5),
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let policy = if lifo { Policy::Lifo } else { Policy::Fifo };
        run(policy, capacities, ops)?;
    }
}
