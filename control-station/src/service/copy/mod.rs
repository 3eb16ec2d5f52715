//! Pool backup (seed 000 FIG. 5, claims 1–4): copy every complete ABS of a
//! primary pool that has no whole, healthy copy in a copy pool yet, tape to
//! tape on the movers. The primary node is not involved.
//!
//! Each lane is one back-end with two free drives: one reads primary tapes
//! (each mounted once per run, its files in position order), the other
//! writes the copy tapes of the copy pool. The back-end copies one segment
//! per command, verified on both sides; the station records each copy as
//! it is synced. A segment found unreadable is marked damaged and its ABS
//! is left without a copy (the run goes on with the others and says so).
//!
//! [`job`] plans the run without I/O; the rest here carries it out.

mod job;
mod recover;
mod relocate;

pub(crate) use recover::{recover, RecoverRequest};
pub(crate) use relocate::{abs_copy, abs_move};

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use proto::domain::{AbsId, Failure, FailureCode, PoolKind, TapeId};
use proto::tape::management::Management;
use proto::wire::{ChannelEvent, Command, CommandReply, StationReply};
use tokio::sync::mpsc;
use transport::FramedSend;

use super::events::EventSink;
use super::{failure_of, library, registry, Station};
use crate::catalog::{CopyCandidate, DriveRow, NewSegmentCopy, PairRow};
use job::{CopyJob, CopyLane, CopyStep, MetadataGate, TapeKey, TapeVisit};

/// What an operator asked to copy.
pub(crate) struct PoolBackupRequest {
    pub primary: String,
    pub copy_pool: String,
    pub drives: u32,
}

pub(crate) async fn run(st: Arc<Station>, req: PoolBackupRequest, send: &mut FramedSend) {
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    forward(pool_backup(&st, &req, tx, started), rx, send).await;
}

