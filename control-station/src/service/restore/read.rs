//! One lane of a restore, or one ABS of a merge's chain: a reading channel
//! on one drive, mounting each of its tapes once and reading only the ABS's
//! files on it, in position order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{AbsId, ChannelId, Failure, SegmentSeq};
use proto::wire::{ChannelEvent, ChannelToken, Command, RestoreChannel, RestoreOrder, SegmentRef};

use super::job::RestoreJob;
use super::lanes::LaneTotals;
use super::sources;
use crate::catalog::{DriveRow, PairRow, Segment, TapeRow};
use crate::channel::ChannelInput;
use crate::plan::TapeJob;
use crate::service::events::{waiting, Abandon, EventSink, LiveChannel};
use crate::service::{library, registry, ChannelNote, NoteRx, Station};

/// One drive's channel: read its tapes in turn; Closed or Error.
pub(super) async fn run_lane<E: EventSink>(
    st: &Arc<Station>,
    mut channel: LiveChannel,
    job: &RestoreJob,
    tapes: Vec<TapeJob>,
    rx: NoteRx,
    sink: &mut E,
) -> Result<LaneTotals> {
    match read_tapes(st, &mut channel, job, tapes, rx, sink).await {
        Ok((t, records)) => {
            let reason = format!(
                "{} segments, {} bytes restored from {} ({records} tape records read)",
                t.segments,
                t.bytes,
                t.tapes.join(", ")
            );
            channel.step(st, ChannelInput::Finished(reason), sink).await?;
            Ok(t)
        }
        Err(e) => {
            let reason = format!("{e:#}");
            tracing::error!(channel_id = %channel.id(), abs_id = %job.abs_id, %reason, "restore channel failed");
            channel.fail(st, &reason).await;
            Err(e)
        }
    }
}

/// Get a drive, then read each tape of `tapes` on it (see
/// [`read_tapes_on`]). Returns the totals and the tape records read.
async fn read_tapes<E: EventSink>(
    st: &Arc<Station>,
    channel: &mut LiveChannel,
    job: &RestoreJob,
    tapes: Vec<TapeJob>,
    rx: NoteRx,
    send: &mut E,
) -> Result<(LaneTotals, u64)> {
    let channel_id = channel.id();
    let assigned = registry::assign(st, Duration::from_secs(600), registry::Purpose::Restore);
    let registry::Assignment { pair, drive, .. } = waiting(send, "a drive", Abandon::IfGone(None), assigned).await?;
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name, &job.dest.node])
        .await;
    let result = async {
        let opened = format!(
            "front-end {}, back-end {}, drive {}",
            pair.fe_name, pair.be_name, drive.name
        );
        channel.step(st, ChannelInput::Assigned(opened), send).await?;
        let reader = TapeReading {
            abs_id: job.abs_id,
            segments: &job.segments,
            pair: &pair,
            drive: &drive,
        };
        read_tapes_on(st, &reader, channel, ReadInto::Primary(job), tapes, rx, send).await
    }
    .await;
    registry::release(st, Some(&pair), &drive).await;
    st.depends_on(channel_id, &[]).await;
    result
}

/// What a channel reads: an ABS's tapes on one drive of a pair.
#[derive(Clone, Copy)]
pub(crate) struct TapeReading<'a> {
    pub abs_id: AbsId,
    pub segments: &'a HashMap<SegmentSeq, Segment>,
    pub pair: &'a PairRow,
    pub drive: &'a DriveRow,
}

/// Where the tracks read go.
pub(crate) enum ReadInto<'a> {
    /// Through the front-end to the destination primary node.
    Primary(&'a RestoreJob),
    /// Into the front-end's merge channel (a synthetic full).
    Merge { merge_channel_id: ChannelId },
}

