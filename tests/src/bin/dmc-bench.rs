//! Benchmark: backup and restore MB/s of a scattered object through a local
//! cluster, beside references measured in the same run on the same disk and
//! loopback (`cp` of the same bytes; one raw quinn stream with the same TLS),
//! with the ratios, the CPU-seconds per GiB of every process and the peak
//! resident memory of each. With `--bacula`, Bacula 9.6 moves the same bytes
//! in the same run and both are printed side by side.
//!
//!   bash deploy/bench.sh [--size-mib N] [--runs R]        (default 1024 MiB, 3 runs)
//!   bash deploy/bench-peers.sh [--size-mib N] [--runs R]  (adds Bacula; default 4096 MiB)
//!
//! Every measurement is repeated R times (this machine's speed varies from
//! minute to minute); each run is printed, and comparisons use the run
//! with the median time. Then 8 backups and 8 restores run at once, and the
//! peak resident memory of every process is printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dmc_tests::bacula::Bacula;
use dmc_tests::cluster::{arg, Cluster};
use dmc_tests::cpu;
use dmc_tests::hop;
use dmc_tests::pg::TestDb;
use dmc_tests::scenario::{self, ScenarioSpec};

const GIB: f64 = (1u64 << 30) as f64;

/// CPU-seconds of named processes at one instant.
type Cpu = BTreeMap<String, f64>;

/// One run of a system: a backup and its restores.
struct Run {
    backup: Phase,
    restore_volumes: Option<Phase>,
    restore_file: Phase,
}

impl Run {
    /// The backup, and separately the restore into a file, of the run that
    /// took the median time.
    fn median(runs: &[Run]) -> Run {
        let pick = |f: &dyn Fn(&Run) -> &Phase| Phase::median(&runs.iter().map(|r| f(r).clone()).collect::<Vec<_>>());
        Run {
            backup: pick(&|r| &r.backup),
            restore_volumes: None,
            restore_file: pick(&|r| &r.restore_file),
        }
    }
}

/// One measured phase: wall seconds and CPU-seconds per process.
#[derive(Clone)]
struct Phase {
    seconds: f64,
    cpu: Cpu,
}

impl Phase {
    fn mbs(&self, bytes: u64) -> f64 {
        bytes as f64 / 1e6 / self.seconds.max(f64::MIN_POSITIVE)
    }
    fn total_cpu(&self) -> f64 {
        self.cpu.values().sum()
    }
    /// The phase that took the median time.
    fn median(phases: &[Phase]) -> Phase {
        let mut v: Vec<&Phase> = phases.iter().collect();
        v.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        v[(v.len() - 1) / 2].clone()
    }
}

fn postgres_seconds() -> Option<f64> {
    let dir = TestDb::cluster_dir()?;
    cpu::tree_seconds(cpu::postmaster_pid(&dir.join("data"))?)
}

/// CPU of the cluster's processes, Postgres, and the clients this process ran.
fn cluster_cpu(cluster: &Cluster) -> Cpu {
    let mut c: Cpu = cluster
        .pids()
        .into_iter()
        .filter_map(|(name, pid)| Some((name, cpu::process_seconds(pid)?)))
        .collect();
    if let Some(pg) = postgres_seconds() {
        c.insert("postgres".into(), pg);
    }
    c.insert("client".into(), cpu::reaped_children_seconds());
    c
}

fn diff(before: &Cpu, after: &Cpu) -> Cpu {
    after
        .iter()
        .map(|(k, v)| (k.clone(), (v - before.get(k).copied().unwrap_or(0.0)).max(0.0)))
        .collect()
}

fn measure(snapshot: impl Fn() -> Cpu, work: impl FnOnce() -> Result<()>) -> Result<Phase> {
    let before = snapshot();
    let t = Instant::now();
    work()?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(Phase {
        seconds,
        cpu: diff(&before, &snapshot()),
    })
}

async fn measure_async<F: std::future::Future<Output = Result<T>>, T>(
    snapshot: impl Fn() -> Cpu,
    work: F,
) -> Result<(Phase, T)> {
    let before = snapshot();
    let t = Instant::now();
    let out = work.await?;
    let seconds = t.elapsed().as_secs_f64();
    Ok((
        Phase {
            seconds,
            cpu: diff(&before, &snapshot()),
        },
        out,
    ))
}

