//! Three mover pairs with four drives between them and eight concurrent
//! backups of different objects: the station spreads the channels over the
//! pairs and drives, channels beyond the free drives interleave on tapes
//! already mounted, every ABS restores byte-identical, and the catalog's
//! segment placement matches what `smapp tape inspect` finds on each tape.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use dmc_tests::cluster::{bin_dir, Cluster, PRIMARY};
use dmc_tests::fixture;
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
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();

    let src: Vec<(String, u64)> = ["vol0", "vol1"]
        .iter()
        .map(|v| (v.to_string(), std::fs::metadata(layout.path_of(v)).unwrap().len()))
        .collect();
    let objects: Vec<_> = (0..OBJECTS)
        .map(|i| {
            let ex = fixture::scatter(&src, 4096, spec.object_size, 40, 300 + i as u64).unwrap();
            let f = work.path().join(format!("object{i}.extents"));
            let text: String = ex
                .iter()
                .map(|e| format!("{} {} {}\n", e.volume, e.offset, e.length))
                .collect();
            std::fs::write(&f, text).unwrap();
            (ex, f)
        })
        .collect();
    let results: Vec<serde_json::Value> = std::thread::scope(|s| {
        let handles: Vec<_> = objects
            .iter()
            .enumerate()
            .map(|(i, (_, f))| {
                let cluster = &cluster;
                s.spawn(move || {
                    let file = f.to_string_lossy().to_string();
                    let name = format!("object{i}");
                    cluster.smapp(&["backup", "--primary", PRIMARY, "--object", &name, "--extents", &file])
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap().pop().unwrap())
            .collect()
    });

    // Spread: all three pairs and all four drives were used.
    let chans = cluster.smapp(&["channels"]).unwrap();
    let fes: BTreeSet<String> = chans
        .iter()
        .map(|c| c["front_end"].as_str().unwrap().to_string())
        .collect();
    let drives: BTreeSet<String> = chans.iter().map(|c| c["drive"].as_str().unwrap().to_string()).collect();
    assert_eq!(fes.len(), 3, "every pair carried channels: {chans:?}");
    assert_eq!(drives.len(), 4, "every drive was used: {chans:?}");

    // The catalog's placement is what each tape holds.
    let segs = cluster.smapp(&["list", "segments"]).unwrap();
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
    let smapp = bin_dir().unwrap().join("smapp");
    for (tape, mut placed) in by_tape {
        let image = cluster.library.join(format!("{tape}.tap"));
        let out = Command::new(&smapp)
            .args(["--json", "tape", "inspect"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut found: Vec<(u64, u64, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
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

    // Every ABS restores byte-identical.
    for (i, r) in results.iter().enumerate() {
        let abs = r["abs_id"].as_u64().unwrap();
        let dest = work.path().join(format!("restored{i}.bin"));
        cluster
            .smapp(&[
                "restore",
                &abs.to_string(),
                "--to-file",
                &format!("{PRIMARY}:{}", dest.display()),
            ])
            .unwrap();
        let source = fixture::ObjectReader::new(|v| layout.path_of(v), &objects[i].0);
        fixture::compare(source, std::fs::File::open(&dest).unwrap(), &format!("object {i}")).unwrap();
    }
    cluster.stop();
}
