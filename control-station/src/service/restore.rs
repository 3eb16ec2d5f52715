//! A restore channel (seed FIG. 29): Requested → Opened → BeginningOfTape →
//! Reading (→ EndOfTape → BeginningOfTape → Reading for each further tape)
//! → Closed, or → Error with a reason naming tape, tape file and segment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::{RemapTable, VolumeRef};
use proto::wire::{
    ChannelEvent, Command, PeerAddr, RestoreChannel, RestoreOrder, RestoreTarget, SegmentRef, StationReply,
};
use tokio::sync::mpsc;
use transport::FramedSend;
use transport::Peer;

use super::backup::transition;
use super::{library, registry, ChannelNote, Station};
use crate::catalog::{SegmentRow, ABS_COMPLETE, STATION_ACTOR};
use crate::channel::{ChannelKind, ChannelState};

pub(crate) async fn run(st: Arc<Station>, client: &Peer, abs_id: u64, target: RestoreTarget, send: &mut FramedSend) {
    let started = Instant::now();
    let event = match restore(&st, client, abs_id, target, send, started).await {
        Ok(ev) => ev,
        Err(e) => ChannelEvent::Failed {
            reason: format!("{e:#}"),
        },
    };
    let _ = send.send(&StationReply::Event(event)).await;
}

