use proto::abs::AbsMap;
use proto::tape::management::{Management, Placement};

use super::*;

fn entry(file_number: u32, kind: FileKind, abs_id: u64, seq: u32, bytes: u64) -> DirectoryEntry {
    DirectoryEntry {
        file_number,
        kind,
        abs_id,
        seq,
        bytes,
        crc32c: 0,
        records: 1,
    }
}

fn tape(label: &str, pool: &str, created_unix: u64, files: Vec<DirectoryEntry>) -> TapeSeen {
    TapeSeen {
        path: format!("/lib/{label}.tap"),
        label: label.into(),
        pool: pool.into(),
        media_set: created_unix,
        sequence: 1,
        created_unix,
        continues: false,
        files,
        metadata: Vec::new(),
        continued: Vec::new(),
    }
}

/// Metadata of ABS `id` (`segments` segments, base `base`) whose record
/// places segment k on (`label`, file 2 + k) with counts.
fn meta(id: u64, base: u64, segments: u32, pool: &str, label: &str) -> AbsMetadata {
    AbsMetadata {
        abs_id: id,
        object_name: "obj".into(),
        kind: if base == 0 {
            AbsKind::Full
        } else {
            AbsKind::Differential
        },
        base_abs_id: base,
        created_unix: 1,
        segment_count: segments,
        track_count: u64::from(segments),
        data_bytes: 100 * u64::from(segments),
        map: AbsMap {
            volumes: Vec::new(),
            extents: Vec::new(),
            object_size: 0,
        },
        merged_from_abs_id: 0,
        changed: Vec::new(),
        management: Some(Management {
            cluster_id: Uuid::from_random_bytes([1; 16]),
            abs_uuid: Uuid::from_random_bytes([u8::try_from(id).unwrap_or(0); 16]),
            client: "client".into(),
            primary_node: "pn1".into(),
            level: if base == 0 { Level::Full } else { Level::Incremental },
            base_uuid: Uuid::default(),
            chain: vec![id],
            point_in_time_ms: 1000,
            epochs: Vec::new(),
            pool: pool.into(),
            copy_number: 0,
            label: String::new(),
            created_ms: 1000,
            placements: (0..segments)
                .map(|seq| Placement {
                    seq,
                    tape_label: label.into(),
                    tape_file: 2 + seq,
                    bytes: 10,
                    crc32c: 7,
                    counts: Some(PlacementCounts {
                        data_bytes: 100,
                        track_count: 1,
                    }),
                })
                .collect(),
            written_ms: Some(2000),
        }),
    }
}

/// ABS 1 (two segments) on primary tape P1 of pool `onsite`, copied whole
/// onto C1 of pool `vault`; P2 a blank labelled tape.
fn library() -> Vec<TapeSeen> {
    let mut p1 = tape(
        "P1",
        "onsite",
        10,
        vec![
            entry(2, FileKind::Segment, 1, 0, 10),
            entry(3, FileKind::Segment, 1, 1, 10),
            entry(4, FileKind::AbsMetadata, 1, 0, 5),
        ],
    );
    p1.metadata.push((4, meta(1, 0, 2, "onsite", "P1")));
    let mut c1 = tape(
        "C1",
        "vault",
        20,
        vec![
            entry(2, FileKind::Segment, 1, 0, 10),
            entry(3, FileKind::Segment, 1, 1, 10),
            entry(4, FileKind::AbsMetadata, 1, 0, 5),
        ],
    );
    // The copy's metadata carries the copy's record: its pool, copy
    // number 1, its places, written after the primary's.
    let mut copy = meta(1, 0, 2, "vault", "C1");
    if let Some(r) = copy.management.as_mut() {
        r.copy_number = 1;
        r.written_ms = Some(3000);
    }
    c1.metadata.push((4, copy));
    let p2 = tape("P2", "onsite", 5, Vec::new());
    vec![p1, c1, p2]
}

