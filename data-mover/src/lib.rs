//! A data mover: front-end (track streams → accumulation files → sealed
//! segments) and/or back-end (segments → tape drives, and back for restore).

pub mod backend;
pub mod frontend;
pub mod limits;
pub mod mover;
pub mod spool;
