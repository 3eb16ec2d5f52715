//! A restore (seed FIG. 29, and "parallel restore operation" after FIG. 33).
//!
//! A [`RestorePlan`] groups the ABS's segments by tape and spreads the
//! tapes over the free drives (at most the number asked for). Each drive
//! gets its own restore channel ("a separate virtual channel may be
//! established for each tape drive"): Requested → Opened → BeginningOfTape
//! → Reading (→ EndOfTape → BeginningOfTape → Reading for each further
//! tape) → Closed, or → Error with a reason naming tape, tape file and
//! segment. Each tape is mounted once and only the ABS's own tape files
//! are read, in position order. The client sees one merged event stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::stream::{FuturesUnordered, StreamExt};
use proto::abs::{RemapTable, VolumeRef};
use proto::domain::{AbsId, AbsState, ChannelId, Failure, JobId, SegmentSeq};
use proto::wire::{
    ChannelEvent, ChannelToken, Command, RestoreChannel, RestoreOrder, RestoreTarget, SegmentRef, StationReply,
};
use tokio::sync::mpsc;
use transport::FramedSend;
use transport::Peer;

use super::access::Access;
use super::backup::{chain_members, transition, waiting, Abandon, EventSink};
use super::{failure_of, library, note_channel, registry, ChannelNote, NoteRx, Station};
use crate::catalog::{DriveRow, PairRow, Segment, STATION_ACTOR};
use crate::channel::{ChannelKind, ChannelState};
use crate::plan::{chain_at, chain_of, PlannedSegment, RestorePlan, TapeJob};

/// What to restore.
pub(crate) enum Wanted {
    /// The object as it was when this ABS was taken (its chain).
    Abs(AbsId),
    /// The object as it was at a time (None: its latest backup).
    At {
        primary: String,
        object_name: String,
        at_unix_ms: Option<i64>,
    },
}

