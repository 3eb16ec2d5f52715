//! Integer conversions needed in many places, each named for what it
//! means, so that no `as` cast anywhere can silently truncate a value
//! (`clippy::cast_possible_truncation` is denied workspace-wide).

/// `n` as an index or length in memory. On 64-bit targets this is exact;
/// where `usize` is narrower a value that does not fit becomes
/// `usize::MAX`, which every bounds check (`get`, slicing, `min`) then
/// treats as out of range instead of wrapping to a small, wrong index.
pub fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// How much of `remaining` bytes fits in a buffer of `max` bytes: the
/// smaller of the two, as a `usize`.
pub fn at_most(remaining: u64, max: usize) -> usize {
    usize::try_from(remaining).map_or(max, |n| n.min(max))
}

/// A count or position known to fit in 32 bits (tape files on one tape,
/// records in a file, tracks in a frame), saturating at `u32::MAX` if it
/// ever did not; callers that take `u32::MAX` as a real value check
/// before calling.
pub fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A rate given in MB/s (10^6 bytes) on a command line, in bytes per
/// second; `None` (unlimited) for 0, a negative number or NaN. Huge rates
/// saturate at `u64::MAX`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // `as` from f64 saturates; positive here
pub fn bytes_per_second(mb_per_second: f64) -> Option<u64> {
    (mb_per_second > 0.0).then_some((mb_per_second * 1e6) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_clamp_instead_of_wrapping() {
        assert_eq!(to_usize(42), 42);
        assert_eq!(at_most(10, 4), 4);
        assert_eq!(at_most(3, 4), 3);
        assert_eq!(at_most(u64::MAX, 4), 4);
        assert_eq!(saturating_u32(7), 7);
        assert_eq!(bytes_per_second(2.5), Some(2_500_000));
        assert_eq!(bytes_per_second(0.0), None);
        assert_eq!(bytes_per_second(-1.0), None);
        assert_eq!(bytes_per_second(f64::NAN), None);
        assert_eq!(bytes_per_second(f64::INFINITY), Some(u64::MAX));
        #[cfg(target_pointer_width = "64")]
        assert_eq!(saturating_u32(1 << 33), u32::MAX);
    }
}
