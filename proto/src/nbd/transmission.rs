//! The transmission phase: requests in, simple replies out.
//!
//! Request, client → server, 28 bytes + payload ([`RequestDecoder`]):
//!
//! | off | len      | field                                          |
//! |----:|---------:|------------------------------------------------|
//! | 0   | 4        | magic 0x25609513                               |
//! | 4   | 2        | command flags (bit 0 `FUA`, bit 1 `NO_HOLE`)   |
//! | 6   | 2        | type (`NBD_CMD_*`)                             |
//! | 8   | 8        | cookie (called handle by older specs)          |
//! | 16  | 8        | offset                                         |
//! | 24  | 4        | *length*                                       |
//! | 28  | *length* | payload, `NBD_CMD_WRITE` only                  |
//!
//! Simple reply, server → client, 16 bytes + data ([`encode_reply`]):
//!
//! | off | len | field                                          |
//! |----:|----:|------------------------------------------------|
//! | 0   | 4   | magic 0x67446698                               |
//! | 4   | 4   | error (0 on success, else an [`Errno`] code)   |
//! | 8   | 8   | cookie of the request                          |
//! | 16  | *n* | the data read: `NBD_CMD_READ` success only     |
//!
//! `NBD_CMD_DISC` has no reply. Commands decoded: `READ` (0), `WRITE` (1),
//! `DISC` (2), `FLUSH` (3), `TRIM` (4), `WRITE_ZEROES` (6).
//!
//! A well-framed request that cannot be carried out becomes a
//! [`Rejection`], answered with an error and the session goes on:
//!
//! | case                                                   | error    |
//! |--------------------------------------------------------|----------|
//! | unknown command type                                   | `EINVAL` |
//! | command flag other than `FUA` (and `NO_HOLE` on `WRITE_ZEROES`) | `EINVAL` |
//! | `FLUSH` with a nonzero offset or length                | `EINVAL` |
//! | `WRITE`, `TRIM`, `WRITE_ZEROES` on a read-only export  | `EPERM`  |
//! | `READ`, `WRITE_ZEROES` longer than [`MAX_PAYLOAD`]     | `EINVAL` |
//! | `READ`, `TRIM` past the end of the export              | `EINVAL` |
//! | `WRITE`, `WRITE_ZEROES` past the end of the export     | `ENOSPC` |
//!
//! The payload of a rejected `WRITE` is consumed, so the stream stays in
//! step. Two things end the session instead ([`NbdError`]): a bad request
//! magic (the stream is out of step) and a `WRITE` longer than
//! [`MAX_PAYLOAD`] (the spec lets a server treat it as a denial of service
//! rather than read it).

use super::{
    Cursor, Errno, NbdError, CMD_DISC, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE,
    CMD_WRITE_ZEROES, MAX_PAYLOAD, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC,
};
use crate::nbd::handshake::Negotiated;

/// Length of a request header (before a `WRITE` payload).
pub const REQUEST_HEADER_LEN: usize = 28;
/// Length of a simple reply header (before `READ` data).
pub const REPLY_HEADER_LEN: usize = 16;

/// A request to carry out. Offsets and lengths are already checked against
/// the export size and [`MAX_PAYLOAD`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Opaque value to echo in the reply.
    pub cookie: u64,
    /// `NBD_CMD_FLAG_FUA`: persist what the command wrote before replying.
    pub fua: bool,
    pub command: Command,
}

/// The commands this codec decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read `length` bytes at `offset`; reply with exactly that many bytes.
    Read { offset: u64, length: u32 },
    /// Write `data` at `offset`.
    Write { offset: u64, data: Vec<u8> },
    /// The client is done: finish outstanding requests, then close. No reply.
    Disconnect,
    /// Persist every write already replied to.
    Flush,
    /// The client no longer needs `length` bytes at `offset` (a hint).
    Trim { offset: u64, length: u32 },
    /// Make `length` bytes at `offset` read as zeroes; with `no_hole`,
    /// keep them allocated.
    WriteZeroes { offset: u64, length: u32, no_hole: bool },
}

