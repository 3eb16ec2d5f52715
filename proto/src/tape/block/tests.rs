//! Tests of the block layer: the SIMH container byte for byte, positioning,
//! corrupt images, capacity.

use super::*;
use crate::tape::{Location, MAX_BLOCK_SIZE};

fn rec(data: &[u8]) -> Vec<u8> {
    let n = (data.len() as u32).to_le_bytes();
    let mut v = n.to_vec();
    v.extend_from_slice(data);
    if data.len() % 2 == 1 {
        v.push(0);
    }
    v.extend_from_slice(&n);
    v
}

#[test]
fn writes_the_simh_container_exactly() {
    let mut t = MemTape::memory();
    t.write_record(b"abc").unwrap();
    t.write_record(b"defg").unwrap();
    t.write_filemark().unwrap();
    t.write_record(b"h").unwrap();
    t.write_filemark().unwrap();
    let mut want = rec(b"abc");
    want.extend(rec(b"defg"));
    want.extend([0, 0, 0, 0]);
    want.extend(rec(b"h"));
    want.extend([0, 0, 0, 0]);
    assert_eq!(t.bytes(), &want[..]);
    assert_eq!(&t.bytes()[..12], &[3, 0, 0, 0, b'a', b'b', b'c', 0, 3, 0, 0, 0]);
    assert_eq!(t.position(), Position { file: 2, record: 0 });
}

#[test]
fn reads_back_records_marks_and_end() {
    let mut t = MemTape::memory();
    t.write_record(b"abc").unwrap();
    t.write_filemark().unwrap();
    t.write_record(b"de").unwrap();
    t.rewind().unwrap();
    let mut buf = Vec::new();
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(3));
    assert_eq!(buf, b"abc");
    assert_eq!(t.position(), Position { file: 0, record: 1 });
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::FileMark);
    assert_eq!(t.position(), Position { file: 1, record: 0 });
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(2));
    assert_eq!(buf, b"de");
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
    assert_eq!(t.records_read(), 2);
}

#[test]
fn end_of_medium_marker_ends_data() {
    let mut img = rec(b"xy");
    img.extend(SIMH_END_OF_MEDIUM.to_le_bytes());
    img.extend(rec(b"zz"));
    let mut t = MemTape::from_bytes(img);
    let mut buf = Vec::new();
    assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::Record(2));
    assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::EndOfData);
    // Writing there replaces the marker and what follows.
    t.write_record(b"new").unwrap();
    let mut want = rec(b"xy");
    want.extend(rec(b"new"));
    assert_eq!(t.bytes(), &want[..]);
}

