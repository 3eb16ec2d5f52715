//! A front-end killed (SIGKILL) in the middle of a backup and started again
//! with the same arguments: the backup resumes from its spool — segments
//! already on tape stay, sealed ones are written from the spool, the
//! primary node sends only what the spool did not keep — and completes,
//! byte-identical, whether it comes back at once or after the station
//! declared it lost. A front-end that comes back without its spool fails the
//! backup at once with the reason, and nothing is left behind.

use std::time::Duration;

use dmc_tests::cluster::{Cluster, FE};
use dmc_tests::faults::{assert_settled, backup_args, slow_cluster, start_moving, verify_restore, wait_until};

/// Kill the front-end once the backup has segments on tape, let `meddle`
/// touch its spool (or wait), start it again; return the job's output.
fn kill_front_end(
    cluster: &mut Cluster,
    args: &[&str],
    meddle: impl FnOnce(&Cluster, &std::path::Path),
) -> std::process::Output {
    let job = start_moving(cluster, args, "writing");
    let before = cluster.boots().unwrap();
    cluster.kill(FE).unwrap();
    meddle(cluster, &cluster.work.join(format!("spool-{FE}")));
    cluster.restart(FE).unwrap();
    cluster
        .wait_registered(&[FE], &before, Duration::from_secs(60))
        .unwrap();
    job.join()
}

/// The JSON events the client printed on stderr.
fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The ABS directories left in a spool.
fn abs_dirs(spool: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("abs-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_front_end_killed_mid_backup_resumes_from_its_spool() {
    let work = tempfile::tempdir().unwrap();
    let (layout, mut cluster) = slow_cluster(work.path(), 13).await;
    let args = backup_args(&layout.extents_file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let spool = cluster.work.join(format!("spool-{FE}"));

    let mut kept = Vec::new();
    let out = kill_front_end(&mut cluster, &args, |_, spool| kept = abs_dirs(spool));
    assert_eq!(
        kept.len(),
        1,
        "the killed front-end left its ABS in the spool: {kept:?}"
    );
    assert!(
        out.status.success(),
        "the backup did not survive its front-end's restart:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.log_tails()
    );
    let resumed: Vec<_> = events(&out).into_iter().filter(|e| e["event"] == "resumed").collect();
    assert_eq!(resumed.len(), 1, "one resume: {resumed:?}");
    assert_eq!(resumed[0]["front_end"], FE);
    // It was killed once bytes were on tape: those segments were kept.
    assert!(
        resumed[0]["segments_on_tape"].as_u64().unwrap() >= 1,
        "segments on tape before the kill were kept: {resumed:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let abs = result["abs_id"].as_u64().unwrap();
    verify_restore(&cluster, &layout, abs, "resumed.bin");
    assert_settled(&cluster, "front-end killed mid-backup");
    assert!(
        abs_dirs(&spool).is_empty(),
        "the spool is empty after the backup: {:?}",
        abs_dirs(&spool)
    );

    // Without its spool it cannot resume: the backup fails at once, with
    // the reason, and the rerun succeeds.
    // Back only after the station declared it lost (no heartbeat): the
    // backup waited for it, and resumes.
    let out = kill_front_end(&mut cluster, &args, |cluster, _| {
        wait_until(
            cluster,
            "the station to declare fe1 lost",
            Duration::from_secs(30),
            |c| {
                c.health().is_ok_and(|h| {
                    h["peers"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().all(|p| p["name"] != FE))
                })
            },
        )
    });
    assert!(
        out.status.success(),
        "the backup did not wait for its front-end:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.log_tails()
    );
    let resumed = events(&out).into_iter().filter(|e| e["event"] == "resumed").count();
    assert_eq!(resumed, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    verify_restore(&cluster, &layout, result["abs_id"].as_u64().unwrap(), "waited.bin");
    assert_settled(&cluster, "front-end back after it was declared lost");

    let out = kill_front_end(&mut cluster, &args, |_, spool| {
        for d in abs_dirs(spool) {
            std::fs::remove_dir_all(spool.join(d)).unwrap();
        }
    });
    assert!(
        !out.status.success(),
        "a backup whose spool was wiped cannot have completed"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // Running it again may work: the front-end is back.
    assert_eq!(
        out.status.code(),
        Some(i32::from(proto::domain::FailureCode::Retryable.exit_status())),
        "{err}"
    );
    assert!(
        err.contains("without the channel in its spool"),
        "{err}\n{}",
        cluster.log_tails()
    );
    assert_settled(&cluster, "front-end back without its spool");
    let rerun = cluster.smapp(&args).expect("the rerun");
    verify_restore(
        &cluster,
        &layout,
        rerun.last().unwrap()["abs_id"].as_u64().unwrap(),
        "rerun.bin",
    );
    assert!(abs_dirs(&spool).is_empty(), "{:?}", abs_dirs(&spool));
    cluster.stop();
}
