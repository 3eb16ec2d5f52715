//! Writing a segment: [`SegmentWriter`] streams the header, the track
//! records and the trailer into any writer, computing every checksum once.

use std::io::Write;

use crate::abs::TrackAddr;
use crate::num::saturating_u32;
use crate::tape::error::Location;
use crate::tape::{TapeError, MAX_TRACK_SIZE};

use super::codec::{encode_track_header, encode_trailer};
use super::{SegmentHeader, SegmentSummary, SEGMENT_HEADER_LEN, SEGMENT_TRAILER_LEN};

/// Streams a segment into any writer, computing checksums as it goes.
///
/// Each track's data is checksummed once: its CRC32C goes into the track
/// header, and the body CRC in the trailer is derived from it with
/// [`crc32c::crc32c_combine`] instead of a second pass over the data.
///
/// A track can be appended whole ([`SegmentWriter::append_track`]) or
/// streamed as it arrives ([`SegmentWriter::begin_track`],
/// [`SegmentWriter::track_data`], [`SegmentWriter::end_track`]) with the
/// checksum its sender declared, which [`SegmentWriter::end_track`] checks.
///
/// After an error the output is incomplete and must be discarded; the
/// writer refuses further use (except for a track refused before anything
/// of it was written).
pub struct SegmentWriter<W: Write> {
    w: W,
    header: SegmentHeader,
    body_crc: u32,
    bytes: u64,
    tracks: u32,
    data_bytes: u64,
    open: Option<OpenTrack>,
    failed: bool,
}

/// A track begun with [`SegmentWriter::begin_track`].
struct OpenTrack {
    addr: TrackAddr,
    len: u32,
    got: u32,
    declared: u32,
    crc: u32,
}

impl<W: Write> SegmentWriter<W> {
    /// Write the header.
    pub fn new(mut w: W, header: SegmentHeader) -> Result<Self, TapeError> {
        let h = header.encode();
        w.write_all(&h).map_err(|e| {
            let at = Location {
                segment: Some((header.abs_id, header.seq)),
                offset: Some(0),
                ..Location::default()
            };
            TapeError::io(at, "writing the segment header", e)
        })?;
        Ok(SegmentWriter {
            w,
            header,
            body_crc: crc32c::crc32c(&h),
            bytes: SEGMENT_HEADER_LEN as u64,
            tracks: 0,
            data_bytes: 0,
            open: None,
            failed: false,
        })
    }

    fn at(&self) -> Location {
        Location {
            segment: Some((self.header.abs_id, self.header.seq)),
            offset: Some(self.bytes),
            ..Location::default()
        }
    }

    fn what(&self) -> String {
        format!("segment ABS {} seq {}", self.header.abs_id, self.header.seq)
    }

    fn check_usable(&self, doing: &str) -> Result<(), TapeError> {
        if self.failed {
            return Err(TapeError::invalid(
                format!("{doing} in {}", self.what()),
                "a writer whose earlier writes succeeded",
                "an earlier failure",
            ));
        }
        Ok(())
    }

