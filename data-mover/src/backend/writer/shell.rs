//! The drive writer's shell: one tokio task per drive that owns the
//! [`WriterCore`], takes work from the [`DriveWriter`](super::DriveWriter)
//! handles over a channel, and performs the core's effects — tape I/O on a
//! blocking thread (`spawn_blocking`: copy a segment from the spool, write
//! metadata, finish a full tape with EOV labels, mount the next tape), the
//! question to the station at the end of a tape as an ordinary async
//! request, the answers to callers over oneshot channels. What comes of
//! each effect goes back to the core as an event. Nothing here decides, and
//! nothing waits on the station while holding a thread.
//!
//! ```text
//!   callers ──Command──► shell task ──Event──► WriterCore
//!                          ▲    │ ◄──Effect───┘
//!                          │    ├─ Write / FinishTape / Mount ─► spawn_blocking(Drive)
//!                          │    ├─ AskNextTape ─► station request (async)
//!                          │    └─ Reply ─► the caller's oneshot
//!                          └── the operation's outcome, as the next event
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use proto::tape::metadata::AbsMetadata;
use proto::wire::{StationReply, StationRequest};
use thiserror::Error;
use tokio::sync::mpsc;
use transport::link::StationLink;

use super::core::{Effect, Event, FullTape, JobId, NextTape, State, Work, WriteOutcome, WriterCore};
use super::{Placed, Reply, SegmentSource};
use crate::backend::drive::{Drive, Landed};
use crate::backend::schedule::{Policy, ReadySegment};

/// A future the shell awaits.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Where the shell asks which tape continues a media set: the control
/// station (a fake in tests). An `Err` is a failed request (no answer).
pub trait AskStation: Send + Sync + 'static {
    fn ask(&self, req: StationRequest) -> BoxFuture<Result<StationReply, String>>;
}

impl AskStation for StationLink {
    fn ask(&self, req: StationRequest) -> BoxFuture<Result<StationReply, String>> {
        let link = self.clone();
        Box::pin(async move {
            link.request(&req)
                .await
                .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
        })
    }
}

/// The station's answer to a full tape was neither a tape nor a refusal.
#[derive(Debug, Error)]
#[error("the station's answer to tape {tape} being full in drive {drive}: expected NextTape or Error, found {found}")]
pub struct AnswerError {
    pub drive: String,
    pub tape: String,
    pub found: String,
}

/// What callers send the shell.
pub(super) enum Command {
    Segment {
        channel_id: u64,
        abs_id: u64,
        seq: u32,
        source: SegmentSource,
        reply: Reply,
    },
    Metadata {
        // Boxed: metadata with its management record is large.
        meta: Box<AbsMetadata>,
        reply: Reply,
    },
    /// The station mounted a tape for writing in the drive.
    TapeMounted { label: String },
}

/// What a job writes, as the shell holds it.
#[derive(Clone)]
enum Payload {
    Segment(SegmentSource),
    Metadata(Arc<AbsMetadata>),
}

struct Pending {
    payload: Payload,
    reply: Reply,
}

/// An operation under way: its outcome, and the copy buffer back.
type Op = BoxFuture<(Event<Landed>, Option<Vec<u8>>)>;

pub(super) struct Shell {
    name: String,
    drive: Arc<Mutex<Drive>>,
    station: Arc<dyn AskStation>,
    core: WriterCore,
    started: Instant,
    next_id: u64,
    jobs: HashMap<JobId, Pending>,
    /// The copy buffer, reused for every segment (away while a write runs).
    scratch: Option<Vec<u8>>,
    /// Events to apply before waiting again.
    backlog: VecDeque<Event<Landed>>,
}

impl Shell {
    pub(super) fn new(name: &str, drive: Arc<Mutex<Drive>>, policy: Policy, station: Arc<dyn AskStation>) -> Shell {
        Shell {
            name: name.to_string(),
            drive,
            station,
            core: WriterCore::new(policy),
            started: Instant::now(),
            next_id: 0,
            jobs: HashMap::new(),
            scratch: Some(Vec::new()),
            backlog: VecDeque::new(),
        }
    }

