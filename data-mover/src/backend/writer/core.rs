//! The drive writer's decisions as a pure state machine (after quinn-proto
//! under quinn): which queued work the drive writes next, and what happens
//! at the end of a tape. No I/O, no async, no locks, no clocks: the shell
//! ([`super::shell`]) performs each [`Effect`] and feeds back what came of
//! it as an [`Event`]; every step is [`WriterCore::apply`].
//!
//! ```text
//!                 work queued
//!      ┌──────► Idle ───────────► Writing{job} ── placed / failed / abandoned /
//!      │         ▲                  │      ▲       does not fit even an empty tape
//!      │         └──────────────────┼──────┼──────────────┘ (reply; next work)
//!      │                  full tape │      │ mounted: the same job again,
//!      │                 (not empty)▼      │ on the next tape
//!      │                  Finishing{job}   │
//!      │                 EOV written│      │
//!      │                            ▼      │
//!      │          EndOfTape{full, job} ──► Mounting{next, job}
//!      │                    │  station     │
//!      │  station mounts    │  names next  │ mount failed
//!      │  a tape            ▼              │
//!      └───────────── Failed{reason} ◄─────┘  (also: EOV failed, station refused)
//!
//!   Shutdown: queued work fails; the operation under way ends; then Stopped.
//! ```
//!
//! Each of `Writing`, `Finishing`, `EndOfTape` and `Mounting` has exactly
//! one I/O effect outstanding, so the drive does one thing at a time. What
//! holds (see the tests):
//!
//! - a job is answered exactly once, and `Ok` only with what a write of
//!   that job reported placed (written, verified and synced);
//! - a job refused by a full tape stays in flight (no other segment of its
//!   ABS overtakes it) and is written again on the tape the station names,
//!   and on no other; between the refusal and that write the drive writes
//!   nothing else;
//! - a finished tape that cannot be continued (EOV failed, the station
//!   refused, the next tape did not mount) fails the job at the end of the
//!   tape and every waiting job with the reason, and so every job queued
//!   until the station mounts a tape for writing again.

use std::collections::{BTreeMap, HashMap, VecDeque};

use proto::wire::NewTape;
use thiserror::Error;

use crate::backend::schedule::{Policy, ReadySegment, ScheduleError, SegmentQueue};

/// A job, numbered by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// What a job writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A sealed segment.
    Segment(ReadySegment),
    /// The metadata of an ABS.
    Metadata { abs_id: u64 },
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Segment(r) => write!(f, "segment {} of ABS {}", r.seq, r.abs_id),
            Work::Metadata { abs_id } => write!(f, "metadata of ABS {abs_id}"),
        }
    }
}

/// A tape finished with EOV labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullTape {
    pub label: String,
    /// Data files on it.
    pub files: u32,
    /// Data bytes on it.
    pub bytes: u64,
}

/// The tape the station says continues the media set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextTape {
    pub label: String,
    pub new: NewTape,
}

/// What came of writing a job's data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome<P> {
    /// Written, verified and synced, at `P`.
    Placed(P),
    /// The tape refused it at its early-warning point: nothing written.
    Full { empty_tape: bool, reason: String },
    /// Not written: a bad segment, a spool or drive error.
    Failed(String),
    /// Not begun: its front-end went away.
    Abandoned,
}

/// What the shell tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<P> {
    /// A caller queued a segment.
    Segment { id: JobId, ready: ReadySegment },
    /// A caller queued ABS metadata (written before any queued segment).
    Metadata { id: JobId, abs_id: u64 },
    /// The write asked by [`Effect::Write`] ended.
    Written { id: JobId, outcome: WriteOutcome<P> },
    /// [`Effect::FinishTape`] ended: the tape finished with EOV labels and
    /// unloaded, or why not.
    TapeFinished(Result<FullTape, String>),
    /// The station answered [`Effect::AskNextTape`]: the next tape, or why
    /// there is none.
    Answered(Result<NextTape, String>),
    /// [`Effect::Mount`] ended.
    Mounted(Result<(), String>),
    /// The station had a tape mounted for writing in the drive.
    StationMounted { label: String },
    /// No caller is left: stop.
    Shutdown,
}

impl<P> Event<P> {
    fn name(&self) -> String {
        match self {
            Event::Segment { id, .. } => format!("Segment({})", id.0),
            Event::Metadata { id, .. } => format!("Metadata({})", id.0),
            Event::Written { id, .. } => format!("Written({})", id.0),
            Event::TapeFinished(_) => "TapeFinished".into(),
            Event::Answered(_) => "Answered".into(),
            Event::Mounted(_) => "Mounted".into(),
            Event::StationMounted { .. } => "StationMounted".into(),
            Event::Shutdown => "Shutdown".into(),
        }
    }
}

