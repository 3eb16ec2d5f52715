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
use std::io::{self, Cursor, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::error::Location;
use super::{TapeError, MAX_BLOCK_SIZE};

/// What [`BlockDevice::read_block`] found at the current position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// A data record of this many bytes (now in the caller's buffer).
    Record(usize),
    /// A tape mark: the position is now at the start of the next tape file.
    FileMark,
    /// Nothing more is recorded (end of the image, or an end-of-medium
    /// marker). The position does not move.
    EndOfData,
}

/// A position on the tape: tape file number (from 0) and the number of the
/// next record within that file (from 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub file: u32,
    pub record: u64,
}

/// A tape drive or tape image: records and tape marks, written and read
/// sequentially, with positioning by tape file number.
///
/// Writing at a position discards everything after it (as on a real tape).
pub trait BlockDevice {
    /// Write one record of 1 ..= [`MAX_BLOCK_SIZE`] bytes.
    fn write_record(&mut self, data: &[u8]) -> Result<(), TapeError>;
    /// Write a tape mark (filemark).
    fn write_filemark(&mut self) -> Result<(), TapeError>;
    /// Read the next block into `buf` (replacing its contents). A record
    /// longer than `max_len` is an error and the position does not move.
    fn read_block(&mut self, buf: &mut Vec<u8>, max_len: usize) -> Result<Block, TapeError>;
    /// Move over the next block without transferring its data (not counted
    /// by [`BlockDevice::records_read`]).
    fn skip_block(&mut self) -> Result<Block, TapeError>;
    /// Go to the beginning of the tape (tape file 0, record 0).
    fn rewind(&mut self) -> Result<(), TapeError>;
    /// Go to the start of tape file `file` (just after the `file`-th tape mark).
    fn locate_file(&mut self, file: u32) -> Result<(), TapeError>;
    /// Make everything written so far durable.
    fn sync(&mut self) -> Result<(), TapeError>;
    /// The current position.
    fn position(&self) -> Position;
    /// Data records read (transferred) so far.
    fn records_read(&self) -> u64;