impl Command {
    /// The spec's name, e.g. `NBD_CMD_READ`.
    pub fn name(&self) -> &'static str {
        command_name(self.code())
    }

    /// The command type on the wire.
    pub fn code(&self) -> u16 {
        match self {
            Command::Read { .. } => CMD_READ,
            Command::Write { .. } => CMD_WRITE,
            Command::Disconnect => CMD_DISC,
            Command::Flush => CMD_FLUSH,
            Command::Trim { .. } => CMD_TRIM,
            Command::WriteZeroes { .. } => CMD_WRITE_ZEROES,
        }
    }
}

/// A well-framed request refused without being carried out: reply with
/// [`Rejection::reply`] (an error and no data) and read on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub cookie: u64,
    /// The command type as sent (possibly unknown).
    pub command: u16,
    pub error: Errno,
    /// Why, for logs: what was expected and what was found.
    pub reason: String,
}

impl Rejection {
    /// The simple reply carrying this error.
    pub fn reply(&self) -> Vec<u8> {
        encode_reply(self.cookie, Err(self.error))
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Request(Request),
    Rejected(Rejection),
}

/// Pulls requests out of the bytes a client sends during transmission.
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    size: u64,
    read_only: bool,
    /// Client bytes consumed so far (for error locations).
    consumed: u64,
}

impl RequestDecoder {
    /// A decoder for an export of `size` bytes.
    pub fn new(size: u64, read_only: bool) -> RequestDecoder {
        RequestDecoder {
            size,
            read_only,
            consumed: 0,
        }
    }

    /// A decoder for the export a handshake settled on.
    pub fn for_export(negotiated: &Negotiated) -> RequestDecoder {
        RequestDecoder::new(negotiated.export.size, negotiated.export.read_only)
    }

