//! The length-delimited frame decoder used by [`FramedRecv`](crate::FramedRecv).
//!
//! A thin wrapper over tokio-util's [`LengthDelimitedCodec`] (4-byte
//! big-endian length, the framing `proto::wire` documents) that reports the
//! two ways a frame can be wrong before rkyv ever sees it, with numbers:
//! a length prefix over the limit (the prefixed length is read back from
//! the buffer, since the codec does not consume it), and a stream that ends
//! inside a frame, including right after a length prefix (where the plain
//! codec would see an empty buffer and report a clean end).

use std::io;

use bytes::BytesMut;
use tokio_util::codec::length_delimited::LengthDelimitedCodecError;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// Bytes in a frame's length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// The codec for frames of at most `max_frame` bytes.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(LENGTH_PREFIX)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Why a frame could not be cut from the stream.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The length prefix announced `len` bytes, more than the limit.
    TooLarge { len: usize },
    /// The stream ended after `buffered` bytes of an unfinished frame
    /// (`prefix` says whether its length prefix had been read).
    Truncated { buffered: usize, prefix: bool },
    /// Reading the stream failed.
    Io(io::Error),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// [`LengthDelimitedCodec`] that remembers whether it is inside a frame.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    inner: LengthDelimitedCodec,
    mid_frame: bool,
}

impl FrameDecoder {
    pub(crate) fn new(max_frame: usize) -> Self {
        FrameDecoder {
            inner: codec(max_frame),
            mid_frame: false,
        }
    }
}

impl Decoder for FrameDecoder {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let before = src.len();
        match self.inner.decode(src) {
            Ok(Some(frame)) => {
                self.mid_frame = false;
                Ok(Some(frame))
            }
            Ok(None) => {
                // The codec consumes the length prefix once it has all of
                // it, then waits for the body.
                if src.len() < before {
                    self.mid_frame = true;
                }
                Ok(None)
            }
            Err(e) if e.get_ref().is_some_and(|i| i.is::<LengthDelimitedCodecError>()) => {
                let len = src
                    .get(..LENGTH_PREFIX)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .unwrap_or(0);
                Err(FrameError::TooLarge { len })
            }
            Err(e) => Err(FrameError::Io(e)),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && !self.mid_frame => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
                prefix: self.mid_frame,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eof(bytes: &[u8]) -> Vec<Result<usize, String>> {
        let mut d = FrameDecoder::new(16);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match d.decode_eof(&mut buf) {
                Ok(Some(f)) => out.push(Ok(f.len())),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(format!("{e:?}")));
                    return out;
                }
            }
        }
    }

    #[test]
    fn whole_frames_then_clean_end() {
        assert_eq!(eof(&[0, 0, 0, 2, 7, 7, 0, 0, 0, 0]), vec![Ok(2), Ok(0)]);
        assert_eq!(eof(&[]), vec![]);
    }

    #[test]
    fn end_inside_a_frame_is_truncated() {
        // Partial prefix, prefix only, prefix plus part of the body.
        assert_eq!(
            eof(&[0, 0]),
            vec![Err("Truncated { buffered: 2, prefix: false }".into())]
        );
        assert_eq!(
            eof(&[0, 0, 0, 3]),
            vec![Err("Truncated { buffered: 0, prefix: true }".into())]
        );
        assert_eq!(
            eof(&[0, 0, 0, 3, 1]),
            vec![Err("Truncated { buffered: 1, prefix: true }".into())]
        );
    }

    #[test]
    fn oversized_prefix_reports_its_length() {
        assert_eq!(eof(&[0, 0, 1, 0, 1, 2]), vec![Err("TooLarge { len: 256 }".into())]);
    }
}
