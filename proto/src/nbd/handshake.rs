//! The handshake: fixed newstyle negotiation, server side, as a state machine.
//!
//! Byte layouts (big-endian; offsets in bytes):
//!
//! Greeting, server → client, 18 bytes ([`ServerHandshake::greeting`]):
//!
//! | off | len | field                                               |
//! |----:|----:|-----------------------------------------------------|
//! | 0   | 8   | `NBDMAGIC` 0x4e42444d41474943                       |
//! | 8   | 8   | `IHAVEOPT` 0x49484156454F5054                       |
//! | 16  | 2   | handshake flags: `FIXED_NEWSTYLE | NO_ZEROES` (0x3) |
//!
//! Client flags, client → server, 4 bytes: bit 0 `FIXED_NEWSTYLE`, bit 1
//! `NO_ZEROES`; any other bit ends the session. A client without
//! `FIXED_NEWSTYLE` is served as fixed newstyle anyway (the spec allows it).
//!
//! Option, client → server, 16 + *length* bytes (repeated):
//!
//! | off | len      | field                            |
//! |----:|---------:|----------------------------------|
//! | 0   | 8        | `IHAVEOPT`                        |
//! | 8   | 4        | option (`NBD_OPT_*`)              |
//! | 12  | 4        | *length* (≤ [`MAX_OPTION_LEN`])   |
//! | 16  | *length* | option data                       |
//!
//! Option reply, server → client, 20 + *length* bytes ([`encode_option_reply`]):
//!
//! | off | len      | field                                   |
//! |----:|---------:|-----------------------------------------|
//! | 0   | 8        | magic 0x0003e889045565a9                |
//! | 8   | 4        | option being answered                   |
//! | 12  | 4        | reply type (`NBD_REP_*`; bit 31: error) |
//! | 16  | 4        | *length*                                |
//! | 20  | *length* | reply data                              |
//!
//! The options and their answers:
//!
//! - `NBD_OPT_EXPORT_NAME` (1): data = export name. Answer (no reply header):
//!   size u64, transmission flags u16, then 124 zero bytes unless the client
//!   set `NO_ZEROES`; transmission starts. An unknown name cannot be refused
//!   with an error reply: [`NbdError::UnknownExport`] ends the session.
//! - `NBD_OPT_ABORT` (2): `NBD_REP_ACK`, then [`Status::Aborted`].
//! - `NBD_OPT_LIST` (3): no data (else `NBD_REP_ERR_INVALID`); one
//!   `NBD_REP_SERVER` per export (data: name length u32, name), then
//!   `NBD_REP_ACK`.
//! - `NBD_OPT_INFO` (6) / `NBD_OPT_GO` (7): data = name length u32, name,
//!   request count u16, count × information type u16. Answer:
//!   `NBD_REP_INFO` `NBD_INFO_EXPORT` (type u16 = 0, size u64, transmission
//!   flags u16), plus `NBD_INFO_BLOCK_SIZE` (type u16 = 3, minimum u32,
//!   preferred u32, maximum u32) and `NBD_INFO_NAME` (type u16 = 1, name)
//!   when requested, then `NBD_REP_ACK`; for `NBD_OPT_GO` transmission
//!   starts. Unknown export: `NBD_REP_ERR_UNKNOWN`; malformed data:
//!   `NBD_REP_ERR_INVALID`.
//! - Everything else, `NBD_OPT_STRUCTURED_REPLY` (8) and `NBD_OPT_STARTTLS`
//!   (5) included: `NBD_REP_ERR_UNSUP`, so transmission uses simple replies.
//!
//! Error replies carry a short human-readable message as their data. An
//! empty export name selects the default export: the first one given to
//! [`ServerHandshake::new`].

