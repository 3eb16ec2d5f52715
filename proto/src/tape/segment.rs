//! Segments: one sealed piece of an accumulation file, one tape file on tape.
//!
//! ```text
//! SEGMENT-HEADER   (64 bytes: magic, version, ABS id, sequence, channel, time, CRC)
//! TRACK-RECORD*    (32-byte header: volume, track, length, data CRC, header CRC; then the data)
//! SEGMENT-TRAILER  (48 bytes: magic, ABS id, sequence, track count, data bytes,
//!                   segment bytes, CRC32C over header and all track records, trailer CRC)
//! ```
//! The front-end writes exactly these bytes into its accumulation file; the
//! back-end copies them to one tape file; the restore reads them back.
//! All integers are little-endian. Every byte of a segment is covered by a
//! CRC32C: the header and each track header by their own CRC, track data by
//! the track's data CRC, the trailer by the trailer CRC, and the header plus
//! all track records (headers and data) again by the body CRC in the trailer.
//!
//! Reading never trusts a length before the CRC covering it has been checked,
//! and [`SegmentReader`] checks a segment as a stream (bounded memory when
//! the track data is not kept).

use std::io::Write;

use crate::abs::TrackAddr;

use super::bytes::{show_bytes, ByteReader, ByteWriter};
use super::error::Location;
use super::{TapeError, MAX_TRACK_SIZE};

/// Magic of the SEGMENT-HEADER.
pub const SEGMENT_MAGIC: &[u8; 8] = b"DMCSEG01";
/// Magic of a TRACK-RECORD header.
pub const TRACK_MAGIC: &[u8; 8] = b"DMCTRK01";
/// Magic of the SEGMENT-TRAILER.
pub const SEGMENT_TRAILER_MAGIC: &[u8; 8] = b"DMCSGT01";
/// Version in the SEGMENT-HEADER.
pub const SEGMENT_VERSION: u16 = 1;
/// Bytes of the SEGMENT-HEADER.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes of a TRACK-RECORD header (the data follows).
pub const TRACK_HEADER_LEN: usize = 32;
/// Bytes of the SEGMENT-TRAILER.
pub const SEGMENT_TRAILER_LEN: usize = 48;

/// Identity of a segment, in its header.
///
/// SEGMENT-HEADER layout (64 bytes):
///
/// | offset | size | type    | field                                   |
/// |-------:|-----:|---------|-----------------------------------------|
/// | 0      | 8    | [u8; 8] | magic `DMCSEG01`                        |
/// | 8      | 2    | u16     | version (1)                             |
/// | 10     | 2    | u16     | header length (64)                      |
/// | 12     | 4    | u32     | seq                                     |
/// | 16     | 8    | u64     | abs_id                                  |
/// | 24     | 8    | u64     | channel_id                              |
/// | 32     | 8    | u64     | created_unix                            |
/// | 40     | 20   | zeros   | reserved                                |
/// | 60     | 4    | u32     | CRC32C of bytes 0..60                   |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub abs_id: u64,
    /// Sequence of this segment within its ABS, from 0.
    pub seq: u32,
    pub channel_id: u64,
    pub created_unix: u64,
}

impl SegmentHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut w = ByteWriter::with_capacity(SEGMENT_HEADER_LEN);
        w.bytes(SEGMENT_MAGIC)
            .u16(SEGMENT_VERSION)
            .u16(SEGMENT_HEADER_LEN as u16)
            .u32(self.seq)
            .u64(self.abs_id)
            .u64(self.channel_id)
            .u64(self.created_unix)
            .bytes(&[0; 20]);
        let crc = crc32c::crc32c(w.as_slice());
        w.u32(crc);
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out.copy_from_slice(w.as_slice());
        out
    }

    /// Decode and check the 64 header bytes.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, TapeError> {
        let mut r = ByteReader::new(bytes, "SEGMENT-HEADER");
        let magic = r.take(8, "magic")?;
        if magic != SEGMENT_MAGIC {
            return Err(TapeError::corrupt(
                Location::offset(0),
                "SEGMENT-HEADER field magic",
                show_bytes(SEGMENT_MAGIC),
                show_bytes(magic),
            ));
        }
        let covered = bytes.get(..60).unwrap_or(&[]);
        let stored = bytes
            .get(60..64)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_le_bytes);
        let Some(stored) = stored else {
            return Err(r.error(
                "header",
                format!("{SEGMENT_HEADER_LEN} bytes"),
                format!("{} bytes", bytes.len()),
            ));
        };
        let computed = crc32c::crc32c(covered);
        if stored != computed {
            return Err(TapeError::checksum(
                Location::offset(60),
                "SEGMENT-HEADER",
                stored,
                computed,
            ));
        }
        let version = r.u16("version")?;
        if version != SEGMENT_VERSION {
            return Err(TapeError::corrupt(
                Location::offset(8),
                "SEGMENT-HEADER field version",
                format!("version {SEGMENT_VERSION}"),
                format!("version {version}"),
            ));
        }
        let hlen = r.u16("header length")?;
        if hlen as usize != SEGMENT_HEADER_LEN {
            return Err(TapeError::corrupt(
                Location::offset(10),
                "SEGMENT-HEADER field header length",
                SEGMENT_HEADER_LEN.to_string(),
                hlen.to_string(),
            ));
        }
        let seq = r.u32("seq")?;
        let abs_id = r.u64("abs_id")?;
        let channel_id = r.u64("channel_id")?;
        let created_unix = r.u64("created_unix")?;
        r.zeros(20, "reserved")?;
        r.u32("crc32c")?;
        r.finish()?;
        Ok(SegmentHeader {
            abs_id,
            seq,
            channel_id,
            created_unix,
        })
    }
}

