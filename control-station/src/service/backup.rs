//! A backup channel (seed FIG. 28): Requested → Opened → BeginningOfTape →
//! Writing → Closed, or → Error with a reason.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::{AbsMap, ObjectExtent, TrackSet};
use proto::domain::{AbsId, ChannelId, Failure, FailureCode, Level, SegmentSeq};
use proto::wire::{
    BackupChannel, ChannelEvent, ChannelToken, Command, CommandReply, LogicalObject, StationReply, VolumeEpoch,
};
use transport::FramedSend;
use transport::Peer;

use super::access::{Access, Right};
use super::{failure_of, library, note_channel, registry, ChannelNote, NoteRx, Station};
use crate::catalog::{CapturedEpoch, DriveRow, PairRow, TapeRow, STATION_ACTOR};
use crate::channel::{ChannelKind, ChannelState};
use crate::plan::ChainMember;

/// Run one backup for a client, streaming events to it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    st: Arc<Station>,
    client: &Peer,
    object_name: String,
    primary: String,
    object: LogicalObject,
    drives: u32,
    level: Level,
    abandon: Abandon<'_>,
    send: &mut FramedSend,
) {
    let started = Instant::now();
    let result = backup(
        &st,
        client,
        &object_name,
        &primary,
        object,
        drives,
        level,
        abandon,
        send,
        started,
    )
    .await;
    let event = match result {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

/// Where a channel stands, for cleanup on failure.
#[derive(Default)]
pub(crate) struct Held {
    pub channel_id: Option<ChannelId>,
    pub abs_id: Option<AbsId>,
    /// The pair and the drives the channel writes to.
    pub assignment: Option<(PairRow, Vec<DriveRow>)>,
    /// Tracks the ABS must hold to be complete (its track set), once known.
    pub expected_tracks: Option<u64>,
}

#[allow(clippy::too_many_arguments)]
async fn backup(
    st: &Arc<Station>,
    client: &Peer,
    object_name: &str,
    primary: &str,
    object: LogicalObject,
    drives: u32,
    level: Level,
    abandon: Abandon<'_>,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    if level == Level::Synthetic {
        bail!(Failure::invalid(
            "a synthetic full is merged from a chain (smapp merge), not backed up"
        ));
    }
    Access::of(st, client)
        .await?
        .require(Right::Backup, primary, Some(object_name))?;
    let node = registry::primary(st, primary).await?;
    let extents = match object {
        LogicalObject::Volume(v) => {
            let vol = node.volumes.iter().find(|x| x.name == v).ok_or_else(|| {
                anyhow!(Failure::not_found(format!(
                    "primary node {primary} has no volume {v:?}"
                )))
            })?;
            vec![ObjectExtent {
                volume: v,
                offset: 0,
                length: vol.size,
            }]
        }
        LogicalObject::Extents(e) => e,
    };
    let map = AbsMap::from_extents(&node.volumes, &extents)
        .map_err(|e| Failure::invalid(format!("the logical object's extents: {e}")))?;
    let (base, since) = differential_base(st, primary, object_name, &map, level).await?;
    let (_, abs_id) = st.catalog.create_abs(object_name, node.id, level, base, &map).await?;
    let (mut held, rx) = open_writing_channel(st, client, abs_id).await?;
    let channel_id = held.channel_id.unwrap_or_default();
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Accepted { channel_id, abs_id }))
        .await;
    let want = usize::try_from(drives).unwrap_or(usize::MAX).max(1);
    let source = Source {
        primary,
        map,
        since,
        base_abs_id: base,
        level,
    };
    let outcome = drive_channel(st, &mut held, object_name, source, want, abandon, rx, send, started).await;
    st.resumable.lock().await.remove(&channel_id);
    st.channels.lock().await.remove(&channel_id);
    st.depends_on(channel_id, &[]).await;
    // The primary node drops the channel's snapshot, if it took one.
    settle(st, &mut held, outcome, &[primary]).await
}

