//! Typed message streams over QUIC bidirectional streams.
//!
//! Each frame is a 4-byte big-endian length and one rkyv archive
//! ([`proto::wire::encode`] / [`proto::wire::decode`], validated on
//! receipt). The receiver enforces a maximum frame size chosen per
//! conversation ([`MAX_CONTROL_FRAME`](proto::wire::MAX_CONTROL_FRAME) or
//! [`MAX_DATA_FRAME`](proto::wire::MAX_DATA_FRAME)) before buffering a
//! frame's body.
//!
//! When a received frame is rejected, [`FramedRecv::recv`] returns the
//! error and stops the stream with an application code from
//! [`crate::codes`] ([`MALFORMED_FRAME`](crate::codes::MALFORMED_FRAME) or
//! [`FRAME_TOO_LARGE`](crate::codes::FRAME_TOO_LARGE)), so the sender's next
//! write fails with [`TransportError::Stopped`] carrying that code. Every
//! later `recv` on that stream returns [`TransportError::Closed`].

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use proto::wire::{decode, encode, WireError};
use quinn::{RecvStream, SendStream, VarInt};
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::codes;
use crate::error::{Result, TransportError};
use crate::frame_codec::{codec, FrameDecoder, FrameError};

/// The sending half of a typed framed stream.
#[derive(Debug)]
pub struct FramedSend {
    inner: FramedWrite<SendStream, LengthDelimitedCodec>,
    max_frame: usize,
}

/// The receiving half of a typed framed stream.
#[derive(Debug)]
pub struct FramedRecv {
    inner: FramedRead<RecvStream, FrameDecoder>,
    max_frame: usize,
    failed: Option<String>,
}

/// Wrap a QUIC bidirectional stream; frames larger than `max_frame` bytes
/// are refused in both directions.
pub fn framed(send: SendStream, recv: RecvStream, max_frame: usize) -> (FramedSend, FramedRecv) {
    (FramedSend::new(send, max_frame), FramedRecv::new(recv, max_frame))
}

/// Open a new bidirectional stream on `conn` and frame it. The peer's
/// `accept_bi` only sees the stream once something has been sent on it.
pub async fn open_bi(conn: &quinn::Connection, max_frame: usize) -> Result<(FramedSend, FramedRecv)> {
    let (send, recv) = conn.open_bi().await?;
    Ok(framed(send, recv, max_frame))
}

/// Accept the next bidirectional stream the peer opened on `conn` and frame
/// it. Fails with [`TransportError::ConnectionLost`] once the connection is
/// closed.
pub async fn accept_bi(conn: &quinn::Connection, max_frame: usize) -> Result<(FramedSend, FramedRecv)> {
    let (send, recv) = conn.accept_bi().await?;
    Ok(framed(send, recv, max_frame))
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

impl FramedSend {
    /// Frame the sending half of a stream.
    pub fn new(send: SendStream, max_frame: usize) -> Self {
        FramedSend {
            inner: FramedWrite::new(send, codec(max_frame)),
            max_frame,
        }
    }

    /// The largest frame this side will send.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Encode `msg` as one frame and write it (flushed to the stream).
    ///
    /// A message whose encoding exceeds the frame limit is refused here with
    /// [`WireError::TooLarge`] and nothing is sent. If the peer stopped the
    /// stream, this returns [`TransportError::Stopped`] with its code.
    pub async fn send<T>(&mut self, msg: &T) -> Result<()>
    where
        T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        let body = encode(msg)?;
        if body.len() > self.max_frame {
            return Err(WireError::TooLarge {
                what: short_type_name::<T>(),
                len: body.len(),
                max: self.max_frame,
            }
            .into());
        }
        self.inner
            .send(Bytes::from_owner(body))
            .await
            .map_err(TransportError::from_stream_io)
    }

    /// Flush and finish the stream: the peer's `recv` returns `None` after
    /// the last frame.
    pub async fn finish(mut self) -> Result<()> {
        SinkExt::<Bytes>::flush(&mut self.inner)
            .await
            .map_err(TransportError::from_stream_io)?;
        self.inner.get_mut().finish()?;
        Ok(())
    }

    /// Abandon the stream with an application `code` (see [`crate::codes`]);
    /// frames not yet delivered are discarded.
    pub fn reset(&mut self, code: VarInt) -> Result<()> {
        self.inner.get_mut().reset(code)?;
        Ok(())
    }

    /// Wait until the peer has read everything (`Ok(None)`) or stopped the
    /// stream (`Ok(Some(code))`).
    pub async fn stopped(&mut self) -> Result<Option<VarInt>> {
        self.inner.get_ref().stopped().await.map_err(|e| match e {
            quinn::StoppedError::ConnectionLost(c) => TransportError::ConnectionLost(c),
            other => TransportError::Closed {
                reason: other.to_string(),
            },
        })
    }

    /// The underlying QUIC stream (writing to it directly bypasses framing
    /// and any frame still buffered here).
    pub fn stream_mut(&mut self) -> &mut SendStream {
        self.inner.get_mut()
    }
}

