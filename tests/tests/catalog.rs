//! The control station's catalog against a real Postgres (a private cluster
//! unless DATABASE_URL is set), one fresh database per test.

use std::collections::HashSet;

use control_station::catalog::{Catalog, CatalogError, NewSegment, TapeClaim};
use control_station::channel::{ChannelKind, ChannelState};
use dmc_tests::pg::TestDb;
use proto::abs::{AbsMap, Geometry, MapExtent, VolumeRef};
use proto::domain::{
    AbsId, AbsKind, AbsState, ChannelId, Level, MapId, MediaSetId, MoverId, MoverRole, MoverState, NodeId, PoolKind,
    SegmentSeq, TapeId, TapeLocation, TapeState,
};

/// A migrated catalog with the primary pools these tests write to.
async fn catalog(db: &TestDb) -> Catalog {
    let cat = Catalog::connect(db.url()).await.expect("connect and migrate");
    for pool in ["default", "other", "p", "q", "pool"] {
        cat.define_pool(pool, PoolKind::Primary, &[], None)
            .await
            .expect("define a pool");
    }
    cat
}

fn volume(name: &str, size: u64) -> VolumeRef {
    VolumeRef {
        name: name.into(),
        geometry: Geometry {
            block_size: 4096,
            track_size: 65536,
        },
        size,
    }
}

/// An object of 3 extents over 2 volumes.
fn sample_map() -> AbsMap {
    AbsMap {
        volumes: vec![
            VolumeRef {
                name: "vol0".into(),
                geometry: Geometry {
                    block_size: 4096,
                    track_size: 65536,
                },
                size: 1 << 30,
            },
            VolumeRef {
                name: "vol1".into(),
                geometry: Geometry {
                    block_size: 512,
                    track_size: 32768,
                },
                size: 1 << 28,
            },
        ],
        extents: vec![
            MapExtent {
                logical_offset: 0,
                length: 8192,
                volume: 1,
                volume_offset: 1024,
            },
            MapExtent {
                logical_offset: 8192,
                length: 65536,
                volume: 0,
                volume_offset: 131072,
            },
            MapExtent {
                logical_offset: 73728,
                length: 4096,
                volume: 1,
                volume_offset: 0,
            },
        ],
        object_size: 77824,
    }
}

async fn node(cat: &Catalog) -> NodeId {
    cat.register_primary_node("pn1", &[volume("vol0", 1 << 30), volume("vol1", 1 << 28)])
        .await
        .unwrap()
}

fn seg(abs_id: AbsId, seq: u32, tape_id: TapeId, tape_file: u32) -> NewSegment {
    NewSegment {
        abs_id,
        seq: SegmentSeq::new(seq),
        tape_id,
        tape_file,
        bytes: 1_000_000 + u64::from(seq),
        data_bytes: 983_040,
        track_count: 15,
        crc32c: 0xdead_0000 | seq,
    }
}

#[tokio::test]
async fn registration_upserts() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;

    let n1 = cat
        .register_primary_node("pn1", &[volume("a", 100 << 20)])
        .await
        .unwrap();
    let n2 = cat
        .register_primary_node("pn1", &[volume("a", 200 << 20), volume("b", 1 << 20)])
        .await
        .unwrap();
    assert_eq!(n1, n2);
    assert_eq!(cat.primary_node_id("pn1").await.unwrap(), Some(n1));
    assert_eq!(cat.primary_node_id("nope").await.unwrap(), None);
    let vols = cat.volumes_of(n1).await.unwrap();
    assert_eq!(vols, vec![volume("a", 200 << 20), volume("b", 1 << 20)]);
    let dup = cat
        .register_primary_node("pn2", &[volume("a", 1), volume("a", 2)])
        .await;
    assert!(matches!(dup, Err(CatalogError::Invalid { .. })), "{dup:?}");

    let fe = cat
        .register_mover("fe1", MoverRole::FrontEnd, "127.0.0.1:7001")
        .await
        .unwrap();
    let first = cat.mover(fe).await.unwrap().unwrap();
    let fe_again = cat
        .register_mover("fe1", MoverRole::FrontEnd, "127.0.0.1:7101")
        .await
        .unwrap();
    assert_eq!(fe, fe_again);
    let m = cat.mover(fe).await.unwrap().unwrap();
    assert_eq!(m.address, "127.0.0.1:7101");
    assert_eq!(m.state, MoverState::Online);
    assert!(m.last_seen >= first.last_seen);
    assert_eq!(m.registered_at, first.registered_at);

    let be = cat
        .register_mover("be1", MoverRole::BackEnd, "127.0.0.1:7002")
        .await
        .unwrap();
    let both = cat
        .register_mover("both1", MoverRole::Both, "127.0.0.1:7003")
        .await
        .unwrap();
    // A role that does not exist cannot even be named.
    assert!("middle-end".parse::<MoverRole>().is_err());

    cat.touch_mover(be).await.unwrap();
    assert!(matches!(
        cat.touch_mover(MoverId::new(9999)).await,
        Err(CatalogError::NotFound { .. })
    ));
    cat.set_mover_state(be, MoverState::Draining).await.unwrap();
    assert_eq!(cat.mover(be).await.unwrap().unwrap().state, MoverState::Draining);
    assert!("asleep".parse::<MoverState>().is_err());
    // Re-registering brings a mover back online.
    cat.register_mover("be1", MoverRole::BackEnd, "127.0.0.1:7002")
        .await
        .unwrap();
    assert_eq!(cat.mover(be).await.unwrap().unwrap().state, MoverState::Online);

    let p1 = cat.register_pair(fe, be).await.unwrap();
    assert_eq!(cat.register_pair(fe, be).await.unwrap(), p1);
    let p2 = cat.register_pair(both, both).await.unwrap();
    assert_ne!(p1, p2);
    let wrong = cat.register_pair(be, fe).await;
    assert!(matches!(wrong, Err(CatalogError::Conflict { .. })), "{wrong:?}");
    assert!(matches!(
        cat.register_pair(fe, MoverId::new(4242)).await,
        Err(CatalogError::NotFound { .. })
    ));

    let pairs = cat.list_pairs().await.unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(
        (
            pairs[0].fe_name.as_str(),
            pairs[0].fe_address.as_str(),
            pairs[0].be_name.as_str()
        ),
        ("fe1", "127.0.0.1:7101", "be1")
    );

    let d1 = cat.register_drive(be, "drive0").await.unwrap();
    assert_eq!(cat.register_drive(be, "drive0").await.unwrap(), d1);
    let d2 = cat.register_drive(be, "drive1").await.unwrap();
    assert!(matches!(
        cat.register_drive(fe, "drive9").await,
        Err(CatalogError::Conflict { .. })
    ));
    let drives = cat.drives_of(be).await.unwrap();
    assert_eq!(drives.iter().map(|d| d.id).collect::<Vec<_>>(), vec![d1, d2]);
    assert!(drives.iter().all(|d| d.tape_id.is_none() && d.be_mover_id == be));
    // Another back-end may not take a drive over by naming it.
    match cat.register_drive(both, "drive1").await {
        Err(CatalogError::Conflict { what }) => assert!(what.contains("belongs to back-end be1"), "{what}"),
        other => panic!("drive takeover: {other:?}"),
    }
    assert!(cat.drives_of(both).await.unwrap().is_empty());
    assert_eq!(cat.drives_of(be).await.unwrap().len(), 2);

    let movers = cat.list_movers().await.unwrap();
    assert_eq!(
        movers.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["be1", "both1", "fe1"]
    );
}

