//! A sans-IO codec for the server side of the NBD (Network Block Device)
//! protocol, fixed newstyle negotiation, simple replies only. The protocol is
//! documented in `doc/proto.md` of <https://github.com/NetworkBlockDevice/nbd>.
//!
//! Nothing here touches a socket: the caller reads bytes from the client into
//! a `Vec<u8>`, hands it to the codec (which removes the bytes it consumed),
//! and writes out what the codec produced. Input may arrive in pieces of any
//! size; an incomplete message is left in the buffer until the rest arrives.
//!
//! 1. [`handshake`]: send [`ServerHandshake::greeting`], then feed the
//!    client's bytes to [`ServerHandshake::feed`] until it reports
//!    [`Status::Done`] (enter transmission with the [`Negotiated`] export) or
//!    [`Status::Aborted`] (close the connection).
//! 2. [`transmission`]: feed the client's bytes to [`RequestDecoder::decode`],
//!    execute each [`Request`] it returns, answer it with [`encode_reply`]
//!    (or [`encode_reply_header`] followed by the data), and answer each
//!    [`Rejection`] with its error. [`Command::Disconnect`] gets no reply.
//!
//! Every integer on the wire is big-endian. Everything received is untrusted:
//! a malformed message is either refused with an NBD error code (when the
//! protocol allows the session to go on) or reported as an [`NbdError`] after
//! which the caller drops the connection (a "hard disconnect"). Nothing
//! panics on input, and memory is bounded by [`MAX_OPTION_LEN`] during the
//! handshake and by [`MAX_PAYLOAD`] during transmission.
//!
//! What is advertised: handshake flags `FIXED_NEWSTYLE | NO_ZEROES`;
//! transmission flags `HAS_FLAGS | SEND_FLUSH | SEND_FUA`, plus
//! `SEND_TRIM | SEND_WRITE_ZEROES` on writable exports and `READ_ONLY` on
//! read-only ones ([`ExportInfo::transmission_flags`]); block sizes
//! 1 / 4096 / [`MAX_PAYLOAD`]. Not supported (refused with
//! `NBD_REP_ERR_UNSUP`): TLS, structured replies, metadata contexts,
//! extended headers.

pub mod handshake;
pub mod transmission;

use std::fmt;

use thiserror::Error;

pub use handshake::{encode_option_reply, Negotiated, ServerHandshake, Status};
pub use transmission::{
    encode_reply, encode_reply_header, Command, Incoming, Rejection, Request, RequestDecoder, REPLY_HEADER_LEN,
    REQUEST_HEADER_LEN,
};

// ---------------------------------------------------------------------------
// Magic numbers.

/// `NBDMAGIC`: first 8 bytes of the server greeting.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: second 8 bytes of the greeting, and first 8 of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
/// Magic of every option reply.
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of every simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

// ---------------------------------------------------------------------------
// Flags.

/// Handshake flag (server → client, 16 bits): fixed newstyle supported.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flag: the 124 zero bytes after `NBD_OPT_EXPORT_NAME` may be left out.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Handshake flags this server sends.
pub const HANDSHAKE_FLAGS: u16 = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;

/// Client flag (client → server, 32 bits): the client speaks fixed newstyle.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: leave out the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flag: always set.
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
/// Transmission flag: the export is read-only; writes fail with `EPERM`.
pub const FLAG_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: `NBD_CMD_FLUSH` is supported.
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
/// Transmission flag: the `FUA` command flag is supported.
pub const FLAG_SEND_FUA: u16 = 1 << 3;
/// Transmission flag: the export behaves like a rotational medium.
pub const FLAG_ROTATIONAL: u16 = 1 << 4;
/// Transmission flag: `NBD_CMD_TRIM` is supported.
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
/// Transmission flag: `NBD_CMD_WRITE_ZEROES` (and its `NO_HOLE` flag) is supported.
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// Transmission flag: the cache is shared by all connections to the export.
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Command flag: force unit access (persist before replying).
pub const CMD_FLAG_FUA: u16 = 1 << 0;
/// Command flag, `NBD_CMD_WRITE_ZEROES` only: do not punch a hole.
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;

// ---------------------------------------------------------------------------
// Options, option replies, information types.

/// Option: choose an export and enter transmission (no error reply possible).
pub const OPT_EXPORT_NAME: u32 = 1;
/// Option: abort the negotiation.
pub const OPT_ABORT: u32 = 2;
/// Option: list the exports.
pub const OPT_LIST: u32 = 3;
/// Option: upgrade to TLS (not supported).
pub const OPT_STARTTLS: u32 = 5;
/// Option: describe an export.
pub const OPT_INFO: u32 = 6;
/// Option: describe an export and enter transmission.
pub const OPT_GO: u32 = 7;
/// Option: use structured replies (not supported).
pub const OPT_STRUCTURED_REPLY: u32 = 8;

