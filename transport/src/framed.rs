//! Typed message streams over QUIC bidirectional streams, with raw payloads.
//!
//! Each frame is a 4-byte big-endian length and one rkyv archive
//! ([`proto::wire::encode`] / [`proto::wire::decode_aligned`], validated on
//! receipt). The receiver enforces a maximum frame size chosen per
//! conversation ([`MAX_CONTROL_FRAME`](proto::wire::MAX_CONTROL_FRAME) or
//! [`MAX_DATA_FRAME`](proto::wire::MAX_DATA_FRAME)) before reading a frame's
//! body, and grows its (reused) buffer only as the body arrives.
//!
//! A frame may announce raw bytes that follow it (track data, a segment):
//! the sender hands them over as [`Bytes`] ([`FramedSend::send_with`],
//! [`FramedSend::send_raw`]), which quinn sends without copying; the
//! receiver takes them piece by piece as quinn received them
//! ([`FramedRecv::recv_raw`]), without copying either.
//!
//! When a received frame is rejected, [`FramedRecv::recv`] returns the
//! error and stops the stream with an application code from
//! [`crate::codes`] ([`MALFORMED_FRAME`](crate::codes::MALFORMED_FRAME) or
//! [`FRAME_TOO_LARGE`](crate::codes::FRAME_TOO_LARGE)), so the sender's next
//! write fails with [`TransportError::Stopped`] carrying that code. Every
//! later `recv` on that stream returns [`TransportError::Closed`].

use bytes::{BufMut, Bytes, BytesMut};
use proto::wire::{decode_aligned, encode_into, WireError};
use quinn::{RecvStream, SendStream, VarInt};
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::codes;
use crate::error::{Result, TransportError};

/// Bytes in a frame's length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// The sending half of a typed framed stream.
#[derive(Debug)]
pub struct FramedSend {
    stream: SendStream,
    max_frame: usize,
    /// The message being encoded (reused).
    scratch: AlignedVec,
    /// Frames handed to quinn are cut from this buffer, so small frames
    /// share one allocation.
    out: BytesMut,
    /// Frames and payloads queued for the next [`FramedSend::flush`].
    pending: Vec<Bytes>,
}

/// Bytes of the buffer small frames are cut from.
const FRAME_BUFFER: usize = 64 << 10;

/// What [`FramedSend`] can send.
pub trait Message: for<'a, 'b> Serialize<HighSerializer<&'b mut AlignedVec, ArenaHandle<'a>, rancor::Error>> {}
impl<T> Message for T where T: for<'a, 'b> Serialize<HighSerializer<&'b mut AlignedVec, ArenaHandle<'a>, rancor::Error>> {}

/// The receiving half of a typed framed stream.
#[derive(Debug)]
pub struct FramedRecv {
    stream: RecvStream,
    max_frame: usize,
    failed: Option<String>,
    /// Bytes received but not yet consumed.
    leftover: Bytes,
    /// The frame body being read (reused from frame to frame).
    body: AlignedVec<16>,
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
    pub fn new(stream: SendStream, max_frame: usize) -> Self {
        FramedSend {
            stream,
            max_frame,
            scratch: AlignedVec::new(),
            out: BytesMut::new(),
            pending: Vec::new(),
        }
    }

    /// The largest frame this side will send.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Encode `msg` as one frame (length prefix and archive).
    fn frame<T: Message>(&mut self, msg: &T) -> Result<Bytes> {
        encode_into(msg, &mut self.scratch)?;
        let len = self.scratch.len();
        let Ok(prefix) = u32::try_from(len) else {
            return Err(WireError::TooLarge {
                what: short_type_name::<T>(),
                len,
                max: self.max_frame.min(u32::MAX as usize),
            }
            .into());
        };
        if len > self.max_frame {
            return Err(WireError::TooLarge {
                what: short_type_name::<T>(),
                len,
                max: self.max_frame,
            }
            .into());
        }
        if self.out.capacity() < LENGTH_PREFIX + len {
            self.out.reserve((LENGTH_PREFIX + len).max(FRAME_BUFFER));
        }
        self.out.put_u32(prefix);
        self.out.extend_from_slice(&self.scratch);
        Ok(self.out.split().freeze())
    }

