//! Benchmark of issue 3, in one run:
//!
//! (a) drive utilisation while 8 sources, each sending at a quarter of one
//!     drive's speed, back up into one drive (their segments interleave),
//!     with the back-end writing ready segments LIFO and then FIFO;
//! (b) restore MB/s of one ABS spread over 4 tapes with 1, 2 and 4 drives,
//!     beside `cp` of the same bytes and one raw quinn stream on loopback
//!     measured in the same run.
//!
//! Drives are speed-limited virtual drives (`--drive-speed`), scaled down
//! from LTO-9 so the whole run takes a minute or two on a small machine.
//!
//!   bash deploy/bench-drives.sh [--drive-mbs 40] [--source-mib 40] [--restore-mib 256]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{arg, free_port, Cluster, PRIMARY};
use dmc_tests::scenario::{self, ScenarioSpec};

/// A whole number of MiB given on the command line.
fn mib(name: &str, default: u64) -> Result<u64> {
    arg(name)
        .map(|s| {
            s.parse::<u64>()
                .with_context(|| format!("{name} {s:?}: expected a whole number of MiB"))
        })
        .transpose()
        .map(|v| v.unwrap_or(default))
}

fn num(name: &str, default: f64) -> Result<f64> {
    arg(name)
        .map(|s| s.parse::<f64>().with_context(|| format!("{name} {s:?}")))
        .transpose()
        .map(|v| v.unwrap_or(default))
}

/// One sample of a Prometheus gauge or counter from the back-end.
fn scrape(addr: &str, metric: &str) -> Result<f64> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("metrics at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix(metric) {
            if let Some(v) = rest.split_whitespace().last() {
                return Ok(v.parse()?);
            }
        }
    }
    Ok(0.0)
}

struct Utilisation {
    policy: String,
    utilisation: f64,
    drive_mbs: f64,
    window_s: f64,
    total_s: f64,
    /// First and last backup to finish, seconds from the start.
    first_done: f64,
    last_done: f64,
}

/// Whether all `n` backup channels are writing.
fn all_writing(cluster: &Cluster, n: usize) -> bool {
    cluster
        .smapp(&["channels"])
        .map(|c| {
            c.iter()
                .filter(|c| c["kind"] == "backup" && c["state"] == "writing")
                .count()
                >= n
        })
        .unwrap_or(false)
}

