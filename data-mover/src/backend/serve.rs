//! Requests from front-ends: write segments and metadata, read segments.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::tape::metadata::AbsMetadata;
use proto::wire::{
    BackEndReply, BackEndRequest, RestoreFrame, SegmentChunk, SegmentPlacement, SegmentRef, StationRequest,
};
use transport::{FramedRecv, FramedSend};

use crate::mover::Mover;

/// Serve one stream opened by a front-end.
pub async fn serve(mover: Arc<Mover>, mut send: FramedSend, mut recv: FramedRecv) {
    let req = match recv.recv::<BackEndRequest>().await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "bad request from a front-end");
            let _ = send.send(&BackEndReply::Error { message: e.to_string() }).await;
            return;
        }
    };
    match req {
        BackEndRequest::ReadSegments {
            channel_id,
            drive,
            abs_id,
            files,
        } => {
            if let Err(e) = read_segments(&mover, &drive, abs_id, &files, &mut send).await {
                let reason = format!("back-end {}: {e:#}", mover.name);
                tracing::error!(channel_id, %reason, "restore read failed");
                let _ = send.send(&RestoreFrame::Failed { reason }).await;
            }
        }
        other => {
            let reply = match write(&mover, other, &mut recv).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "write request failed");
                    BackEndReply::Error {
                        message: format!("back-end {}: {e:#}", mover.name),
                    }
                }
            };
            let _ = send.send(&reply).await;
        }
    }
    let _ = send.finish().await;
}

async fn write(mover: &Arc<Mover>, req: BackEndRequest, recv: &mut FramedRecv) -> Result<BackEndReply> {
    match req {
        BackEndRequest::WriteSegment {
            channel_id,
            drive,
            object_name,
            abs_id,
            seq,
            bytes,
        } => {
            let max = mover.cfg.max_segment;
            if bytes > max as u64 {
                bail!("segment {seq} of ABS {abs_id} announces {bytes} bytes; the limit is {max}");
            }
            let mut buf = Vec::with_capacity(bytes as usize);
            while (buf.len() as u64) < bytes {
                let chunk = recv.recv::<SegmentChunk>().await?.ok_or_else(|| {
                    anyhow!(
                        "segment {seq} of ABS {abs_id} ended after {} of {bytes} bytes",
                        buf.len()
                    )
                })?;
                if buf.len() as u64 + chunk.data.len() as u64 > bytes {
                    bail!("segment {seq} of ABS {abs_id} is longer than the {bytes} bytes announced");
                }
                buf.extend_from_slice(&chunk.data);
            }
            let summary = proto::tape::segment::verify(&buf)
                .with_context(|| format!("segment {seq} of ABS {abs_id} as received"))?;
            if summary.header.abs_id != abs_id || summary.header.seq != seq {
                bail!(
                    "the segment is ABS {} seq {}, the request said ABS {abs_id} seq {seq}",
                    summary.header.abs_id,
                    summary.header.seq
                );
            }
            let data_bytes = summary.data_bytes;
            let placed = mover
                .writer(&drive)?
                .write_segment(channel_id, abs_id, seq, buf, &object_name)
                .await?;
            let (label, entry) = (placed.tape_label, placed.entry);
            metrics::counter!("dmc_be_segments_written_total").increment(1);
            metrics::counter!("dmc_be_bytes_written_total").increment(entry.bytes);
            // The placement must be in the catalog before the front-end may release the segment.
            mover
                .link
                .request_ok(&StationRequest::SegmentPlaced(SegmentPlacement {
                    channel_id,
                    abs_id,
                    seq,
                    tape_label: label.clone(),
                    tape_file: entry.file_number,
                    bytes: entry.bytes,
                    data_bytes,
                    track_count: summary.track_count,
                    crc32c: summary.crc32c,
                }))
                .await
                .context("committing the segment's placement to the catalog")?;
            Ok(BackEndReply::Placed {
                tape_label: label,
                tape_file: entry.file_number,
            })
        }
        BackEndRequest::WriteMetadata {
            channel_id,
            drive,
            abs_id,
            metadata,
            ..
        } => {
            let meta = AbsMetadata::decode(&metadata).context("ABS metadata from the front-end")?;
            if meta.abs_id != abs_id {
                bail!("metadata of ABS {} sent for ABS {abs_id}", meta.abs_id);
            }
            meta.map.validate().context("the metadata's map")?;
            let placed = mover.writer(&drive)?.write_metadata(meta).await?;
            let (label, entry) = (placed.tape_label, placed.entry);
            mover
                .link
                .request_ok(&StationRequest::MetadataPlaced {
                    channel_id,
                    abs_id,
                    tape_label: label.clone(),
                    tape_file: entry.file_number,
                    bytes: entry.bytes,
                })
                .await
                .context("committing the metadata's placement to the catalog")?;
            Ok(BackEndReply::Placed {
                tape_label: label,
                tape_file: entry.file_number,
            })
        }
        BackEndRequest::ReadSegments { .. } => bail!("unexpected read request"),
    }
}

/// Read each file in order, verify the whole segment, then stream its tracks.
async fn read_segments(
    mover: &Arc<Mover>,
    drive: &str,
    abs_id: u64,
    files: &[SegmentRef],
    send: &mut FramedSend,
) -> Result<()> {
    let drive_arc = mover.drive(drive)?;
    let mut tracks = 0u64;
    for f in files {
        let seg = tokio::task::block_in_place(|| {
            let mut d = drive_arc.lock().map_err(|_| anyhow!("drive {drive} lock poisoned"))?;
            d.read_segment(&f.tape_label, f.tape_file, mover.cfg.max_segment)
        })
        .with_context(|| {
            format!(
                "tape {} file {} (ABS {abs_id} segment {})",
                f.tape_label, f.tape_file, f.seq
            )
        })?;
        let h = seg.summary.header;
        if h.abs_id != abs_id || h.seq != f.seq || seg.summary.crc32c != f.crc32c {
            bail!(
                "tape {} file {} holds ABS {} segment {} (crc {:08x}); the catalog expects ABS {abs_id} segment {} (crc {:08x})",
                f.tape_label,
                f.tape_file,
                h.abs_id,
                h.seq,
                seg.summary.crc32c,
                f.seq,
                f.crc32c
            );
        }
        for t in seg.tracks {
            send.send(&RestoreFrame::Track {
                addr: t.addr,
                data: t.data,
            })
            .await?;
            tracks += 1;
        }
        send.send(&RestoreFrame::SegmentDone { seq: f.seq }).await?;
        metrics::counter!("dmc_be_segments_read_total").increment(1);
    }
    send.send(&RestoreFrame::End { tracks }).await?;
    Ok(())
}
