//! Reading a segment: [`SegmentReader`] checks a segment fed to it in
//! pieces of any size, every length before it is trusted and every checksum;
//! [`verify`] and [`parse`] do the same for a segment in memory.

use crate::abs::TrackAddr;
use crate::num::{at_most, saturating_u32};
use crate::tape::bytes::{show_bytes, ByteReader};
use crate::tape::error::Location;
use crate::tape::{TapeError, MAX_TRACK_SIZE};

use super::codec::Trailer;
use super::{
    SegmentHeader, SegmentSummary, TrackRecord, VerifiedSegment, SEGMENT_HEADER_LEN, SEGMENT_TRAILER_LEN,
    SEGMENT_TRAILER_MAGIC, TRACK_HEADER_LEN, TRACK_MAGIC,
};

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
                    let take = at_most(u64::from(t.len - t.got), input.len());
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
                    t.got += saturating_u32(take); // take <= t.len - t.got
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
