//! A labelled tape: the writer and reader that the back-end mover and the
//! `smapp tape` commands use.
//!
//! Tape files, numbered from 0 by the tape marks before them:
//! ```text
//! file 0      VOL1 HDR1 HDR2                 (ANSI labels, 80-byte records)
//! file 1      NODE-HEADER
//! file 2..    SEGMENT | ABS-METADATA         (one tape file each, interleaved)
//! file n      DIRECTORY
//! file n+1    NODE-TRAILER
//! file n+2    CATALOG
//! file n+3    EOF1 EOF2  (or EOV1 EOV2)      followed by a second tape mark
//! ```
//! Label records are 80 bytes; every other tape file is cut into records of
//! the tape's block size (the last one shorter).
//!
//! A reader with no database finds things like this: file 0 and file 1 say
//! what the tape is; the end of the tape is found by spacing over records
//! (no data read) to the two tape marks; the end labels are the file before
//! them, the CATALOG the one before that, then the NODE-TRAILER and the
//! DIRECTORY. A tape that was never finished has no end labels: its data
//! files are scanned (every segment and metadata file is self-describing).
//!
//! One job per file: `head` reads and checks tape files 0 and 1, `end`
//! finds how a tape ends and reads its DIRECTORY and CATALOG, `recovery`
//! rebuilds the directory of a tape that was never finished, `writer` and
//! `capacity` write a tape and account for the room left on it, `reader`
//! reads tape files by number.

mod capacity;
mod describe;
mod end;
mod head;
mod reader;
mod records;
mod recovery;
mod writer;

pub use capacity::file_cost;
pub use describe::{describe, ContinuedAbs, TapeDescription};
pub use end::TapeEnd;
pub(crate) use head::check_head;
pub use reader::TapeReader;
pub use writer::TapeWriter;

/// First tape file that holds data (segments, metadata).
pub const FIRST_DATA_FILE: u32 = 2;

/// What a new tape is labelled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeParams {
    /// Volume serial: up to 6 characters of A–Z, 0–9 (VOL1 field).
    pub label: String,
    pub pool: String,
    /// Identifies the media set (a backup's sequence of tapes).
    pub media_set: u64,
    /// Position of this tape in its media set, from 1.
    pub sequence: u32,
    /// Record size for data tape files.
    pub block_size: usize,
    /// Owner identifier for VOL1 (up to 14 characters).
    pub owner: String,
}
