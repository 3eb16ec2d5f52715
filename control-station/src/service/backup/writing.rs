//! A writing channel (a backup's, or a merge's) from its opening to its
//! end: the notes it gets while the front-end writes, a front-end that
//! dies and resumes, and its close (complete ABS, or Error and cleanup).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{AbsId, ChannelId, Failure, SegmentSeq};
use proto::wire::{ChannelEvent, Command};
use transport::Peer;

use super::job::{check_complete, closed_reason, tapes_in_order, OnTape, Written};
use super::tape_switch::tape_switched;
use crate::catalog::{DriveRow, PairRow};
use crate::channel::{ChannelInput, ChannelKind};
use crate::service::events::{EventSink, LiveChannel, PULSE};
use crate::service::{library, note_channel, registry, ChannelNote, NoteRx, Station};

/// Where a writing channel stands, for its close and cleanup.
pub(crate) struct Held {
    pub channel: LiveChannel,
    pub abs_id: AbsId,
    /// The pair and the drives the channel writes to.
    pub assignment: Option<(PairRow, Vec<DriveRow>)>,
    /// Tracks the ABS must hold to be complete (its track set), once known.
    pub expected_tracks: Option<u64>,
}

/// A backup channel writing ABS `abs_id`, registered for notes.
/// `client` asked for it, with `label` (the management record keeps both).
pub(crate) async fn open_writing_channel(
    st: &Arc<Station>,
    client: &Peer,
    abs_id: AbsId,
    label: &str,
) -> Result<(Held, NoteRx)> {
    st.catalog.describe_abs(abs_id, &client.name, label).await?;
    let channel_id = st
        .catalog
        .create_channel(ChannelKind::Backup, abs_id, &client.name)
        .await?;
    let (tx, rx) = note_channel();
    st.channels.lock().await.insert(channel_id, tx);
    let held = Held {
        channel: LiveChannel::new(channel_id, ChannelKind::Backup),
        abs_id,
        assignment: None,
        expected_tracks: None,
    };
    Ok((held, rx))
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
    let channel_id = held.channel.id();
    tracing::error!(%channel_id, abs_id = %held.abs_id, %reason, "writing channel failed");
    held.channel.fail(st, &reason).await;
    let abort = Command::AbortChannel {
        channel_id,
        reason: reason.clone(),
    };
    let fe = held.assignment.as_ref().map(|(pair, _)| pair.fe_name.clone());
    for peer in fe.iter().map(String::as_str).chain(also_abort.iter().copied()) {
        let _ = st.command(peer, &abort).await;
    }
    let _ = st.catalog.fail_abs(held.abs_id, &reason).await;
    release(st, held).await;
    Err(e)
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
    channel: &mut LiveChannel,
    drives: &[DriveRow],
    resume: Option<Resume<'_>>,
    rx: &mut NoteRx,
    send: &mut impl EventSink,
) -> Result<Written> {
    let channel_id = channel.id();
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
                send.emit(ChannelEvent::Waiting { what, seconds }).await;
                continue;
            }
        };
        quiet = Instant::now();
        match note {
            ChannelNote::FrontEndLost { reason } => {
                tracing::warn!(%channel_id, %reason, "front-end lost; the backup waits for it to resume");
                channel
                    .step(st, ChannelInput::FrontEndLost(reason.clone()), send)
                    .await?;
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
                send.emit(resumed).await;
            }
            ChannelNote::Progress { bytes } => {
                let _ = st.catalog.set_channel_bytes(channel_id, bytes).await;
                send.emit(ChannelEvent::Progress { bytes }).await;
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
            // Only reading channels skip segments.
            ChannelNote::Unreadable { .. } => {}
            ChannelNote::TapeSwitched { drive_id, full, next } => {
                let Some(drive) = drives.iter().find(|d| d.id == drive_id) else {
                    continue;
                };
                let first_drive = drives[0].id == drive_id;
                tape_switched(st, channel, drive, first_drive, &full, &next, send).await?;
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

/// A writing channel's front-end finished: check that the catalog holds
/// every segment, complete the ABS, leave the drives (the last writer of a
/// tape finishes it: directory, trailer, catalog, labels) and close the
/// channel with `what` and the figures as its reason.
pub(crate) async fn close_written(
    st: &Arc<Station>,
    held: &mut Held,
    w: Written,
    what: &str,
    send: &mut impl EventSink,
    started: Instant,
) -> Result<ChannelEvent> {
    let channel_id = held.channel.id();
    let abs_id = held.abs_id;
    let placed = st.catalog.segments_of(abs_id).await?;
    let expected = held
        .expected_tracks
        .ok_or_else(|| anyhow!("ABS {abs_id}: its track set is not known"))?;
    let row = st
        .catalog
        .load_abs(abs_id)
        .await?
        .ok_or_else(|| anyhow!("no ABS {abs_id}"))?;
    let on_tape = OnTape {
        segments: placed.len(),
        tracks: placed.iter().map(|s| s.track_count).sum(),
        metadata_placed: row.metadata_tape_id.is_some(),
    };
    check_complete(abs_id, &w, &on_tape, expected)?;
    st.catalog
        .complete_abs(abs_id, w.data_bytes, w.tracks, w.segments)
        .await?;
    st.catalog.set_channel_bytes(channel_id, w.data_bytes).await?;
    release(st, held).await;
    let tapes = tapes_in_order(placed.iter().map(|s| s.tape_label.as_str()));
    let reason = closed_reason(what, &w, &tapes);
    held.channel.step(st, ChannelInput::Finished(reason), send).await?;
    Ok(ChannelEvent::Finished {
        bytes: w.data_bytes,
        tracks: w.tracks,
        segments: w.segments,
        tapes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
