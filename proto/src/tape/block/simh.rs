//! Layer 1: a block device — variable-length records and tape marks — and
//! its SIMH `.tap` image implementation.
//!
//! SIMH container (all lengths 32-bit little-endian):
//!
//! ```text
//! record:     LEN  DATA[LEN]  (PAD if LEN is odd)  LEN
//! tape mark:  00 00 00 00
//! end of medium: FF FF FF FF   (optional; reading stops there)
//! ```
//!
//! A length with bit 31 set is SIMH's "bad record" flag and is refused, as
//! is a trailing length that differs from the leading one or a record longer
//! than the caller's limit. Tape file *n* starts after the *n*-th tape mark.

use std::fs::{File, OpenOptions};
use std::io::{self, Cursor, IoSlice, SeekFrom};
use std::path::Path;

use super::{Block, BlockDevice, Position, TapeImage};
use crate::num::saturating_u32;
use crate::tape::error::Location;
use crate::tape::{TapeError, MAX_BLOCK_SIZE};

/// SIMH length word of a tape mark.
pub const SIMH_TAPE_MARK: u32 = 0x0000_0000;
/// SIMH length word of the end of medium.
pub const SIMH_END_OF_MEDIUM: u32 = 0xFFFF_FFFF;
/// SIMH error flag in a length word.
pub const SIMH_ERROR_FLAG: u32 = 0x8000_0000;

/// The size of a tape: its physical capacity and the early-warning zone at
/// its end, in bytes of the image (SIMH framing included), like a real
/// drive's early-warning and physical end-of-medium points.
///
/// A write that starts inside the early-warning zone (the last
/// `early_warning` bytes) succeeds, and [`BlockDevice::early_warning`] says
/// the tape is there; a write that would pass `total` is refused with
/// [`TapeError::EndOfMedium`] and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    total: u64,
    early_warning: u64,
}

impl Capacity {
    /// `total` bytes of medium, the last `early_warning` of them the
    /// early-warning zone (at most `total`).
    pub fn new(total: u64, early_warning: u64) -> Result<Capacity, TapeError> {
        if early_warning > total {
            return Err(TapeError::invalid(
                "tape capacity",
                format!("an early-warning zone of at most the capacity ({total} bytes)"),
                format!("{early_warning} bytes"),
            ));
        }
        Ok(Capacity { total, early_warning })
    }
    /// Physical capacity in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Size of the early-warning zone in bytes.
    pub fn early_warning(&self) -> u64 {
        self.early_warning
    }
    /// Image offset of the early-warning point.
    pub fn early_warning_point(&self) -> u64 {
        self.total - self.early_warning
    }
}

/// A tape in a SIMH `.tap` image (see the module docs).
///
/// Tape file start offsets are cached as they are discovered, so locating a
/// file already passed is one seek; locating further spaces over records
/// by their length words (two 4-byte reads per record: the leading and the
/// trailing length, which must agree) without reading data.
#[derive(Debug)]
pub struct SimhTape<F> {
    inner: F,
    /// Byte offset of the current position in the image.
    offset: u64,
    /// Length of the image in bytes.
    len: u64,
    pos: Position,
    /// `file_starts[n]` = image offset of the start of tape file n (a prefix
    /// of the files, as far as they are known).
    file_starts: Vec<u64>,
    records_read: u64,
    read_only: bool,
    /// Physical capacity and early-warning zone (None: unlimited).
    capacity: Option<Capacity>,
}

/// An in-memory SIMH tape (for tests and tools).
pub type MemTape = SimhTape<Cursor<Vec<u8>>>;

impl SimhTape<File> {
    /// Create (or truncate to empty) an image file and open it read-write.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, TapeError> {
        let path = path.as_ref();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| {
                TapeError::io(
                    Location::default(),
                    format!("creating tape image {}", path.display()),
                    e,
                )
            })?;
        SimhTape::new(f)
    }
    /// Open an existing image read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TapeError> {
        let path = path.as_ref();
        let f = File::open(path)
            .map_err(|e| TapeError::io(Location::default(), format!("opening tape image {}", path.display()), e))?;
        let mut t = SimhTape::new(f)?;
        t.read_only = true;
        Ok(t)
    }
    /// Open an existing image read-write (to append).
    pub fn open_rw(path: impl AsRef<Path>) -> Result<Self, TapeError> {
        let path = path.as_ref();
        let f = OpenOptions::new().read(true).write(true).open(path).map_err(|e| {
            TapeError::io(
                Location::default(),
                format!("opening tape image {} read-write", path.display()),
                e,
            )
        })?;
        SimhTape::new(f)
    }
}

