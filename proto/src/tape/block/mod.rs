//! Layer 1: a block device — variable-length records and tape marks — and
//! its implementations:
//!
//! - [`SimhTape`] (in `simh.rs`): a tape in a SIMH `.tap` image (the
//!   byte layout is documented there), over any [`TapeImage`] (`image.rs`):
//!   an image file, or a `Cursor<Vec<u8>>` in tests;
//! - [`super::throttle::Throttle`] limits any block device to a drive's speed.
//!
//! Tape file *n* starts after the *n*-th tape mark.

mod image;
mod simh;
#[cfg(test)]
mod tests;

pub use image::TapeImage;
pub use simh::{Capacity, MemTape, SimhTape, SIMH_END_OF_MEDIUM, SIMH_ERROR_FLAG, SIMH_TAPE_MARK};

use super::TapeError;

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
    /// Write one record of 1 ..= [`MAX_BLOCK_SIZE`](super::MAX_BLOCK_SIZE) bytes.
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

/// A reference to or a box of a device is that device: every method is
/// forwarded to `**self`.
macro_rules! forward_block_device {
    ($($wrapper:ty),*) => {$(
        impl<D: BlockDevice + ?Sized> BlockDevice for $wrapper {
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
    )*};
}

forward_block_device!(&mut D, Box<D>);
