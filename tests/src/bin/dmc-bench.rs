//! Benchmark: backup and restore MB/s of a 1 GiB scattered object through a
//! local cluster, beside references measured in the same run on the same
//! disk and loopback (`cp` of the same bytes; one raw quinn stream with the
//! same TLS), with the ratios, and the peak resident memory of each process.
//!
//!   bash deploy/bench.sh [--size-mib N]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{arg, Cluster};
use dmc_tests::scenario::{self, ScenarioSpec};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let mib: u64 = arg("--size-mib").map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let spec = ScenarioSpec {
        object_size: mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 16 << 20,
        seed: 7,
    };
    eprintln!("preparing {mib} MiB of volumes in {}", work.display());
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let mut cluster = Cluster::start(&work, &scenario::cluster_spec(&layout, &spec)).await?;
    let report = scenario::run(&cluster, &layout).context("the scenario")?;
    let rss = cluster.peak_rss();
    cluster.stop();

    // Reference 1: cp of the same bytes on the same disk (the restored file), synced.
    let copy = work.join("cp-reference.bin");
    let t = Instant::now();
    let st = Command::new("cp").arg(&report.restored_file).arg(&copy).status()?;
    if !st.success() {
        bail!("cp failed");
    }
    Command::new("sync").arg(&copy).status()?;
    let cp_s = t.elapsed().as_secs_f64();
    // Reference 2: one raw quinn stream on loopback, same TLS.
    let quic_mbs = transport::raw_loopback_throughput(report.object_size).await?;

    let mb = report.object_size as f64 / 1e6;
    let cp_mbs = mb / cp_s;
    let backup = mb / report.backup_seconds;
    let rv = mb / report.restore_volume_seconds;
    let rf = mb / report.restore_file_seconds;
    println!(
        "object: {mib} MiB in {} extents over 2 volumes; {} segments on {}",
        report.extents,
        report.segments,
        report.tapes.join(",")
    );
    println!("{:<34} {:>10} {:>10} {:>10}", "", "MB/s", "/ cp", "/ quic");
    println!(
        "{:<34} {:>10.1} {:>10.2} {:>10.2}",
        "backup (primary → FE → BE → tape)",
        backup,
        backup / cp_mbs,
        backup / quic_mbs
    );
    println!(
        "{:<34} {:>10.1} {:>10.2} {:>10.2}",
        "restore onto volumes (remap)",
        rv,
        rv / cp_mbs,
        rv / quic_mbs
    );
    println!(
        "{:<34} {:>10.1} {:>10.2} {:>10.2}",
        "restore into a file",
        rf,
        rf / cp_mbs,
        rf / quic_mbs
    );
    println!("{:<34} {:>10.1}", "reference: cp + sync, same disk", cp_mbs);
    println!("{:<34} {:>10.1}", "reference: raw quinn, loopback", quic_mbs);
    for (name, kb) in rss {
        println!("peak RSS {name:<8} {:>8.1} MiB", kb as f64 / 1024.0);
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}