/// Option reply: success, or the end of a list.
pub const REP_ACK: u32 = 1;
/// Option reply: one export, answering `NBD_OPT_LIST`.
pub const REP_SERVER: u32 = 2;
/// Option reply: one piece of information, answering `NBD_OPT_INFO`/`NBD_OPT_GO`.
pub const REP_INFO: u32 = 3;
/// Bit 31 marks an error reply.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// Option error: the option is not supported.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// Option error: forbidden by policy.
pub const REP_ERR_POLICY: u32 = REP_FLAG_ERROR | 2;
/// Option error: the option is malformed.
pub const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
/// Option error: no such export.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;
/// Option error: the request or reply is too large.
pub const REP_ERR_TOO_BIG: u32 = REP_FLAG_ERROR | 9;

/// Information type: export size and transmission flags.
pub const INFO_EXPORT: u16 = 0;
/// Information type: canonical export name.
pub const INFO_NAME: u16 = 1;
/// Information type: human-readable description.
pub const INFO_DESCRIPTION: u16 = 2;
/// Information type: block size constraints.
pub const INFO_BLOCK_SIZE: u16 = 3;

// ---------------------------------------------------------------------------
// Commands.

/// Command: read.
pub const CMD_READ: u16 = 0;
/// Command: write; `length` bytes of payload follow the header.
pub const CMD_WRITE: u16 = 1;
/// Command: disconnect (no reply).
pub const CMD_DISC: u16 = 2;
/// Command: flush to stable storage.
pub const CMD_FLUSH: u16 = 3;
/// Command: discard (a hint).
pub const CMD_TRIM: u16 = 4;
/// Command: write zeroes, no payload.
pub const CMD_WRITE_ZEROES: u16 = 6;

// ---------------------------------------------------------------------------
// Limits.

/// Largest option data accepted during the handshake (64 KiB). The longest
/// legitimate option, `NBD_OPT_GO`, carries a name of at most 4096 bytes.
pub const MAX_OPTION_LEN: u32 = 64 * 1024;
/// Most options accepted in one handshake before it is deemed abusive.
pub const MAX_OPTIONS: u32 = 256;
/// Longest export name (the spec's limit on strings).
pub const MAX_NAME_LEN: usize = 4096;
/// Largest `NBD_CMD_READ`/`NBD_CMD_WRITE`/`NBD_CMD_WRITE_ZEROES` length
/// (32 MiB), advertised as the maximum block size.
pub const MAX_PAYLOAD: u32 = 32 * 1024 * 1024;
/// Advertised minimum block size: any alignment is fine.
pub const MIN_BLOCK_SIZE: u32 = 1;
/// Advertised preferred block size.
pub const PREFERRED_BLOCK_SIZE: u32 = 4096;

// ---------------------------------------------------------------------------
// Error values of the transmission phase.

/// Error values a reply can carry (the spec's `NBD_E*`, equal to Linux errnos).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    /// 1: operation not permitted (write to a read-only export).
    Perm,
    /// 5: input/output error.
    Io,
    /// 12: cannot allocate memory.
    NoMem,
    /// 22: invalid argument (bad command, flag, range or length).
    Inval,
    /// 28: no space left on device (write past the end).
    NoSpc,
    /// 75: value too large.
    Overflow,
    /// 95: operation not supported.
    NotSup,
    /// 108: server shutting down.
    Shutdown,
}

impl Errno {
    /// The value sent on the wire.
    pub fn code(self) -> u32 {
        match self {
            Errno::Perm => 1,
            Errno::Io => 5,
            Errno::NoMem => 12,
            Errno::Inval => 22,
            Errno::NoSpc => 28,
            Errno::Overflow => 75,
            Errno::NotSup => 95,
            Errno::Shutdown => 108,
        }
    }

    /// The error with wire value `code`, if it is one the spec defines.
    pub fn from_code(code: u32) -> Option<Errno> {
        Some(match code {
            1 => Errno::Perm,
            5 => Errno::Io,
            12 => Errno::NoMem,
            22 => Errno::Inval,
            28 => Errno::NoSpc,
            75 => Errno::Overflow,
            95 => Errno::NotSup,
            108 => Errno::Shutdown,
            _ => return None,
        })
    }

