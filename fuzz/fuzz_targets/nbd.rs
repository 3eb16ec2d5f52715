//! The NBD server's handshake and request decoder, fed whatever a client
//! sends (the first byte chooses how the input is cut into reads).
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::nbd::transmission::RequestDecoder;
use proto::nbd::{ExportInfo, ServerHandshake, Status};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let step = usize::from(cut).max(1);
    let exports = vec![ExportInfo { name: "vol0".into(), size: 1 << 20, read_only: false }];
    let mut hs = ServerHandshake::new(exports);
    let (mut input, mut output) = (Vec::new(), Vec::new());
    let mut chunks = rest.chunks(step);
    let negotiated = loop {
        let Some(c) = chunks.next() else { return };
        input.extend_from_slice(c);
        match hs.feed(&mut input, &mut output) {
            Ok(Status::NeedMore) => {}
            Ok(Status::Done(n)) => break n,
            Ok(Status::Aborted) | Err(_) => return,
        }
    };
    let mut dec = RequestDecoder::for_export(&negotiated);
    loop {
        loop {
            match dec.decode(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        let Some(c) = chunks.next() else { return };
        input.extend_from_slice(c);
    }
});
