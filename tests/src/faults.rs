//! Helpers of the fault tests: killing a process in the middle of a job,
//! and checking afterwards that nothing is stuck. Every wait synchronizes
//! on a status query (`smapp health`, `channels`, `list tapes`), never on a
//! sleep or on log text.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::cluster::{bin, Cluster, ClusterSpec, CLIENT, PRIMARY, STATION};
use crate::fixture;
use crate::scenario::{self, Layout, ScenarioSpec};

/// How long any job may take in a fault test before its client gives up.
pub const JOB_TIMEOUT: &str = "120";

/// Wait until `cond` holds on the cluster's status, or panic with `what`.
pub fn wait_until(cluster: &Cluster, what: &str, timeout: Duration, mut cond: impl FnMut(&Cluster) -> bool) {
    let start = Instant::now();
    while !cond(cluster) {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            diagnosis(cluster)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What an operator would look at when a wait times out: the channels,
/// ABSs and tapes as the station lists them, and the station's log
/// without the connects and disconnects of the polling clients.
pub fn diagnosis(cluster: &Cluster) -> String {
    let list = |args: &[&str]| match cluster.operator(args) {
        Ok(rows) => rows.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n"),
        Err(e) => format!("  ({e:#})"),
    };
    let log = std::fs::read_to_string(cluster.work.join("logs").join(format!("{STATION}.log"))).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !(l.contains("peer=client") && (l.contains("peer connected") || l.contains("peer disconnected"))))
        .collect();
    format!(
        "channels:\n{}\nABSs:\n{}\ntapes:\n{}\nstation log (without client connects):\n{}",
        list(&["channels"]),
        list(&["list", "abs"]),
        list(&["list", "tapes"]),
        lines[lines.len().saturating_sub(60)..].join("\n")
    )
}

/// The channel with the highest id, as the operator lists it.
pub fn latest_channel(cluster: &Cluster) -> Option<serde_json::Value> {
    cluster
        .operator(&["channels"])
        .ok()?
        .into_iter()
        .max_by_key(|c| c["channel_id"].as_u64().unwrap_or(0))
}

/// Nothing is stuck: every channel ended (with a reason when in error), no
/// tape is in a drive, no ABS is running, no partial restore file is left
/// in the node's restore directory.
pub fn assert_settled(cluster: &Cluster, case: &str) {
    let mut stuck = String::new();
    let start = Instant::now();
    loop {
        let chans = cluster.operator(&["channels"]).unwrap_or_default();
        let tapes = cluster.operator(&["list", "tapes"]).unwrap_or_default();
        let abs = cluster.operator(&["list", "abs"]).unwrap_or_default();
        let open: Vec<_> = chans
            .iter()
            .filter(|ch| ch["state"] != "closed" && ch["state"] != "error")
            .collect();
        let mounted: Vec<_> = tapes.iter().filter(|t| !t["mounted_in"].is_null()).collect();
        let running: Vec<_> = abs.iter().filter(|a| a["state"] == "running").collect();
        if !tapes.is_empty() && open.is_empty() && mounted.is_empty() && running.is_empty() {
            break;
        }
        stuck = format!("open channels: {open:?}\nmounted tapes: {mounted:?}\nrunning ABSs: {running:?}");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{case}: still stuck after 60 s\n{stuck}\n{}",
            diagnosis(cluster)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = stuck;
    for ch in cluster.operator(&["channels"]).unwrap() {
        if ch["state"] == "error" {
            assert!(
                !ch["reason"].as_str().unwrap_or_default().is_empty(),
                "{case}: a channel in error without a reason: {ch}"
            );
        }
    }
    let what = format!("{case}: no partial restore file left");
    wait_until(cluster, &what, Duration::from_secs(30), |c| {
        std::fs::read_dir(&c.restore_dir)
            .map(|d| {
                d.flatten()
                    .all(|e| !e.file_name().to_string_lossy().contains(".partial-"))
            })
            .unwrap_or(true)
    });
}

/// A job run by `smapp` in a thread; `ended` says when it returned.
pub struct Job {
    thread: std::thread::JoinHandle<Output>,
    ended: std::sync::mpsc::Receiver<()>,
    pid: u32,
}

impl Job {
    /// Start `smapp --timeout JOB_TIMEOUT ARGS` as the client.
    pub fn start(cluster: &Cluster, args: &[&str]) -> Job {
        let (tx, ended) = std::sync::mpsc::channel();
        let (station, pki) = (cluster.station.to_string(), cluster.pki_of(CLIENT));
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let smapp = bin("smapp").expect("the smapp binary");
        let child = std::process::Command::new(smapp)
            .args([
                "--station",
                &station,
                "--name",
                CLIENT,
                "--json",
                "--timeout",
                JOB_TIMEOUT,
            ])
            .arg("--pki")
            .arg(pki)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running smapp");
        let pid = child.id();
        let thread = std::thread::spawn(move || {
            let out = child.wait_with_output().expect("waiting for smapp");
            let _ = tx.send(());
            out
        });
        Job { thread, ended, pid }
    }

    /// Interrupt the client (SIGINT, as Ctrl-C would).
    pub fn interrupt(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not interrupt smapp (pid {})", self.pid);
    }

    /// Whether the job returned.
    pub fn ended(&self) -> bool {
        matches!(
            self.ended.try_recv(),
            Ok(()) | Err(std::sync::mpsc::TryRecvError::Disconnected)
        )
    }

    /// Wait for the job to return.
    pub fn join(self) -> Output {
        self.thread.join().expect("the smapp thread")
    }
}

/// Start the job `args` and wait until its channel is `moving` (`writing`
/// with bytes counted, or `reading`). Panics if the job ended first.
pub fn start_moving(cluster: &Cluster, args: &[&str], moving: &str) -> Job {
    let before = latest_channel(cluster)
        .and_then(|c| c["channel_id"].as_u64())
        .unwrap_or(0);
    let job = Job::start(cluster, args);
    let mut ended = false;
    wait_until(cluster, "the job to move data", Duration::from_secs(60), |c| {
        ended = job.ended();
        ended
            || latest_channel(c).is_some_and(|ch| {
                ch["channel_id"].as_u64().unwrap_or(0) > before
                    && ch["state"] == moving
                    // A backup counts bytes as they reach the front-end;
                    // a restore only at its end.
                    && (moving == "reading" || ch["bytes"].as_u64().unwrap_or(0) > 0)
            })
    });
    if ended {
        let out = job.join();
        panic!(
            "the job ended before it could be disturbed in its middle: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    job
}

/// Kill `victim` (SIGKILL) once the job `args` is moving data, start it
/// again with the same arguments, wait until it registered again, and
/// return how the job ended.
pub fn kill_mid_job(cluster: &mut Cluster, victim: &str, args: &[&str], moving: &str) -> Output {
    let job = start_moving(cluster, args, moving);
    if victim == STATION {
        cluster.restart_station(Duration::from_secs(60)).unwrap();
    } else {
        let before = cluster.boots().unwrap();
        cluster.kill(victim).unwrap();
        cluster.restart(victim).unwrap();
        cluster
            .wait_registered(&[victim], &before, Duration::from_secs(60))
            .unwrap();
    }
    job.join()
}

/// How a disturbed job ended: "completed", or its error, which must say why.
pub fn outcome(out: &Output, case: &str) -> String {
    if out.status.success() {
        return "completed".into();
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = err
        .lines()
        .rfind(|l| l.contains("error"))
        .unwrap_or_default()
        .to_string();
    assert!(
        !last.trim().is_empty(),
        "{case}: the job failed without a reason: {err}"
    );
    last
}

/// Restore ABS `abs` into the file `name` and compare it with the object.
pub fn verify_restore(cluster: &Cluster, layout: &Layout, abs: u64, name: &str) {
    let dest = cluster.restored(name);
    cluster
        .smapp(&["restore", &abs.to_string(), "--to-file", &cluster.to_file(&dest)])
        .unwrap_or_else(|e| panic!("restore of ABS {abs}: {e}"));
    let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
    fixture::compare(source, std::fs::File::open(&dest).unwrap(), name).unwrap();
    std::fs::remove_file(&dest).unwrap();
}

/// `smapp backup` of the object `obj` given by an extent file.
pub fn backup_args(extents: &Path) -> Vec<String> {
    ["backup", "--primary", PRIMARY, "--object", "obj", "--extents"]
        .iter()
        .map(|s| s.to_string())
        .chain([extents.to_string_lossy().into_owned()])
        .collect()
}

/// A cluster for fault tests in `work`: one pair, one drive slowed to
/// 12 MB/s so that a fault lands in the middle of a job, and a 48 MiB
/// scattered object (`seed`) on the primary node.
pub async fn slow_cluster(work: &Path, seed: u64) -> (Layout, Cluster) {
    fault_cluster(work, seed, |c| c.drive_speed = 12.0)
        .await
        .expect("the cluster")
}

/// The cluster every fault test and the soak start in `work`: a 48 MiB
/// scattered object (`seed`) in 4 MiB segments on one primary node, one
/// pair, with `adjust` applied to the cluster's spec (drives, speed).
pub async fn fault_cluster(
    work: &Path,
    seed: u64,
    adjust: impl FnOnce(&mut ClusterSpec),
) -> anyhow::Result<(Layout, Cluster)> {
    let spec = ScenarioSpec {
        object_size: 48 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 4 << 20,
        seed,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    adjust(&mut cspec);
    let cluster = Cluster::start(work, &cspec).await?;
    Ok((layout, cluster))
}

/// Wait until the station reports its catalog database unavailable.
pub fn wait_catalog_unavailable(cluster: &Cluster) {
    wait_until(
        cluster,
        "the station to report its catalog unavailable",
        Duration::from_secs(30),
        |c| {
            c.health()
                .is_ok_and(|h| h["catalog"].as_str().is_some_and(|s| s.starts_with("unavailable")))
        },
    );
}