    /// Run until every handle is gone and the operation under way ended.
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut op: Option<Op> = None;
        let mut open = true;
        loop {
            let event = match self.backlog.pop_front() {
                Some(ev) => ev,
                None => {
                    enum Wake {
                        Done((Event<Landed>, Option<Vec<u8>>)),
                        Cmd(Option<Command>),
                    }
                    let wake = tokio::select! {
                        done = async { match op.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => Wake::Done(done),
                        cmd = rx.recv(), if open => Wake::Cmd(cmd),
                    };
                    match wake {
                        Wake::Done((ev, scratch)) => {
                            op = None;
                            self.scratch = Some(scratch.unwrap_or_default());
                            ev
                        }
                        Wake::Cmd(Some(cmd)) => self.admit(cmd),
                        Wake::Cmd(None) => {
                            open = false;
                            Event::Shutdown
                        }
                    }
                }
            };
            match self.core.apply(event) {
                Ok(effects) => {
                    for effect in effects {
                        self.perform(effect, &mut op);
                    }
                }
                Err(e) => tracing::error!(drive = %self.name, error = %e, "drive writer: event out of place, ignored"),
            }
            metrics::gauge!("dmc_be_queued_segments").set(self.core.queued_segments() as f64);
            if !open && op.is_none() && self.backlog.is_empty() && *self.core.state() == State::Stopped {
                tracing::debug!(drive = %self.name, "drive writer stopped");
                return;
            }
        }
    }

    /// Number a caller's command as an event.
    fn admit(&mut self, cmd: Command) -> Event<Landed> {
        let id = JobId(self.next_id);
        self.next_id += 1;
        match cmd {
            Command::Segment {
                channel_id,
                abs_id,
                seq,
                source,
                reply,
            } => {
                let ready = ReadySegment {
                    channel_id,
                    abs_id,
                    seq,
                    bytes: source.bytes,
                    ready_at: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
                };
                let payload = Payload::Segment(source);
                self.jobs.insert(id, Pending { payload, reply });
                Event::Segment { id, ready }
            }
            Command::Metadata { meta, reply } => {
                let abs_id = meta.abs_id;
                let payload = Payload::Metadata(Arc::from(meta));
                self.jobs.insert(id, Pending { payload, reply });
                Event::Metadata { id, abs_id }
            }
            Command::TapeMounted { label } => Event::StationMounted { label },
        }
    }

    fn perform(&mut self, effect: Effect<Landed>, op: &mut Option<Op>) {
        if let Effect::Reply { id, result } = effect {
            let Some(job) = self.jobs.remove(&id) else {
                tracing::error!(drive = %self.name, job = id.0, "drive writer: a reply to a job it does not hold");
                return;
            };
            let placed = result
                .map(|l| Placed {
                    tape_label: l.label,
                    entry: l.entry,
                    summary: l.summary,
                })
                .map_err(anyhow::Error::new);
            let _ = job.reply.send(placed);
            return;
        }
        if op.is_some() {
            // The core keeps one operation at a time; answer the misfit at once.
            tracing::error!(drive = %self.name, ?effect, "drive writer: an operation asked while another runs");
            self.backlog.push_back(busy(effect));
            return;
        }
        *op = Some(match effect {
            Effect::Write { id, work } => match self.jobs.get(&id) {
                Some(job) => self.write(id, work, job.payload.clone()),
                None => {
                    let outcome = WriteOutcome::Failed(format!("drive writer: no job {} to write", id.0));
                    self.backlog.push_back(Event::Written { id, outcome });
                    return;
                }
            },
            Effect::FinishTape { reason } => {
                tracing::info!(drive = %self.name, %reason, "end of tape: finishing it with EOV labels");
                self.finish()
            }
            Effect::AskNextTape(full) => {
                metrics::counter!("dmc_be_tape_switches_total").increment(1);
                self.ask(full)
            }
            Effect::Mount { next, full } => self.mount(next, full),
            Effect::Reply { .. } => return,
        });
    }

