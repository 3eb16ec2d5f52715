//! Segments read back from tape by the back-end, taken over by the
//! front-end track by track (a restore relays them to a primary node, a
//! merge writes them into a new ABS).
//!
//! The back-end verifies each segment whole on its way from tape, then
//! hands it over: in the shared spool (`restore-<channel>/seg-<seq>.ready`)
//! or raw on the stream. Either way the front-end feeds the bytes through a
//! [`SegmentReader`], which checks the segment's structure again as it
//! passes, and hands each track on, with the CRC32C its record declares, as
//! slices of the buffers it arrived in (no copy): a primary node checks
//! each track's data against that CRC before writing it, and a merge's
//! segments are verified whole again on their way to tape.
//! Each segment consumed is acknowledged ([`ReadAck`]), which lets the
//! back-end delete it and read ahead.

use proto::domain::{Failure, SegmentSeq};
use proto::num::{at_most, to_usize};
use std::future::Future;
use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use proto::abs::TrackAddr;
use proto::tape::segment::{SegmentEvent, SegmentReader};
use proto::wire::{BackEndRequest, ReadAck, RestoreChannel, SegmentRef, StagedFrame, MAX_DATA_FRAME};

use super::context::FrontEnd;
use super::pairing::{report_data_path, DataPath};
use crate::limits::CHUNK;

/// Where the tracks of staged segments go.
pub trait TrackSink {
    /// One verified track: `data` holds its bytes in order (taken by the sink).
    fn track(
        &mut self,
        addr: TrackAddr,
        len: u32,
        crc32c: u32,
        data: &mut Vec<Bytes>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every track of segment `seq` was handed on.
    fn segment_done(&mut self, seq: SegmentSeq) -> impl Future<Output = Result<()>> + Send;
    /// Segment `seq` (`file`, as the station listed it) could not be read
    /// from tape (`failure`): go on without it, or fail.
    fn unreadable(&mut self, file: &SegmentRef, failure: Failure) -> impl Future<Output = Result<()>> + Send;
}

/// What a read handed over.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadTotals {
    pub tracks: u64,
    pub segments: u32,
    /// Segments the back-end could not read (handed to the sink's
    /// [`TrackSink::unreadable`]).
    pub unreadable: u32,
}

/// Have the back-end read `read`'s tape files and hand every track to
/// `sink`, segment by segment, in order. Returns the data path used and
/// the totals.
pub async fn read_segments(
    fe: &FrontEnd,
    read: &RestoreChannel,
    sink: &mut impl TrackSink,
) -> Result<(DataPath, ReadTotals)> {
    let conn = fe.back_end(&read.back_end).await?;
    let path = fe.pairings.data_path(&read.back_end, &conn).await?;
    report_data_path(&fe.link, read.channel_id, &path);
    let (mut bs, mut br) = transport::open_bi(&conn, MAX_DATA_FRAME).await?;
    bs.send(&BackEndRequest::ReadSegments {
        channel_id: read.channel_id,
        drive: read.drive.clone(),
        abs_id: read.abs_id,
        files: read.files.clone(),
        shared: path.shared(),
    })
    .await?;
    let mut totals = ReadTotals::default();
    let mut events = Vec::new();
    let mut pieces: Vec<Bytes> = Vec::new();
    loop {
        let frame = br
            .recv::<StagedFrame>()
            .await
            .context("reading the back-end's stream")?
            .ok_or_else(|| anyhow!("the back-end closed the stream early"))?;
        match frame {
            StagedFrame::Unreadable { seq, failure } => {
                let expected = read
                    .files
                    .get((totals.segments + totals.unreadable) as usize)
                    .ok_or_else(|| anyhow!("the back-end skipped more segments than asked for"))?;
                if expected.seq != seq {
                    bail!("the back-end skipped segment {seq}; expected segment {}", expected.seq);
                }
                tracing::warn!(channel_id = %read.channel_id, %seq, tape = %expected.tape_label, file = expected.tape_file, reason = %failure, "segment unreadable");
                sink.unreadable(expected, failure).await?;
                totals.unreadable += 1;
            }
            StagedFrame::Segment { seq, bytes, crc32c } => {
                let expected = read
                    .files
                    .get((totals.segments + totals.unreadable) as usize)
                    .ok_or_else(|| anyhow!("the back-end sent more segments than asked for"))?;
                if expected.seq != seq || expected.crc32c != crc32c {
                    bail!(
                        "the back-end sent segment {seq} (crc {crc32c:08x}); expected segment {} (crc {:08x})",
                        expected.seq,
                        expected.crc32c
                    );
                }
                // Verified whole by the back-end; the structure is checked
                // again here, each track's data by whoever receives it.
                let mut reader = SegmentReader::structure_only();
                let mut file = if path.shared() {
                    let p = fe.spool.staged_ready(read.channel_id, seq);
                    let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
                    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                    if len != bytes {
                        bail!("{} has {len} bytes, the back-end said {bytes}", p.display());
                    }
                    Some(f)
                } else {
                    None
                };
                let mut got = 0u64;
                let mut current: Option<(TrackAddr, u32, u32)> = None;
                while got < bytes {
                    let chunk = match file.as_mut() {
                        Some(f) => {
                            let want = at_most(bytes - got, CHUNK);
                            let mut buf = fe.chunks.take(want);
                            tokio::task::block_in_place(|| f.read_exact(buf.as_mut_slice()))
                                .with_context(|| format!("reading staged segment {seq}"))?;
                            buf.freeze()
                        }
                        None => br
                            .recv_raw(to_usize(bytes - got))
                            .await
                            .with_context(|| format!("receiving segment {seq}"))?,
                    };
                    got += chunk.len() as u64;
                    events.clear();
                    reader
                        .feed_events(&chunk, &mut events)
                        .with_context(|| format!("segment {seq} as handed over"))?;
                    for e in events.drain(..) {
                        match e {
                            SegmentEvent::Track { addr, len, crc32c } => {
                                current = Some((addr, len, crc32c));
                                pieces.clear();
                            }
                            SegmentEvent::Data(range) => pieces.push(chunk.slice(range)),
                            SegmentEvent::TrackEnd => {
                                let (addr, len, crc32c) = current
                                    .take()
                                    .ok_or_else(|| anyhow!("a track ended that never began"))?;
                                sink.track(addr, len, crc32c, &mut pieces).await?;
                                pieces.clear();
                                totals.tracks += 1;
                            }
                        }
                    }
                }
                let summary = reader
                    .finish()
                    .with_context(|| format!("segment {seq} as handed over"))?
                    .summary;
                if summary.header.abs_id != read.abs_id.get()
                    || summary.header.seq != seq.get()
                    || summary.crc32c != crc32c
                {
                    bail!(Failure::corrupt(format!(
                        "the segment handed over is ABS {} segment {} (crc {:08x}); expected ABS {} segment {seq} (crc {crc32c:08x})",
                        summary.header.abs_id,
                        summary.header.seq,
                        summary.crc32c,
                        read.abs_id
                    )));
                }
                drop(file);
                sink.segment_done(seq).await?;
                totals.segments += 1;
                bs.send(&ReadAck { seq }).await?;
            }
            StagedFrame::End { segments } => {
                if segments != totals.segments || (segments + totals.unreadable) as usize != read.files.len() {
                    bail!(
                        "the back-end says {segments} segments; {} arrived and {} were unreadable of {} asked for",
                        totals.segments,
                        totals.unreadable,
                        read.files.len()
                    );
                }
                let _ = bs.finish().await;
                return Ok((path, totals));
            }
            StagedFrame::Failed(failure) => return Err(failure.into()),
        }
    }
}