    /// Take the first complete request from the front of `input`, removing
    /// its bytes. `Ok(None)`: more bytes are needed (nothing is consumed).
    /// Call repeatedly until `Ok(None)`: `input` may hold several requests.
    /// After [`Command::Disconnect`] the caller stops reading.
    pub fn decode(&mut self, input: &mut Vec<u8>) -> Result<Option<Incoming>, NbdError> {
        let at = self.consumed;
        let mut c = Cursor::new(input);
        let Some(magic) = c.u32() else { return Ok(None) };
        if magic != REQUEST_MAGIC {
            return Err(NbdError::BadMagic {
                what: "NBD request header",
                at,
                expected: REQUEST_MAGIC.into(),
                found: magic.into(),
            });
        }
        let (Some(flags), Some(kind), Some(cookie), Some(offset), Some(length)) =
            (c.u16(), c.u16(), c.u64(), c.u64(), c.u32())
        else {
            return Ok(None);
        };
        let mut total = REQUEST_HEADER_LEN;
        if kind == CMD_WRITE {
            if length > MAX_PAYLOAD {
                return Err(NbdError::PayloadTooLarge {
                    command: "NBD_CMD_WRITE",
                    cookie,
                    at,
                    len: length,
                    max: MAX_PAYLOAD,
                });
            }
            // ≤ 32 MiB: cannot overflow.
            total += length as usize;
        }
        if input.len() < total {
            return Ok(None);
        }
        let payload = if kind == CMD_WRITE {
            match input.get(REQUEST_HEADER_LEN..total) {
                Some(p) => p.to_vec(),
                None => {
                    return Err(NbdError::Truncated {
                        what: "NBD_CMD_WRITE payload",
                        at,
                        expected: total,
                        found: input.len(),
                    })
                }
            }
        } else {
            Vec::new()
        };
        input.drain(..total);
        self.consumed += total as u64;

        let reject = |error: Errno, reason: String| {
            Ok(Some(Incoming::Rejected(Rejection {
                cookie,
                command: kind,
                error,
                reason: format!(
                    "{} (cookie {cookie:#x}) at client byte {at}: {reason}",
                    command_name(kind)
                ),
            })))
        };

        let known = matches!(
            kind,
            CMD_READ | CMD_WRITE | CMD_DISC | CMD_FLUSH | CMD_TRIM | CMD_WRITE_ZEROES
        );
        if !known {
            return reject(
                Errno::Inval,
                format!("expected a command type of 0-4 or 6, found {kind}"),
            );
        }
        if kind == CMD_DISC {
            // Nothing to refuse: the client is leaving and gets no reply.
            return Ok(Some(Incoming::Request(Request {
                cookie,
                fua: false,
                command: Command::Disconnect,
            })));
        }
        let allowed = if kind == CMD_WRITE_ZEROES {
            CMD_FLAG_FUA | CMD_FLAG_NO_HOLE
        } else {
            CMD_FLAG_FUA
        };
        if flags & !allowed != 0 {
            return reject(
                Errno::Inval,
                format!("expected command flags within {allowed:#06x}, found {flags:#06x}"),
            );
        }
        if kind == CMD_FLUSH && (offset != 0 || length != 0) {
            return reject(
                Errno::Inval,
                format!("expected offset 0 and length 0, found offset {offset} and length {length}"),
            );
        }
        let writes = matches!(kind, CMD_WRITE | CMD_TRIM | CMD_WRITE_ZEROES);
        if writes && self.read_only {
            return reject(Errno::Perm, "expected a writable export, found a read-only one".into());
        }
        if matches!(kind, CMD_READ | CMD_WRITE_ZEROES) && length > MAX_PAYLOAD {
            return reject(
                Errno::Inval,
                format!("expected a length of at most {MAX_PAYLOAD} bytes, found {length}"),
            );
        }
        if kind != CMD_FLUSH {
            let end = offset.checked_add(length.into());
            if end.is_none_or(|end| end > self.size) {
                let error = if matches!(kind, CMD_WRITE | CMD_WRITE_ZEROES) {
                    Errno::NoSpc
                } else {
                    Errno::Inval
                };
                return reject(
                    error,
                    format!(
                        "expected a range within the export's {} bytes, found {length} bytes at offset {offset}",
                        self.size
                    ),
                );
            }
        }

        let command = match kind {
            CMD_READ => Command::Read { offset, length },
            CMD_WRITE => Command::Write { offset, data: payload },
            CMD_FLUSH => Command::Flush,
            CMD_TRIM => Command::Trim { offset, length },
            _ => Command::WriteZeroes {
                offset,
                length,
                no_hole: flags & CMD_FLAG_NO_HOLE != 0,
            },
        };
        Ok(Some(Incoming::Request(Request {
            cookie,
            fua: flags & CMD_FLAG_FUA != 0,
            command,
        })))
    }
}

/// The spec's name of a command type, for messages.
pub fn command_name(kind: u16) -> &'static str {
    match kind {
        CMD_READ => "NBD_CMD_READ",
        CMD_WRITE => "NBD_CMD_WRITE",
        CMD_DISC => "NBD_CMD_DISC",
        CMD_FLUSH => "NBD_CMD_FLUSH",
        CMD_TRIM => "NBD_CMD_TRIM",
        5 => "NBD_CMD_CACHE",
        CMD_WRITE_ZEROES => "NBD_CMD_WRITE_ZEROES",
        7 => "NBD_CMD_BLOCK_STATUS",
        8 => "NBD_CMD_RESIZE",
        _ => "unknown NBD command",
    }
}