#[tokio::test]
async fn tape_labels_and_states() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;

    let mut labels = HashSet::new();
    for _ in 0..5 {
        let l = cat.allocate_tape_label("DM").await.unwrap();
        assert_eq!(l.len(), 6, "{l}");
        assert!(l.starts_with("DM") && l[2..].chars().all(|c| c.is_ascii_digit()), "{l}");
        assert!(labels.insert(l));
    }
    assert!(labels.contains("DM0001"), "{labels:?}");
    assert!(matches!(
        cat.allocate_tape_label("TOOLNG").await,
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        cat.allocate_tape_label("ab").await,
        Err(CatalogError::Invalid { .. })
    ));
    // A label created by hand is skipped by the allocator.
    let next = cat.allocate_tape_label("Q").await.unwrap(); // Q00006
    let skip = format!("Q{:05}", next[1..].parse::<u32>().unwrap() + 1);
    cat.create_tape(&skip, "default", "/tapes/skip.tap").await.unwrap();
    let after = cat.allocate_tape_label("Q").await.unwrap();
    assert_ne!(after, skip);

    let t = cat.create_tape("DM0001", "default", "/tapes/DM0001.tap").await.unwrap();
    assert_eq!(
        (t.state, t.in_use, t.mounted_in.as_deref()),
        (TapeState::Scratch, false, None)
    );
    assert_eq!((t.bytes_written, t.files_written), (0, 0));
    let dup = cat.create_tape("DM0001", "other", "/x").await;
    assert!(matches!(dup, Err(CatalogError::Conflict { .. })), "{dup:?}");
    assert!(matches!(
        cat.create_tape("dm01", "p", "/x").await,
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        cat.create_tape("TOOLONG", "p", "/x").await,
        Err(CatalogError::Invalid { .. })
    ));
    assert_eq!(cat.tape_by_label("DM0001").await.unwrap().unwrap().id, t.id);
    assert!(cat.tape_by_label("NONE").await.unwrap().is_none());

    // Mount / dismount bookkeeping.
    let be = cat.register_mover("be1", MoverRole::BackEnd, "a").await.unwrap();
    let d0 = cat.register_drive(be, "drive0").await.unwrap();
    let d1 = cat.register_drive(be, "drive1").await.unwrap();
    let t2 = cat.create_tape("DM0002", "default", "/tapes/DM0002.tap").await.unwrap();
    cat.mount_tape(d0, t.id, TapeClaim::Free).await.unwrap();
    cat.mount_tape(d0, t.id, TapeClaim::Free).await.unwrap(); // idempotent
    let mounted = cat.tape(t.id).await.unwrap().unwrap();
    assert_eq!((mounted.in_use, mounted.mounted_in.as_deref()), (true, Some("drive0")));
    assert_eq!(cat.drives_of(be).await.unwrap()[0].tape_id, Some(t.id));
    let busy_drive = cat.mount_tape(d0, t2.id, TapeClaim::Free).await;
    assert!(
        matches!(busy_drive, Err(CatalogError::Conflict { .. })),
        "{busy_drive:?}"
    );
    let busy_tape = cat.mount_tape(d1, t.id, TapeClaim::Free).await;
    assert!(matches!(busy_tape, Err(CatalogError::Conflict { .. })), "{busy_tape:?}");
    assert!(matches!(
        cat.dismount_tape(d1, t.id, TapeState::Full, 10, 1).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!("empty".parse::<TapeState>().is_err(), "no such tape state");
    assert!(matches!(
        cat.release_tape(t.id).await,
        Err(CatalogError::Conflict { .. })
    ));
    cat.dismount_tape(d0, t.id, TapeState::Full, 123_456, 7).await.unwrap();
    let full = cat.tape(t.id).await.unwrap().unwrap();
    assert_eq!(
        (
            full.state,
            full.bytes_written,
            full.files_written,
            full.in_use,
            full.mounted_in
        ),
        (TapeState::Full, 123_456, 7, false, None)
    );

    // Full tapes are never handed out for writing; free ones are.
    let w = cat.tape_for_writing("default", false).await.unwrap().unwrap();
    assert_eq!(w.label, skip, "oldest scratch tape first");
    assert!(w.in_use);
    assert_eq!(cat.tape_for_writing("default", false).await.unwrap().unwrap().id, t2.id);
    assert!(cat.tape_for_writing("default", false).await.unwrap().is_none());
    cat.release_tape(t2.id).await.unwrap();
    assert_eq!(cat.tape_for_writing("default", false).await.unwrap().unwrap().id, t2.id);
    // A tape reserved for writing is not a restore's to mount meanwhile
    // (the writer would open it in another drive); its writer mounts it.
    let read_reserved = cat.mount_tape(d1, t2.id, TapeClaim::Free).await;
    assert!(
        matches!(read_reserved, Err(CatalogError::Conflict { .. })),
        "{read_reserved:?}"
    );
    cat.mount_tape(d0, t2.id, TapeClaim::Reserved).await.unwrap();
    assert_eq!(
        cat.tape(t2.id).await.unwrap().unwrap().mounted_in.as_deref(),
        Some("drive0")
    );
    cat.dismount_tape(d0, t2.id, TapeState::Filling, 0, 0).await.unwrap();

    let set = MediaSetId::new(77);
    cat.set_tape_media_set(t.id, set, 0).await.unwrap();
    cat.set_tape_media_set(t2.id, set, 1).await.unwrap();
    assert!(matches!(
        cat.set_tape_media_set(t2.id, set, 0).await,
        Err(CatalogError::Conflict { .. })
    ));
    let listed = cat.list_tapes().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
        ["DM0001", "DM0002", skip.as_str()]
    );
    assert_eq!((listed[1].media_set, listed[1].media_set_seq), (Some(set), Some(1)));
}