    /// Bytes of medium a record of `len` bytes takes (for a SIMH image: the
    /// data padded to even length and two length words). The default, for a
    /// device with no capacity accounting, is `len`.
    fn record_cost(&self, len: usize) -> u64 {
        len as u64
    }
    /// Bytes of medium a tape mark takes (4 in a SIMH image; default 0).
    fn filemark_cost(&self) -> u64 {
        0
    }
    /// Bytes of medium left between the current position and the physical
    /// end of the tape (None: no capacity limit). A write that needs more is
    /// refused with [`TapeError::EndOfMedium`] and writes nothing.
    fn capacity_left(&self) -> Option<u64> {
        None
    }
    /// Bytes of medium left between the current position and the
    /// early-warning point (0 inside the early-warning zone; None: no
    /// capacity limit). Writes inside the zone still succeed, as on LTO.
    fn early_warning_left(&self) -> Option<u64> {
        None
    }
    /// Whether the current position is at or past the early-warning point.
    fn early_warning(&self) -> bool {
        self.early_warning_left() == Some(0)
    }
    /// Discard everything after the current position now (an abandoned
    /// partial tape file). A drive needs nothing: the next write at this
    /// position makes the rest unreadable anyway; an image is cut here.
    fn erase_to_end(&mut self) -> Result<(), TapeError> {
        Ok(())
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn write_record(&mut self, data: &[u8]) -> Result<(), TapeError> {
        (**self).write_record(data)
    }
    fn write_filemark(&mut self) -> Result<(), TapeError> {
        (**self).write_filemark()
    }
    fn read_block(&mut self, buf: &mut Vec<u8>, max_len: usize) -> Result<Block, TapeError> {
        (**self).read_block(buf, max_len)
    }
    fn skip_block(&mut self) -> Result<Block, TapeError> {
        (**self).skip_block()
    }
    fn rewind(&mut self) -> Result<(), TapeError> {
        (**self).rewind()
    }
    fn locate_file(&mut self, file: u32) -> Result<(), TapeError> {
        (**self).locate_file(file)
    }
    fn sync(&mut self) -> Result<(), TapeError> {
        (**self).sync()
    }
    fn position(&self) -> Position {
        (**self).position()
    }
    fn records_read(&self) -> u64 {
        (**self).records_read()
    }
    fn record_cost(&self, len: usize) -> u64 {
        (**self).record_cost(len)
    }
    fn filemark_cost(&self) -> u64 {
        (**self).filemark_cost()
    }
    fn capacity_left(&self) -> Option<u64> {
        (**self).capacity_left()
    }
    fn early_warning_left(&self) -> Option<u64> {
        (**self).early_warning_left()
    }
    fn early_warning(&self) -> bool {
        (**self).early_warning()
    }
    fn erase_to_end(&mut self) -> Result<(), TapeError> {
        (**self).erase_to_end()
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for Box<D> {
    fn write_record(&mut self, data: &[u8]) -> Result<(), TapeError> {
        (**self).write_record(data)
    }
    fn write_filemark(&mut self) -> Result<(), TapeError> {
        (**self).write_filemark()
    }
    fn read_block(&mut self, buf: &mut Vec<u8>, max_len: usize) -> Result<Block, TapeError> {
        (**self).read_block(buf, max_len)
    }
    fn skip_block(&mut self) -> Result<Block, TapeError> {
        (**self).skip_block()
    }
    fn rewind(&mut self) -> Result<(), TapeError> {
        (**self).rewind()
    }
    fn locate_file(&mut self, file: u32) -> Result<(), TapeError> {
        (**self).locate_file(file)
    }
    fn sync(&mut self) -> Result<(), TapeError> {
        (**self).sync()
    }
    fn position(&self) -> Position {
        (**self).position()
    }
    fn records_read(&self) -> u64 {
        (**self).records_read()
    }
    fn record_cost(&self, len: usize) -> u64 {
        (**self).record_cost(len)
    }
    fn filemark_cost(&self) -> u64 {
        (**self).filemark_cost()
    }
    fn capacity_left(&self) -> Option<u64> {
        (**self).capacity_left()
    }
    fn early_warning_left(&self) -> Option<u64> {
        (**self).early_warning_left()
    }
    fn early_warning(&self) -> bool {
        (**self).early_warning()
    }
    fn erase_to_end(&mut self) -> Result<(), TapeError> {
        (**self).erase_to_end()
    }
}

/// What a SIMH image is stored in: anything seekable that can also be cut
/// short (writing in the middle of a tape discards the rest) and synced.
pub trait TapeImage: Read + Write + Seek {
    /// Cut the image to `len` bytes.
    fn truncate_to(&mut self, len: u64) -> io::Result<()>;
    /// Make the image durable (fsync for a file).
    fn sync_image(&mut self) -> io::Result<()>;
}

impl TapeImage for File {
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_image(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

impl TapeImage for Cursor<Vec<u8>> {
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        self.get_mut().truncate(len);
        Ok(())
    }
    fn sync_image(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TapeImage for Cursor<&mut Vec<u8>> {
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        self.get_mut().truncate(len);
        Ok(())
    }
    fn sync_image(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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
        let n = (data.len() as u32).to_le_bytes();
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
        let known = (self.file_starts.len() - 1) as u32;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(data: &[u8]) -> Vec<u8> {
        let n = (data.len() as u32).to_le_bytes();
        let mut v = n.to_vec();
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(0);
        }
        v.extend_from_slice(&n);
        v
    }

    #[test]
    fn writes_the_simh_container_exactly() {
        let mut t = MemTape::memory();
        t.write_record(b"abc").unwrap();
        t.write_record(b"defg").unwrap();
        t.write_filemark().unwrap();
        t.write_record(b"h").unwrap();
        t.write_filemark().unwrap();
        let mut want = rec(b"abc");
        want.extend(rec(b"defg"));
        want.extend([0, 0, 0, 0]);
        want.extend(rec(b"h"));
        want.extend([0, 0, 0, 0]);
        assert_eq!(t.bytes(), &want[..]);
        assert_eq!(&t.bytes()[..12], &[3, 0, 0, 0, b'a', b'b', b'c', 0, 3, 0, 0, 0]);
        assert_eq!(t.position(), Position { file: 2, record: 0 });
    }

    #[test]
    fn reads_back_records_marks_and_end() {
        let mut t = MemTape::memory();
        t.write_record(b"abc").unwrap();
        t.write_filemark().unwrap();
        t.write_record(b"de").unwrap();
        t.rewind().unwrap();
        let mut buf = Vec::new();
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(3));
        assert_eq!(buf, b"abc");
        assert_eq!(t.position(), Position { file: 0, record: 1 });
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::FileMark);
        assert_eq!(t.position(), Position { file: 1, record: 0 });
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(2));
        assert_eq!(buf, b"de");
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
        assert_eq!(t.records_read(), 2);
    }

    #[test]
    fn end_of_medium_marker_ends_data() {
        let mut img = rec(b"xy");
        img.extend(SIMH_END_OF_MEDIUM.to_le_bytes());
        img.extend(rec(b"zz"));
        let mut t = MemTape::from_bytes(img);
        let mut buf = Vec::new();
        assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::Record(2));
        assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::EndOfData);
        // Writing there replaces the marker and what follows.
        t.write_record(b"new").unwrap();
        let mut want = rec(b"xy");
        want.extend(rec(b"new"));
        assert_eq!(t.bytes(), &want[..]);
    }

