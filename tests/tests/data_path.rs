//! The two data paths between a front-end and its back-end (seed FIG. 27,
//! 32): through the spool directory they share (a pair on one machine,
//! proved by a token), or over QUIC (a pair on two machines). Each backs up
//! and restores a scattered object byte-identical, says in the channel's
//! history which path it used, and leaves nothing of a finished ABS in any
//! spool. A back-end killed while it copies a segment from the shared spool
//! to tape loses nothing: the segment is still in the spool, the channel
//! fails with a reason, and once the back-end is back the rerun succeeds.

use std::path::Path;
use std::time::{Duration, Instant};

use dmc_tests::cluster::{Cluster, PRIMARY};
use dmc_tests::scenario::{self, Layout, ScenarioSpec};

fn spec(seed: u64) -> ScenarioSpec {
    ScenarioSpec {
        object_size: 48 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 4 << 20,
        seed,
    }
}

/// The notes (not state changes) in the history of `channel`.
fn notes(cluster: &Cluster, channel: u64) -> Vec<String> {
    let hist = cluster.smapp(&["channels", &channel.to_string()]).unwrap();
    hist[0]["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["from"] == t["to"])
        .filter_map(|t| t["reason"].as_str().map(String::from))
        .collect()
}

/// What a spool directory holds besides its reusable slots.
fn spool_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("slots-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Back up the layout's object, restore it into a file, verify it; returns
/// the backup's and the restore's channel ids.
fn backup_and_restore(cluster: &Cluster, layout: &Layout, dest: &Path) -> (u64, u64) {
    let before = cluster.smapp(&["channels"]).unwrap().len() as u64;
    let b = scenario::backup(cluster, layout).unwrap();
    scenario::restore_to_file(cluster, b.abs_id, dest).unwrap();
    scenario::verify_file(layout, dest).unwrap();
    (before + 1, before + 2)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pair_on_two_machines_sends_segments_over_quic() {
    let work = tempfile::tempdir().unwrap();
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec(31)).unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec(31));
    cspec.shared_spool = false;
    let cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let (backup, restore) = backup_and_restore(&cluster, &layout, &cluster.restored("restored.bin"));
    for ch in [backup, restore] {
        let n = notes(&cluster, ch);
        assert!(
            n.len() == 1 && n[0].starts_with("data path: QUIC") && n[0].contains("not the same directory"),
            "channel {ch}: {n:?}"
        );
    }
    for spool in ["spool-fe1", "spool-be1"] {
        let left = spool_leftovers(&work.path().join(spool));
        assert!(left.is_empty() || left == ["incoming"], "{spool} holds {left:?}");
        let incoming = work.path().join(spool).join("incoming");
        assert!(spool_leftovers(&incoming).is_empty(), "{spool}/incoming");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pair_on_one_machine_shares_its_spool_and_leaves_it_empty() {
    let work = tempfile::tempdir().unwrap();
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec(32)).unwrap();
    let cluster = Cluster::start(work.path(), &scenario::cluster_spec(&layout, &spec(32)))
        .await
        .unwrap();
    for round in 0..2 {
        let (backup, restore) =
            backup_and_restore(&cluster, &layout, &cluster.restored(&format!("restored{round}.bin")));
        for ch in [backup, restore] {
            let n = notes(&cluster, ch);
            assert!(
                n.len() == 1 && n[0].starts_with("data path: shared spool"),
                "channel {ch}: {n:?}"
            );
        }
        // Nothing of the finished ABS or of its restore stays in the spool.
        let left = spool_leftovers(&work.path().join("spool-fe1"));
        assert!(left.is_empty(), "round {round}: the spool holds {left:?}");
    }
    // The back-end never had a spool of its own.
    assert!(!work.path().join("spool-be1").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_back_end_killed_while_it_copies_from_the_spool_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec(33)).unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec(33));
    // A slow drive: each 4 MiB segment takes about a second to copy.
    cspec.drive_speed = 4.0;
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let spool = work.path().join("spool-fe1");

    // A first backup completes: it must still restore afterwards.
    let small = scenario::scatter_objects(&layout, work.path(), 6 << 20, 1, 5)
        .unwrap()
        .remove(0);
    let small_file = small.file.to_string_lossy().to_string();
    let out = cluster
        .smapp(&[
            "backup",
            "--primary",
            PRIMARY,
            "--object",
            "first",
            "--extents",
            &small_file,
        ])
        .unwrap();
    let first_abs = out.last().unwrap()["abs_id"].as_u64().unwrap();

    let extents = layout.extents_file.to_string_lossy().to_string();
    let args = [
        "backup",
        "--primary",
        PRIMARY,
        "--object",
        "victim",
        "--extents",
        extents.as_str(),
    ];
    let (failed, gone, cataloged) = std::thread::scope(|s| {
        let backup = s.spawn(|| cluster.smapp_as("client", &args).unwrap());
        // Once a segment of the victim is on tape and the next one is
        // sealed in the spool, the drive is copying it (the spool only
        // holds segments not yet on tape): kill the back-end.
        let victim_dir = spool.join(format!("abs-{}", first_abs + 1));
        let start = Instant::now();
        let sealed = loop {
            let placed = cluster
                .smapp(&["list", "segments", "--abs", &(first_abs + 1).to_string()])
                .unwrap_or_default()
                .len();
            let sealed: Vec<String> = std::fs::read_dir(&victim_dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".sealed"))
                        .collect()
                })
                .unwrap_or_default();
            if placed >= 1 && !sealed.is_empty() {
                break sealed;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no segment was being copied");
            std::thread::sleep(Duration::from_millis(10));
        };
        let pid = cluster.procs.iter().find(|p| p.name == "be1").unwrap().child.id();
        let st = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        // Every sealed segment seen is still in the spool, unless the
        // back-end finished it before the kill landed: then the catalog
        // holds it (the spool deletes only what the catalog has).
        let gone: Vec<String> = sealed.into_iter().filter(|n| !victim_dir.join(n).exists()).collect();
        let cataloged: Vec<u64> = cluster
            .smapp(&["list", "segments", "--abs", &(first_abs + 1).to_string()])
            .unwrap()
            .iter()
            .filter_map(|s| s["seq"].as_u64())
            .collect();
        (backup.join().unwrap(), gone, cataloged)
    });
    for name in &gone {
        let seq: u64 = name
            .trim_start_matches("seg-")
            .trim_end_matches(".sealed")
            .parse()
            .unwrap();
        assert!(
            cataloged.contains(&seq),
            "the spool lost {name}, which is not in the catalog ({cataloged:?})"
        );
    }
    assert!(
        !failed.status.success(),
        "the backup cannot finish without its back-end"
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    // The message is what the person reads to find the failed process:
    // it names the back-end (that the backup failed is its exit status,
    // checked above).
    assert!(err.contains("be1"), "the error names the back-end: {err}");
    let chans = cluster.smapp(&["channels"]).unwrap();
    let ch = chans.iter().find(|c| c["abs_id"] == first_abs + 1).unwrap();
    assert_eq!(ch["state"], "error", "{ch}");

    // The back-end comes back: the rerun succeeds, the first ABS and the
    // rerun restore byte-identical.
    cluster.restart_mover("be1", Duration::from_secs(30)).unwrap();
    let out = cluster.smapp(&args).unwrap();
    let rerun = out.last().unwrap()["abs_id"].as_u64().unwrap();
    scenario::restore_and_verify(
        &cluster,
        &layout,
        first_abs,
        &small.extents,
        &cluster.restored("first.bin"),
    )
    .unwrap();
    scenario::restore_and_verify(
        &cluster,
        &layout,
        rerun,
        &layout.extents,
        &cluster.restored("rerun.bin"),
    )
    .unwrap();
    let left = spool_leftovers(&spool);
    assert!(left.is_empty(), "the spool holds {left:?}");
    cluster.stop();
}
