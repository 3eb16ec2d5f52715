//! Pure planning types: no database, no sockets, no I/O.
//!
//! [`restore_plan`] turns the catalog's placement of an ABS's segments into a
//! parallel restore plan: one job per tape (each tape mounted once, its files
//! read in position order) spread over the free drives. [`chain`] picks the
//! base of a differential backup and the chain of ABSs for a point in time.

pub mod chain;
pub mod restore_plan;
pub mod versions;

pub use chain::{base_for, chain_at, chain_of, ChainError, ChainMember, Level};
pub use restore_plan::{PlanError, PlannedSegment, RestorePlan, TapeJob};