#[test]
fn corrupt_containers_are_errors_naming_file_and_record() {
    let mut good = rec(b"ok");
    good.extend([0, 0, 0, 0]);
    good.extend(rec(b"first"));

    // Error flag.
    let mut img = good.clone();
    img.extend((SIMH_ERROR_FLAG | 4).to_le_bytes());
    img.extend(b"abcd");
    img.extend((SIMH_ERROR_FLAG | 4).to_le_bytes());
    let mut t = MemTape::from_bytes(img);
    let mut buf = Vec::new();
    for _ in 0..3 {
        t.read_block(&mut buf, 100).unwrap();
    }
    let e = t.read_block(&mut buf, 100).unwrap_err();
    assert!(matches!(e, TapeError::Corrupt { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("tape file 1, record 1") && msg.contains("error flag"),
        "{msg}"
    );

    // Trailing length disagrees.
    let mut img = good.clone();
    img.extend(4u32.to_le_bytes());
    img.extend(b"abcd");
    img.extend(5u32.to_le_bytes());
    let mut t = MemTape::from_bytes(img);
    t.locate_file(1).unwrap();
    t.read_block(&mut buf, 100).unwrap();
    let msg = t.read_block(&mut buf, 100).unwrap_err().to_string();
    assert!(
        msg.contains("tape file 1, record 1") && msg.contains("trailing length 5"),
        "{msg}"
    );
    // Skipping checks it too.
    t.locate_file(1).unwrap();
    t.skip_block().unwrap();
    assert!(t.skip_block().is_err());

    // Record longer than the caller's limit: refused, position unchanged.
    let mut t = MemTape::from_bytes(good.clone());
    let msg = t.read_block(&mut buf, 1).unwrap_err().to_string();
    assert!(msg.contains("at most 1 bytes") && msg.contains("found 2 bytes") && msg.contains("tape file 0, record 0"));
    assert_eq!(t.read_block(&mut buf, 2).unwrap(), Block::Record(2));

    // Image cut inside a record or a length word: Truncated.
    for cut in [good.len() - 1, good.len() - 5, 2] {
        let mut t = MemTape::from_bytes(good[..cut].to_vec());
        let mut res = Ok(Block::EndOfData);
        for _ in 0..4 {
            res = t.read_block(&mut buf, 100);
            if res.is_err() {
                break;
            }
        }
        assert!(res.unwrap_err().is_truncated(), "cut at {cut}");
    }

    // A huge length never allocates: it is checked against the limit and the image size.
    let mut img = 0x7fff_fff0u32.to_le_bytes().to_vec();
    img.extend([0; 8]);
    let mut t = MemTape::from_bytes(img);
    assert!(t.read_block(&mut buf, usize::MAX).is_err());
    assert!(t.skip_block().is_err());
}

#[test]
fn locate_uses_and_extends_the_cache() {
    let mut t = MemTape::memory();
    for f in 0..5u8 {
        for r in 0..3u8 {
            t.write_record(&[f, r, 0xaa]).unwrap();
        }
        t.write_filemark().unwrap();
    }
    // A fresh device over the same bytes knows nothing yet.
    let mut t = MemTape::from_bytes(t.into_bytes());
    let mut buf = Vec::new();
    t.locate_file(3).unwrap();
    assert_eq!(t.position(), Position { file: 3, record: 0 });
    assert_eq!(t.records_read(), 0, "locating reads no record data");
    assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::Record(3));
    assert_eq!(buf, [3, 0, 0xaa]);
    t.locate_file(1).unwrap();
    t.read_block(&mut buf, 10).unwrap();
    assert_eq!(buf, [1, 0, 0xaa]);
    t.locate_file(5).unwrap();
    assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::EndOfData);
    let e = t.locate_file(7).unwrap_err();
    assert!(matches!(e, TapeError::NotFound { .. }), "{e}");
    t.locate_file(0).unwrap();
    assert_eq!(t.read_block(&mut buf, 10).unwrap(), Block::Record(3));
    assert_eq!(buf, [0, 0, 0xaa]);
}

#[test]
fn writing_in_the_middle_discards_the_rest() {
    let mut t = MemTape::memory();
    for f in 0..4u8 {
        t.write_record(&[f; 10]).unwrap();
        t.write_filemark().unwrap();
    }
    t.locate_file(2).unwrap();
    t.write_record(b"replacement").unwrap();
    t.write_filemark().unwrap();
    t.rewind().unwrap();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    loop {
        match t.read_block(&mut buf, 100).unwrap() {
            Block::Record(_) => seen.push(buf.clone()),
            Block::FileMark => {}
            Block::EndOfData => break,
        }
    }
    assert_eq!(seen, vec![vec![0u8; 10], vec![1u8; 10], b"replacement".to_vec()]);
    assert!(t.locate_file(4).is_err(), "old file 4 must be gone");
}

#[test]
fn image_files_create_open_and_refuse_writes_when_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tap");
    let mut t = SimhTape::create(&path).unwrap();
    t.write_record(b"hello").unwrap();
    t.write_filemark().unwrap();
    t.sync().unwrap();
    drop(t);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 + 6 + 4 + 4);
    let mut t = SimhTape::open(&path).unwrap();
    let mut buf = Vec::new();
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(5));
    assert!(t.write_record(b"x").is_err());
    let mut t = SimhTape::open_rw(&path).unwrap();
    t.locate_file(1).unwrap();
    t.write_record(b"more").unwrap();
    drop(t);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 18 + 12);
}

