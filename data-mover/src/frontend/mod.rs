//! The front-end role: track streams in, accumulation files, segments out.

pub mod abs_writer;
pub mod accumulator;
pub mod backup;
pub mod index;
pub mod merge;
pub mod pairing;
pub mod restore;
pub mod resume;
pub mod staged;
pub mod upload;
