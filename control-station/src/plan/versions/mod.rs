//! Copy versions (seed 004, "Managing multiple copy versions"), pure: no
//! database, no sockets.
//!
//! A version set copies the volumes of a source pool, at one point in
//! time, onto the target volumes of one of its target pools; version *k*
//! goes to target pool *(k − 1) mod T* ([`rotation`]) and the newest
//! `keep` versions are kept. Each source volume is paired with a target
//! volume ahead of the copy ([`pairing`]): the first volume of the target
//! pool that is not reserved by another pair, at least as large, of the
//! same block and track geometry, on a node that can take part in the
//! copy (seed FIG. 4 and 5). A version's pairs come from its pre-copy
//! record — the pre-pairing record made for it, else the replication
//! record of the version it replaces in that pool — checked against the
//! source pool as it is now (FIG. 7 and 8): sources removed since lose
//! their pair (its target is freed), sources added get a new one, and a
//! kept pair whose target is no longer eligible is made again.

pub mod pairing;
pub mod rotation;

pub use pairing::{copy_record, eligibility, select_target, CopyPlan, Ineligible, NoTarget, Pair, VolumeFacts};
pub use rotation::{check_shape, retire_after, target_pool_of, RotationError};

#[cfg(test)]
mod tests;
