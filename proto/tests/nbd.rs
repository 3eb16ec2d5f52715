//! The NBD codec through its public API: a scripted session against an
//! in-memory export, input fed in every possible split, malformed input, and
//! properties (request round trip, arbitrary bytes never panic).
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use proptest::prelude::*;
use proto::nbd::{
    encode_option_reply, encode_reply, Command, Errno, ExportInfo, Incoming, NbdError, Negotiated, Request,
    RequestDecoder, ServerHandshake, Status, CMD_DISC, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE, CMD_FLUSH, CMD_READ, CMD_TRIM,
    CMD_WRITE, CMD_WRITE_ZEROES, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, IHAVEOPT, INFO_BLOCK_SIZE, INFO_EXPORT,
    MAX_OPTION_LEN, MAX_PAYLOAD, OPT_GO, OPT_INFO, OPT_LIST, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_UNKNOWN,
    REP_ERR_UNSUP, REP_INFO, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC,
};

/// Client-side encoders, as `qemu-nbd --connect` or `qemu-io` would send.
mod client {
    use super::*;

    pub fn flags(f: u32) -> Vec<u8> {
        f.to_be_bytes().to_vec()
    }

    pub fn option(opt: u32, data: &[u8]) -> Vec<u8> {
        let mut v = IHAVEOPT.to_be_bytes().to_vec();
        v.extend_from_slice(&opt.to_be_bytes());
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    pub fn go_data(name: &str, infos: &[u16]) -> Vec<u8> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&(infos.len() as u16).to_be_bytes());
        for i in infos {
            d.extend_from_slice(&i.to_be_bytes());
        }
        d
    }

    pub fn request(flags: u16, kind: u16, cookie: u64, offset: u64, length: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = REQUEST_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&flags.to_be_bytes());
        v.extend_from_slice(&kind.to_be_bytes());
        v.extend_from_slice(&cookie.to_be_bytes());
        v.extend_from_slice(&offset.to_be_bytes());
        v.extend_from_slice(&length.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Encode a decoded request back to the wire.
    pub fn encode(r: &Request) -> Vec<u8> {
        let fua = if r.fua { CMD_FLAG_FUA } else { 0 };
        match &r.command {
            Command::Read { offset, length } => request(fua, CMD_READ, r.cookie, *offset, *length, &[]),
            Command::Write { offset, data } => request(fua, CMD_WRITE, r.cookie, *offset, data.len() as u32, data),
            Command::Disconnect => request(fua, CMD_DISC, r.cookie, 0, 0, &[]),
            Command::Flush => request(fua, CMD_FLUSH, r.cookie, 0, 0, &[]),
            Command::Trim { offset, length } => request(fua, CMD_TRIM, r.cookie, *offset, *length, &[]),
            Command::WriteZeroes {
                offset,
                length,
                no_hole,
            } => {
                let nh = if *no_hole { CMD_FLAG_NO_HOLE } else { 0 };
                request(fua | nh, CMD_WRITE_ZEROES, r.cookie, *offset, *length, &[])
            }
        }
    }
}

fn exports() -> Vec<ExportInfo> {
    vec![
        ExportInfo {
            name: "vol0".into(),
            size: 64 * 1024,
            read_only: false,
        },
        ExportInfo {
            name: "golden".into(),
            size: 8192,
            read_only: true,
        },
    ]
}

/// A toy server: the codec around a `Vec<u8>` disk.
struct Server {
    disk: Vec<u8>,
    decoder: RequestDecoder,
    flushes: usize,
}

impl Server {
    fn new(n: &Negotiated) -> Server {
        Server {
            disk: vec![0; n.export.size as usize],
            decoder: RequestDecoder::for_export(n),
            flushes: 0,
        }
    }