/// Run `work`, sending the client the lanes' events as they come, then
/// its outcome.
pub(super) async fn forward(
    work: impl std::future::Future<Output = Result<ChannelEvent>>,
    mut rx: mpsc::UnboundedReceiver<ChannelEvent>,
    send: &mut FramedSend,
) {
    let outcome = pump(work, &mut rx, send).await;
    let event = match outcome {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

/// Where a run writes, and what the catalog records of what it wrote.
pub(super) enum Target {
    /// Pool backup: copies of primary segments in copy pool `pool`.
    Copies { pool: String },
    /// Tape recovery: segments rewritten from their copies as the new
    /// primary copies, on tapes of primary pool `pool`.
    Primaries { pool: String },
}

impl Target {
    fn pool(&self) -> &str {
        match self {
            Target::Copies { pool } | Target::Primaries { pool } => pool,
        }
    }

    /// The job, as a notification names it.
    fn job(&self) -> String {
        match self {
            Target::Copies { pool } => format!("a pool backup to copy pool {pool}"),
            Target::Primaries { pool } => format!("a tape recovery to pool {pool}"),
        }
    }
}

/// Where the lanes' events go (to the client's stream).
pub(super) type Sink = mpsc::UnboundedSender<ChannelEvent>;

pub(super) fn tell(sink: &Sink, ev: ChannelEvent) {
    let _ = sink.send(ev);
}

/// What one lane did.
#[derive(Debug, Default)]
pub(super) struct LaneTotals {
    pub abs: u32,
    pub segments: u32,
    pub bytes: u64,
    pub tapes_read: Vec<String>,
    pub tapes_written: BTreeSet<String>,
    /// ABSs left without a whole copy, and why.
    pub failed: Vec<(AbsId, String)>,
}

impl LaneTotals {
    /// The event that ends a run which did this, started at `started`.
    pub(super) fn into_event(self, started: Instant) -> ChannelEvent {
        ChannelEvent::Copied {
            abs: self.abs,
            segments: self.segments,
            bytes: self.bytes,
            tapes_read: self.tapes_read,
            tapes_written: self.tapes_written.into_iter().collect(),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Fail unless `copy_pool` is a copy pool attached to primary pool `primary`.
pub(crate) async fn check_copy_pool(st: &Arc<Station>, primary: &str, copy_pool: &str) -> Result<()> {
    let copy = st
        .catalog
        .pool_named(copy_pool)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("there is no pool {}", copy_pool))))?;
    if copy.kind != PoolKind::Copy {
        bail!(Failure::refused(format!(
            "pool {} is a {} pool: pool backup writes to a copy pool",
            copy.name, copy.kind
        )));
    }
    if !copy.copies_of.iter().any(|p| p == primary) {
        bail!(Failure::refused(format!(
            "copy pool {} does not copy pool {} (it copies: {}); attach it with: smapp pool define {} --kind copy --copies-of {}",
            copy.name,
            primary,
            if copy.copies_of.is_empty() { "nothing".to_string() } else { copy.copies_of.join(", ") },
            copy.name,
            primary
        )));
    }
    Ok(())
}

/// A synchronous copy (`backup --copy-to`): copy ABS `abs_id` of primary
/// pool `primary` to `copy_pool` now, on one lane, sending the client the
/// lanes' events.
pub(crate) async fn copy_abs(
    st: &Arc<Station>,
    abs_id: AbsId,
    primary: &str,
    copy_pool: &str,
    send: &mut impl EventSink,
) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let work = copy_one_abs(st, abs_id, primary, copy_pool, &tx);
    pump(work, &mut rx, send).await.map(|_| ())
}

/// Copy ABS `abs_id` of primary pool `primary` to `copy_pool` on one
/// lane, telling `sink` how it goes: what was copied.
pub(super) async fn copy_one_abs(
    st: &Arc<Station>,
    abs_id: AbsId,
    primary: &str,
    copy_pool: &str,
    sink: &Sink,
) -> Result<LaneTotals> {
    let candidates: Vec<_> = st
        .catalog
        .copy_candidates(primary, copy_pool)
        .await?
        .into_iter()
        .filter(|c| c.abs_id == abs_id)
        .collect();
    let job = plan(st, &candidates, 1).await?;
    if let Some((_, seqs)) = job.skipped.first() {
        bail!(Failure::corrupt(format!(
            "segment(s) {seqs:?} are damaged on their primary tapes"
        )));
    }
    tell(
        sink,
        ChannelEvent::Planned {
            detail: format!(
                "copying ABS {abs_id} to pool {copy_pool} ({} segments, {} bytes)",
                job.segments, job.bytes
            ),
        },
    );
    let target = Target::Copies {
        pool: copy_pool.to_string(),
    };
    let (total, error) = execute(st, &job, &target, sink).await;
    if let Some(e) = error {
        return Err(e);
    }
    if let Some((_, why)) = total.failed.first() {
        bail!(Failure::corrupt(why.clone()));
    }
    let tapes: Vec<&str> = total.tapes_written.iter().map(String::as_str).collect();
    tell(
        sink,
        ChannelEvent::Planned {
            detail: format!("ABS {abs_id} copied to pool {copy_pool} on tape {}", tapes.join(", ")),
        },
    );
    Ok(total)
}

/// Run `work`, sending the client the lanes' events as they come; its
/// outcome once every event is sent.
async fn pump<T>(
    work: impl std::future::Future<Output = Result<T>>,
    rx: &mut mpsc::UnboundedReceiver<ChannelEvent>,
    send: &mut impl EventSink,
) -> Result<T> {
    tokio::pin!(work);
    let outcome = loop {
        tokio::select! {
            r = &mut work => break r,
            Some(ev) = rx.recv() => send.emit(ev).await,
        }
    };
    while let Ok(ev) = rx.try_recv() {
        send.emit(ev).await;
    }
    outcome
}

async fn pool_backup(st: &Arc<Station>, req: &PoolBackupRequest, sink: Sink, started: Instant) -> Result<ChannelEvent> {
    let sink = &sink;
    check_copy_pool(st, &req.primary, &req.copy_pool).await?;
    let candidates = st.catalog.copy_candidates(&req.primary, &req.copy_pool).await?;
    let job = plan(st, &candidates, lanes(req.drives)).await?;
    tell(
        sink,
        ChannelEvent::Planned {
            detail: job.detail(&req.primary, &req.copy_pool),
        },
    );
    for (abs_id, seqs) in &job.skipped {
        let seqs: Vec<String> = seqs.iter().map(ToString::to_string).collect();
        tell(
            sink,
            ChannelEvent::Planned {
                detail: format!(
                    "ABS {abs_id} is not copied: its segment(s) {} are damaged on their primary tapes",
                    seqs.join(", ")
                ),
            },
        );
    }
    let target = Target::Copies {
        pool: req.copy_pool.clone(),
    };
    let (total, error) = execute(st, &job, &target, sink).await;
    if let Some(e) = error {
        return Err(e.context(format!(
            "pool backup of {} to {}: {} ABS copied before the failure",
            req.primary, req.copy_pool, total.abs
        )));
    }
    if !total.failed.is_empty() {
        let what: Vec<String> = total.failed.iter().map(|(a, why)| format!("ABS {a}: {why}")).collect();
        bail!(Failure::corrupt(format!(
            "{} ABS copied to pool {}, {} not: {}",
            total.abs,
            req.copy_pool,
            total.failed.len(),
            what.join("; ")
        )));
    }
    tracing::info!(primary = %req.primary, copy_pool = %req.copy_pool, abs = total.abs, bytes = total.bytes, "pool backup done");
    Ok(total.into_event(started))
}

/// The lanes a request for `drives` drive pairs gets (0: one).
pub(super) fn lanes(drives: u32) -> usize {
    usize::try_from(drives).unwrap_or(usize::MAX).max(1)
}

/// Plan the copy of `candidates` on at most `lanes` lanes, each tape they
/// are read from sorted by media set and volume number.
pub(super) async fn plan(st: &Arc<Station>, candidates: &[CopyCandidate], lanes: usize) -> Result<CopyJob> {
    // Collected first: no iterator with closures lives across an await.
    let tape_ids: Vec<TapeId> = candidates
        .iter()
        .flat_map(|c| {
            c.segments
                .iter()
                .map(|s| s.tape_id)
                .chain(c.metadata.iter().map(|m| m.tape_id))
        })
        .collect();
    let keys = tape_keys(st, tape_ids).await?;
    Ok(CopyJob::plan(candidates, &keys, lanes))
}

/// Where each of `tape_ids` sorts (media set, volume number, label).
async fn tape_keys(st: &Arc<Station>, tape_ids: Vec<TapeId>) -> Result<HashMap<TapeId, TapeKey>> {
    let mut keys: HashMap<TapeId, TapeKey> = HashMap::new();
    for id in tape_ids {
        if keys.contains_key(&id) {
            continue;
        }
        if let Some(t) = st.catalog.tape(id).await? {
            keys.insert(
                id,
                TapeKey {
                    media_set: t.media_set,
                    sequence: t.media_set_seq,
                    label: t.label,
                },
            );
        }
    }
    Ok(keys)
}

/// Run every lane of `job` side by side, writing to `target`: what they
/// did, and the first error of a lane that failed.
pub(super) async fn execute(
    st: &Arc<Station>,
    job: &CopyJob,
    target: &Target,
    sink: &Sink,
) -> (LaneTotals, Option<anyhow::Error>) {
    let copied = AtomicU64::new(0);
    let results =
        futures::future::join_all(job.lanes.iter().map(|lane| run_lane(st, target, lane, sink, &copied))).await;
    let mut total = LaneTotals::default();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(t) => {
                total.abs += t.abs;
                total.segments += t.segments;
                total.bytes += t.bytes;
                total.tapes_read.extend(t.tapes_read);
                total.tapes_written.extend(t.tapes_written);
                total.failed.extend(t.failed);
            }
            Err(e) => errors.push(e),
        }
    }
    (total, errors.into_iter().next())
}

