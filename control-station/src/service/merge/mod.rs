//! Synthetic full (seed FIG. 25/26): the movers merge a chain (a full and
//! its differentials) into a new full ABS on tape, without the primary node.
//!
//! One back-end with two free drives: one writes the new ABS (a backup
//! channel, Opened → BeginningOfTape → Writing → Closed) on a scratch tape,
//! the other reads the chain newest first (one restore channel per ABS of
//! the chain). The front-end keeps the first version of each track it
//! gets, so each track ends up in its latest version.
//!
//! [`job`] plans the merge without I/O; [`act`] carries it out.

mod job;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use proto::domain::{AbsId, ChannelId};
use proto::wire::{BackupChannel, ChannelEvent, Command, StationReply};
use transport::{FramedSend, Peer};

use super::access::{Access, Right};
use super::backup::{await_written, chain_members, close_written, open_writing_channel, settle, Held};
use super::events::{EventSink, LiveChannel};
use super::restore::{planned, read_tapes_on, readable_segments, ReadInto, TapeReading};
use super::{failure_of, library, note_channel, registry, NoteRx, Station};
use crate::catalog::{Abs, DriveRow, PairRow, TapeRow};
use crate::channel::{ChannelInput, ChannelKind};
use crate::plan::RestorePlan;
use job::MergeJob;
use proto::abs::AbsMap;

/// What a client asked to merge: the chain of `abs_id` (None: the latest)
/// of an object.
pub(crate) struct MergeRequest {
    pub primary: String,
    pub object_name: String,
    pub abs_id: Option<AbsId>,
}

pub(crate) async fn run(st: Arc<Station>, client: &Peer, req: MergeRequest, send: &mut FramedSend) {
    let started = Instant::now();
    let event = match merge(&st, client, &req, send, started).await {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

/// The drives a merge holds: the writing channel's, and the reading drive.
struct Merging {
    writer: Held,
    /// The writing channel's notes.
    notes: NoteRx,
    reader: Option<(PairRow, DriveRow)>,
}

async fn merge(
    st: &Arc<Station>,
    client: &Peer,
    req: &MergeRequest,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    // A synthetic full is a new backup of the object.
    Access::of(st, client)
        .await?
        .require(Right::Backup, &req.primary, Some(&req.object_name))?;
    let members = chain_members(st, &req.primary, &req.object_name).await?;
    let job = MergeJob::plan(&req.object_name, &members, req.abs_id)?;
    let (_, new_abs) = st.catalog.create_synthetic_abs(job.tip).await?;
    let abs = st
        .catalog
        .load_abs(new_abs)
        .await?
        .ok_or_else(|| anyhow!("ABS {new_abs} vanished"))?;
    let (writer, rx) = open_writing_channel(st, client, new_abs, "").await?;
    let channel_id = writer.channel.id();
    let mut merging = Merging {
        writer,
        notes: rx,
        reader: None,
    };
    let outcome = act(st, client, &mut merging, &job, &abs, send, started).await;
    st.channels.lock().await.remove(&channel_id);
    st.depends_on(channel_id, &[]).await;
    if let Some((_, drive)) = merging.reader.take() {
        registry::release(st, None, &drive).await;
    }
    settle(st, &mut merging.writer, outcome, &[]).await
}

/// Carry out `job`, writing the synthetic full `abs`.
async fn act(
    st: &Arc<Station>,
    client: &Peer,
    merging: &mut Merging,
    job: &MergeJob,
    abs: &Abs,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let held = &mut merging.writer;
    let channel_id = held.channel.id();
    let new_abs = held.abs_id;
    let tip = job.tip;
    held.expected_tracks = Some(abs.map.track_set().len());
    send.emit(started_event(channel_id, new_abs, &abs.map)).await;
    send.emit(ChannelEvent::Chain {
        members: job.chain.clone(),
        detail: job.detail(new_abs),
    })
    .await;

    let what = format!("a merge into ABS {new_abs}");
    let (pair, drives) = registry::assign_drives(st, Duration::from_secs(600), 2, &what, None)
        .await
        .context("a merge reads on one drive and writes on another of the same back-end")?;
    let (write_drive, read_drive) = (drives[0].clone(), drives[1].clone());
    registry::use_for_reading(st, &read_drive).await;
    merging.reader = Some((pair.clone(), read_drive.clone()));
    held.assignment = Some((pair.clone(), vec![write_drive.clone()]));
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name]).await;
    let opened = format!(
        "front-end {}, back-end {}, drive {} writes, drive {} reads",
        pair.fe_name, pair.be_name, write_drive.name, read_drive.name
    );
    held.channel.step(st, ChannelInput::Assigned(opened), send).await?;
    let tape = open_writer(st, held, &pair, &write_drive, abs, Some(tip), send)
        .await
        .context("opening the merge on the front-end")?;
    let writing = format!("writing the synthetic full of ABS {tip} to tape {}", tape.label);
    held.channel.step(st, ChannelInput::StreamOpened(writing), send).await?;

    let reader = (pair.clone(), read_drive.clone());
    for src in job.read_order() {
        read_one(st, client, channel_id, src, &reader, send).await?;
    }
    st.command_ok(&pair.fe_name, &Command::FinishMerge { channel_id })
        .await
        .context("finishing the merge")?;
    let drives = std::slice::from_ref(&write_drive);
    let written = await_written(st, &mut held.channel, drives, None, &mut merging.notes, send).await?;
    let what = format!("synthetic full of ABS {tip}: ");
    close_written(st, held, written, &what, send, started).await
}