#[tokio::test]
async fn filling_tapes_first_then_oldest_scratch() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let be = cat.register_mover("be1", MoverRole::BackEnd, "a").await.unwrap();
    let drive = cat.register_drive(be, "drive0").await.unwrap();
    let a = cat.create_tape("A00001", "p", "/a").await.unwrap();
    let b = cat.create_tape("A00002", "p", "/b").await.unwrap();
    let _other_pool = cat.create_tape("A00003", "q", "/c").await.unwrap();
    cat.mount_tape(drive, b.id, TapeClaim::Free).await.unwrap();
    cat.dismount_tape(drive, b.id, TapeState::Filling, 4096, 3)
        .await
        .unwrap();
    assert_eq!(cat.tape_for_writing("p", false).await.unwrap().unwrap().id, b.id);
    assert_eq!(cat.tape_for_writing("p", false).await.unwrap().unwrap().id, a.id);
    assert!(cat.tape_for_writing("p", false).await.unwrap().is_none());
    assert!(cat.tape_for_writing("nope", false).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tape_allocation_never_shares_a_tape() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    const TAPES: usize = 6;
    const CALLERS: usize = 20;
    for i in 0..TAPES {
        let label = cat.allocate_tape_label("C").await.unwrap();
        cat.create_tape(&label, "pool", &format!("/tapes/{i}.tap"))
            .await
            .unwrap();
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let cat = cat.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                cat.tape_for_writing("pool", false).await.unwrap().map(|t| t.id)
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        if let Some(id) = t.await.unwrap() {
            got.push(id);
        }
    }
    let distinct: HashSet<_> = got.iter().copied().collect();
    assert_eq!(got.len(), TAPES, "every free tape handed out exactly once: {got:?}");
    assert_eq!(distinct.len(), TAPES, "a tape was handed out twice: {got:?}");
    assert!(cat.list_tapes().await.unwrap().iter().all(|t| t.in_use));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_new_tapes_get_distinct_slots_and_export_frees_them() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    const TAPES: usize = 12;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TAPES));
    let tasks: Vec<_> = (0..TAPES)
        .map(|i| {
            let cat = cat.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                cat.create_tape(&format!("S{i:04}"), "pool", &format!("/lib/S{i:04}.tap"))
                    .await
                    .unwrap()
                    .slot
                    .unwrap()
            })
        })
        .collect();
    let mut slots = Vec::new();
    for t in tasks {
        slots.push(t.await.unwrap());
    }
    slots.sort();
    let n = u32::try_from(TAPES).unwrap();
    assert_eq!(slots, (1..=n).collect::<Vec<_>>(), "slots 1..n, none shared");
    assert_eq!(cat.tapes_in_library().await.unwrap(), u64::from(n));

    // Export frees the slot; a reserved tape cannot leave; import takes the lowest free slot.
    let t3 = cat.tape_by_label("S0003").await.unwrap().unwrap();
    let out = cat.export_tape("S0003", "/vault/S0003.tap").await.unwrap();
    assert_eq!(
        (out.location, out.slot, out.path.as_str()),
        (TapeLocation::Exported, None, "/vault/S0003.tap")
    );
    assert!(
        matches!(cat.export_tape("S0003", "/x").await, Err(CatalogError::Conflict { .. })),
        "exported twice"
    );
    assert_eq!(cat.tapes_in_library().await.unwrap(), u64::from(n) - 1);
    let writing = cat.tape_for_writing("pool", false).await.unwrap().unwrap();
    assert_ne!(writing.id, t3.id, "an exported tape is never handed out for writing");
    let e = cat.export_tape(&writing.label, "/x").await.unwrap_err();
    assert!(matches!(e, CatalogError::Conflict { .. }), "{e:?}");
    assert!(e.to_string().contains("in use"), "the message says why: {e}");
    let new = cat.create_tape("S0099", "pool", "/lib/S0099.tap").await.unwrap();
    assert_eq!(new.slot, t3.slot, "the freed slot is reused");
    let back = cat.import_tape("S0003", "/lib/S0003.tap").await.unwrap();
    assert_eq!(back.slot, Some(n + 1));
    assert!(
        matches!(
            cat.import_tape("S0003", "/lib/S0003.tap").await,
            Err(CatalogError::Conflict { .. })
        ),
        "imported twice"
    );
}

