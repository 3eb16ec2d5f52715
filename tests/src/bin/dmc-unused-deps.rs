//! Unused-dependency check of the workspace: every dependency a crate's
//! `Cargo.toml` names is used by at least one of its targets.
//!
//! rustc's `unused_crate_dependencies` lint speaks per target (a library,
//! each binary, each test), so it cannot be denied in the manifests: a
//! dependency only the binary uses is "unused" in the library. This runs
//! `cargo clippy` twice with the lint on (normal builds: libraries and
//! binaries; test builds: unit tests, integration tests, benches), and
//! reports a dependency only when **every**
//! target that receives it says it is unused: a normal dependency is seen
//! by all builds, a dev-dependency by the test builds only.
//!
//! `dmc-unused-deps` exits 1 and names each unused dependency with its
//! crate, 0 when there is none.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Unused extern crates per target name, for one `cargo clippy` run.
type Flags = BTreeMap<(String, String), BTreeSet<String>>;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo clippy ARGS` with the lint on: the targets each package built,
/// and what each target left unused.
fn check(args: &[&str]) -> Result<(BTreeMap<String, BTreeSet<String>>, Flags)> {
    // Through clippy: lint flags after `--` reach only the workspace's
    // crates, so the dependencies the lint step already checked are reused
    // (RUSTFLAGS would rebuild every one of them).
    let out = cargo()
        .args(["clippy", "--release", "--workspace", "--message-format=json", "--quiet"])
        .args(args)
        .args(["--", "-W", "unused_crate_dependencies"])
        .output()
        .context("running cargo clippy")?;
    if !out.status.success() {
        bail!(
            "cargo clippy {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut flags = Flags::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(pkg), Some(target)) = (v["package_id"].as_str(), v["target"]["name"].as_str()) else {
            continue;
        };
        match v["reason"].as_str() {
            Some("compiler-artifact") => {
                targets.entry(pkg.to_string()).or_default().insert(target.to_string());
            }
            Some("compiler-message") if v["message"]["code"]["code"] == "unused_crate_dependencies" => {
                // "extern crate `bytes` is unused in crate `control_station`"
                let text = v["message"]["message"].as_str().unwrap_or_default();
                if let Some(name) = text.split('`').nth(1) {
                    flags
                        .entry((pkg.to_string(), target.to_string()))
                        .or_default()
                        .insert(name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((targets, flags))
}

/// Whether every target of `pkg` built in a run flagged `krate`.
fn unused_in_all(run: &(BTreeMap<String, BTreeSet<String>>, Flags), pkg: &str, krate: &str) -> bool {
    let (targets, flags) = run;
    targets.get(pkg).is_some_and(|ts| {
        ts.iter().all(|t| {
            flags
                .get(&(pkg.to_string(), t.clone()))
                .is_some_and(|f| f.contains(krate))
        })
    })
}

fn main() -> Result<ExitCode> {
    let meta = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !meta.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&meta.stderr));
    }
    let meta: Value = serde_json::from_slice(&meta.stdout).context("parsing cargo metadata")?;
    eprintln!("dmc-unused-deps: checking normal builds");
    let normal = check(&["--lib", "--bins"])?;
    eprintln!("dmc-unused-deps: checking test builds");
    let tests = check(&["--tests", "--benches"])?;

    let mut unused = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let (Some(id), Some(name)) = (pkg["id"].as_str(), pkg["name"].as_str()) else {
            continue;
        };
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let kind = dep["kind"].as_str(); // null: normal, "dev", "build"
            if kind == Some("build") || dep["optional"] == true {
                continue;
            }
            let dep_name = dep["rename"].as_str().or(dep["name"].as_str()).unwrap_or_default();
            let krate = dep_name.replace('-', "_");
            let is_unused = match kind {
                Some("dev") => unused_in_all(&tests, id, &krate),
                _ => unused_in_all(&normal, id, &krate) && unused_in_all(&tests, id, &krate),
            };
            if is_unused {
                unused.push(format!(
                    "{name}: {dep_name}{}",
                    if kind == Some("dev") { " (dev)" } else { "" }
                ));
            }
        }
    }
    if unused.is_empty() {
        println!("dmc-unused-deps: every dependency is used");
        return Ok(ExitCode::SUCCESS);
    }
    println!("dmc-unused-deps: dependencies no target of their crate uses (remove them from its Cargo.toml):");
    for u in &unused {
        println!("  {u}");
    }
    Ok(ExitCode::FAILURE)
}
