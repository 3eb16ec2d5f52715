//! Issue 16: what the station tells its operators, beside a channel in
//! error (see console.rs): a tape a restore needs that is not in the
//! library, and a drive left idle while a job waits (for one drive, or for
//! several drives of one back-end at once). Each is raised once
//! while open, listed by `smapp notifications`, acknowledged there (and
//! raised again when it happens again after), and delivered to the
//! webhook exactly once (its first delivery refused, then retried).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dmc_tests::cluster::{bin, Cluster, ClusterSpec, CLIENT, PRIMARY};
use dmc_tests::console::{https, identity, Webhook};
use dmc_tests::{fixture, metrics};
use proto::domain::FailureCode;
use serde_json::Value;

/// Poll `what` every 100 ms (a status query) until it answers Some.
fn until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The operator's `smapp notifications [--acknowledged]`.
fn notifications(cluster: &Cluster, acknowledged: bool) -> Vec<Value> {
    let mut args = vec!["notifications"];
    if acknowledged {
        args.push("--acknowledged");
    }
    cluster.operator(&args).unwrap()
}

/// Notifications of `kind` about `subject` (open and acknowledged).
fn about(cluster: &Cluster, kind: &str, subject: &str) -> Vec<Value> {
    notifications(cluster, true)
        .into_iter()
        .filter(|n| n["kind"] == kind && n["subject"] == subject)
        .collect()
}

/// Restore `abs` into `name` in the node's restore directory and compare
/// it with `source`.
fn restore_and_compare(cluster: &Cluster, abs: u64, name: &str, source: &Path) {
    let dest = cluster.restored(name);
    cluster
        .smapp(&["restore", &abs.to_string(), "--to-file", &cluster.to_file(&dest)])
        .unwrap();
    assert!(
        std::fs::read(&dest).unwrap() == std::fs::read(source).unwrap(),
        "the restore of ABS {abs} differs from {}",
        source.display()
    );
}

fn backup_volume(cluster: &Cluster, volume: &str) -> (u64, String) {
    let out = cluster
        .smapp(&["backup", "--primary", PRIMARY, "--object", volume, "--volume", volume])
        .unwrap();
    let last = out.last().unwrap();
    (
        last["abs_id"].as_u64().unwrap(),
        last["tapes"][0].as_str().unwrap().to_string(),
    )
}

