//! Which target pool each version goes to, and which versions a new one
//! retires: version *k* (1, 2, …) goes to target pool *(k − 1) mod T*; once
//! it is made, the newest `keep` versions stay and older ones are retired
//! (their records deleted, their targets free for the next version that
//! uses their pool). A pool holds one version, so `keep` ≤ T.

use thiserror::Error;

/// A version set's shape that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RotationError {
    #[error("a version set needs at least one target pool")]
    NoTargets,
    #[error("--keep {keep}: at least 1 and at most the {targets} target pools (each holds one version)")]
    Keep { keep: u32, targets: usize },
    #[error("version numbers start at 1")]
    Zero,
}

/// Check a set's shape: `targets` target pools, `keep` versions.
pub fn check_shape(targets: usize, keep: u32) -> Result<(), RotationError> {
    if targets == 0 {
        return Err(RotationError::NoTargets);
    }
    if keep == 0 || usize::try_from(keep).map_or(true, |k| k > targets) {
        return Err(RotationError::Keep { keep, targets });
    }
    Ok(())
}

/// The index of the target pool version `number` goes to, among `targets`.
pub fn target_pool_of(number: u64, targets: usize) -> Result<usize, RotationError> {
    if targets == 0 {
        return Err(RotationError::NoTargets);
    }
    let k = number.checked_sub(1).ok_or(RotationError::Zero)?;
    let t = u64::try_from(targets).map_err(|_| RotationError::NoTargets)?;
    usize::try_from(k % t).map_err(|_| RotationError::NoTargets)
}

/// Of the `live` versions (numbers), those to retire once version `made`
/// is made with `keep` kept: every version at or below `made − keep`, and
/// any other version in the same target pool as `made` (it was overwritten).
pub fn retire_after(live: &[u64], made: u64, keep: u32, targets: usize) -> Vec<u64> {
    let pool = target_pool_of(made, targets).ok();
    let oldest_kept = made.saturating_sub(u64::from(keep)) + 1;
    let mut out: Vec<u64> = live
        .iter()
        .copied()
        .filter(|&v| v != made && (v < oldest_kept || target_pool_of(v, targets).ok() == pool))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}