/// A lane's drives: the pair, the drive writing copies, the drive reading.
struct LaneDrives {
    pair: PairRow,
    write: DriveRow,
    read: DriveRow,
}

async fn run_lane(
    st: &Arc<Station>,
    target: &Target,
    lane: &CopyLane,
    sink: &Sink,
    copied: &AtomicU64,
) -> Result<LaneTotals> {
    let (pair, drives) = registry::assign_drives(st, Duration::from_secs(600), 2, &target.job(), None).await?;
    let (Some(write), Some(read)) = (drives.first().cloned(), drives.get(1).cloned()) else {
        bail!("the station handed out {} drives, not 2", drives.len());
    };
    registry::use_for_reading(st, &read).await;
    let d = LaneDrives { pair, write, read };
    let mut totals = LaneTotals::default();
    let result = lane_work(st, target, lane, &d, sink, copied, &mut totals).await;
    let be = &d.pair.be_name;
    if let Some(tape) = registry::current_tape(st, &d.write).await {
        if let Err(e) = library::dismount(st, be, &d.write, &tape, true).await {
            tracing::warn!(tape = %tape.label, error = %format!("{e:#}"), "finishing a copy tape");
        }
    }
    registry::release(st, Some(&d.pair), &d.write).await;
    registry::release(st, Some(&d.pair), &d.read).await;
    result.map(|()| totals)
}