/// What a verified or freshly written segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub header: SegmentHeader,
    pub track_count: u32,
    /// Track data bytes (without headers).
    pub data_bytes: u64,
    /// Bytes of the whole segment (header, records, trailer).
    pub total_bytes: u64,
    /// CRC32C over the header and all track records (as in the trailer).
    pub crc32c: u32,
}

/// One track as read back, its checksum verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRecord {
    pub addr: TrackAddr,
    pub data: Vec<u8>,
}

impl SegmentSummary {
    /// CRC32C of all the segment's bytes (header, track records and
    /// trailer: what a directory entry records for its tape file), derived
    /// from the body CRC without reading the segment again.
    pub fn file_crc32c(&self) -> u32 {
        crc32c::crc32c_append(self.crc32c, &encode_trailer(self))
    }
}

/// A segment read back with every checksum verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSegment {
    pub summary: SegmentSummary,
    pub tracks: Vec<TrackRecord>,
}

/// TRACK-RECORD header layout (32 bytes, then `length` bytes of data):
///
/// | offset | size | type    | field                                   |
/// |-------:|-----:|---------|-----------------------------------------|
/// | 0      | 8    | [u8; 8] | magic `DMCTRK01`                        |
/// | 8      | 2    | u16     | volume (index into the ABS map's volumes) |
/// | 10     | 2    | u16     | reserved, 0                             |
/// | 12     | 4    | u32     | length of the data (≤ MAX_TRACK_SIZE)   |
/// | 16     | 8    | u64     | track number                            |
/// | 24     | 4    | u32     | CRC32C of the data                      |
/// | 28     | 4    | u32     | CRC32C of bytes 0..28                   |
fn encode_track_header(addr: TrackAddr, len: u32, data_crc: u32) -> [u8; TRACK_HEADER_LEN] {
    // Built on the stack: one per track, on the hot path.
    let mut out = [0u8; TRACK_HEADER_LEN];
    out[0..8].copy_from_slice(TRACK_MAGIC);
    out[8..10].copy_from_slice(&addr.volume.to_le_bytes());
    // 10..12 reserved, 0
    out[12..16].copy_from_slice(&len.to_le_bytes());
    out[16..24].copy_from_slice(&addr.track.to_le_bytes());
    out[24..28].copy_from_slice(&data_crc.to_le_bytes());
    let crc = crc32c::crc32c(&out[..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

/// SEGMENT-TRAILER layout (48 bytes):
///
/// | offset | size | type    | field                                        |
/// |-------:|-----:|---------|----------------------------------------------|
/// | 0      | 8    | [u8; 8] | magic `DMCSGT01`                             |
/// | 8      | 8    | u64     | abs_id (equal to the header's)               |
/// | 16     | 4    | u32     | seq (equal to the header's)                  |
/// | 20     | 4    | u32     | track count                                  |
/// | 24     | 8    | u64     | data bytes (sum of track lengths)            |
/// | 32     | 8    | u64     | segment bytes (header + records + trailer)   |
/// | 40     | 4    | u32     | body CRC32C: header and all track records    |
/// | 44     | 4    | u32     | CRC32C of bytes 0..44                        |
fn encode_trailer(s: &SegmentSummary) -> [u8; SEGMENT_TRAILER_LEN] {
    let mut w = ByteWriter::with_capacity(SEGMENT_TRAILER_LEN);
    w.bytes(SEGMENT_TRAILER_MAGIC)
        .u64(s.header.abs_id)
        .u32(s.header.seq)
        .u32(s.track_count)
        .u64(s.data_bytes)
        .u64(s.total_bytes)
        .u32(s.crc32c);
    let crc = crc32c::crc32c(w.as_slice());
    w.u32(crc);
    let mut out = [0u8; SEGMENT_TRAILER_LEN];
    out.copy_from_slice(w.as_slice());
    out
}

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

    /// Append one track record (`data.len()` ≤ [`super::MAX_TRACK_SIZE`]).
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
        let th = encode_track_header(addr, data.len() as u32, data_crc);
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
        t.got += chunk.len() as u32;
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

struct TrackState {
    addr: TrackAddr,
    len: u32,
    got: u32,
    expected_crc: u32,
    crc: u32,
    start: u64,
    data: Vec<u8>,
}

enum State {
    Header,
    RecordStart,
    TrackHeader,
    TrackData(TrackState),
    Trailer,
    Done(SegmentSummary),
    Failed,
}

/// Checks a segment fed to it in pieces of any size (e.g. tape records),
/// optionally keeping the track data. Memory without the data is constant.
pub struct SegmentReader {
    keep_data: bool,
    /// Checksum track data (false: [`SegmentReader::structure_only`]).
    check_data: bool,
    state: State,
    pending: Vec<u8>,
    offset: u64,
    body_crc: u32,
    header: Option<SegmentHeader>,
    track_count: u32,
    data_bytes: u64,
    tracks: Vec<TrackRecord>,
    /// An empty track just checked (reported as events once its header is).
    empty_track: Option<(TrackAddr, u32)>,
}

/// What the bytes fed to [`SegmentReader::feed_events`] hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEvent {
    /// A track record's header (its own checksum checked).
    Track { addr: TrackAddr, len: u32, crc32c: u32 },
    /// The next bytes of the current track's data: this range of the input.
    Data(std::ops::Range<usize>),
    /// The current track's data is complete and matched its checksum.
    TrackEnd,
}

impl SegmentReader {
    /// `keep_data`: collect the tracks (for a restore) or only check them.
    pub fn new(keep_data: bool) -> SegmentReader {
        SegmentReader {
            keep_data,
            check_data: true,
            state: State::Header,
            pending: Vec::with_capacity(SEGMENT_HEADER_LEN),
            offset: 0,
            body_crc: 0,
            header: None,
            track_count: 0,
            data_bytes: 0,
            tracks: Vec::new(),
            empty_track: None,
        }
    }

    /// A reader that checks everything but the track data's checksums (the
    /// headers, lengths, the trailer, and the body CRC as far as the track
    /// headers declare the data's CRCs): for passing on a segment that was
    /// verified whole already, to a receiver that checks each track's data
    /// against the CRC its frame carries. Saves one pass over the data.
    pub fn structure_only() -> SegmentReader {
        SegmentReader {
            check_data: false,
            ..SegmentReader::new(false)
        }
    }

    /// The header, once it has been read and checked.
    pub fn header(&self) -> Option<&SegmentHeader> {
        self.header.as_ref()
    }

    /// Bytes fed so far.
    pub fn bytes_fed(&self) -> u64 {
        self.offset
    }

    /// Tracks checked so far.
    pub fn track_count(&self) -> u32 {
        self.track_count
    }

    fn at(&self, offset: u64) -> Location {
        Location {
            segment: self.header.map(|h| (h.abs_id, h.seq)),
            offset: Some(offset),
            ..Location::default()
        }
    }

    fn fail(&mut self, mut e: TapeError) -> TapeError {
        self.state = State::Failed;
        if let (Some(l), Some(h)) = (e.location_mut(), self.header) {
            if l.segment.is_none() {
                l.segment = Some((h.abs_id, h.seq));
            }
        }
        e
    }

    fn need(&self) -> usize {
        match self.state {
            State::Header => SEGMENT_HEADER_LEN,
            State::RecordStart => 8,
            State::TrackHeader => TRACK_HEADER_LEN,
            State::Trailer => SEGMENT_TRAILER_LEN,
            _ => 0,
        }
    }

    /// Feed the next bytes of the segment.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), TapeError> {
        self.feed_inner(input, None)
    }

    /// Feed the next bytes of the segment and report what they hold, in
    /// order, into `events` (appended; ranges index `input`), so a caller
    /// can pass a segment's tracks on without copying them (e.g. as slices
    /// of the buffer `input` is in). A track's data is checked when its
    /// [`SegmentEvent::TrackEnd`] is reported; after an error the events of
    /// this call must not be used.
    pub fn feed_events(&mut self, input: &[u8], events: &mut Vec<SegmentEvent>) -> Result<(), TapeError> {
        self.feed_inner(input, Some(events))
    }

    fn feed_inner(&mut self, input: &[u8], mut events: Option<&mut Vec<SegmentEvent>>) -> Result<(), TapeError> {
        let total = input.len();
        let mut input = input;
        while !input.is_empty() {
            match &mut self.state {
                State::Failed => {
                    return Err(TapeError::corrupt(
                        self.at(self.offset),
                        "segment",
                        "no further input after an error",
                        "more bytes",
                    ))
                }
                State::Done(_) => {
                    let e = TapeError::corrupt(
                        self.at(self.offset),
                        "segment",
                        "the end of the segment after its trailer",
                        format!("{} more bytes", input.len()),
                    );
                    return Err(self.fail(e));
                }
                State::TrackData(t) => {
                    let take = ((t.len - t.got) as usize).min(input.len());
                    let (part, rest) = input.split_at(take);
                    if self.check_data {
                        t.crc = crc32c::crc32c_append(t.crc, part);
                    }
                    if self.keep_data {
                        t.data.extend_from_slice(part);
                    }
                    if let Some(ev) = events.as_deref_mut() {
                        let from = total - input.len();
                        ev.push(SegmentEvent::Data(from..from + take));
                    }
                    t.got += take as u32;
                    self.offset += take as u64;
                    input = rest;
                    if t.got == t.len {
                        self.end_track()?;
                        if let Some(ev) = events.as_deref_mut() {
                            ev.push(SegmentEvent::TrackEnd);
                        }
                    }
                }
                _ => {
                    let need = self.need();
                    let take = (need - self.pending.len()).min(input.len());
                    let (part, rest) = input.split_at(take);
                    self.pending.extend_from_slice(part);
                    self.offset += take as u64;
                    input = rest;
                    if self.pending.len() == need {
                        if let Err(e) = self.process_fixed() {
                            return Err(self.fail(e));
                        }
                        if let (Some(ev), State::TrackData(t)) = (events.as_deref_mut(), &self.state) {
                            ev.push(SegmentEvent::Track {
                                addr: t.addr,
                                len: t.len,
                                crc32c: t.expected_crc,
                            });
                        }
                        let empty = self.empty_track.take();
                        if let (Some(ev), Some(t)) = (events.as_deref_mut(), empty) {
                            ev.push(SegmentEvent::Track {
                                addr: t.0,
                                len: 0,
                                crc32c: t.1,
                            });
                            ev.push(SegmentEvent::TrackEnd);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn end_track(&mut self) -> Result<(), TapeError> {
        let State::TrackData(mut t) = std::mem::replace(&mut self.state, State::RecordStart) else {
            return Ok(());
        };
        if !self.check_data {
            // Taken as declared: whoever receives the data checks it.
            t.crc = t.expected_crc;
        }
        if t.crc != t.expected_crc {
            let data_start = t.start + TRACK_HEADER_LEN as u64;
            let what = format!(
                "data of track {}:{} (track record {}, segment bytes {} to {})",
                t.addr.volume,
                t.addr.track,
                self.track_count,
                data_start,
                data_start + u64::from(t.len),
            );
            let e = TapeError::checksum(self.at(data_start), what, t.expected_crc, t.crc);
            return Err(self.fail(e));
        }
        // The body CRC covers the data too: combined from the data's CRC
        // instead of a second pass over it.
        self.body_crc = crate::crc::combine(self.body_crc, t.crc, u64::from(t.len));
        self.track_count += 1;
        self.data_bytes += u64::from(t.len);
        if self.keep_data {
            self.tracks.push(TrackRecord {
                addr: t.addr,
                data: t.data,
            });
        }
        Ok(())
    }

    fn process_fixed(&mut self) -> Result<(), TapeError> {
        let start = self.offset - self.pending.len() as u64;
        let bytes = std::mem::take(&mut self.pending);
        let res = self.process_fixed_bytes(&bytes, start);
        // Reuse the buffer. A magic just recognised stays: it is the start of
        // the track header or trailer that follows.
        let keep = bytes.len() == 8 && matches!(self.state, State::TrackHeader | State::Trailer);
        self.pending = bytes;
        if !keep {
            self.pending.clear();
        }
        res
    }

    fn process_fixed_bytes(&mut self, bytes: &[u8], start: u64) -> Result<(), TapeError> {
        match self.state {
            State::Header => {
                let h = SegmentHeader::decode(bytes)?;
                self.header = Some(h);
                self.body_crc = crc32c::crc32c(bytes);
                self.state = State::RecordStart;
            }
            State::RecordStart => {
                if bytes == TRACK_MAGIC {
                    self.state = State::TrackHeader;
                } else if bytes == SEGMENT_TRAILER_MAGIC {
                    self.state = State::Trailer;
                } else {
                    return Err(TapeError::corrupt(
                        self.at(start),
                        "segment",
                        format!(
                            "a track record ({}) or the trailer ({})",
                            show_bytes(TRACK_MAGIC),
                            show_bytes(SEGMENT_TRAILER_MAGIC)
                        ),
                        show_bytes(bytes),
                    ));
                }
            }
            State::TrackHeader => self.process_track_header(bytes, start)?,
            State::Trailer => self.process_trailer(bytes, start)?,
            _ => {}
        }
        Ok(())
    }

    fn process_track_header(&mut self, bytes: &[u8], start: u64) -> Result<(), TapeError> {
        let covered = bytes.get(..28).unwrap_or(&[]);
        let mut r = ByteReader::with_base(bytes, "TRACK-RECORD header", 0);
        r.take(8, "magic")?;
        let volume = r.u16("volume")?;
        let reserved = r.u16("reserved")?;
        let len = r.u32("length")?;
        let track = r.u64("track")?;
        let expected_crc = r.u32("data crc32c")?;
        let stored = r.u32("header crc32c")?;
        let computed = crc32c::crc32c(covered);
        if stored != computed {
            return Err(TapeError::checksum(
                self.at(start + 28),
                format!(
                    "TRACK-RECORD header (track record {} at segment byte {start})",
                    self.track_count
                ),
                stored,
                computed,
            ));
        }
        if reserved != 0 {
            return Err(TapeError::corrupt(
                self.at(start + 10),
                "TRACK-RECORD header field reserved",
                "0",
                reserved.to_string(),
            ));
        }
        if len as usize > MAX_TRACK_SIZE {
            return Err(TapeError::corrupt(
                self.at(start + 12),
                "TRACK-RECORD header field length",
                format!("at most {MAX_TRACK_SIZE} bytes"),
                format!("{len} bytes"),
            ));
        }
        if self.track_count == u32::MAX {
            return Err(TapeError::corrupt(
                self.at(start),
                "segment",
                "fewer than 2^32 tracks",
                "another track record",
            ));
        }
        self.body_crc = crc32c::crc32c_append(self.body_crc, bytes);
        let data = if self.keep_data {
            Vec::with_capacity(len as usize)
        } else {
            Vec::new()
        };
        self.state = State::TrackData(TrackState {
            addr: TrackAddr { volume, track },
            len,
            got: 0,
            expected_crc,
            crc: 0,
            start,
            data,
        });
        if len == 0 {
            self.end_track()?;
            self.empty_track = Some((TrackAddr { volume, track }, expected_crc));
        }
        Ok(())
    }

    fn process_trailer(&mut self, bytes: &[u8], start: u64) -> Result<(), TapeError> {
        let trailer = Trailer::decode(bytes, start, |off| self.at(off))?;
        let Some(header) = self.header else {
            return Err(TapeError::corrupt(
                self.at(start),
                "segment",
                "a header before the trailer",
                "none",
            ));
        };
        let field = |off: u64, name: &str, expected: String, found: String| {
            TapeError::corrupt(
                self.at(start + off),
                format!("SEGMENT-TRAILER field {name}"),
                expected,
                found,
            )
        };
        trailer.check_header(&header, start, |off| self.at(off))?;
        let Trailer {
            track_count,
            data_bytes,
            total_bytes: total,
            body_crc: body,
            ..
        } = trailer;
        if track_count != self.track_count {
            return Err(field(
                20,
                "track count",
                format!("{} (tracks read)", self.track_count),
                track_count.to_string(),
            ));
        }
        if data_bytes != self.data_bytes {
            return Err(field(
                24,
                "data bytes",
                format!("{} (bytes read)", self.data_bytes),
                data_bytes.to_string(),
            ));
        }
        let want_total = start + SEGMENT_TRAILER_LEN as u64;
        if total != want_total {
            return Err(field(
                32,
                "segment bytes",
                format!("{want_total} (bytes read)"),
                total.to_string(),
            ));
        }
        if body != self.body_crc {
            return Err(TapeError::checksum(
                self.at(start + 40),
                "segment body (header and track records)",
                body,
                self.body_crc,
            ));
        }
        self.state = State::Done(SegmentSummary {
            header,
            track_count,
            data_bytes,
            total_bytes: total,
            crc32c: body,
        });
        Ok(())
    }

    /// The segment is complete: return what was checked (tracks only when
    /// kept).
    pub fn finish(self) -> Result<VerifiedSegment, TapeError> {
        let (expected, got) = match &self.state {
            State::Done(s) => {
                return Ok(VerifiedSegment {
                    summary: *s,
                    tracks: self.tracks,
                })
            }
            State::Failed => ("no earlier error".to_owned(), "an error".to_owned()),
            State::Header => (
                format!("a {SEGMENT_HEADER_LEN}-byte SEGMENT-HEADER"),
                format!("{} bytes", self.pending.len()),
            ),
            State::RecordStart if self.pending.is_empty() => (
                "a track record or the SEGMENT-TRAILER".to_owned(),
                "the end of the segment".to_owned(),
            ),
            State::RecordStart => (
                "a track record or the SEGMENT-TRAILER".to_owned(),
                format!("{} bytes", self.pending.len()),
            ),
            State::TrackHeader => (
                format!("a {TRACK_HEADER_LEN}-byte TRACK-RECORD header"),
                format!("{} bytes", self.pending.len()),
            ),
            State::TrackData(t) => (format!("{} bytes of track data", t.len), format!("{} bytes", t.got)),
            State::Trailer => (
                format!("a {SEGMENT_TRAILER_LEN}-byte SEGMENT-TRAILER"),
                format!("{} bytes", self.pending.len()),
            ),
        };
        Err(TapeError::corrupt(
            self.at(self.offset),
            "segment (ends early)",
            expected,
            got,
        ))
    }
}

/// The fields of a SEGMENT-TRAILER whose own CRC matched.
struct Trailer {
    abs_id: u64,
    seq: u32,
    track_count: u32,
    data_bytes: u64,
    total_bytes: u64,
    body_crc: u32,
}

impl Trailer {
    /// Decode the 48 trailer bytes found at byte `start` of the segment and
    /// check the trailer CRC (the magic is the caller's to check).
    fn decode(bytes: &[u8], start: u64, at: impl Fn(u64) -> Location) -> Result<Trailer, TapeError> {
        let covered = bytes.get(..44).unwrap_or(&[]);
        let mut r = ByteReader::with_base(bytes, "SEGMENT-TRAILER", start);
        r.take(8, "magic")?;
        let trailer = Trailer {
            abs_id: r.u64("abs_id")?,
            seq: r.u32("seq")?,
            track_count: r.u32("track count")?,
            data_bytes: r.u64("data bytes")?,
            total_bytes: r.u64("segment bytes")?,
            body_crc: r.u32("body crc32c")?,
        };
        let stored = r.u32("trailer crc32c")?;
        let computed = crc32c::crc32c(covered);
        if stored != computed {
            return Err(TapeError::checksum(at(start + 44), "SEGMENT-TRAILER", stored, computed));
        }
        Ok(trailer)
    }

    /// Check that the trailer (at byte `start`) names `header`'s ABS and seq.
    fn check_header(&self, header: &SegmentHeader, start: u64, at: impl Fn(u64) -> Location) -> Result<(), TapeError> {
        let field = |off: u64, name: &str, expected: u64, found: u64| {
            Err(TapeError::corrupt(
                at(start + off),
                format!("SEGMENT-TRAILER field {name}"),
                format!("{expected} (from the header)"),
                found.to_string(),
            ))
        };
        if self.abs_id != header.abs_id {
            return field(8, "abs_id", header.abs_id, self.abs_id);
        }
        if self.seq != header.seq {
            return field(16, "seq", header.seq.into(), self.seq.into());
        }
        Ok(())
    }
}

/// The summary of a segment read at its two ends only: `head` starts with
/// the segment (at least its 64 header bytes), `tail` ends with it (at
/// least its 48 trailer bytes), and the segment is `segment_bytes` long.
///
/// Checks the header (magic, version, CRC), the trailer (magic, CRC), that
/// the trailer names the header's ABS and seq, and that its segment bytes
/// equal `segment_bytes`. The track records in between and the body CRC are
/// not read: a tape's directory can be rebuilt from this in time
/// proportional to its files, and a restore or `verify` still checks every
/// byte against the CRCs taken from here.
pub fn skim(head: &[u8], tail: &[u8], segment_bytes: u64) -> Result<SegmentSummary, TapeError> {
    let header = SegmentHeader::decode(head.get(..SEGMENT_HEADER_LEN).unwrap_or(head))?;
    let at = |offset: u64| Location {
        segment: Some((header.abs_id, header.seq)),
        offset: Some(offset),
        ..Location::default()
    };
    let minimum = (SEGMENT_HEADER_LEN + SEGMENT_TRAILER_LEN) as u64;
    if segment_bytes < minimum || tail.len() < SEGMENT_TRAILER_LEN {
        return Err(TapeError::corrupt(
            at(0),
            "segment",
            format!("at least {minimum} bytes, the last {SEGMENT_TRAILER_LEN} of them read"),
            format!("{segment_bytes} bytes, {} of them read at its end", tail.len()),
        ));
    }
    let start = segment_bytes - SEGMENT_TRAILER_LEN as u64;
    let bytes = &tail[tail.len() - SEGMENT_TRAILER_LEN..];
    if &bytes[..8] != SEGMENT_TRAILER_MAGIC {
        return Err(TapeError::corrupt(
            at(start),
            "SEGMENT-TRAILER field magic",
            show_bytes(SEGMENT_TRAILER_MAGIC),
            show_bytes(&bytes[..8]),
        ));
    }
    let t = Trailer::decode(bytes, start, at)?;
    t.check_header(&header, start, at)?;
    if t.total_bytes != segment_bytes {
        return Err(TapeError::corrupt(
            at(start + 32),
            "SEGMENT-TRAILER field segment bytes",
            format!("{segment_bytes} (the tape file's size)"),
            t.total_bytes.to_string(),
        ));
    }
    Ok(SegmentSummary {
        header,
        track_count: t.track_count,
        data_bytes: t.data_bytes,
        total_bytes: t.total_bytes,
        crc32c: t.body_crc,
    })
}

/// Check a whole segment in memory (structure, every length, magic, version,
/// checksum) without copying the data.
pub fn verify(bytes: &[u8]) -> Result<SegmentSummary, TapeError> {
    let mut r = SegmentReader::new(false);
    r.feed(bytes)?;
    Ok(r.finish()?.summary)
}

/// Parse and verify a whole segment in memory, returning its tracks.
pub fn parse(bytes: &[u8]) -> Result<VerifiedSegment, TapeError> {
    let mut r = SegmentReader::new(true);
    r.feed(bytes)?;
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> SegmentHeader {
        SegmentHeader {
            abs_id: 42,
            seq: 3,
            channel_id: 9,
            created_unix: 1_700_000_000,
        }
    }

    fn sample() -> (Vec<u8>, SegmentSummary) {
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        w.append_track(TrackAddr { volume: 1, track: 10 }, &[0xab; 1000])
            .unwrap();
        w.append_track(TrackAddr { volume: 0, track: 7 }, b"").unwrap();
        w.append_track(
            TrackAddr {
                volume: 2,
                track: u64::MAX,
            },
            b"xyz",
        )
        .unwrap();
        assert_eq!(w.track_count(), 3);
        assert_eq!(w.bytes_written(), 64 + 3 * 32 + 1003);
        let (v, s) = w.finish().unwrap();
        (v, s)
    }

    #[test]
    fn layout_is_as_documented() {
        let (v, s) = sample();
        assert_eq!(&v[..8], b"DMCSEG01");
        assert_eq!(&v[8..12], &[1, 0, 64, 0]);
        assert_eq!(&v[12..16], &3u32.to_le_bytes());
        assert_eq!(&v[16..24], &42u64.to_le_bytes());
        assert_eq!(&v[60..64], &crc32c::crc32c(&v[..60]).to_le_bytes());
        assert_eq!(&v[64..72], b"DMCTRK01");
        assert_eq!(&v[72..74], &1u16.to_le_bytes());
        assert_eq!(&v[76..80], &1000u32.to_le_bytes());
        assert_eq!(&v[80..88], &10u64.to_le_bytes());
        assert_eq!(&v[88..92], &crc32c::crc32c(&[0xab; 1000]).to_le_bytes());
        let t = v.len() - 48;
        assert_eq!(&v[t..t + 8], b"DMCSGT01");
        assert_eq!(&v[t + 40..t + 44], &crc32c::crc32c(&v[..t]).to_le_bytes());
        assert_eq!(s.total_bytes, v.len() as u64);
        assert_eq!(s.data_bytes, 1003);
        assert_eq!(s.crc32c, crc32c::crc32c(&v[..t]));
        assert_eq!(s.file_crc32c(), crc32c::crc32c(&v));
    }

    #[test]
    fn verify_and_parse_agree_with_the_writer() {
        let (v, s) = sample();
        assert_eq!(verify(&v).unwrap(), s);
        let p = parse(&v).unwrap();
        assert_eq!(p.summary, s);
        assert_eq!(p.tracks.len(), 3);
        assert_eq!(p.tracks[0].addr, TrackAddr { volume: 1, track: 10 });
        assert_eq!(p.tracks[1].data, b"");
        assert_eq!(p.tracks[2].data, b"xyz");
        // Fed one byte at a time.
        let mut r = SegmentReader::new(true);
        for b in &v {
            r.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(r.finish().unwrap(), p);
    }

    #[test]
    fn streamed_tracks_write_the_same_bytes_as_whole_ones() {
        let (whole, s) = sample();
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        let tracks: [(TrackAddr, Vec<u8>); 3] = [
            (TrackAddr { volume: 1, track: 10 }, vec![0xab; 1000]),
            (TrackAddr { volume: 0, track: 7 }, Vec::new()),
            (
                TrackAddr {
                    volume: 2,
                    track: u64::MAX,
                },
                b"xyz".to_vec(),
            ),
        ];
        for (addr, data) in &tracks {
            w.begin_track(*addr, data.len() as u32, crc32c::crc32c(data)).unwrap();
            for piece in data.chunks(333) {
                w.track_data(piece).unwrap();
            }
            w.end_track().unwrap();
        }
        let (streamed, s2) = w.finish().unwrap();
        assert_eq!(streamed, whole);
        assert_eq!(s2, s);
        // With the checksum given, nothing is recomputed and the bytes agree.
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        for (addr, data) in &tracks {
            w.append_track_with_crc(*addr, data, crc32c::crc32c(data)).unwrap();
        }
        assert_eq!(w.finish().unwrap().0, whole);
    }

    #[test]
    fn a_streamed_track_with_a_wrong_checksum_is_refused() {
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        let addr = TrackAddr { volume: 0, track: 5 };
        w.begin_track(addr, 4, crc32c::crc32c(b"abcd")).unwrap();
        w.track_data(b"abce").unwrap();
        let e = w.end_track().unwrap_err();
        assert!(matches!(e, TapeError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains("track 0:5"), "{e}");
        // The writer is unusable now.
        assert!(w.begin_track(addr, 1, 0).is_err());
        assert!(w.finish().is_err());

        // Too many bytes, too few, and data with no open track.
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        assert!(w.track_data(b"x").is_err());
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        w.begin_track(addr, 2, 0).unwrap();
        assert!(w.track_data(b"xyz").is_err());
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        w.begin_track(addr, 2, crc32c::crc32c(b"x")).unwrap();
        w.track_data(b"x").unwrap();
        assert!(w.end_track().is_err());
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        w.begin_track(addr, 2, 0).unwrap();
        assert!(w.finish().is_err(), "a trailer with a track still open");
    }

    #[test]
    fn events_report_every_track_and_its_data_in_any_piece_size() {
        let (v, _) = sample();
        for piece in [1usize, 7, 64, 100, v.len()] {
            let mut r = SegmentReader::new(false);
            let mut tracks: Vec<(TrackAddr, u32, Vec<u8>, bool)> = Vec::new();
            let mut ev = Vec::new();
            for chunk in v.chunks(piece) {
                ev.clear();
                r.feed_events(chunk, &mut ev).unwrap();
                for e in &ev {
                    match e {
                        SegmentEvent::Track { addr, len, .. } => tracks.push((*addr, *len, Vec::new(), false)),
                        SegmentEvent::Data(range) => {
                            let t = tracks.last_mut().unwrap();
                            assert!(!t.3);
                            t.2.extend_from_slice(&chunk[range.clone()]);
                        }
                        SegmentEvent::TrackEnd => tracks.last_mut().unwrap().3 = true,
                    }
                }
            }
            r.finish().unwrap();
            let got: Vec<(TrackAddr, u32, Vec<u8>, bool)> = tracks;
            assert_eq!(
                got,
                vec![
                    (TrackAddr { volume: 1, track: 10 }, 1000, vec![0xab; 1000], true),
                    (TrackAddr { volume: 0, track: 7 }, 0, Vec::new(), true),
                    (
                        TrackAddr {
                            volume: 2,
                            track: u64::MAX
                        },
                        3,
                        b"xyz".to_vec(),
                        true
                    ),
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn structure_only_checks_everything_but_the_data() {
        let (v, s) = sample();
        let mut r = SegmentReader::structure_only();
        r.feed(&v).unwrap();
        assert_eq!(r.finish().unwrap().summary, s);
        // Damaged data passes (its receiver checks it)...
        let mut bad = v.clone();
        bad[64 + 32 + 10] ^= 1;
        let mut r = SegmentReader::structure_only();
        r.feed(&bad).unwrap();
        assert!(r.finish().is_ok());
        // ...a damaged track header or trailer does not.
        for at in [64 + 3, v.len() - 10] {
            let mut bad = v.clone();
            bad[at] ^= 1;
            let mut r = SegmentReader::structure_only();
            let res = r.feed(&bad).and_then(|_| r.finish().map(|_| ()));
            assert!(res.is_err(), "byte {at}");
        }
    }

    #[test]
    fn an_empty_segment_is_valid() {
        let (v, s) = SegmentWriter::new(Vec::new(), hdr()).unwrap().finish().unwrap();
        assert_eq!(v.len(), 64 + 48);
        assert_eq!(verify(&v).unwrap(), s);
        assert_eq!(s.track_count, 0);
    }

    #[test]
    fn errors_name_the_segment_and_the_byte() {
        let (mut v, _) = sample();
        v[64 + 32 + 500] ^= 1;
        let e = verify(&v).unwrap_err();
        assert!(matches!(e, TapeError::Checksum { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("segment ABS 42 seq 3") && msg.contains("track 1:10"),
            "{msg}"
        );
        let (v, _) = sample();
        let e = verify(&v[..v.len() - 1]).unwrap_err().to_string();
        assert!(
            e.contains("48-byte SEGMENT-TRAILER") && e.contains("found 47 bytes"),
            "{e}"
        );
        let mut longer = v.clone();
        longer.push(0);
        assert!(verify(&longer).is_err());
        assert!(verify(&[]).is_err());
    }

    #[test]
    fn refuses_oversized_tracks_when_writing() {
        let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
        let big = vec![0; MAX_TRACK_SIZE + 1];
        assert!(matches!(
            w.append_track(TrackAddr { volume: 0, track: 0 }, &big),
            Err(TapeError::Invalid { .. })
        ));
        assert_eq!(w.track_count(), 0);
        assert_eq!(w.get_mut().len(), 64);
    }

    #[test]
    fn an_oversized_length_with_a_valid_crc_is_refused() {
        let mut v = SegmentHeader {
            abs_id: 1,
            seq: 0,
            channel_id: 0,
            created_unix: 0,
        }
        .encode()
        .to_vec();
        v.extend_from_slice(&encode_track_header(TrackAddr { volume: 0, track: 0 }, u32::MAX, 0));
        let e = verify(&v).unwrap_err().to_string();
        assert!(e.contains("length") && e.contains(&u32::MAX.to_string()), "{e}");
    }
}
