//! [`VolumeKey`]: one volume of one primary node, spelled `NODE:VOLUME`
//! (`pn1:vol0`) on the command line and in messages.

use std::fmt;
use std::str::FromStr;

use rkyv::{Archive, Deserialize, Serialize};
use thiserror::Error;

/// Longest node or volume name in a key.
pub const MAX_VOLUME_KEY_PART: usize = 255;

/// One volume of one primary node.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[rkyv(derive(Debug))]
pub struct VolumeKey {
    pub node: String,
    pub volume: String,
}

impl VolumeKey {
    pub fn new(node: &str, volume: &str) -> VolumeKey {
        VolumeKey {
            node: node.to_string(),
            volume: volume.to_string(),
        }
    }
}

impl fmt::Display for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.volume)
    }
}

/// A text that is not `NODE:VOLUME`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("volume {text:?}: expected NODE:VOLUME (e.g. pn1:vol0), each part 1 to {MAX_VOLUME_KEY_PART} bytes")]
pub struct BadVolumeKey {
    pub text: String,
}

impl FromStr for VolumeKey {
    type Err = BadVolumeKey;

    fn from_str(s: &str) -> Result<VolumeKey, BadVolumeKey> {
        let bad = || BadVolumeKey { text: s.to_string() };
        let (node, volume) = s.split_once(':').ok_or_else(bad)?;
        let ok = |p: &str| !p.is_empty() && p.len() <= MAX_VOLUME_KEY_PART && !p.contains(':');
        if !ok(node) || !ok(volume) {
            return Err(bad());
        }
        Ok(VolumeKey::new(node, volume))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_print_back() {
        let k: VolumeKey = "pn1:vol0".parse().unwrap();
        assert_eq!(k, VolumeKey::new("pn1", "vol0"));
        assert_eq!(k.to_string(), "pn1:vol0");
        for bad in ["", "pn1", ":vol0", "pn1:", "a:b:c"] {
            let e = bad.parse::<VolumeKey>().unwrap_err().to_string();
            assert!(e.contains("expected NODE:VOLUME"), "{bad}: {e}");
        }
    }
}
