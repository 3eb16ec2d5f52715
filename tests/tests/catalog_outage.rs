//! Postgres going away in the middle of a backup or a restore is an outage, not a
//! corruption: the station reports "catalog unavailable" in its health,
//! keeps hearing its movers and primary node (liveness does not need the
//! database), the job pauses and continues when the database is back, or
//! fails with a reason; nothing is stuck afterwards, a backup completed
//! before restores byte-identical and the same backup runs again.
//!
//! The database is crashed (`pg_ctl stop -m immediate`) and started again;
//! this needs the private server of this test binary (it is skipped, with a
//! line saying so, against an external `DATABASE_URL`).

use std::time::{Duration, Instant};

use dmc_tests::faults::{
    assert_settled, backup_args, outcome, slow_cluster, start_moving, verify_restore, wait_catalog_unavailable,
    wait_until,
};
use dmc_tests::pg::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn a_database_crash_mid_backup_or_restore_is_an_outage_not_a_corruption() {
    let work = tempfile::tempdir().unwrap();
    let (layout, mut cluster) = slow_cluster(work.path(), 12).await;
    if TestDb::cluster_dir().is_none() {
        eprintln!("skipped: DATABASE_URL names an external server, which this test may not crash");
        return;
    }
    let args = backup_args(&layout.extents_file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let baseline = cluster.smapp(&args).unwrap().last().unwrap()["abs_id"]
        .as_u64()
        .unwrap();
    let peers = cluster.boots().unwrap();

    let job = start_moving(&cluster, &args, "writing");
    assert!(TestDb::crash_server(), "crashing the test's Postgres");
    let down = Instant::now();
    wait_catalog_unavailable(&cluster);
    // Longer than the heartbeat timeout (5 s): every process must stay
    // registered with the same start, heard within the last few seconds.
    while down.elapsed() < Duration::from_secs(8) {
        let h = cluster
            .health()
            .expect("the station answers its health while the catalog is down");
        let now = h["peers"].as_array().cloned().unwrap_or_default();
        for (name, boot) in &peers {
            let p = now
                .iter()
                .find(|p| p["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} was dropped during the outage: {h}"));
            assert_eq!(p["boot"].as_u64(), Some(*boot), "{name} had to register again: {h}");
            assert!(p["last_heard_ms"].as_u64().unwrap() < 4000, "{name} not heard: {h}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    TestDb::restart_server();
    wait_until(&cluster, "the catalog to be back", Duration::from_secs(60), |c| {
        c.health().is_ok_and(|h| h["catalog"] == "ok")
    });
    let out = job.join();
    let how = outcome(&out, "database crashed mid-backup");
    assert_settled(&cluster, "database crashed mid-backup");
    verify_restore(&cluster, &layout, baseline, "baseline.bin");
    let rerun = cluster
        .smapp(&args)
        .expect("the backup runs again once the database is back");
    verify_restore(
        &cluster,
        &layout,
        rerun.last().unwrap()["abs_id"].as_u64().unwrap(),
        "rerun.bin",
    );
    eprintln!("database crashed mid-backup: {how}");

    // The same in the middle of a restore into a file.
    let dest = cluster.restored("mid-outage.bin");
    let (to, abs) = (cluster.to_file(&dest), baseline.to_string());
    let job = start_moving(&cluster, &["restore", &abs, "--to-file", &to], "reading");
    assert!(TestDb::crash_server(), "crashing the test's Postgres");
    wait_catalog_unavailable(&cluster);
    TestDb::restart_server();
    let out = job.join();
    let how = outcome(&out, "database crashed mid-restore");
    if out.status.success() {
        let source = dmc_tests::fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
        dmc_tests::fixture::compare(source, std::fs::File::open(&dest).unwrap(), "mid-outage restore").unwrap();
    } else {
        assert!(!dest.exists(), "a failed restore left a file under its name");
    }
    assert_settled(&cluster, "database crashed mid-restore");
    verify_restore(&cluster, &layout, baseline, "after-outage.bin");
    eprintln!("database crashed mid-restore: {how}");
    cluster.stop();
}
