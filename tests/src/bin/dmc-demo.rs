//! The README's first command runs this (through deploy/demo.sh): a local
//! cluster backs up a scattered logical object to a tape image and restores
//! it onto other volumes and into a plain file, verified byte for byte;
//! the station serves its operators' web console, which the demo reads
//! (and, with `--keep-running`, leaves open for a browser until Ctrl-C).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use dmc_tests::cluster::{arg, bin_dir, Cluster};
use dmc_tests::console::{https, identity, smapp_console};
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
    let keep_running = std::env::args().any(|a| a == "--keep-running");
    let console: std::net::SocketAddr = format!("127.0.0.1:{}", dmc_tests::metrics::free_tcp_port()?).parse()?;
    let mut cluster_spec = scenario::cluster_spec(&layout, &spec);
    cluster_spec.station_args = vec!["--http".into(), console.to_string()];
    let mut cluster = Cluster::start(&work, &cluster_spec).await?;
    println!(
        "   cluster up: control station {} (Postgres catalog, web console https://{console}), front-end fe1, back-end be1 with drive0, primary node pn1; mutual TLS everywhere",
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
    for args in [
        vec!["list", "abs"],
        vec!["list", "segments"],
        vec!["channels"],
        vec!["notifications"],
    ] {
        let mut c = Command::new(&smapp);
        base(&mut c);
        c.args(&args).status()?;
    }
    for tape in &report.tapes {
        let image = cluster.library.join(format!("{tape}.tap"));
        println!("== smapp tape inspect {}", image.display());
        Command::new(&smapp).args(["tape", "inspect"]).arg(&image).status()?;
    }
    show_console(&cluster, console).await?;
    if keep_running {
        let (mut forward, url) = smapp_console(&cluster, "operator", console)?;
        println!("== the cluster keeps running: open {url} in a browser on this machine (Ctrl-C stops everything)");
        tokio::signal::ctrl_c().await?;
        let _ = forward.kill();
        let _ = forward.wait();
    } else {
        println!("   (bash deploy/demo.sh --keep-running leaves the cluster up and the console open for a browser)");
    }
    cluster.stop();
    println!(
        "== done: everything started was stopped; data and logs are in {}",
        work.display()
    );
    Ok(())
}

/// What the operators' web console answers about the demo's jobs, read
/// with the operator's certificate as a browser would.
async fn show_console(cluster: &Cluster, console: std::net::SocketAddr) -> Result<()> {
    let op = identity(&cluster.pki_of("operator"), "operator")?;
    let page = https(console, &op, Some(&op), "GET", "/", None).await?;
    anyhow::ensure!(page.status == 200, "the console's page answered {}", page.status);
    let channels = https(console, &op, Some(&op), "GET", "/api/channels", None)
        .await?
        .json()?;
    let rows = channels.as_array().context("/api/channels: not a list")?;
    println!(
        "== the web console at https://{console} (operator certificate {}; a browser imports `control-station pki issue NAME:operator --p12`, or runs `smapp console`):",
        cluster.pki_of("operator").display()
    );
    for c in rows {
        println!(
            "   channel {} {} of ABS {}: {} ({} transitions, {} bytes)",
            c["channel_id"],
            c["kind"].as_str().unwrap_or("?"),
            c["abs_id"],
            c["state"].as_str().unwrap_or("?"),
            c["transitions"].as_array().map_or(0, Vec::len),
            c["bytes"]
        );
    }
    let anonymous = https(console, &op, None, "GET", "/api/channels", None).await?;
    println!("   without a certificate: {} (only operators get in)", anonymous.status);
    Ok(())
}
