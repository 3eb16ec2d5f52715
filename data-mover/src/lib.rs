//! A data mover: front-end (track streams → accumulation files → sealed
//! segments) and/or back-end (segments → tape drives, and back for restore).
#![cfg_attr(test, allow(clippy::cast_possible_truncation))] // test data: byte patterns wrap on purpose

pub mod backend;
pub mod frontend;
pub mod limits;
pub mod mover;
pub mod spool;
