//! The back-end role: drives, segments to tape, segments back from tape.

pub mod commands;
pub mod context;
pub mod copy;
pub mod device;
pub mod drive;
pub mod library_ops;
pub mod schedule;
pub mod serve;
pub mod writer;