use super::{
    Cursor, ExportInfo, NbdError, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, HANDSHAKE_FLAGS, IHAVEOPT, INFO_BLOCK_SIZE,
    INFO_EXPORT, INFO_NAME, MAX_NAME_LEN, MAX_OPTIONS, MAX_OPTION_LEN, MAX_PAYLOAD, MIN_BLOCK_SIZE, NBDMAGIC,
    OPTION_REPLY_MAGIC, OPT_ABORT, OPT_EXPORT_NAME, OPT_GO, OPT_INFO, OPT_LIST, OPT_STARTTLS, OPT_STRUCTURED_REPLY,
    PREFERRED_BLOCK_SIZE, REP_ACK, REP_ERR_INVALID, REP_ERR_UNKNOWN, REP_ERR_UNSUP, REP_INFO, REP_SERVER,
};
use crate::num::saturating_u32;

/// Length of the server greeting.
pub const GREETING_LEN: usize = 18;
/// Length of the client flags.
pub const CLIENT_FLAGS_LEN: usize = 4;
/// Length of an option header (before its data).
pub const OPTION_HEADER_LEN: usize = 16;
/// Length of an option reply header (before its data).
pub const OPTION_REPLY_HEADER_LEN: usize = 20;
/// Zero bytes after the `NBD_OPT_EXPORT_NAME` answer unless `NO_ZEROES`.
pub const EXPORT_NAME_PADDING: usize = 124;

/// The export a successful handshake settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The export, with its canonical name (not the empty default name).
    pub export: ExportInfo,
    /// The transmission flags sent to the client.
    pub flags: u16,
}

/// What [`ServerHandshake::feed`] got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every complete message was handled; waiting for more input.
    NeedMore,
    /// Transmission starts: bytes left in the input belong to it.
    Done(Negotiated),
    /// The client sent `NBD_OPT_ABORT`: send the output, then close.
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the 4 bytes of client flags.
    ClientFlags,
    /// Option haggling.
    Options,
    /// Transmission was entered.
    Done,
    /// The client aborted.
    Aborted,
}

/// The server side of the handshake.
///
/// Usage: write [`ServerHandshake::greeting`] to the client; then, each time
/// bytes arrive, append them to an input buffer and call [`feed`]
/// (`ServerHandshake::feed`), write whatever it appended to the output
/// buffer, and act on the [`Status`]. On an error, write the output and drop
/// the connection.
///
/// [`feed`]: ServerHandshake::feed
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    exports: Vec<ExportInfo>,
    state: State,
    /// Client bytes consumed so far (for error locations).
    consumed: u64,
    no_zeroes: bool,
    options: u32,
}

impl ServerHandshake {
    /// A handshake offering `exports`; the first one is the default export
    /// (selected by an empty name). With no exports every name is unknown.
    pub fn new(exports: Vec<ExportInfo>) -> ServerHandshake {
        ServerHandshake {
            exports,
            state: State::ClientFlags,
            consumed: 0,
            no_zeroes: false,
            options: 0,
        }
    }

    /// The bytes the server sends first: `NBDMAGIC`, `IHAVEOPT`, handshake flags.
    pub fn greeting() -> Vec<u8> {
        let mut out = Vec::with_capacity(GREETING_LEN);
        out.extend_from_slice(&NBDMAGIC.to_be_bytes());
        out.extend_from_slice(&IHAVEOPT.to_be_bytes());
        out.extend_from_slice(&HANDSHAKE_FLAGS.to_be_bytes());
        out
    }

    /// Whether the client asked to leave out the 124 zero bytes (known once
    /// its flags arrived).
    pub fn no_zeroes(&self) -> bool {
        self.no_zeroes
    }

