//! Several channels through one back-end onto one drive at the same time
//! (seed FIG. 33): their segments interleave on one tape, each ABS restores
//! byte-identical, and a restore reads only its own segments.

use std::process::Command;

use dmc_tests::cluster::{bin_dir, Cluster, PRIMARY};
use dmc_tests::fixture;
use dmc_tests::scenario::{self, ScenarioSpec};

const OBJECTS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_backups_interleave_on_one_drive_and_each_restores() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 24 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 5,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cluster = Cluster::start(work.path(), &scenario::cluster_spec(&layout, &spec))
        .await
        .unwrap();

    // Four different objects scattered over the same volumes (they may share tracks).
    let src: Vec<(String, u64)> = ["vol0", "vol1"]
        .iter()
        .map(|v| (v.to_string(), std::fs::metadata(layout.path_of(v)).unwrap().len()))
        .collect();
    let objects: Vec<_> = (0..OBJECTS)
        .map(|i| {
            let ex = fixture::scatter(&src, 4096, spec.object_size, 40, 100 + i as u64).unwrap();
            let f = work.path().join(format!("object{i}.extents"));
            let text: String = ex
                .iter()
                .map(|e| format!("{} {} {}\n", e.volume, e.offset, e.length))
                .collect();
            std::fs::write(&f, text).unwrap();
            (ex, f)
        })
        .collect();

    let results: Vec<Vec<serde_json::Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = objects
            .iter()
            .enumerate()
            .map(|(i, (_, f))| {
                let cluster = &cluster;
                s.spawn(move || {
                    let name = format!("object{i}");
                    let file = f.to_string_lossy().to_string();
                    cluster.smapp(&["backup", "--primary", PRIMARY, "--object", &name, "--extents", &file])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    let abs_ids: Vec<u64> = results
        .iter()
        .map(|r| r.last().unwrap()["abs_id"].as_u64().unwrap())
        .collect();
    let tapes: Vec<String> = results
        .iter()
        .map(|r| r.last().unwrap()["tapes"][0].as_str().unwrap().to_string())
        .collect();
    assert!(tapes.iter().all(|t| t == &tapes[0]), "one drive, one tape: {tapes:?}");

    // The tape holds the four ABSs' segments interleaved.
    let image = cluster.library.join(format!("{}.tap", tapes[0]));
    let smapp = bin_dir().unwrap().join("smapp");
    let out = Command::new(&smapp)
        .args(["--json", "tape", "inspect"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success());
    let order: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|f| f["kind"] == "segment")
        .filter_map(|f| f["abs_id"].as_u64())
        .collect();
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > OBJECTS,
        "segments of different ABSs interleave ({switches} switches): {order:?}"
    );
    let verify = Command::new(&smapp)
        .args(["tape", "verify"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    // Channels that joined the mounted tape say so in their history.
    let joined = (1..=OBJECTS as u64)
        .filter(|id| {
            let h = cluster.smapp(&["channels", &id.to_string()]).unwrap();
            h[0]["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["reason"].as_str().unwrap().contains("interleaving"))
        })
        .count();
    assert_eq!(
        joined,
        OBJECTS - 1,
        "one channel mounted the tape, the others joined it"
    );

    // Every ABS restores byte-identical.
    for (i, abs) in abs_ids.iter().enumerate() {
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