/// The webhook's accepted deliveries of `kind` about `subject`.
fn delivered(hook: &Webhook, kind: &str, subject: &str) -> Vec<Value> {
    hook.accepted()
        .into_iter()
        .filter(|n| n["kind"] == kind && n["subject"] == subject)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_from_an_exported_tape_notifies_once_that_the_tape_is_needed() {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("vol0.img");
    fixture::make_volume(&vol, 4 << 20, 5).unwrap();
    let hook = Webhook::start().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", metrics::free_tcp_port().unwrap())
        .parse()
        .unwrap();
    let mut spec = ClusterSpec::new(vec![("vol0".into(), vol.clone())], 4096, 65536, 1 << 20);
    spec.station_args = vec!["--http".into(), http.to_string(), "--notify-url".into(), hook.url()];
    let cluster = Cluster::start(work.path(), &spec).await.unwrap();
    let op = identity(&cluster.pki_of("operator"), "operator").unwrap();
    assert!(notifications(&cluster, true).is_empty());
    let denied = cluster.smapp_as(CLIENT, &["notifications"]).unwrap();
    assert_eq!(
        denied.status.code(),
        Some(i32::from(FailureCode::Refused.exit_status())),
        "a client may not read the operators' notifications"
    );

    let (abs, tape) = backup_volume(&cluster, "vol0");
    // The operator takes the tape out of the library, from the console.
    let vault = work.path().join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    let body = serde_json::json!({"label": tape, "to_dir": vault}).to_string();
    let exported = https(http, &op, Some(&op), "POST", "/api/library/export", Some((&body, true)))
        .await
        .unwrap();
    assert_eq!(exported.status, 200, "{exported:?}");

    // Two restores need it: both refused, saying so; one notification.
    let dest = cluster.restored("refused.bin");
    for _ in 0..2 {
        let (status, err) = cluster.refused_restore_status(abs, &cluster.to_file(&dest), &[]);
        assert_eq!(status, Some(i32::from(FailureCode::Refused.exit_status())), "{err}");
        assert!(err.contains(&tape) && err.contains("import"), "{err}");
    }
    let subject = format!("tape {tape}");
    let raised = about(&cluster, "tape_needed", &subject);
    assert_eq!(raised.len(), 1, "one notification while it is open: {raised:?}");
    let first = &raised[0];
    assert_eq!(first["acknowledged_by"], "");
    let message = first["message"].as_str().unwrap();
    assert!(
        message.starts_with("a restore needs it") && message.contains("import it into the library"),
        "{first}"
    );
    // The console lists it too.
    let listed = https(http, &op, Some(&op), "GET", "/api/notifications", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == first["id"] && n["kind"] == "tape_needed"),
        "{listed}"
    );
    // Delivered once, after one refused attempt.
    until("the webhook to take it", Duration::from_secs(60), || {
        (about(&cluster, "tape_needed", &subject)[0]["delivered"] == true).then_some(())
    });
    let got = delivered(&hook, "tape_needed", &subject);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], first["id"]);
    assert_eq!(about(&cluster, "tape_needed", &subject)[0]["attempts"], 2);

    // Acknowledged from the command line: no longer open, listed with who
    // did it; a second acknowledgement is a conflict.
    let id = first["id"].as_u64().unwrap().to_string();
    let acked = cluster.operator(&["notifications", "ack", &id]).unwrap();
    assert_eq!(acked[0]["acknowledged_by"], "operator");
    assert!(notifications(&cluster, false).iter().all(|n| n["id"] != first["id"]));
    let err = cluster.operator_fails(&["notifications", "ack", &id], FailureCode::Conflict);
    assert!(err.contains("acknowledged already by operator"), "{err}");
    cluster.operator_fails(&["notifications", "ack", "999999"], FailureCode::NotFound);

    // Needed again after it was acknowledged: a new notification.
    cluster.refused_restore(abs, &cluster.to_file(&dest), &[]);
    let again = about(&cluster, "tape_needed", &subject);
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again
        .iter()
        .any(|n| n["acknowledged_by"] == "" && n["id"] != first["id"]));

    // Back in the library (from the console), the restore works.
    let image = vault.join(format!("{tape}.tap"));
    let body = serde_json::json!({"paths": [image]}).to_string();
    let imported = https(http, &op, Some(&op), "POST", "/api/library/import", Some((&body, true)))
        .await
        .unwrap();
    assert_eq!(imported.status, 200, "{imported:?}");
    restore_and_compare(&cluster, abs, "restored.bin", &vol);
}