/// The end of a writing channel: on success leave its drives; on failure
/// record Error with the reason, fail its ABS, have its front-end (and
/// `also_abort`) drop the channel, then leave its drives.
pub(crate) async fn settle(
    st: &Arc<Station>,
    held: &mut Held,
    outcome: Result<ChannelEvent>,
    also_abort: &[&str],
) -> Result<ChannelEvent> {
    let e = match outcome {
        Ok(ev) => {
            release(st, held).await;
            return Ok(ev);
        }
        Err(e) => e,
    };
    let reason = format!("{e:#}");
    tracing::error!(channel_id = ?held.channel_id, abs_id = ?held.abs_id, %reason, "writing channel failed");
    if let Some(channel_id) = held.channel_id {
        let _ = st
            .catalog
            .transition(channel_id, ChannelState::Error, &reason, STATION_ACTOR)
            .await;
        let abort = Command::AbortChannel {
            channel_id,
            reason: reason.clone(),
        };
        let fe = held.assignment.as_ref().map(|(pair, _)| pair.fe_name.clone());
        for peer in fe.iter().map(String::as_str).chain(also_abort.iter().copied()) {
            let _ = st.command(peer, &abort).await;
        }
    }
    if let Some(abs_id) = held.abs_id {
        let _ = st.catalog.fail_abs(abs_id, &reason).await;
    }
    release(st, held).await;
    Err(e)
}

/// A backup channel writing ABS `abs_id`, registered for notes.
pub(crate) async fn open_writing_channel(st: &Arc<Station>, client: &Peer, abs_id: AbsId) -> Result<(Held, NoteRx)> {
    let channel_id = st
        .catalog
        .create_channel(ChannelKind::Backup, abs_id, &client.name)
        .await?;
    let (tx, rx) = note_channel();
    st.channels.lock().await.insert(channel_id, tx);
    let held = Held {
        channel_id: Some(channel_id),
        abs_id: Some(abs_id),
        ..Default::default()
    };
    Ok((held, rx))
}

/// Leave the drives; the last writer of each finishes and dismounts its
/// tape (the tape it holds now: it changes at end of tape).
pub(crate) async fn release(st: &Arc<Station>, held: &mut Held) {
    if let Some((pair, drives)) = held.assignment.take() {
        for drive in drives {
            if registry::leave_writing(st, &pair, &drive).await {
                if let Some(tape) = registry::current_tape(st, &drive).await {
                    if let Err(e) = library::dismount(st, &pair.be_name, &drive, &tape, true).await {
                        tracing::error!(error = %format!("{e:#}"), tape = %tape.label, "dismount failed");
                    }
                }
                registry::release(st, None, &drive).await;
            }
        }
    }
}

/// Mount a tape for writing in each drive, all at once.
async fn mount_all(st: &Arc<Station>, be: &str, drives: &[DriveRow]) -> Result<Vec<TapeRow>> {
    let mounts = drives.iter().map(|drive| async move {
        match library::mount_for_write(st, be, drive).await {
            Ok(tape) => {
                registry::tape_mounted(st, drive, &tape).await;
                Ok(tape)
            }
            Err(e) => {
                registry::mount_failed(st, drive).await;
                Err(e)
            }
        }
    });
    futures::future::join_all(mounts).await.into_iter().collect()
}

