//! Benchmark of host I/O through the primary node (issue 4): the latency of
//! 4 KiB random writes a host (`qemu-io` over NBD) makes to a volume, with
//! no backup running and while a backup of that volume runs (concurrent
//! copy at work), beside the same workload by `qemu-io` straight on the
//! volume's image file (no NBD, no node) measured in the same run.
//!
//! `qemu-io` reports each write's rate; latency = 1 / (ops per second).
//!
//!   bash deploy/bench-hostio.sh [--writes 1500] [--size-mib 128]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{arg, free_port, Cluster, PRIMARY};
use dmc_tests::metrics;
use dmc_tests::scenario::{self, ScenarioSpec};

/// `n` random 4 KiB-aligned offsets below `size` (deterministic).
fn offsets(n: usize, size: u64, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (size / 4096)) * 4096
        })
        .collect()
}

/// Run the writes in one `qemu-io`; each write's latency in microseconds.
fn qemu_writes(target: &str, format_args: &[&str], offs: &[u64], pattern: u8) -> Result<Vec<f64>> {
    let mut c = Command::new("qemu-io");
    c.args(format_args).arg(target);
    for o in offs {
        c.args(["-c", &format!("write -P {pattern} {o} 4k")]);
    }
    let out = c.output().context("running qemu-io (Debian package qemu-utils)")?;
    if !out.status.success() {
        bail!("qemu-io failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lat: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split(" and ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|ops| ops.parse::<f64>().ok())
        .filter(|ops| *ops > 0.0)
        .map(|ops| 1e6 / ops)
        .collect();
    if lat.len() != offs.len() {
        bail!("qemu-io reported {} of {} writes", lat.len(), offs.len());
    }
    Ok(lat)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a rounded, non-negative rank, clamped below
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Row {
    what: &'static str,
    p50: f64,
    p99: f64,
    max: f64,
}

fn row(what: &'static str, mut lat: Vec<f64>) -> Row {
    lat.sort_by(|a, b| a.total_cmp(b));
    Row {
        what,
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        max: lat.last().copied().unwrap_or(0.0),
    }
}

/// Whether the backup's channel is writing (its snapshot is taken).
fn backup_writing(cluster: &Cluster) -> bool {
    cluster
        .smapp(&["channels"])
        .is_ok_and(|c| c.iter().any(|c| c["kind"] == "backup" && c["state"] == "writing"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let writes: usize = arg("--writes").map(|s| s.parse()).transpose()?.unwrap_or(1500);
    let mib: u64 = arg("--size-mib").map(|s| s.parse()).transpose()?.unwrap_or(128);
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench-hostio".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let spec = ScenarioSpec {
        object_size: mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 4 << 20,
        seed: 51,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let vol0 = layout.path_of("vol0");
    let size = std::fs::metadata(&vol0)?.len();

    // Reference: the same writes by qemu-io straight on a copy of the image.
    let copy = work.join("reference.img");
    std::fs::copy(&vol0, &copy)?;
    let reference = qemu_writes(&copy.to_string_lossy(), &["-f", "raw"], &offsets(writes, size, 1), 7)?;

    let port = free_port()?;
    let pn_metrics: std::net::SocketAddr = format!("127.0.0.1:{}", metrics::free_tcp_port()?).parse()?;
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    // The backup runs long enough to cover the writes under it.
    cspec.pn_args = vec![
        "--nbd".into(),
        format!("127.0.0.1:{port}"),
        "--stream-rate".into(),
        "20".into(),
        "--metrics".into(),
        pn_metrics.to_string(),
    ];
    // Registered with the station means its NBD export listens.
    let mut cluster = Cluster::start(&work, &cspec).await?;
    let url = format!("nbd://127.0.0.1:{port}/vol0");
    let nbd = ["-f", "raw"];

    let idle = qemu_writes(&url, &nbd, &offsets(writes, size, 2), 8)?;
    let (busy, backup_s) = std::thread::scope(|s| -> Result<_> {
        let t = Instant::now();
        let backup =
            s.spawn(|| cluster.smapp(&["backup", "--primary", PRIMARY, "--object", "vol0", "--volume", "vol0"]));
        // The channel writes once the node captured the snapshot.
        while !backup_writing(&cluster) {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("the backup never started");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let busy = qemu_writes(&url, &nbd, &offsets(writes, size, 3), 9)?;
        let during = t.elapsed().as_secs_f64();
        backup.join().map_err(|_| anyhow::anyhow!("backup thread panicked"))??;
        let total = t.elapsed().as_secs_f64();
        if during > total * 0.95 {
            eprintln!("note: the writes outlasted most of the backup ({during:.1} of {total:.1} s)");
        }
        Ok((busy, total))
    })?;
    let copied = metrics::value(pn_metrics, "dmc_primary_side_copies_total")?;
    cluster.stop();

    let rows = [
        row("reference: qemu-io on the image file", reference),
        row("NBD through the node, no backup", idle),
        row("NBD through the node, backup running", busy),
    ];
    println!(
        "{writes} random 4 KiB writes per run on a {} MiB volume (64 KiB tracks)",
        size >> 20
    );
    println!("{:<40} {:>10} {:>10} {:>10}", "", "p50 µs", "p99 µs", "max µs");
    for r in &rows {
        println!("{:<40} {:>10.0} {:>10.0} {:>10.0}", r.what, r.p50, r.p99, r.max);
    }
    println!("backup: {backup_s:.1} s for the whole volume at 20 MB/s; {copied} tracks copied aside for host writes");
    println!(
        "ratios: p50 through the node / reference {:.2}; p99 with backup / without {:.2}",
        rows[1].p50 / rows[0].p50.max(1e-9),
        rows[2].p99 / rows[1].p99.max(1e-9)
    );
    remove(&work);
    Ok(())
}

fn remove(work: &Path) {
    std::fs::remove_dir_all(work).ok();
}
