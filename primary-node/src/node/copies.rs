//! The sending side of copies between primary nodes (copy versions, seed
//! 004), and the endpoint that accepts copy streams from other nodes; the
//! receiving side is [`crate::copy`].

use super::*;

/// How a stream reads the tracks of a snapshot `channel_id` took of
/// `names` (its map's volumes, by index), and releases them once the
/// receiver has them durable (their side copies go).
pub(super) fn snapshot_reader(
    host: &Arc<crate::host::HostIo>,
    channel_id: ChannelId,
    names: &[String],
) -> (Arc<ReadTrack>, impl Fn(&[proto::abs::TrackAddr]) + Sync) {
    let read_host = host.clone();
    let read_names = names.to_vec();
    let read: Arc<ReadTrack> = Arc::new(move |addr: proto::abs::TrackAddr, offset: u64, buf: &mut [u8]| {
        let name = read_names
            .get(usize::from(addr.volume))
            .ok_or_else(|| anyhow::anyhow!("volume index {}", addr.volume))?;
        read_host
            .volume(name)?
            .read_for_backup(channel_id.get(), addr.track, offset, buf)
    });
    let release_host = host.clone();
    let release_names = names.to_vec();
    let release = move |acked: &[proto::abs::TrackAddr]| {
        for (i, name) in release_names.iter().enumerate() {
            let mine: Vec<u64> = acked
                .iter()
                .filter(|a| usize::from(a.volume) == i)
                .map(|a| a.track)
                .collect();
            if let (false, Ok(h)) = (mine.is_empty(), release_host.volume(name)) {
                h.release(channel_id.get(), &mine);
            }
        }
    };
    (read, release)
}

/// Send a copy's tracks from the snapshot it took to the receiving node;
/// the snapshot goes when it ends, however it ends.
pub(super) async fn send_copy(node: &Node, c: proto::wire::CopySend) -> CommandReply {
    let names = map_volume_names(&c.map);
    let copy_id = c.copy_id;
    let checked = c
        .map
        .validate()
        .map_err(|e| format!("invalid copy map: {e}"))
        .and_then(|()| {
            c.tracks
                .iter()
                .map(|t| c.map.track_extent(t).map(|(_, n)| n))
                .sum::<Result<u64, _>>()
                .map_err(|e| format!("a track of the copy is not in its map: {e}"))
        });
    let bytes = match checked {
        Ok(b) => b,
        Err(e) => {
            end_backup(&node.host, copy_id, &names);
            return CommandReply::Error(Failure::invalid(e));
        }
    };
    let (read, release) = snapshot_reader(&node.host, copy_id, &names);
    let order = SendOrder {
        channel_id: copy_id,
        purpose: Purpose::Copy,
        front_end: c.receiver,
        map: c.map,
        tracks: c.tracks,
        window: node.window,
        rate: node.stream_rate,
        token: c.token,
    };
    let mut released = Released::default();
    let sent = send_track_set(
        &node.dialer,
        &node.tracks,
        &order,
        false,
        &mut released,
        TrackSource {
            read,
            release: &release,
            progress: &|_, _| {},
        },
    )
    .await;
    end_backup(&node.host, copy_id, &names);
    match sent {
        Ok(tracks) => {
            tracing::info!(%copy_id, receiver = %order.front_end.name, tracks, bytes, "copy sent and synced on the receiver");
            CommandReply::Copied { tracks, bytes }
        }
        Err(e) => CommandReply::Error(Failure::internal(format!(
            "primary node {}: copy {copy_id} to {}: {e}",
            node.name, order.front_end.name
        ))),
    }
}

/// Accept copy streams from other primary nodes (no other peer may
/// connect to a primary node).
pub(super) async fn accept_copies(endpoint: quinn::Endpoint, node: Node) {
    while let Some(incoming) = endpoint.accept().await {
        let node = node.clone();
        tokio::spawn(async move {
            let (conn, peer) = match transport::accept(incoming).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "incoming connection refused");
                    return;
                }
            };
            if peer.role != transport::Role::PrimaryNode {
                let reason = format!(
                    "primary node {} accepts copy streams from primary nodes only, not {} ({})",
                    node.name,
                    peer.role.as_str(),
                    peer.name
                );
                tracing::warn!(peer = %peer.name, "refused: {reason}");
                conn.close(transport::codes::REFUSED, reason.as_bytes());
                return;
            }
            while let Ok((mut send, mut recv)) = transport::accept_bi(&conn, proto::wire::MAX_DATA_FRAME).await {
                let node = node.clone();
                let peer = peer.name.clone();
                tokio::spawn(async move {
                    match recv.recv::<proto::wire::TrackStreamOpen>().await {
                        Ok(Some(proto::wire::TrackStreamOpen::Copy { copy_id, token, window })) => {
                            crate::copy::serve(
                                node.host.clone(),
                                &node.expected,
                                &peer,
                                (copy_id, token, window),
                                send,
                                recv,
                            )
                            .await
                        }
                        other => {
                            let why = format!("a primary node takes copy streams only, not {other:?}");
                            let _ = send.send(&proto::wire::TrackAck::Failed(Failure::invalid(why))).await;
                        }
                    }
                });
            }
        });
    }
}