    /// Encode `msg` as one frame and write it.
    ///
    /// A message whose encoding exceeds the frame limit is refused here with
    /// [`WireError::TooLarge`] and nothing is sent. If the peer stopped the
    /// stream, this returns [`TransportError::Stopped`] with its code.
    pub async fn send<T: Message>(&mut self, msg: &T) -> Result<()> {
        let frame = self.frame(msg)?;
        self.stream.write_chunk(frame).await?;
        Ok(())
    }

    /// Write `msg` as one frame followed by the raw bytes of `payload`
    /// (which the frame must announce), handed to quinn without copying.
    pub async fn send_with<T: Message>(&mut self, msg: &T, payload: &mut [Bytes]) -> Result<()> {
        let frame = self.frame(msg)?;
        self.stream.write_chunk(frame).await?;
        self.stream.write_all_chunks(payload).await?;
        Ok(())
    }

    /// Queue `msg` as one frame followed by the raw bytes of `payload`, to
    /// be written by the next [`FramedSend::flush`] together with whatever
    /// else was queued: one hand-over to quinn (one lock of the connection,
    /// one wake-up of its driver) for many frames instead of one each.
    /// Nothing is sent until the flush; a refused frame queues nothing.
    pub fn queue_with<T: Message>(&mut self, msg: &T, payload: Bytes) -> Result<()> {
        let frame = self.frame(msg)?;
        self.pending.push(frame);
        if !payload.is_empty() {
            self.pending.push(payload);
        }
        Ok(())
    }

    /// How many frames and payloads are queued.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Write everything queued by [`FramedSend::queue_with`], in order.
    pub async fn flush(&mut self) -> Result<()> {
        // Taken out while writing, so a cancelled flush leaves nothing
        // queued behind it.
        let mut pending = std::mem::take(&mut self.pending);
        self.stream.write_all_chunks(&mut pending).await?;
        pending.clear();
        self.pending = pending;
        Ok(())
    }

    /// Write raw bytes (announced by an earlier frame), without copying.
    pub async fn send_raw(&mut self, payload: Bytes) -> Result<()> {
        self.stream.write_chunk(payload).await?;
        Ok(())
    }

    /// Finish the stream: the peer's `recv` returns `None` after the last
    /// frame.
    pub async fn finish(mut self) -> Result<()> {
        self.stream.finish()?;
        Ok(())
    }

    /// Abandon the stream with an application `code` (see [`crate::codes`]);
    /// frames not yet delivered are discarded.
    pub fn reset(&mut self, code: VarInt) -> Result<()> {
        self.stream.reset(code)?;
        Ok(())
    }

    /// Wait until the peer has read everything (`Ok(None)`) or stopped the
    /// stream (`Ok(Some(code))`).
    pub async fn stopped(&mut self) -> Result<Option<VarInt>> {
        self.stream.stopped().await.map_err(|e| match e {
            quinn::StoppedError::ConnectionLost(c) => TransportError::ConnectionLost(c),
            other => TransportError::Closed {
                reason: other.to_string(),
            },
        })
    }

    /// The underlying QUIC stream (writing to it directly bypasses framing).
    pub fn stream_mut(&mut self) -> &mut SendStream {
        &mut self.stream
    }
}

/// How a frame read ended early.
enum Short {
    /// The stream ended after `have` bytes of the part being read.
    End(usize),
    Err(TransportError),
}

impl FramedRecv {
    /// Frame the receiving half of a stream.
    pub fn new(stream: RecvStream, max_frame: usize) -> Self {
        FramedRecv {
            stream,
            max_frame,
            failed: None,
            leftover: Bytes::new(),
            body: AlignedVec::new(),
        }
    }

