//! Unit tests of the segment codec, writer and reader.

use super::codec::encode_track_header;
use super::*;
use crate::tape::{TapeError, MAX_TRACK_SIZE};

fn hdr() -> SegmentHeader {
    SegmentHeader {
        abs_id: 42,
        seq: 3,
        channel_id: 9,
        created_unix: 1_700_000_000,
    }
}

fn sample() -> (Vec<u8>, SegmentSummary) {
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    w.append_track(TrackAddr { volume: 1, track: 10 }, &[0xab; 1000])
        .unwrap();
    w.append_track(TrackAddr { volume: 0, track: 7 }, b"").unwrap();
    w.append_track(
        TrackAddr {
            volume: 2,
            track: u64::MAX,
        },
        b"xyz",
    )
    .unwrap();
    assert_eq!(w.track_count(), 3);
    assert_eq!(w.bytes_written(), 64 + 3 * 32 + 1003);
    let (v, s) = w.finish().unwrap();
    (v, s)
}

#[test]
fn layout_is_as_documented() {
    let (v, s) = sample();
    assert_eq!(&v[..8], b"DMCSEG01");
    assert_eq!(&v[8..12], &[1, 0, 64, 0]);
    assert_eq!(&v[12..16], &3u32.to_le_bytes());
    assert_eq!(&v[16..24], &42u64.to_le_bytes());
    assert_eq!(&v[60..64], &crc32c::crc32c(&v[..60]).to_le_bytes());
    assert_eq!(&v[64..72], b"DMCTRK01");
    assert_eq!(&v[72..74], &1u16.to_le_bytes());
    assert_eq!(&v[76..80], &1000u32.to_le_bytes());
    assert_eq!(&v[80..88], &10u64.to_le_bytes());
    assert_eq!(&v[88..92], &crc32c::crc32c(&[0xab; 1000]).to_le_bytes());
    let t = v.len() - 48;
    assert_eq!(&v[t..t + 8], b"DMCSGT01");
    assert_eq!(&v[t + 40..t + 44], &crc32c::crc32c(&v[..t]).to_le_bytes());
    assert_eq!(s.total_bytes, v.len() as u64);
    assert_eq!(s.data_bytes, 1003);
    assert_eq!(s.crc32c, crc32c::crc32c(&v[..t]));
    assert_eq!(s.file_crc32c(), crc32c::crc32c(&v));
}