    #[test]
    fn corrupt_containers_are_errors_naming_file_and_record() {
        let mut good = rec(b"ok");
        good.extend([0, 0, 0, 0]);
        good.extend(rec(b"first"));

        // Error flag.
        let mut img = good.clone();
        img.extend((SIMH_ERROR_FLAG | 4).to_le_bytes());
        img.extend(b"abcd");
        img.extend((SIMH_ERROR_FLAG | 4).to_le_bytes());
        let mut t = MemTape::from_bytes(img);
        let mut buf = Vec::new();
        for _ in 0..3 {
            t.read_block(&mut buf, 100).unwrap();
        }
        let e = t.read_block(&mut buf, 100).unwrap_err();
        assert!(matches!(e, TapeError::Corrupt { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("tape file 1, record 1") && msg.contains("error flag"),
            "{msg}"
        );

        // Trailing length disagrees.
        let mut img = good.clone();
        img.extend(4u32.to_le_bytes());
        img.extend(b"abcd");
        img.extend(5u32.to_le_bytes());
        let mut t = MemTape::from_bytes(img);
        t.locate_file(1).unwrap();
        t.read_block(&mut buf, 100).unwrap();
        let msg = t.read_block(&mut buf, 100).unwrap_err().to_string();
        assert!(
            msg.contains("tape file 1, record 1") && msg.contains("trailing length 5"),
            "{msg}"
        );
        // Skipping checks it too.
        t.locate_file(1).unwrap();
        t.skip_block().unwrap();
        assert!(t.skip_block().is_err());

        // Record longer than the caller's limit: refused, position unchanged.
        let mut t = MemTape::from_bytes(good.clone());
        let msg = t.read_block(&mut buf, 1).unwrap_err().to_string();
        assert!(
            msg.contains("at most 1 bytes") && msg.contains("found 2 bytes") && msg.contains("tape file 0, record 0")
        );
        assert_eq!(t.read_block(&mut buf, 2).unwrap(), Block::Record(2));

        // Image cut inside a record or a length word: Truncated.
        for cut in [good.len() - 1, good.len() - 5, 2] {
            let mut t = MemTape::from_bytes(good[..cut].to_vec());
            let mut res = Ok(Block::EndOfData);
            for _ in 0..4 {
                res = t.read_block(&mut buf, 100);
                if res.is_err() {
                    break;
                }
            }
            assert!(res.unwrap_err().is_truncated(), "cut at {cut}");
        }

        // A huge length never allocates: it is checked against the limit and the image size.
        let mut img = 0x7fff_fff0u32.to_le_bytes().to_vec();
        img.extend([0; 8]);
        let mut t = MemTape::from_bytes(img);
        assert!(t.read_block(&mut buf, usize::MAX).is_err());
        assert!(t.skip_block().is_err());
    }

    #[test]
    fn locate_uses_and_extends_the_cache() {
        let mut t = MemTape::memory();
        for f in 0..5u8 {
            for r in 0..3u8 {
                t.write_record(&[f, r, 0xaa]).unwrap();
            }
            t.write_filemark().unwrap();
        }
        // A fresh device over the same bytes knows nothing yet.
        let mut t = MemTape::from_bytes(t.into_bytes());
        let mut buf = Vec::new();
        t.locate_file(3).unwrap();
        assert_eq!(t.position(), Position { file: 3, record: 0 });
        assert_eq!(t.records_read(), 0, "locating reads no record data");
        assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::Record(3));
        assert_eq!(buf, [3, 0, 0xaa]);
        t.locate_file(1).unwrap();
        t.read_block(&mut buf, 10).unwrap();
        assert_eq!(buf, [1, 0, 0xaa]);
        t.locate_file(5).unwrap();
        assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::EndOfData);
        let e = t.locate_file(7).unwrap_err();
        assert!(matches!(e, TapeError::NotFound { .. }), "{e}");
        t.locate_file(0).unwrap();
        assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::Record(3));
        assert_eq!(buf, [0, 0, 0xaa]);
    }

    #[test]
    fn writing_in_the_middle_discards_the_rest() {
        let mut t = MemTape::memory();
        for f in 0..4u8 {
            t.write_record(&[f; 10]).unwrap();
            t.write_filemark().unwrap();
        }
        t.locate_file(2).unwrap();
        t.write_record(b"replacement").unwrap();
        t.write_filemark().unwrap();
        t.rewind().unwrap();
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            match t.read_block(&mut buf, 100).unwrap() {
                Block::Record(_) => seen.push(buf.clone()),
                Block::FileMark => {}
                Block::EndOfData => break,
            }
        }
        assert_eq!(seen, vec![vec![0u8; 10], vec![1u8; 10], b"replacement".to_vec()]);
        assert!(t.locate_file(4).is_err(), "old file 4 must be gone");
    }

    #[test]
    fn image_files_create_open_and_refuse_writes_when_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tap");
        let mut t = SimhTape::create(&path).unwrap();
        t.write_record(b"hello").unwrap();
        t.write_filemark().unwrap();
        t.sync().unwrap();
        drop(t);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 + 6 + 4 + 4);
        let mut t = SimhTape::open(&path).unwrap();
        let mut buf = Vec::new();
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(5));
        assert!(t.write_record(b"x").is_err());
        let mut t = SimhTape::open_rw(&path).unwrap();
        t.locate_file(1).unwrap();
        t.write_record(b"more").unwrap();
        drop(t);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 18 + 12);
    }

    #[test]
    fn rejects_empty_and_oversized_records() {
        let mut t = MemTape::memory();
        assert!(matches!(t.write_record(b""), Err(TapeError::Invalid { .. })));
        assert!(t.write_record(&vec![0; MAX_BLOCK_SIZE + 1]).is_err());
        assert!(t.bytes().is_empty());
    }

    #[test]
    fn capacity_refuses_writes_past_the_end_and_writes_nothing() {
        // 3 records of 10 bytes = 54 image bytes, two tape marks 8: 62 bytes.
        let cap = Capacity::new(62, 20).unwrap();
        assert!(Capacity::new(10, 11).is_err());
        let mut t = MemTape::memory().with_capacity(cap);
        assert_eq!(t.record_cost(10), 18);
        assert_eq!(t.record_cost(11), 20);
        assert_eq!(t.filemark_cost(), 4);
        assert_eq!(t.capacity_left(), Some(62));
        assert_eq!(t.early_warning_left(), Some(42));
        t.write_record(&[1; 10]).unwrap();
        t.write_record(&[2; 10]).unwrap();
        assert!(!t.early_warning());
        assert_eq!(t.early_warning_left(), Some(6));
        // Starts before the early-warning point, ends inside the zone: fine.
        t.write_record(&[3; 10]).unwrap();
        assert!(t.early_warning(), "54 bytes written, the zone starts at 42");
        assert_eq!(t.early_warning_left(), Some(0));
        assert_eq!(t.capacity_left(), Some(8));
        // Inside the zone: still succeeds (like LTO), and is reported.
        t.write_filemark().unwrap();
        assert!(t.early_warning());
        let before = t.bytes().to_vec();
        let e = t.write_record(&[4; 1]).unwrap_err();
        assert!(e.is_end_of_medium(), "{e}");
        assert!(!e.is_tape_full());
        assert!(
            matches!(
                e,
                TapeError::EndOfMedium {
                    needed: 10,
                    available: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.location(), Some(&Location::record(1, 0)));
        assert!(e.to_string().contains("end of medium"), "{e}");
        assert_eq!(t.bytes(), &before[..], "a refused write writes nothing");
        assert_eq!(t.position(), Position { file: 1, record: 0 });
        // Still appendable where it fits, and readable.
        t.write_filemark().unwrap();
        assert_eq!(t.capacity_left(), Some(0));
        assert!(t.write_filemark().unwrap_err().is_end_of_medium());
        t.rewind().unwrap();
        let mut buf = Vec::new();
        for want in [1u8, 2, 3] {
            assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(10));
            assert_eq!(buf, [want; 10]);
        }
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::FileMark);
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::FileMark);
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
        // Rewriting from an earlier position frees the space after it.
        t.locate_file(1).unwrap();
        assert_eq!(t.capacity_left(), Some(4));
        t.rewind().unwrap();
        assert_eq!(t.capacity_left(), Some(62));
        assert!(!t.early_warning());
        // Forwarding through &mut and Box keeps the accounting.
        let r: &mut MemTape = &mut t;
        assert_eq!(BlockDevice::early_warning_left(&r), Some(42));
        let b: Box<dyn BlockDevice> = Box::new(MemTape::memory().with_capacity(cap));
        assert_eq!(b.capacity_left(), Some(62));
        assert_eq!(b.record_cost(3), 12);
        // No capacity: unlimited.
        let t = MemTape::memory();
        assert_eq!(
            (t.capacity_left(), t.early_warning_left(), t.early_warning()),
            (None, None, false)
        );
    }
}