#[test]
fn rejects_empty_and_oversized_records() {
    let mut t = MemTape::memory();
    assert!(matches!(t.write_record(b""), Err(TapeError::Invalid { .. })));
    assert!(t.write_record(&vec![0; MAX_BLOCK_SIZE + 1]).is_err());
    assert!(t.bytes().is_empty());
}

#[test]
fn capacity_refuses_writes_past_the_end_and_writes_nothing() {
    // 3 records of 10 bytes = 54 image bytes, two tape marks 8: 62 bytes.
    let cap = Capacity::new(62, 20).unwrap();
    assert!(Capacity::new(10, 11).is_err());
    let mut t = MemTape::memory().with_capacity(cap);
    assert_eq!(t.record_cost(10), 18);
    assert_eq!(t.record_cost(11), 20);
    assert_eq!(t.filemark_cost(), 4);
    assert_eq!(t.capacity_left(), Some(62));
    assert_eq!(t.early_warning_left(), Some(42));
    t.write_record(&[1; 10]).unwrap();
    t.write_record(&[2; 10]).unwrap();
    assert!(!t.early_warning());
    assert_eq!(t.early_warning_left(), Some(6));
    // Starts before the early-warning point, ends inside the zone: fine.
    t.write_record(&[3; 10]).unwrap();
    assert!(t.early_warning(), "54 bytes written, the zone starts at 42");
    assert_eq!(t.early_warning_left(), Some(0));
    assert_eq!(t.capacity_left(), Some(8));
    // Inside the zone: still succeeds (like LTO), and is reported.
    t.write_filemark().unwrap();
    assert!(t.early_warning());
    let before = t.bytes().to_vec();
    let e = t.write_record(&[4; 1]).unwrap_err();
    assert!(e.is_end_of_medium(), "{e}");
    assert!(!e.is_tape_full());
    assert!(
        matches!(
            e,
            TapeError::EndOfMedium {
                needed: 10,
                available: 4,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.location(), Some(&Location::record(1, 0)));
    assert!(e.to_string().contains("end of medium"), "{e}");
    assert_eq!(t.bytes(), &before[..], "a refused write writes nothing");
    assert_eq!(t.position(), Position { file: 1, record: 0 });
    // Still appendable where it fits, and readable.
    t.write_filemark().unwrap();
    assert_eq!(t.capacity_left(), Some(0));
    assert!(t.write_filemark().unwrap_err().is_end_of_medium());
    t.rewind().unwrap();
    let mut buf = Vec::new();
    for want in [1u8, 2, 3] {
        assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::Record(10));
        assert_eq!(buf, [want; 10]);
    }
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::FileMark);
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::FileMark);
    assert_eq!(t.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
    // Rewriting from an earlier position frees the space after it.
    t.locate_file(1).unwrap();
    assert_eq!(t.capacity_left(), Some(4));
    t.rewind().unwrap();
    assert_eq!(t.capacity_left(), Some(62));
    assert!(!t.early_warning());
    // Forwarding through &mut and Box keeps the accounting.
    let r: &mut MemTape = &mut t;
    assert_eq!(BlockDevice::early_warning_left(&r), Some(42));
    let b: Box<dyn BlockDevice> = Box::new(MemTape::memory().with_capacity(cap));
    assert_eq!(b.capacity_left(), Some(62));
    assert_eq!(b.record_cost(3), 12);
    // No capacity: unlimited.
    let t = MemTape::memory();
    assert_eq!(
        (t.capacity_left(), t.early_warning_left(), t.early_warning()),
        (None, None, false)
    );
}