    /// Handle every complete request in `input`; `true` once disconnected.
    fn serve(&mut self, input: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<bool, NbdError> {
        while let Some(msg) = self.decoder.decode(input)? {
            let req = match msg {
                Incoming::Rejected(r) => {
                    out.extend(r.reply());
                    continue;
                }
                Incoming::Request(r) => r,
            };
            match req.command {
                Command::Read { offset, length } => {
                    let (o, l) = (offset as usize, length as usize);
                    out.extend(encode_reply(req.cookie, Ok(&self.disk[o..o + l])));
                }
                Command::Write { offset, data } => {
                    let o = offset as usize;
                    self.disk[o..o + data.len()].copy_from_slice(&data);
                    out.extend(encode_reply(req.cookie, Ok(&[])));
                }
                Command::WriteZeroes { offset, length, .. } | Command::Trim { offset, length } => {
                    let (o, l) = (offset as usize, length as usize);
                    self.disk[o..o + l].fill(0);
                    out.extend(encode_reply(req.cookie, Ok(&[])));
                }
                Command::Flush => {
                    self.flushes += 1;
                    out.extend(encode_reply(req.cookie, Ok(&[])));
                }
                Command::Disconnect => return Ok(true),
            }
        }
        Ok(false)
    }
}

/// What the client of the scripted session sends, in one piece.
fn scripted_client() -> Vec<u8> {
    [
        client::flags(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES),
        client::option(OPT_STRUCTURED_REPLY, &[]),
        client::option(OPT_LIST, &[]),
        client::option(OPT_GO, &client::go_data("vol0", &[INFO_BLOCK_SIZE])),
        client::request(0, CMD_WRITE, 1, 100, 5, b"hello"),
        client::request(CMD_FLAG_FUA, CMD_WRITE, 2, 65534, 2, b"!!"),
        client::request(0, CMD_READ, 3, 98, 9, &[]),
        client::request(0, CMD_FLUSH, 4, 0, 0, &[]),
        client::request(0, CMD_READ, 5, 65530, 7, &[]),
        client::request(0, CMD_WRITE_ZEROES, 6, 101, 2, &[]),
        client::request(0, CMD_READ, 7, 100, 5, &[]),
        client::request(0, CMD_DISC, 8, 0, 0, &[]),
    ]
    .concat()
}

/// What the server must send back, after the greeting.
fn scripted_server() -> Vec<u8> {
    let mut info = vec![0u8, 0];
    info.extend_from_slice(&(64u64 * 1024).to_be_bytes());
    info.extend_from_slice(&0x6du16.to_be_bytes());
    let block = [0, 3, 0, 0, 0, 1, 0, 0, 0x10, 0, 0x02, 0, 0, 0];
    [
        encode_option_reply(
            OPT_STRUCTURED_REPLY,
            REP_ERR_UNSUP,
            b"option 8 (NBD_OPT_STRUCTURED_REPLY) is not supported",
        ),
        encode_option_reply(OPT_LIST, 2, b"\0\0\0\x04vol0"),
        encode_option_reply(OPT_LIST, 2, b"\0\0\0\x06golden"),
        encode_option_reply(OPT_LIST, REP_ACK, &[]),
        encode_option_reply(OPT_GO, REP_INFO, &info),
        encode_option_reply(OPT_GO, REP_INFO, &block),
        encode_option_reply(OPT_GO, REP_ACK, &[]),
        encode_reply(1, Ok(&[])),
        encode_reply(2, Ok(&[])),
        encode_reply(3, Ok(b"\0\0hello\0\0")),
        encode_reply(4, Ok(&[])),
        encode_reply(5, Err(Errno::Inval)),
        encode_reply(6, Ok(&[])),
        encode_reply(7, Ok(b"h\0\0lo")),
    ]
    .concat()
}

/// Run a whole session, delivering the client's bytes in the given pieces.
/// Returns the server's output and the final disk.
fn run_session(pieces: &[&[u8]]) -> (Vec<u8>, Vec<u8>, usize) {
    let mut hs = ServerHandshake::new(exports());
    let mut out = ServerHandshake::greeting();
    let mut input = Vec::new();
    let mut server: Option<Server> = None;
    let mut done = false;
    for piece in pieces {
        assert!(!done, "input after NBD_CMD_DISC");
        input.extend_from_slice(piece);
        if server.is_none() {
            match hs.feed(&mut input, &mut out).expect("handshake") {
                Status::NeedMore => continue,
                Status::Done(n) => {
                    assert_eq!(n.export.name, "vol0");
                    assert_eq!(n.flags, 0x6d);
                    server = Some(Server::new(&n));
                }
                Status::Aborted => panic!("aborted"),
            }
        }
        if let Some(s) = server.as_mut() {
            done = s.serve(&mut input, &mut out).expect("transmission");
        }
    }
    assert!(done, "no NBD_CMD_DISC seen");
    assert!(input.is_empty());
    let s = server.expect("transmission entered");
    (out, s.disk, s.flushes)
}

#[test]
fn scripted_session_in_one_piece() {
    let bytes = scripted_client();
    let (out, disk, flushes) = run_session(&[&bytes]);
    assert_eq!(&out[..18], &ServerHandshake::greeting()[..]);
    assert_eq!(out[18..], scripted_server()[..]);
    assert_eq!(&disk[100..105], b"h\0\0lo");
    assert_eq!(&disk[65534..], b"!!");
    assert_eq!(flushes, 1);
}

#[test]
fn scripted_session_byte_by_byte() {
    let bytes = scripted_client();
    let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
    let (out, disk, _) = run_session(&pieces);
    assert_eq!(out[18..], scripted_server()[..]);
    assert_eq!(&disk[100..105], b"h\0\0lo");
}

#[test]
fn scripted_session_every_split_in_two() {
    let bytes = scripted_client();
    let want = run_session(&[&bytes]);
    for cut in 1..bytes.len() {
        let got = run_session(&[&bytes[..cut], &bytes[cut..]]);
        assert_eq!(got, want, "split at byte {cut}");
    }
}

#[test]
fn export_name_session_with_zeroes() {
    let mut hs = ServerHandshake::new(exports());
    let mut input = [client::flags(FLAG_C_FIXED_NEWSTYLE), client::option(1, b"golden")].concat();
    let mut out = Vec::new();
    let Status::Done(n) = hs.feed(&mut input, &mut out).unwrap() else {
        panic!()
    };
    assert!(n.export.read_only);
    assert_eq!(out.len(), 8 + 2 + 124);
    assert_eq!(&out[..10], &[0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0x0f]);
}

#[test]
fn info_on_unknown_export_then_go_on_known() {
    let mut hs = ServerHandshake::new(exports());
    let mut input = [
        client::flags(FLAG_C_FIXED_NEWSTYLE),
        client::option(OPT_INFO, &client::go_data("missing", &[])),
    ]
    .concat();
    let mut out = Vec::new();
    assert_eq!(hs.feed(&mut input, &mut out), Ok(Status::NeedMore));
    assert_eq!(
        out,
        encode_option_reply(OPT_INFO, REP_ERR_UNKNOWN, b"no export named \"missing\"")
    );
    let mut input = client::option(OPT_GO, &client::go_data("", &[INFO_EXPORT]));
    out.clear();
    let Status::Done(n) = hs.feed(&mut input, &mut out).unwrap() else {
        panic!()
    };
    assert_eq!(n.export.name, "vol0");
}

#[test]
fn write_to_read_only_export_is_eperm_and_session_goes_on() {
    let n = Negotiated {
        export: exports()[1].clone(),
        flags: exports()[1].transmission_flags(),
    };
    let mut server = Server::new(&n);
    let mut input = [
        client::request(0, CMD_WRITE, 1, 0, 4, b"data"),
        client::request(0, CMD_TRIM, 2, 0, 4, &[]),
        client::request(0, CMD_READ, 3, 0, 4, &[]),
        client::request(0, CMD_READ, 4, 8190, 4, &[]),
    ]
    .concat();
    let mut out = Vec::new();
    assert_eq!(server.serve(&mut input, &mut out), Ok(false));
    let want = [
        encode_reply(1, Err(Errno::Perm)),
        encode_reply(2, Err(Errno::Perm)),
        encode_reply(3, Ok(&[0; 4])),
        encode_reply(4, Err(Errno::Inval)),
    ]
    .concat();
    assert_eq!(out, want);
    assert_eq!(&want[4..8], &[0, 0, 0, 1]);
    assert_eq!(&want[..4], &SIMPLE_REPLY_MAGIC.to_be_bytes());
}

#[test]
fn malformed_handshake_inputs() {
    // Bad option magic.
    let mut hs = ServerHandshake::new(exports());
    let mut input = [client::flags(1), b"NOTOPTS!".to_vec()].concat();
    let err = hs.feed(&mut input, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            err,
            NbdError::BadMagic {
                at: 4,
                expected: IHAVEOPT,
                ..
            }
        ),
        "{err}"
    );

