//! The README's first command runs this (through deploy/demo.sh): a local
//! cluster backs up a scattered logical object to a tape image and restores
//! it onto other volumes and into a plain file, verified byte for byte.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use dmc_tests::cluster::{arg, bin_dir, Cluster};
use dmc_tests::scenario::{self, ScenarioSpec};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let mib: u64 = arg("--size-mib").map(|s| s.parse()).transpose()?.unwrap_or(256);
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/demo".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let spec = ScenarioSpec {
        object_size: mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 16 << 20,
        seed: 2026,
    };
    println!(
        "== data mover cluster demo: {mib} MiB logical object, work directory {}",
        work.display()
    );
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    println!(
        "   object: {} extents scattered over vol0 and vol1 (tracks shared with other data); extent list {}",
        layout.extents.len(),
        layout.extents_file.display()
    );
    let mut cluster = Cluster::start(&work, &scenario::cluster_spec(&layout, &spec)).await?;
    println!(
        "   cluster up: control station {} (Postgres catalog), front-end fe1, back-end be1 with drive0, primary node pn1; mutual TLS everywhere",
        cluster.station
    );
    let report = scenario::run(&cluster, &layout);
    let rss = cluster.peak_rss();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            for p in ["station", "fe1", "be1", "pn1"] {
                eprintln!(
                    "--- {p} log (tail)\n{}",
                    dmc_tests::cluster::tail(&work.join("logs").join(format!("{p}.log")))
                );
            }
            return Err(e);
        }
    };
    let mb = report.object_size as f64 / 1e6;
    println!(
        "== backup:  ABS {} — {} bytes of tracks, {} segments on tape {} in {:.2} s ({:.1} MB/s of object)",
        report.abs_id,
        report.backup_bytes,
        report.segments,
        report.tapes.join(","),
        report.backup_seconds,
        mb / report.backup_seconds
    );
    println!(
        "== restore onto dst0/dst1 through a remap: {:.2} s ({:.1} MB/s) — verified byte for byte",
        report.restore_volume_seconds,
        mb / report.restore_volume_seconds
    );
    println!(
        "== restore into {}: {:.2} s ({:.1} MB/s) — verified byte for byte",
        report.restored_file.display(),
        report.restore_file_seconds,
        mb / report.restore_file_seconds
    );
    for (name, kb) in rss {
        println!("   peak RSS {name}: {:.1} MiB", kb as f64 / 1024.0);
    }
    println!("== the catalog, as the operator sees it:");
    let smapp = bin_dir()?.join("smapp");
    let base = |c: &mut Command| {
        c.arg("--station")
            .arg(cluster.station.to_string())
            .arg("--pki")
            .arg(cluster.pki_of("operator"))
            .args(["--name", "operator"]);
    };
    for args in [vec!["list", "abs"], vec!["list", "segments"], vec!["channels"]] {
        let mut c = Command::new(&smapp);
        base(&mut c);
        c.args(&args).status()?;
    }
    for tape in &report.tapes {
        let image = cluster.library.join(format!("{tape}.tap"));
        println!("== smapp tape inspect {}", image.display());
        Command::new(&smapp).args(["tape", "inspect"]).arg(&image).status()?;
    }
    cluster.stop();
    println!(
        "== done: everything started was stopped; data and logs are in {}",
        work.display()
    );
    Ok(())
}
