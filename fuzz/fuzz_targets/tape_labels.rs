//! Tape labels: VOL1, HDR1/EOF1, HDR2/EOF2 records, a volume's label group
//! and end-of-file label groups (the first byte splits the input into
//! 80-byte records or not).
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::tape::labels::{EndLabels, FileLabel1, FileLabel2, Vol1, VolumeLabels};

fuzz_target!(|data: &[u8]| {
    let _ = Vol1::parse(data);
    let _ = FileLabel1::parse(data);
    let _ = FileLabel2::parse(data);
    let records: Vec<Vec<u8>> = data.chunks(80).map(|c| c.to_vec()).collect();
    let _ = VolumeLabels::parse(&records);
    let _ = EndLabels::parse(&records, 1);
});