#[tokio::test]
async fn abs_map_round_trips_through_rows() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let map = sample_map();
    let (obj, abs) = cat
        .create_abs("/db/orders", pn, Level::Full, None, &map, "default")
        .await
        .unwrap();
    let row = cat.load_abs(abs).await.unwrap().unwrap();
    assert_eq!(row.map, map);
    assert_eq!(
        (row.object_id, row.object_name.as_str(), row.primary_node.as_str()),
        (obj, "/db/orders", "pn1")
    );
    assert_eq!(
        (row.kind, row.level, row.state, row.base_abs_id),
        (AbsKind::Full, Level::Full, AbsState::Running, None)
    );
    assert_eq!(row.object_size, 77824);
    assert!(row.completed.is_none());
    assert!(cat.load_abs(AbsId::new(abs.get() + 1000)).await.unwrap().is_none());

    // One row per extent, however large the object.
    let extents: i64 = sqlx::query_scalar("SELECT count(*) FROM abs_map_extents WHERE abs_id = $1")
        .bind(abs)
        .fetch_one(cat.pool())
        .await
        .unwrap();
    assert_eq!(extents, 3);

    // A big fragmented map goes in and out intact.
    let n = 20_000u64;
    let big = AbsMap {
        volumes: vec![volume("vol0", 1 << 40)],
        extents: (0..n)
            .map(|i| MapExtent {
                logical_offset: i * 4096,
                length: 4096,
                volume: 0,
                volume_offset: (n - i) * 8192,
            })
            .collect(),
        object_size: n * 4096,
    };
    let (obj2, big_abs) = cat
        .create_abs("/fragmented", pn, Level::Full, None, &big, "default")
        .await
        .unwrap();
    assert_ne!(obj2, obj);
    assert_eq!(cat.load_abs(big_abs).await.unwrap().unwrap().map, big);

    // Differential: needs a complete base of the same object.
    let diff = cat
        .create_abs("/db/orders", pn, Level::Incremental, Some(abs), &map, "default")
        .await;
    assert!(matches!(diff, Err(CatalogError::Conflict { .. })), "{diff:?}");
    cat.complete_abs(abs, 77824, 2, 0).await.unwrap();
    let (obj3, d) = cat
        .create_abs("/db/orders", pn, Level::Incremental, Some(abs), &map, "default")
        .await
        .unwrap();
    assert_eq!(obj3, obj, "same logical object reused");
    assert_eq!(cat.load_abs(d).await.unwrap().unwrap().base_abs_id, Some(abs));
    let other_obj = cat
        .create_abs("/fragmented", pn, Level::Incremental, Some(abs), &big, "default")
        .await;
    assert!(matches!(other_obj, Err(CatalogError::Conflict { .. })), "{other_obj:?}");
    assert!(matches!(
        cat.create_abs("/x", pn, Level::Incremental, None, &map, "default")
            .await,
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        cat.create_abs("/x", pn, Level::Full, Some(abs), &map, "default").await,
        Err(CatalogError::Invalid { .. })
    ));
    assert!("partial".parse::<Level>().is_err(), "no such level");
    assert!(matches!(
        cat.create_abs("/x", NodeId::new(999), Level::Full, None, &map, "default")
            .await,
        Err(CatalogError::NotFound { .. })
    ));
    let mut bad = map.clone();
    bad.extents[0].volume = 5;
    assert!(matches!(
        cat.create_abs("/x", pn, Level::Full, None, &bad, "default").await,
        Err(CatalogError::Invalid { .. })
    ));

    let list = cat.list_abs().await.unwrap();
    assert_eq!(list.iter().map(|a| a.id).collect::<Vec<_>>(), vec![abs, big_abs, d]);
    assert_eq!(list[0].state, AbsState::Complete);
    let extents: Vec<u32> = list.iter().map(|a| a.extents).collect();
    assert_eq!(
        extents,
        [map.extents.len(), big.extents.len(), map.extents.len()].map(|n| u32::try_from(n).unwrap())
    );
}

#[tokio::test]
async fn a_reserved_abs_id_goes_to_the_next_abs_and_ids_are_never_reused() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let (_, first) = cat
        .create_abs("/a", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    // A catalog restore records its backup under the id its tape carries.
    cat.reserve_abs_id(AbsId::new(40)).await.unwrap();
    let (_, reserved) = cat
        .create_abs("/b", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    assert_eq!(reserved, AbsId::new(40));
    let (_, next) = cat
        .create_abs("/c", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    assert_eq!(next, AbsId::new(41));
    // An id taken, or below one taken, is refused.
    for taken in [first, reserved, AbsId::new(12)] {
        let err = cat.reserve_abs_id(taken).await.unwrap_err();
        assert!(matches!(err, CatalogError::Conflict { .. }), "{taken}: {err:?}");
    }
    // Catalog pools: created on demand, never of another kind.
    cat.ensure_catalog_pool("db").await.unwrap();
    cat.ensure_catalog_pool("db").await.unwrap();
    let err = cat.ensure_catalog_pool("default").await.unwrap_err();
    assert!(err.to_string().contains("default is a primary pool"), "{err}");
    let err = cat.ensure_primary_pool("db").await.unwrap_err();
    assert!(err.to_string().contains("db is a catalog pool"), "{err}");
}

#[tokio::test]
async fn create_abs_is_one_transaction() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    // The database refuses the last extent (length 0) after the object, the
    // ABS and its volumes were inserted: nothing of it may remain.
    let mut map = sample_map();
    map.extents.push(MapExtent {
        logical_offset: 77824,
        length: 0,
        volume: 0,
        volume_offset: 0,
    });
    let err = cat
        .create_abs("/half", pn, Level::Full, None, &map, "default")
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::Db(_)), "{err:?}");
    for table in ["logical_objects", "abs", "abs_volumes", "abs_map_extents"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(cat.pool())
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} kept rows of a failed create_abs");
    }
}

