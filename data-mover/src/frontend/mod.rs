//! The front-end role: track streams in, accumulation files, segments out.
//!
//! A backup's segments follow the release protocol of [`release`]
//! (Received → Durable → Sealed → OnTape → InCatalog → Released), a pure
//! core whose effects [`accumulator`], [`upload`] and [`abs_writer`] carry
//! out on a [`store::Spool`] ([`store::FileSpool`] on disk,
//! [`mem_spool::MemSpool`] in memory for tests).

pub mod abs_writer;
pub mod accumulator;
pub mod backup;
pub mod channels;
pub mod context;
pub mod index;
pub mod intake;
pub mod mem_spool;
pub mod merge;
pub mod pairing;
pub mod release;
#[cfg(test)]
mod release_tests;
pub mod restore;
pub mod resume;
pub mod running;
pub mod staged;
pub mod store;
#[cfg(test)]
mod test_fixtures;
pub mod upload;
