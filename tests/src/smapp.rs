//! `smapp` against a [`Cluster`]: the status queries and jobs of the
//! tests, as the client, the operator or any certificate of the cluster.

use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

use crate::cluster::{bin, Cluster, CLIENT};

impl Cluster {
    /// Run `smapp` against this cluster as `client` (or `as_name`).
    pub fn smapp_as(&self, as_name: &str, args: &[&str]) -> Result<Output> {
        Command::new(bin("smapp")?)
            .args(["--station", &self.station.to_string(), "--name", as_name, "--json"])
            .arg("--pki")
            .arg(self.pki_of(as_name))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .context("running smapp")
    }

    /// Run `smapp --json ARGS`; fail with its stderr if it fails; parse its JSON lines.
    pub fn smapp(&self, args: &[&str]) -> Result<Vec<serde_json::Value>> {
        self.smapp_json_as(CLIENT, args)
    }

    /// Run `smapp restore ABS --to-file TO EXTRA…` as the client, which must
    /// fail; returns its error output.
    pub fn refused_restore(&self, abs_id: u64, to: &str, extra: &[&str]) -> String {
        self.refused_restore_status(abs_id, to, extra).1
    }

    /// [`Cluster::refused_restore`], with smapp's exit status: `(status,
    /// error output)`.
    pub fn refused_restore_status(&self, abs_id: u64, to: &str, extra: &[&str]) -> (Option<i32>, String) {
        let abs = abs_id.to_string();
        let mut args = vec!["restore", abs.as_str(), "--to-file", to];
        args.extend_from_slice(extra);
        let out = self.smapp_as(CLIENT, &args).expect("running smapp");
        assert!(!out.status.success(), "smapp {args:?} succeeded");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// [`Cluster::smapp`] as the operator.
    pub fn operator(&self, args: &[&str]) -> Result<Vec<serde_json::Value>> {
        self.smapp_json_as("operator", args)
    }

    /// The operator's `smapp ARGS`, which must fail with `code`: its error
    /// output.
    pub fn operator_fails(&self, args: &[&str], code: proto::domain::FailureCode) -> String {
        let out = self.smapp_as("operator", args).expect("running smapp");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(i32::from(code.exit_status())),
            "{args:?}: {err}"
        );
        err
    }

    /// [`Cluster::smapp`] with the certificate of `as_name` (e.g. `operator`).
    pub fn smapp_json_as(&self, as_name: &str, args: &[&str]) -> Result<Vec<serde_json::Value>> {
        let out = self.smapp_as(as_name, args)?;
        json_lines(&out, || format!("smapp {}", args.join(" ")))
    }

    /// `smapp --json tape inspect` of a tape in the library: one object per tape file.
    pub fn tape_inspect(&self, label: &str) -> Result<Vec<serde_json::Value>> {
        let image = self.library.join(format!("{label}.tap"));
        let out = Command::new(bin("smapp")?)
            .args(["--json", "tape", "inspect"])
            .arg(&image)
            .output()?;
        json_lines(&out, || format!("smapp tape inspect {}", image.display()))
    }
}

/// The JSON objects (one per line) a successful `smapp --json` printed;
/// its stderr in the error when it failed.
fn json_lines(out: &std::process::Output, what: impl Fn() -> String) -> Result<Vec<serde_json::Value>> {
    if !out.status.success() {
        bail!("{} failed: {}", what(), String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {l:?}")))
        .collect()
}