    /// Handle every complete message at the front of `input`, removing the
    /// bytes consumed; an incomplete message stays in `input` for the next
    /// call. Bytes to send to the client are appended to `output`, also
    /// when an error is returned (replies to earlier options).
    ///
    /// Stops after the message that ends the handshake ([`Status::Done`] or
    /// [`Status::Aborted`]), leaving any later bytes in `input` (for
    /// [`Status::Done`] they are transmission requests). Feeding a finished
    /// handshake again is an error.
    pub fn feed(&mut self, input: &mut Vec<u8>, output: &mut Vec<u8>) -> Result<Status, NbdError> {
        loop {
            match self.state {
                State::Done | State::Aborted => {
                    let state = if self.state == State::Done {
                        "entered transmission"
                    } else {
                        "was aborted"
                    };
                    return Err(NbdError::HandshakeOver {
                        state,
                        len: input.len(),
                    });
                }
                State::ClientFlags => {
                    let Some(flags) = Cursor::new(input).u32() else {
                        return Ok(Status::NeedMore);
                    };
                    let known = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;
                    if flags & !known != 0 {
                        return Err(NbdError::ClientFlags {
                            at: self.consumed,
                            known,
                            found: flags,
                        });
                    }
                    self.no_zeroes = flags & FLAG_C_NO_ZEROES != 0;
                    self.consume(input, CLIENT_FLAGS_LEN);
                    self.state = State::Options;
                }
                State::Options => {
                    let at = self.consumed;
                    let mut c = Cursor::new(input);
                    let Some(magic) = c.u64() else {
                        return Ok(Status::NeedMore);
                    };
                    if magic != IHAVEOPT {
                        return Err(NbdError::BadMagic {
                            what: "NBD option header",
                            at,
                            expected: IHAVEOPT,
                            found: magic,
                        });
                    }
                    let (Some(option), Some(len)) = (c.u32(), c.u32()) else {
                        return Ok(Status::NeedMore);
                    };
                    if len > MAX_OPTION_LEN {
                        return Err(NbdError::OptionTooLarge {
                            option,
                            at,
                            len,
                            max: MAX_OPTION_LEN,
                        });
                    }
                    // `len` ≤ 64 KiB, so this cannot overflow.
                    let total = OPTION_HEADER_LEN + len as usize;
                    if input.len() < total {
                        return Ok(Status::NeedMore);
                    }
                    self.options += 1;
                    if self.options > MAX_OPTIONS {
                        return Err(NbdError::TooManyOptions { at, max: MAX_OPTIONS });
                    }
                    let data: Vec<u8> = input.get(OPTION_HEADER_LEN..total).unwrap_or_default().to_vec();
                    self.consume(input, total);
                    match self.option(at, option, &data, output)? {
                        Status::NeedMore => {}
                        done => return Ok(done),
                    }
                }
            }
        }
    }

    fn consume(&mut self, input: &mut Vec<u8>, n: usize) {
        let n = n.min(input.len());
        input.drain(..n);
        self.consumed += n as u64;
    }

    /// Answer one complete option received at client byte `at`.
    fn option(&mut self, at: u64, option: u32, data: &[u8], out: &mut Vec<u8>) -> Result<Status, NbdError> {
        match option {
            OPT_EXPORT_NAME => {
                let export = std::str::from_utf8(data).ok().and_then(|name| self.find(name)).cloned();
                let Some(export) = export else {
                    return Err(NbdError::UnknownExport {
                        at,
                        found: format!("{}, which is not exported", describe_name(data)),
                    });
                };
                let flags = export.transmission_flags();
                out.extend_from_slice(&export.size.to_be_bytes());
                out.extend_from_slice(&flags.to_be_bytes());
                if !self.no_zeroes {
                    out.extend_from_slice(&[0u8; EXPORT_NAME_PADDING]);
                }
                self.state = State::Done;
                Ok(Status::Done(Negotiated { export, flags }))
            }
            OPT_ABORT => {
                // The spec says to ignore any data rather than refuse it.
                push_reply(out, option, REP_ACK, &[]);
                self.state = State::Aborted;
                Ok(Status::Aborted)
            }
            OPT_LIST => {
                if !data.is_empty() {
                    let msg = format!("NBD_OPT_LIST takes no data, found {} bytes", data.len());
                    push_reply(out, option, REP_ERR_INVALID, msg.as_bytes());
                    return Ok(Status::NeedMore);
                }
                for e in &self.exports {
                    let name = e.name.as_bytes();
                    let mut d = Vec::with_capacity(4 + name.len());
                    d.extend_from_slice(&saturating_u32(name.len()).to_be_bytes());
                    d.extend_from_slice(name);
                    push_reply(out, option, REP_SERVER, &d);
                }
                push_reply(out, option, REP_ACK, &[]);
                Ok(Status::NeedMore)
            }
            OPT_INFO | OPT_GO => self.info_or_go(option, data, out),
            _ => {
                let msg = format!("option {} ({}) is not supported", option, option_name(option));
                push_reply(out, option, REP_ERR_UNSUP, msg.as_bytes());
                Ok(Status::NeedMore)
            }
        }
    }

