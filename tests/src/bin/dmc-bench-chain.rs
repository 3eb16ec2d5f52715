//! Benchmark of backup chains (issue 4): a full backup of a volume, then
//! two incrementals after a host (`qemu-io` over NBD) wrote 1% of its
//! tracks each time, the synthetic full the movers merge from that chain,
//! and restores of the latest point from the chain and from the synthetic
//! full, each verified against the volume; with MB/s beside `cp` of the
//! same bytes and one raw quinn stream on loopback, measured in the same run.
//!
//!   bash deploy/bench-chain.sh [--size-mib 256]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{arg, free_port, Cluster, PRIMARY};
use dmc_tests::scenario::{self, ScenarioSpec};

const TRACK: u64 = 65536;
const TRACK_SIZE: u32 = 65536;

/// One 4 KiB write in each of `n` distinct random tracks, in one qemu-io.
fn write_tracks(url: &str, tracks: u64, n: usize, seed: u64) -> Result<()> {
    let mut x = seed | 1;
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chosen.insert(x % tracks);
    }
    let mut c = Command::new("qemu-io");
    c.args(["-f", "raw", url]);
    for t in &chosen {
        c.args(["-c", &format!("write -P {} {} 4k", seed % 200 + 1, t * TRACK + 8192)]);
    }
    let out = c.output().context("running qemu-io (Debian package qemu-utils)")?;
    if !out.status.success() {
        bail!("qemu-io failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Run smapp; its last JSON line and the seconds it took.
fn timed(cluster: &Cluster, args: &[&str]) -> Result<(serde_json::Value, f64)> {
    let t = Instant::now();
    let out = cluster.smapp(args)?;
    let s = t.elapsed().as_secs_f64();
    Ok((out.last().context("no result line")?.clone(), s))
}

fn same(a: &Path, b: &Path) -> Result<()> {
    let st = Command::new("cmp").arg("-s").arg(a).arg(b).status()?;
    if !st.success() {
        bail!("{} differs from {}", a.display(), b.display());
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let mib: u64 = arg("--size-mib").map(|s| s.parse()).transpose()?.unwrap_or(256);
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench-chain".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let spec = ScenarioSpec {
        object_size: mib << 20,
        block_size: 4096,
        track_size: TRACK_SIZE,
        segment_size: 16 << 20,
        seed: 61,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let vol0 = layout.path_of("vol0");
    let size = std::fs::metadata(&vol0)?.len();
    let tracks = size / TRACK;
    let port = free_port()?;
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.pn_args = vec!["--nbd".into(), format!("127.0.0.1:{port}")];
    cspec.drives_per_pair = vec![2];
    // Registered with the station means its NBD export listens.
    let mut cluster = Cluster::start(&work, &cspec).await?;
    let url = format!("nbd://127.0.0.1:{port}/vol0");
    let backup = |level: &'static str| -> [&'static str; 9] {
        [
            "backup",
            "--primary",
            PRIMARY,
            "--object",
            "vol0",
            "--volume",
            "vol0",
            "--level",
            level,
        ]
    };

    let (full, full_s) = timed(&cluster, &backup("full"))?;
    let n = (tracks / 100).max(1) as usize;
    write_tracks(&url, tracks, n, 3)?;
    let (inc1, inc1_s) = timed(&cluster, &backup("incremental"))?;
    write_tracks(&url, tracks, n, 5)?;
    let (inc2, inc2_s) = timed(&cluster, &backup("incremental"))?;
    let (merged, merge_s) = timed(&cluster, &["merge", "--primary", PRIMARY, "--object", "vol0"])?;

    let chain_file = cluster.restored("chain.img");
    let inc2_id = inc2["abs_id"].to_string();
    let to = |p: &Path| cluster.to_file(p);
    let (_, chain_s) = timed(&cluster, &["restore", &inc2_id, "--to-file", &to(&chain_file)])?;
    same(&chain_file, &vol0).context("the chain restore")?;
    let syn_file = cluster.restored("synthetic.img");
    let merged_id = merged["abs_id"].to_string();
    let (_, syn_s) = timed(&cluster, &["restore", &merged_id, "--to-file", &to(&syn_file)])?;
    same(&syn_file, &vol0).context("the synthetic full's restore")?;
    cluster.stop();

    // References: cp of the same bytes (synced), one raw quinn stream.
    let copy = work.join("cp-reference.bin");
    let t = Instant::now();
    if !Command::new("cp").arg(&vol0).arg(&copy).status()?.success() {
        bail!("cp failed");
    }
    Command::new("sync").arg(&copy).status()?;
    let cp_mbs = size as f64 / 1e6 / t.elapsed().as_secs_f64();
    let quic_mbs = transport::raw_loopback_throughput(size).await?;

    let bytes = |v: &serde_json::Value| v["bytes"].as_u64().unwrap_or(0);
    println!(
        "volume: {} MiB, {tracks} tracks of 64 KiB; each incremental follows {n} tracks (1%) written through NBD",
        size >> 20
    );
    println!(
        "{:<44} {:>12} {:>8} {:>9} {:>8} {:>8}",
        "", "bytes", "s", "MB/s", "/ cp", "/ quic"
    );
    let line = |what: &str, b: u64, s: f64| {
        let mbs = b as f64 / 1e6 / s.max(1e-9);
        println!(
            "{what:<44} {b:>12} {s:>8.2} {mbs:>9.1} {:>8.3} {:>8.3}",
            mbs / cp_mbs,
            mbs / quic_mbs
        );
    };
    line("full backup", bytes(&full), full_s);
    line("incremental 1", bytes(&inc1), inc1_s);
    line("incremental 2", bytes(&inc2), inc2_s);
    line("merge into a synthetic full (tape → tape)", bytes(&merged), merge_s);
    line("restore the latest point: chain of 3 ABSs", size, chain_s);
    line("restore the latest point: synthetic full", size, syn_s);
    println!("{:<44} {:>12} {:>8} {:>9.1}", "reference: cp + sync", size, "", cp_mbs);
    println!(
        "{:<44} {:>12} {:>8} {:>9.1}",
        "reference: raw quinn, loopback", size, "", quic_mbs
    );
    println!(
        "incremental / full bytes: {:.2}% and {:.2}%; both restores equal the volume",
        bytes(&inc1) as f64 * 100.0 / bytes(&full) as f64,
        bytes(&inc2) as f64 * 100.0 / bytes(&full) as f64
    );
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}
