//! A backup channel (seed FIG. 28): Requested → Opened → BeginningOfTape →
//! Writing → Closed, or → Error with a reason.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::{AbsMap, ObjectExtent};
use proto::wire::{BackupChannel, ChannelEvent, Command, ObjectSpec, PeerAddr, StationReply};
use tokio::sync::mpsc;
use transport::FramedSend;
use transport::Peer;

use super::{library, registry, ChannelNote, Station};
use crate::catalog::{DriveRow, PairRow, TapeRow, ABS_FULL, STATION_ACTOR};
use crate::channel::{ChannelKind, ChannelState};

/// Run one backup for a client, streaming events to it.
pub(crate) async fn run(
    st: Arc<Station>,
    client: &Peer,
    object_name: String,
    primary: String,
    object: ObjectSpec,
    send: &mut FramedSend,
) {
    let started = Instant::now();
    let result = backup(&st, client, &object_name, &primary, object, send, started).await;
    let event = match result {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed {
            reason: format!("{e:#}"),
        },
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

/// Where a channel stands, for cleanup on failure.
#[derive(Default)]
struct Held {
    channel_id: Option<i64>,
    abs_id: Option<i64>,
    assignment: Option<(PairRow, DriveRow)>,
    tape: Option<TapeRow>,
}

async fn backup(
    st: &Arc<Station>,
    client: &Peer,
    object_name: &str,
    primary: &str,
    object: ObjectSpec,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let node = registry::primary(st, primary).await?;
    let extents = match object {
        ObjectSpec::Volume(v) => {
            let vol = node
                .volumes
                .iter()
                .find(|x| x.name == v)
                .ok_or_else(|| anyhow!("primary node {primary} has no volume {v:?}"))?;
            vec![ObjectExtent {
                volume: v,
                offset: 0,
                length: vol.size,
            }]
        }
        ObjectSpec::Extents(e) => e,
    };
    let map = AbsMap::from_extents(&node.volumes, &extents).context("the logical object's extents")?;
    let (_, abs_id) = st
        .catalog
        .create_abs(object_name, node.id, ABS_FULL, None, &map)
        .await?;
    let channel_id = st
        .catalog
        .create_channel(ChannelKind::Backup, abs_id, &client.name)
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    st.channels.lock().await.insert(channel_id as u64, tx);
    let mut held = Held {
        channel_id: Some(channel_id),
        abs_id: Some(abs_id),
        ..Default::default()
    };
    let outcome = drive_channel(st, &mut held, object_name, primary, map, rx, send, started).await;
    st.channels.lock().await.remove(&(channel_id as u64));
    st.depends_on(channel_id as u64, &[]).await;
    match outcome {
        Ok(ev) => {
            release(st, &mut held).await;
            Ok(ev)
        }
        Err(e) => {
            let reason = format!("{e:#}");
            tracing::error!(channel_id, abs_id, %reason, "backup channel failed");
            let _ = st
                .catalog
                .transition(channel_id, ChannelState::Error, &reason, STATION_ACTOR)
                .await;
            let _ = st.catalog.fail_abs(abs_id, &reason).await;
            if let Some((pair, _)) = &held.assignment {
                let abort = Command::AbortChannel {
                    channel_id: channel_id as u64,
                    reason: reason.clone(),
                };
                let _ = st.command(&pair.fe_name, &abort).await;
                let _ = st.command(primary, &abort).await;
            }
            release(st, &mut held).await;
            Err(e)
        }
    }
}

/// Leave the drive; the last writer finishes and dismounts the tape.
async fn release(st: &Arc<Station>, held: &mut Held) {
    if let Some((pair, drive)) = held.assignment.take() {
        if registry::leave_writing(st, &pair, &drive).await {
            if let Some(tape) = held.tape.take() {
                if let Err(e) = library::dismount(st, &pair.be_name, &drive, &tape, true).await {
                    tracing::error!(error = %format!("{e:#}"), tape = %tape.label, "dismount failed");
                }
            }
            registry::release(st, None, &drive).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive_channel(
    st: &Arc<Station>,
    held: &mut Held,
    object_name: &str,
    primary: &str,
    map: AbsMap,
    mut rx: mpsc::UnboundedReceiver<ChannelNote>,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let channel_id = held.channel_id.ok_or_else(|| anyhow!("no channel"))?;
    let abs_id = held.abs_id.ok_or_else(|| anyhow!("no ABS"))?;
    let track_set = map.track_set();
    let track_bytes: u64 = track_set
        .iter()
        .filter_map(|t| map.track_extent(t).ok())
        .map(|(_, l)| l)
        .sum();
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Started {
            channel_id: channel_id as u64,
            abs_id: abs_id as u64,
            object_size: map.object_size,
            tracks: track_set.len(),
            track_bytes,
        }))
        .await;

    let registry::Assignment { pair, drive, joined } =
        registry::assign(st, Duration::from_secs(600), registry::Purpose::Backup).await?;
    held.assignment = Some((pair.clone(), drive.clone()));
    st.depends_on(channel_id as u64, &[&pair.fe_name, &pair.be_name, primary])
        .await;
    let opened = format!(
        "front-end {}, back-end {}, drive {}",
        pair.fe_name, pair.be_name, drive.name
    );
    transition(st, channel_id, ChannelState::Opened, &opened, send).await?;

    let tape = if joined {
        registry::wait_for_tape(st, &drive, Duration::from_secs(600)).await?
    } else {
        match library::mount_for_write(st, &pair.be_name, &drive).await {
            Ok(tape) => {
                registry::tape_mounted(st, &drive, &tape).await;
                tape
            }
            Err(e) => {
                registry::mount_failed(st, &drive).await;
                return Err(e);
            }
        }
    };
    held.tape = Some(tape.clone());
    st.catalog
        .assign_channel(channel_id, pair.fe_id, pair.be_id, drive.id, Some(tape.id))
        .await?;
    let how = if joined { "interleaving on" } else { "mounted" };
    transition(
        st,
        channel_id,
        ChannelState::BeginningOfTape,
        &format!("tape {} {how} in drive {}", tape.label, drive.name),
        send,
    )
    .await?;

    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let open = BackupChannel {
        channel_id: channel_id as u64,
        abs_id: abs_id as u64,
        object_name: object_name.to_string(),
        back_end: PeerAddr {
            name: pair.be_name.clone(),
            address: pair.be_address.clone(),
        },
        drive: drive.name.clone(),
        map: map.clone(),
        tracks: track_set.len(),
        created_unix,
    };
    st.command_ok(&pair.fe_name, &Command::OpenBackup(open))
        .await
        .context("opening the front-end")?;
    transition(
        st,
        channel_id,
        ChannelState::Writing,
        &format!("writing to tape {}", tape.label),
        send,
    )
    .await?;
    let order = Command::SendTrackSet {
        channel_id: channel_id as u64,
        abs_id: abs_id as u64,
        front_end: PeerAddr {
            name: pair.fe_name.clone(),
            address: pair.fe_address.clone(),
        },
        map,
    };
    st.command_ok(primary, &order)
        .await
        .context("ordering the primary node to send the track set")?;

    let (data_bytes, tracks, segments) = loop {
        let note = rx
            .recv()
            .await
            .ok_or_else(|| anyhow!("the channel's note queue closed"))?;
        match note {
            ChannelNote::Progress { bytes } => {
                let _ = st.catalog.set_channel_bytes(channel_id, bytes as i64).await;
                let _ = send.send(&StationReply::Event(ChannelEvent::Progress { bytes })).await;
            }
            ChannelNote::Finished {
                data_bytes,
                tracks,
                segments,
            } => break (data_bytes, tracks, segments),
            ChannelNote::Failed { reason } => bail!("{reason}"),
        }
    };
    let placed = st.catalog.segments_of(abs_id).await?;
    if placed.len() != segments as usize {
        bail!(
            "the front-end reports {segments} segments but the catalog has {}",
            placed.len()
        );
    }
    st.catalog
        .complete_abs(abs_id, data_bytes as i64, tracks as i64, segments)
        .await?;
    st.catalog.set_channel_bytes(channel_id, data_bytes as i64).await?;
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Progress { bytes: data_bytes }))
        .await;
    // The last writer of the tape finishes it (directory, trailer, catalog,
    // labels) before its channel closes.
    release(st, held).await;
    transition(
        st,
        channel_id,
        ChannelState::Closed,
        &format!(
            "{segments} segments, {tracks} tracks, {data_bytes} bytes on tape {}",
            tape.label
        ),
        send,
    )
    .await?;
    let mut tapes: Vec<String> = placed.iter().map(|s| s.tape_label.clone()).collect();
    tapes.dedup();
    Ok(ChannelEvent::Finished {
        bytes: data_bytes,
        tracks,
        segments,
        tapes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub(crate) async fn transition(
    st: &Arc<Station>,
    channel_id: i64,
    to: ChannelState,
    reason: &str,
    send: &mut FramedSend,
) -> Result<()> {
    st.catalog.transition(channel_id, to, reason, STATION_ACTOR).await?;
    tracing::info!(channel_id, state = to.as_str(), reason, "channel transition");
    let _ = send
        .send(&StationReply::Event(ChannelEvent::State {
            state: to.as_str().to_string(),
            reason: reason.to_string(),
        }))
        .await;
    Ok(())
}