#[test]
fn verify_and_parse_agree_with_the_writer() {
    let (v, s) = sample();
    assert_eq!(verify(&v).unwrap(), s);
    let p = parse(&v).unwrap();
    assert_eq!(p.summary, s);
    assert_eq!(p.tracks.len(), 3);
    assert_eq!(p.tracks[0].addr, TrackAddr { volume: 1, track: 10 });
    assert_eq!(p.tracks[1].data, b"");
    assert_eq!(p.tracks[2].data, b"xyz");
    // Fed one byte at a time.
    let mut r = SegmentReader::new(true);
    for b in &v {
        r.feed(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(r.finish().unwrap(), p);
}

#[test]
fn streamed_tracks_write_the_same_bytes_as_whole_ones() {
    let (whole, s) = sample();
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    let tracks: [(TrackAddr, Vec<u8>); 3] = [
        (TrackAddr { volume: 1, track: 10 }, vec![0xab; 1000]),
        (TrackAddr { volume: 0, track: 7 }, Vec::new()),
        (
            TrackAddr {
                volume: 2,
                track: u64::MAX,
            },
            b"xyz".to_vec(),
        ),
    ];
    for (addr, data) in &tracks {
        w.begin_track(*addr, data.len() as u32, crc32c::crc32c(data)).unwrap();
        for piece in data.chunks(333) {
            w.track_data(piece).unwrap();
        }
        w.end_track().unwrap();
    }
    let (streamed, s2) = w.finish().unwrap();
    assert_eq!(streamed, whole);
    assert_eq!(s2, s);
    // With the checksum given, nothing is recomputed and the bytes agree.
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    for (addr, data) in &tracks {
        w.append_track_with_crc(*addr, data, crc32c::crc32c(data)).unwrap();
    }
    assert_eq!(w.finish().unwrap().0, whole);
}

#[test]
fn a_streamed_track_with_a_wrong_checksum_is_refused() {
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    let addr = TrackAddr { volume: 0, track: 5 };
    w.begin_track(addr, 4, crc32c::crc32c(b"abcd")).unwrap();
    w.track_data(b"abce").unwrap();
    let e = w.end_track().unwrap_err();
    assert!(matches!(e, TapeError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("track 0:5"), "{e}");
    // The writer is unusable now.
    assert!(w.begin_track(addr, 1, 0).is_err());
    assert!(w.finish().is_err());

    // Too many bytes, too few, and data with no open track.
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    assert!(w.track_data(b"x").is_err());
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    w.begin_track(addr, 2, 0).unwrap();
    assert!(w.track_data(b"xyz").is_err());
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    w.begin_track(addr, 2, crc32c::crc32c(b"x")).unwrap();
    w.track_data(b"x").unwrap();
    assert!(w.end_track().is_err());
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    w.begin_track(addr, 2, 0).unwrap();
    assert!(w.finish().is_err(), "a trailer with a track still open");
}

#[test]
fn events_report_every_track_and_its_data_in_any_piece_size() {
    let (v, _) = sample();
    for piece in [1usize, 7, 64, 100, v.len()] {
        let mut r = SegmentReader::new(false);
        let mut tracks: Vec<(TrackAddr, u32, Vec<u8>, bool)> = Vec::new();
        let mut ev = Vec::new();
        for chunk in v.chunks(piece) {
            ev.clear();
            r.feed_events(chunk, &mut ev).unwrap();
            for e in &ev {
                match e {
                    SegmentEvent::Track { addr, len, .. } => tracks.push((*addr, *len, Vec::new(), false)),
                    SegmentEvent::Data(range) => {
                        let t = tracks.last_mut().unwrap();
                        assert!(!t.3);
                        t.2.extend_from_slice(&chunk[range.clone()]);
                    }
                    SegmentEvent::TrackEnd => tracks.last_mut().unwrap().3 = true,
                }
            }
        }
        r.finish().unwrap();
        let got: Vec<(TrackAddr, u32, Vec<u8>, bool)> = tracks;
        assert_eq!(
            got,
            vec![
                (TrackAddr { volume: 1, track: 10 }, 1000, vec![0xab; 1000], true),
                (TrackAddr { volume: 0, track: 7 }, 0, Vec::new(), true),
                (
                    TrackAddr {
                        volume: 2,
                        track: u64::MAX
                    },
                    3,
                    b"xyz".to_vec(),
                    true
                ),
            ],
            "pieces of {piece}"
        );
    }
}

#[test]
fn structure_only_checks_everything_but_the_data() {
    let (v, s) = sample();
    let mut r = SegmentReader::structure_only();
    r.feed(&v).unwrap();
    assert_eq!(r.finish().unwrap().summary, s);
    // Damaged data passes (its receiver checks it)...
    let mut bad = v.clone();
    bad[64 + 32 + 10] ^= 1;
    let mut r = SegmentReader::structure_only();
    r.feed(&bad).unwrap();
    assert!(r.finish().is_ok());
    // ...a damaged track header or trailer does not.
    for at in [64 + 3, v.len() - 10] {
        let mut bad = v.clone();
        bad[at] ^= 1;
        let mut r = SegmentReader::structure_only();
        let res = r.feed(&bad).and_then(|_| r.finish().map(|_| ()));
        assert!(res.is_err(), "byte {at}");
    }
}

#[test]
fn an_empty_segment_is_valid() {
    let (v, s) = SegmentWriter::new(Vec::new(), hdr()).unwrap().finish().unwrap();
    assert_eq!(v.len(), 64 + 48);
    assert_eq!(verify(&v).unwrap(), s);
    assert_eq!(s.track_count, 0);
}

#[test]
fn errors_name_the_segment_and_the_byte() {
    let (mut v, _) = sample();
    v[64 + 32 + 500] ^= 1;
    let e = verify(&v).unwrap_err();
    assert!(matches!(e, TapeError::Checksum { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("segment ABS 42 seq 3") && msg.contains("track 1:10"),
        "{msg}"
    );
    let (v, _) = sample();
    let e = verify(&v[..v.len() - 1]).unwrap_err().to_string();
    assert!(
        e.contains("48-byte SEGMENT-TRAILER") && e.contains("found 47 bytes"),
        "{e}"
    );
    let mut longer = v.clone();
    longer.push(0);
    assert!(verify(&longer).is_err());
    assert!(verify(&[]).is_err());
}

#[test]
fn refuses_oversized_tracks_when_writing() {
    let mut w = SegmentWriter::new(Vec::new(), hdr()).unwrap();
    let big = vec![0; MAX_TRACK_SIZE + 1];
    assert!(matches!(
        w.append_track(TrackAddr { volume: 0, track: 0 }, &big),
        Err(TapeError::Invalid { .. })
    ));
    assert_eq!(w.track_count(), 0);
    assert_eq!(w.get_mut().len(), 64);
}

#[test]
fn an_oversized_length_with_a_valid_crc_is_refused() {
    let mut v = SegmentHeader {
        abs_id: 1,
        seq: 0,
        channel_id: 0,
        created_unix: 0,
    }
    .encode()
    .to_vec();
    v.extend_from_slice(&encode_track_header(TrackAddr { volume: 0, track: 0 }, u32::MAX, 0));
    let e = verify(&v).unwrap_err().to_string();
    assert!(e.contains("length") && e.contains(&u32::MAX.to_string()), "{e}");
}