/// What the core asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<P> {
    /// Write the job's data file to the mounted tape; answer
    /// [`Event::Written`].
    Write { id: JobId, work: Work },
    /// Finish the full tape with EOV labels and unload it; answer
    /// [`Event::TapeFinished`].
    FinishTape { reason: String },
    /// Ask the station which tape continues the media set of `full`;
    /// answer [`Event::Answered`].
    AskNextTape(FullTape),
    /// Mount `next` for writing (it continues `full`); answer
    /// [`Event::Mounted`].
    Mount { next: NextTape, full: String },
    /// Answer the caller of a job (the job is over).
    Reply { id: JobId, result: Result<P, JobFailure> },
}

/// Why a job was not placed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JobFailure {
    #[error("{work} was asked again; the new request writes it")]
    Replaced { work: Work },
    #[error("{work} was not written: its front-end went away")]
    Abandoned { work: Work },
    #[error("{work}: {reason}")]
    Write { work: Work, reason: String },
    #[error("{work}: {reason}; it does not fit even on an empty tape")]
    DoesNotFit { work: Work, reason: String },
    #[error("{work}: {reason}; the tape was full again right after the switch to {tape}")]
    FullTwice { work: Work, tape: String, reason: String },
    /// The media set cannot continue in this drive.
    #[error("{work}: {reason}")]
    MediaSet { work: Work, reason: String },
    #[error("{work} was not queued: {source}")]
    Queue { work: Work, source: ScheduleError },
    #[error("{work}: the drive writer stopped")]
    Stopped { work: Work },
}

/// An event that does not fit the state (a bug of the shell).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("drive writer in state {state}: expected {expected}, found event {found}")]
pub struct StepError {
    pub state: &'static str,
    pub expected: &'static str,
    pub found: String,
}

/// A job in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub work: Work,
    /// The tape it moved to after a full refusal.
    pub moved_to: Option<String>,
}

/// Where the drive writer is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum State {
    /// Nothing to write.
    #[default]
    Idle,
    /// Writing `job`.
    Writing { job: Job },
    /// The tape refused `job`: finishing it with EOV labels.
    Finishing { job: Job },
    /// `full` is finished; waiting for the station's next tape.
    EndOfTape { full: FullTape, job: Job },
    /// Mounting `next`, which continues `full`.
    Mounting { next: String, full: String, job: Job },
    /// The media set could not continue; jobs fail with `reason` until the
    /// station mounts a tape.
    Failed { reason: String },
    /// Shut down.
    Stopped,
}

impl State {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Writing { .. } => "Writing",
            State::Finishing { .. } => "Finishing",
            State::EndOfTape { .. } => "EndOfTape",
            State::Mounting { .. } => "Mounting",
            State::Failed { .. } => "Failed",
            State::Stopped => "Stopped",
        }
    }

    /// The job in flight, if any.
    pub fn job(&self) -> Option<&Job> {
        match self {
            State::Writing { job }
            | State::Finishing { job }
            | State::EndOfTape { job, .. }
            | State::Mounting { job, .. } => Some(job),
            State::Idle | State::Failed { .. } | State::Stopped => None,
        }
    }
}

/// The drive writer's queue and state.
#[derive(Debug, Clone)]
pub struct WriterCore {
    policy: Policy,
    state: State,
    queue: SegmentQueue,
    /// The job of each queued segment.
    segments: HashMap<(u64, u32), JobId>,
    /// A segment asked again while in flight: queued once that write ends.
    deferred: BTreeMap<(u64, u32), (JobId, ReadySegment)>,
    metadata: VecDeque<(JobId, u64)>,
    stopping: bool,
}

