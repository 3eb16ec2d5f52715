//! Message codec: one rkyv archive per frame, always validated on receipt.
//!
//! A frame on a QUIC stream is a 4-byte big-endian length followed by that
//! many bytes of an rkyv 0.8 archive (little endian, aligned, 32-bit relative
//! pointers: the format features are pinned in the workspace `Cargo.toml`).
//! Receivers read the frame into an [`rkyv::util::AlignedVec`] (reused from
//! frame to frame), validate it with bytecheck ([`rkyv::access`]) and
//! deserialize it; a frame that fails validation is an error, never a panic.
//!
//! Bulk data does not go through rkyv: a data frame's header (e.g.
//! [`super::TrackFrame::Track`]) says how many raw bytes follow it on the
//! stream, and those bytes travel as they are, into and out of reused
//! buffers, each checked by the CRC32C its header carries.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use thiserror::Error;

/// Largest frame a control conversation accepts.
pub const MAX_CONTROL_FRAME: usize = 4 << 20;
/// Largest frame a data conversation (tracks, segment chunks) accepts.
pub const MAX_DATA_FRAME: usize = 8 << 20;

/// A frame could not be encoded or decoded.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("invalid {what} frame ({len} bytes): {reason}")]
    Invalid {
        what: &'static str,
        len: usize,
        reason: String,
    },
    #[error("{what} frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { what: &'static str, len: usize, max: usize },
}

/// Serialize a message into one frame body.
pub fn encode<T>(msg: &T) -> Result<AlignedVec, WireError>
where
    T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    rkyv::to_bytes::<rancor::Error>(msg).map_err(|e| WireError::Encode {
        what: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Serialize a message into `out` (cleared first; its allocation, and the
/// thread's rkyv arena, are reused from message to message).
pub fn encode_into<T>(msg: &T, out: &mut AlignedVec) -> Result<(), WireError>
where
    T: for<'a, 'b> Serialize<HighSerializer<&'b mut AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    out.clear();
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(msg, out)
        .map(|_| ())
        .map_err(|e| WireError::Encode {
            what: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
}

/// Validate and deserialize one frame body. `bytes` need not be aligned: it
/// is copied into an aligned buffer first.
pub fn decode<T>(bytes: &[u8]) -> Result<T, WireError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    decode_aligned(&aligned)
}

/// Validate and deserialize one frame body already in an aligned buffer.
pub fn decode_aligned<T>(aligned: &AlignedVec<16>) -> Result<T, WireError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let what = short_type_name::<T>();
    let bytes: &[u8] = aligned;
    let archived = rkyv::access::<T::Archived, rancor::Error>(aligned).map_err(|e| WireError::Invalid {
        what,
        len: bytes.len(),
        reason: e.to_string(),
    })?;
    rkyv::deserialize::<T, rancor::Error>(archived).map_err(|e| WireError::Invalid {
        what,
        len: bytes.len(),
        reason: e.to_string(),
    })
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        id: u64,
        name: String,
        data: Vec<u8>,
    }

    #[test]
    fn round_trip() {
        let s = Sample {
            id: 7,
            name: "abs".into(),
            data: vec![1, 2, 3],
        };
        let bytes = encode(&s).expect("encode");
        let back: Sample = decode(&bytes).expect("decode");
        assert_eq!(back, s);
    }

    #[test]
    fn encoding_into_a_reused_buffer_gives_the_same_bytes() {
        let mut out = AlignedVec::new();
        for n in [0usize, 5, 1000, 3] {
            let s = Sample {
                id: n as u64,
                name: "x".repeat(n),
                data: vec![7; n],
            };
            encode_into(&s, &mut out).expect("encode");
            assert_eq!(&out[..], &encode(&s).expect("encode")[..]);
            assert_eq!(decode::<Sample>(&out).expect("decode"), s);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert!(decode::<Sample>(&junk).is_err(), "junk of {len} bytes accepted");
        }
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let s = Sample {
            id: 1,
            name: "x".repeat(100),
            data: vec![9; 1000],
        };
        let bytes = encode(&s).expect("encode");
        for cut in [1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode::<Sample>(&bytes[..cut]).is_err());
        }
    }
}