/// Read each tape of `tapes` on the reader's drive: mount it once, read
/// only the ABS's files on it in position order, dismount. A segment the
/// back-end finds unreadable is skipped, marked damaged, and read from its
/// best other copy once the planned tapes are done (seed 000 claims 5–6).
pub(crate) async fn read_tapes_on<E: EventSink>(
    st: &Arc<Station>,
    r: &TapeReading<'_>,
    channel: &mut LiveChannel,
    into: ReadInto<'_>,
    tapes: Vec<TapeJob>,
    rx: NoteRx,
    send: &mut E,
) -> Result<(LaneTotals, u64)> {
    let mut lane = LaneReading {
        first: true,
        rx,
        totals: LaneTotals::default(),
        records: 0,
    };
    let mut failed = Vec::new();
    for tj in tapes {
        let bad = read_tape(st, r, channel, &into, &tj, &mut lane, send).await?;
        failed.extend(bad);
    }
    // Each round marks what failed damaged, so a segment runs out of
    // copies to try and the rounds end.
    while !failed.is_empty() {
        for (s, _) in &failed {
            st.catalog.mark_segment_damaged(s.id, s.copy_id).await?;
        }
        let sources = super::readable_segments(st, r.abs_id).await?;
        let chosen = sources::fallback(&failed, &sources.segments).map_err(anyhow::Error::new)?;
        let tapes = sources::by_tape(&chosen);
        let segments: HashMap<SegmentSeq, Segment> = chosen.into_iter().map(|s| (s.seq, s)).collect();
        let fallback = TapeReading {
            segments: &segments,
            ..*r
        };
        failed = Vec::new();
        for tj in &tapes {
            let bad = read_tape(st, &fallback, channel, &into, tj, &mut lane, send).await?;
            failed.extend(bad);
        }
    }
    Ok((lane.totals, lane.records))
}

/// Where a lane's reading of its tapes stands: whether the next tape is
/// its first, the notes of its channel, what it restored so far and the
/// tape records read.
struct LaneReading {
    first: bool,
    rx: NoteRx,
    totals: LaneTotals,
    records: u64,
}