    /// Copy the job's data file to the mounted tape.
    fn write(&mut self, id: JobId, work: Work, payload: Payload) -> Op {
        let (drive, name) = (self.drive.clone(), self.name.clone());
        let mut scratch = self.scratch.take().unwrap_or_default();
        Box::pin(async move {
            let done = tokio::task::spawn_blocking(move || {
                let outcome = write_blocking(&drive, &name, work, &payload, &mut scratch);
                (outcome, scratch)
            })
            .await;
            match done {
                Ok((outcome, scratch)) => (Event::Written { id, outcome }, Some(scratch)),
                Err(e) => (
                    Event::Written {
                        id,
                        outcome: WriteOutcome::Failed(format!("the tape write stopped: {e}")),
                    },
                    None,
                ),
            }
        })
    }

    /// Finish the full tape with EOV labels and unload it; first ask the
    /// station for the records of the ABSs whose metadata goes onto the
    /// next tape, for this tape's CATALOG (best effort: without an answer
    /// the CATALOG has none for them, their metadata still has).
    fn finish(&self) -> Op {
        let (drive, name, station) = (self.drive.clone(), self.name.clone(), self.station.clone());
        Box::pin(async move {
            let wanted = lock(&drive, &name).map(|d| d.abs_without_record()).ok().flatten();
            let records = match wanted {
                Some((label, abs_ids)) if !abs_ids.is_empty() => records_for(&*station, &name, label, abs_ids).await,
                _ => Vec::new(),
            };
            blocking(
                move || {
                    let finished = lock(&drive, &name).and_then(|mut d| {
                        d.supply_records(records);
                        d.finish_full()
                    });
                    let r = finished.map(|(label, files, bytes)| FullTape { label, files, bytes });
                    Event::TapeFinished(r.map_err(|e| format!("finishing the full tape: {e:#}")))
                },
                |e| Event::TapeFinished(Err(e)),
            )
            .await
        })
    }

    /// Ask the station which tape continues the media set.
    fn ask(&self, full: FullTape) -> Op {
        let req = StationRequest::TapeFull {
            drive: self.name.clone(),
            tape_label: full.label.clone(),
            files: full.files,
            bytes: full.bytes,
        };
        let (station, drive) = (self.station.clone(), self.name.clone());
        Box::pin(async move {
            let label = full.label;
            let answer = match station.ask(req).await {
                Ok(StationReply::NextTape { tape_label, new }) => Ok(NextTape { label: tape_label, new }),
                Ok(StationReply::Error(failure)) => Err(format!("no tape continues {label}: {failure}")),
                Ok(other) => Err(AnswerError {
                    drive,
                    tape: label,
                    found: format!("{other:?}"),
                }
                .to_string()),
                Err(e) => Err(format!("asking the station for the tape after {label}: {e}")),
            };
            (Event::Answered(answer), None)
        })
    }

    /// Mount the tape that continues `full`.
    fn mount(&self, next: NextTape, full: String) -> Op {
        let (drive, name) = (self.drive.clone(), self.name.clone());
        blocking(
            move || {
                let mounted = lock(&drive, &name).and_then(|mut d| d.mount_for_write(&next.label, Some(&next.new)));
                match mounted {
                    Ok(_) => {
                        tracing::info!(drive = %name, full = %full, next = %next.label, sequence = next.new.sequence, "media set continues");
                        Event::Mounted(Ok(()))
                    }
                    Err(e) => Event::Mounted(Err(format!(
                        "mounting tape {}, which continues {full}: {e:#}",
                        next.label
                    ))),
                }
            },
            |e| Event::Mounted(Err(e)),
        )
    }
}

