//! Universally unique ids (RFC 9562 version 4, random): a cluster's id
//! (made at `pki init` or first start) and each ABS's, which stay the same
//! wherever a tape goes (another cluster's catalog keeps them while it may
//! renumber the ABS).

use std::fmt;
use std::str::FromStr;

/// A 128-bit UUID, written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lower
/// case). The all-zero UUID is [`Uuid::NIL`]: "none" on tape.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The nil UUID (all zeros): no UUID.
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A version-4 UUID from 16 random bytes (the version and variant bits
    /// are set; the caller brings the randomness).
    pub fn from_random_bytes(mut bytes: [u8; 16]) -> Uuid {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid(bytes)
    }

    pub fn is_nil(&self) -> bool {
        *self == Uuid::NIL
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A string that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a UUID (expected 32 hexadecimal digits as 8-4-4-4-12)")]
pub struct BadUuid {
    pub found: String,
}

impl FromStr for Uuid {
    type Err = BadUuid;

    fn from_str(s: &str) -> Result<Uuid, BadUuid> {
        let bad = || BadUuid { found: s.to_string() };
        let groups: Vec<&str> = s.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lens != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Uuid(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn version_4_bits_and_text_form() {
        let u = Uuid::from_random_bytes([0xff; 16]);
        assert_eq!(u.to_string(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let u = Uuid::from_random_bytes([0; 16]);
        assert_eq!(u.to_string(), "00000000-0000-4000-8000-000000000000");
        assert!(Uuid::NIL.is_nil() && !u.is_nil());
    }

    #[test]
    fn malformed_text_is_refused() {
        for s in [
            "",
            "0000000000004000800000000000000",
            "00000000-0000-4000-8000-00000000000g",
            "00000000-0000-4000-8000-0000000000000",
            "+0000000-0000-4000-8000-000000000000",
        ] {
            assert!(s.parse::<Uuid>().is_err(), "{s:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn text_round_trips(bytes in any::<[u8; 16]>()) {
            let u = Uuid(bytes);
            prop_assert_eq!(u.to_string().parse::<Uuid>().unwrap(), u);
            prop_assert_eq!(u.to_string().to_uppercase().parse::<Uuid>().unwrap(), u);
        }
    }
}