async fn lane_work(
    st: &Arc<Station>,
    target: &Target,
    lane: &CopyLane,
    d: &LaneDrives,
    sink: &Sink,
    copied: &AtomicU64,
    totals: &mut LaneTotals,
) -> Result<()> {
    let be = d.pair.be_name.as_str();
    let tape = match library::mount_for_write(st, be, &d.write, target.pool()).await {
        Ok(t) => t,
        Err(e) => {
            registry::mount_failed(st, &d.write).await;
            return Err(e);
        }
    };
    registry::tape_mounted(st, &d.write, &tape).await;
    tell(
        sink,
        ChannelEvent::Planned {
            detail: format!(
                "back-end {be}: drive {} reads, drive {} writes tape {} of pool {}",
                d.read.name,
                d.write.name,
                tape.label,
                target.pool()
            ),
        },
    );
    let mut run = LaneRun {
        sink,
        copied,
        totals,
        gate: MetadataGate::new(&lane.segments_of),
        failed: BTreeSet::new(),
    };
    for visit in &lane.visits {
        let tape = st.catalog.tape(visit.tape_id).await?.ok_or_else(|| {
            anyhow!(Failure::not_found(format!(
                "tape {} left the catalog",
                visit.tape_label
            )))
        })?;
        library::mount_for_read(st, &target.job(), be, &d.read, &tape).await?;
        run.totals.tapes_read.push(tape.label.clone());
        let res = copy_visit(st, target, visit, d, &mut run).await;
        let dismounted = library::dismount(st, be, &d.read, &tape, false).await;
        res?;
        dismounted?;
    }
    Ok(())
}

/// A lane's state while it runs.
struct LaneRun<'a> {
    sink: &'a Sink,
    /// Bytes copied by every lane (the progress the client sees).
    copied: &'a AtomicU64,
    totals: &'a mut LaneTotals,
    gate: MetadataGate,
    /// ABSs that lost a segment or their metadata: no copy this run.
    failed: BTreeSet<AbsId>,
}