/// Run `f` on a blocking thread; a panic there is the event `failed` makes.
fn blocking(f: impl FnOnce() -> Event<Landed> + Send + 'static, failed: fn(String) -> Event<Landed>) -> Op {
    Box::pin(async move {
        let ev = match tokio::task::spawn_blocking(f).await {
            Ok(ev) => ev,
            Err(e) => failed(format!("the tape operation stopped: {e}")),
        };
        (ev, None)
    })
}

/// The station's records of `abs_ids` on tape `label` in drive `drive`;
/// none (logged) when it does not answer with them.
async fn records_for(
    station: &dyn AskStation,
    drive: &str,
    label: String,
    abs_ids: Vec<u64>,
) -> Vec<(u64, proto::tape::management::Management)> {
    let req = StationRequest::TapeRecords {
        drive: drive.to_string(),
        tape_label: label.clone(),
        abs_ids: abs_ids.into_iter().map(proto::domain::AbsId::new).collect(),
    };
    match station.ask(req).await {
        Ok(StationReply::Records(records)) => records.into_iter().map(|r| (r.abs_id.get(), r.record)).collect(),
        other => {
            tracing::warn!(%drive, tape = %label, answer = ?other.map(|r| format!("{r:?}")), "no management records for the CATALOG of the full tape: it is finished without them");
            Vec::new()
        }
    }
}

fn lock<'a>(drive: &'a Mutex<Drive>, name: &str) -> anyhow::Result<std::sync::MutexGuard<'a, Drive>> {
    drive.lock().map_err(|_| anyhow!("drive {name} lock poisoned"))
}

/// The event answering an operation that could not start.
fn busy(effect: Effect<Landed>) -> Event<Landed> {
    let why = "the drive is busy with another operation".to_string();
    match effect {
        Effect::Write { id, .. } => Event::Written {
            id,
            outcome: WriteOutcome::Failed(why),
        },
        Effect::FinishTape { .. } => Event::TapeFinished(Err(why)),
        Effect::AskNextTape(_) => Event::Answered(Err(why)),
        Effect::Mount { .. } | Effect::Reply { .. } => Event::Mounted(Err(why)),
    }
}

/// Write one data file to the mounted tape (on a blocking thread).
fn write_blocking(
    drive: &Mutex<Drive>,
    name: &str,
    work: Work,
    payload: &Payload,
    scratch: &mut Vec<u8>,
) -> WriteOutcome<Landed> {
    if let (Payload::Segment(src), Work::Segment(r)) = (payload, work) {
        if src.abandoned.load(Ordering::Acquire) {
            tracing::info!(drive = %name, abs = r.abs_id, seq = r.seq, "segment not written: its front-end went away");
            return WriteOutcome::Abandoned;
        }
    }
    let mut d = match lock(drive, name) {
        Ok(d) => d,
        Err(e) => return WriteOutcome::Failed(format!("{e:#}")),
    };
    let written = match (payload, work) {
        (Payload::Segment(src), Work::Segment(r)) => (|| {
            // Opened afresh for each attempt: a full tape refuses a
            // segment after reading its header.
            let mut file = std::fs::File::open(&src.path)
                .with_context(|| format!("opening {} in the spool", src.path.display()))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len != src.bytes {
                bail!(
                    "{} has {len} bytes; the front-end announced {}",
                    src.path.display(),
                    src.bytes
                );
            }
            d.write_segment_from(&mut file, src.bytes, &src.object_name, (r.abs_id, r.seq), scratch)
        })(),
        (Payload::Metadata(meta), Work::Metadata { .. }) => d.write_metadata(meta),
        _ => Err(anyhow!("drive writer: {work} does not match the job's data")),
    };
    match written {
        Ok(Ok(landed)) => WriteOutcome::Placed(landed),
        Ok(Err(full)) => WriteOutcome::Full {
            empty_tape: d.writing_empty_tape(),
            reason: full.to_string(),
        },
        Err(e) => WriteOutcome::Failed(format!("{e:#}")),
    }
}
