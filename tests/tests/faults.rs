//! The fault matrix: each process of the cluster killed (SIGKILL) in the
//! middle of a backup and in the middle of a restore, then started again
//! with the same arguments. For every case:
//! - the job ends (the client returns, with a reason when it failed);
//! - nothing is stuck: no channel left open, no tape left mounted, no ABS
//!   left running, no partial restore file, no file under the restore's
//!   name unless it succeeded (and then byte-identical);
//! - a backup completed before still restores byte-identical;
//! - the same job run again succeeds (and restores byte-identical).
//!
//! Then, after a back-end restarted, several backups at once all succeed
//! (no connection to its earlier start is reused).

use dmc_tests::cluster::{BE, FE, PRIMARY, STATION};
use dmc_tests::faults::{assert_settled, backup_args, kill_mid_job, outcome, slow_cluster, verify_restore};
use dmc_tests::fixture;
use dmc_tests::scenario;

#[tokio::test(flavor = "multi_thread")]
async fn every_process_killed_mid_backup_and_mid_restore() {
    let work = tempfile::tempdir().unwrap();
    let (layout, mut cluster) = slow_cluster(work.path(), 11).await;
    let args = backup_args(&layout.extents_file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // A backup completed before any fault.
    let first = cluster.smapp(&args).unwrap();
    let baseline = first.last().unwrap()["abs_id"].as_u64().unwrap();
    let mut report = Vec::new();

    for victim in [PRIMARY, FE, BE, STATION] {
        let case = format!("{victim} killed mid-backup");
        let out = kill_mid_job(&mut cluster, victim, &args, "writing");
        let how = outcome(&out, &case);
        if victim == FE {
            // It resumes from its spool (see resume.rs).
            assert_eq!(how, "completed", "{case}\n{}", cluster.log_tails());
        }
        assert_settled(&cluster, &case);
        verify_restore(&cluster, &layout, baseline, "baseline.bin");
        let rerun = cluster
            .smapp(&args)
            .unwrap_or_else(|e| panic!("{case}: the rerun failed: {e}"));
        let abs = rerun.last().unwrap()["abs_id"].as_u64().unwrap();
        verify_restore(&cluster, &layout, abs, "rerun.bin");
        report.push(format!("{case}: {how}"));

        let case = format!("{victim} killed mid-restore");
        let name = format!("mid-restore-{victim}.bin");
        let dest = cluster.restored(&name);
        let (to, abs) = (cluster.to_file(&dest), baseline.to_string());
        let out = kill_mid_job(&mut cluster, victim, &["restore", &abs, "--to-file", &to], "reading");
        let how = outcome(&out, &case);
        if out.status.success() {
            let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
            fixture::compare(source, std::fs::File::open(&dest).unwrap(), &case).unwrap();
            std::fs::remove_file(&dest).unwrap();
        } else {
            assert!(!dest.exists(), "{case}: a failed restore left a file under its name");
        }
        assert_settled(&cluster, &case);
        verify_restore(&cluster, &layout, baseline, &name);
        report.push(format!("{case}: {how}"));
    }
    eprintln!("fault matrix:\n  {}", report.join("\n  "));

    // A back-end restarted while idle, then several backups at once: none
    // may use a connection to its earlier start.
    cluster.restart_mover(BE, std::time::Duration::from_secs(60)).unwrap();
    let objects = scenario::scatter_objects(&layout, work.path(), 8 << 20, 4, 31).unwrap();
    let results = scenario::backup_concurrently(&cluster, &objects).expect("every backup after the restart");
    for (o, r) in objects.iter().zip(&results) {
        let abs = r["abs_id"].as_u64().unwrap();
        let dest = cluster.restored(&format!("{}.bin", o.name));
        scenario::restore_and_verify(&cluster, &layout, abs, &o.extents, &dest).unwrap();
    }
    assert_settled(&cluster, "backups after a back-end restart");
    cluster.stop();
}
