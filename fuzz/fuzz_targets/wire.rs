//! Every message a peer can send, validated (rkyv + bytecheck) before use.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::wire::{
    decode, BackEndRequest, Command, CommandReply, StationReply, StationRequest, TrackAck, TrackFrame,
    TrackStreamOpen,
};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<StationRequest>(data);
    let _ = decode::<StationReply>(data);
    let _ = decode::<Command>(data);
    let _ = decode::<CommandReply>(data);
    let _ = decode::<TrackStreamOpen>(data);
    let _ = decode::<TrackFrame>(data);
    let _ = decode::<TrackAck>(data);
    let _ = decode::<BackEndRequest>(data);
});