#[allow(clippy::too_many_arguments)]
async fn drive_channel(
    st: &Arc<Station>,
    held: &mut Held,
    object_name: &str,
    source: Source<'_>,
    want_drives: usize,
    abandon: Abandon<'_>,
    mut rx: NoteRx,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let channel_id = held.channel_id.ok_or_else(|| anyhow!("no channel"))?;
    let abs_id = held.abs_id.ok_or_else(|| anyhow!("no ABS"))?;
    let Source {
        primary,
        map,
        since,
        base_abs_id,
        level,
    } = source;
    let (pair, drives, joined) = if want_drives <= 1 {
        let assigned = registry::assign(st, Duration::from_secs(600), registry::Purpose::Backup);
        let registry::Assignment { pair, drive, joined } = waiting(send, "a drive", abandon, assigned).await?;
        (pair, vec![drive], joined)
    } else {
        let assigned = registry::assign_drives(st, Duration::from_secs(600), want_drives);
        let what = format!("{want_drives} free drives");
        let (pair, drives) = waiting(send, &what, abandon, assigned).await?;
        (pair, drives, false)
    };
    held.assignment = Some((pair.clone(), drives.clone()));
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name, primary])
        .await;
    // The snapshot only now that the channel has its drive: a backup that
    // queues protects nothing on the node (no side copies, no slower host
    // writes); the backup is the object at this instant.
    let (track_set, notes) = take_snapshot(st, channel_id, abs_id, primary, &map, since).await?;
    held.expected_tracks = Some(track_set.len());
    let track_bytes: u64 = track_set
        .iter()
        .filter_map(|t| map.track_extent(t).ok())
        .map(|(_, l)| l)
        .sum();
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Started {
            channel_id,
            abs_id,
            object_size: map.object_size,
            tracks: track_set.len(),
            track_bytes,
        }))
        .await;
    let what = match base_abs_id {
        None => format!("{} tracks, the whole object", track_set.len()),
        Some(base) => format!(
            "{} of {} tracks changed since ABS {base} ({level}, {} bytes of the object)",
            track_set.len(),
            map.track_set().len(),
            map.logical_bytes(&track_set)
        ),
    };
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Snapshot { detail: what }))
        .await;
    for note in notes {
        let _ = send
            .send(&StationReply::Event(ChannelEvent::Snapshot { detail: note }))
            .await;
    }

    let names: Vec<String> = drives.iter().map(|d| d.name.clone()).collect();
    let opened = format!(
        "front-end {}, back-end {}, drive {}",
        pair.fe_name,
        pair.be_name,
        names.join(", ")
    );
    transition(st, channel_id, ChannelState::Opened, &opened, send).await?;

    let tapes = if joined {
        let mounted = registry::wait_for_tape(st, &drives[0], Duration::from_secs(600));
        vec![waiting(send, "the tape another backup is mounting", Abandon::Never, mounted).await?]
    } else {
        waiting(
            send,
            "tapes to mount",
            Abandon::Never,
            mount_all(st, &pair.be_name, &drives),
        )
        .await?
    };
    st.catalog
        .assign_channel(channel_id, pair.fe_id, pair.be_id, drives[0].id, Some(tapes[0].id))
        .await?;
    let how = if joined { "interleaving on" } else { "mounted" };
    let mounted: Vec<String> = tapes
        .iter()
        .zip(&drives)
        .map(|(t, d)| format!("tape {} {how} in drive {}", t.label, d.name))
        .collect();
    transition(st, channel_id, ChannelState::BeginningOfTape, &mounted.join("; "), send).await?;

    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The channel's capability: only the front-end and the node learn it.
    let token: ChannelToken = rand::random();
    let open = BackupChannel {
        channel_id,
        abs_id,
        object_name: object_name.to_string(),
        back_end: st.peer_addr(&pair.be_name, &pair.be_address).await,
        drives: names.clone(),
        map: map.clone(),
        track_set: track_set.clone(),
        base_abs_id,
        merged_from_abs_id: None,
        created_unix,
        primary: primary.to_string(),
        token,
    };
    st.command_ok(&pair.fe_name, &Command::OpenBackup(open))
        .await
        .context("opening the front-end")?;
    transition(
        st,
        channel_id,
        ChannelState::Writing,
        &format!(
            "writing to tape {}",
            tapes.iter().map(|t| t.label.as_str()).collect::<Vec<_>>().join(", ")
        ),
        send,
    )
    .await?;
    let order = Command::SendTrackSet {
        channel_id,
        abs_id,
        front_end: st.peer_addr(&pair.fe_name, &pair.fe_address).await,
        map,
        tracks: track_set,
        token,
    };
    st.command_ok(primary, &order)
        .await
        .context("ordering the primary node to send the track set")?;
    // From here the front-end's spool holds what the node streamed: if the
    // front-end dies, the backup waits for it to come back and resume.
    st.resumable.lock().await.insert(channel_id, pair.fe_name.clone());
    let resume = Resume {
        front_end: &pair.fe_name,
        front_end_address: &pair.fe_address,
        primary,
        abs_id,
    };
    let written = await_written(st, channel_id, &drives, Some(resume), &mut rx, send).await?;
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Progress {
            bytes: written.data_bytes,
        }))
        .await;
    close_written(st, held, written, "", send, started).await
}

