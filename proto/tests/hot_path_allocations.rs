//! The data path's pure parts allocate nothing per track or per record once
//! warm: a track frame's header encoded into a reused buffer and validated
//! from one, a track streamed into a segment, a segment parsed back with
//! events, and a segment copied from a reader to a tape image. Counted with
//! an allocator that counts this thread's allocations.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proto::abs::TrackAddr;
use proto::tape::block::MemTape;
use proto::tape::segment::{SegmentEvent, SegmentHeader, SegmentReader, SegmentWriter};
use proto::tape::volume::{TapeParams, TapeWriter};
use proto::wire::{decode_aligned, encode_into, TrackFrame};
use rkyv::util::AlignedVec;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// Counting allocations needs a global allocator, which is unsafe to
// implement; this one only counts and forwards every call to `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations this thread makes while running `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = ALLOCATIONS.with(|c| c.get());
    let out = f();
    (ALLOCATIONS.with(|c| c.get()) - before, out)
}

const TRACKS: usize = 256;
const TRACK: usize = 65536;

fn header(seq: u32) -> SegmentHeader {
    SegmentHeader {
        abs_id: 9,
        seq,
        channel_id: 3,
        created_unix: 1_700_000_000,
    }
}

#[test]
fn track_frame_headers_use_reused_buffers() {
    let mut out = AlignedVec::new();
    let frame = |t: u64| TrackFrame::Track {
        addr: TrackAddr { volume: 1, track: t },
        len: TRACK as u32,
        crc32c: t as u32,
    };
    // Warm: the buffer and the thread's serializer arena grow once.
    encode_into(&frame(0), &mut out).unwrap();
    let (n, ok) = allocations(|| {
        (1..=10_000u64).all(|t| {
            encode_into(&frame(t), &mut out).is_ok()
                && decode_aligned::<TrackFrame>(&out).is_ok_and(|back| back == frame(t))
        })
    });
    assert!(ok);
    assert_eq!(n, 0, "allocations for 10 000 track frame headers");
}

#[test]
fn streaming_tracks_into_a_segment_and_parsing_them_back_allocates_nothing_per_track() {
    let data = vec![0x5au8; TRACK];
    let crc = crc32c::crc32c(&data);
    let pieces: Vec<&[u8]> = data.chunks(1200).collect();
    // The output is sized up front, as a spool file's buffer is.
    let mut segment = Vec::with_capacity(TRACKS * (TRACK + 64) + 4096);
    let (n, ()) = allocations(|| {
        let mut w = SegmentWriter::new(&mut segment, header(0)).unwrap();
        for t in 0..TRACKS as u64 {
            w.begin_track(TrackAddr { volume: 0, track: t }, TRACK as u32, crc)
                .unwrap();
            for p in &pieces {
                w.track_data(p).unwrap();
            }
            w.end_track().unwrap();
        }
        w.finish().unwrap();
    });
    // The segment's header and trailer are built once each; no track allocates.
    assert!(n <= 2, "{n} allocations writing {TRACKS} tracks");

    let mut events = Vec::with_capacity(1024);
    let mut reader = SegmentReader::new(false);
    let (n, tracks) = allocations(|| {
        let mut tracks = 0;
        for rec in segment.chunks(65536) {
            events.clear();
            reader.feed_events(rec, &mut events).unwrap();
            tracks += events.iter().filter(|e| matches!(e, SegmentEvent::TrackEnd)).count();
        }
        tracks
    });
    assert_eq!(tracks, TRACKS);
    // The reader's few fixed buffers, never one per track or per record.
    assert!(n <= 4, "{n} allocations parsing {TRACKS} tracks");
}

#[test]
fn copying_segments_to_tape_allocates_per_segment_not_per_record() {
    let data = vec![0xa5u8; TRACK];
    let segments: Vec<Vec<u8>> = (0..4u32)
        .map(|seq| {
            let mut w = SegmentWriter::new(Vec::new(), header(seq)).unwrap();
            for t in 0..TRACKS as u64 {
                w.append_track(TrackAddr { volume: 0, track: t }, &data).unwrap();
            }
            w.finish().unwrap().0
        })
        .collect();
    let params = TapeParams {
        label: "ALLOC1".into(),
        pool: "p".into(),
        media_set: 1,
        sequence: 1,
        block_size: 65536,
        owner: "T".into(),
    };
    let mut tape = TapeWriter::create_at(MemTape::memory(), params, 1_700_000_000).unwrap();
    let mut scratch = Vec::new();
    // Warm: the scratch buffer and the image grow.
    tape.write_segment_from(
        &mut &segments[0][..],
        segments[0].len() as u64,
        "o",
        Some((9, 0)),
        &mut scratch,
    )
    .unwrap();
    let records = segments[1].len() / 65536;
    for (seq, s) in segments.iter().enumerate().skip(1) {
        let (n, _) = allocations(|| {
            tape.write_segment_from(&mut &s[..], s.len() as u64, "o", Some((9, seq as u32)), &mut scratch)
                .unwrap()
        });
        // The directory entry and the in-memory image growing (a real
        // image is a file) may allocate; the records themselves do not.
        assert!(n < 8, "{n} allocations for a segment of {records} records");
    }
}