impl WriterCore {
    pub fn new(policy: Policy) -> WriterCore {
        WriterCore {
            policy,
            state: State::Idle,
            queue: SegmentQueue::new(),
            segments: HashMap::new(),
            deferred: BTreeMap::new(),
            metadata: VecDeque::new(),
            stopping: false,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Segments queued, not counting the one in flight.
    pub fn queued_segments(&self) -> usize {
        self.queue.len()
    }

    /// Jobs waiting (queued or deferred), not counting the one in flight.
    pub fn waiting(&self) -> usize {
        self.segments.len() + self.deferred.len() + self.metadata.len()
    }

    /// One step: take `event`, return what to do.
    pub fn apply<P>(&mut self, event: Event<P>) -> Result<Vec<Effect<P>>, StepError> {
        let mut out = Vec::new();
        match event {
            Event::Segment { id, ready } => self.submit_segment(id, ready, &mut out),
            Event::Metadata { id, abs_id } if self.stopping => out.push(Effect::Reply {
                id,
                result: Err(JobFailure::Stopped {
                    work: Work::Metadata { abs_id },
                }),
            }),
            Event::Metadata { id, abs_id } => self.metadata.push_back((id, abs_id)),
            Event::Written { id, outcome } => self.written(id, outcome, &mut out)?,
            Event::TapeFinished(r) => {
                let job = match std::mem::take(&mut self.state) {
                    State::Finishing { job } => job,
                    other => return Err(self.restore(other, "Finishing", Event::<P>::TapeFinished(r).name())),
                };
                match r {
                    Ok(_) if self.stopping => self.stop_job(job, &mut out),
                    Ok(full) => {
                        out.push(Effect::AskNextTape(full.clone()));
                        self.state = State::EndOfTape { full, job };
                    }
                    Err(reason) => self.fail_media_set(job, reason, &mut out),
                }
            }
            Event::Answered(r) => {
                let (full, job) = match std::mem::take(&mut self.state) {
                    State::EndOfTape { full, job } => (full, job),
                    other => return Err(self.restore(other, "EndOfTape", Event::<P>::Answered(r).name())),
                };
                match r {
                    Ok(_) if self.stopping => self.stop_job(job, &mut out),
                    Ok(next) => {
                        out.push(Effect::Mount {
                            next: next.clone(),
                            full: full.label.clone(),
                        });
                        self.state = State::Mounting {
                            next: next.label,
                            full: full.label,
                            job,
                        };
                    }
                    Err(reason) => self.fail_media_set(job, reason, &mut out),
                }
            }
            Event::Mounted(r) => {
                let (next, mut job) = match std::mem::take(&mut self.state) {
                    State::Mounting { next, job, .. } => (next, job),
                    other => return Err(self.restore(other, "Mounting", Event::<P>::Mounted(r).name())),
                };
                match r {
                    Ok(()) if self.stopping => self.stop_job(job, &mut out),
                    Ok(()) => {
                        job.moved_to = Some(next);
                        out.push(Effect::Write {
                            id: job.id,
                            work: job.work,
                        });
                        self.state = State::Writing { job };
                    }
                    Err(reason) => self.fail_media_set(job, reason, &mut out),
                }
            }
            Event::StationMounted { .. } => {
                if matches!(self.state, State::Failed { .. }) {
                    self.state = State::Idle;
                }
            }
            Event::Shutdown => {
                self.stopping = true;
                self.fail_waiting(&stopped, &mut out);
            }
        }
        self.settle(&mut out);
        Ok(out)
    }

    fn submit_segment<P>(&mut self, id: JobId, ready: ReadySegment, out: &mut Vec<Effect<P>>) {
        let key = (ready.abs_id, ready.seq);
        let work = Work::Segment(ready);
        if self.stopping {
            out.push(reply_err(id, JobFailure::Stopped { work }));
        } else if let Some(old) = self.segments.get_mut(&key) {
            // Queued, not begun: the new request takes its place.
            let old = std::mem::replace(old, id);
            out.push(reply_err(old, JobFailure::Replaced { work }));
        } else if self.in_flight_key() == Some(key) {
            // Being written: written again once that write ends.
            if let Some((old, _)) = self.deferred.insert(key, (id, ready)) {
                out.push(reply_err(old, JobFailure::Replaced { work }));
            }
        } else {
            self.push(id, ready, out);
        }
    }

    fn push<P>(&mut self, id: JobId, ready: ReadySegment, out: &mut Vec<Effect<P>>) {
        match self.queue.push(ready) {
            Ok(()) => {
                self.segments.insert((ready.abs_id, ready.seq), id);
            }
            Err(source) => out.push(reply_err(
                id,
                JobFailure::Queue {
                    work: Work::Segment(ready),
                    source,
                },
            )),
        }
    }

    fn in_flight_key(&self) -> Option<(u64, u32)> {
        match self.state.job()?.work {
            Work::Segment(r) => Some((r.abs_id, r.seq)),
            Work::Metadata { .. } => None,
        }
    }

    fn written<P>(&mut self, id: JobId, outcome: WriteOutcome<P>, out: &mut Vec<Effect<P>>) -> Result<(), StepError> {
        let found = format!("Written({})", id.0);
        let job = match std::mem::take(&mut self.state) {
            State::Writing { job } if job.id == id => job,
            other => return Err(self.restore(other, "Written for the job being written", found)),
        };
        let work = job.work;
        match outcome {
            WriteOutcome::Placed(p) => self.end(job, Ok(p), out),
            WriteOutcome::Abandoned => self.end(job, Err(JobFailure::Abandoned { work }), out),
            WriteOutcome::Failed(reason) => self.end(job, Err(JobFailure::Write { work, reason }), out),
            WriteOutcome::Full {
                empty_tape: true,
                reason,
            } => self.end(job, Err(JobFailure::DoesNotFit { work, reason }), out),
            WriteOutcome::Full {
                empty_tape: false,
                reason,
            } => match job.moved_to.clone() {
                Some(tape) => self.end(job, Err(JobFailure::FullTwice { work, tape, reason }), out),
                None if self.stopping => self.end(job, Err(stopped(work)), out),
                None => {
                    out.push(Effect::FinishTape { reason });
                    self.state = State::Finishing { job };
                }
            },
        }
        Ok(())
    }

    /// Shutting down: the job in flight is not carried on to another tape.
    fn stop_job<P>(&mut self, job: Job, out: &mut Vec<Effect<P>>) {
        let work = job.work;
        self.end(job, Err(stopped(work)), out);
    }

    /// Put `state` back and describe the misfit.
    fn restore(&mut self, state: State, expected: &'static str, found: String) -> StepError {
        let name = state.name();
        self.state = state;
        StepError {
            state: name,
            expected,
            found,
        }
    }

    /// The job in flight is over: answer it and release its place.
    fn end<P>(&mut self, job: Job, result: Result<P, JobFailure>, out: &mut Vec<Effect<P>>) {
        self.state = State::Idle;
        out.push(Effect::Reply { id: job.id, result });
        if let Work::Segment(r) = job.work {
            let key = (r.abs_id, r.seq);
            let _ = self.queue.finish(r.abs_id, r.seq);
            if let Some((id, ready)) = self.deferred.remove(&key) {
                self.push(id, ready, out);
            }
        }
    }

    /// The tape cannot be continued: the job at its end fails, and so does
    /// everything waiting (in [`Self::settle`]).
    fn fail_media_set<P>(&mut self, job: Job, reason: String, out: &mut Vec<Effect<P>>) {
        let failure = JobFailure::MediaSet {
            work: job.work,
            reason: reason.clone(),
        };
        self.end(job, Err(failure), out);
        self.state = State::Failed { reason };
    }

    /// After each step: start the next work, or fail what waits.
    fn settle<P>(&mut self, out: &mut Vec<Effect<P>>) {
        match &self.state {
            State::Idle | State::Failed { .. } | State::Stopped if self.stopping => {
                self.fail_waiting(&stopped, out);
                self.state = State::Stopped;
            }
            State::Failed { reason } => {
                let reason = reason.clone();
                self.fail_waiting(
                    &|work| JobFailure::MediaSet {
                        work,
                        reason: reason.clone(),
                    },
                    out,
                );
            }
            State::Idle => {
                if let Some(job) = self.pop() {
                    out.push(Effect::Write {
                        id: job.id,
                        work: job.work,
                    });
                    self.state = State::Writing { job };
                }
            }
            _ => {}
        }
    }

    /// The next job: metadata first, then the segment the policy picks.
    fn pop(&mut self) -> Option<Job> {
        let job = |id, work| Job {
            id,
            work,
            moved_to: None,
        };
        if let Some((id, abs_id)) = self.metadata.pop_front() {
            return Some(job(id, Work::Metadata { abs_id }));
        }
        while let Some(r) = self.queue.pop_next(self.policy) {
            match self.segments.remove(&(r.abs_id, r.seq)) {
                Some(id) => return Some(job(id, Work::Segment(r))),
                None => {
                    let _ = self.queue.finish(r.abs_id, r.seq);
                }
            }
        }
        None
    }

    /// Answer every waiting job (in the order it would have been written).
    fn fail_waiting<P>(&mut self, why: &dyn Fn(Work) -> JobFailure, out: &mut Vec<Effect<P>>) {
        for (id, ready) in std::mem::take(&mut self.deferred).into_values() {
            out.push(reply_err(id, why(Work::Segment(ready))));
        }
        while let Some(job) = self.pop() {
            if let Work::Segment(r) = job.work {
                let _ = self.queue.finish(r.abs_id, r.seq);
            }
            out.push(reply_err(job.id, why(job.work)));
        }
    }
}

fn reply_err<P>(id: JobId, failure: JobFailure) -> Effect<P> {
    Effect::Reply {
        id,
        result: Err(failure),
    }
}

fn stopped(work: Work) -> JobFailure {
    JobFailure::Stopped { work }
}