async fn restore(
    st: &Arc<Station>,
    client: &Peer,
    abs_id: u64,
    target: RestoreTarget,
    send: &mut FramedSend,
    started: Instant,
) -> Result<ChannelEvent> {
    let id = i64::try_from(abs_id)?;
    let abs = st
        .catalog
        .load_abs(id)
        .await?
        .ok_or_else(|| anyhow!("no ABS {abs_id} in the catalog"))?;
    if abs.state != ABS_COMPLETE {
        bail!(
            "ABS {abs_id} is {} ({}), not complete",
            abs.state,
            abs.reason.clone().unwrap_or_default()
        );
    }
    let map = abs.map.clone();
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
    if segments.len() != abs.segment_count as usize {
        bail!(
            "the catalog lists {} segments of ABS {abs_id}, it should have {}",
            segments.len(),
            abs.segment_count
        );
    }
    // Group by tape, each tape's files in position order.
    let mut by_tape: Vec<(i64, Vec<SegmentRow>)> = Vec::new();
    for s in segments {
        match by_tape.iter_mut().find(|(t, _)| *t == s.tape_id) {
            Some((_, v)) => v.push(s),
            None => by_tape.push((s.tape_id, vec![s])),
        }
    }
    for (_, v) in by_tape.iter_mut() {
        v.sort_by_key(|s| s.tape_file);
    }

    let channel_id = st
        .catalog
        .create_channel(ChannelKind::Restore, id, &client.name)
        .await?;
    let _ = send
        .send(&StationReply::Event(ChannelEvent::Started {
            channel_id: channel_id as u64,
            abs_id,
            object_size: map.object_size,
            tracks: abs.track_count as u64,
            // Restore progress counts object bytes written at the destination.
            track_bytes: map.object_size,
        }))
        .await;
    let (tx, rx) = mpsc::unbounded_channel();
    st.channels.lock().await.insert(channel_id as u64, tx);
    let res = read_tapes(
        st, channel_id, abs_id, &map, &remap, &target, &dest_node, by_tape, rx, send,
    )
    .await;
    st.channels.lock().await.remove(&(channel_id as u64));
    match res {
        Ok((bytes, tracks, segments, tapes)) => {
            if bytes != map.object_size {
                let reason = format!("{bytes} bytes written, the object has {}", map.object_size);
                let _ = st
                    .catalog
                    .transition(channel_id, ChannelState::Error, &reason, STATION_ACTOR)
                    .await;
                bail!(reason);
            }
            transition(
                st,
                channel_id,
                ChannelState::Closed,
                &format!("{segments} segments, {bytes} bytes restored"),
                send,
            )
            .await?;
            Ok(ChannelEvent::Finished {
                bytes,
                tracks,
                segments,
                tapes,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            let reason = format!("{e:#}");
            tracing::error!(channel_id, abs_id, %reason, "restore channel failed");
            let _ = st
                .catalog
                .transition(channel_id, ChannelState::Error, &reason, STATION_ACTOR)
                .await;
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_tapes(
    st: &Arc<Station>,
    channel_id: i64,
    abs_id: u64,
    map: &proto::abs::AbsMap,
    remap: &RemapTable,
    target: &RestoreTarget,
    dest_node: &str,
    by_tape: Vec<(i64, Vec<SegmentRow>)>,
    mut rx: mpsc::UnboundedReceiver<ChannelNote>,
    send: &mut FramedSend,
) -> Result<(u64, u64, u32, Vec<String>)> {
    let registry::Assignment { pair, drive, .. } =
        registry::assign(st, Duration::from_secs(600), registry::Purpose::Restore).await?;
    st.depends_on(channel_id as u64, &[&pair.fe_name, &pair.be_name, dest_node])
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
        let (mut bytes, mut tracks, mut segments) = (0u64, 0u64, 0u32);
        let mut labels = Vec::new();
        let n_tapes = by_tape.len();
        for (i, (tape_id, files)) in by_tape.into_iter().enumerate() {
            let tape = st
                .catalog
                .tape(tape_id)
                .await?
                .ok_or_else(|| anyhow!("tape {tape_id} vanished"))?;
            if i > 0 {
                transition(st, channel_id, ChannelState::EndOfTape, "next tape of the ABS", send).await?;
            }
            library::mount_for_read(st, &pair.be_name, &drive, &tape).await?;
            st.catalog
                .assign_channel(channel_id, pair.fe_id, pair.be_id, drive.id, Some(tape.id))
                .await?;
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
                let group_tracks: u64 = files.iter().map(|s| s.track_count as u64).sum();
                let open = RestoreChannel {
                    channel_id: channel_id as u64,
                    abs_id,
                    back_end: PeerAddr {
                        name: pair.be_name.clone(),
                        address: pair.be_address.clone(),
                    },
                    drive: drive.name.clone(),
                    files: refs,
                };
                st.command_ok(&pair.fe_name, &Command::OpenRestore(open))
                    .await
                    .context("opening the front-end")?;
                transition(
                    st,
                    channel_id,
                    ChannelState::Reading,
                    &format!("reading {} files of tape {}", files.len(), tape.label),
                    send,
                )
                .await?;
                let order = RestoreOrder {
                    channel_id: channel_id as u64,
                    abs_id,
                    front_end: PeerAddr {
                        name: pair.fe_name.clone(),
                        address: pair.fe_address.clone(),
                    },
                    map: map.clone(),
                    remap: remap.clone(),
                    target: target.clone(),
                    tracks: group_tracks,
                };
                st.command_ok(dest_node, &Command::ReceiveRestore(order))
                    .await
                    .context("ordering the restore")?;
                loop {
                    match rx
                        .recv()
                        .await
                        .ok_or_else(|| anyhow!("the channel's note queue closed"))?
                    {
                        ChannelNote::Progress { bytes: b } => {
                            let _ = send
                                .send(&StationReply::Event(ChannelEvent::Progress { bytes: bytes + b }))
                                .await;
                        }
                        ChannelNote::Finished {
                            data_bytes,
                            tracks: t,
                            segments: s,
                        } => {
                            bytes += data_bytes;
                            tracks += t;
                            segments += s;
                            let _ = st.catalog.set_channel_bytes(channel_id, bytes as i64).await;
                            let _ = send.send(&StationReply::Event(ChannelEvent::Progress { bytes })).await;
                            break;
                        }
                        ChannelNote::Failed { reason } => bail!("{reason}"),
                    }
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            library::dismount(st, &pair.be_name, &drive, &tape, false).await?;
            step?;
            labels.push(tape.label.clone());
            let _ = n_tapes;
        }
        Ok((bytes, tracks, segments, labels))
    }
    .await;
    registry::release(st, Some(&pair), &drive).await;
    st.depends_on(channel_id as u64, &[]).await;
    result
}
