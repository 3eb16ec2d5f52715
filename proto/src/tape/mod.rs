//! The on-tape format (DESIGN.md "On-tape layout", seed 003 FIG. 33), in
//! layers like Proxmox's `pbs-tape`, each a small type over the one below:
//!
//! 1. [`block`]: a block device — variable-length records and tape marks.
//!    [`block::SimhTape`] stores them in the SIMH `.tap` container over any
//!    `Read + Write + Seek` (an image file, or a `Cursor<Vec<u8>>` in tests).
//! 2. [`file`](mod@file): tape files — a byte stream cut into records, ended by a tape mark.
//! 3. [`labels`]: ANSI X3.27 VOL1/HDR1/HDR2/EOF1/EOF2/EOV1/EOV2 labels.
//! 4. [`segment`], [`metadata`], [`node`], [`directory`]: this system's
//!    structures, each with a versioned magic and a CRC32C.
//!    [`throttle::Throttle`] limits any block device to a drive's speed.
//! 5. [`scan`]: one tape file read whole, identified and checked;
//!    [`skim`]: a data tape file read at its two ends only.
//! 6. [`volume`]: a labelled tape: [`volume::TapeWriter`] and
//!    [`volume::TapeReader`] (an unfinished tape's directory is rebuilt
//!    with [`skim`] and [`scan`]).
//! 7. [`inspect`]: reports and verifies a whole tape (uses [`scan`] and
//!    [`volume`]; nothing below uses it).
//!
//! Nothing read from a tape is trusted: every length, magic, version and
//! checksum is checked, and errors name the tape, tape file and record.
//! `FORMAT.md` at the top of the repository documents every byte.

pub mod block;
pub mod bytes;
pub mod directory;
mod error;
pub mod file;
pub mod inspect;
pub mod labels;
pub mod management;
pub mod metadata;
pub mod node;
pub mod scan;
pub mod segment;
pub mod skim;
pub mod throttle;
pub mod volume;

pub use error::{Location, TapeError};

/// Default record (block) size: 64 KiB, the largest record `mtdump` reads.
pub const DEFAULT_BLOCK_SIZE: usize = 65536;
/// Largest record size accepted when writing or reading.
pub const MAX_BLOCK_SIZE: usize = 1 << 20;
/// Largest track accepted in a segment.
pub const MAX_TRACK_SIZE: usize = 4 << 20;
/// Version of the whole on-tape format, in the NODE-HEADER.
pub const FORMAT_VERSION: u16 = 1;
