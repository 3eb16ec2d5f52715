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
    drives: u32,
    send: &mut FramedSend,
) {
    let started = Instant::now();
    let result = backup(&st, client, &object_name, &primary, object, drives, send, started).await;
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
    /// The pair and the drives the channel writes to.
    assignment: Option<(PairRow, Vec<DriveRow>)>,
}

#[allow(clippy::too_many_arguments)]
async fn backup(
    st: &Arc<Station>,
    client: &Peer,
    object_name: &str,
    primary: &str,
    object: ObjectSpec,
    drives: u32,
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
    let want = (drives as usize).max(1);
    let outcome = drive_channel(st, &mut held, object_name, primary, map, want, rx, send, started).await;
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

/// Leave the drives; the last writer of each finishes and dismounts its
/// tape (the tape it holds now: it changes at end of tape).
async fn release(st: &Arc<Station>, held: &mut Held) {
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
    primary: &str,
    map: AbsMap,
    want_drives: usize,
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

    let (pair, drives, joined) = if want_drives <= 1 {
        let registry::Assignment { pair, drive, joined } =
            registry::assign(st, Duration::from_secs(600), registry::Purpose::Backup).await?;
        (pair, vec![drive], joined)
    } else {
        let (pair, drives) = registry::assign_drives(st, Duration::from_secs(600), want_drives).await?;
        (pair, drives, false)
    };
    held.assignment = Some((pair.clone(), drives.clone()));
    st.depends_on(channel_id as u64, &[&pair.fe_name, &pair.be_name, primary])
        .await;
    let names: Vec<String> = drives.iter().map(|d| d.name.clone()).collect();
    let opened = format!(
        "front-end {}, back-end {}, drive {}",
        pair.fe_name,
        pair.be_name,
        names.join(", ")
    );
    transition(st, channel_id, ChannelState::Opened, &opened, send).await?;

    let tapes = if joined {
        vec![registry::wait_for_tape(st, &drives[0], Duration::from_secs(600)).await?]
    } else {
        mount_all(st, &pair.be_name, &drives).await?
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
    let open = BackupChannel {
        channel_id: channel_id as u64,
        abs_id: abs_id as u64,
        object_name: object_name.to_string(),
        back_end: PeerAddr {
            name: pair.be_name.clone(),
            address: pair.be_address.clone(),
        },
        drives: names.clone(),
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
        &format!(
            "writing to tape {}",
            tapes.iter().map(|t| t.label.as_str()).collect::<Vec<_>>().join(", ")
        ),
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
            ChannelNote::TapeSwitched { drive_id, full, next } => {
                let Some(drive) = drives.iter().find(|d| d.id == drive_id) else {
                    continue;
                };
                tape_switched(st, channel_id, drive, drives[0].id == drive_id, &full, &next, send).await?;
            }
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
        &format!("{segments} segments, {tracks} tracks, {data_bytes} bytes on tape {}", {
            let mut labels: Vec<&str> = placed.iter().map(|s| s.tape_label.as_str()).collect();
            labels.dedup();
            labels.sort_unstable();
            labels.dedup();
            labels.join(", ")
        }),
        send,
    )
    .await?;
    let mut tapes: Vec<String> = Vec::new();
    for s in &placed {
        if !tapes.contains(&s.tape_label) {
            tapes.push(s.tape_label.clone());
        }
    }
    Ok(ChannelEvent::Finished {
        bytes: data_bytes,
        tracks,
        segments,
        tapes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The tape in one of the channel's drives was full and the media set
/// continues on `next`: Writing → EndOfTape → BeginningOfTape → Writing.
async fn tape_switched(
    st: &Arc<Station>,
    channel_id: i64,
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
            next.media_set.unwrap_or(0)
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
}

impl EventSink for FramedSend {
    async fn emit(&mut self, ev: ChannelEvent) {
        let _ = self.send(&StationReply::Event(ev)).await;
    }
}

pub(crate) async fn transition<E: EventSink>(
    st: &Arc<Station>,
    channel_id: i64,
    to: ChannelState,
    reason: &str,
    send: &mut E,
) -> Result<()> {
    st.catalog.transition(channel_id, to, reason, STATION_ACTOR).await?;
    tracing::info!(channel_id, state = to.as_str(), reason, "channel transition");
    send.emit(ChannelEvent::State {
        state: to.as_str().to_string(),
        reason: reason.to_string(),
    })
    .await;
    Ok(())
}
