//! Parallel backup and parallel restore of one ABS (seed, text after
//! FIG. 33): a backup with `--drives 4` splits the ABS's segments over four
//! drives and tapes, with its metadata on the tape of its last segment; the
//! ABS restores byte-identical with 1, 2 and 4 drives, each drive its own
//! restore channel, each tape mounted once.

use std::collections::{BTreeMap, BTreeSet};

use dmc_tests::cluster::Cluster;
use dmc_tests::scenario::{self, ScenarioSpec};

#[tokio::test(flavor = "multi_thread")]
async fn one_abs_over_four_drives_restores_with_one_two_and_four() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 24 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 23,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.drives_per_pair = vec![4];
    cspec.mount_seconds = 0.1;
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();

    let object = scenario::scatter_objects(&layout, work.path(), spec.object_size, 1, 70)
        .unwrap()
        .remove(0);
    let extents = object.file.to_string_lossy().to_string();
    let out = cluster
        .smapp(&[
            "backup",
            "--primary",
            dmc_tests::cluster::PRIMARY,
            "--object",
            &object.name,
            "--extents",
            &extents,
            "--drives",
            "4",
        ])
        .unwrap();
    let result = out.last().unwrap();
    let abs_id = result["abs_id"].as_u64().unwrap();

    // Four tapes, each with a share of the segments; together 0..n once.
    let segs = cluster
        .smapp(&["list", "segments", "--abs", &abs_id.to_string()])
        .unwrap();
    let mut by_tape: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in &segs {
        by_tape
            .entry(s["tape"].as_str().unwrap().to_string())
            .or_default()
            .push(s["seq"].as_u64().unwrap());
    }
    assert_eq!(by_tape.len(), 4, "segments split over four tapes: {by_tape:?}");
    assert!(
        by_tape.values().all(|v| v.len() >= 2),
        "every drive took a share: {by_tape:?}"
    );
    let all: BTreeSet<u64> = by_tape.values().flatten().copied().collect();
    assert_eq!(all.len(), segs.len(), "no segment twice");
    assert_eq!(all, (0..segs.len() as u64).collect(), "no segment missing");

    // The metadata is on the tape of the last segment.
    let last = segs.iter().max_by_key(|s| s["seq"].as_u64().unwrap()).unwrap();
    let last_tape = last["tape"].as_str().unwrap();
    let meta_files: Vec<String> = by_tape
        .keys()
        .filter(|t| {
            cluster
                .tape_inspect(t)
                .unwrap()
                .iter()
                .any(|f| f["kind"] == "abs-metadata" && f["abs_id"].as_u64() == Some(abs_id))
        })
        .cloned()
        .collect();
    assert_eq!(meta_files, vec![last_tape.to_string()], "metadata on the last tape");

    for drives in [1u64, 2, 4] {
        let before: Vec<u64> = restore_channels(&cluster)
            .iter()
            .map(|c| c["channel_id"].as_u64().unwrap())
            .collect();
        let dest = cluster.restored(&format!("restored-{drives}.bin"));
        let r = scenario::restore_and_verify_with(
            &cluster,
            &layout,
            abs_id,
            &object.extents,
            &dest,
            &["--drives", &drives.to_string()],
        )
        .unwrap();
        let new: Vec<serde_json::Value> = restore_channels(&cluster)
            .into_iter()
            .filter(|c| !before.contains(&c["channel_id"].as_u64().unwrap()))
            .collect();
        assert_eq!(new.len() as u64, drives, "one restore channel per drive: {new:?}");
        assert!(new.iter().all(|c| c["state"] == "closed"), "{new:?}");
        let used: BTreeSet<&str> = new.iter().map(|c| c["drive"].as_str().unwrap()).collect();
        assert_eq!(used.len() as u64, drives, "each channel on its own drive: {new:?}");
        let mut tapes: Vec<&str> = r["tapes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        tapes.sort();
        let want: Vec<&str> = by_tape.keys().map(String::as_str).collect();
        assert_eq!(tapes, want, "each tape read once");
    }
    cluster.stop();
}

fn restore_channels(cluster: &Cluster) -> Vec<serde_json::Value> {
    cluster
        .smapp(&["channels"])
        .unwrap()
        .into_iter()
        .filter(|c| c["kind"] == "restore")
        .collect()
}
