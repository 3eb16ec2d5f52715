//! Several channels through one back-end onto one drive at the same time
//! (seed FIG. 33): their segments interleave on one tape and each ABS
//! restores byte-identical. Restoring one ABS from the tape it shares with
//! seven others reads only its own records: the labels and node header,
//! then straight to its own tape files.

use std::process::Command;

use dmc_tests::cluster::{bin_dir, Cluster};
use dmc_tests::scenario::{self, ScenarioSpec};
use proto::tape::block::SimhTape;
use proto::tape::volume::TapeReader;

const OBJECTS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_backups_interleave_on_one_drive_and_each_restores() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 8 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 5,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cluster = Cluster::start(work.path(), &scenario::cluster_spec(&layout, &spec))
        .await
        .unwrap();

    let objects = scenario::scatter_objects(&layout, work.path(), spec.object_size, OBJECTS, 100).unwrap();
    let results = scenario::backup_concurrently(&cluster, &objects).unwrap();
    let tapes: Vec<String> = results
        .iter()
        .map(|r| r["tapes"][0].as_str().unwrap().to_string())
        .collect();
    assert!(tapes.iter().all(|t| t == &tapes[0]), "one drive, one tape: {tapes:?}");

    // The tape holds the four ABSs' segments interleaved.
    let order: Vec<u64> = cluster
        .tape_inspect(&tapes[0])
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "segment")
        .filter_map(|f| f["abs_id"].as_u64())
        .collect();
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > OBJECTS,
        "segments of different ABSs interleave ({switches} switches): {order:?}"
    );
    let image = cluster.library.join(format!("{}.tap", tapes[0]));
    let verify = Command::new(bin_dir().unwrap().join("smapp"))
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

    // Records the tape holds, per file (from `tape inspect`).
    let files = cluster.tape_inspect(&tapes[0]).unwrap();
    let total_records: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    let head_records = TapeReader::open(SimhTape::open(&image).unwrap())
        .unwrap()
        .records_read();

    for (i, (r, o)) in results.iter().zip(&objects).enumerate() {
        let abs_id = r["abs_id"].as_u64().unwrap();
        let dest = cluster.restored(&format!("restored{i}.bin"));
        scenario::restore_and_verify(&cluster, &layout, abs_id, &o.extents, &dest).unwrap();

        // The restore channel says how many records it read.
        let chans = cluster.smapp(&["channels"]).unwrap();
        let restore = chans
            .iter()
            .filter(|c| c["kind"] == "restore")
            .max_by_key(|c| c["channel_id"].as_u64().unwrap())
            .unwrap();
        let reason = restore["reason"].as_str().unwrap();
        let read: u64 = reason
            .split('(')
            .nth(1)
            .and_then(|x| x.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no record count in {reason:?}"));
        let own: u64 = files
            .iter()
            .filter(|f| f["kind"] == "segment" && f["abs_id"].as_u64() == Some(abs_id))
            .map(|f| f["records"].as_u64().unwrap())
            .sum();
        assert_eq!(
            read,
            head_records + own,
            "ABS {abs_id}: the restore read the labels ({head_records} records) and its own segments ({own}), \
             nothing of the other ABSs (the tape has {total_records})"
        );
    }
    cluster.stop();
}
