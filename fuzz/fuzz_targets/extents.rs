//! The extent-list parser (`smapp backup --extents`, `--allocation`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = smapp_client::extents::parse(text, "fuzz");
    }
});