/// The `Started` event of a channel writing ABS `abs_id` of map `map`:
/// every track of the map.
pub(super) fn started_event(channel_id: ChannelId, abs_id: AbsId, map: &AbsMap) -> ChannelEvent {
    let track_set = map.track_set();
    ChannelEvent::Started {
        channel_id,
        abs_id,
        object_size: map.object_size,
        tracks: track_set.len(),
        track_bytes: track_set
            .iter()
            .filter_map(|t| map.track_extent(t).ok())
            .map(|(_, l)| l)
            .sum(),
    }
}

/// Mount a scratch tape of `abs`'s pool in `drive` and open the channel
/// of `held` on the pair's front-end as a merge (`merged_from`: the chain
/// tip of a synthetic full; None: tracks the station sends). Returns the
/// tape mounted.
pub(super) async fn open_writer(
    st: &Arc<Station>,
    held: &mut Held,
    pair: &PairRow,
    drive: &DriveRow,
    abs: &Abs,
    merged_from: Option<AbsId>,
    send: &mut FramedSend,
) -> Result<TapeRow> {
    let channel_id = held.channel.id();
    let tape = match library::mount_scratch_for_write(st, &pair.be_name, drive, &abs.pool).await {
        Ok(t) => {
            registry::tape_mounted(st, drive, &t).await;
            t
        }
        Err(e) => {
            registry::mount_failed(st, drive).await;
            return Err(e);
        }
    };
    st.catalog
        .assign_channel(channel_id, pair.fe_id, pair.be_id, drive.id, Some(tape.id))
        .await?;
    let mounted = format!("tape {} mounted in drive {}", tape.label, drive.name);
    held.channel.step(st, ChannelInput::TapeMounted(mounted), send).await?;
    let created_unix = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let open = BackupChannel {
        channel_id,
        abs_id: abs.id,
        object_name: abs.object_name.clone(),
        back_end: st.peer_addr(&pair.be_name, &pair.be_address).await,
        drives: vec![drive.name.clone()],
        map: abs.map.clone(),
        track_set: abs.map.track_set(),
        base_abs_id: None,
        merged_from_abs_id: merged_from,
        created_unix,
        // No primary node takes part: nothing may open its stream.
        primary: String::new(),
        token: rand::random(),
    };
    st.command_ok(&pair.fe_name, &Command::OpenMerge(open)).await?;
    Ok(tape)
}

/// Read one ABS of the chain into the merge on the reading drive, as a
/// restore channel of that ABS.
async fn read_one(
    st: &Arc<Station>,
    client: &Peer,
    merge_channel_id: ChannelId,
    src: AbsId,
    (pair, drive): &(PairRow, DriveRow),
    send: &mut FramedSend,
) -> Result<()> {
    let sources = readable_segments(st, src).await?;
    for detail in &sources.from_copies {
        send.emit(ChannelEvent::Planned { detail: detail.clone() }).await;
    }
    let segments = sources.segments;
    if segments.is_empty() {
        // A differential with no change.
        return Ok(());
    }
    let plan = RestorePlan::new(&planned(&segments), 1).context("planning the read")?;
    let tapes = plan.drive_queues().first().cloned().unwrap_or_default();
    let by_seq = segments.into_iter().map(|s| (s.seq, s)).collect();
    let channel_id = st
        .catalog
        .create_channel(ChannelKind::Restore, src, &client.name)
        .await?;
    let mut channel = LiveChannel::new(channel_id, ChannelKind::Restore);
    let (tx, rx) = note_channel();
    st.channels.lock().await.insert(channel_id, tx);
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name]).await;
    let reading = TapeReading {
        abs_id: src,
        segments: &by_seq,
        pair,
        drive,
    };
    let result = async {
        let opened = format!(
            "read into merge channel {merge_channel_id}: back-end {}, drive {}",
            pair.be_name, drive.name
        );
        channel.step(st, ChannelInput::Assigned(opened), send).await?;
        let into = ReadInto::Merge { merge_channel_id };
        read_tapes_on(st, &reading, &mut channel, into, tapes, rx, send).await
    }
    .await;
    st.channels.lock().await.remove(&channel_id);
    st.depends_on(channel_id, &[]).await;
    match result {
        Ok((t, records)) => {
            let closed = format!(
                "{} segments of ABS {src} read from {}, {} bytes of them kept ({records} tape records read)",
                t.segments,
                t.tapes.join(", "),
                t.bytes
            );
            channel.step(st, ChannelInput::Finished(closed), send).await?;
            Ok(())
        }
        Err(e) => {
            channel.fail(st, &format!("{e:#}")).await;
            Err(e.context(format!("reading ABS {src}")))
        }
    }
}
