//! Benchmark of the catalog rebuild (issue 14): a cluster writes one
//! backup that spans 20 tapes; then `control-station catalog rebuild
//! --library DIR` rebuilds the catalog from those tapes into a new empty
//! database, beside `smapp tape inspect` of every image (which reads every
//! tape file) and `cp` of the images, measured in the same run. Done for
//! two tape sizes, to show the rebuild time follows the number of tapes,
//! not their bytes (four segments a tape for both). The page cache holds
//! the images, so the seconds favour `tape inspect`; the megabytes each
//! reads (the rebuild reports its own; `inspect` reads every byte) are
//! what a real tape drive would have to deliver.
//!
//!   bash deploy/bench-rebuild.sh [--tapes 20] [--tape-mib 16,64]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{arg, bin, Cluster, PRIMARY};
use dmc_tests::pg::TestDb;
use dmc_tests::scenario::{self, ScenarioSpec};

/// One run's figures.
struct Figures {
    tape_mib: u64,
    tapes: usize,
    image_bytes: u64,
    rebuild_s: f64,
    rebuild_line: String,
    /// Megabytes the rebuild read of the images (it reports them).
    rebuild_mb: Option<f64>,
    inspect_s: f64,
    cp_s: f64,
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn images(library: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(library)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tap"))
        .collect();
    v.sort();
    Ok(v)
}

async fn measure(work: &Path, tapes: u64, tape_mib: u64) -> Result<Figures> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    // A little less than `tapes` tapes' worth: every tape but the last is
    // filled to its early warning.
    let object = tapes * tape_mib * 4 / 5;
    // Four segments a tape whatever its size: the catalog rows to write
    // are the same for both sizes.
    let spec = ScenarioSpec {
        object_size: object << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: (tape_mib << 20) / 5,
        seed: 91,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.tape_capacity = tape_mib << 20;
    let cluster = Cluster::start(work, &cspec).await?;
    let extents = layout.extents_file.to_string_lossy().to_string();
    cluster.smapp(&["backup", "--primary", PRIMARY, "--object", "obj", "--extents", &extents])?;
    let library = cluster.library.clone();
    drop(cluster);
    let imgs = images(&library)?;
    let image_bytes: u64 = imgs.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();

    let db = TestDb::new().await;
    let t = Instant::now();
    let out = run(
        Command::new(bin("control-station")?).args([
            "catalog",
            "rebuild",
            "--library",
            &library.to_string_lossy(),
            "--database-url",
            db.url(),
        ]),
        "catalog rebuild",
    )?;
    let rebuild_s = t.elapsed().as_secs_f64();
    let rebuild_line = out.lines().take(2).collect::<Vec<_>>().join("; ");
    let rebuild_mb = rebuild_line
        .split(" MB read")
        .next()
        .and_then(|head| head.rsplit('(').next())
        .and_then(|n| n.trim().parse::<f64>().ok());

    let t = Instant::now();
    for p in &imgs {
        run(
            Command::new(bin("smapp")?).args(["tape", "inspect", &p.to_string_lossy()]),
            "smapp tape inspect",
        )?;
    }
    let inspect_s = t.elapsed().as_secs_f64();

    let copies = work.join("cp-reference");
    std::fs::create_dir_all(&copies)?;
    let t = Instant::now();
    for p in &imgs {
        let dest = copies.join(p.file_name().context("image name")?);
        run(Command::new("cp").arg(p).arg(&dest), "cp")?;
    }
    run(Command::new("sync").arg(&copies), "sync")?;
    let cp_s = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&copies)?;
    Ok(Figures {
        tape_mib,
        tapes: imgs.len(),
        image_bytes,
        rebuild_s,
        rebuild_line,
        rebuild_mb,
        inspect_s,
        cp_s,
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let tapes: u64 = arg("--tapes").map(|s| s.parse()).transpose()?.unwrap_or(20);
    let sizes: Vec<u64> = arg("--tape-mib")
        .unwrap_or_else(|| "16,64".into())
        .split(',')
        .map(|s| s.trim().parse().context("--tape-mib: sizes in MiB, comma-separated"))
        .collect::<Result<_>>()?;
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench-rebuild".into()));
    let mut all = Vec::new();
    for mib in sizes {
        eprintln!("writing {tapes} tapes of {mib} MiB …");
        all.push(measure(&work.join(format!("tapes-{mib}")), tapes, mib).await?);
    }
    println!(
        "{:>9} {:>6} {:>10} {:>11} {:>16} {:>16} {:>9} {:>11}",
        "tape MiB", "tapes", "image MB", "rebuild s", "rebuild MB read", "tape inspect s", "cp s", "inspect MB"
    );
    for f in &all {
        println!(
            "{:>9} {:>6} {:>10.1} {:>11.3} {:>16} {:>16.3} {:>9.3} {:>11.1}",
            f.tape_mib,
            f.tapes,
            f.image_bytes as f64 / 1e6,
            f.rebuild_s,
            f.rebuild_mb.map_or_else(|| "?".to_string(), |m| format!("{m:.3}")),
            f.inspect_s,
            f.cp_s,
            f.image_bytes as f64 / 1e6
        );
    }
    for f in &all {
        println!("{} MiB tapes: {}", f.tape_mib, f.rebuild_line);
    }
    Ok(())
}