/// Who resumes a backup whose front-end died: the front-end (from its
/// spool) and the primary node (sending what the spool did not keep).
#[derive(Clone, Copy)]
pub(crate) struct Resume<'a> {
    pub front_end: &'a str,
    pub front_end_address: &'a str,
    pub primary: &'a str,
    pub abs_id: AbsId,
}

/// Follow a writing channel until its front-end reports it finished:
/// progress to the catalog and the client, tape switches on its `drives`
/// as state transitions. With `resume`, a front-end that dies is waited
/// for (up to `--resume-patience`) and the backup resumed when it is back.
pub(crate) async fn await_written(
    st: &Arc<Station>,
    channel_id: ChannelId,
    drives: &[DriveRow],
    resume: Option<Resume<'_>>,
    rx: &mut NoteRx,
    send: &mut FramedSend,
) -> Result<Written> {
    let mut quiet = Instant::now();
    // Since when, and why, the front-end is gone.
    let mut front_end_lost: Option<(Instant, String)> = None;
    loop {
        let note = match tokio::time::timeout(PULSE, rx.recv()).await {
            Ok(n) => n.ok_or_else(|| anyhow!("the channel's note queue closed"))?,
            Err(_) => {
                let what = match &front_end_lost {
                    Some((since, why)) => {
                        if since.elapsed() > st.cfg.resume_patience {
                            bail!(Failure::retryable(format!(
                                "{why}; it did not come back to resume the backup within {:?}",
                                st.cfg.resume_patience
                            )));
                        }
                        format!("the front-end to come back and resume ({why})")
                    }
                    None => "the movers to report progress".to_string(),
                };
                let seconds = quiet.elapsed().as_secs();
                let _ = send
                    .send(&StationReply::Event(ChannelEvent::Waiting { what, seconds }))
                    .await;
                continue;
            }
        };
        quiet = Instant::now();
        match note {
            ChannelNote::FrontEndLost { reason } => {
                tracing::warn!(%channel_id, %reason, "front-end lost; the backup waits for it to resume");
                let _ = send
                    .send(&StationReply::Event(ChannelEvent::State {
                        state: ChannelState::Writing,
                        reason: format!("{reason}; waiting for it to come back and resume from its spool"),
                    }))
                    .await;
                front_end_lost = Some((Instant::now(), reason));
            }
            ChannelNote::FrontEndBack { kept } => {
                let (Some(r), Some((_, why))) = (resume, front_end_lost.take()) else {
                    continue;
                };
                if !kept {
                    bail!(Failure::retryable(format!(
                        "{why}, and came back without the channel in its spool: the backup cannot resume"
                    )));
                }
                let resumed = resume_backup(st, channel_id, r)
                    .await
                    .with_context(|| format!("{why}; resuming"))?;
                let _ = send.send(&StationReply::Event(resumed)).await;
            }
            ChannelNote::Progress { bytes } => {
                let _ = st.catalog.set_channel_bytes(channel_id, bytes).await;
                let _ = send.send(&StationReply::Event(ChannelEvent::Progress { bytes })).await;
            }
            ChannelNote::Finished {
                data_bytes,
                tracks,
                segments,
            } => {
                return Ok(Written {
                    data_bytes,
                    tracks,
                    segments,
                })
            }
            // The participant's failure, with its code, as the cause.
            ChannelNote::Failed { failure } => return Err(failure.into()),
            ChannelNote::TapeSwitched { drive_id, full, next } => {
                let Some(drive) = drives.iter().find(|d| d.id == drive_id) else {
                    continue;
                };
                tape_switched(st, channel_id, drive, drives[0].id == drive_id, &full, &next, send).await?;
            }
        }
    }
}

