//! Synthetic full (seed FIG. 25/26): the movers merge a chain (a full and
//! its differentials) into a new full ABS on tape, without the primary node.
//!
//! One back-end with two free drives: one writes the new ABS (a backup
//! channel, Opened → BeginningOfTape → Writing → Closed) on a scratch tape,
//! the other reads the chain newest first (one restore channel per ABS of
//! the chain). The front-end keeps the first version of each track it
//! gets, so each track ends up in its latest version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{AbsId, ChannelId, Failure, SegmentSeq};
use proto::wire::{BackupChannel, ChannelEvent, Command, StationReply};
use transport::{FramedSend, Peer};

use super::access::{Access, Right};
use super::backup::{await_written, chain_members, close_written, open_writing_channel, settle, transition, Held};
use super::restore::{planned, read_tapes_on, ReadInto, TapeReading};
use super::{failure_of, library, note_channel, registry, NoteRx, Station};
use crate::catalog::{Abs, DriveRow, PairRow, Segment, STATION_ACTOR};
use crate::channel::{ChannelKind, ChannelState};
use crate::plan::{chain_at, chain_of, RestorePlan};

pub(crate) async fn run(
    st: Arc<Station>,
    client: &Peer,
    primary: String,
    object_name: String,
    abs_id: Option<AbsId>,
    send: &mut FramedSend,
) {
    let started = Instant::now();
    let event = match merge(&st, client, &primary, &object_name, abs_id, send, started).await {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed(failure_of(&e)),
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

#[allow(clippy::too_many_arguments)]
async fn merge(
    st: &Arc<Station>,
    client: &Peer,
    primary: &str,
    object_name: &str,
    abs_id: Option<AbsId>,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    // A synthetic full is a new backup of the object.
    Access::of(st, client)
        .await?
        .require(Right::Backup, primary, Some(object_name))?;
    let members = chain_members(st, primary, object_name).await?;
    let tip = match abs_id {
        None => *chain_at(object_name, &members, None)?
            .last()
            .ok_or_else(|| anyhow!(Failure::not_found(format!("{object_name} has no backup"))))?,
        Some(id) => id,
    };
    let chain = chain_of(&members, tip)?;
    if chain.len() < 2 {
        bail!(Failure::refused(format!(
            "ABS {tip} is a full backup already: there is no chain to merge"
        )));
    }
    let (_, new_abs) = st.catalog.create_synthetic_abs(tip).await?;
    let abs = st
        .catalog
        .load_abs(new_abs)
        .await?
        .ok_or_else(|| anyhow!("ABS {new_abs} vanished"))?;
    let (mut held, rx) = open_writing_channel(st, client, new_abs).await?;
    let channel_id = held.channel_id.unwrap_or_default();
    let mut reader: Option<(PairRow, DriveRow)> = None;
    let outcome = run_merge(st, client, &mut held, &mut reader, &chain, &abs, tip, rx, send, started).await;
    st.channels.lock().await.remove(&channel_id);
    st.depends_on(channel_id, &[]).await;
    if let Some((_, drive)) = reader.take() {
        registry::release(st, None, &drive).await;
    }
    settle(st, &mut held, outcome, &[]).await
}

#[allow(clippy::too_many_arguments)]
async fn run_merge(
    st: &Arc<Station>,
    client: &Peer,
    held: &mut Held,
    reader: &mut Option<(PairRow, DriveRow)>,
    chain: &[AbsId],
    abs: &Abs,
    tip: AbsId,
    mut rx: NoteRx,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let channel_id = held.channel_id.ok_or_else(|| anyhow!("no channel"))?;
    let new_abs = held.abs_id.ok_or_else(|| anyhow!("no ABS"))?;
    let map = &abs.map;
    let track_set = map.track_set();
    held.expected_tracks = Some(track_set.len());
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Started {
            channel_id,
            abs_id: new_abs,
            object_size: map.object_size,
            tracks: track_set.len(),
            track_bytes: track_set
                .iter()
                .filter_map(|t| map.track_extent(t).ok())
                .map(|(_, l)| l)
                .sum(),
        }))
        .await;
    let ids: Vec<String> = chain.iter().map(|i| format!("ABS {i}")).collect();
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Chain {
            members: chain.to_vec(),
            detail: format!("merging {} into synthetic full ABS {new_abs}", ids.join(", ")),
        }))
        .await;

    let (pair, drives) = registry::assign_drives(st, Duration::from_secs(600), 2)
        .await
        .context("a merge reads on one drive and writes on another of the same back-end")?;
    let (write_drive, read_drive) = (drives[0].clone(), drives[1].clone());
    registry::use_for_reading(st, &read_drive).await;
    *reader = Some((pair.clone(), read_drive.clone()));
    held.assignment = Some((pair.clone(), vec![write_drive.clone()]));
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name]).await;
    transition(
        st,
        channel_id,
        ChannelState::Opened,
        &format!(
            "front-end {}, back-end {}, drive {} writes, drive {} reads",
            pair.fe_name, pair.be_name, write_drive.name, read_drive.name
        ),
        send,
    )
    .await?;
    let tape = match library::mount_scratch_for_write(st, &pair.be_name, &write_drive).await {
        Ok(t) => {
            registry::tape_mounted(st, &write_drive, &t).await;
            t
        }
        Err(e) => {
            registry::mount_failed(st, &write_drive).await;
            return Err(e);
        }
    };
    st.catalog
        .assign_channel(channel_id, pair.fe_id, pair.be_id, write_drive.id, Some(tape.id))
        .await?;
    transition(
        st,
        channel_id,
        ChannelState::BeginningOfTape,
        &format!("tape {} mounted in drive {}", tape.label, write_drive.name),
        send,
    )
    .await?;
    let created_unix = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let open = BackupChannel {
        channel_id,
        abs_id: new_abs,
        object_name: abs.object_name.clone(),
        back_end: st.peer_addr(&pair.be_name, &pair.be_address).await,
        drives: vec![write_drive.name.clone()],
        map: map.clone(),
        track_set,
        base_abs_id: None,
        merged_from_abs_id: Some(tip),
        created_unix,
        // No primary node takes part: nothing may open its stream.
        primary: String::new(),
        token: rand::random(),
    };
    st.command_ok(&pair.fe_name, &Command::OpenMerge(open))
        .await
        .context("opening the merge on the front-end")?;
    transition(
        st,
        channel_id,
        ChannelState::Writing,
        &format!("writing the synthetic full of ABS {tip} to tape {}", tape.label),
        send,
    )
    .await?;

    // The chain, newest first: the first version of a track the front-end
    // gets is the latest.
    for &src in chain.iter().rev() {
        read_one(st, client, channel_id, src, &pair, &read_drive, send).await?;
    }
    st.command_ok(&pair.fe_name, &Command::FinishMerge { channel_id })
        .await
        .context("finishing the merge")?;
    let written = await_written(st, channel_id, std::slice::from_ref(&write_drive), None, &mut rx, send).await?;
    let what = format!("synthetic full of ABS {tip}: ");
    close_written(st, held, written, &what, send, started).await
}

