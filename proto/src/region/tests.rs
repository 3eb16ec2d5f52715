use proptest::prelude::*;

use super::*;

fn stamp(version: u64) -> VersionStamp {
    VersionStamp {
        cluster_id: Uuid::from_random_bytes([5; 16]),
        set: "daily".into(),
        version,
        point_in_time_ms: 1_700_000_000_000 + version,
        source: VolumeKey::new("pn1", "vol-a"),
        target: VolumeKey::new("pn2", "t1a"),
        source_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        bytes_copied: 1 << 20,
        base_version: version.saturating_sub(2),
        pairs: vec![
            (VolumeKey::new("pn1", "vol-a"), VolumeKey::new("pn2", "t1a")),
            (VolumeKey::new("pn1", "vol-b"), VolumeKey::new("pn2", "t1b")),
        ],
        written_ms: 1_700_000_000_500,
    }
}

/// Apply the next write of `s` to `region`.
fn record(region: &mut [u8], s: &VersionStamp) {
    let state = read_region(region).unwrap();
    let (at, bytes) = next_write(&state, s).unwrap();
    region[at..at + bytes.len()].copy_from_slice(&bytes);
}

#[test]
fn records_alternate_between_the_slots_and_the_newest_wins() {
    let mut region = vec![0u8; REGION_BYTES];
    let empty = read_region(&region).unwrap();
    assert_eq!((empty.newest.clone(), empty.next_slot), (None, 0));
    record(&mut region, &stamp(1));
    record(&mut region, &stamp(3));
    let st = read_region(&region).unwrap();
    assert_eq!(st.newest, Some((2, stamp(3))));
    assert_eq!(st.next_slot, 0, "the next write replaces the older record");
    record(&mut region, &stamp(5));
    assert_eq!(read_region(&region).unwrap().newest, Some((3, stamp(5))));
    assert_eq!(&region[..8], REGION_MAGIC);
}

#[test]
fn a_torn_write_leaves_the_previous_record() {
    let mut region = vec![0u8; REGION_BYTES];
    record(&mut region, &stamp(1));
    record(&mut region, &stamp(3));
    // Version 5 goes to slot 0 and is torn half way.
    let state = read_region(&region).unwrap();
    let (at, bytes) = next_write(&state, &stamp(5)).unwrap();
    region[at..at + 40].copy_from_slice(&bytes[..40]);
    let st = read_region(&region).unwrap();
    assert_eq!(st.newest, Some((2, stamp(3))));
    assert_eq!(st.next_slot, 0);
    assert!(st.damaged.is_some_and(|(slot, _)| slot == 0));
    // Both slots damaged: an error naming both.
    region[SLOT_BYTES + 30] ^= 1;
    let e = read_region(&region).unwrap_err().to_string();
    assert!(e.contains("slot 0") && e.contains("slot 1"), "{e}");
}

#[test]
fn a_future_version_and_too_large_records_are_refused() {
    let mut slot = stamp(1).encode_slot(1).unwrap();
    slot[8] = 2; // version 2
    let e = VersionStamp::decode_slot(&slot).unwrap_err().to_string();
    assert!(e.contains("version 2"), "{e}");
    let mut big = stamp(1);
    big.pairs = vec![(VolumeKey::new("pn1", "v"), VolumeKey::new("pn2", "t")); MAX_REGION_PAIRS + 1];
    assert!(big.encode_slot(1).is_err());
    big.pairs.truncate(MAX_REGION_PAIRS);
    big.pairs.iter_mut().for_each(|p| p.0.volume = "x".repeat(40));
    assert!(big.encode_slot(1).is_ok(), "the most pairs with long names fit a slot");
}

/// The slot layout, pinned byte for byte: the first bytes a reader checks.
#[test]
fn the_slot_layout_is_as_documented() {
    let slot = stamp(1).encode_slot(7).unwrap();
    assert_eq!(slot.len(), SLOT_BYTES);
    assert_eq!(&slot[..8], b"DMCVRG01");
    assert_eq!(&slot[8..10], &1u16.to_le_bytes());
    assert_eq!(&slot[10..12], &[0, 0]);
    let len = u32::from_le_bytes(slot[12..16].try_into().unwrap()) as usize;
    assert_eq!(&slot[16..24], &7u64.to_le_bytes(), "sequence first");
    assert_eq!(&slot[24..40], stamp(1).cluster_id.as_bytes(), "then the cluster id");
    assert_eq!(&slot[40..44], &5u32.to_le_bytes(), "then the set's length");
    assert_eq!(&slot[44..49], b"daily");
    let crc = u32::from_le_bytes(slot[16 + len..20 + len].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&slot[..16 + len]));
    assert!(slot[20 + len..].iter().all(|b| *b == 0));
}

proptest! {
    /// Whatever a region holds, reading it never panics, and a record
    /// written into it reads back.
    #[test]
    fn any_region_reads_without_panic(noise in prop::collection::vec((0usize..REGION_BYTES, any::<u8>()), 0..64), version in 1u64..1000) {
        let mut region = vec![0u8; REGION_BYTES];
        record(&mut region, &stamp(version));
        for (at, b) in noise {
            region[at] = b;
        }
        if let Ok(st) = read_region(&region) {
            let (at, bytes) = next_write(&st, &stamp(version + 1)).unwrap();
            region[at..at + bytes.len()].copy_from_slice(&bytes);
            let again = read_region(&region).unwrap();
            prop_assert_eq!(again.newest.map(|(_, s)| s), Some(stamp(version + 1)));
        }
    }
}
