//! A whole tape image (SIMH `.tap`) through the reader `smapp tape inspect`
//! and `tape verify` use: every layer from record framing to segments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::tape::block::SimhTape;
use proto::tape::inspect::inspect;

fuzz_target!(|data: &[u8]| {
    let _ = inspect(SimhTape::from_bytes(data.to_vec()));
});
