//! Contention waits, abandonment cancels:
//! - two restores of ABSs on the same tape, on two free drives: the second
//!   waits for the tape (saying so) instead of failing, and both restore
//!   byte-identical;
//! - a backup waiting for a drive whose client goes away is cancelled (its
//!   channel ends in `error` saying why, its ABS fails, nothing of it
//!   reaches tape), while a `--detach`ed one runs to its end without its
//!   client.

use std::time::Duration;

use dmc_tests::cluster::{Cluster, PRIMARY};
use dmc_tests::faults::{assert_settled, latest_channel, wait_until, Job};
use dmc_tests::fixture;
use dmc_tests::scenario::{self, ScenarioSpec};
use proto::domain::FailureCode;

#[tokio::test(flavor = "multi_thread")]
async fn restores_wait_for_a_busy_tape_and_abandoned_backups_are_cancelled() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 32 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 4 << 20,
        seed: 21,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.drives_per_pair = vec![2];
    // Slow drives: a restore holds its tape for seconds.
    cspec.drive_speed = 6.0;
    let cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let objects = scenario::scatter_objects(&layout, work.path(), 32 << 20, 3, 5).unwrap();
    let backup = |o: &scenario::Object| -> Vec<String> {
        ["backup", "--primary", PRIMARY, "--object", &o.name, "--extents"]
            .iter()
            .map(|s| s.to_string())
            .chain([o.file.to_string_lossy().into_owned()])
            .collect()
    };
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.smapp(&args).unwrap().pop().unwrap()
    };
    // Two ABSs, one after the other: both on the same tape.
    let (a, b) = (run(&backup(&objects[0])), run(&backup(&objects[1])));
    assert_eq!(a["tapes"], b["tapes"], "both ABSs went to one tape: {a} {b}");
    let tape = a["tapes"][0].as_str().unwrap().to_string();

    // Restore A reads the tape on one drive; restore B gets the other
    // drive and waits for the tape.
    let dest = |n: &str| cluster.restored(n);
    let (to_a, to_b) = (cluster.to_file(&dest("a.bin")), cluster.to_file(&dest("b.bin")));
    let (abs_a, abs_b) = (a["abs_id"].to_string(), b["abs_id"].to_string());
    let restore_a = Job::start(&cluster, &["restore", &abs_a, "--to-file", &to_a]);
    wait_until(&cluster, "restore A to read", Duration::from_secs(60), |c| {
        latest_channel(c).is_some_and(|ch| ch["kind"] == "restore" && ch["state"] == "reading")
    });
    let restore_b = Job::start(&cluster, &["restore", &abs_b, "--to-file", &to_b]);
    let channel_b = {
        let mut id = 0;
        wait_until(&cluster, "restore B to get a drive", Duration::from_secs(60), |c| {
            c.operator(&["channels"]).unwrap_or_default().iter().any(|ch| {
                let ok = ch["kind"] == "restore" && ch["state"] == "opened";
                if ok {
                    id = ch["channel_id"].as_u64().unwrap();
                }
                ok
            })
        });
        id
    };

    // Meanwhile both drives are taken: a backup waits for one. Its client
    // goes away (interrupted): the backup is cancelled.
    let q_args = backup(&objects[2]);
    let q_args: Vec<&str> = q_args.iter().map(String::as_str).collect();
    let queued = Job::start(&cluster, &q_args);
    let mut q_channel = serde_json::Value::Null;
    wait_until(&cluster, "the queued backup's channel", Duration::from_secs(30), |c| {
        q_channel = latest_channel(c).unwrap_or_default();
        q_channel["kind"] == "backup" && q_channel["state"] == "requested"
    });
    queued.interrupt();
    let q_out = queued.join();
    assert_eq!(
        q_out.status.code(),
        Some(i32::from(FailureCode::Cancelled.exit_status())),
        "the interrupted client says it was cancelled: {}",
        String::from_utf8_lossy(&q_out.stderr)
    );
    let q_id = q_channel["channel_id"].as_u64().unwrap();
    let mut q_end = serde_json::Value::Null;
    wait_until(
        &cluster,
        "the abandoned backup's channel to end",
        Duration::from_secs(30),
        |c| {
            q_end = c
                .operator(&["channels"])
                .unwrap_or_default()
                .into_iter()
                .find(|ch| ch["channel_id"] == q_id)
                .unwrap_or_default();
            q_end["state"] == "error"
        },
    );
    // The reason is the text an operator reads in `smapp channels` to learn
    // why the channel ended: it says the client left (the listing carries
    // no code; its ABS failing and nothing on tape are checked below).
    assert!(
        q_end["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("client went away"),
        "{q_end}"
    );

    // A detached backup of the same object returns at once and runs on.
    let mut d_args = q_args.clone();
    d_args.push("--detach");
    let detached = cluster.smapp(&d_args).unwrap().pop().unwrap();
    assert_eq!(detached["result"], "detached", "{detached}");
    let d_abs = detached["abs_id"].as_u64().unwrap();

    // Both restores succeed; B said what it waited for.
    for (job, name, o) in [(restore_a, "a.bin", &objects[0]), (restore_b, "b.bin", &objects[1])] {
        let out = job.join();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let source = fixture::ObjectReader::new(|v| layout.path_of(v), &o.extents);
        fixture::compare(source, std::fs::File::open(dest(name)).unwrap(), name).unwrap();
        if name == "b.bin" {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.lines().any(|l| l.contains("\"waiting\"") && l.contains(&tape)),
                "restore B (channel {channel_b}) did not say it waited for tape {tape}: {err}"
            );
        }
    }

    // The detached backup completes without its client; the abandoned one
    // left nothing on tape.
    wait_until(
        &cluster,
        "the detached backup to complete",
        Duration::from_secs(120),
        |c| {
            c.smapp(&["list", "abs"])
                .unwrap_or_default()
                .iter()
                .any(|x| x["abs_id"] == d_abs && x["state"] == "complete")
        },
    );
    scenario::restore_and_verify(&cluster, &layout, d_abs, &objects[2].extents, &dest("d.bin")).unwrap();
    let q_abs = q_channel["abs_id"].as_u64().unwrap();
    let abs = cluster.smapp(&["list", "abs"]).unwrap();
    let q = abs.iter().find(|x| x["abs_id"] == q_abs).unwrap();
    assert_eq!(q["state"], "failed", "{q}");
    assert!(cluster
        .smapp(&["list", "segments", "--abs", &q_abs.to_string()])
        .unwrap()
        .is_empty());
    assert_settled(&cluster, "contention");
}
