//! Synthetic full (seed FIG. 25/26): the front-end builds a new full ABS
//! from the ABSs of a chain read back from tape, without the primary node.
//!
//! The station opens the merge ([`open`]), then has the chain read newest
//! first, one restore channel per ABS and tape ([`step`] with
//! [`MergeStep::Read`]): the first version of each track to arrive is
//! kept, so every track ends up in its latest version. [`MergeStep::Finish`]
//! seals the new ABS, which must hold every track of its map.

use proto::domain::{ChannelId, Failure, FailureCode, SegmentSeq};
use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use proto::abs::TrackAddr;
use proto::wire::{BackupChannel, RestoreChannel, SegmentRef, StationReply, StationRequest, MAX_CONTROL_FRAME};
use tokio::sync::{mpsc, Mutex};

use super::abs_writer::{AbsWriter, Appended};
use super::context::FrontEnd;
use super::staged::{read_segments, TrackSink};

/// What the station asks of a running merge.
#[derive(Debug)]
pub enum MergeStep {
    /// Read these tape files of one ABS of the chain into the merge.
    Read(RestoreChannel),
    /// Fetch the object the station holds for this channel (a catalog
    /// dump) and write it in.
    FromStation,
    /// The whole chain was read: finish the new ABS.
    Finish,
}

/// The running merges: each one's queue of steps, by channel.
#[derive(Default)]
pub struct Merges {
    queues: Mutex<HashMap<ChannelId, mpsc::UnboundedSender<MergeStep>>>,
}

impl Merges {
    /// The channels of the running merges.
    pub async fn ids(&self) -> Vec<ChannelId> {
        self.queues.lock().await.keys().copied().collect()
    }

    /// Stop merge `channel_id`: dropping its queue ends its task, which
    /// fails it.
    pub async fn stop(&self, channel_id: ChannelId) {
        self.queues.lock().await.remove(&channel_id);
    }

    /// Queue a step of a running merge.
    pub async fn step(&self, channel_id: ChannelId, step: MergeStep) -> Result<()> {
        let queues = self.queues.lock().await;
        let tx = queues
            .get(&channel_id)
            .ok_or_else(|| anyhow!("no merge channel {channel_id} is open on this front-end"))?;
        tx.send(step)
            .map_err(|_| anyhow!("merge channel {channel_id} has stopped"))
    }
}

/// Open a merge channel: its accumulation file and uploaders start now.
pub async fn open(fe: &Arc<FrontEnd>, merges: &Arc<Merges>, ch: BackupChannel) -> Result<()> {
    let abs = AbsWriter::open(fe, &ch, None)?;
    let (tx, rx) = mpsc::unbounded_channel();
    merges.queues.lock().await.insert(ch.channel_id, tx);
    tracing::info!(
        channel = %ch.channel_id,
        abs = %ch.abs_id,
        merged_from = ?ch.merged_from_abs_id,
        "merge channel opened"
    );
    tokio::spawn(run(fe.clone(), merges.clone(), ch, abs, rx));
    Ok(())
}

async fn run(
    fe: Arc<FrontEnd>,
    merges: Arc<Merges>,
    ch: BackupChannel,
    abs: AbsWriter,
    mut rx: mpsc::UnboundedReceiver<MergeStep>,
) {
    let channel_id = ch.channel_id;
    let mut abs = Some(abs);
    let result = async {
        while let Some(step) = rx.recv().await {
            match step {
                MergeStep::Read(read) => {
                    let w = abs.as_mut().ok_or_else(|| anyhow!("the merge is finished"))?;
                    match read_into(&fe, &read, w).await {
                        Ok((tracks, kept, segments)) => {
                            tracing::info!(
                                %channel_id,
                                abs = %read.abs_id,
                                tracks,
                                kept,
                                "chain ABS read into the merge"
                            );
                            fe.link
                                .request_ok(&StationRequest::ChannelFinished {
                                    channel_id: read.channel_id,
                                    data_bytes: kept,
                                    tracks,
                                    segments,
                                })
                                .await
                                .context("reporting the read to the station")?;
                        }
                        Err(e) => {
                            let failure =
                                transport::failure_in(&format!("front-end {}", fe.name), &e, FailureCode::Internal);
                            let _ = fe
                                .link
                                .request_ok(&StationRequest::ChannelFailed {
                                    channel_id: read.channel_id,
                                    failure,
                                })
                                .await;
                            return Err(e.context(format!("reading ABS {} into the merge", read.abs_id)));
                        }
                    }
                }
                MergeStep::FromStation => {
                    let w = abs.as_mut().ok_or_else(|| anyhow!("the merge is finished"))?;
                    let (tracks, bytes) = fetch_into(&fe, &ch, w)
                        .await
                        .context("writing the object the station sent")?;
                    tracing::info!(%channel_id, tracks, bytes, "object from the station written into the channel");
                }
                MergeStep::Finish => {
                    let w = abs.take().ok_or_else(|| anyhow!("the merge is finished"))?;
                    let t = w.finish().await?;
                    tracing::info!(
                        %channel_id,
                        tracks = t.tracks,
                        segments = t.segments,
                        "synthetic full written"
                    );
                    return Ok(());
                }
            }
        }
        bail!("the station dropped the merge before finishing it")
    }
    .await;
    merges.stop(channel_id).await;
    if let Err(e) = result {
        let failure = transport::failure_in(&format!("front-end {}", fe.name), &e, FailureCode::Internal);
        tracing::error!(%channel_id, reason = %failure, "merge failed");
        let _ = fe
            .link
            .request_ok(&StationRequest::ChannelFailed { channel_id, failure })
            .await;
    }
}

