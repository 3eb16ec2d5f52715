//! CRC32C helpers beyond the `crc32c` crate: a fast *combine*.
//!
//! `crc32c(A ‖ B)` follows from `crc32c(A)`, `crc32c(B)` and `|B|`: shift
//! the first CRC over `|B|` zero bytes (a multiplication by x^(8·|B|)
//! modulo the polynomial) and add the second. This lets a segment's body
//! CRC be derived from the CRCs of its tracks instead of a second pass over
//! their data. The `crc32c` crate's own `crc32c_combine` squares 32×32
//! GF(2) matrices once per bit of the length (about 10 µs for 64 KiB, more
//! than checksumming the 64 KiB again); this one multiplies by precomputed
//! powers x^(8·2^k) (well under a microsecond). Same method as zlib 1.2.12's
//! `crc32_combine`.

/// CRC-32C (Castagnoli), reflected.
const POLY: u32 = 0x82F6_3B78;

/// a·b modulo the polynomial (reflected bit order: bit 31 is x^0).
const fn mult_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut p: u32 = 0;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(2^k) modulo the polynomial, k = 0..64.
const X2N: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut p: u32 = 1 << 30; // x^1
    let mut k = 0;
    while k < 64 {
        t[k] = p;
        p = mult_mod_p(p, p);
        k += 1;
    }
    t
};

/// x^(8·n) modulo the polynomial: the operator that moves a CRC over `n`
/// zero bytes.
fn x8n_mod_p(mut n: u64) -> u32 {
    let mut p: u32 = 1 << 31; // x^0
    let mut k = 3; // 8 = 2^3
    while n != 0 {
        if n & 1 != 0 {
            p = mult_mod_p(X2N[k & 63], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// CRC32C of `A ‖ B` from `crc1` = CRC32C(A), `crc2` = CRC32C(B) and
/// `len2` = |B|.
pub fn combine(crc1: u32, crc2: u32, len2: u64) -> u32 {
    mult_mod_p(x8n_mod_p(len2), crc1) ^ crc2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 131 + 7) as u8).collect();
        for cut in [0usize, 1, 7, 64, 65536, 131_072, 199_999, 200_000] {
            let (a, b) = data.split_at(cut);
            assert_eq!(
                combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len() as u64),
                crc32c::crc32c(&data),
                "cut at {cut}"
            );
        }
        assert_eq!(combine(0x1234_5678, 0, 0), 0x1234_5678);
    }

    proptest! {
        #[test]
        fn agrees_with_the_crate(a in proptest::collection::vec(any::<u8>(), 0..3000),
                                 b in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let (ca, cb) = (crc32c::crc32c(&a), crc32c::crc32c(&b));
            let mut ab = a.clone();
            ab.extend_from_slice(&b);
            prop_assert_eq!(combine(ca, cb, b.len() as u64), crc32c::crc32c(&ab));
            prop_assert_eq!(combine(ca, cb, b.len() as u64), crc32c::crc32c_combine(ca, cb, b.len()));
        }
    }
}