    // Oversize option: refused from the header alone, before its data.
    let mut hs = ServerHandshake::new(exports());
    let mut input = client::flags(1);
    input.extend_from_slice(&IHAVEOPT.to_be_bytes());
    input.extend_from_slice(&OPT_GO.to_be_bytes());
    input.extend_from_slice(&u32::MAX.to_be_bytes());
    let err = hs.feed(&mut input, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "NBD option 7 header at client byte 4: expected at most {MAX_OPTION_LEN} bytes of option data, found a \
             length of 4294967295"
        )
    );

    // Unknown client flags.
    let mut hs = ServerHandshake::new(exports());
    let err = hs.feed(&mut client::flags(0x80), &mut Vec::new()).unwrap_err();
    assert!(matches!(err, NbdError::ClientFlags { found: 0x80, .. }));

    // EXPORT_NAME of a missing export, and of non-UTF-8 bytes.
    for name in [&b"missing"[..], &[0xff, 0xfe][..]] {
        let mut hs = ServerHandshake::new(exports());
        let mut input = [client::flags(1), client::option(1, name)].concat();
        let err = hs.feed(&mut input, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, NbdError::UnknownExport { at: 4, .. }), "{err}");
    }
}

#[test]
fn malformed_requests() {
    let mut dec = RequestDecoder::new(4096, false);
    let mut input = client::request(0, CMD_READ, 1, 0, 1, &[]);
    input[0] = 0x26;
    let err = dec.decode(&mut input).unwrap_err();
    assert_eq!(
        err,
        NbdError::BadMagic {
            what: "NBD request header",
            at: 0,
            expected: REQUEST_MAGIC.into(),
            found: 0x2660_9513
        }
    );

    let mut input = client::request(0, CMD_WRITE, 1, 0, MAX_PAYLOAD + 1, &[]);
    assert!(matches!(
        dec.decode(&mut input),
        Err(NbdError::PayloadTooLarge { cookie: 1, .. })
    ));

    // A write of exactly the maximum is waited for, not refused.
    let mut input = client::request(0, CMD_WRITE, 1, 0, MAX_PAYLOAD, &[]);
    assert_eq!(dec.decode(&mut input), Ok(None));
}