// The children are waited for below.
#[allow(clippy::zombie_processes)]
fn spawn_smapp(cluster: &Cluster, args: &[&str]) -> Child {
    Command::new(bin("smapp").unwrap())
        .args(["--station", &cluster.station.to_string(), "--name", CLIENT, "--json"])
        .arg("--pki")
        .arg(cluster.pki_of(CLIENT))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn succeeded(child: Child, what: &str) -> Vec<Value> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Volumes `small` (1 MiB) and `big` (24 MiB, about six seconds to back
/// up at the node's `--stream-rate 4`) in `dir`, and a cluster spec for
/// them whose station notices idle drives after one second of waiting.
fn small_and_big(dir: &Path, seed: u64) -> (std::path::PathBuf, ClusterSpec) {
    let (small, big) = (dir.join("small.img"), dir.join("big.img"));
    fixture::make_volume(&small, 1 << 20, seed).unwrap();
    fixture::make_volume(&big, 24 << 20, seed + 1).unwrap();
    let mut spec = ClusterSpec::new(
        vec![("small".into(), small.clone()), ("big".into(), big)],
        4096,
        65536,
        1 << 20,
    );
    spec.pn_args = vec!["--stream-rate".into(), "4".into()];
    spec.station_args = vec!["--idle-notice".into(), "1".into()];
    (small, spec)
}

/// Starts the backup of `big` and waits until it writes, on drive0 (no
/// other backup runs).
fn big_backup_on_drive0(cluster: &Cluster) -> Child {
    let backup = spawn_smapp(
        cluster,
        &["backup", "--primary", PRIMARY, "--object", "big", "--volume", "big"],
    );
    let writing = until("the big backup to write", Duration::from_secs(60), || {
        cluster
            .smapp(&["channels"])
            .ok()?
            .into_iter()
            .find(|c| c["kind"] == "backup" && c["state"] == "writing")
    });
    assert_eq!(writing["drive"], "drive0");
    backup
}

/// Waits for the notification that drive1 is idle.
fn drive1_reported_idle(cluster: &Cluster) -> Value {
    until("drive1 reported idle", Duration::from_secs(60), || {
        about(cluster, "drive_idle", "drive drive1").into_iter().next()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drive_idle_while_a_restore_waits_is_reported_once() {
    let work = tempfile::tempdir().unwrap();
    let hook = Webhook::start().unwrap();
    let (small, mut spec) = small_and_big(work.path(), 6);
    // Two pairs of one drive each: drive0 (be1) and drive1 (be2).
    spec.drives_per_pair = vec![1, 1];
    spec.station_args.extend(["--notify-url".into(), hook.url()]);
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();
    let (abs, _) = backup_volume(&cluster, "small");

    // fe2 dies: drive1's back-end has no front-end left.
    cluster.kill("fe2").unwrap();
    until("the station to lose fe2", Duration::from_secs(60), || {
        let h = cluster.health().ok()?;
        h["peers"].as_array()?.iter().all(|p| p["name"] != "fe2").then_some(())
    });

    // The big backup takes drive0; a restore then waits for a drive.
    let backup = big_backup_on_drive0(&cluster);
    // Two restores wait for a drive: one notification.
    let restores: Vec<(Child, std::path::PathBuf)> = ["waited-1.bin", "waited-2.bin"]
        .iter()
        .map(|name| {
            let dest = cluster.restored(name);
            let child = spawn_smapp(
                &cluster,
                &["restore", &abs.to_string(), "--to-file", &cluster.to_file(&dest)],
            );
            (child, dest)
        })
        .collect();
    let idle = drive1_reported_idle(&cluster);
    let message = idle["message"].as_str().unwrap();
    assert!(
        message.contains("a restore has waited") && message.contains("no connected front-end/back-end pair serves it"),
        "{message}"
    );

    // Every job ends well: the restores took drive0 when the backup let go.
    succeeded(backup, "the big backup");
    for (child, dest) in restores {
        succeeded(child, "a restore that waited");
        assert!(std::fs::read(&dest).unwrap() == std::fs::read(&small).unwrap());
    }
    assert_eq!(about(&cluster, "drive_idle", "drive drive1").len(), 1);
    assert!(
        about(&cluster, "drive_idle", "drive drive0").is_empty(),
        "the drive the backup held was not idle"
    );

    // Delivered exactly once.
    until("the webhook to take it", Duration::from_secs(60), || {
        (about(&cluster, "drive_idle", "drive drive1")[0]["delivered"] == true).then_some(())
    });
    let got = delivered(&hook, "drive_idle", "drive drive1");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], idle["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_waiting_for_two_drives_counts_as_waiting_and_names_the_idle_one() {
    let work = tempfile::tempdir().unwrap();
    let (small, mut spec) = small_and_big(work.path(), 8);
    // One pair with two drives: drive0 and drive1 of be1.
    spec.drives_per_pair = vec![2];
    spec.station_metrics = true;
    let cluster = Cluster::start(work.path(), &spec).await.unwrap();
    let station_metrics = cluster.station_metrics.unwrap();

    // The big backup takes drive0; a backup across two drives waits.
    let big_backup = big_backup_on_drive0(&cluster);
    let split = spawn_smapp(
        &cluster,
        &[
            "backup",
            "--primary",
            PRIMARY,
            "--object",
            "small",
            "--volume",
            "small",
            "--drives",
            "2",
        ],
    );
    // It counts among the jobs waiting for a drive.
    metrics::wait_at_least(
        station_metrics,
        "dmc_station_jobs_waiting",
        1.0,
        Duration::from_secs(60),
    )
    .unwrap();
    let idle = drive1_reported_idle(&cluster);
    let message = idle["message"].as_str().unwrap();
    assert!(
        message.contains("a backup to pool") && message.contains("for 2 drives on one back-end"),
        "{message}"
    );
    assert!(
        message.contains("the job needs 2 free drives of one back-end at once"),
        "{message}"
    );

    // Both backups end well; the split one took both drives once free.
    succeeded(big_backup, "the big backup");
    let out = succeeded(split, "the backup across two drives");
    let abs = out.last().unwrap()["abs_id"].as_u64().unwrap();
    restore_and_compare(&cluster, abs, "split.bin", &small);
    assert_eq!(about(&cluster, "drive_idle", "drive drive1").len(), 1);
    assert!(about(&cluster, "drive_idle", "drive drive0").is_empty());
    until("no job waiting", Duration::from_secs(60), || {
        (metrics::value(station_metrics, "dmc_station_jobs_waiting").ok()? == 0.0).then_some(())
    });
}
