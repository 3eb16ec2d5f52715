//! Backups describe themselves (issue 14, seed 002 FIG. 11): the ABS
//! metadata on tape carries a management record — the cluster's and the
//! ABS's UUIDs, who asked, the node, the level, the base and the chain, the
//! point in time, the change-map epochs, the pool, the label text and the
//! placement of every segment — read here from the tape images alone and
//! checked against what the catalog lists.

use dmc_tests::cluster::{Cluster, CLIENT, PRIMARY};
use dmc_tests::scenario::{self, ScenarioSpec};
use proto::domain::Level;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn every_abs_carries_its_management_record_on_tape() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 1312,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let cluster = Cluster::start(work.path(), &scenario::cluster_spec(&layout, &spec))
        .await
        .unwrap();
    let extents = layout.extents_file.to_string_lossy().to_string();
    let backup = |extra: &[&str]| {
        let mut args = vec![
            "backup",
            "--primary",
            PRIMARY,
            "--object",
            "ledger",
            "--extents",
            &extents,
        ];
        args.extend_from_slice(extra);
        let out = cluster.smapp(&args).unwrap();
        out.last().unwrap()["abs_id"].as_u64().unwrap()
    };
    // Two fulls (the chain test checks a differential's record: its base
    // and chain).
    let full = backup(&["--label", "ledger weekly"]);
    let inc = backup(&["--label", "ledger nightly"]);
    let too_long = "x".repeat(1025);
    let err = format!(
        "{:#}",
        cluster
            .smapp(&[
                "backup",
                "--primary",
                PRIMARY,
                "--object",
                "ledger",
                "--extents",
                &extents,
                "--label",
                &too_long
            ])
            .unwrap_err()
    );
    assert!(err.contains("--label") && err.contains("1024"), "{err}");

    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    let row = |id: u64| listed.iter().find(|a| a["abs_id"] == id).unwrap().clone();
    let (full_row, inc_row) = (row(full), row(inc));
    assert_eq!(full_row["label"], "ledger weekly");
    assert_eq!(inc_row["label"], "ledger nightly");
    let metas = cluster.abs_metadata_on_tapes().unwrap();
    let meta_of = |id: u64| {
        metas
            .iter()
            .find(|m| m.abs_id == id)
            .unwrap()
            .management
            .clone()
            .unwrap()
    };
    let (mf, mi) = (meta_of(full), meta_of(inc));

    // Whose, what, where in its chain.
    assert_eq!(mf.abs_uuid.to_string(), full_row["uuid"].as_str().unwrap());
    assert_eq!(mi.abs_uuid.to_string(), inc_row["uuid"].as_str().unwrap());
    assert_ne!(mf.abs_uuid, mi.abs_uuid);
    assert_eq!(mf.cluster_id, mi.cluster_id, "one cluster");
    assert!(!mf.cluster_id.is_nil());
    for m in [&mf, &mi] {
        assert_eq!(m.client, CLIENT);
        assert_eq!(m.primary_node, PRIMARY);
        assert_eq!(m.pool, "default");
        assert_eq!(m.copy_number, 0);
    }
    assert_eq!((mf.level, mi.level), (Level::Full, Level::Full));
    assert!(mf.base_uuid.is_nil() && mi.base_uuid.is_nil());
    assert_eq!(mf.chain, vec![full]);
    assert_eq!(mi.chain, vec![inc]);
    assert_eq!(mf.label, "ledger weekly");
    assert_eq!(mi.label, "ledger nightly");
    assert!(mi.point_in_time_ms > mf.point_in_time_ms);
    // The epochs captured: one per volume of the map, on every backup (the
    // next incremental's base point).
    for (m, id) in [(&mf, full), (&mi, inc)] {
        let volumes = metas.iter().find(|x| x.abs_id == id).unwrap().map.volumes.len();
        assert_eq!(m.epochs.len(), volumes, "{m:?}");
    }

    // Where every segment lies, as the catalog lists it.
    for (m, id) in [(&mf, full), (&mi, inc)] {
        let segs = cluster.smapp(&["list", "segments", "--abs", &id.to_string()]).unwrap();
        let listed: Vec<(u64, String, u64, u64, u64)> = segs
            .iter()
            .filter(|s| s["copy"] == false)
            .map(|s: &Value| {
                (
                    s["seq"].as_u64().unwrap(),
                    s["tape"].as_str().unwrap().to_string(),
                    s["tape_file"].as_u64().unwrap(),
                    s["bytes"].as_u64().unwrap(),
                    s["crc32c"].as_u64().unwrap(),
                )
            })
            .collect();
        let placed: Vec<(u64, String, u64, u64, u64)> = m
            .placements
            .iter()
            .map(|p| {
                (
                    u64::from(p.seq),
                    p.tape_label.clone(),
                    u64::from(p.tape_file),
                    p.bytes,
                    u64::from(p.crc32c),
                )
            })
            .collect();
        assert!(!placed.is_empty());
        assert_eq!(placed, listed, "ABS {id}: placements on tape vs the catalog");
    }
}
