//! The records inside tape files: node header and trailer, segment header
//! and a whole segment, ABS metadata, a tape's directory and CATALOG file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::tape::directory::{Catalog, Directory};
use proto::tape::metadata::AbsMetadata;
use proto::tape::node::{NodeHeader, NodeTrailer};
use proto::tape::segment::{self, SegmentHeader};

fuzz_target!(|data: &[u8]| {
    let _ = NodeHeader::decode(data);
    let _ = NodeTrailer::decode(data);
    let _ = SegmentHeader::decode(data);
    let _ = segment::parse(data);
    let _ = AbsMetadata::decode(data);
    let _ = Directory::decode(data);
    let _ = Catalog::decode(data);
});