    /// The largest frame this side accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The next received bytes, at most `max`: what is left of the last
    /// chunk, else the next chunk quinn has. None at the end of the stream.
    async fn chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        if !self.leftover.is_empty() {
            let n = max.min(self.leftover.len());
            return Ok(Some(self.leftover.split_to(n)));
        }
        match self.stream.read_chunk(max, true).await {
            Ok(Some(c)) => Ok(Some(c.bytes)),
            Ok(None) => Ok(None),
            Err(e) => {
                let err = TransportError::from(e);
                self.failed = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// Read exactly `n` bytes into `out` (appended).
    async fn fill(&mut self, n: usize, mut out: impl FnMut(&[u8])) -> Result<(), Short> {
        let mut have = 0;
        while have < n {
            match self.chunk(n - have).await {
                Ok(Some(c)) => {
                    out(&c);
                    have += c.len();
                }
                Ok(None) => return Err(Short::End(have)),
                Err(e) => return Err(Short::Err(e)),
            }
        }
        Ok(())
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
        let mut prefix = [0u8; LENGTH_PREFIX];
        let mut at = 0;
        match self
            .fill(LENGTH_PREFIX, |b| {
                prefix[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            })
            .await
        {
            Ok(()) => {}
            Err(Short::End(0)) => return Ok(None),
            Err(Short::End(have)) => {
                let err = WireError::Invalid {
                    what,
                    len: have,
                    reason: format!("the stream ended inside a frame's length prefix ({have} of 4 bytes)"),
                };
                return Err(self.reject(codes::MALFORMED_FRAME, err.into()));
            }
            Err(Short::Err(e)) => return Err(e),
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame {
            let err = WireError::TooLarge {
                what,
                len,
                max: self.max_frame,
            };
            return Err(self.reject(codes::FRAME_TOO_LARGE, err.into()));
        }
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let res = self.fill(len, |b| body.extend_from_slice(b)).await;
        self.body = body;
        match res {
            Ok(()) => {}
            Err(Short::End(have)) => {
                let err = WireError::Invalid {
                    what,
                    len: have,
                    reason: format!("the stream ended after {have} bytes of the frame body"),
                };
                return Err(self.reject(codes::MALFORMED_FRAME, err.into()));
            }
            Err(Short::Err(e)) => return Err(e),
        }
        match decode_aligned::<T>(&self.body) {
            Ok(msg) => Ok(Some(msg)),
            Err(e) => Err(self.reject(codes::MALFORMED_FRAME, e.into())),
        }
    }

    /// The next piece, at most `max` bytes, of the raw bytes a frame
    /// announced, as quinn received it (no copy). The stream ending first
    /// is an error.
    pub async fn recv_raw(&mut self, max: usize) -> Result<Bytes> {
        if let Some(reason) = &self.failed {
            return Err(TransportError::Closed {
                reason: format!("an earlier receive failed: {reason}"),
            });
        }
        match self.chunk(max.max(1)).await? {
            Some(b) => Ok(b),
            None => {
                let reason = "the stream ended inside the raw bytes a frame announced".to_string();
                self.failed = Some(reason.clone());
                Err(TransportError::Closed { reason })
            }
        }
    }

    /// Stop the stream with an application `code`: the peer's writes fail
    /// with [`TransportError::Stopped`].
    pub fn stop(&mut self, code: VarInt) -> Result<()> {
        self.stream.stop(code)?;
        Ok(())
    }

    /// The underlying QUIC stream (reading from it directly bypasses framing
    /// and any bytes already buffered here).
    pub fn stream_mut(&mut self) -> &mut RecvStream {
        &mut self.stream
    }

    fn reject(&mut self, code: VarInt, err: TransportError) -> TransportError {
        let _ = self.stream.stop(code);
        tracing::warn!(code = code.into_inner(), error = %err, "rejected frame; stopped the stream ({})", codes::describe(code));
        self.failed = Some(err.to_string());
        err
    }
}