impl SimhTape<Cursor<Vec<u8>>> {
    /// A blank in-memory tape.
    pub fn memory() -> Self {
        Self::from_bytes(Vec::new())
    }
    /// An in-memory tape holding an existing image.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let len = bytes.len() as u64;
        SimhTape {
            inner: Cursor::new(bytes),
            offset: 0,
            len,
            pos: Position::default(),
            file_starts: vec![0],
            records_read: 0,
            read_only: false,
            capacity: None,
        }
    }
    /// The image bytes.
    pub fn bytes(&self) -> &[u8] {
        self.inner.get_ref()
    }
    /// Give back the image bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.inner.into_inner()
    }
}

impl<F: TapeImage> SimhTape<F> {
    /// Use any seekable image; positioned at the beginning of the tape.
    pub fn new(mut inner: F) -> Result<Self, TapeError> {
        let len = inner
            .seek(SeekFrom::End(0))
            .map_err(|e| TapeError::io(Location::default(), "finding the image length", e))?;
        Ok(SimhTape {
            inner,
            offset: 0,
            len,
            pos: Position::default(),
            file_starts: vec![0],
            records_read: 0,
            read_only: false,
            capacity: None,
        })
    }
    /// Give the tape a capacity (see [`Capacity`]); None removes it. An
    /// image already longer than the capacity can be read, and written only
    /// at positions where the write ends within the capacity.
    pub fn set_capacity(&mut self, capacity: Option<Capacity>) {
        self.capacity = capacity;
    }
    /// [`SimhTape::set_capacity`] by value.
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = Some(capacity);
        self
    }
    /// The capacity, if any.
    pub fn capacity(&self) -> Option<Capacity> {
        self.capacity
    }
    /// Whether the image was opened read-only (writes are refused).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
    /// Length of the image in bytes.
    pub fn image_len(&self) -> u64 {
        self.len
    }
    /// Byte offset of the current position in the image.
    pub fn image_offset(&self) -> u64 {
        self.offset
    }
    pub fn get_ref(&self) -> &F {
        &self.inner
    }
    pub fn into_inner(self) -> F {
        self.inner
    }

    fn here(&self) -> Location {
        Location::record(self.pos.file, self.pos.record)
    }

    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<(), TapeError> {
        let loc = self.here();
        self.inner
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.inner.read_exact(buf))
            .map_err(|e| TapeError::io(loc, format!("reading image byte {at}"), e))
    }

    /// The 32-bit length word at `at`, or None at the end of the image.
    fn word_at(&mut self, at: u64, what: &str) -> Result<Option<u32>, TapeError> {
        if at >= self.len {
            return Ok(None);
        }
        if self.len - at < 4 {
            return Err(TapeError::truncated(
                self.here(),
                format!("a 4-byte {what} at image byte {at}"),
                format!("{} bytes before the end of the image", self.len - at),
            ));
        }
        let mut w = [0u8; 4];
        self.read_at(at, &mut w)?;
        Ok(Some(u32::from_le_bytes(w)))
    }

    fn enter_next_file(&mut self) -> Result<(), TapeError> {
        let next = self.pos.file.checked_add(1).ok_or_else(|| {
            TapeError::corrupt(self.here(), "tape", "fewer than 2^32 tape files", "another tape mark")
        })?;
        self.pos = Position { file: next, record: 0 };
        if self.file_starts.len() == next as usize {
            self.file_starts.push(self.offset);
        }
        Ok(())
    }

    /// Common part of read and skip: the record length at the current
    /// position, or the tape mark / end of data it represents.
    fn next_header(&mut self, max_len: usize) -> Result<Result<usize, Block>, TapeError> {
        let here = self.offset;
        let Some(n) = self.word_at(here, "record length")? else {
            return Ok(Err(Block::EndOfData));
        };
        match n {
            SIMH_TAPE_MARK => {
                self.offset = here + 4;
                self.enter_next_file()?;
                Ok(Err(Block::FileMark))
            }
            SIMH_END_OF_MEDIUM => Ok(Err(Block::EndOfData)),
            n if n & SIMH_ERROR_FLAG != 0 => Err(TapeError::corrupt(
                self.here(),
                "SIMH record length",
                "a length without the error flag (bit 31)",
                format!("{n:#010x} at image byte {here}"),
            )),
            n => {
                let n = n as usize;
                let limit = max_len.min(MAX_BLOCK_SIZE);
                if n > limit {
                    return Err(TapeError::corrupt(
                        self.here(),
                        "record",
                        format!("a record of at most {limit} bytes"),
                        format!("{n} bytes at image byte {here}"),
                    ));
                }
                let need = 8 + (n + (n & 1)) as u64;
                if self.len - here < need {
                    return Err(TapeError::truncated(
                        self.here(),
                        format!("a record of {n} bytes ({need} bytes in the image) at image byte {here}"),
                        format!("{} bytes before the end of the image", self.len - here),
                    ));
                }
                Ok(Ok(n))
            }
        }
    }

    fn check_trailer(&self, n: usize, trailer: u32) -> Result<(), TapeError> {
        if trailer as usize != n {
            return Err(TapeError::corrupt(
                self.here(),
                "SIMH record",
                format!("a trailing length equal to the leading length {n}"),
                format!("trailing length {trailer} (record at image byte {})", self.offset),
            ));
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<(), TapeError> {
        if self.read_only {
            return Err(TapeError::io(
                self.here(),
                "writing",
                io::Error::new(io::ErrorKind::PermissionDenied, "the tape image was opened read-only"),
            ));
        }
        Ok(())
    }

    /// Refuse (before anything is cut or written) a write of `needed` image
    /// bytes at the current position that would pass the capacity.
    fn check_capacity(&self, needed: u64) -> Result<(), TapeError> {
        if let Some(c) = self.capacity {
            let available = c.total.saturating_sub(self.offset);
            if needed > available {
                return Err(TapeError::end_of_medium(self.here(), needed, available));
            }
        }
        Ok(())
    }

    /// Discard everything after the current position.
    fn cut_here(&mut self) -> Result<(), TapeError> {
        if self.offset < self.len {
            let at = self.offset;
            self.inner
                .truncate_to(at)
                .map_err(|e| TapeError::io(self.here(), format!("truncating the image at byte {at}"), e))?;
            self.len = at;
        }
        self.file_starts.truncate(self.pos.file as usize + 1);
        Ok(())
    }

    /// Append `parts` (at most 4: one record with its length words, or a
    /// tape mark) at the current position, without copying them together.
    fn append_parts(&mut self, parts: &[&[u8]]) -> Result<(), TapeError> {
        let at = self.offset;
        let loc = self.here();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let res = self.inner.seek(SeekFrom::Start(at)).and_then(|_| {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = parts.len().min(slices.len());
            for (slot, p) in slices.iter_mut().zip(parts) {
                *slot = IoSlice::new(p);
            }
            let mut bufs = &mut slices[..n];
            while !bufs.is_empty() {
                match self.inner.write_vectored(bufs) {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the image took no bytes")),
                    Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        match res {
            Ok(()) => {
                self.offset = at + total as u64;
                self.len = self.offset;
                Ok(())
            }
            Err(e) => {
                // The image may now hold part of the write: learn its length again.
                if let Ok(l) = self.inner.seek(SeekFrom::End(0)) {
                    self.len = l;
                }
                Err(TapeError::io(loc, format!("writing at image byte {at}"), e))
            }
        }
    }
}

impl<F: TapeImage> BlockDevice for SimhTape<F> {
    fn write_record(&mut self, data: &[u8]) -> Result<(), TapeError> {
        self.check_writable()?;
        if data.is_empty() || data.len() > MAX_BLOCK_SIZE {
            return Err(TapeError::invalid(
                "record",
                format!("1 to {MAX_BLOCK_SIZE} bytes"),
                format!("{} bytes", data.len()),
            ));
        }
        self.check_capacity(simh_record_cost(data.len()))?;
        self.cut_here()?;
        // 1..=MAX_BLOCK_SIZE, checked above: fits the 32-bit length word.
        let n = saturating_u32(data.len()).to_le_bytes();
        let pad: &[u8] = if data.len() % 2 == 1 { &[0] } else { &[] };
        self.append_parts(&[&n, data, pad, &n])?;
        self.pos.record += 1;
        Ok(())
    }

    fn write_filemark(&mut self) -> Result<(), TapeError> {
        self.check_writable()?;
        self.check_capacity(4)?;
        self.cut_here()?;
        self.append_parts(&[&SIMH_TAPE_MARK.to_le_bytes()])?;
        self.enter_next_file()
    }

    fn read_block(&mut self, buf: &mut Vec<u8>, max_len: usize) -> Result<Block, TapeError> {
        let n = match self.next_header(max_len)? {
            Ok(n) => n,
            Err(block) => return Ok(block),
        };
        let padded = n + (n & 1);
        // No clear(): only bytes beyond what the buffer held are zeroed.
        buf.resize(padded + 4, 0);
        let here = self.offset;
        self.read_at(here + 4, buf)?;
        let trailer = buf
            .get(padded..padded + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_le_bytes)
            .unwrap_or(u32::MAX);
        self.check_trailer(n, trailer)?;
        buf.truncate(n);
        self.offset = here + 8 + padded as u64;
        self.pos.record += 1;
        self.records_read += 1;
        Ok(Block::Record(n))
    }

    fn skip_block(&mut self) -> Result<Block, TapeError> {
        let n = match self.next_header(MAX_BLOCK_SIZE)? {
            Ok(n) => n,
            Err(block) => return Ok(block),
        };
        let padded = (n + (n & 1)) as u64;
        let here = self.offset;
        let mut w = [0u8; 4];
        self.read_at(here + 4 + padded, &mut w)?;
        self.check_trailer(n, u32::from_le_bytes(w))?;
        self.offset = here + 8 + padded;
        self.pos.record += 1;
        Ok(Block::Record(n))
    }

    fn rewind(&mut self) -> Result<(), TapeError> {
        self.offset = 0;
        self.pos = Position::default();
        Ok(())
    }

    fn locate_file(&mut self, file: u32) -> Result<(), TapeError> {
        if let Some(&start) = self.file_starts.get(file as usize) {
            self.offset = start;
            self.pos = Position { file, record: 0 };
            return Ok(());
        }
        let known = saturating_u32(self.file_starts.len().saturating_sub(1));
        self.offset = self.file_starts.last().copied().unwrap_or(0);
        self.pos = Position { file: known, record: 0 };
        loop {
            match self.skip_block()? {
                Block::Record(_) => {}
                Block::FileMark => {
                    if self.pos.file == file {
                        return Ok(());
                    }
                }
                Block::EndOfData => {
                    return Err(TapeError::not_found(
                        self.here(),
                        format!("tape file {file}"),
                        format!("the end of data in tape file {}", self.pos.file),
                    ))
                }
            }
        }
    }

    fn sync(&mut self) -> Result<(), TapeError> {
        let loc = self.here();
        self.inner
            .flush()
            .and_then(|_| self.inner.sync_image())
            .map_err(|e| TapeError::io(loc, "syncing the image", e))
    }

    fn position(&self) -> Position {
        self.pos
    }

    fn erase_to_end(&mut self) -> Result<(), TapeError> {
        self.check_writable()?;
        self.cut_here()
    }

    fn records_read(&self) -> u64 {
        self.records_read
    }

    fn record_cost(&self, len: usize) -> u64 {
        simh_record_cost(len)
    }

    fn filemark_cost(&self) -> u64 {
        4
    }

    fn capacity_left(&self) -> Option<u64> {
        self.capacity.map(|c| c.total.saturating_sub(self.offset))
    }

    fn early_warning_left(&self) -> Option<u64> {
        self.capacity
            .map(|c| c.early_warning_point().saturating_sub(self.offset))
    }
}

/// Image bytes of a SIMH record of `len` data bytes.
fn simh_record_cost(len: usize) -> u64 {
    8 + (len as u64 + (len as u64 & 1))
}
