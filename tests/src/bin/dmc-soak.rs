//! `dmc-soak MINUTES`: continuous backups and restores on a local cluster
//! while random processes (primary node, front-end, back-end, control
//! station, and Postgres when it is this run's own) are killed at random
//! instants and started again. Reports jobs run, kills, failures by reason,
//! and data lost: every backup that reported success is restored at the
//! end and compared with the object; any difference is data lost, and the
//! run fails. Run through `deploy/soak.sh MINUTES` (not part of the suite).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dmc_tests::cluster::{BE, FE, PRIMARY, STATION};
use dmc_tests::faults::{assert_settled, backup_args, fault_cluster, outcome, Job};
use dmc_tests::fixture;
use dmc_tests::pg::TestDb;
use rand::{Rng, SeedableRng};

/// A temporary directory that stays when the soak fails.
struct KeepOnPanic(Option<tempfile::TempDir>);

impl KeepOnPanic {
    fn path(&self) -> &std::path::Path {
        self.0.as_ref().map(|t| t.path()).unwrap_or(std::path::Path::new("."))
    }
}

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(t) = self.0.take() {
                eprintln!("soak failed: logs kept in {}", t.keep().display());
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let minutes: f64 = std::env::args()
        .nth(1)
        .map(|m| m.parse().context("MINUTES: a number"))
        .transpose()?
        .unwrap_or(5.0);
    let seed: u64 = std::env::var("DMC_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Kept when the soak fails (its logs say what happened), removed when it passes.
    let work = tempfile::Builder::new().prefix("dmc-soak-").tempdir()?;
    let work = KeepOnPanic(Some(work));
    let (layout, mut cluster) = fault_cluster(work.path(), seed, |c| {
        c.drives_per_pair = vec![2];
        c.drive_speed = 40.0;
    })
    .await?;
    let own_db = TestDb::cluster_dir().is_some();
    let args = backup_args(&layout.extents_file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("soak: {minutes} min, seed {seed}, Postgres kills: {own_db}");

    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let mut completed_backups: Vec<u64> = Vec::new();
    let (mut jobs, mut kills) = (0u64, BTreeMap::<String, u64>::new());
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok = 0u64;
    while Instant::now() < deadline {
        // A backup, or a restore of a completed backup into a file.
        let restore = !completed_backups.is_empty() && rng.random_bool(0.4);
        let name = format!("soak-{jobs}.bin");
        let dest = cluster.restored(&name);
        let to = cluster.to_file(&dest);
        let abs = completed_backups
            .get(rng.random_range(0..completed_backups.len().max(1)))
            .copied()
            .unwrap_or(0)
            .to_string();
        let job_args: Vec<&str> = if restore {
            vec!["restore", &abs, "--to-file", &to]
        } else {
            args.clone()
        };
        let job = Job::start(&cluster, &job_args);
        jobs += 1;
        // Kill something at a random instant of the job (or let it be).
        let wait = Duration::from_millis(rng.random_range(100..4000));
        let start = Instant::now();
        while start.elapsed() < wait && !job.ended() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !job.ended() && rng.random_bool(0.8) {
            let victims: &[&str] = if own_db {
                &[PRIMARY, FE, BE, STATION, "postgres"]
            } else {
                &[PRIMARY, FE, BE, STATION]
            };
            let victim = victims[rng.random_range(0..victims.len())];
            *kills.entry(victim.to_string()).or_default() += 1;
            match victim {
                STATION => cluster.restart_station(Duration::from_secs(60))?,
                "postgres" => {
                    if !TestDb::crash_server() {
                        bail!("could not crash Postgres");
                    }
                    std::thread::sleep(Duration::from_millis(rng.random_range(200..5000)));
                    TestDb::restart_server();
                }
                v => {
                    let before = cluster.boots()?;
                    cluster.kill(v)?;
                    cluster.restart(v)?;
                    cluster.wait_registered(&[v], &before, Duration::from_secs(60))?;
                }
            }
        }
        let out = job.join();
        let how = outcome(&out, "soak job");
        if out.status.success() {
            ok += 1;
            if restore {
                let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
                fixture::compare(source, std::fs::File::open(&dest)?, &name)
                    .with_context(|| format!("DATA LOST: restore of ABS {abs} into {name} differs"))?;
            } else {
                let line = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .rfind(|l| l.starts_with('{'))
                    .map(str::to_string)
                    .context("a successful backup printed no result")?;
                let v: serde_json::Value = serde_json::from_str(&line)?;
                completed_backups.push(v["abs_id"].as_u64().context("abs_id")?);
            }
        } else {
            // The reason without the job's ids ("smapp: error: backup of
            // obj (ABS 7, channel 12): REASON").
            let kind = if restore { "restore" } else { "backup" };
            let reason = format!("{kind}: {}", how.split(": ").skip(3).collect::<Vec<_>>().join(": "));
            *failures.entry(reason).or_default() += 1;
        }
        let _ = std::fs::remove_file(&dest);
        assert_settled(&cluster, &format!("soak job {jobs}"));
    }

    // Every backup that reported success restores byte-identical. A
    // restore that fails (no fault is injected any more) and one that
    // gives wrong bytes are counted apart: the first may be a stuck
    // cluster, the second is data lost.
    let (mut wrong, mut unrestorable) = (0u64, Vec::<String>::new());
    for abs in &completed_backups {
        let dest = cluster.restored("final.bin");
        match cluster.smapp(&["restore", &abs.to_string(), "--to-file", &cluster.to_file(&dest)]) {
            Err(e) => unrestorable.push(format!("ABS {abs}: {e}")),
            Ok(_) => {
                let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
                if let Err(e) = std::fs::File::open(&dest)
                    .map_err(anyhow::Error::from)
                    .and_then(|f| fixture::compare(source, f, "final"))
                {
                    wrong += 1;
                    eprintln!("DATA LOST: ABS {abs} restored with wrong bytes: {e:#}");
                }
            }
        }
        let _ = std::fs::remove_file(&dest);
    }
    println!("soak: {minutes} min, seed {seed}");
    println!("  jobs run:        {jobs} ({ok} succeeded)");
    println!(
        "  kills:           {} ({})",
        kills.values().sum::<u64>(),
        kills
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  failures:        {}", failures.values().sum::<u64>());
    for (reason, n) in &failures {
        println!("    {n:>4} × {reason}");
    }
    println!(
        "  backups checked: {} (every completed backup restored at the end)",
        completed_backups.len()
    );
    println!("  not restorable:  {}", unrestorable.len());
    for u in &unrestorable {
        println!("    {u}");
    }
    println!("  wrong bytes:     {wrong}");
    cluster.stop();
    let mut work = work;
    if wrong > 0 || !unrestorable.is_empty() {
        if let Some(t) = work.0.take() {
            eprintln!("logs kept in {}", t.keep().display());
        }
        bail!(
            "of the completed backups, {} could not be restored and {wrong} restored with wrong bytes",
            unrestorable.len()
        );
    }
    Ok(())
}