/// Mount tape `tj` on the reader's drive, read its files, dismount.
/// Returns the segments its back-end could not read, with why.
async fn read_tape<E: EventSink>(
    st: &Arc<Station>,
    r: &TapeReading<'_>,
    channel: &mut LiveChannel,
    into: &ReadInto<'_>,
    tj: &TapeJob,
    lane: &mut LaneReading,
    send: &mut E,
) -> Result<Vec<(Segment, Failure)>> {
    let first = std::mem::replace(&mut lane.first, false);
    let LaneReading {
        rx, totals, records, ..
    } = lane;
    let (channel_id, pair, drive) = (channel.id(), r.pair, r.drive);
    let tape = st
        .catalog
        .tape(tj.tape_id)
        .await?
        .ok_or_else(|| anyhow!("tape {} vanished from the catalog", tj.tape_label))?;
    if !first {
        let next = ChannelInput::TapeDone("next tape of the ABS".to_string());
        channel.step(st, next, send).await?;
    }
    let what = format!("tape {} to be mounted in drive {}", tape.label, drive.name);
    waiting(
        send,
        &what,
        Abandon::Never,
        library::mount_for_read(st, "a restore", &pair.be_name, drive, &tape),
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
    let mut unreadable = Vec::new();
    let step = async {
        let mut mounted = format!("tape {} mounted in drive {}", tape.label, drive.name);
        for s in files.iter().filter(|s| s.copy_id.is_some()) {
            mounted.push_str(&format!(
                "; segment {} of ABS {} served from copy on tape {}",
                s.seq, r.abs_id, tape.label
            ));
        }
        channel.step(st, ChannelInput::TapeMounted(mounted), send).await?;
        read_files(st, r, channel, into, &tape, &files, send).await?;
        follow_read(st, channel_id, rx, before, totals, &mut unreadable, send).await
    }
    .await;
    // The tape leaves the drive either way; a failed read reports its
    // own reason, not the dismount's.
    let dismounted = library::dismount(st, &pair.be_name, drive, &tape, false).await;
    step?;
    let read = dismounted?;
    tracing::info!(%channel_id, tape = %tape.label, records = read, files = files.len(), "tape read");
    *records += read;
    totals.tapes.push(tape.label.clone());
    unreadable
        .into_iter()
        .map(|(seq, failure)| {
            let s = files.iter().find(|s| s.seq == seq).ok_or_else(|| {
                anyhow!(Failure::invalid(format!(
                    "segment {seq} reported unreadable was not read on tape {}",
                    tape.label
                )))
            })?;
            Ok(((*s).clone(), failure))
        })
        .collect()
}

/// Open the front-end's reading of `files` of `tape` (and, into a primary
/// node, order it to receive): the channel reads.
async fn read_files<E: EventSink>(
    st: &Arc<Station>,
    r: &TapeReading<'_>,
    channel: &mut LiveChannel,
    into: &ReadInto<'_>,
    tape: &TapeRow,
    files: &[&Segment],
    send: &mut E,
) -> Result<()> {
    let (channel_id, pair, drive) = (channel.id(), r.pair, r.drive);
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
    // The movers check segments by the id they carry on tape.
    let on_tape = st.catalog.tape_abs_id(r.abs_id).await?;
    let open = RestoreChannel {
        channel_id,
        abs_id: on_tape,
        back_end: st.peer_addr(&pair.be_name, &pair.be_address).await,
        drive: drive.name.clone(),
        files: refs,
        primary: match into {
            ReadInto::Primary(job) => job.dest.node.clone(),
            _ => String::new(),
        },
        token,
    };
    let reading = ChannelInput::StreamOpened(format!("reading {} files of tape {}", files.len(), tape.label));
    match into {
        ReadInto::Primary(job) => {
            st.command_ok(&pair.fe_name, &Command::OpenRestore(open))
                .await
                .context("opening the front-end")?;
            channel.step(st, reading, send).await?;
            let order = RestoreOrder {
                channel_id,
                abs_id: on_tape,
                front_end: st.peer_addr(&pair.fe_name, &pair.fe_address).await,
                map: job.map.clone(),
                remap: job.dest.remap.clone(),
                target: job.dest.target.clone(),
                tracks: group_tracks,
                job: job.dest.job,
                token,
            };
            st.command_ok(&job.dest.node, &Command::ReceiveRestore(order))
                .await
                .context("ordering the restore")?;
        }
        ReadInto::Merge { merge_channel_id } => {
            channel.step(st, reading, send).await?;
            let cmd = Command::MergeRead {
                merge_channel_id: *merge_channel_id,
                read: open,
            };
            st.command_ok(&pair.fe_name, &cmd)
                .await
                .context("reading into the merge")?;
        }
    }
    Ok(())
}

/// Follow the reading of one tape until its front-end reports it finished;
/// `before`: the bytes the channel restored from its earlier tapes.
async fn follow_read<E: EventSink>(
    st: &Arc<Station>,
    channel_id: ChannelId,
    rx: &mut NoteRx,
    before: u64,
    totals: &mut LaneTotals,
    unreadable: &mut Vec<(SegmentSeq, Failure)>,
    send: &mut E,
) -> Result<()> {
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
                return Ok(());
            }
            // Reading channels do not resume (see backup::Resume).
            ChannelNote::Failed { failure } => return Err(failure.into()),
            ChannelNote::FrontEndLost { reason } => bail!(Failure::retryable(reason)),
            ChannelNote::Unreadable {
                seq,
                tape_label,
                tape_file,
                failure,
            } => {
                let detail = format!(
                    "segment {seq} unreadable on tape {tape_label} file {tape_file} ({}): marked damaged, it will be read from a copy",
                    failure.message
                );
                tracing::warn!(%channel_id, %detail, "restore falls back to a copy");
                send.emit(ChannelEvent::Planned { detail }).await;
                unreadable.push((seq, failure));
            }
            ChannelNote::TapeSwitched { .. } | ChannelNote::FrontEndBack { .. } => {}
        }
    }
}