/// The front-end of a backup came back with the channel in its spool: it
/// continues from its spool (told which segments the catalog holds), and
/// the primary node streams to its new start what it did not keep.
async fn resume_backup(st: &Arc<Station>, channel_id: ChannelId, r: Resume<'_>) -> Result<ChannelEvent> {
    let placed: Vec<SegmentSeq> = st.catalog.segments_of(r.abs_id).await?.iter().map(|s| s.seq).collect();
    let on_tape = placed.len();
    st.command_ok(r.front_end, &Command::ResumeBackup { channel_id, placed })
        .await
        .with_context(|| format!("front-end {}", r.front_end))?;
    let front_end = st.peer_addr(r.front_end, r.front_end_address).await;
    st.command_ok(r.primary, &Command::ResumeTrackSet { channel_id, front_end })
        .await
        .with_context(|| format!("primary node {}", r.primary))?;
    tracing::info!(%channel_id, front_end = r.front_end, on_tape, "backup resumed");
    Ok(ChannelEvent::Resumed {
        front_end: r.front_end.to_string(),
        segments_on_tape: u32::try_from(on_tape).unwrap_or(u32::MAX),
    })
}

/// What a writing channel's front-end reports at its end.
pub(crate) struct Written {
    pub data_bytes: u64,
    pub tracks: u64,
    pub segments: u32,
}

