//! `proto`: everything that crosses a boundary of a process or of time.
//!
//! - [`domain`]: ids, states, levels and failure codes as types.
//! - [`abs`]: abstract block sets: track sets, ABS maps, remap tables (pure).
//! - [`tape`]: the on-tape format, layered block device → records and tape
//!   marks → labelled tape files → segments (over `Read`/`Write`/`Seek`).
//! - [`wire`]: the QUIC messages between processes and their validated codec.
//! - [`num`]: integer conversions that never truncate silently.
//! - [`region`]: the management region of a target volume (a copy version's record).
//!
//! Nothing here opens a socket or a database.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))] // test data: byte patterns wrap on purpose

pub mod abs;
pub mod crc;
pub mod domain;
pub mod nbd;
pub mod num;
pub mod region;
pub mod tape;
pub mod wire;