impl FramedRecv {
    /// Frame the receiving half of a stream.
    pub fn new(recv: RecvStream, max_frame: usize) -> Self {
        FramedRecv {
            inner: FramedRead::new(recv, FrameDecoder::new(max_frame)),
            max_frame,
            failed: None,
        }
    }

    /// The largest frame this side accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Receive and validate the next message: `Ok(None)` when the peer
    /// finished the stream cleanly between frames.
    ///
    /// A frame that fails rkyv validation is [`WireError::Invalid`]; a
    /// length prefix over the limit is [`WireError::TooLarge`] (its body is
    /// never read); a stream that ends inside a frame is
    /// [`WireError::Invalid`] too. In those three cases the stream is
    /// stopped with [`codes::MALFORMED_FRAME`] or [`codes::FRAME_TOO_LARGE`].
    pub async fn recv<T>(&mut self) -> Result<Option<T>>
    where
        T: Archive,
        T::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
            + Deserialize<T, HighDeserializer<rancor::Error>>,
    {
        if let Some(reason) = &self.failed {
            return Err(TransportError::Closed {
                reason: format!("an earlier receive failed: {reason}"),
            });
        }
        let what = short_type_name::<T>();
        let frame = match self.inner.next().await {
            None => return Ok(None),
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::TooLarge { len })) => {
                let err = WireError::TooLarge {
                    what,
                    len,
                    max: self.max_frame,
                };
                return Err(self.reject(codes::FRAME_TOO_LARGE, err.into()));
            }
            Some(Err(FrameError::Truncated { buffered, prefix })) => {
                let err = WireError::Invalid {
                    what,
                    len: buffered,
                    reason: if prefix {
                        format!("the stream ended after {buffered} bytes of the frame body")
                    } else {
                        format!("the stream ended inside a frame's length prefix ({buffered} of 4 bytes)")
                    },
                };
                return Err(self.reject(codes::MALFORMED_FRAME, err.into()));
            }
            Some(Err(FrameError::Io(e))) => {
                let err = TransportError::from_stream_io(e);
                self.failed = Some(err.to_string());
                return Err(err);
            }
        };
        match decode::<T>(&frame) {
            Ok(msg) => Ok(Some(msg)),
            Err(e) => Err(self.reject(codes::MALFORMED_FRAME, e.into())),
        }
    }

    /// Stop the stream with an application `code`: the peer's writes fail
    /// with [`TransportError::Stopped`].
    pub fn stop(&mut self, code: VarInt) -> Result<()> {
        self.inner.get_mut().stop(code)?;
        Ok(())
    }

    /// The underlying QUIC stream (reading from it directly bypasses framing
    /// and any bytes already buffered here).
    pub fn stream_mut(&mut self) -> &mut RecvStream {
        self.inner.get_mut()
    }

    fn reject(&mut self, code: VarInt, err: TransportError) -> TransportError {
        let _ = self.inner.get_mut().stop(code);
        tracing::warn!(code = code.into_inner(), error = %err, "rejected frame; stopped the stream ({})", codes::describe(code));
        self.failed = Some(err.to_string());
        err
    }
}
