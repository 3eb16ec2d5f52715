//! Benchmark of copy versions (issue 15): one version of 3 volumes (two on
//! `pn1`, one on `pn2`; two of the three copies cross nodes over QUIC, one
//! stays on its node), whole, then again onto the same targets after 1% of
//! the tracks changed (only those are copied). Beside each figure: `cp` of
//! the same volumes (to new files, synced) and one raw quinn stream on
//! loopback, measured in the same run; CPU-seconds per GiB of the cluster's
//! processes and their peak RSS. Each version is checked byte for byte
//! against the sources.
//!
//!   bash deploy/bench-versions.sh [--size-mib 256]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{arg, free_port, Cluster, ClusterSpec, ExtraNode};
use dmc_tests::fixture;

const TRACK: u64 = 65536;

/// Whether the first `len` bytes of two files are equal.
fn same_prefix(a: &Path, b: &Path, len: u64) -> Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(1 << 20))?;
        fa.read_exact(&mut ba[..n])?;
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

/// Make the set's next version; (its record, wall seconds, cluster CPU seconds).
fn run_version(cluster: &Cluster) -> Result<(serde_json::Value, f64, f64)> {
    let cpu0 = cluster.cpu_seconds();
    let t = Instant::now();
    let out = cluster.operator(&["versions", "run", "bench"])?;
    let s = t.elapsed().as_secs_f64();
    let c = cluster.cpu_seconds() - cpu0;
    let set = out.first().context("no version set listed")?;
    let made = set["records"]
        .as_array()
        .context("records")?
        .iter()
        .filter(|r| r["kind"] == "replication")
        .max_by_key(|r| r["version"].as_u64())
        .context("no version made")?
        .clone();
    Ok((made, s, c))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let mib: u64 = arg("--size-mib").map(|s| s.parse()).transpose()?.unwrap_or(256);
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench-versions".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let dir = work.join("volumes");
    std::fs::create_dir_all(&dir)?;
    let size = mib << 20;
    let region = proto::region::REGION_BYTES as u64;
    let vol = |name: &str| (name.to_string(), dir.join(format!("{name}.img")));
    for (i, name) in ["s1", "s2", "s3"].iter().enumerate() {
        fixture::make_volume(&dir.join(format!("{name}.img")), size, 0x9e37_79b9 + i as u64)?;
    }
    for name in ["t1", "t2", "t3"] {
        std::fs::File::create(dir.join(format!("{name}.img")))?.set_len(size + region)?;
    }
    let (nbd1, nbd2) = (free_port()?, free_port()?);
    let mut spec = ClusterSpec::new(vec![vol("s1"), vol("s2")], 4096, 65536, 16 << 20);
    spec.target_volumes = vec![vol("t3")];
    spec.pn_args = vec!["--nbd".into(), format!("127.0.0.1:{nbd1}")];
    spec.extra_nodes = vec![ExtraNode {
        name: "pn2".into(),
        volumes: vec![vol("s3")],
        target_volumes: vec![vol("t1"), vol("t2")],
        args: vec!["--nbd".into(), format!("127.0.0.1:{nbd2}")],
    }];
    let cluster = Cluster::start(&work, &spec).await?;
    cluster.operator(&[
        "vpool",
        "define",
        "src",
        "--source",
        "--volumes",
        "pn1:s1,pn1:s2,pn2:s3",
    ])?;
    // s1 → pn2:t1, s2 → pn2:t2 (across nodes), s3 → pn1:t3 (across too).
    cluster.operator(&[
        "vpool",
        "define",
        "tgt",
        "--target",
        "--volumes",
        "pn2:t1,pn2:t2,pn1:t3",
    ])?;
    cluster.operator(&[
        "versions",
        "define",
        "bench",
        "--source",
        "src",
        "--targets",
        "tgt",
        "--keep",
        "1",
    ])?;

    let (full, full_s, full_cpu) = run_version(&cluster)?;
    let pairs = [("s1", "t1"), ("s2", "t2"), ("s3", "t3")];
    for (s, t) in pairs {
        if !same_prefix(&dir.join(format!("{s}.img")), &dir.join(format!("{t}.img")), size)? {
            bail!("version 1: target {t} differs from source {s}");
        }
    }

    // 1% of every source's tracks change, written by a host through NBD.
    let tracks = size / TRACK;
    let changed = (tracks / 100).max(1);
    for (s, port) in [("s1", nbd1), ("s2", nbd1), ("s3", nbd2)] {
        let url = format!("nbd://127.0.0.1:{port}/{s}");
        let mut cmd = Command::new("qemu-io");
        cmd.args(["-f", "raw", &url]);
        for i in 0..changed {
            let t = (i * 97 + 13) % tracks;
            cmd.args(["-c", &format!("write -P {} {} 65536", i % 250 + 1, t * TRACK)]);
        }
        let out = cmd.output().context("qemu-io (Debian package qemu-utils)")?;
        if !out.status.success() {
            bail!("qemu-io: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let (delta, delta_s, delta_cpu) = run_version(&cluster)?;
    for (s, t) in pairs {
        if !same_prefix(&dir.join(format!("{s}.img")), &dir.join(format!("{t}.img")), size)? {
            bail!("version 2: target {t} differs from source {s}");
        }
    }
    let rss = cluster.peak_rss();
    drop(cluster);

    // cp of the same volumes, to new files, synced.
    let t = Instant::now();
    for (s, _) in pairs {
        let to = work.join(format!("cp-{s}.img"));
        if !Command::new("cp")
            .arg(dir.join(format!("{s}.img")))
            .arg(&to)
            .status()?
            .success()
        {
            bail!("cp failed");
        }
        Command::new("sync").arg(&to).status()?;
    }
    let cp_s = t.elapsed().as_secs_f64();
    for (s, _) in pairs {
        std::fs::remove_file(work.join(format!("cp-{s}.img")))?;
    }
    let total = 3 * size;
    let cp_mbs = total as f64 / 1e6 / cp_s;
    let quic_mbs = transport::raw_loopback_throughput(size).await?;

    println!(
        "3 volumes of {mib} MiB (2 on pn1, 1 on pn2), copied node to node; then {changed} tracks (1%) changed on each"
    );
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>9} {:>9} {:>7} {:>7} {:>10}",
        "", "volume bytes", "copied", "s", "MB/s", "copied/s", "/ cp", "/ quic", "CPU s/GiB"
    );
    let line = |what: &str, rec: &serde_json::Value, s: f64, c: f64| {
        let copied = rec["bytes_copied"].as_u64().unwrap_or(0);
        let mbs = total as f64 / 1e6 / s.max(1e-9);
        let copied_mbs = copied as f64 / 1e6 / s.max(1e-9);
        let per_gib = c / (total as f64 / f64::from(1u32 << 30));
        println!(
            "{what:<44} {total:>12} {copied:>12} {s:>8.2} {mbs:>9.1} {copied_mbs:>9.1} {:>7.3} {:>7.3} {per_gib:>10.2}",
            mbs / cp_mbs,
            mbs / quic_mbs
        );
    };
    line("version 1 (whole volumes)", &full, full_s, full_cpu);
    line(
        "version 2 onto the same targets (1% changed)",
        &delta,
        delta_s,
        delta_cpu,
    );
    println!(
        "{:<44} {total:>12} {total:>12} {cp_s:>8.2} {cp_mbs:>9.1} {cp_mbs:>9.1} {:>7.3} {:>7} {:>10}",
        "cp of the same volumes (synced)", 1.0, "", ""
    );
    println!(
        "{:<44} {:>12} {:>12} {:>8} {quic_mbs:>9.1}",
        "one raw quinn stream on loopback", "", "", ""
    );
    println!("MB/s counts the volumes' bytes (a version of them); copied/s the bytes actually sent");
    println!(
        "peak RSS (KiB): {}",
        rss.iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