/// Writes each track read back into the merged ABS (the first version of
/// a track to arrive is kept).
struct IntoMerge<'a> {
    abs: &'a mut AbsWriter,
    kept: u64,
    /// One track's bytes gathered (tracks arrive in pieces).
    buf: Vec<u8>,
}

impl TrackSink for IntoMerge<'_> {
    async fn track(&mut self, addr: TrackAddr, _len: u32, crc32c: u32, data: &mut Vec<Bytes>) -> Result<()> {
        self.buf.clear();
        for piece in data.iter() {
            self.buf.extend_from_slice(piece);
        }
        // The checksum was checked on the way here: not computed again.
        match self.abs.append(addr, &self.buf, Some(crc32c))? {
            // An older version of a track already taken from a newer ABS.
            Appended::Duplicate => {}
            Appended::Added => self.kept += self.buf.len() as u64,
            Appended::Sealed(s) => {
                self.kept += self.buf.len() as u64;
                self.abs.queue(s).await?;
            }
        }
        Ok(())
    }

    async fn segment_done(&mut self, _seq: SegmentSeq) -> Result<()> {
        Ok(())
    }

    /// A merge needs every segment of its ABSs: it fails, and a merge
    /// started again reads that segment from a copy once the catalog knows
    /// this one damaged.
    async fn unreadable(&mut self, file: &SegmentRef, failure: Failure) -> Result<()> {
        Err(anyhow::Error::new(failure).context(format!(
            "segment {} on tape {} file {}",
            file.seq, file.tape_label, file.tape_file
        )))
    }
}

/// Read one ABS's tape files from the back-end into the merge. Returns the
/// tracks read, the bytes kept (tracks not already in the merge) and the
/// segments read.
async fn read_into(fe: &FrontEnd, read: &RestoreChannel, abs: &mut AbsWriter) -> Result<(u64, u64, u32)> {
    let mut sink = IntoMerge {
        abs,
        kept: 0,
        buf: Vec::new(),
    };
    let (_, totals) = read_segments(fe, read, &mut sink).await?;
    Ok((totals.tracks, sink.kept, totals.segments))
}

/// Fetch the object the station holds for channel `ch` (a catalog dump:
/// one volume, one extent from offset 0) and append it track by track, in
/// map order. Returns the tracks and bytes written.
async fn fetch_into(fe: &FrontEnd, ch: &BackupChannel, abs: &mut AbsWriter) -> Result<(u64, u64)> {
    let map = &ch.map;
    let single = matches!(map.extents.as_slice(), [e] if e.logical_offset == 0 && e.volume_offset == 0);
    if !single {
        bail!(
            "an object sent by the station is mapped as one extent from offset 0; channel {} has {} extents",
            ch.channel_id,
            map.extents.len()
        );
    }
    let conn = fe.link.connection().await?;
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
    send.send(&StationRequest::FetchDump {
        channel_id: ch.channel_id,
    })
    .await?;
    send.finish().await?;
    let bytes = match recv.recv::<StationReply>().await? {
        Some(StationReply::Dump { bytes }) => bytes,
        Some(StationReply::Error(f)) => return Err(anyhow::Error::new(f).context("the station refused the dump")),
        Some(other) => bail!("expected the dump's length from the station, got {other:?}"),
        None => bail!("the station closed the stream before sending the dump"),
    };
    if bytes != map.object_size {
        bail!(
            "the station announced {bytes} bytes for channel {}, whose map holds {}",
            ch.channel_id,
            map.object_size
        );
    }
    let mut buf = Vec::new();
    let mut tracks = 0u64;
    for addr in ch.track_set.iter() {
        let (_, len) = map
            .track_extent(addr)
            .map_err(|e| anyhow!("track {addr:?} of the map: {e}"))?;
        let len = usize::try_from(len).context("track length")?;
        buf.clear();
        while buf.len() < len {
            let piece = recv.recv_raw(len - buf.len()).await?;
            buf.extend_from_slice(&piece);
        }
        if let Appended::Sealed(s) = abs.append(addr, &buf, None)? {
            abs.queue(s).await?;
        }
        tracks += 1;
    }
    Ok((tracks, bytes))
}
