//! Requests from front-ends: pair, write segments and metadata, read
//! segments back.
//!
//! A segment to write is in the spool the back-end shares with its
//! front-end (announced only), or arrives raw over QUIC and is received
//! into this back-end's own spool first; either way the drive's writer
//! copies it from a spool file to tape, verifying it on the way, and the
//! placement is committed to the catalog before the front-end hears that
//! the segment is on tape. Segments read back are verified on their way
//! from tape into `restore-<channel>/` and handed over from there.

use proto::domain::{AbsId, ChannelId, Failure, FailureCode, SegmentSeq};
use proto::num::at_most;
use std::io::{Read, Write};
use std::sync::Arc;
use transport::failure_in;

use anyhow::{anyhow, bail, Context, Result};
use proto::tape::metadata::AbsMetadata;
use proto::wire::{BackEndReply, BackEndRequest, ReadAck, SegmentPlacement, SegmentRef, StagedFrame, StationRequest};
use tokio::sync::{mpsc, Semaphore};
use transport::{FramedRecv, FramedSend};

use super::context::BackEnd;
use super::copy;
use super::writer::SegmentSource;
use crate::limits::{CHUNK, REQUEST_TIMEOUT};
use crate::spool::{Slots, TOKEN_LEN};

/// Segments a read may have placed in the spool that the front-end has not
/// taken yet: one being handed over, one ready behind it, one being read.
const READ_AHEAD: usize = 2;

/// Serve one stream opened by a front-end.
pub async fn serve(be: Arc<BackEnd>, mut send: FramedSend, mut recv: FramedRecv) {
    let req = match tokio::time::timeout(REQUEST_TIMEOUT, recv.recv::<BackEndRequest>()).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return,
        Err(_) => {
            tracing::warn!("request not received in time; stream dropped");
            let _ = recv.stop(transport::codes::REFUSED);
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "bad request from a front-end");
            let _ = send.send(&BackEndReply::Error(Failure::invalid(e.to_string()))).await;
            return;
        }
    };
    match req {
        BackEndRequest::ReadSegments {
            channel_id,
            drive,
            abs_id,
            files,
            shared,
        } => {
            let read = ReadOrder {
                channel_id,
                drive,
                abs_id,
                files,
                shared,
            };
            if let Err(e) = read_segments(&be, &read, &mut send, recv).await {
                let failure = failure_in(&format!("back-end {}", be.name), &e, FailureCode::Internal);
                tracing::error!(%channel_id, reason = %failure, "restore read failed");
                let _ = send.send(&StagedFrame::Failed(failure)).await;
            }
            let _ = std::fs::remove_dir_all(be.spool.restore_dir(channel_id));
        }
        other => {
            // A front-end that goes away abandons its segments not yet begun.
            let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let watch = async {
                let _ = send.stopped().await;
                abandoned.store(true, std::sync::atomic::Ordering::Release);
                std::future::pending::<std::convert::Infallible>().await
            };
            let written = tokio::select! {
                r = write(&be, other, &mut recv, abandoned.clone()) => r,
                never = watch => match never {},
            };
            let reply = match written {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "front-end request failed");
                    BackEndReply::Error(failure_in(&format!("back-end {}", be.name), &e, FailureCode::Internal))
                }
            };
            let _ = send.send(&reply).await;
        }
    }
    let _ = send.finish().await;
}