#[tokio::test]
async fn segments_are_idempotent_and_conflicts_are_refused() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let (_, abs) = cat
        .create_abs("/obj", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    let (_, abs2) = cat
        .create_abs("/obj2", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    let t1 = cat.create_tape("S00001", "p", "/t1.tap").await.unwrap();
    let t2 = cat.create_tape("S00002", "p", "/t2.tap").await.unwrap();

    assert!(cat.record_segment(&seg(abs, 0, t1.id, 2)).await.unwrap());
    assert!(
        !cat.record_segment(&seg(abs, 0, t1.id, 2)).await.unwrap(),
        "same row again is fine"
    );
    let tape = cat.tape(t1.id).await.unwrap().unwrap();
    assert_eq!((tape.state, tape.files_written), (TapeState::Filling, 3));

    let mut different_crc = seg(abs, 0, t1.id, 2);
    different_crc.crc32c ^= 1;
    let e = cat.record_segment(&different_crc).await.unwrap_err();
    assert!(matches!(e, CatalogError::Conflict { .. }), "{e:?}");
    // Same (abs, seq), other contents, elsewhere on tape.
    let mut elsewhere = seg(abs, 0, t1.id, 3);
    elsewhere.track_count += 1;
    let e = cat.record_segment(&elsewhere).await.unwrap_err();
    assert!(matches!(e, CatalogError::Conflict { .. }), "{e:?}");
    // The same segment written again elsewhere (a front-end restarted
    // before it heard the first write's outcome): the first copy stays.
    assert!(!cat.record_segment(&seg(abs, 0, t1.id, 6)).await.unwrap());
    let kept = cat.segments_of(abs).await.unwrap();
    assert_eq!((kept.len(), kept[0].tape_file), (1, 2));
    assert_eq!(cat.tape(t1.id).await.unwrap().unwrap().files_written, 7);
    // Same tape file, another ABS.
    let e = cat.record_segment(&seg(abs2, 0, t1.id, 2)).await.unwrap_err();
    assert!(matches!(e, CatalogError::Conflict { .. }), "{e:?}");
    assert!(matches!(
        cat.record_segment(&seg(AbsId::new(9999), 0, t1.id, 9)).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        cat.record_segment(&seg(abs, 9, TapeId::new(9999), 9)).await,
        Err(CatalogError::NotFound { .. })
    ));

    // Interleaved with another ABS, across two tapes.
    cat.record_segment(&seg(abs2, 0, t1.id, 3)).await.unwrap();
    cat.record_segment(&seg(abs, 2, t2.id, 1)).await.unwrap();
    cat.record_segment(&seg(abs, 1, t1.id, 4)).await.unwrap();
    let segs = cat.segments_of(abs).await.unwrap();
    assert_eq!(
        segs.iter()
            .map(|s| (s.tape_label.as_str(), s.tape_file, s.seq.get()))
            .collect::<Vec<_>>(),
        [("S00001", 2, 0), ("S00001", 4, 1), ("S00002", 1, 2)]
    );
    assert_eq!(segs[0].crc32c, 0xdead_0000);
    assert_eq!(segs[0].tape_path, "/t1.tap");
    assert_eq!(cat.list_segments(None).await.unwrap().len(), 4);
    assert_eq!(
        cat.list_segments(Some(abs))
            .await
            .unwrap()
            .iter()
            .map(|s| s.seq.get())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );

    // Metadata cannot land on a segment's tape file, and vice versa.
    assert!(matches!(
        cat.record_abs_metadata(abs, t2.id, 1).await,
        Err(CatalogError::Conflict { .. })
    ));
    cat.record_abs_metadata(abs, t2.id, 2).await.unwrap();
    cat.record_abs_metadata(abs, t2.id, 2).await.unwrap();
    assert!(matches!(
        cat.record_abs_metadata(abs2, t2.id, 2).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(matches!(
        cat.record_segment(&seg(abs2, 1, t2.id, 2)).await,
        Err(CatalogError::Conflict { .. })
    ));

    // Completion needs every segment recorded.
    let e = cat.complete_abs(abs, 3 * 983_040, 45, 4).await.unwrap_err();
    assert!(matches!(e, CatalogError::Conflict { .. }), "{e:?}");
    cat.complete_abs(abs, 3 * 983_040, 45, 3).await.unwrap();
    cat.complete_abs(abs, 3 * 983_040, 45, 3).await.unwrap();
    assert!(matches!(
        cat.complete_abs(abs, 1, 45, 3).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(
        !cat.record_segment(&seg(abs, 1, t1.id, 4)).await.unwrap(),
        "a retry after completion is fine"
    );
    assert!(matches!(
        cat.record_segment(&seg(abs, 3, t2.id, 5)).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(matches!(
        cat.fail_abs(abs, "too late").await,
        Err(CatalogError::Conflict { .. })
    ));

    let row = cat.load_abs(abs).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.segment_count, row.track_count),
        (AbsState::Complete, 3, 45)
    );
    assert_eq!((row.metadata_tape_id, row.metadata_file), (Some(t2.id), Some(2)));
    assert!(row.completed.is_some());

    cat.fail_abs(abs2, "front-end lost").await.unwrap();
    cat.fail_abs(abs2, "second reason").await.unwrap();
    let failed = cat.load_abs(abs2).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.reason.as_deref()),
        (AbsState::Failed, Some("front-end lost"))
    );
    assert!(matches!(
        cat.complete_abs(abs2, 0, 0, 1).await,
        Err(CatalogError::Conflict { .. })
    ));

    let list = cat.list_abs().await.unwrap();
    assert_eq!(list[0].tapes, ["S00001", "S00002"]);
    assert_eq!((list[0].segment_count, list[0].segments_recorded), (3, 3));
    assert_eq!(
        (list[1].tapes.as_slice(), list[1].segments_recorded),
        (&["S00001".to_string()][..], 1)
    );

    // Tapes are listed in the order the library got them, not by label:
    // an ABS continued on an older-labelled tape imported later.
    let (_, abs3) = cat
        .create_abs("/obj3", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    let t0 = cat.create_tape("A00000", "p", "/t0.tap").await.unwrap();
    cat.record_segment(&seg(abs3, 0, t2.id, 3)).await.unwrap();
    cat.record_segment(&seg(abs3, 1, t0.id, 1)).await.unwrap();
    let list = cat.list_abs().await.unwrap();
    let listed = list.iter().find(|a| a.id == abs3).unwrap();
    assert_eq!(listed.tapes, ["S00002", "A00000"]);
    assert_eq!(listed.segments_recorded, 2);
}

#[tokio::test]
async fn channel_transitions_are_checked_and_recorded() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let (_, abs) = cat
        .create_abs("/obj", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    let fe = cat.register_mover("fe1", MoverRole::FrontEnd, "f").await.unwrap();
    let be = cat.register_mover("be1", MoverRole::BackEnd, "b").await.unwrap();
    let other_be = cat.register_mover("be2", MoverRole::BackEnd, "b2").await.unwrap();
    let drive = cat.register_drive(be, "drive0").await.unwrap();
    let other_drive = cat.register_drive(other_be, "drive9").await.unwrap();
    let tape = cat.create_tape("CH0001", "p", "/t").await.unwrap();

    assert!(matches!(
        cat.create_channel(ChannelKind::Restore, abs, "smapp").await,
        Err(CatalogError::Conflict { .. })
    ));
    assert!(matches!(
        cat.create_channel(ChannelKind::Backup, AbsId::new(4242), "smapp").await,
        Err(CatalogError::NotFound { .. })
    ));
    let ch = cat.create_channel(ChannelKind::Backup, abs, "smapp").await.unwrap();
    let row = cat.channel(ch).await.unwrap().unwrap();
    assert_eq!(
        (row.kind, row.state, row.abs_id, row.bytes),
        (ChannelKind::Backup, ChannelState::Requested, abs, 0)
    );
    assert!(row.fe_name.is_none() && row.drive_name.is_none());

    // Illegal: nothing changes, nothing is recorded.
    let before = cat.channel(ch).await.unwrap().unwrap();
    let e = cat
        .transition(ch, ChannelState::Writing, "skip", "test")
        .await
        .unwrap_err();
    match e {
        CatalogError::IllegalTransition { channel, from, to } => {
            assert_eq!(
                (channel, from, to),
                (ch, ChannelState::Requested, ChannelState::Writing)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cat.channel(ch).await.unwrap().unwrap(), before);
    assert_eq!(cat.channel_history(ch).await.unwrap().len(), 1);

    // Assignment: a registered pair and the back-end's own drive.
    assert!(matches!(
        cat.assign_channel(ch, fe, other_be, other_drive, None).await,
        Err(CatalogError::Conflict { .. })
    ));
    cat.register_pair(fe, be).await.unwrap();
    cat.register_pair(fe, other_be).await.unwrap();
    assert!(matches!(
        cat.assign_channel(ch, fe, be, other_drive, None).await,
        Err(CatalogError::Conflict { .. })
    ));
    cat.assign_channel(ch, fe, be, drive, None).await.unwrap();

    use ChannelState::*;
    let walk = [
        (Opened, "pair fe1/be1 on drive0"),
        (BeginningOfTape, "tape CH0001 mounted"),
        (Writing, "labels written"),
        (EndOfTape, "end of medium"),
        (BeginningOfTape, "next tape mounted"),
        (Writing, "labels written"),
        (Closed, "ABS complete"),
    ];
    for (i, (to, why)) in walk.iter().enumerate() {
        if i == 1 {
            cat.set_channel_tape(ch, Some(tape.id)).await.unwrap();
        }
        assert_eq!(cat.transition(ch, *to, why, "station").await.unwrap(), *to);
        let row = cat.channel(ch).await.unwrap().unwrap();
        assert_eq!((row.state, row.reason.as_str()), (*to, *why));
    }
    cat.set_channel_bytes(ch, 1 << 20).await.unwrap();
    let row = cat.channel(ch).await.unwrap().unwrap();
    assert_eq!(
        (
            row.fe_name.as_deref(),
            row.be_name.as_deref(),
            row.drive_name.as_deref(),
            row.tape_label.as_deref()
        ),
        (Some("fe1"), Some("be1"), Some("drive0"), Some("CH0001"))
    );
    assert_eq!(row.bytes, 1 << 20);
    assert!(row.updated >= row.created);

    let history = cat.channel_history(ch).await.unwrap();
    assert_eq!(history.len(), 1 + walk.len());
    assert_eq!((history[0].from_state, history[0].to_state), (None, Requested));
    assert_eq!(history[0].actor, "smapp");
    let mut from = Requested;
    for (h, (to, why)) in history[1..].iter().zip(walk.iter()) {
        assert_eq!(
            (h.from_state, h.to_state, h.reason.as_str(), h.actor.as_str()),
            (Some(from), *to, *why, "station")
        );
        from = *to;
    }
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));

    // Terminal: nothing leaves Closed, not even Error.
    for &to in ChannelState::ALL {
        assert!(matches!(
            cat.transition(ch, to, "x", "t").await,
            Err(CatalogError::IllegalTransition { .. })
        ));
    }
    assert!(matches!(
        cat.assign_channel(ch, fe, be, drive, None).await,
        Err(CatalogError::Conflict { .. })
    ));
    assert_eq!(cat.channel_history(ch).await.unwrap().len(), 1 + walk.len());
    assert!(matches!(
        cat.transition(ChannelId::new(4242), Opened, "x", "t").await,
        Err(CatalogError::NotFound { .. })
    ));

    // A restore channel never writes.
    cat.record_segment(&seg(abs, 0, tape.id, 1)).await.unwrap();
    cat.complete_abs(abs, 983_040, 15, 1).await.unwrap();
    let r = cat.create_channel(ChannelKind::Restore, abs, "smapp").await.unwrap();
    cat.transition(r, Opened, "o", "t").await.unwrap();
    cat.transition(r, BeginningOfTape, "b", "t").await.unwrap();
    assert!(matches!(
        cat.transition(r, Writing, "w", "t").await,
        Err(CatalogError::IllegalTransition { .. })
    ));
    cat.transition(r, Reading, "r", "t").await.unwrap();
    cat.transition(r, Error, "checksum mismatch in tape CH0001 file 1 segment 0", "be1")
        .await
        .unwrap();
    let r_row = cat.channel(r).await.unwrap().unwrap();
    assert_eq!((r_row.kind, r_row.state), (ChannelKind::Restore, Error));
    assert_eq!(
        cat.list_channels()
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [ch, r]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transitions_apply_once() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let (_, abs) = cat
        .create_abs("/obj", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    let ch = cat.create_channel(ChannelKind::Backup, abs, "t").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let cat = cat.clone();
            tokio::spawn(async move { cat.transition(ch, ChannelState::Opened, &format!("try {i}"), "t").await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CatalogError::IllegalTransition {
                from: ChannelState::Opened,
                ..
            }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(cat.channel_history(ch).await.unwrap().len(), 2);
}

#[tokio::test]
async fn failing_a_mover_fails_its_open_channels() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let fe = cat.register_mover("fe1", MoverRole::FrontEnd, "f").await.unwrap();
    let be = cat.register_mover("be1", MoverRole::BackEnd, "b").await.unwrap();
    let fe2 = cat.register_mover("fe2", MoverRole::FrontEnd, "f2").await.unwrap();
    cat.register_pair(fe, be).await.unwrap();
    cat.register_pair(fe2, be).await.unwrap();
    let drive = cat.register_drive(be, "d0").await.unwrap();

    let mut chans = Vec::new();
    for (i, f) in [fe, fe, fe, fe2].into_iter().enumerate() {
        let (_, abs) = cat
            .create_abs(&format!("/o{i}"), pn, Level::Full, None, &sample_map(), "default")
            .await
            .unwrap();
        let ch = cat.create_channel(ChannelKind::Backup, abs, "t").await.unwrap();
        cat.assign_channel(ch, f, be, drive, None).await.unwrap();
        chans.push(ch);
    }
    let unassigned = {
        let (_, abs) = cat
            .create_abs("/o9", pn, Level::Full, None, &sample_map(), "default")
            .await
            .unwrap();
        cat.create_channel(ChannelKind::Backup, abs, "t").await.unwrap()
    };
    // chans[0] writing, chans[1] closed, chans[2] requested, chans[3] on fe2.
    for to in [
        ChannelState::Opened,
        ChannelState::BeginningOfTape,
        ChannelState::Writing,
    ] {
        cat.transition(chans[0], to, "go", "t").await.unwrap();
        cat.transition(chans[1], to, "go", "t").await.unwrap();
    }
    cat.transition(chans[1], ChannelState::Closed, "done", "t")
        .await
        .unwrap();

    let failed = cat
        .fail_open_channels_of_mover(fe, "mover fe1 stopped answering")
        .await
        .unwrap();
    assert_eq!(failed, vec![chans[0], chans[2]]);
    for &ch in &failed {
        let row = cat.channel(ch).await.unwrap().unwrap();
        assert_eq!(
            (row.state, row.reason.as_str()),
            (ChannelState::Error, "mover fe1 stopped answering")
        );
        let last = cat.channel_history(ch).await.unwrap().pop().unwrap();
        assert_eq!(
            (last.to_state, last.actor.as_str()),
            (ChannelState::Error, "control-station")
        );
    }
    assert_eq!(
        cat.channel(chans[1]).await.unwrap().unwrap().state,
        ChannelState::Closed
    );
    assert_eq!(
        cat.channel(chans[3]).await.unwrap().unwrap().state,
        ChannelState::Requested
    );
    assert_eq!(
        cat.channel(unassigned).await.unwrap().unwrap().state,
        ChannelState::Requested
    );
    assert!(cat.fail_open_channels_of_mover(fe, "again").await.unwrap().is_empty());
    // The back-end is shared: failing it takes the rest.
    assert_eq!(
        cat.fail_open_channels_of_mover(be, "be1 lost").await.unwrap(),
        vec![chans[3]]
    );
}

#[tokio::test]
async fn migrations_are_idempotent_across_connections() {
    let db = TestDb::new().await;
    let a = catalog(&db).await;
    let b = catalog(&db).await;
    b.migrate().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert!(n >= 1);
}

#[tokio::test]
async fn chains_keep_epochs_changed_tracks_and_merges() {
    use control_station::catalog::CapturedEpoch;
    use proto::abs::{TrackRun, TrackSet};
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let map = sample_map();
    assert!(
        cat.chain_members("pn1", "/db").await.unwrap().is_none(),
        "never backed up"
    );

    // A full and its snapshot: epochs (a map id above i64::MAX survives).
    let (_, full) = cat
        .create_abs("/db", pn, Level::Full, None, &map, "default")
        .await
        .unwrap();
    let epochs = [
        CapturedEpoch {
            volume_index: 0,
            map_id: MapId::new(u64::MAX - 5),
            epoch: 7,
        },
        CapturedEpoch {
            volume_index: 1,
            map_id: MapId::new(42),
            epoch: u32::MAX,
        },
    ];
    let at_full = cat.record_snapshot(full, &epochs, None).await.unwrap();
    assert_eq!(cat.abs_epochs(full).await.unwrap(), epochs);
    assert_eq!(
        cat.changed_tracks(full).await.unwrap(),
        None,
        "a full has no changed set"
    );
    // Only complete ABSs are chain members.
    let (_, members) = cat.chain_members("pn1", "/db").await.unwrap().unwrap();
    assert!(members.is_empty());
    cat.complete_abs(full, 0, 0, 0).await.unwrap();

    // An incremental records the tracks it holds.
    let (_, inc) = cat
        .create_abs("/db", pn, Level::Incremental, Some(full), &map, "default")
        .await
        .unwrap();
    let changed = TrackSet::from_runs([
        TrackRun {
            volume: 0,
            first: 0,
            count: 2,
        },
        TrackRun {
            volume: 1,
            first: 9,
            count: 1,
        },
    ]);
    let at_inc = cat.record_snapshot(inc, &epochs[..1], Some(&changed)).await.unwrap();
    assert!(at_inc >= at_full);
    assert_eq!(cat.changed_tracks(inc).await.unwrap(), Some(changed));
    assert!(
        cat.record_snapshot(inc, &epochs[..1], None).await.is_err(),
        "a snapshot is recorded once per volume"
    );
    // A synthetic full of a running chain tip is refused; of a complete one
    // it takes the tip's point in time and epochs.
    assert!(matches!(
        cat.create_synthetic_abs(inc).await,
        Err(CatalogError::Conflict { .. })
    ));
    cat.complete_abs(inc, 0, 0, 0).await.unwrap();
    let (_, syn) = cat.create_synthetic_abs(inc).await.unwrap();
    let row = cat.load_abs(syn).await.unwrap().unwrap();
    assert_eq!(
        (row.kind, row.level, row.base_abs_id, row.merged_from_abs_id),
        (AbsKind::Full, Level::Synthetic, None, Some(inc))
    );
    assert_eq!(row.point_in_time, at_inc);
    assert_eq!(row.map, map);
    assert_eq!(cat.abs_epochs(syn).await.unwrap(), epochs[..1]);
    cat.complete_abs(syn, 0, 0, 0).await.unwrap();
    let (_, members) = cat.chain_members("pn1", "/db").await.unwrap().unwrap();
    let levels: Vec<(AbsId, Level, Option<AbsId>)> = members.iter().map(|m| (m.id, m.level, m.base_abs_id)).collect();
    assert_eq!(
        levels,
        vec![
            (full, Level::Full, None),
            (inc, Level::Incremental, Some(full)),
            (syn, Level::Synthetic, None)
        ]
    );
    // Levels are checked.
    assert!(matches!(
        cat.create_abs("/db", pn, Level::Cumulative, None, &map, "default")
            .await,
        Err(CatalogError::Invalid { .. })
    ));
    assert!(matches!(
        cat.create_abs("/db", pn, Level::Synthetic, None, &map, "default").await,
        Err(CatalogError::Invalid { .. })
    ));
}

/// A tape used again starts a media set of its own: never the id of a
/// media set another tape still carries (it went on there before the tape
/// was emptied).
#[tokio::test]
async fn a_reused_tape_gets_a_fresh_media_set() {
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let first = cat.create_tape("R1", "default", "/lib/R1.tap").await.unwrap();
    let second = cat.create_tape("R2", "default", "/lib/R2.tap").await.unwrap();
    // A never-used tape names its media set after itself.
    let set = cat.fresh_media_set(first.id).await.unwrap();
    assert_eq!(set, MediaSetId::new(first.id.get()));
    cat.set_tape_media_set(first.id, set, 1).await.unwrap();
    cat.set_tape_media_set(second.id, set, 2).await.unwrap();
    // R1 emptied and back to scratch (what recycling does), R2 still
    // carries volume 2 of that media set.
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::query("UPDATE tapes SET media_set = NULL, media_set_seq = NULL WHERE id = $1")
        .bind(first.id.to_i64().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    let again = cat.fresh_media_set(first.id).await.unwrap();
    assert_ne!(again, set, "the media set R2 continues is not started again");
    let third = cat.create_tape("R3", "default", "/lib/R3.tap").await.unwrap();
    assert!(third.id.get() > again.get(), "and no later tape names one like it");
    cat.set_tape_media_set(first.id, again, 1).await.unwrap();
    pool.close().await;
}

/// Issue 16: a channel entering error raises its notification in the
/// catalog itself, once; the station's own notifications are one per key
/// while open, again once acknowledged; deliveries are recorded; the
/// console reads channels with their transitions.
#[tokio::test]
async fn notifications_are_raised_once_while_open() {
    use proto::domain::NotificationKind;
    let db = TestDb::new().await;
    let cat = catalog(&db).await;
    let pn = node(&cat).await;
    let (_, abs) = cat
        .create_abs("/db/orders", pn, Level::Full, None, &sample_map(), "default")
        .await
        .unwrap();
    let ch = cat.create_channel(ChannelKind::Backup, abs, "client").await.unwrap();
    cat.transition(ch, ChannelState::Opened, "assigned", "station")
        .await
        .unwrap();
    assert!(
        cat.notifications(10).await.unwrap().is_empty(),
        "no error, no notification"
    );
    cat.transition(ch, ChannelState::Error, "pn1 stopped answering", "station")
        .await
        .unwrap();
    let open = cat.notifications(10).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, NotificationKind::ChannelError);
    assert_eq!(open[0].channel_id, Some(ch));
    assert_eq!(open[0].message, "pn1 stopped answering");
    assert_eq!(open[0].subject, format!("channel {ch}"));
    assert!(open[0].delivered.is_none() && open[0].attempts == 0);

    // The console's view of the channel: its object and every transition.
    let rows = cat.console_channels(10, None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id, rows[0].state), (ch, ChannelState::Error));
    assert_eq!(rows[0].object_name, "/db/orders");
    let ts = cat.transitions_of(&[ch]).await.unwrap();
    let to: Vec<_> = ts.iter().map(|t| t.to_state).collect();
    assert_eq!(to, [ChannelState::Requested, ChannelState::Opened, ChannelState::Error]);
    let t = cat.live_transition(ts[2].id).await.unwrap().unwrap();
    assert_eq!((t.channel_id, t.abs_id, t.to_state), (ch, abs, ChannelState::Error));

    // The station's: one per key while open.
    let key = "tape_needed:DM0009";
    let first = cat
        .raise_notification(key, NotificationKind::TapeNeeded, "tape DM0009", "exported", None)
        .await
        .unwrap();
    assert!(first.is_some());
    let again = cat
        .raise_notification(key, NotificationKind::TapeNeeded, "tape DM0009", "exported", None)
        .await
        .unwrap();
    assert!(again.is_none(), "still open: not raised twice");
    let id = first.unwrap().id;
    assert!(cat.acknowledge_notification(id, "alice").await.unwrap());
    assert!(
        !cat.acknowledge_notification(id, "bob").await.unwrap(),
        "acknowledged once"
    );
    let n = cat.notification(id).await.unwrap().unwrap();
    assert_eq!(n.acknowledged_by.as_deref(), Some("alice"));
    let after = cat
        .raise_notification(key, NotificationKind::TapeNeeded, "tape DM0009", "exported", None)
        .await
        .unwrap();
    assert!(
        after.is_some_and(|n| n.id != id),
        "needed again after it was acknowledged"
    );

    // Deliveries: a failure is counted and kept for a retry, success ends it.
    let undelivered = cat.undelivered_notifications(10).await.unwrap();
    assert_eq!(undelivered.len(), 3);
    let e = undelivered[0].id;
    cat.record_delivery(e, Some("HTTP 503")).await.unwrap();
    let n = cat.notification(e).await.unwrap().unwrap();
    assert_eq!(
        (n.attempts, n.last_error.as_deref(), n.delivered),
        (1, Some("HTTP 503"), None)
    );
    cat.record_delivery(e, None).await.unwrap();
    let n = cat.notification(e).await.unwrap().unwrap();
    assert!(n.delivered.is_some() && n.attempts == 2 && n.last_error.is_none());
    assert_eq!(cat.undelivered_notifications(10).await.unwrap().len(), 2);
    // Listed: the open ones and the newest acknowledged, newest first.
    let listed: Vec<i64> = cat.notifications(10).await.unwrap().iter().map(|n| n.id).collect();
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, sorted);
    assert_eq!(listed.len(), 3);
    assert_eq!(
        cat.notifications(0).await.unwrap().len(),
        2,
        "acknowledged ones beyond the limit are left out"
    );
}