/// The 16-byte simple reply header: `None` for success, else the error. For
/// a successful `READ`, send the data right after it.
pub fn encode_reply_header(cookie: u64, error: Option<Errno>) -> [u8; REPLY_HEADER_LEN] {
    let mut h = [0u8; REPLY_HEADER_LEN];
    h[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    h[4..8].copy_from_slice(&error.map_or(0, Errno::code).to_be_bytes());
    h[8..].copy_from_slice(&cookie.to_be_bytes());
    h
}

/// A whole simple reply: `Ok(data)` is success followed by `data` (the
/// bytes read, or empty for other commands); `Err(e)` is the error alone,
/// since the spec forbids data after an error.
pub fn encode_reply(cookie: u64, result: Result<&[u8], Errno>) -> Vec<u8> {
    let (error, data) = match result {
        Ok(data) => (None, data),
        Err(e) => (Some(e), &[][..]),
    };
    let mut out = Vec::with_capacity(REPLY_HEADER_LEN + data.len());
    out.extend_from_slice(&encode_reply_header(cookie, error));
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u16, kind: u16, cookie: u64, offset: u64, length: u32) -> Vec<u8> {
        let mut v = REQUEST_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&flags.to_be_bytes());
        v.extend_from_slice(&kind.to_be_bytes());
        v.extend_from_slice(&cookie.to_be_bytes());
        v.extend_from_slice(&offset.to_be_bytes());
        v.extend_from_slice(&length.to_be_bytes());
        v
    }

    fn one(dec: &mut RequestDecoder, bytes: Vec<u8>) -> Incoming {
        let mut input = bytes;
        let got = dec.decode(&mut input).unwrap().unwrap();
        assert!(input.is_empty());
        got
    }

    fn rejected(dec: &mut RequestDecoder, bytes: Vec<u8>) -> Errno {
        match one(dec, bytes) {
            Incoming::Rejected(r) => r.error,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn reply_layout() {
        assert_eq!(
            encode_reply(0x0102030405060708, Ok(b"ab")),
            [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, b'a', b'b']
        );
        assert_eq!(
            encode_reply(9, Err(Errno::NoSpc)),
            [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 28, 0, 0, 0, 0, 0, 0, 0, 9]
        );
        assert_eq!(
            encode_reply_header(9, Some(Errno::NoSpc)).to_vec(),
            encode_reply(9, Err(Errno::NoSpc))
        );
    }

    #[test]
    fn each_command_decodes() {
        let mut dec = RequestDecoder::new(1000, false);
        let cases = [
            (
                header(0, CMD_READ, 1, 10, 20),
                false,
                Command::Read { offset: 10, length: 20 },
            ),
            (
                [header(1, CMD_WRITE, 2, 0, 3), b"xyz".to_vec()].concat(),
                true,
                Command::Write {
                    offset: 0,
                    data: b"xyz".to_vec(),
                },
            ),
            (header(0, CMD_FLUSH, 3, 0, 0), false, Command::Flush),
            (
                header(1, CMD_TRIM, 4, 990, 10),
                true,
                Command::Trim {
                    offset: 990,
                    length: 10,
                },
            ),
            (
                header(2, CMD_WRITE_ZEROES, 5, 0, 1000),
                false,
                Command::WriteZeroes {
                    offset: 0,
                    length: 1000,
                    no_hole: true,
                },
            ),
            (header(0, CMD_DISC, 6, 0, 0), false, Command::Disconnect),
        ];
        for (bytes, fua, command) in cases {
            let Incoming::Request(r) = one(&mut dec, bytes) else {
                panic!()
            };
            assert_eq!(r.fua, fua);
            assert_eq!(r.command, command);
        }
    }

    #[test]
    fn partial_write_waits_for_its_payload() {
        let mut dec = RequestDecoder::new(1000, false);
        let bytes = [header(0, CMD_WRITE, 7, 0, 5), b"hello".to_vec()].concat();
        let mut input = Vec::new();
        for &b in &bytes[..bytes.len() - 1] {
            input.push(b);
            assert_eq!(dec.decode(&mut input), Ok(None));
        }
        input.push(bytes[bytes.len() - 1]);
        assert!(matches!(dec.decode(&mut input), Ok(Some(Incoming::Request(_)))));
        assert!(input.is_empty());
    }

    #[test]
    fn refusals() {
        let mut rw = RequestDecoder::new(1000, false);
        let mut ro = RequestDecoder::new(1000, true);
        assert_eq!(rejected(&mut rw, header(0, CMD_READ, 1, 990, 11)), Errno::Inval);
        assert_eq!(rejected(&mut rw, header(0, CMD_READ, 1, u64::MAX, 1)), Errno::Inval);
        assert_eq!(rejected(&mut rw, header(0, CMD_TRIM, 1, 1001, 0)), Errno::Inval);
        assert_eq!(
            rejected(&mut rw, [header(0, CMD_WRITE, 1, 999, 2), vec![0; 2]].concat()),
            Errno::NoSpc
        );
        assert_eq!(rejected(&mut rw, header(0, CMD_WRITE_ZEROES, 1, 1000, 1)), Errno::NoSpc);
        assert_eq!(rejected(&mut rw, header(0, 5, 1, 0, 0)), Errno::Inval);
        assert_eq!(rejected(&mut rw, header(0, 99, 1, 0, 0)), Errno::Inval);
        assert_eq!(rejected(&mut rw, header(4, CMD_READ, 1, 0, 1)), Errno::Inval);
        assert_eq!(rejected(&mut rw, header(2, CMD_WRITE, 1, 0, 0)), Errno::Inval);
        assert_eq!(rejected(&mut rw, header(0, CMD_FLUSH, 1, 1, 0)), Errno::Inval);
        assert_eq!(
            rejected(&mut rw, header(0, CMD_READ, 1, 0, MAX_PAYLOAD + 1)),
            Errno::Inval
        );
        assert_eq!(
            rejected(&mut ro, [header(0, CMD_WRITE, 1, 0, 2), vec![0; 2]].concat()),
            Errno::Perm
        );
        assert_eq!(rejected(&mut ro, header(0, CMD_TRIM, 1, 0, 2)), Errno::Perm);
        assert_eq!(rejected(&mut ro, header(0, CMD_WRITE_ZEROES, 1, 0, 2)), Errno::Perm);
        // Reads and flushes of a read-only export are fine.
        assert!(matches!(
            one(&mut ro, header(0, CMD_READ, 1, 0, 1000)),
            Incoming::Request(_)
        ));
        assert!(matches!(
            one(&mut ro, header(0, CMD_FLUSH, 1, 0, 0)),
            Incoming::Request(_)
        ));
    }

    #[test]
    fn rejection_reason_and_reply() {
        let mut dec = RequestDecoder::new(1000, false);
        let Incoming::Rejected(r) = one(&mut dec, header(0, CMD_READ, 0xab, 999, 2)) else {
            panic!()
        };
        assert_eq!(
            r.reason,
            "NBD_CMD_READ (cookie 0xab) at client byte 0: expected a range within the export's 1000 bytes, found 2 \
             bytes at offset 999"
        );
        assert_eq!(r.reply(), encode_reply(0xab, Err(Errno::Inval)));
    }

    #[test]
    fn bad_magic_and_huge_write_end_the_session() {
        let mut dec = RequestDecoder::new(1000, false);
        let mut input = [header(0, CMD_FLUSH, 1, 0, 0), vec![0x25, 0x60, 0x95, 0x14]].concat();
        assert!(dec.decode(&mut input).unwrap().is_some());
        let err = dec.decode(&mut input).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NBD request header at client byte 28: expected magic 0x25609513, found 0x25609514"
        );
        let mut input = header(0, CMD_WRITE, 3, 0, MAX_PAYLOAD + 1);
        let err = RequestDecoder::new(u64::MAX, false).decode(&mut input).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NBD request NBD_CMD_WRITE (cookie 0x3) at client byte 0: expected a payload of at most 33554432 bytes, \
             found a length of 33554433"
        );
    }
}
