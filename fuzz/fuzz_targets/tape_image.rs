//! A whole tape image (SIMH `.tap`) through the reader `smapp tape inspect`
//! and `tape verify` use (every layer from record framing to segments),
//! and through what a back-end does when it mounts a tape: open it for
//! appending (an unfinished tape's directory rebuilt from its files' ends).
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::tape::block::SimhTape;
use proto::tape::inspect::inspect;
use proto::tape::volume::TapeWriter;

fuzz_target!(|data: &[u8]| {
    let _ = inspect(SimhTape::from_bytes(data.to_vec()));
    let _ = TapeWriter::append(SimhTape::from_bytes(data.to_vec()));
});
