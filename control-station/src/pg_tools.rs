//! The PostgreSQL client programs a catalog backup and restore run:
//! `pg_dump` (custom format: compressed, consistent — one repeatable-read
//! snapshot — and restorable table by table) and `pg_restore`.
//!
//! Which binaries: `--pg-bin DIR` when given; otherwise the newest
//! `/usr/lib/postgresql/N/bin` (Debian's layout: a `pg_dump` at least as new
//! as the server); otherwise the ones on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

/// Where the PostgreSQL programs are.
#[derive(Debug, Clone, Default)]
pub struct PgTools {
    /// The directory holding `pg_dump` and `pg_restore` (None: search).
    pub bin: Option<PathBuf>,
}

impl PgTools {
    /// The path of program `tool`.
    pub fn program(&self, tool: &str) -> PathBuf {
        if let Some(dir) = &self.bin {
            return dir.join(tool);
        }
        newest_debian_bin()
            .map(|d| d.join(tool))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(tool))
    }

    /// Write a consistent dump of database `url` to `out` in pg_dump's
    /// custom format (objects without owners, so it restores under any
    /// role). Returns its length in bytes.
    pub async fn dump(&self, url: &str, out: &Path) -> Result<u64> {
        let mut cmd = tokio::process::Command::new(self.program("pg_dump"));
        cmd.arg("--format=custom").arg("--no-owner").arg("--no-privileges");
        cmd.arg("--file").arg(out).arg("--dbname").arg(url);
        run(cmd, "pg_dump").await?;
        let len = tokio::fs::metadata(out)
            .await
            .with_context(|| format!("reading the length of the dump {}", out.display()))?
            .len();
        Ok(len)
    }

    /// Restore the custom-format dump `dump` into database `url`, in one
    /// transaction: all of it, or nothing.
    pub async fn restore(&self, url: &str, dump: &Path) -> Result<()> {
        let mut cmd = tokio::process::Command::new(self.program("pg_restore"));
        cmd.arg("--no-owner")
            .arg("--no-privileges")
            .arg("--exit-on-error")
            .arg("--single-transaction");
        cmd.arg("--dbname").arg(url).arg(dump);
        run(cmd, "pg_restore").await
    }
}

/// Run a PostgreSQL program; its standard error is the failure's reason.
async fn run(mut cmd: tokio::process::Command, what: &str) -> Result<()> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let program = PathBuf::from(cmd.as_std().get_program());
    let out = cmd.output().await.with_context(|| {
        format!(
            "starting {what} ({}; --pg-bin DIR names its directory)",
            program.display()
        )
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{what} ({}) failed ({}): {}",
            program.display(),
            out.status,
            stderr.trim()
        );
    }
    Ok(())
}

/// The newest `/usr/lib/postgresql/N/bin`.
fn newest_debian_bin() -> Option<PathBuf> {
    let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.is_dir())
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_directory_names_the_program() {
        let t = PgTools {
            bin: Some(PathBuf::from("/opt/pg/bin")),
        };
        assert_eq!(t.program("pg_dump"), PathBuf::from("/opt/pg/bin/pg_dump"));
    }

    #[tokio::test]
    async fn a_failing_program_reports_its_stderr() {
        let t = PgTools {
            bin: Some(PathBuf::from("/nonexistent-pg")),
        };
        let e = t
            .dump("postgres://nowhere/x", Path::new("/tmp/x.dump"))
            .await
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("starting pg_dump") && msg.contains("--pg-bin"), "{msg}");
    }
}