    /// Check a track about to be started: its size and the track count.
    fn check_track(&self, addr: TrackAddr, len: usize) -> Result<(), TapeError> {
        self.check_usable("a track")?;
        if self.open.is_some() {
            return Err(TapeError::invalid(
                format!("track {}:{} of {}", addr.volume, addr.track, self.what()),
                "the previous track ended first",
                "a track still open",
            ));
        }
        if len > MAX_TRACK_SIZE {
            return Err(TapeError::invalid(
                format!(
                    "track {}:{} of segment ABS {} seq {}",
                    addr.volume, addr.track, self.header.abs_id, self.header.seq
                ),
                format!("at most {MAX_TRACK_SIZE} bytes"),
                format!("{len} bytes"),
            ));
        }
        if self.tracks == u32::MAX {
            return Err(TapeError::invalid(
                "segment",
                "fewer than 2^32 tracks",
                "one more track",
            ));
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8], what: impl FnOnce() -> String) -> Result<(), TapeError> {
        let at = self.at();
        if let Err(e) = self.w.write_all(bytes) {
            self.failed = true;
            return Err(TapeError::io(at, what(), e));
        }
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Append one track record (`data.len()` ≤ [`crate::tape::MAX_TRACK_SIZE`]).
    pub fn append_track(&mut self, addr: TrackAddr, data: &[u8]) -> Result<(), TapeError> {
        self.check_track(addr, data.len())?;
        self.append_checked(addr, data, crc32c::crc32c(data))
    }

    /// Append one track record whose data checksum is already known (e.g.
    /// read with it from a verified segment). The checksum is not
    /// recomputed: a wrong one makes the segment fail verification when the
    /// back-end copies it to tape.
    pub fn append_track_with_crc(&mut self, addr: TrackAddr, data: &[u8], data_crc: u32) -> Result<(), TapeError> {
        self.check_track(addr, data.len())?;
        self.append_checked(addr, data, data_crc)
    }

    fn append_checked(&mut self, addr: TrackAddr, data: &[u8], data_crc: u32) -> Result<(), TapeError> {
        // check_track bounded data.len() by MAX_TRACK_SIZE.
        let th = encode_track_header(addr, saturating_u32(data.len()), data_crc);
        let what = || format!("writing track {}:{}", addr.volume, addr.track);
        self.put(&th, what)?;
        self.put(data, what)?;
        self.body_crc = crc32c::crc32c_append(self.body_crc, &th);
        self.body_crc = crate::crc::combine(self.body_crc, data_crc, data.len() as u64);
        self.tracks += 1;
        self.data_bytes += data.len() as u64;
        Ok(())
    }

    /// Start a track of `len` bytes whose data its sender says has CRC32C
    /// `declared_crc`; its data follows with [`SegmentWriter::track_data`]
    /// and [`SegmentWriter::end_track`] checks the declared checksum.
    pub fn begin_track(&mut self, addr: TrackAddr, len: u32, declared_crc: u32) -> Result<(), TapeError> {
        self.check_track(addr, len as usize)?;
        let th = encode_track_header(addr, len, declared_crc);
        self.put(&th, || format!("writing track {}:{}", addr.volume, addr.track))?;
        self.body_crc = crc32c::crc32c_append(self.body_crc, &th);
        self.open = Some(OpenTrack {
            addr,
            len,
            got: 0,
            declared: declared_crc,
            crc: 0,
        });
        Ok(())
    }

    /// The next bytes of the track begun with [`SegmentWriter::begin_track`].
    pub fn track_data(&mut self, chunk: &[u8]) -> Result<(), TapeError> {
        self.check_usable("track data")?;
        let Some(t) = self.open.as_mut() else {
            return Err(TapeError::invalid(
                format!("track data in {}", self.what()),
                "a track begun first",
                "no open track",
            ));
        };
        if chunk.len() as u64 > u64::from(t.len - t.got) {
            let (addr, left) = (t.addr, t.len - t.got);
            self.failed = true;
            return Err(TapeError::invalid(
                format!("data of track {}:{} in {}", addr.volume, addr.track, self.what()),
                format!("at most {left} more bytes"),
                format!("{} bytes", chunk.len()),
            ));
        }
        t.crc = crc32c::crc32c_append(t.crc, chunk);
        t.got += saturating_u32(chunk.len()); // at most t.len - t.got, checked above
        let addr = t.addr;
        self.put(chunk, || format!("writing track {}:{}", addr.volume, addr.track))
    }

    /// End the open track: all its bytes arrived and their checksum is the
    /// one declared. On a mismatch the segment is unusable.
    pub fn end_track(&mut self) -> Result<(), TapeError> {
        self.check_usable("the end of a track")?;
        let Some(t) = self.open.take() else {
            return Err(TapeError::invalid(
                format!("the end of a track in {}", self.what()),
                "a track begun first",
                "no open track",
            ));
        };
        // Described only on an error: no allocation per track otherwise.
        let what = |w: &Self| format!("data of track {}:{} in {}", t.addr.volume, t.addr.track, w.what());
        if t.got != t.len {
            self.failed = true;
            return Err(TapeError::invalid(
                what(self),
                format!("{} bytes", t.len),
                format!("{} bytes", t.got),
            ));
        }
        if t.crc != t.declared {
            self.failed = true;
            return Err(TapeError::checksum(self.at(), what(self), t.declared, t.crc));
        }
        self.body_crc = crate::crc::combine(self.body_crc, t.crc, u64::from(t.len));
        self.tracks += 1;
        self.data_bytes += u64::from(t.len);
        Ok(())
    }

    /// Bytes written so far (header and records).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn track_count(&self) -> u32 {
        self.tracks
    }

    /// The header this segment was started with.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Access the writer (e.g. to flush an accumulation file between tracks).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    /// Write the trailer and give back the writer and the summary.
    pub fn finish(mut self) -> Result<(W, SegmentSummary), TapeError> {
        self.check_usable("the trailer")?;
        if let Some(t) = &self.open {
            return Err(TapeError::invalid(
                format!("the trailer of {}", self.what()),
                "every track ended",
                format!("track {}:{} still open", t.addr.volume, t.addr.track),
            ));
        }
        let summary = SegmentSummary {
            header: self.header,
            track_count: self.tracks,
            data_bytes: self.data_bytes,
            total_bytes: self.bytes + SEGMENT_TRAILER_LEN as u64,
            crc32c: self.body_crc,
        };
        let at = self.at();
        self.w
            .write_all(&encode_trailer(&summary))
            .and_then(|_| self.w.flush())
            .map_err(|e| TapeError::io(at, "writing the segment trailer", e))?;
        Ok((self.w, summary))
    }
}