    fn info_or_go(&mut self, option: u32, data: &[u8], out: &mut Vec<u8>) -> Result<Status, NbdError> {
        let (name, requests) = match parse_info_request(option, data) {
            Ok(parsed) => parsed,
            Err(msg) => {
                push_reply(out, option, REP_ERR_INVALID, msg.as_bytes());
                return Ok(Status::NeedMore);
            }
        };
        let Some(export) = self.find(name).cloned() else {
            let msg = format!("no export named {name:?}");
            push_reply(out, option, REP_ERR_UNKNOWN, msg.as_bytes());
            return Ok(Status::NeedMore);
        };
        let flags = export.transmission_flags();
        let mut info = Vec::with_capacity(12);
        info.extend_from_slice(&INFO_EXPORT.to_be_bytes());
        info.extend_from_slice(&export.size.to_be_bytes());
        info.extend_from_slice(&flags.to_be_bytes());
        push_reply(out, option, REP_INFO, &info);
        if requests.contains(&INFO_BLOCK_SIZE) {
            let mut info = Vec::with_capacity(14);
            info.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
            info.extend_from_slice(&MIN_BLOCK_SIZE.to_be_bytes());
            info.extend_from_slice(&PREFERRED_BLOCK_SIZE.to_be_bytes());
            info.extend_from_slice(&MAX_PAYLOAD.to_be_bytes());
            push_reply(out, option, REP_INFO, &info);
        }
        if requests.contains(&INFO_NAME) {
            let mut info = Vec::with_capacity(2 + export.name.len());
            info.extend_from_slice(&INFO_NAME.to_be_bytes());
            info.extend_from_slice(export.name.as_bytes());
            push_reply(out, option, REP_INFO, &info);
        }
        push_reply(out, option, REP_ACK, &[]);
        if option == OPT_GO {
            self.state = State::Done;
            Ok(Status::Done(Negotiated { export, flags }))
        } else {
            Ok(Status::NeedMore)
        }
    }

    /// The export called `name`; the empty name is the first export.
    fn find(&self, name: &str) -> Option<&ExportInfo> {
        self.exports
            .iter()
            .find(|e| e.name == name)
            .or_else(|| if name.is_empty() { self.exports.first() } else { None })
    }
}

/// Parse the data of `NBD_OPT_INFO`/`NBD_OPT_GO`: the export name and the
/// information types requested. The error is the message for the client.
fn parse_info_request(option: u32, data: &[u8]) -> Result<(&str, Vec<u16>), String> {
    let what = option_name(option);
    let mut c = Cursor::new(data);
    let name_len = c
        .u32()
        .ok_or_else(|| format!("{what}: expected at least 6 bytes of data, found {}", data.len()))?;
    if name_len as usize > MAX_NAME_LEN {
        return Err(format!(
            "{what}: expected an export name of at most {MAX_NAME_LEN} bytes, found a length of {name_len}"
        ));
    }
    let name = c
        .bytes(name_len as usize)
        .filter(|_| c.remaining() >= 2)
        .ok_or_else(|| {
            format!(
                "{what}: name length {name_len} leaves no room for the request count in {} bytes of data",
                data.len()
            )
        })?;
    let name = std::str::from_utf8(name).map_err(|e| format!("{what}: export name is not UTF-8: {e}"))?;
    let count = c.u16().unwrap_or_default();
    if c.remaining() != 2 * count as usize {
        return Err(format!(
            "{what}: expected {} bytes for {count} information requests, found {}",
            2 * count as usize,
            c.remaining()
        ));
    }
    let requests = (0..count).filter_map(|_| c.u16()).collect();
    Ok((name, requests))
}