fn arb_request(size: u64) -> impl Strategy<Value = Request> {
    let range = (0..=size).prop_flat_map(move |off| (Just(off), 0..=(size - off).min(u64::from(MAX_PAYLOAD))));
    let command = prop_oneof![
        range.clone().prop_map(|(offset, len)| Command::Read {
            offset,
            length: len as u32
        }),
        (0..=size).prop_flat_map(move |offset| {
            proptest::collection::vec(any::<u8>(), 0..=((size - offset).min(64) as usize))
                .prop_map(move |data| Command::Write { offset, data })
        }),
        Just(Command::Disconnect),
        Just(Command::Flush),
        range.clone().prop_map(|(offset, len)| Command::Trim {
            offset,
            length: len as u32
        }),
        (range, any::<bool>()).prop_map(|((offset, len), no_hole)| Command::WriteZeroes {
            offset,
            length: len as u32,
            no_hole
        }),
    ];
    (any::<u64>(), any::<bool>(), command).prop_map(|(cookie, fua, command)| Request {
        cookie,
        // DISC carries no flags worth keeping: the decoder reports fua=false.
        fua: fua && command != Command::Disconnect,
        command,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Valid requests survive encode → decode, whatever the chunking.
    #[test]
    fn requests_round_trip(
        (size, reqs) in prop_oneof![Just(0u64), 1u64..100_000, Just(u64::MAX)]
            .prop_flat_map(|size| (Just(size), proptest::collection::vec(arb_request(size), 1..8))),
        chunk in 1usize..64,
    ) {
        let bytes: Vec<u8> = reqs.iter().flat_map(client::encode).collect();
        let mut dec = RequestDecoder::new(size, false);
        let mut input = Vec::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(chunk) {
            input.extend_from_slice(piece);
            while let Some(msg) = dec.decode(&mut input).expect("valid stream") {
                match msg {
                    Incoming::Request(r) => got.push(r),
                    Incoming::Rejected(r) => prop_assert!(false, "rejected: {}", r.reason),
                }
            }
        }
        prop_assert!(input.is_empty());
        prop_assert_eq!(got, reqs);
    }

    /// Arbitrary bytes, in arbitrary pieces, never panic the request decoder;
    /// it consumes only whole messages and stops at the first fatal error.
    #[test]
    fn arbitrary_request_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        magic_prefix in any::<bool>(),
        chunk in 1usize..40,
        size in any::<u64>(),
        read_only in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if magic_prefix && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        }
        let mut dec = RequestDecoder::new(size, read_only);
        let mut input = Vec::new();
        'outer: for piece in bytes.chunks(chunk) {
            input.extend_from_slice(piece);
            loop {
                let before = input.len();
                match dec.decode(&mut input) {
                    Ok(Some(_)) => prop_assert!(input.len() < before),
                    Ok(None) => { prop_assert_eq!(input.len(), before); break }
                    Err(_) => break 'outer,
                }
            }
        }
    }

    /// Arbitrary bytes after valid client flags never panic the handshake.
    #[test]
    fn arbitrary_handshake_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        with_magic in any::<bool>(),
        chunk in 1usize..40,
    ) {
        let mut stream = client::flags(1);
        if with_magic {
            // A plausible option header with random option, length and data.
            stream.extend_from_slice(&IHAVEOPT.to_be_bytes());
        }
        stream.extend_from_slice(&bytes);
        let mut hs = ServerHandshake::new(exports());
        let mut input = Vec::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            input.extend_from_slice(piece);
            match hs.feed(&mut input, &mut out) {
                Ok(Status::NeedMore) => {}
                Ok(_) | Err(_) => break,
            }
        }
    }

    /// Splitting the handshake input anywhere gives the same output.
    #[test]
    fn handshake_chunking_is_invisible(chunk in 1usize..64, infos in proptest::collection::vec(0u16..6, 0..4)) {
        let stream = [
            client::flags(3),
            client::option(OPT_LIST, &[]),
            client::option(OPT_INFO, &client::go_data("golden", &infos)),
            client::option(OPT_GO, &client::go_data("vol0", &infos)),
        ]
        .concat();
        let whole = {
            let mut hs = ServerHandshake::new(exports());
            let mut out = Vec::new();
            let st = hs.feed(&mut stream.clone(), &mut out).expect("valid");
            (st, out)
        };
        let mut hs = ServerHandshake::new(exports());
        let mut input = Vec::new();
        let mut out = Vec::new();
        let mut status = Status::NeedMore;
        for piece in stream.chunks(chunk) {
            input.extend_from_slice(piece);
            status = hs.feed(&mut input, &mut out).expect("valid");
        }
        prop_assert!(matches!(status, Status::Done(_)));
        prop_assert_eq!((status, out), whole);
    }
}
