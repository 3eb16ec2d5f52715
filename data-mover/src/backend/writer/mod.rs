//! The writer of one drive: a thread that takes the sealed segments every
//! channel writing to the drive has announced, picks the next one with the
//! [`SegmentQueue`] policy (FIFO by default; LIFO, the seed's suggestion,
//! measured worse: see `dmc-bench-drives`), copies it from the spool to
//! tape (streaming through one reused buffer, verifying every checksum on
//! the way), syncs, and at the end of a tape continues the media set on the
//! next tape. It goes straight on with the next segment: committing a
//! placement to the catalog and telling the front-end happen elsewhere
//! while the drive writes.
//!
//! End of tape: a write refused with `TapeFull` wrote nothing. The writer
//! finishes the tape with EOV labels, asks the station which tape continues
//! the media set ([`StationRequest::TapeFull`]), mounts it and writes the
//! same segment there. A segment is answered exactly once, with the tape
//! and file that hold it, so none is lost or written twice across the
//! switch. A segment that does not fit even on an empty tape is refused.

pub mod core;

#[cfg(test)]
mod props;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use proto::tape::directory::DirectoryEntry;
use proto::tape::metadata::AbsMetadata;
use proto::tape::segment::SegmentSummary;
use proto::wire::{StationReply, StationRequest};
use tokio::sync::oneshot;
use transport::link::StationLink;

use super::drive::{Drive, Written};
use super::schedule::{Policy, ReadySegment, ScheduleError, SegmentQueue};

/// Where a data file landed.
#[derive(Debug, Clone)]
pub struct Placed {
    pub tape_label: String,
    pub entry: DirectoryEntry,
    /// A segment's verified summary.
    pub summary: Option<SegmentSummary>,
}

type Reply = oneshot::Sender<Result<Placed>>;

/// A sealed segment to copy to tape.
pub struct SegmentSource {
    /// The spool file holding it.
    pub path: PathBuf,
    /// Its length, as announced.
    pub bytes: u64,
    pub object_name: String,
    /// Set when the front-end that asked went away: a segment not yet
    /// begun is not written (its front-end, restarted, sends it again).
    pub abandoned: Arc<std::sync::atomic::AtomicBool>,
}

struct SegmentJob {
    source: SegmentSource,
    reply: Reply,
}

struct MetadataJob {
    meta: AbsMetadata,
    reply: Reply,
}

#[derive(Default)]
struct State {
    queue: SegmentQueue,
    segments: HashMap<(u64, u32), SegmentJob>,
    metadata: VecDeque<MetadataJob>,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    /// Woken each time a segment's write ends.
    finished: tokio::sync::Notify,
    started: Instant,
}

/// Hands segments and metadata to one drive's writer thread.
#[derive(Clone)]
pub struct DriveWriter {
    shared: Arc<Shared>,
}

/// What the writer thread needs to switch tapes.
struct Ctx {
    drive: Arc<Mutex<Drive>>,
    name: String,
    link: StationLink,
    rt: tokio::runtime::Handle,
    policy: Policy,
}

impl DriveWriter {
    /// Start the writer thread of `drive`.
    pub fn spawn(
        name: &str,
        drive: Arc<Mutex<Drive>>,
        policy: Policy,
        link: StationLink,
        rt: tokio::runtime::Handle,
    ) -> Result<DriveWriter> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            finished: tokio::sync::Notify::new(),
            started: Instant::now(),
        });
        let ctx = Ctx {
            drive,
            name: name.to_string(),
            link,
            rt,
            policy,
        };
        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("drive-{name}"))
            .spawn(move || run(ctx, s))
            .with_context(|| format!("starting the writer thread of drive {name}"))?;
        Ok(DriveWriter { shared })
    }

    /// Queue a sealed segment (in a spool file) and wait until it is
    /// copied to tape, verified, and synced.
    ///
    /// The same segment asked again (its front-end restarted and sends it
    /// anew) takes the place of a request not yet begun, or waits for the
    /// write under way to end and is then written again.
    pub async fn write_segment(&self, channel_id: u64, abs_id: u64, seq: u32, source: SegmentSource) -> Result<Placed> {
        let (tx, rx) = oneshot::channel();
        let mut job = Some(SegmentJob { source, reply: tx });
        loop {
            let finished = self.shared.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            {
                let mut st = self.lock()?;
                let key = (abs_id, seq);
                let Some(new) = job.take() else {
                    bail!("segment {seq} of ABS {abs_id}: no request to queue");
                };
                if let Some(old) = st.segments.remove(&key) {
                    let _ = old.reply.send(Err(anyhow!(
                        "segment {seq} of ABS {abs_id} was asked again; the new request writes it"
                    )));
                    st.segments.insert(key, new);
                    break;
                }
                let ready = ReadySegment {
                    channel_id,
                    abs_id,
                    seq,
                    bytes: new.source.bytes,
                    ready_at: self.shared.started.elapsed().as_micros() as u64,
                };
                match st.queue.push(ready) {
                    Ok(()) => {
                        st.segments.insert(key, new);
                        metrics::gauge!("dmc_be_queued_segments").set(st.queue.len() as f64);
                        break;
                    }
                    Err(ScheduleError::Duplicate { .. }) => job = Some(new),
                    Err(e) => return Err(e.into()),
                }
            }
            // Being written: wait for that write to end.
            finished.await;
        }
        self.shared.ready.notify_one();
        rx.await.map_err(|_| anyhow!("the drive writer stopped"))?
    }

    /// Queue ABS metadata (written before any queued segment) and wait.
    pub async fn write_metadata(&self, meta: AbsMetadata) -> Result<Placed> {
        let (tx, rx) = oneshot::channel();
        self.lock()?.metadata.push_back(MetadataJob { meta, reply: tx });
        self.shared.ready.notify_one();
        rx.await.map_err(|_| anyhow!("the drive writer stopped"))?
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.shared
            .state
            .lock()
            .map_err(|_| anyhow!("drive writer state poisoned"))
    }
}