/// A writing channel's front-end finished: check that the catalog holds
/// every segment, complete the ABS, leave the drives (the last writer of a
/// tape finishes it: directory, trailer, catalog, labels) and close the
/// channel with `what` and the figures as its reason.
pub(crate) async fn close_written(
    st: &Arc<Station>,
    held: &mut Held,
    w: Written,
    what: &str,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let channel_id = held.channel_id.ok_or_else(|| anyhow!("no channel"))?;
    let abs_id = held.abs_id.ok_or_else(|| anyhow!("no ABS"))?;
    let Written {
        data_bytes,
        tracks,
        segments,
    } = w;
    let placed = st.catalog.segments_of(abs_id).await?;
    if usize::try_from(segments).ok() != Some(placed.len()) {
        bail!(Failure::corrupt(format!(
            "the front-end reports {segments} segments but the catalog has {}",
            placed.len()
        )));
    }
    // Complete only with every track of its track set on tape, and its
    // metadata placed: a report alone proves nothing.
    let on_tape: u64 = placed.iter().map(|s| s.track_count).sum();
    let expected = held
        .expected_tracks
        .ok_or_else(|| anyhow!("ABS {abs_id}: its track set is not known"))?;
    if tracks != expected || on_tape != expected {
        bail!(Failure::corrupt(format!(
            "ABS {abs_id} is incomplete: its track set has {expected} tracks, the front-end reports {tracks}, the segments on tape hold {on_tape}"
        )));
    }
    let row = st
        .catalog
        .load_abs(abs_id)
        .await?
        .ok_or_else(|| anyhow!("no ABS {abs_id}"))?;
    if row.metadata_tape_id.is_none() {
        bail!(Failure::corrupt(format!(
            "ABS {abs_id} is incomplete: its metadata was never placed on tape"
        )));
    }
    st.catalog.complete_abs(abs_id, data_bytes, tracks, segments).await?;
    st.catalog.set_channel_bytes(channel_id, data_bytes).await?;
    release(st, held).await;
    let mut tapes: Vec<String> = Vec::new();
    for s in &placed {
        if !tapes.contains(&s.tape_label) {
            tapes.push(s.tape_label.clone());
        }
    }
    let mut labels = tapes.clone();
    labels.sort_unstable();
    transition(
        st,
        channel_id,
        ChannelState::Closed,
        &format!(
            "{what}{segments} segments, {tracks} tracks, {data_bytes} bytes on tape {}",
            labels.join(", ")
        ),
        send,
    )
    .await?;
    Ok(ChannelEvent::Finished {
        bytes: data_bytes,
        tracks,
        segments,
        tapes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Where a backup's tracks come from.
struct Source<'a> {
    primary: &'a str,
    map: AbsMap,
    /// The base's change-map epochs (empty: a full backup).
    since: Vec<VolumeEpoch>,
    /// A differential's base.
    base_abs_id: Option<AbsId>,
    level: Level,
}

/// The base of a differential backup and the epochs it captured; checks
/// that the object's layout is the base's.
async fn differential_base(
    st: &Arc<Station>,
    primary: &str,
    object_name: &str,
    map: &AbsMap,
    level: Level,
) -> Result<(Option<AbsId>, Vec<VolumeEpoch>)> {
    if level.is_full() {
        return Ok((None, Vec::new()));
    }
    let members = chain_members(st, primary, object_name).await?;
    let base = crate::plan::base_for(object_name, &members, level)?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no base for a {level} backup"))))?;
    let b = st
        .catalog
        .load_abs(base)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("base ABS {base} vanished from the catalog"))))?;
    if b.map != *map {
        bail!(Failure::refused(format!(
            "the layout of {object_name} changed since ABS {base} (its extents differ): take a full backup"
        )));
    }
    let epochs = st.catalog.abs_epochs(base).await?;
    if epochs.len() != map.volumes.len() {
        bail!(Failure::refused(format!(
            "ABS {base} recorded no change-map epochs for its volumes (taken before change tracking): take a full backup"
        )));
    }
    let since = epochs
        .iter()
        .map(|e| {
            let v = map
                .volumes
                .get(usize::from(e.volume_index))
                .ok_or_else(|| anyhow!("ABS {base} has an epoch for volume index {}", e.volume_index))?;
            Ok(VolumeEpoch {
                volume: v.name.clone(),
                map_id: e.map_id,
                epoch: e.epoch,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((Some(base), since))
}

/// The complete ABSs of an object on a primary node, as chain members.
pub(crate) async fn chain_members(st: &Arc<Station>, primary: &str, object_name: &str) -> Result<Vec<ChainMember>> {
    // An object never backed up has no members (a chain error says so).
    let Some((_, rows)) = st.catalog.chain_members(primary, object_name).await? else {
        return Ok(Vec::new());
    };
    Ok(rows
        .into_iter()
        .map(|r| ChainMember {
            id: r.id,
            level: r.level,
            base: r.base_abs_id,
            point_in_time: r.point_in_time,
        })
        .collect())
}

/// Have the primary node take the backup's snapshot; record the epochs it
/// captured (the point in time). Returns the tracks to send and notes.
async fn take_snapshot(
    st: &Arc<Station>,
    channel_id: ChannelId,
    abs_id: AbsId,
    primary: &str,
    map: &AbsMap,
    since: Vec<VolumeEpoch>,
) -> Result<(TrackSet, Vec<String>)> {
    let cmd_is_differential = !since.is_empty();
    let cmd = Command::TakeSnapshot {
        channel_id,
        map: map.clone(),
        since,
    };
    let reply = st
        .command_ok(primary, &cmd)
        .await
        .context("taking the snapshot on the primary node")?;
    let CommandReply::Snapshot { epochs, tracks, notes } = reply else {
        bail!(Failure::invalid(format!(
            "primary node {primary} answered the snapshot with {reply:?}"
        )));
    };
    let all = map.track_set();
    if let Some(t) = tracks.iter().find(|t| !all.contains(*t)) {
        bail!(Failure::invalid(format!(
            "primary node {primary} offers track {t:?}, which is not in the object's map"
        )));
    }
    let captured = epochs
        .iter()
        .map(|e| {
            let i = map
                .volumes
                .iter()
                .position(|v| v.name == e.volume)
                .and_then(|i| u16::try_from(i).ok())
                .ok_or_else(|| {
                    anyhow!(Failure::invalid(format!(
                        "the snapshot names volume {:?}, not in the map",
                        e.volume
                    )))
                })?;
            Ok(CapturedEpoch {
                volume_index: i,
                map_id: e.map_id,
                epoch: e.epoch,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let differential = cmd_is_differential;
    st.catalog
        .record_snapshot(abs_id, &captured, differential.then_some(&tracks))
        .await?;
    Ok((tracks, notes))
}

/// The tape in one of the channel's drives was full and the media set
/// continues on `next`: Writing → EndOfTape → BeginningOfTape → Writing.
async fn tape_switched(
    st: &Arc<Station>,
    channel_id: ChannelId,
    drive: &DriveRow,
    first_drive: bool,
    full: &str,
    next: &TapeRow,
    send: &mut FramedSend,
) -> Result<()> {
    transition(
        st,
        channel_id,
        ChannelState::EndOfTape,
        &format!("tape {full} full in drive {}", drive.name),
        send,
    )
    .await?;
    if first_drive {
        let pair = st.catalog.channel(channel_id).await?;
        if let Some(c) = pair {
            if let (Some(fe), Some(be)) = (c.fe_id, c.be_id) {
                st.catalog
                    .assign_channel(channel_id, fe, be, drive.id, Some(next.id))
                    .await?;
            }
        }
    }
    transition(
        st,
        channel_id,
        ChannelState::BeginningOfTape,
        &format!(
            "tape {} mounted in drive {}: volume {} of media set {}",
            next.label,
            drive.name,
            next.media_set_seq.unwrap_or(0),
            next.media_set.unwrap_or_default()
        ),
        send,
    )
    .await?;
    transition(
        st,
        channel_id,
        ChannelState::Writing,
        &format!("writing to tape {}", next.label),
        send,
    )
    .await
}

/// Where a channel's events go: the client's stream, or (for one drive of
/// a parallel restore) the task that merges the drives' events.
pub(crate) trait EventSink: Send {
    fn emit(&mut self, ev: ChannelEvent) -> impl std::future::Future<Output = ()> + Send;

    /// Emit `ev`; false when the client is gone (its stream failed).
    fn emit_checked(&mut self, ev: ChannelEvent) -> impl std::future::Future<Output = bool> + Send;
}

impl EventSink for FramedSend {
    async fn emit(&mut self, ev: ChannelEvent) {
        let _ = self.send(&StationReply::Event(ev)).await;
    }

    async fn emit_checked(&mut self, ev: ChannelEvent) -> bool {
        self.send(&StationReply::Event(ev)).await.is_ok()
    }
}

/// How often a client hears from a job that is waiting.
pub(crate) const PULSE: Duration = Duration::from_secs(3);

/// Whether a wait ends when its client goes away.
#[derive(Clone, Copy)]
pub(crate) enum Abandon<'a> {
    /// The job goes on without its client.
    Never,
    /// The job never started: a client gone (its connection closed, or an
    /// event it should get cannot be sent) cancels the wait.
    IfGone(Option<&'a quinn::Connection>),
}

/// Await `fut` while telling the client every [`PULSE`] what the channel
/// waits for; see [`Abandon`]. `fut` must be safe to drop at any await.
pub(crate) async fn waiting<T, E: EventSink>(
    sink: &mut E,
    what: &str,
    abandon: Abandon<'_>,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::pin!(fut);
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PULSE, PULSE);
    let gone = async {
        match abandon {
            Abandon::IfGone(Some(c)) => {
                c.closed().await;
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(gone);
    let cancelled = || {
        anyhow!(Failure::new(
            FailureCode::Cancelled,
            format!("the client went away while the job was waiting for {what}: cancelled before it started"),
        ))
    };
    loop {
        tokio::select! {
            r = &mut fut => return r,
            _ = &mut gone => return Err(cancelled()),
            _ = tick.tick() => {
                let ev = ChannelEvent::Waiting { what: what.to_string(), seconds: start.elapsed().as_secs() };
                if !sink.emit_checked(ev).await && matches!(abandon, Abandon::IfGone(_)) {
                    return Err(cancelled());
                }
            }
        }
    }
}

pub(crate) async fn transition<E: EventSink>(
    st: &Arc<Station>,
    channel_id: ChannelId,
    to: ChannelState,
    reason: &str,
    send: &mut E,
) -> Result<()> {
    st.catalog.transition(channel_id, to, reason, STATION_ACTOR).await?;
    tracing::info!(%channel_id, state = %to, reason, "channel transition");
    send.emit(ChannelEvent::State {
        state: to,
        reason: reason.to_string(),
    })
    .await;
    Ok(())
}