/// A name for messages: quoted if short, its length otherwise.
fn describe_name(bytes: &[u8]) -> String {
    if bytes.len() <= 256 {
        format!("export name {:?}", String::from_utf8_lossy(bytes))
    } else {
        format!("an export name of {} bytes", bytes.len())
    }
}

/// The spec's name of an option, for messages.
pub fn option_name(option: u32) -> &'static str {
    match option {
        OPT_EXPORT_NAME => "NBD_OPT_EXPORT_NAME",
        OPT_ABORT => "NBD_OPT_ABORT",
        OPT_LIST => "NBD_OPT_LIST",
        OPT_STARTTLS => "NBD_OPT_STARTTLS",
        OPT_INFO => "NBD_OPT_INFO",
        OPT_GO => "NBD_OPT_GO",
        OPT_STRUCTURED_REPLY => "NBD_OPT_STRUCTURED_REPLY",
        9 => "NBD_OPT_LIST_META_CONTEXT",
        10 => "NBD_OPT_SET_META_CONTEXT",
        11 => "NBD_OPT_EXTENDED_HEADERS",
        _ => "unknown",
    }
}

fn push_reply(out: &mut Vec<u8>, option: u32, reply_type: u32, data: &[u8]) {
    out.reserve(OPTION_REPLY_HEADER_LEN + data.len());
    out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply_type.to_be_bytes());
    // Replies are built here from bounded data (names ≤ 4096 bytes, short
    // messages), far below 4 GiB.
    out.extend_from_slice(&saturating_u32(data.len()).to_be_bytes());
    out.extend_from_slice(data);
}