/// (a): 8 rate-limited sources into one drive.
async fn utilisation(work: &Path, policy: &str, drive_mbs: f64, source_mib: u64) -> Result<Utilisation> {
    let spec = ScenarioSpec {
        object_size: source_mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 4 << 20,
        seed: 31,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.drive_speed = drive_mbs;
    cspec.mount_seconds = 0.5;
    cspec.be_args = vec!["--metrics".into(), metrics.clone(), "--schedule".into(), policy.into()];
    cspec.pn_args = vec!["--stream-rate".into(), (drive_mbs / 4.0).to_string()];
    let mut cluster = Cluster::start(work, &cspec).await?;
    let objects = scenario::scatter_objects(&layout, work, spec.object_size, 8, 500)?;

    let busy_metric = "dmc_be_drive_busy_seconds{drive=\"drive0\"}";
    let bytes_metric = "dmc_be_bytes_written_total";
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (finishes, (samples, all_at)) = std::thread::scope(|s| -> Result<_> {
        let sampler = s.spawn(|| {
            let mut samples = Vec::new();
            let mut all_at = None;
            while !done.load(Ordering::SeqCst) {
                if all_at.is_none() && all_writing(&cluster, 8) {
                    all_at = Some(started.elapsed().as_secs_f64());
                }
                if let (Ok(b), Ok(w)) = (scrape(&metrics, busy_metric), scrape(&metrics, bytes_metric)) {
                    samples.push((started.elapsed().as_secs_f64(), b, w));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (samples, all_at)
        });
        let handles: Vec<_> = objects
            .iter()
            .map(|o| {
                let cluster = &cluster;
                s.spawn(move || {
                    let file = o.file.to_string_lossy().to_string();
                    cluster
                        .smapp(&["backup", "--primary", PRIMARY, "--object", &o.name, "--extents", &file])
                        .map(|_| started.elapsed().as_secs_f64())
                })
            })
            .collect();
        let mut finishes = Vec::new();
        for h in handles {
            finishes.push(h.join().map_err(|_| anyhow::anyhow!("backup thread panicked"))??);
        }
        done.store(true, Ordering::SeqCst);
        let samples = sampler.join().map_err(|_| anyhow::anyhow!("sampler panicked"))?;
        Ok((finishes, samples))
    })?;
    cluster.stop();
    let total_s = started.elapsed().as_secs_f64();

    // The window: from when all 8 channels were writing until the first
    // source finished (all 8 were sending throughout).
    let first_done = finishes.iter().copied().fold(f64::INFINITY, f64::min);
    let last_done = finishes.iter().copied().fold(0.0, f64::max);
    let all_at = all_at.context("the 8 channels were never all writing at once")?;
    let start = samples
        .iter()
        .find(|(t, b, _)| *t >= all_at && *b > 0.0)
        .context("the drive never became busy")?;
    let end = samples
        .iter()
        .rev()
        .find(|(t, _, _)| *t <= first_done)
        .context("no sample before the first backup finished")?;
    let window_s = end.0 - start.0;
    if window_s < 1.0 {
        bail!("the measuring window is only {window_s:.2} s: use larger --source-mib");
    }
    Ok(Utilisation {
        policy: policy.to_string(),
        utilisation: (end.1 - start.1) / window_s,
        drive_mbs: (end.2 - start.2) / 1e6 / window_s,
        window_s,
        total_s,
        first_done,
        last_done,
    })
}

struct Scaling {
    rows: Vec<(u32, f64)>,
    object_bytes: u64,
    tapes: usize,
    restored: PathBuf,
}

/// (b): one ABS over 4 tapes, restored with 1, 2 and 4 drives.
async fn scaling(work: &Path, drive_mbs: f64, restore_mib: u64) -> Result<Scaling> {
    let spec = ScenarioSpec {
        object_size: restore_mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 4 << 20,
        seed: 41,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.drives_per_pair = vec![4];
    cspec.drive_speed = drive_mbs;
    cspec.mount_seconds = 0.2;
    let mut cluster = Cluster::start(work, &cspec).await?;
    let extents = layout.extents_file.to_string_lossy().to_string();
    let out = cluster.smapp(&[
        "backup",
        "--primary",
        PRIMARY,
        "--object",
        "spread",
        "--extents",
        &extents,
        "--drives",
        "4",
    ])?;
    let result = out.last().context("backup printed nothing")?;
    let abs_id = result["abs_id"].as_u64().context("abs_id")?;
    let tapes = result["tapes"].as_array().map(Vec::len).unwrap_or(0);
    let mut rows = Vec::new();
    let mut restored = PathBuf::new();
    for drives in [1u32, 2, 4] {
        let dest = cluster.restored(&format!("restored-{drives}.bin"));
        let t = Instant::now();
        scenario::restore_and_verify_with(
            &cluster,
            &layout,
            abs_id,
            &layout.extents,
            &dest,
            &["--drives", &drives.to_string()],
        )?;
        // Verification reads the file back; time only the restore.
        let secs = t.elapsed().as_secs_f64();
        rows.push((drives, secs));
        restored = dest;
    }
    cluster.stop();
    Ok(Scaling {
        rows,
        object_bytes: spec.object_size,
        tapes,
        restored,
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let drive_mbs = num("--drive-mbs", 40.0)?;
    let source_mib = mib("--source-mib", 40)?;
    let restore_mib = mib("--restore-mib", 256)?;
    let restore_drive_mbs = num("--restore-drive-mbs", 20.0)?;
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench-drives".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }

    let mut util = Vec::new();
    for policy in ["lifo", "fifo"] {
        eprintln!(
            "(a) 8 sources at {:.1} MB/s into one {drive_mbs} MB/s drive, {policy}",
            drive_mbs / 4.0
        );
        util.push(utilisation(&work.join(format!("util-{policy}")), policy, drive_mbs, source_mib).await?);
    }
    eprintln!(
        "(b) one ABS of {restore_mib} MiB over 4 tapes, restored with 1, 2, 4 drives of {restore_drive_mbs} MB/s"
    );
    let sc = scaling(&work.join("scaling"), restore_drive_mbs, restore_mib).await?;

    // References in the same run.
    let copy = work.join("cp-reference.bin");
    let t = Instant::now();
    if !Command::new("cp").arg(&sc.restored).arg(&copy).status()?.success() {
        bail!("cp failed");
    }
    Command::new("sync").arg(&copy).status()?;
    let cp_mbs = sc.object_bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
    let quic_mbs = transport::raw_loopback_throughput(sc.object_bytes).await?;

    println!(
        "(a) drive utilisation, 8 sources × {:.1} MB/s into one drive of {drive_mbs} MB/s ({source_mib} MiB each)",
        drive_mbs / 4.0
    );
    println!(
        "{:<8} {:>12} {:>11} {:>9} {:>15} {:>8}",
        "policy", "utilisation", "drive MB/s", "window s", "backups done s", "total s"
    );
    for u in &util {
        println!(
            "{:<8} {:>11.1}% {:>11.1} {:>9.1} {:>7.1} to {:<4.1} {:>8.1}",
            u.policy,
            u.utilisation * 100.0,
            u.drive_mbs,
            u.window_s,
            u.first_done,
            u.last_done,
            u.total_s
        );
    }
    println!();
    println!(
        "(b) restore of one {restore_mib} MiB ABS spread over {} tapes, drives of {restore_drive_mbs} MB/s",
        sc.tapes
    );
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>10}",
        "drives", "MB/s", "× 1 drive", "/ cp", "/ quic"
    );
    let one = sc.rows.first().map(|r| r.1).unwrap_or(1.0);
    for (d, secs) in &sc.rows {
        let mbs = sc.object_bytes as f64 / 1e6 / secs;
        println!(
            "{:<8} {:>10.1} {:>10.2} {:>10.2} {:>10.2}",
            d,
            mbs,
            one / secs,
            mbs / cp_mbs,
            mbs / quic_mbs
        );
    }
    println!("{:<8} {:>10.1}", "cp", cp_mbs);
    println!("{:<8} {:>10.1}", "quic", quic_mbs);
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}