/// Copy what `visit` names from the tape mounted in the read drive.
async fn copy_visit(
    st: &Arc<Station>,
    target: &Target,
    visit: &TapeVisit,
    d: &LaneDrives,
    run: &mut LaneRun<'_>,
) -> Result<()> {
    let be = d.pair.be_name.as_str();
    let LaneRun {
        sink,
        copied,
        totals,
        gate,
        failed,
    } = run;
    for step in &visit.steps {
        match step {
            CopyStep::Segment {
                abs_id,
                object_name,
                segment_id,
                copy_id,
                source,
                ..
            } => {
                if failed.contains(abs_id) {
                    continue;
                }
                let cmd = Command::CopySegment {
                    read_drive: d.read.name.clone(),
                    write_drive: d.write.name.clone(),
                    abs_id: st.catalog.tape_abs_id(*abs_id).await?,
                    object_name: object_name.clone(),
                    source: source.clone(),
                };
                let reply = match st.command_ok(be, &cmd).await {
                    Ok(r) => r,
                    Err(e) if failure_of(&e).code == FailureCode::Corrupt => {
                        st.catalog.mark_segment_damaged(*segment_id, *copy_id).await?;
                        let why = format!(
                            "segment {} on tape {} file {} is damaged ({}); marked damaged",
                            source.seq,
                            source.tape_label,
                            source.tape_file,
                            failure_of(&e).message
                        );
                        tell(
                            sink,
                            ChannelEvent::Planned {
                                detail: format!("ABS {abs_id}: {why}"),
                            },
                        );
                        failed.insert(*abs_id);
                        totals.failed.push((*abs_id, why));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let CommandReply::SegmentCopied {
                    tape_label,
                    tape_file,
                    bytes,
                    crc32c,
                } = reply
                else {
                    bail!("back-end {be} answered a segment copy with {reply:?}");
                };
                let written = st.catalog.tape_by_label(&tape_label).await?.ok_or_else(|| {
                    anyhow!(Failure::not_found(format!(
                        "tape {tape_label} written by back-end {be} is not in the catalog"
                    )))
                })?;
                match target {
                    Target::Copies { .. } => {
                        let copy = NewSegmentCopy {
                            segment_id: *segment_id,
                            tape_id: written.id,
                            tape_file,
                            bytes,
                            crc32c,
                        };
                        st.catalog.record_segment_copy(&copy).await?;
                    }
                    Target::Primaries { .. } => {
                        st.catalog
                            .relocate_segment(*segment_id, written.id, tape_file, crc32c)
                            .await?;
                    }
                }
                totals.tapes_written.insert(tape_label);
                totals.segments += 1;
                totals.bytes += bytes;
                gate.segment_copied(*abs_id);
                let so_far = copied.fetch_add(bytes, Ordering::Relaxed) + bytes;
                tell(sink, ChannelEvent::Progress { bytes: so_far });
            }
            CopyStep::Metadata { abs_id, tape_file } => {
                if failed.contains(abs_id) {
                    continue;
                }
                let cmd = Command::ReadMetadata {
                    drive: d.read.name.clone(),
                    tape_label: visit.tape_label.clone(),
                    tape_file: *tape_file,
                    abs_id: st.catalog.tape_abs_id(*abs_id).await?,
                };
                match st.command_ok(be, &cmd).await {
                    Ok(CommandReply::MetadataRead { metadata }) => gate.metadata_read(*abs_id, metadata),
                    Ok(other) => bail!("back-end {be} answered a metadata read with {other:?}"),
                    Err(e) if failure_of(&e).code == FailureCode::Corrupt => {
                        let why = format!(
                            "its metadata on tape {} file {tape_file} is unreadable ({})",
                            visit.tape_label,
                            failure_of(&e).message
                        );
                        failed.insert(*abs_id);
                        totals.failed.push((*abs_id, why));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        for (abs_id, metadata) in gate.ready() {
            write_metadata(st, target, d, abs_id, metadata, totals).await?;
        }
    }
    Ok(())
}

/// Write an ABS's metadata after its last copied segment: its copy is whole.
async fn write_metadata(
    st: &Arc<Station>,
    target: &Target,
    d: &LaneDrives,
    abs_id: AbsId,
    metadata: Vec<u8>,
    totals: &mut LaneTotals,
) -> Result<()> {
    let be = d.pair.be_name.as_str();
    // A copy's metadata carries the copy's record (its pool, copy number
    // and places); rewritten primaries one that names the pool and the
    // places the catalog now has.
    let record = match target {
        Target::Copies { pool } => st.catalog.copy_record(abs_id, pool).await?,
        Target::Primaries { .. } => st.catalog.management_record(abs_id).await?,
    };
    let metadata = with_record(abs_id, &metadata, record)?;
    let cmd = Command::WriteMetadata {
        drive: d.write.name.clone(),
        metadata,
    };
    let CommandReply::Placed { tape_label, tape_file } = st.command_ok(be, &cmd).await? else {
        bail!("back-end {be} answered a metadata write with something else");
    };
    let tape = st.catalog.tape_by_label(&tape_label).await?.ok_or_else(|| {
        anyhow!(Failure::not_found(format!(
            "tape {tape_label} written by back-end {be} is not in the catalog"
        )))
    })?;
    match target {
        Target::Copies { .. } => st.catalog.record_abs_copy(abs_id, tape.id, tape_file).await?,
        Target::Primaries { .. } => st.catalog.relocate_metadata(abs_id, tape.id, tape_file).await?,
    }
    totals.tapes_written.insert(tape_label);
    totals.abs += 1;
    Ok(())
}

/// ABS metadata `bytes` (read from tape) with management record `record`;
/// anything that does not decode is corrupt.
fn with_record(abs_id: AbsId, bytes: &[u8], record: Management) -> Result<Vec<u8>> {
    let mut meta = proto::tape::metadata::AbsMetadata::decode(bytes).map_err(|e| {
        anyhow!(Failure::corrupt(format!(
            "the metadata of ABS {abs_id} read from tape: {e}"
        )))
    })?;
    meta.management = Some(record);
    Ok(meta.encode())
}
