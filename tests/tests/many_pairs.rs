//! Three mover pairs with four drives between them and eight concurrent
//! backups of different objects: the station spreads the channels over the
//! pairs and drives, channels beyond the free drives interleave on tapes
//! already mounted, every ABS restores byte-identical, and the catalog's
//! segment placement matches what `smapp tape inspect` finds on each tape.
//! The tapes are small (12 MiB) so they fill during the test: each full tape
//! ends in EOV labels and verifies, its media set continues on the next tape,
//! and the channels go through EndOfTape; its CATALOG has the management
//! record of every ABS on it, of those that went on on the next tape too.

use std::collections::{BTreeMap, BTreeSet};

use dmc_tests::cluster::Cluster;
use dmc_tests::scenario::{self, ScenarioSpec};

const OBJECTS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn eight_backups_over_three_pairs_and_four_drives() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 16 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 11,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.drives_per_pair = vec![2, 1, 1];
    cspec.tape_capacity = 12 << 20;
    cspec.mount_seconds = 0.2;
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();

    let objects = scenario::scatter_objects(&layout, work.path(), spec.object_size, OBJECTS, 300).unwrap();
    let results = scenario::backup_concurrently(&cluster, &objects).unwrap();

    // Spread: all three pairs and all four drives were used.
    let chans = cluster.smapp(&["channels"]).unwrap();
    let fes: BTreeSet<&str> = chans.iter().map(|c| c["front_end"].as_str().unwrap()).collect();
    let drives: BTreeSet<&str> = chans.iter().map(|c| c["drive"].as_str().unwrap()).collect();
    assert_eq!(fes.len(), 3, "every pair carried channels: {chans:?}");
    assert_eq!(drives.len(), 4, "every drive was used: {chans:?}");

    // The catalog's placement is what each tape holds.
    let segs = cluster.operator(&["list", "segments"]).unwrap();
    let mut by_tape: BTreeMap<String, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for s in &segs {
        by_tape
            .entry(s["tape"].as_str().unwrap().to_string())
            .or_default()
            .push((
                s["tape_file"].as_u64().unwrap(),
                s["abs_id"].as_u64().unwrap(),
                s["seq"].as_u64().unwrap(),
            ));
    }
    for (tape, mut placed) in by_tape {
        let mut found: Vec<(u64, u64, u64)> = cluster
            .tape_inspect(&tape)
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "segment")
            .map(|f| {
                (
                    f["file"].as_u64().unwrap(),
                    f["abs_id"].as_u64().unwrap(),
                    f["seq"].as_u64().unwrap(),
                )
            })
            .collect();
        placed.sort();
        found.sort();
        assert_eq!(placed, found, "catalog vs tape {tape}");
    }

    // Tapes filled and media sets continued, in order.
    let tapes = cluster.operator(&["list", "tapes"]).unwrap();
    let full: Vec<&serde_json::Value> = tapes.iter().filter(|t| t["state"] == "full").collect();
    assert!(full.len() >= 4, "every drive filled at least one tape: {tapes:?}");
    let mut sets: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for t in &tapes {
        sets.entry(t["media_set"].as_u64().unwrap())
            .or_default()
            .push(t["sequence"].as_u64().unwrap());
    }
    for (set, mut seqs) in sets {
        seqs.sort();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, want, "media set {set} has volumes 1..n");
    }
    for t in &full {
        let label = t["label"].as_str().unwrap();
        let files = cluster.tape_inspect(label).unwrap();
        assert!(
            files.iter().any(|f| f["kind"] == "segment"),
            "full tape {label} holds segments"
        );
        let path = cluster.library.join(format!("{label}.tap"));
        let out = std::process::Command::new(dmc_tests::cluster::bin("smapp").unwrap())
            .args(["tape", "verify"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tape verify {label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("EOV"),
            "{label} ends in EOV labels"
        );
    }
    // Each tape's CATALOG has its ABSs' management records, those of
    // ABSs that went on on another tape included.
    let spanning = dmc_tests::records::check_catalog_records(&cluster.library, &tapes, &[]).unwrap();
    assert!(
        spanning >= 1,
        "a full tape's CATALOG has the record of an ABS that went on"
    );
    let switched = chans.iter().filter(|c| {
        let id = c["channel_id"].as_u64().unwrap().to_string();
        cluster.smapp(&["channels", &id]).unwrap()[0]["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["to"] == "end_of_tape")
    });
    assert!(switched.count() >= 1, "some channel went through EndOfTape");

    for (i, (r, o)) in results.iter().zip(&objects).enumerate() {
        let dest = cluster.restored(&format!("restored{i}.bin"));
        scenario::restore_and_verify(&cluster, &layout, r["abs_id"].as_u64().unwrap(), &o.extents, &dest).unwrap();
    }
    cluster.stop();
}