async fn write(
    be: &Arc<BackEnd>,
    req: BackEndRequest,
    recv: &mut FramedRecv,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
) -> Result<BackEndReply> {
    match req {
        BackEndRequest::Pair { token_name, token } => Ok(pair(be, &token_name, &token)),
        BackEndRequest::WriteSegment {
            channel_id,
            drive,
            object_name,
            abs_id,
            seq,
            bytes,
            crc32c,
            shared,
        } => {
            let max = be.max_segment as u64;
            if bytes > max {
                bail!(Failure::invalid(format!(
                    "segment {seq} of ABS {abs_id} announces {bytes} bytes; the limit is {max}"
                )));
            }
            let writer = be.writer(&drive)?;
            let path = if shared {
                be.spool.sealed_segment(abs_id, seq)
            } else {
                receive_segment(be, abs_id, seq, bytes, recv).await?
            };
            let source = SegmentSource {
                path: path.clone(),
                bytes,
                object_name,
                abandoned,
            };
            let span = tracing::info_span!("segment", %channel_id, %abs_id, %seq, %drive);
            let placed = {
                use tracing::Instrument;
                writer
                    .write_segment(channel_id.get(), abs_id.get(), seq.get(), source)
                    .instrument(span.clone())
                    .await
            };
            if !shared {
                // Ours: received over QUIC; the front-end keeps its own copy
                // until it hears the outcome.
                be.slots.release(&path);
            }
            let placed = placed?;
            let summary = placed
                .summary
                .ok_or_else(|| anyhow!("the drive did not verify segment {seq} of ABS {abs_id}"))?;
            if summary.crc32c != crc32c {
                // The reply does not echo what the bytes hash to; the log does.
                tracing::warn!(
                    %seq,
                    %abs_id,
                    found = summary.crc32c,
                    announced = crc32c,
                    "segment CRC32C mismatch"
                );
                bail!(Failure::corrupt(format!(
                    "segment {seq} of ABS {abs_id} does not match the CRC32C the front-end announced ({crc32c:08x})"
                )));
            }
            let (label, entry) = (placed.tape_label, placed.entry);
            metrics::counter!("dmc_be_segments_written_total").increment(1);
            metrics::counter!("dmc_be_bytes_written_total").increment(entry.bytes);
            // The placement must be in the catalog before the front-end may release the segment.
            be.link
                .request_ok(&StationRequest::SegmentPlaced(SegmentPlacement {
                    channel_id,
                    abs_id,
                    seq,
                    tape_label: label.clone(),
                    tape_file: entry.file_number,
                    bytes: entry.bytes,
                    data_bytes: summary.data_bytes,
                    track_count: summary.track_count,
                    crc32c: summary.crc32c,
                }))
                .await
                .context("committing the segment's placement to the catalog")?;
            span.in_scope(|| tracing::info!(tape = %label, file = entry.file_number, bytes = entry.bytes, "segment on tape and in the catalog"));
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
            if meta.abs_id != abs_id.get() {
                bail!(Failure::invalid(format!(
                    "metadata of ABS {} sent for ABS {abs_id}",
                    meta.abs_id
                )));
            }
            meta.map.validate().context("the metadata's map")?;
            let placed = be.writer(&drive)?.write_metadata(meta).await?;
            let (label, entry) = (placed.tape_label, placed.entry);
            be.link
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

/// Is the front-end's token in our spool? Then we share it.
fn pair(be: &BackEnd, token_name: &str, token: &[u8]) -> BackEndReply {
    let Some(path) = be.spool.token(token_name) else {
        return BackEndReply::Error(Failure::invalid(format!("{token_name:?} is not a pairing token name")));
    };
    let found = std::fs::File::open(&path).and_then(|f| {
        let mut buf = Vec::with_capacity(TOKEN_LEN);
        f.take(TOKEN_LEN as u64 + 1).read_to_end(&mut buf)?;
        Ok(buf)
    });
    let (shared, reason) = match found {
        Ok(buf) if buf == token => (true, format!("token found in {}", be.spool.dir().display())),
        Ok(_) => (false, format!("a different token in {}", be.spool.dir().display())),
        Err(e) => (
            false,
            format!(
                "the back-end's spool {} does not hold the token ({e}): not the same directory",
                be.spool.dir().display()
            ),
        ),
    };
    tracing::info!(shared, %reason, "pairing asked by a front-end");
    BackEndReply::Paired { shared, reason }
}

/// Receive a segment's raw bytes into our spool; returns the file.
async fn receive_segment(
    be: &BackEnd,
    abs_id: AbsId,
    seq: SegmentSeq,
    bytes: u64,
    recv: &mut FramedRecv,
) -> Result<std::path::PathBuf> {
    let path = be.spool.incoming(abs_id, seq);
    let res = async {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = be
            .slots
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(CHUNK, file);
        let mut got = 0u64;
        while got < bytes {
            let piece = recv
                .recv_raw(at_most(bytes - got, CHUNK))
                .await
                .with_context(|| format!("segment {seq} of ABS {abs_id} ended after {got} of {bytes} bytes"))?;
            got += piece.len() as u64;
            tokio::task::block_in_place(|| out.write_all(&piece))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let file = tokio::task::block_in_place(|| out.into_inner())
            .map_err(|e| anyhow!("writing {}: {}", path.display(), e.error()))?;
        Slots::finish(&file, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = res {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// One file of a read order, as the tape reader left it.
enum Staged {
    /// In the spool as `seg-<seq>.ready`, verified.
    Ready { seq: SegmentSeq, bytes: u64, crc32c: u32 },
    /// Not readable as written; nothing of it is in the spool.
    Unreadable { seq: SegmentSeq, failure: Failure },
}

struct ReadOrder {
    channel_id: ChannelId,
    drive: String,
    abs_id: AbsId,
    files: Vec<SegmentRef>,
    shared: bool,
}

/// Read each file in order into the spool, verified on the way, and hand
/// it over; stay at most [`READ_AHEAD`] segments ahead of the front-end.
async fn read_segments(be: &Arc<BackEnd>, read: &ReadOrder, send: &mut FramedSend, mut recv: FramedRecv) -> Result<()> {
    let dir = be.spool.restore_dir(read.channel_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ahead = Arc::new(Semaphore::new(READ_AHEAD));

    // The front-end's acknowledgements: each consumed segment is deleted
    // and lets the reader go one further.
    let acks = {
        let (ahead, spool, channel) = (ahead.clone(), be.spool.clone(), read.channel_id);
        let slots = be.slots.clone();
        tokio::spawn(async move {
            while let Ok(Some(ReadAck { seq })) = recv.recv::<ReadAck>().await {
                slots.release(&spool.staged_ready(channel, seq));
                ahead.add_permits(1);
            }
        })
    };

    // The reader: tape → spool, one segment at a time, on a blocking thread.
    let (tx, mut rx) = mpsc::channel::<Result<Staged>>(READ_AHEAD);
    let reader = {
        let (be, ahead, files) = (be.clone(), ahead.clone(), read.files.clone());
        let (drive, abs_id, channel) = (read.drive.clone(), read.abs_id, read.channel_id);
        tokio::spawn(async move {
            for f in files {
                let Ok(permit) = ahead.acquire().await else {
                    return;
                };
                permit.forget();
                let m = be.clone();
                let drive = drive.clone();
                let seq = f.seq;
                let staged = tokio::task::spawn_blocking(move || stage(&m, &drive, abs_id, channel, &f))
                    .await
                    .map_err(|e| anyhow!("the tape reader stopped: {e}"))
                    .and_then(|r| r)
                    .map(|(seq, bytes, crc32c)| Staged::Ready { seq, bytes, crc32c })
                    .or_else(|e| match copy::corrupt(&e) {
                        // Skipped; the front-end does not acknowledge it.
                        Some(failure) => {
                            ahead.add_permits(1);
                            Ok(Staged::Unreadable { seq, failure })
                        }
                        None => Err(e),
                    });
                let failed = staged.is_err();
                if tx.send(staged).await.is_err() || failed {
                    return;
                }
            }
        })
    };

    let result = async {
        let (mut segments, mut skipped) = (0u32, 0u32);
        while let Some(staged) = rx.recv().await {
            let (seq, bytes, crc32c) = match staged? {
                Staged::Ready { seq, bytes, crc32c } => (seq, bytes, crc32c),
                Staged::Unreadable { seq, failure } => {
                    tracing::warn!(channel_id = %read.channel_id, %seq, reason = %failure, "segment unreadable, skipped");
                    metrics::counter!("dmc_be_segments_unreadable_total").increment(1);
                    send.send(&StagedFrame::Unreadable { seq, failure }).await?;
                    skipped += 1;
                    continue;
                }
            };
            send.send(&StagedFrame::Segment { seq, bytes, crc32c }).await?;
            if !read.shared {
                let path = be.spool.staged_ready(read.channel_id, seq);
                let mut file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                let mut left = bytes;
                while left > 0 {
                    let mut buf = be.chunks.take(at_most(left, CHUNK));
                    tokio::task::block_in_place(|| file.read_exact(buf.as_mut_slice()))
                        .with_context(|| format!("reading {}", path.display()))?;
                    left -= buf.as_ref().len() as u64;
                    send.send_raw(buf.freeze()).await?;
                }
            }
            segments += 1;
            metrics::counter!("dmc_be_segments_read_total").increment(1);
        }
        if (segments + skipped) as usize != read.files.len() {
            bail!("read {segments} of {} segments", read.files.len());
        }
        send.send(&StagedFrame::End { segments }).await?;
        Ok(())
    }
    .await;
    reader.abort();
    if result.is_ok() {
        // The front-end acknowledges the last segments, then finishes its side.
        let _ = acks.await;
    } else {
        acks.abort();
    }
    result
}

/// Read one tape file into `restore-<channel>/seg-<seq>.part`, verifying
/// it, check it is the segment the catalog expects, and make it `.ready`.
/// Returns (seq, bytes, body CRC32C).
fn stage(
    be: &BackEnd,
    drive: &str,
    abs_id: AbsId,
    channel_id: ChannelId,
    f: &SegmentRef,
) -> Result<(SegmentSeq, u64, u32)> {
    let part = be.spool.staged_part(channel_id, f.seq);
    let what = || {
        format!(
            "tape {} file {} (ABS {abs_id} segment {})",
            f.tape_label, f.tape_file, f.seq
        )
    };
    let res = (|| {
        let file = be
            .slots
            .create(&part)
            .with_context(|| format!("creating {}", part.display()))?;
        let mut out = std::io::BufWriter::with_capacity(CHUNK, file);
        let summary = {
            let d = be.drive(drive)?;
            let mut d = d.lock().map_err(|_| anyhow!("drive {drive} lock poisoned"))?;
            d.read_segment_into(&f.tape_label, f.tape_file, be.max_segment, &mut out)
                .map_err(copy::unreadable)?
        };
        let file = out
            .into_inner()
            .map_err(|e| anyhow!("writing {}: {}", part.display(), e.error()))?;
        Slots::finish(&file, summary.total_bytes).with_context(|| format!("writing {}", part.display()))?;
        let h = summary.header;
        if h.abs_id != abs_id.get() || h.seq != f.seq.get() || summary.crc32c != f.crc32c {
            bail!(Failure::corrupt(format!(
                "tape {} file {} holds ABS {} segment {} (crc {:08x}); the catalog expects ABS {abs_id} segment {} (crc {:08x})",
                f.tape_label,
                f.tape_file,
                h.abs_id,
                h.seq,
                summary.crc32c,
                f.seq,
                f.crc32c
            )));
        }
        let ready = be.spool.staged_ready(channel_id, f.seq);
        std::fs::rename(&part, &ready).with_context(|| format!("renaming {}", part.display()))?;
        Ok((f.seq, summary.total_bytes, summary.crc32c))
    })();
    if res.is_err() {
        be.slots.release(&part);
    }
    res.with_context(what)
}