pub(crate) async fn run(
    st: Arc<Station>,
    client: &Peer,
    wanted: Wanted,
    target: RestoreTarget,
    drives: u32,
    send: &mut FramedSend,
) {
    let started = Instant::now();
    if let RestoreTarget::File { name, .. } = &target {
        if let Err(reason) = proto::wire::check_restore_file_name(name) {
            let _ = send
                .send(&StationReply::Event(ChannelEvent::Failed(Failure::invalid(reason))))
                .await;
            return;
        }
    }
    // One id for every stream of this request, so the node writes them
    // into one file.
    let job = JobId::new(rand::random());
    let file_on = match &target {
        RestoreTarget::File { primary, .. } => Some(primary.clone()),
        _ => None,
    };
    let mut result = restore_chain(&st, client, wanted, target, drives, job, send, started).await;
    // A file gets its name only once every stream of the restore is in it.
    if let Some(node) = file_on {
        let finish = Command::FinishRestore {
            job,
            commit: result.is_ok(),
        };
        let done = st.command_ok(&node, &finish).await;
        if let (Ok(_), Err(e)) = (&result, done) {
            result = Err(e.context("naming the restored file"));
        }
    }
    let event = match result {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

/// The catalog's segments as the planner sees them.
pub(crate) fn planned(segments: &[Segment]) -> Vec<PlannedSegment> {
    segments
        .iter()
        .map(|s| PlannedSegment {
            seq: s.seq,
            tape_id: s.tape_id,
            tape_label: s.tape_label.clone(),
            tape_file: s.tape_file,
            bytes: s.bytes,
        })
        .collect()
}

/// An ABS that is complete, or why it cannot be restored.
async fn complete_abs(st: &Arc<Station>, id: AbsId) -> Result<crate::catalog::Abs> {
    let abs = st
        .catalog
        .load_abs(id)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no ABS {id} in the catalog"))))?;
    if abs.state != AbsState::Complete {
        bail!(Failure::refused(format!(
            "ABS {id} is {} ({}), not complete",
            abs.state,
            abs.reason.clone().unwrap_or_default()
        )));
    }
    Ok(abs)
}

/// Restore a chain: its full first, then each differential in order, all
/// to the same destination.
#[allow(clippy::too_many_arguments)]
async fn restore_chain(
    st: &Arc<Station>,
    client: &Peer,
    wanted: Wanted,
    target: RestoreTarget,
    drives: u32,
    job: JobId,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let access = Access::of(st, client).await?;
    let chain = match wanted {
        Wanted::Abs(id) => {
            let abs = complete_abs(st, id).await?;
            access.require_restore(&abs.primary_node, &abs.object_name, &target)?;
            if abs.base_abs_id.is_none() {
                vec![id]
            } else {
                let members = chain_members(st, &abs.primary_node, &abs.object_name).await?;
                chain_of(&members, id)?
            }
        }
        Wanted::At {
            primary,
            object_name,
            at_unix_ms,
        } => {
            access.require_restore(&primary, &object_name, &target)?;
            // A time in milliseconds covers its whole millisecond: the time
            // `smapp list` prints for a backup selects that backup.
            let at = match at_unix_ms {
                Some(ms) => Some(
                    chrono::DateTime::from_timestamp_millis(ms)
                        .and_then(|t| t.checked_add_signed(chrono::TimeDelta::microseconds(999)))
                        .ok_or_else(|| anyhow!(Failure::invalid(format!("time {ms} ms is out of range"))))?,
                ),
                None => None,
            };
            let members = chain_members(st, &primary, &object_name).await?;
            chain_at(&object_name, &members, at)?
        }
    };
    if chain.len() > 1 {
        let ids: Vec<String> = chain.iter().map(|i| format!("ABS {i}")).collect();
        let _ = send
            .send(&StationReply::Event(ChannelEvent::Chain {
                members: chain.clone(),
                detail: format!("restoring {} in order", ids.join(", ")),
            }))
            .await;
    }
    let mut totals = LaneTotals::default();
    for id in chain {
        let ev = restore(st, client, id, target.clone(), drives, job, send, started).await?;
        if let ChannelEvent::Finished {
            bytes,
            tracks,
            segments,
            tapes,
            ..
        } = ev
        {
            totals.bytes += bytes;
            totals.tracks += tracks;
            totals.segments += segments;
            for t in tapes {
                if !totals.tapes.contains(&t) {
                    totals.tapes.push(t);
                }
            }
        }
    }
    Ok(totals.finished(started))
}

/// The events of one drive's channel, tagged with its lane.
struct LaneSink {
    lane: usize,
    tx: mpsc::UnboundedSender<(usize, ChannelEvent)>,
    /// Set once the client's stream failed.
    gone: Arc<AtomicBool>,
}

impl EventSink for LaneSink {
    async fn emit(&mut self, ev: ChannelEvent) {
        let _ = self.tx.send((self.lane, ev));
    }

    async fn emit_checked(&mut self, ev: ChannelEvent) -> bool {
        self.tx.send((self.lane, ev)).is_ok() && !self.gone.load(Ordering::Relaxed)
    }
}

/// What one drive's channel restored.
#[derive(Debug, Default)]
pub(crate) struct LaneTotals {
    pub bytes: u64,
    pub tracks: u64,
    pub segments: u32,
    pub tapes: Vec<String>,
}

impl LaneTotals {
    fn finished(self, started: Instant) -> ChannelEvent {
        ChannelEvent::Finished {
            bytes: self.bytes,
            tracks: self.tracks,
            segments: self.segments,
            tapes: self.tapes,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// What every lane of a restore shares.
pub(crate) struct RestoreJob<'a> {
    abs_id: AbsId,
    map: &'a proto::abs::AbsMap,
    remap: &'a RemapTable,
    target: &'a RestoreTarget,
    job: JobId,
    dest_node: &'a str,
    segments: &'a HashMap<SegmentSeq, Segment>,
}

#[allow(clippy::too_many_arguments)]
async fn restore(
    st: &Arc<Station>,
    client: &Peer,
    abs_id: AbsId,
    target: RestoreTarget,
    drives: u32,
    job: JobId,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let id = abs_id;
    let abs = complete_abs(st, id).await?;
    let map = abs.map.clone();
    // A full writes the whole object; a differential the blocks of its tracks.
    let expected_bytes = match st.catalog.changed_tracks(id).await? {
        Some(set) => map.logical_bytes(&set),
        None => map.object_size,
    };
    // The remap table (FIG. 15/16) and the node that writes.
    let (dest_node, remap) = match &target {
        RestoreTarget::Original => (abs.primary_node.clone(), RemapTable::original(&map)),
        RestoreTarget::Volumes { primary, allocation } => {
            let node = registry::primary(st, primary).await?;
            let vols: Vec<VolumeRef> = node.volumes.clone();
            (
                primary.clone(),
                RemapTable::to_volumes(&map, &vols, allocation).context("the destination allocation")?,
            )
        }
        RestoreTarget::File { primary, .. } => (primary.clone(), RemapTable::to_file(&map)),
    };
    registry::primary(st, &dest_node).await?;
    let segments = st.catalog.segments_of(id).await?;
    if segments.is_empty() && abs.segment_count == 0 {
        // A differential with no change: nothing to write.
        return Ok(ChannelEvent::Finished {
            bytes: 0,
            tracks: 0,
            segments: 0,
            tapes: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    if usize::try_from(abs.segment_count).ok() != Some(segments.len()) {
        bail!(Failure::corrupt(format!(
            "the catalog lists {} segments of ABS {abs_id}, it should have {}",
            segments.len(),
            abs.segment_count
        )));
    }
    let planned = planned(&segments);
    // As many drives as asked for (0: all), free now, and tapes to read.
    let free = registry::free_drives(st).await?.max(1);
    let wanted = if drives == 0 {
        free
    } else {
        usize::try_from(drives).unwrap_or(usize::MAX).min(free)
    };
    let plan = RestorePlan::new(&planned, wanted.max(1)).context("planning the restore")?;
    let by_seq: HashMap<SegmentSeq, Segment> = segments.into_iter().map(|s| (s.seq, s)).collect();
    let queues: Vec<Vec<TapeJob>> = plan.drive_queues().to_vec();

    // One channel per drive.
    let mut lanes = Vec::new();
    for jobs in queues {
        let channel_id = st
            .catalog
            .create_channel(ChannelKind::Restore, id, &client.name)
            .await?;
        let (tx, rx) = note_channel();
        st.channels.lock().await.insert(channel_id, tx);
        lanes.push((channel_id, jobs, rx));
    }
    let channel_ids: Vec<ChannelId> = lanes.iter().map(|(c, _, _)| *c).collect();
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Started {
            channel_id: channel_ids.first().copied().unwrap_or_default(),
            abs_id,
            object_size: map.object_size,
            tracks: abs.track_count,
            // Restore progress counts object bytes written at the destination.
            track_bytes: expected_bytes,
        }))
        .await;
    if lanes.len() > 1 {
        let desc: Vec<String> = lanes
            .iter()
            .map(|(c, jobs, _)| {
                let labels: Vec<&str> = jobs.iter().map(|j| j.tape_label.as_str()).collect();
                format!("channel {c}: {}", labels.join(", "))
            })
            .collect();
        let _ = send
            .send(&StationReply::Event(ChannelEvent::Planned {
                detail: format!(
                    "{} tapes on {} drives in parallel ({})",
                    plan.tape_count(),
                    lanes.len(),
                    desc.join("; ")
                ),
            }))
            .await;
    }

    let job = RestoreJob {
        abs_id,
        map: &map,
        remap: &remap,
        target: &target,
        job,
        dest_node: &dest_node,
        segments: &by_seq,
    };
    let (etx, mut erx) = mpsc::unbounded_channel();
    let gone = Arc::new(AtomicBool::new(false));
    let n_lanes = lanes.len();
    let mut running: FuturesUnordered<_> = lanes
        .into_iter()
        .enumerate()
        .map(|(lane, (channel_id, jobs, rx))| {
            let mut sink = LaneSink {
                lane,
                tx: etx.clone(),
                gone: gone.clone(),
            };
            let job = &job;
            async move {
                let res = run_lane(st, channel_id, job, jobs, rx, &mut sink).await;
                (channel_id, res)
            }
        })
        .collect();
    drop(etx);
    let mut lane_bytes = vec![0u64; n_lanes];
    let mut totals = LaneTotals::default();
    let mut failure: Option<anyhow::Error> = None;
    let mut forward = |lane: usize, ev: ChannelEvent, send_ev: &mut Vec<ChannelEvent>| match ev {
        ChannelEvent::Progress { bytes } => {
            lane_bytes[lane] = bytes;
            send_ev.push(ChannelEvent::Progress {
                bytes: lane_bytes.iter().sum(),
            });
        }
        ChannelEvent::State { state, reason } if n_lanes > 1 => send_ev.push(ChannelEvent::State {
            state,
            reason: format!("[channel {}] {reason}", channel_ids[lane]),
        }),
        other => send_ev.push(other),
    };
    loop {
        let mut out = Vec::new();
        tokio::select! {
            done = running.next() => {
                let Some((channel_id, res)) = done else { break };
                match res {
                    Ok(t) => {
                        totals.bytes += t.bytes;
                        totals.tracks += t.tracks;
                        totals.segments += t.segments;
                        totals.tapes.extend(t.tapes);
                    }
                    Err(e) => {
                        // The other drives stop too.
                        for other in &channel_ids {
                            if *other != channel_id {
                                let failure = Failure::cancelled(format!("channel {channel_id} of the same restore failed"));
                                st.note(*other, ChannelNote::Failed { failure }).await;
                            }
                        }
                        if failure.is_none() {
                            failure = Some(e);
                        }
                    }
                }
            }
            Some((lane, ev)) = erx.recv() => forward(lane, ev, &mut out),
        }
        for ev in out {
            if send.send(&StationReply::Event(ev)).await.is_err() {
                gone.store(true, Ordering::Relaxed);
            }
        }
    }
    while let Ok((lane, ev)) = erx.try_recv() {
        let mut out = Vec::new();
        forward(lane, ev, &mut out);
        for ev in out {
            let _ = send.send(&StationReply::Event(ev)).await;
        }
    }
    for c in &channel_ids {
        st.channels.lock().await.remove(c);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if totals.bytes != expected_bytes {
        bail!(Failure::corrupt(format!(
            "{} bytes of ABS {abs_id} written, it holds {expected_bytes}",
            totals.bytes
        )));
    }
    Ok(totals.finished(started))
}

/// One drive's channel: read its tapes in turn; Closed or Error.
async fn run_lane<E: EventSink>(
    st: &Arc<Station>,
    channel_id: ChannelId,
    job: &RestoreJob<'_>,
    jobs: Vec<TapeJob>,
    rx: NoteRx,
    sink: &mut E,
) -> Result<LaneTotals> {
    match read_tapes(st, channel_id, job, jobs, rx, sink).await {
        Ok((t, records)) => {
            transition(
                st,
                channel_id,
                ChannelState::Closed,
                &format!(
                    "{} segments, {} bytes restored from {} ({records} tape records read)",
                    t.segments,
                    t.bytes,
                    t.tapes.join(", ")
                ),
                sink,
            )
            .await?;
            Ok(t)
        }
        Err(e) => {
            let reason = format!("{e:#}");
            tracing::error!(%channel_id, abs_id = %job.abs_id, %reason, "restore channel failed");
            let _ = st
                .catalog
                .transition(channel_id, ChannelState::Error, &reason, STATION_ACTOR)
                .await;
            Err(e)
        }
    }
}

/// Read each tape of `jobs` on one drive: mount it once, read only the
/// ABS's files on it in position order, dismount. Returns the totals and
/// the tape records read (labels included).
async fn read_tapes<E: EventSink>(
    st: &Arc<Station>,
    channel_id: ChannelId,
    job: &RestoreJob<'_>,
    jobs: Vec<TapeJob>,
    rx: NoteRx,
    send: &mut E,
) -> Result<(LaneTotals, u64)> {
    let assigned = registry::assign(st, Duration::from_secs(600), registry::Purpose::Restore);
    let registry::Assignment { pair, drive, .. } = waiting(send, "a drive", Abandon::IfGone(None), assigned).await?;
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name, job.dest_node])
        .await;
    let result = async {
        transition(
            st,
            channel_id,
            ChannelState::Opened,
            &format!(
                "front-end {}, back-end {}, drive {}",
                pair.fe_name, pair.be_name, drive.name
            ),
            send,
        )
        .await?;
        let reader = TapeReading {
            channel_id,
            abs_id: job.abs_id,
            segments: job.segments,
            pair: &pair,
            drive: &drive,
        };
        read_tapes_on(st, &reader, ReadInto::Primary(job), jobs, rx, send).await
    }
    .await;
    registry::release(st, Some(&pair), &drive).await;
    st.depends_on(channel_id, &[]).await;
    result
}

/// One channel reading an ABS's tapes on one drive of a pair.
pub(crate) struct TapeReading<'a> {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub segments: &'a HashMap<SegmentSeq, Segment>,
    pub pair: &'a PairRow,
    pub drive: &'a DriveRow,
}

/// Where the tracks read go.
pub(crate) enum ReadInto<'a> {
    /// Through the front-end to the destination primary node.
    Primary(&'a RestoreJob<'a>),
    /// Into the front-end's merge channel (a synthetic full).
    Merge { merge_channel_id: ChannelId },
}

/// Read each tape of `jobs` on the reader's drive: mount it once, read only
/// the ABS's files on it in position order, dismount.
pub(crate) async fn read_tapes_on<E: EventSink>(
    st: &Arc<Station>,
    r: &TapeReading<'_>,
    into: ReadInto<'_>,
    jobs: Vec<TapeJob>,
    mut rx: NoteRx,
    send: &mut E,
) -> Result<(LaneTotals, u64)> {
    let (channel_id, pair, drive) = (r.channel_id, r.pair, r.drive);
    let mut totals = LaneTotals::default();
    let mut records = 0u64;
    for (i, tj) in jobs.into_iter().enumerate() {
        let tape = st
            .catalog
            .tape(tj.tape_id)
            .await?
            .ok_or_else(|| anyhow!("tape {} vanished from the catalog", tj.tape_label))?;
        if i > 0 {
            transition(st, channel_id, ChannelState::EndOfTape, "next tape of the ABS", send).await?;
        }
        let what = format!("tape {} to be mounted in drive {}", tape.label, drive.name);
        waiting(
            send,
            &what,
            Abandon::Never,
            library::mount_for_read(st, &pair.be_name, drive, &tape),
        )
        .await?;
        st.catalog
            .assign_channel(channel_id, pair.fe_id, pair.be_id, drive.id, Some(tape.id))
            .await?;
        let files: Vec<&Segment> = tj
            .files
            .iter()
            .map(|p| {
                r.segments.get(&p.seq).ok_or_else(|| {
                    anyhow!(Failure::corrupt(format!(
                        "segment {} missing from the catalog list",
                        p.seq
                    )))
                })
            })
            .collect::<Result<_>>()?;
        let before = totals.bytes;
        let step = async {
            transition(
                st,
                channel_id,
                ChannelState::BeginningOfTape,
                &format!("tape {} mounted in drive {}", tape.label, drive.name),
                send,
            )
            .await?;
            let refs: Vec<SegmentRef> = files
                .iter()
                .map(|s| SegmentRef {
                    tape_label: tape.label.clone(),
                    tape_file: s.tape_file,
                    seq: s.seq,
                    crc32c: s.crc32c,
                })
                .collect();
            let group_tracks: u64 = files.iter().map(|s| s.track_count).sum();
            // The channel's capability: only the front-end and the node learn it.
            let token: ChannelToken = rand::random();
            let open = RestoreChannel {
                channel_id,
                abs_id: r.abs_id,
                back_end: st.peer_addr(&pair.be_name, &pair.be_address).await,
                drive: drive.name.clone(),
                files: refs,
                primary: match &into {
                    ReadInto::Primary(job) => job.dest_node.to_string(),
                    _ => String::new(),
                },
                token,
            };
            let reading = format!("reading {} files of tape {}", files.len(), tape.label);
            match &into {
                ReadInto::Primary(job) => {
                    st.command_ok(&pair.fe_name, &Command::OpenRestore(open))
                        .await
                        .context("opening the front-end")?;
                    transition(st, channel_id, ChannelState::Reading, &reading, send).await?;
                    let order = RestoreOrder {
                        channel_id,
                        abs_id: r.abs_id,
                        front_end: st.peer_addr(&pair.fe_name, &pair.fe_address).await,
                        map: job.map.clone(),
                        remap: job.remap.clone(),
                        target: job.target.clone(),
                        tracks: group_tracks,
                        job: job.job,
                        token,
                    };
                    st.command_ok(job.dest_node, &Command::ReceiveRestore(order))
                        .await
                        .context("ordering the restore")?;
                }
                ReadInto::Merge { merge_channel_id } => {
                    transition(st, channel_id, ChannelState::Reading, &reading, send).await?;
                    let cmd = Command::MergeRead {
                        merge_channel_id: *merge_channel_id,
                        read: open,
                    };
                    st.command_ok(&pair.fe_name, &cmd)
                        .await
                        .context("reading into the merge")?;
                }
            }
            loop {
                match rx
                    .recv()
                    .await
                    .ok_or_else(|| anyhow!("the channel's note queue closed"))?
                {
                    ChannelNote::Progress { bytes: b } => {
                        send.emit(ChannelEvent::Progress { bytes: before + b }).await;
                    }
                    ChannelNote::Finished {
                        data_bytes,
                        tracks: t,
                        segments: s,
                    } => {
                        totals.bytes += data_bytes;
                        totals.tracks += t;
                        totals.segments += s;
                        let _ = st.catalog.set_channel_bytes(channel_id, totals.bytes).await;
                        send.emit(ChannelEvent::Progress { bytes: totals.bytes }).await;
                        break;
                    }
                    // Reading channels do not resume (see backup::Resume).
                    ChannelNote::Failed { failure } => return Err(failure.into()),
                    ChannelNote::FrontEndLost { reason } => bail!(Failure::retryable(reason)),
                    ChannelNote::TapeSwitched { .. } | ChannelNote::FrontEndBack { .. } => {}
                }
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        // The tape leaves the drive either way; a failed read reports its
        // own reason, not the dismount's.
        let dismounted = library::dismount(st, &pair.be_name, drive, &tape, false).await;
        step?;
        let read = dismounted?;
        tracing::info!(%channel_id, tape = %tape.label, records = read, files = files.len(), "tape read");
        records += read;
        totals.tapes.push(tape.label.clone());
    }
    Ok((totals, records))
}