    /// The spec's name, e.g. `EINVAL`.
    pub fn name(self) -> &'static str {
        match self {
            Errno::Perm => "EPERM",
            Errno::Io => "EIO",
            Errno::NoMem => "ENOMEM",
            Errno::Inval => "EINVAL",
            Errno::NoSpc => "ENOSPC",
            Errno::Overflow => "EOVERFLOW",
            Errno::NotSup => "ENOTSUP",
            Errno::Shutdown => "ESHUTDOWN",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

// ---------------------------------------------------------------------------
// Exports and errors.

/// One export the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// Name the client asks for (UTF-8, at most [`MAX_NAME_LEN`] bytes).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Refuse writes, trims and write-zeroes with `EPERM`.
    pub read_only: bool,
}

impl ExportInfo {
    /// The transmission flags advertised for this export: only what
    /// [`RequestDecoder`] supports.
    pub fn transmission_flags(&self) -> u16 {
        let base = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA;
        if self.read_only {
            base | FLAG_READ_ONLY
        } else {
            base | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES
        }
    }
}

/// The client broke the protocol in a way that ends the session: the caller
/// should drop the connection. Every message says what was expected, what
/// was found and where (`client byte N`: offset in the client's byte stream,
/// counted from the first byte it sent during the handshake, or from the
/// first request during transmission).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NbdError {
    /// A magic number is wrong: the stream is not NBD or is out of sync.
    #[error("{what} at client byte {at}: expected magic {expected:#X}, found {found:#X}")]
    BadMagic {
        what: &'static str,
        at: u64,
        expected: u64,
        found: u64,
    },
    /// The client flags hold bits this server does not know.
    #[error(
        "NBD client flags at client byte {at}: expected only bits {known:#010x} \
         (FIXED_NEWSTYLE, NO_ZEROES), found {found:#010x}"
    )]
    ClientFlags { at: u64, known: u32, found: u32 },
    /// An option announces more data than the handshake accepts.
    #[error(
        "NBD option {option} header at client byte {at}: expected at most {max} bytes of option data, found a \
         length of {len}"
    )]
    OptionTooLarge { option: u32, at: u64, len: u32, max: u32 },
    /// The client keeps sending options.
    #[error("NBD handshake at client byte {at}: expected at most {max} options, found more")]
    TooManyOptions { at: u64, max: u32 },
    /// `NBD_OPT_EXPORT_NAME` named an export that does not exist; that
    /// option cannot be answered with an error, so the session ends.
    #[error("NBD_OPT_EXPORT_NAME at client byte {at}: expected the name of an export, found {found}")]
    UnknownExport { at: u64, found: String },
    /// Input was fed to a handshake that is already over.
    #[error("NBD handshake: expected no more input after it {state}, found {len} bytes")]
    HandshakeOver { state: &'static str, len: usize },
    /// A request announces a payload larger than the server accepts.
    #[error(
        "NBD request {command} (cookie {cookie:#x}) at client byte {at}: expected a payload of at most {max} \
         bytes, found a length of {len}"
    )]
    PayloadTooLarge {
        command: &'static str,
        cookie: u64,
        at: u64,
        len: u32,
        max: u32,
    },
    /// A message shorter than its own header says (an internal invariant;
    /// reported rather than panicking).
    #[error("{what} at client byte {at}: expected {expected} bytes, found {found}")]
    Truncated {
        what: &'static str,
        at: u64,
        expected: usize,
        found: usize,
    },
}

// ---------------------------------------------------------------------------
// Big-endian helpers shared by the submodules.

/// Reads big-endian integers from a slice without panicking: every getter
/// returns `None` past the end.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_spell_their_names() {
        assert_eq!(&NBDMAGIC.to_be_bytes(), b"NBDMAGIC");
        assert_eq!(&IHAVEOPT.to_be_bytes(), b"IHAVEOPT");
    }

    #[test]
    fn errno_codes_round_trip() {
        for e in [
            Errno::Perm,
            Errno::Io,
            Errno::NoMem,
            Errno::Inval,
            Errno::NoSpc,
            Errno::Overflow,
            Errno::NotSup,
            Errno::Shutdown,
        ] {
            assert_eq!(Errno::from_code(e.code()), Some(e));
        }
        assert_eq!(Errno::Inval.code(), 22);
        assert_eq!(Errno::NoSpc.code(), 28);
        assert_eq!(Errno::Perm.code(), 1);
        assert_eq!(Errno::from_code(0), None);
        assert_eq!(Errno::Inval.to_string(), "EINVAL (22)");
    }

    #[test]
    fn transmission_flags_follow_read_only() {
        let rw = ExportInfo {
            name: "a".into(),
            size: 1,
            read_only: false,
        };
        assert_eq!(rw.transmission_flags(), 0b0110_1101);
        let ro = ExportInfo { read_only: true, ..rw };
        assert_eq!(ro.transmission_flags(), 0b0000_1111);
    }

    #[test]
    fn cursor_never_reads_past_the_end() {
        let mut c = Cursor::new(&[1, 2, 3, 4, 5]);
        assert_eq!(c.u16(), Some(0x0102));
        assert_eq!(c.remaining(), 3);
        assert_eq!(c.u32(), None);
        assert_eq!(c.remaining(), 3);
        assert_eq!(c.bytes(usize::MAX), None);
        assert_eq!(c.bytes(3), Some(&[3u8, 4, 5][..]));
        assert_eq!(c.u64(), None);
    }

    #[test]
    fn error_messages_name_expected_found_and_where() {
        let e = NbdError::BadMagic {
            what: "NBD option header",
            at: 4,
            expected: IHAVEOPT,
            found: 0x1234,
        };
        assert_eq!(
            e.to_string(),
            "NBD option header at client byte 4: expected magic 0x49484156454F5054, found 0x1234"
        );
    }
}
