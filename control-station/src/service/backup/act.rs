//! The act step of a backup: carry out a [`BackupJob`] on a channel that
//! exists: get drives, have the primary node take the snapshot, mount,
//! open the front-end, order the track set, follow the writing, close.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::TrackSet;
use proto::domain::{AbsId, ChannelId, Failure};
use proto::wire::{BackupChannel, ChannelEvent, ChannelToken, Command, CommandReply};

use super::job::{track_bytes, BackupJob};
use super::writing::{await_written, close_written, Held, Resume};
use crate::catalog::{CapturedEpoch, DriveRow, TapeRow};
use crate::channel::ChannelInput;
use crate::service::events::{waiting, Abandon, EventSink};
use crate::service::{library, registry, NoteRx, Station};

/// Run `job` on the channel of `held` until its ABS is complete.
pub(super) async fn act(
    st: &Arc<Station>,
    held: &mut Held,
    job: &BackupJob,
    abandon: Abandon<'_>,
    mut rx: NoteRx,
    send: &mut impl EventSink,
    started: Instant,
) -> Result<ChannelEvent> {
    let channel_id = held.channel.id();
    let abs_id = held.abs_id;
    // The node that reads: the object's, or the one holding the version.
    let primary = job.read_node();
    let want_drives = job.want_drives;
    let map = &job.map;
    let (pair, drives, joined) = if want_drives <= 1 {
        let assigned = registry::assign(
            st,
            Duration::from_secs(600),
            registry::Purpose::Backup { pool: &job.pool },
        );
        let registry::Assignment { pair, drive, joined } = waiting(send, "a drive", abandon, assigned).await?;
        (pair, vec![drive], joined)
    } else {
        let who = registry::Purpose::Backup { pool: &job.pool }.job();
        let assigned = registry::assign_drives(st, Duration::from_secs(600), want_drives, &who, Some(&job.pool));
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
    let (track_set, notes) = take_snapshot(st, channel_id, abs_id, job).await?;
    held.expected_tracks = Some(track_set.len());
    send.emit(ChannelEvent::Started {
        channel_id,
        abs_id,
        object_size: map.object_size,
        tracks: track_set.len(),
        track_bytes: track_bytes(map, &track_set),
    })
    .await;
    send.emit(ChannelEvent::Snapshot {
        detail: job.snapshot_detail(&track_set),
    })
    .await;
    if let Some(r) = &job.reader {
        let detail = format!(
            "read from version {} on {} ({}), its point in time {}: the production volumes are not read",
            r.version,
            r.node,
            r.pairs.join(", "),
            crate::service::listing::ts(r.point_in_time)
        );
        send.emit(ChannelEvent::Snapshot { detail }).await;
    }
    for note in notes {
        send.emit(ChannelEvent::Snapshot { detail: note }).await;
    }

    let names: Vec<String> = drives.iter().map(|d| d.name.clone()).collect();
    let opened = format!(
        "front-end {}, back-end {}, drive {}",
        pair.fe_name,
        pair.be_name,
        names.join(", ")
    );
    held.channel.step(st, ChannelInput::Assigned(opened), send).await?;

    let tapes = if joined {
        let mounted = registry::wait_for_tape(st, &drives[0], Duration::from_secs(600));
        vec![waiting(send, "the tape another backup is mounting", Abandon::Never, mounted).await?]
    } else {
        waiting(
            send,
            "tapes to mount",
            Abandon::Never,
            mount_all(st, &pair.be_name, &drives, &job.pool),
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
    held.channel
        .step(st, ChannelInput::TapeMounted(mounted.join("; ")), send)
        .await?;

    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The channel's capability: only the front-end and the node learn it.
    let token: ChannelToken = rand::random();
    let open = BackupChannel {
        channel_id,
        abs_id,
        object_name: job.object_name.clone(),
        back_end: st.peer_addr(&pair.be_name, &pair.be_address).await,
        drives: names.clone(),
        map: map.clone(),
        track_set: track_set.clone(),
        base_abs_id: job.base_abs_id,
        merged_from_abs_id: None,
        created_unix,
        primary: primary.to_string(),
        token,
    };
    st.command_ok(&pair.fe_name, &Command::OpenBackup(open))
        .await
        .context("opening the front-end")?;
    let writing = format!(
        "writing to tape {}",
        tapes.iter().map(|t| t.label.as_str()).collect::<Vec<_>>().join(", ")
    );
    held.channel.step(st, ChannelInput::StreamOpened(writing), send).await?;
    let order = Command::SendTrackSet {
        channel_id,
        abs_id,
        front_end: st.peer_addr(&pair.fe_name, &pair.fe_address).await,
        map: job.read_map().clone(),
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
    let written = await_written(st, &mut held.channel, &drives, Some(resume), &mut rx, send).await?;
    send.emit(ChannelEvent::Progress {
        bytes: written.data_bytes,
    })
    .await;
    close_written(st, held, written, "", send, started).await
}

/// Mount a tape for writing in each drive, all at once.
async fn mount_all(st: &Arc<Station>, be: &str, drives: &[DriveRow], pool: &str) -> Result<Vec<TapeRow>> {
    let mounts = drives.iter().map(|drive| async move {
        match library::mount_for_write(st, be, drive, pool).await {
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

/// Have the reading node take the backup's snapshot; record the epochs it
/// captured (the point in time), or, reading a copy version, what the
/// version captured of the sources and its point in time. Returns the
/// tracks to send and notes.
async fn take_snapshot(
    st: &Arc<Station>,
    channel_id: ChannelId,
    abs_id: AbsId,
    job: &BackupJob,
) -> Result<(TrackSet, Vec<String>)> {
    let primary = job.read_node();
    let map = job.read_map();
    let since = job.since.clone();
    let differential = !since.is_empty();
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
    let changed = differential.then_some(&tracks);
    match &job.reader {
        None => st.catalog.record_snapshot(abs_id, &captured, changed).await?,
        Some(r) => {
            let version = r.version.to_string();
            st.catalog
                .record_snapshot_of(abs_id, &r.epochs, changed, Some((&version, r.point_in_time)))
                .await?
        }
    };
    Ok((tracks, notes))
}