#[test]
fn primary_copies_and_whole_copies_are_told_apart_by_pool() {
    let tapes = library();
    let p = plan(&tapes);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    assert_eq!(p.cluster_id, Some(Uuid::from_random_bytes([1; 16])));
    assert_eq!(p.abs.len(), 1);
    let a = &p.abs[0];
    assert_eq!(a.home_pool, "onsite");
    assert_eq!(a.metadata_at, Some((0, 4)));
    assert!(a.missing.is_empty());
    for (seq, s) in a.segments.iter().enumerate() {
        assert_eq!(s.seq, u32::try_from(seq).unwrap());
        assert_eq!(s.at.tape, 0, "the primary copy is on P1");
        assert_eq!(s.copies.len(), 1);
        assert_eq!(s.copies[0].tape, 1, "the copy is on C1");
        assert_eq!(
            s.counts,
            Some(SegmentCounts {
                data_bytes: 100,
                track_count: 1,
                crc32c: 7
            })
        );
    }
    assert_eq!(a.copies, vec![(1, 4)], "a whole copy in vault");
    assert_eq!(
        p.pools,
        vec![
            PoolPlan {
                name: "onsite".into(),
                kind: PoolKind::Primary,
                copies_of: vec![]
            },
            PoolPlan {
                name: "vault".into(),
                kind: PoolKind::Copy,
                copies_of: vec!["onsite".into()]
            },
        ]
    );
    // Oldest first (the slots), a blank tape scratch.
    let order: Vec<(&str, TapeState)> = p
        .tapes
        .iter()
        .map(|t| (tapes[t.tape].label.as_str(), t.state))
        .collect();
    assert_eq!(
        order,
        [
            ("P2", TapeState::Scratch),
            ("P1", TapeState::Filling),
            ("C1", TapeState::Filling)
        ]
    );
    assert_eq!((p.tapes[1].bytes, p.tapes[1].files), (25, 3));
}

#[test]
fn a_missing_segment_fails_the_abs_and_its_dependents_are_left_out() {
    let mut tapes = library();
    // Tape P1 lost its segment 1 (only the copy has it); ABS 2 builds on 1.
    tapes[0].files.remove(1);
    tapes[0].files.push(entry(5, FileKind::Segment, 2, 0, 10));
    tapes[0].files.push(entry(6, FileKind::AbsMetadata, 2, 0, 5));
    tapes[0].metadata.push((6, meta(2, 1, 1, "onsite", "P1")));
    // ABS 3 never finished: a segment, no metadata.
    tapes[0].files.push(entry(7, FileKind::Segment, 3, 0, 10));
    let p = plan(&tapes);
    let ids: Vec<u64> = p.abs.iter().map(AbsPlan::abs_id).collect();
    assert_eq!(ids, [1], "ABS 2's base is not whole; ABS 3 has no metadata");
    assert_eq!(p.abs[0].missing, [1]);
    assert!(p.abs[0].copies.is_empty(), "no whole copy is recorded for a failed ABS");
    let notes = p.notes.join("\n");
    assert!(notes.contains("ABS 3: segments on tape but no metadata"), "{notes}");
    assert!(notes.contains("ABS 2") && notes.contains("builds on ABS 1"), "{notes}");
    assert!(notes.contains("segments [1] of 2"), "{notes}");
}

#[test]
fn the_placement_in_the_record_picks_among_duplicates_and_old_records_need_a_read() {
    let mut tapes = library();
    // A second copy of segment 0 in the home pool, on P2 (e.g. a
    // recovered tape): the record places it on P1.
    tapes[2].files.push(entry(2, FileKind::Segment, 1, 0, 10));
    // A record without counts (version 1).
    if let Some(m) = tapes[0].metadata[0].1.management.as_mut() {
        for pl in &mut m.placements {
            pl.counts = None;
        }
    }
    let p = plan(&tapes);
    let s0 = &p.abs[0].segments[0];
    assert_eq!((s0.at.tape, s0.at.file), (0, 2));
    assert!(s0.counts.is_none(), "counted by reading the segment");
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("1 more copies in its own pool onsite")),
        "{:?}",
        p.notes
    );
}