enum Work {
    Segment(ReadySegment, SegmentJob),
    Metadata(MetadataJob),
}

fn run(ctx: Ctx, shared: Arc<Shared>) {
    // The copy buffer, reused for every segment.
    let mut scratch = Vec::new();
    loop {
        let work = {
            let Ok(mut st) = shared.state.lock() else {
                tracing::error!(drive = %ctx.name, "drive writer state poisoned; the writer stops");
                return;
            };
            loop {
                if let Some(m) = st.metadata.pop_front() {
                    break Work::Metadata(m);
                }
                if let Some(r) = st.queue.pop_next(ctx.policy) {
                    match st.segments.remove(&(r.abs_id, r.seq)) {
                        Some(job) => break Work::Segment(r, job),
                        None => {
                            let _ = st.queue.finish(r.abs_id, r.seq);
                            continue;
                        }
                    }
                }
                st = match shared.ready.wait(st) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
        };
        match work {
            Work::Segment(r, job) if job.source.abandoned.load(std::sync::atomic::Ordering::Acquire) => {
                tracing::info!(drive = %ctx.name, abs = r.abs_id, seq = r.seq, "segment not written: its front-end went away");
                if let Ok(mut st) = shared.state.lock() {
                    let _ = st.queue.finish(r.abs_id, r.seq);
                }
                shared.finished.notify_waiters();
                let _ = job.reply.send(Err(anyhow!(
                    "segment {} of ABS {} was not written: its front-end went away",
                    r.seq,
                    r.abs_id
                )));
            }
            Work::Segment(r, job) => {
                let src = &job.source;
                let res = write_with_switch(&ctx, |d| {
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
                    d.write_segment_from(&mut file, src.bytes, &src.object_name, (r.abs_id, r.seq), &mut scratch)
                })
                .with_context(|| format!("segment {} of ABS {}", r.seq, r.abs_id));
                if let Ok(mut st) = shared.state.lock() {
                    let _ = st.queue.finish(r.abs_id, r.seq);
                    metrics::gauge!("dmc_be_queued_segments").set(st.queue.len() as f64);
                }
                shared.finished.notify_waiters();
                let _ = job.reply.send(res);
            }
            Work::Metadata(m) => {
                let res = write_with_switch(&ctx, |d| d.write_metadata(&m.meta))
                    .with_context(|| format!("metadata of ABS {}", m.meta.abs_id));
                let _ = m.reply.send(res);
            }
        }
    }
}

fn lock_drive(ctx: &Ctx) -> Result<std::sync::MutexGuard<'_, Drive>> {
    ctx.drive
        .lock()
        .map_err(|_| anyhow!("drive {} lock poisoned", ctx.name))
}

/// Write one data file; when the tape is full, finish it, mount the tape
/// the station names and write the file there.
fn write_with_switch(ctx: &Ctx, mut write: impl FnMut(&mut Drive) -> Result<Written>) -> Result<Placed> {
    for _ in 0..2 {
        let (label, files, bytes) = {
            let mut d = lock_drive(ctx)?;
            let full = match write(&mut d)? {
                Ok(landed) => {
                    return Ok(Placed {
                        tape_label: landed.label,
                        entry: landed.entry,
                        summary: landed.summary,
                    })
                }
                Err(full) => full,
            };
            if d.writing_empty_tape() {
                bail!("{full}; it does not fit even on an empty tape");
            }
            tracing::info!(drive = %ctx.name, reason = %full, "end of tape: finishing it with EOV labels");
            d.finish_full().context("finishing the full tape")?
        };
        metrics::counter!("dmc_be_tape_switches_total").increment(1);
        let req = StationRequest::TapeFull {
            drive: ctx.name.clone(),
            tape_label: label.clone(),
            files,
            bytes,
        };
        let reply = ctx
            .rt
            .block_on(ctx.link.request(&req))
            .with_context(|| format!("asking the station for the tape after {label}"))?;
        let (next, path, new) = match reply {
            StationReply::NextTape { tape_label, path, new } => (tape_label, path, new),
            StationReply::Error { message } => bail!("no tape continues {label}: {message}"),
            other => bail!("unexpected reply to a full tape: {other:?}"),
        };
        lock_drive(ctx)?
            .mount_for_write(&next, Path::new(&path), Some(&new))
            .with_context(|| format!("mounting tape {next}, which continues {label}"))?;
        tracing::info!(drive = %ctx.name, full = %label, next = %next, sequence = new.sequence, "media set continues");
    }
    bail!("the tape was full twice in a row")
}