/// One option reply: magic, `option`, `reply_type`, data length, `data`.
pub fn encode_option_reply(option: u32, reply_type: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_reply(&mut out, option, reply_type, data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nbd::{REP_ERR_UNSUP, REP_FLAG_ERROR};

    fn exports() -> Vec<ExportInfo> {
        vec![
            ExportInfo {
                name: "vol0".into(),
                size: 1 << 20,
                read_only: false,
            },
            ExportInfo {
                name: "ro".into(),
                size: 4096,
                read_only: true,
            },
        ]
    }

    fn option(opt: u32, data: &[u8]) -> Vec<u8> {
        let mut v = IHAVEOPT.to_be_bytes().to_vec();
        v.extend_from_slice(&opt.to_be_bytes());
        v.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn started(flags: u32) -> ServerHandshake {
        let mut hs = ServerHandshake::new(exports());
        let mut input = flags.to_be_bytes().to_vec();
        let mut out = Vec::new();
        assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::NeedMore));
        assert!(input.is_empty() && out.is_empty());
        hs
    }

    #[test]
    fn greeting_layout() {
        let g = ServerHandshake::greeting();
        assert_eq!(g.len(), GREETING_LEN);
        assert_eq!(&g[..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(&g[16..], &[0, 3]);
    }

    #[test]
    fn option_reply_layout() {
        let r = encode_option_reply(7, REP_ERR_UNSUP, b"no");
        assert_eq!(
            r,
            [0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, 0, 0, 0, 7, 0x80, 0, 0, 1, 0, 0, 0, 2, b'n', b'o']
        );
        assert_eq!(REP_ERR_UNSUP, REP_FLAG_ERROR + 1);
    }

    #[test]
    fn client_flags_unknown_bits_end_the_session() {
        let mut hs = ServerHandshake::new(exports());
        let mut input = vec![0, 0, 0, 4];
        let err = hs.feed(&mut input, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NBD client flags at client byte 0: expected only bits 0x00000003 (FIXED_NEWSTYLE, NO_ZEROES), \
             found 0x00000004"
        );
    }

    #[test]
    fn client_flags_no_zeroes_is_recorded() {
        assert!(started(3).no_zeroes());
        assert!(!started(1).no_zeroes());
        // A client without FIXED_NEWSTYLE is still served.
        assert!(!started(0).no_zeroes());
    }

    #[test]
    fn export_name_reply_with_and_without_zeroes() {
        for (flags, pad) in [(1u32, EXPORT_NAME_PADDING), (3, 0)] {
            let mut hs = started(flags);
            let mut input = option(OPT_EXPORT_NAME, b"vol0");
            input.extend_from_slice(b"rest");
            let mut out = Vec::new();
            let st = hs.feed(&mut input, &mut out).unwrap();
            let Status::Done(n) = st else { panic!("{st:?}") };
            assert_eq!(n.export.name, "vol0");
            assert_eq!(n.flags, 0x6d);
            assert_eq!(input, b"rest");
            assert_eq!(out.len(), 10 + pad);
            assert_eq!(&out[..8], &(1u64 << 20).to_be_bytes());
            assert_eq!(&out[8..10], &[0, 0x6d]);
            assert!(out[10..].iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn export_name_unknown_ends_the_session() {
        let mut hs = started(1);
        let mut input = option(OPT_EXPORT_NAME, b"nope");
        let err = hs.feed(&mut input, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NBD_OPT_EXPORT_NAME at client byte 4: expected the name of an export, found export name \"nope\", \
             which is not exported"
        );
    }

    #[test]
    fn empty_name_is_the_first_export() {
        let mut hs = started(3);
        let mut input = option(OPT_EXPORT_NAME, b"");
        let st = hs.feed(&mut input, &mut Vec::new()).unwrap();
        assert!(matches!(st, Status::Done(n) if n.export.name == "vol0"));
    }

    #[test]
    fn abort_acks() {
        let mut hs = started(1);
        let mut input = option(OPT_ABORT, &[]);
        let mut out = Vec::new();
        assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::Aborted));
        assert_eq!(out, encode_option_reply(OPT_ABORT, REP_ACK, &[]));
        assert!(matches!(
            hs.feed(&mut Vec::new(), &mut out),
            Err(NbdError::HandshakeOver { .. })
        ));
    }

    #[test]
    fn list_sends_one_server_reply_per_export() {
        let mut hs = started(1);
        let mut input = option(OPT_LIST, &[]);
        let mut out = Vec::new();
        assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::NeedMore));
        let mut want = encode_option_reply(OPT_LIST, REP_SERVER, b"\0\0\0\x04vol0");
        want.extend(encode_option_reply(OPT_LIST, REP_SERVER, b"\0\0\0\x02ro"));
        want.extend(encode_option_reply(OPT_LIST, REP_ACK, &[]));
        assert_eq!(out, want);
    }

    #[test]
    fn list_with_data_is_invalid() {
        let mut hs = started(1);
        let mut input = option(OPT_LIST, b"x");
        let mut out = Vec::new();
        assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::NeedMore));
        assert_eq!(&out[12..16], &REP_ERR_INVALID.to_be_bytes());
    }

    fn go_data(name: &[u8], infos: &[u16]) -> Vec<u8> {
        let mut d = u32::try_from(name.len()).unwrap().to_be_bytes().to_vec();
        d.extend_from_slice(name);
        d.extend_from_slice(&u16::try_from(infos.len()).unwrap().to_be_bytes());
        for i in infos {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    #[test]
    fn info_then_go_with_block_size() {
        let mut hs = started(1);
        let mut input = option(OPT_INFO, &go_data(b"ro", &[INFO_BLOCK_SIZE, INFO_NAME]));
        let mut out = Vec::new();
        assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::NeedMore));
        let mut want = encode_option_reply(OPT_INFO, REP_INFO, &[0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x0f]);
        want.extend(encode_option_reply(
            OPT_INFO,
            REP_INFO,
            &[0, 3, 0, 0, 0, 1, 0, 0, 0x10, 0, 0x02, 0, 0, 0],
        ));
        want.extend(encode_option_reply(OPT_INFO, REP_INFO, b"\0\x01ro"));
        want.extend(encode_option_reply(OPT_INFO, REP_ACK, &[]));
        assert_eq!(out, want);

        let mut input = option(OPT_GO, &go_data(b"ro", &[]));
        out.clear();
        let st = hs.feed(&mut input, &mut out).unwrap();
        assert!(matches!(st, Status::Done(ref n) if n.export.read_only && n.flags == 0x0f));
        let mut want = encode_option_reply(OPT_GO, REP_INFO, &[0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x0f]);
        want.extend(encode_option_reply(OPT_GO, REP_ACK, &[]));
        assert_eq!(out, want);
    }

    #[test]
    fn go_unknown_export_and_malformed_data() {
        let mut hs = started(1);
        let cases: Vec<(Vec<u8>, u32)> = vec![
            (go_data(b"nope", &[]), REP_ERR_UNKNOWN),
            (vec![0, 0], REP_ERR_INVALID),
            (vec![0, 0, 0, 9, b'a', 0, 0], REP_ERR_INVALID),
            ({ go_data(b"vol0", &[1, 2]) }[..13].to_vec(), REP_ERR_INVALID),
            (go_data(&[0xff, 0xfe], &[]), REP_ERR_INVALID),
            (
                { go_data(b"vol0", &[]) }.into_iter().chain([0]).collect(),
                REP_ERR_INVALID,
            ),
        ];
        for (data, rep) in cases {
            let mut input = option(OPT_GO, &data);
            let mut out = Vec::new();
            assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::NeedMore), "{data:?}");
            assert_eq!(&out[12..16], &rep.to_be_bytes(), "{data:?}");
            assert!(out.len() > OPTION_REPLY_HEADER_LEN, "error replies carry a message");
        }
    }

    #[test]
    fn structured_reply_and_unknown_options_are_unsupported() {
        let mut hs = started(1);
        for opt in [OPT_STRUCTURED_REPLY, OPT_STARTTLS, 10, 4242] {
            let mut input = option(opt, &[]);
            let mut out = Vec::new();
            assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::NeedMore));
            assert_eq!(&out[8..12], &opt.to_be_bytes());
            assert_eq!(&out[12..16], &REP_ERR_UNSUP.to_be_bytes());
        }
    }

    #[test]
    fn bad_option_magic() {
        let mut hs = started(1);
        let mut input = b"IHAVEOPX".to_vec();
        let err = hs.feed(&mut input, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NBD option header at client byte 4: expected magic 0x49484156454F5054, found 0x49484156454F5058"
        );
    }

    #[test]
    fn oversize_option_is_refused_from_its_header() {
        let mut hs = started(1);
        let mut input = IHAVEOPT.to_be_bytes().to_vec();
        input.extend_from_slice(&OPT_GO.to_be_bytes());
        input.extend_from_slice(&(MAX_OPTION_LEN + 1).to_be_bytes());
        let err = hs.feed(&mut input, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err,
            NbdError::OptionTooLarge {
                option: OPT_GO,
                at: 4,
                len: MAX_OPTION_LEN + 1,
                max: MAX_OPTION_LEN
            }
        );
        assert!(err
            .to_string()
            .contains("expected at most 65536 bytes of option data, found a length of 65537"));
    }

    #[test]
    fn too_many_options() {
        let mut hs = started(1);
        let mut input: Vec<u8> = (0..=MAX_OPTIONS).flat_map(|_| option(OPT_LIST, &[])).collect();
        let mut out = Vec::new();
        let err = hs.feed(&mut input, &mut out).unwrap_err();
        assert!(matches!(err, NbdError::TooManyOptions { max: MAX_OPTIONS, .. }));
        // The replies to the accepted options are still there to send.
        // Per LIST: SERVER "vol0" (28 bytes), SERVER "ro" (26), ACK (20).
        assert_eq!(out.len(), MAX_OPTIONS as usize * (28 + 26 + 20));
    }
}