/// Read one ABS of the chain into the merge on the reading drive, as a
/// restore channel of that ABS.
async fn read_one(
    st: &Arc<Station>,
    client: &Peer,
    merge_channel_id: ChannelId,
    src: AbsId,
    pair: &PairRow,
    drive: &DriveRow,
    send: &mut FramedSend,
) -> Result<()> {
    let segments = st.catalog.segments_of(src).await?;
    if segments.is_empty() {
        // A differential with no change.
        return Ok(());
    }
    let plan = RestorePlan::new(&planned(&segments), 1).context("planning the read")?;
    let jobs = plan.drive_queues().first().cloned().unwrap_or_default();
    let by_seq: HashMap<SegmentSeq, Segment> = segments.into_iter().map(|s| (s.seq, s)).collect();
    let channel_id = st
        .catalog
        .create_channel(ChannelKind::Restore, src, &client.name)
        .await?;
    let (tx, rx) = note_channel();
    st.channels.lock().await.insert(channel_id, tx);
    st.depends_on(channel_id, &[&pair.fe_name, &pair.be_name]).await;
    let reading = TapeReading {
        channel_id,
        abs_id: src,
        segments: &by_seq,
        pair,
        drive,
    };
    let result = async {
        transition(
            st,
            channel_id,
            ChannelState::Opened,
            &format!(
                "read into merge channel {merge_channel_id}: back-end {}, drive {}",
                pair.be_name, drive.name
            ),
            send,
        )
        .await?;
        let into = ReadInto::Merge { merge_channel_id };
        read_tapes_on(st, &reading, into, jobs, rx, send).await
    }
    .await;
    st.channels.lock().await.remove(&channel_id);
    st.depends_on(channel_id, &[]).await;
    match result {
        Ok((t, records)) => {
            transition(
                st,
                channel_id,
                ChannelState::Closed,
                &format!(
                    "{} segments of ABS {src} read from {}, {} bytes of them kept ({records} tape records read)",
                    t.segments,
                    t.tapes.join(", "),
                    t.bytes
                ),
                send,
            )
            .await?;
            Ok(())
        }
        Err(e) => {
            let reason = format!("{e:#}");
            let _ = st
                .catalog
                .transition(channel_id, ChannelState::Error, &reason, STATION_ACTOR)
                .await;
            Err(e.context(format!("reading ABS {src}")))
        }
    }
}