#[test]
fn catalog_backups_make_a_catalog_pool() {
    let mut tapes = library();
    tapes.truncate(1);
    if let Some(m) = tapes[0].metadata[0].1.management.as_mut() {
        m.primary_node = STATION_NODE.into();
    }
    let p = plan(&tapes);
    assert_eq!(p.pools.len(), 1);
    assert_eq!(p.pools[0].kind, PoolKind::Catalog);
}

#[test]
fn a_moved_abs_is_where_its_newest_record_says_and_its_old_places_are_left_out() {
    let mut tapes = library();
    // ABS 1 moved to pool archive (tape A1, a newer record placing it
    // there); P1 still holds the old places, C1 the vault copy.
    let mut a1 = tape(
        "A1",
        "archive",
        30,
        vec![
            entry(2, FileKind::Segment, 1, 0, 10),
            entry(3, FileKind::Segment, 1, 1, 10),
            entry(4, FileKind::AbsMetadata, 1, 0, 5),
        ],
    );
    let mut moved = meta(1, 0, 2, "archive", "A1");
    if let Some(r) = moved.management.as_mut() {
        r.written_ms = Some(9000);
    }
    a1.metadata.push((4, moved));
    tapes.push(a1);
    let p = plan(&tapes);
    assert_eq!(p.abs.len(), 1);
    let a = &p.abs[0];
    assert_eq!(a.home_pool, "archive");
    assert_eq!(a.metadata_at, Some((3, 4)), "the metadata on A1");
    for s in &a.segments {
        assert_eq!(s.at.tape, 3, "the primary copy is on A1");
        let on: Vec<usize> = s.copies.iter().map(|c| c.tape).collect();
        assert_eq!(on, [1], "the vault copy stays; P1's old place is left out");
    }
    assert_eq!(a.copies, vec![(1, 4)], "a whole copy in vault");
    let notes = p.notes.join("\n");
    assert!(
        notes.contains("ABS 1 moved to pool archive") && notes.contains("onsite"),
        "{notes}"
    );
    let kinds: Vec<(&str, PoolKind)> = p.pools.iter().map(|p| (p.name.as_str(), p.kind)).collect();
    assert!(kinds.contains(&("archive", PoolKind::Primary)), "{kinds:?}");
    assert!(kinds.contains(&("vault", PoolKind::Copy)), "{kinds:?}");
}

#[test]
fn only_a_copy_on_the_tapes_read_is_recorded_from_the_copy() {
    let tapes: Vec<TapeSeen> = library().into_iter().filter(|t| t.label == "C1").collect();
    let p = plan(&tapes);
    assert_eq!(p.abs.len(), 1);
    let a = &p.abs[0];
    assert_eq!(a.home_pool, "vault");
    assert!(a.missing.is_empty());
    assert!(a.segments.iter().all(|s| s.at.tape == 0));
    let notes = p.notes.join("\n");
    assert!(notes.contains("only its copy number 1 in pool vault"), "{notes}");
}

#[test]
fn an_abs_whose_metadata_is_on_a_tape_not_read_names_the_tapes_to_add() {
    // ABS 9: segment 0 on P1 (read), segment 1 on P2 (not read), its
    // metadata after it on P2. P1's CATALOG has its record.
    let mut p1 = tape("P1", "onsite", 10, vec![entry(2, FileKind::Segment, 9, 0, 10)]);
    p1.continues = true;
    let mut record = meta(9, 0, 2, "onsite", "P1").management.unwrap();
    record.placements[1].tape_label = "P2".into();
    record.label = "nightly".into();
    p1.continued.push(proto::tape::volume::ContinuedAbs {
        abs_id: 9,
        object_name: "obj".into(),
        record,
    });
    let p = plan(&[p1.clone()]);
    assert!(p.abs.is_empty());
    let notes = p.notes.join("\n");
    assert!(
        notes.contains(r#"ABS 9 (full of "obj" from client, pool onsite, label "nightly")"#)
            && notes.contains("the CATALOG of P1 places its segments on P2 too: add that tape"),
        "{notes}"
    );
    // Without the record: the old note.
    p1.continued.clear();
    let notes = plan(&[p1]).notes.join("\n");
    assert!(
        notes.contains("ABS 9: segments on tape but no metadata on any tape"),
        "{notes}"
    );
}
