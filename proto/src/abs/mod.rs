//! Abstract block sets (seed 003, "Logical Object Translation to Abstract
//! block sets", FIG. 12–18).
//!
//! A logical object is a list of byte extents on volumes, in logical order.
//! Backup copies whole tracks (the *track set*), in any order; the
//! [`AbsMap`] says, as extents (never one entry per block), which bytes of
//! which track make up which logical range. Restore builds a [`RemapTable`]
//! (FIG. 15/16) from logical ranges to destination addresses and a [`Placer`]
//! that tells, for each track received, where its bytes go.

mod error;
mod map;
mod remap;
mod trackset;

pub use error::AbsError;
pub use map::{AbsMap, Geometry, LogicalRange, MapExtent, ObjectExtent, VolumeRef};
pub use remap::{DestTarget, Placement, Placer, RemapExtent, RemapTable};
pub use trackset::{TrackAddr, TrackRun, TrackSet};