fn per_gib(cpu: &Cpu, bytes: u64) -> String {
    let gib = bytes as f64 / GIB;
    let parts: Vec<String> = cpu.iter().map(|(k, v)| format!("{k} {:.2}", v / gib)).collect();
    parts.join(", ")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn main() -> Result<()> {
    // The allocator is tuned before any thread starts.
    transport::runtime()?.block_on(main_async())
}

const USAGE: &str = "dmc-bench [--size-mib N] [--runs R] [--work DIR] [--bacula] [--hop-only]
  backs up and restores an object through a local cluster (R runs, default 3; medians),
  beside cp, one raw quinn connection and (--bacula) Bacula 9.6 on the same bytes";

/// Refuse what dmc-bench does not know instead of running the whole
/// benchmark on a misspelt option (or `--help`).
fn check_args() -> Result<()> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bacula" | "--hop-only" => {}
            "--size-mib" | "--work" | "--runs" => {
                args.next().with_context(|| format!("{a} needs a value\n{USAGE}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(())
}

async fn main_async() -> Result<()> {
    check_args()?;
    let with_bacula = std::env::args().any(|a| a == "--bacula");
    let size_mib: u64 = arg("--size-mib")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(if with_bacula { 4096 } else { 1024 });
    let work = PathBuf::from(arg("--work").unwrap_or_else(|| "work/bench".into()));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    if with_bacula && !dmc_tests::bacula::installed() {
        bail!("--bacula needs Debian's bacula packages: run deploy/bench-peers.sh, which installs them");
    }
    let spec = ScenarioSpec {
        object_size: size_mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 16 << 20,
        seed: 7,
    };
    eprintln!("preparing {size_mib} MiB of volumes in {}", work.display());
    let layout = scenario::make_layout(&work.join("volumes"), &spec)?;
    let object_size: u64 = layout.extents.iter().map(|e| e.length).sum();
    if std::env::args().any(|a| a == "--hop-only") {
        return hop_only(&work, &layout, object_size).await;
    }
    let mut cluster = Cluster::start(&work, &scenario::cluster_spec(&layout, &spec)).await?;

    let runs: usize = arg("--runs").map(|s| s.parse()).transpose()?.unwrap_or(3).max(1);
    let restored = cluster.restored("restored.bin");
    let mut ours: Vec<Run> = Vec::new();
    let mut last = None;
    for run in 1..=runs {
        eprintln!("run {run}: backup");
        let mut backup = None;
        let b = measure(
            || cluster_cpu(&cluster),
            || {
                backup = Some(scenario::backup(&cluster, &layout)?);
                Ok(())
            },
        )?;
        let backup = backup.context("no backup result")?;
        eprintln!("run {run}: restore onto volumes");
        let rv = measure(
            || cluster_cpu(&cluster),
            || scenario::restore_to_volumes(&cluster, &layout, backup.abs_id),
        )?;
        scenario::verify_volumes(&layout)?;
        eprintln!("run {run}: restore into a file");
        let rf = measure(
            || cluster_cpu(&cluster),
            || scenario::restore_to_file(&cluster, backup.abs_id, &restored),
        )?;
        scenario::verify_file(&layout, &restored)?;
        ours.push(Run {
            backup: b,
            restore_volumes: Some(rv),
            restore_file: rf,
        });
        last = Some(backup);
    }
    let backup = last.context("no run")?;
    let rss_one = cluster.peak_rss();

    // Eight channels at once: eight objects backed up together through the
    // pair, interleaved on its drive, then each restored; memory must stay
    // bounded whatever the number of channels.
    eprintln!("8 backups at once, then 8 restores at once");
    let objects = scenario::scatter_objects(&layout, &work, object_size / 8, 8, 101)?;
    let many_bytes: u64 = objects
        .iter()
        .map(|o| o.extents.iter().map(|e| e.length).sum::<u64>())
        .sum();
    let mut results = Vec::new();
    let many_backup = measure(
        || cluster_cpu(&cluster),
        || {
            results = scenario::backup_concurrently(&cluster, &objects)?;
            Ok(())
        },
    )?;
    let many_restore = measure(
        || cluster_cpu(&cluster),
        || {
            std::thread::scope(|s| {
                let handles: Vec<_> = objects
                    .iter()
                    .zip(&results)
                    .enumerate()
                    .map(|(i, (o, r))| {
                        let (cluster, layout) = (&cluster, &layout);
                        s.spawn(move || {
                            let abs = r["abs_id"].as_u64().context("no abs_id")?;
                            let dest = cluster.restored(&format!("many{i}.bin"));
                            scenario::restore_and_verify(cluster, layout, abs, &o.extents, &dest)?;
                            std::fs::remove_file(&dest).ok();
                            Ok::<(), anyhow::Error>(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a restore thread panicked"))?)
            })
        },
    )?;
    let rss = cluster.peak_rss();
    cluster.stop();

    // Reference 1: cp of the same bytes on the same disk, synced.
    let copy = work.join("cp-reference.bin");
    let cp_phase = measure(
        || {
            let mut c = Cpu::new();
            c.insert("cp".into(), cpu::reaped_children_seconds());
            c
        },
        || {
            let st = Command::new("cp").arg(&restored).arg(&copy).status()?;
            if !st.success() {
                bail!("cp failed");
            }
            Command::new("sync").arg(&copy).status()?;
            Ok(())
        },
    )?;
    std::fs::remove_file(&copy).ok();
    // Reference 2: one raw quinn stream on loopback, same TLS (both ends in
    // this process).
    let me = std::process::id();
    let own = || {
        let mut c = Cpu::new();
        c.insert("both ends".into(), cpu::process_seconds(me).unwrap_or(0.0));
        c
    };
    let (quic_phase, quic_mbs) = measure_async(own, async {
        Ok(transport::raw_loopback_throughput(object_size).await?)
    })
    .await?;
    // The primary node → front-end hop alone (see dmc_tests::hop): our
    // framing and checks without disks, then reading a volume and writing
    // the spool.
    let (hop_mem_phase, hop_mem_mbs) = measure_async(own, async {
        hop::hop_throughput(object_size, hop::Source::Memory, hop::Sink::Discard).await
    })
    .await?;
    let volume_file = layout.volumes[0].1.clone();
    let hop_spool = work.join("hop-spool");
    let (hop_disk_phase, hop_disk_mbs) = measure_async(own, async {
        hop::hop_throughput(object_size, hop::Source::File(volume_file), hop::Sink::Spool(hop_spool)).await
    })
    .await?;
    let cp_mbs = cp_phase.mbs(object_size);

    println!(
        "object: {size_mib} MiB ({object_size} bytes) in {} extents over 2 volumes; {} bytes of whole tracks in {} segments on {}",
        layout.extents.len(),
        backup.bytes,
        backup.segments,
        backup.tapes.join(",")
    );
    println!("MB = 10^6 bytes; MB/s of the object's bytes; CPU-seconds per GiB of them, per process and in total");
    println!("{runs} runs; comparisons use the run with the median time\n");
    println!(
        "{:<36} {:>8} {:>6} {:>6} {:>9}  per process",
        "", "MB/s", "/ cp", "/ quic", "CPU-s/GiB"
    );
    let row = |name: &str, p: &Phase, bytes: u64| {
        let mbs = p.mbs(bytes);
        println!(
            "{:<36} {:>8.1} {:>6.2} {:>6.2} {:>9.2}  {}",
            name,
            mbs,
            mbs / cp_mbs,
            mbs / quic_mbs,
            p.total_cpu() / (bytes as f64 / GIB),
            per_gib(&p.cpu, bytes)
        );
    };
    for (i, r) in ours.iter().enumerate() {
        row(&format!("backup, run {}", i + 1), &r.backup, object_size);
        if let Some(rv) = &r.restore_volumes {
            row(&format!("restore onto volumes, run {}", i + 1), rv, object_size);
        }
        row(
            &format!("restore into a file, run {}", i + 1),
            &r.restore_file,
            object_size,
        );
    }
    let ours_med = Run::median(&ours);
    row("backup (median)", &ours_med.backup, object_size);
    row("restore into a file (median)", &ours_med.restore_file, object_size);
    let gib = object_size as f64 / GIB;
    println!(
        "{:<36} {:>8.1} {:>6} {:>6} {:>9.2}",
        "reference: cp + sync, same disk",
        cp_mbs,
        "",
        "",
        cp_phase.total_cpu() / gib
    );
    println!(
        "{:<36} {:>8.1} {:>6} {:>6} {:>9.2}  (sender and receiver)",
        "reference: raw quinn, loopback",
        quic_mbs,
        "",
        "",
        quic_phase.total_cpu() / gib
    );
    row("hop node → front-end, no disks", &hop_mem_phase, object_size);
    row("hop, volume read → spool write", &hop_disk_phase, object_size);
    let _ = (hop_mem_mbs, hop_disk_mbs);
    row("8 backups at once (one drive)", &many_backup, many_bytes);
    row("8 restores at once (verified)", &many_restore, many_bytes);
    let rss_line: Vec<String> = rss_one.iter().map(|(n, kb)| format!("{n} {}", mib(*kb))).collect();
    println!("peak RSS, one channel: {}", rss_line.join(", "));
    let rss_line: Vec<String> = rss.iter().map(|(n, kb)| format!("{n} {}", mib(*kb))).collect();
    println!("peak RSS, after 8 channels at once: {}", rss_line.join(", "));

    if with_bacula {
        let bacula_work = work.join("bacula");
        eprintln!("Bacula: starting the daemons");
        let bacula = Bacula::start(&bacula_work, &restored).await?;
        let snap = || {
            let mut c: Cpu = bacula.cpu().into_iter().collect();
            if let Some(pg) = postgres_seconds() {
                c.insert("postgres".into(), pg);
            }
            c.insert("bconsole".into(), cpu::reaped_children_seconds());
            c
        };
        let mut theirs = Vec::new();
        for run in 1..=runs {
            eprintln!("Bacula run {run}: backup");
            let (bb, (job, _)) = measure_async(snap, bacula.backup()).await?;
            eprintln!("Bacula run {run}: restore");
            let (br, (_, landed)) = measure_async(snap, bacula.restore(job, &restored)).await?;
            same_bytes(&restored, &landed)?;
            bacula.clean();
            theirs.push(Run {
                backup: bb,
                restore_volumes: None,
                restore_file: br,
            });
        }
        let brss = bacula.peak_rss();
        drop(bacula);

        println!("\nBacula 9.6 (Debian), same bytes, same run: plain TCP, no signatures, 1 MiB blocks, file volume, Postgres catalog");
        println!(
            "{:<36} {:>8} {:>8} {:>9} {:>8}  per process",
            "", "MB/s", "ours ÷", "CPU-s/GiB", "ours ÷"
        );
        let row2 = |name: &str, t: &Phase, o: &Phase| {
            let (tm, om) = (t.mbs(object_size), o.mbs(object_size));
            let (tc, oc) = (t.total_cpu() / gib, o.total_cpu() / gib);
            println!(
                "{:<36} {:>8.1} {:>8.2} {:>9.2} {:>8.2}  {}",
                name,
                tm,
                om / tm,
                tc,
                oc / tc,
                per_gib(&t.cpu, object_size)
            );
        };
        for (i, t) in theirs.iter().enumerate() {
            row2(&format!("backup, run {}", i + 1), &t.backup, &ours_med.backup);
            row2(
                &format!("restore, run {}", i + 1),
                &t.restore_file,
                &ours_med.restore_file,
            );
        }
        let theirs_med = Run::median(&theirs);
        row2("backup (median)", &theirs_med.backup, &ours_med.backup);
        row2(
            "restore into a file (median)",
            &theirs_med.restore_file,
            &ours_med.restore_file,
        );
        let rss_line: Vec<String> = brss.iter().map(|(n, kb)| format!("{n} {}", mib(*kb))).collect();
        println!("peak RSS: {}", rss_line.join(", "));
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// Whether two files hold the same bytes.
/// `--hop-only`: the primary node → front-end hop beside one raw quinn
/// stream, no cluster (each measured `--runs` times, medians printed).
async fn hop_only(work: &Path, layout: &scenario::Layout, bytes: u64) -> Result<()> {
    let runs: usize = arg("--runs").map(|s| s.parse()).transpose()?.unwrap_or(3).max(1);
    let me = std::process::id();
    let own = || {
        let mut c = Cpu::new();
        c.insert("both ends".into(), cpu::process_seconds(me).unwrap_or(0.0));
        c
    };
    let gib = bytes as f64 / GIB;
    let mut rows: Vec<(&str, Vec<Phase>)> = vec![
        ("raw quinn, one stream", vec![]),
        ("hop, no disks", vec![]),
        ("hop, volume read → spool write", vec![]),
    ];
    for run in 1..=runs {
        eprintln!("hop run {run}");
        let (p, _) = measure_async(own, async { Ok(transport::raw_loopback_throughput(bytes).await?) }).await?;
        rows[0].1.push(p);
        let (p, _) = measure_async(own, hop::hop_throughput(bytes, hop::Source::Memory, hop::Sink::Discard)).await?;
        rows[1].1.push(p);
        let source = hop::Source::File(layout.volumes[0].1.clone());
        let sink = hop::Sink::Spool(work.join("hop-spool"));
        let (p, _) = measure_async(own, hop::hop_throughput(bytes, source, sink)).await?;
        rows[2].1.push(p);
    }
    let raw = Phase::median(&rows[0].1).mbs(bytes);
    println!("{bytes} bytes, {runs} runs, medians; MB = 10^6 bytes; both ends in this process");
    println!("{:<36} {:>8} {:>6} {:>9}", "", "MB/s", "/ quic", "CPU-s/GiB");
    for (name, phases) in &rows {
        let p = Phase::median(phases);
        let mbs = p.mbs(bytes);
        println!(
            "{:<36} {:>8.1} {:>6.2} {:>9.2}",
            name,
            mbs,
            mbs / raw,
            p.total_cpu() / gib
        );
    }
    Ok(())
}

fn same_bytes(a: &Path, b: &Path) -> Result<()> {
    let fa = std::fs::File::open(a).with_context(|| format!("opening {}", a.display()))?;
    let fb = std::fs::File::open(b).with_context(|| format!("opening {}", b.display()))?;
    dmc_tests::fixture::compare(fa, fb, "Bacula's restore")?;
    Ok(())
}
