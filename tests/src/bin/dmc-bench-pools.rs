//! Benchmark of copy storage pools (issue 13): a backup of one object into
//! primary pool `onsite`, then `pool backup onsite --to vault` (tape to
//! tape on one back-end: one drive reads, another writes), then restores
//! of the object with no segment and with 10% of its segments served from
//! the copy tape (a byte flipped in every tenth segment on the primary
//! tape: found by the restore, read from the copy), each verified against
//! the volume. Beside each figure: `cp` of the same bytes and one raw quinn
//! stream on loopback, measured in the same run; CPU-seconds per GiB of the
//! cluster's processes and their peak RSS.
//!
//!   bash deploy/bench-pools.sh [--size-mib 1024]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{arg, Cluster, PRIMARY};
use dmc_tests::fixture;
use dmc_tests::scenario::{self, ScenarioSpec};

/// Run smapp as `who`; its last JSON line, wall seconds and cluster CPU
/// seconds.
fn timed(cluster: &Cluster, operator: bool, args: &[&str]) -> Result<(serde_json::Value, f64, f64)> {
    let cpu0 = cluster.cpu_seconds();
    let t = Instant::now();
    let out = if operator {
        cluster.operator(args)?
    } else {
        cluster.smapp(args)?
    };
    let s = t.elapsed().as_secs_f64();
    let c = cluster.cpu_seconds() - cpu0;
    Ok((out.last().context("no result line")?.clone(), s, c))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let mib: u64 = arg("--size-mib").map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench-pools".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let spec = ScenarioSpec {
        object_size: mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 16 << 20,
        seed: 67,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.drives_per_pair = vec![2];
    let cluster = Cluster::start(&work, &cspec).await?;
    cluster.operator(&["pool", "define", "onsite", "--kind", "primary"])?;
    cluster.operator(&["pool", "define", "vault", "--kind", "copy", "--copies-of", "onsite"])?;
    let extents = layout.extents_file.to_string_lossy().to_string();
    let (backup, backup_s, backup_cpu) = timed(
        &cluster,
        false,
        &[
            "backup",
            "--primary",
            PRIMARY,
            "--object",
            "obj",
            "--extents",
            &extents,
            "--pool",
            "onsite",
        ],
    )?;
    let abs_id = backup["abs_id"].to_string();
    let (copied, copy_s, copy_cpu) = timed(&cluster, true, &["pool", "backup", "onsite", "--to", "vault"])?;
    let copy_bytes = copied["bytes"].as_u64().unwrap_or(0);

    let restore = |name: &str, keep: bool| -> Result<(f64, f64)> {
        let dest = cluster.restored(name);
        let (_, s, c) = timed(
            &cluster,
            false,
            &["restore", &abs_id, "--to-file", &cluster.to_file(&dest)],
        )?;
        let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
        let file = std::fs::File::open(&dest).with_context(|| format!("opening {}", dest.display()))?;
        fixture::compare(source, file, name)?;
        if !keep {
            std::fs::remove_file(&dest)?;
        }
        Ok((s, c))
    };
    let (plain_s, plain_cpu) = restore("plain.bin", true)?;
    let plain = cluster.restored("plain.bin");

    // A byte flipped in every tenth segment on the primary tape.
    let segs = cluster.smapp(&["list", "segments", "--abs", &abs_id])?;
    let mut primaries: Vec<&serde_json::Value> = segs.iter().filter(|s| s["copy"] == false).collect();
    primaries.sort_by_key(|s| s["seq"].as_u64());
    let mut flipped = 0;
    for s in primaries.iter().skip(5).step_by(10) {
        let image = cluster
            .library
            .join(format!("{}.tap", s["tape"].as_str().unwrap_or_default()));
        let file = u32::try_from(s["tape_file"].as_u64().unwrap_or(0))?;
        let off = dmc_tests::fixture::simh_record_offset(&image, file, 1)?;
        dmc_tests::fixture::flip_byte(&image, off)?;
        flipped += 1;
    }
    let (found_s, found_cpu) = restore("fallback.bin", false)?;
    let (planned_s, planned_cpu) = restore("planned.bin", false)?;
    let rss = cluster.peak_rss();
    drop(cluster);

    let size = mib << 20;
    // cp of the same bytes: the restored object, to a new file, synced.
    let copy = work.join("cp-reference.bin");
    let t = Instant::now();
    if !Command::new("cp").arg(&plain).arg(&copy).status()?.success() {
        bail!("cp failed");
    }
    Command::new("sync").arg(&copy).status()?;
    let cp_bytes = std::fs::metadata(&copy)?.len();
    let cp_mbs = cp_bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
    std::fs::remove_file(&copy)?;
    let quic_mbs = transport::raw_loopback_throughput(size).await?;

    println!(
        "object: {mib} MiB in {} segments of 16 MiB; {flipped} segments ({:.0}%) damaged for the fallback runs",
        primaries.len(),
        flipped as f64 * 100.0 / primaries.len().max(1) as f64
    );
    println!(
        "{:<52} {:>12} {:>8} {:>9} {:>7} {:>7} {:>10}",
        "", "bytes", "s", "MB/s", "/ cp", "/ quic", "CPU s/GiB"
    );
    let line = |what: &str, b: u64, s: f64, c: f64| {
        let mbs = b as f64 / 1e6 / s.max(1e-9);
        let per_gib = c / (b as f64 / f64::from(1u32 << 30)).max(1e-9);
        println!(
            "{what:<52} {b:>12} {s:>8.2} {mbs:>9.1} {:>7.3} {:>7.3} {per_gib:>10.2}",
            mbs / cp_mbs,
            mbs / quic_mbs
        );
    };
    line("backup to pool onsite", size, backup_s, backup_cpu);
    line(
        "pool backup onsite → vault (tape to tape)",
        copy_bytes,
        copy_s,
        copy_cpu,
    );
    line("restore, every segment from the primary tape", size, plain_s, plain_cpu);
    line(
        "restore, 10% found damaged, read from the copy",
        size,
        found_s,
        found_cpu,
    );
    line(
        "restore, 10% known damaged, planned from the copy",
        size,
        planned_s,
        planned_cpu,
    );
    println!(
        "{:<52} {:>12} {:>8} {:>9.1}",
        "reference: cp + sync", cp_bytes, "", cp_mbs
    );
    println!(
        "{:<52} {:>12} {:>8} {:>9.1}",
        "reference: raw quinn, loopback", size, "", quic_mbs
    );
    let rss: Vec<String> = rss.iter().map(|(n, k)| format!("{n} {} MiB", k / 1024)).collect();
    println!("peak RSS: {}", rss.join(", "));
    println!("every restore equals the object byte for byte");
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}
