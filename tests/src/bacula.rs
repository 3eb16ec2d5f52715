//! Bacula 9.6 (Debian's packages) as the peer a benchmark measures beside
//! us, on the same machine, the same bytes, in the same run: a director,
//! storage daemon and file daemon on loopback (plain TCP), its catalog in
//! its own database on the benchmark's Postgres, a file volume with 1 MiB
//! blocks, no signatures, no compression, no data spooling (what Bacula
//! users run for speed). `deploy/bench-peers.sh` installs the packages.
//!
//! A job's time runs from `bconsole` being asked to run it to the catalog
//! saying it terminated (polled every 50 ms), so it includes Bacula's job
//! start-up, as ours includes our channel set-up.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sqlx::{Connection, PgConnection};

use crate::cpu;
use crate::pg::TestDb;

/// The daemons, in the order they are started.
pub const DAEMONS: [&str; 3] = ["bacula-sd", "bacula-fd", "bacula-dir"];

/// A running Bacula with its own catalog database.
pub struct Bacula {
    work: PathBuf,
    daemons: Vec<(String, Child)>,
    db: TestDb,
}

fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Host and port of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> Result<(String, u16)> {
    let rest = url.split("://").nth(1).ok_or_else(|| anyhow!("not a URL: {url}"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    Ok((host.to_string(), port.parse().context("port")?))
}

/// Whether Bacula's daemons are installed.
pub fn installed() -> bool {
    [
        "/usr/sbin/bacula-dir",
        "/usr/sbin/bacula-sd",
        "/usr/sbin/bacula-fd",
        "/usr/sbin/bconsole",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
}

impl Bacula {
    /// Create the catalog, write the configurations (the job backs up
    /// `file`), start the daemons and wait until the director answers.
    pub async fn start(work: &Path, file: &Path) -> Result<Bacula> {
        if !installed() {
            bail!("Bacula is not installed: run deploy/bench-peers.sh, which installs Debian's bacula packages");
        }
        for d in ["etc", "dir", "sd", "fd", "run", "volumes", "restore", "log"] {
            std::fs::create_dir_all(work.join(d))?;
        }
        let db = TestDb::new().await;
        let (host, port) = host_port(db.url())?;
        let tables = Command::new("/usr/share/bacula-director/make_postgresql_tables")
            .env("db_name", db.name())
            .args(["-h", &host, "-p", &port.to_string(), "-U", "postgres", "-q"])
            .stdout(Stdio::null())
            .output()
            .context("running make_postgresql_tables")?;
        if !tables.status.success() {
            bail!(
                "creating Bacula's catalog failed: {}",
                String::from_utf8_lossy(&tables.stderr)
            );
        }
        let (dir_port, fd_port, sd_port) = (free_tcp_port()?, free_tcp_port()?, free_tcp_port()?);
        let w = work.display();
        let f = file.display();
        let dbname = db.name();
        std::fs::write(
            work.join("etc/bacula-dir.conf"),
            format!(
                r#"Director {{
  Name = bench-dir
  DIRport = {dir_port}
  DirAddress = 127.0.0.1
  QueryFile = "/etc/bacula/scripts/query.sql"
  WorkingDirectory = "{w}/dir"
  PidDirectory = "{w}/run"
  Maximum Concurrent Jobs = 1
  Password = "bench-console"
  Messages = Daemon
}}
Catalog {{
  Name = BenchCatalog
  dbname = "{dbname}"
  dbuser = "postgres"
  dbpassword = ""
  DB Address = "{host}"
  DB Port = {port}
}}
Client {{
  Name = bench-fd
  Address = 127.0.0.1
  FDPort = {fd_port}
  Catalog = BenchCatalog
  Password = "bench-fd"
  AutoPrune = no
}}
Storage {{
  Name = File1M
  Address = 127.0.0.1
  SDPort = {sd_port}
  Password = "bench-sd"
  Device = Dev1M
  Media Type = File1M
}}
FileSet {{
  Name = Object
  Include {{
    Options {{
      noatime = yes
    }}
    File = {f}
  }}
}}
Job {{
  Name = bench
  Type = Backup
  Level = Full
  Client = bench-fd
  FileSet = Object
  Storage = File1M
  Pool = BenchPool
  Messages = Standard
  Spool Data = no
  Spool Attributes = yes
  Accurate = no
}}
Job {{
  Name = RestoreFiles
  Type = Restore
  Client = bench-fd
  FileSet = Object
  Storage = File1M
  Pool = BenchPool
  Messages = Standard
  Where = {w}/restore
}}
Pool {{
  Name = BenchPool
  Pool Type = Backup
  Recycle = no
  AutoPrune = no
  Maximum Volume Jobs = 1
  Maximum Volume Bytes = 100G
  Label Format = "BenchVol-"
}}
Pool {{
  Name = Default
  Pool Type = Backup
}}
Messages {{
  Name = Standard
  append = "{w}/log/bacula.log" = all, !skipped
  catalog = all
}}
Messages {{
  Name = Daemon
  append = "{w}/log/bacula.log" = all, !skipped
}}
"#
            ),
        )?;
        std::fs::write(
            work.join("etc/bacula-sd.conf"),
            format!(
                r#"Storage {{
  Name = bench-sd
  SDPort = {sd_port}
  SDAddress = 127.0.0.1
  WorkingDirectory = "{w}/sd"
  Pid Directory = "{w}/run"
  Plugin Directory = "/usr/lib/bacula"
}}
Director {{
  Name = bench-dir
  Password = "bench-sd"
}}
Device {{
  Name = Dev1M
  Media Type = File1M
  Device Type = File
  Archive Device = {w}/volumes
  LabelMedia = yes
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  Maximum Block Size = 1048576
}}
Messages {{
  Name = Standard
  director = bench-dir = all
}}
"#
            ),
        )?;
        std::fs::write(
            work.join("etc/bacula-fd.conf"),
            format!(
                r#"Director {{
  Name = bench-dir
  Password = "bench-fd"
}}
FileDaemon {{
  Name = bench-fd
  FDport = {fd_port}
  FDAddress = 127.0.0.1
  WorkingDirectory = "{w}/fd"
  Pid Directory = "{w}/run"
  Plugin Directory = "/usr/lib/bacula"
}}
Messages {{
  Name = Standard
  director = bench-dir = all, !skipped, !restored
}}
"#
            ),
        )?;
        std::fs::write(
            work.join("etc/bconsole.conf"),
            format!(
                "Director {{\n  Name = bench-dir\n  DIRport = {dir_port}\n  address = 127.0.0.1\n  Password = \"bench-console\"\n}}\n"
            ),
        )?;
        let mut bacula = Bacula {
            work: work.to_path_buf(),
            daemons: Vec::new(),
            db,
        };
        for d in DAEMONS {
            let short = d.trim_start_matches("bacula-");
            let conf = work.join(format!("etc/bacula-{short}.conf"));
            let log = std::fs::File::create(work.join(format!("log/{short}.out")))?;
            let child = Command::new(format!("/usr/sbin/{d}"))
                .arg("-f")
                .arg("-c")
                .arg(&conf)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {d}"))?;
            bacula.daemons.push((d.to_string(), child));
        }
        let t = Instant::now();
        loop {
            let out = bacula.console("status dir\n")?;
            if out.contains("Daemon started") {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("the Bacula director did not answer within 30 s: {out}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(bacula)
    }

    /// Run `bconsole` with `input`; its output.
    pub fn console(&self, input: &str) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new("/usr/sbin/bconsole")
            .arg("-c")
            .arg(self.work.join("etc/bconsole.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting bconsole")?;
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("bconsole stdin"))?
            .write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn job_id(out: &str) -> Result<i64> {
        out.split("JobId=")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bconsole queued no job: {out}"))
    }

    /// Wait until job `id` terminated; its status letter.
    async fn wait(&self, id: i64) -> Result<String> {
        let mut conn = PgConnection::connect(self.db.url()).await?;
        let t = Instant::now();
        loop {
            let row: Option<(String,)> = sqlx::query_as("SELECT jobstatus::text FROM job WHERE jobid = $1")
                .bind(id)
                .fetch_optional(&mut conn)
                .await?;
            if let Some((status,)) = row {
                if ["T", "W", "E", "e", "f", "A"].contains(&status.as_str()) {
                    let _ = conn.close().await;
                    return Ok(status);
                }
            }
            if t.elapsed() > Duration::from_secs(3600) {
                bail!("Bacula job {id} did not finish within an hour");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Back up the file; returns the job id and the seconds it took.
    pub async fn backup(&self) -> Result<(i64, f64)> {
        let t = Instant::now();
        let id = Self::job_id(&self.console("run job=bench yes\n")?)?;
        let status = self.wait(id).await?;
        let secs = t.elapsed().as_secs_f64();
        if status != "T" {
            bail!(
                "Bacula backup job {id} ended with status {status}; see {}",
                self.log().display()
            );
        }
        Ok((id, secs))
    }

    /// Restore job `id` under `restore/`; returns the seconds it took and
    /// where the file landed.
    pub async fn restore(&self, id: i64, file: &Path) -> Result<(f64, PathBuf)> {
        let to = self.work.join("restore");
        let t = Instant::now();
        let out = self.console(&format!(
            "restore jobid={id} client=bench-fd where={} all done yes\n",
            to.display()
        ))?;
        let rid = Self::job_id(&out)?;
        let status = self.wait(rid).await?;
        let secs = t.elapsed().as_secs_f64();
        if status != "T" {
            bail!(
                "Bacula restore job {rid} ended with status {status}; see {}",
                self.log().display()
            );
        }
        let landed = to.join(file.strip_prefix("/").unwrap_or(file));
        Ok((secs, landed))
    }

    /// CPU-seconds each daemon used so far.
    pub fn cpu(&self) -> Vec<(String, f64)> {
        self.daemons
            .iter()
            .map(|(n, c)| (n.clone(), cpu::process_seconds(c.id()).unwrap_or(0.0)))
            .collect()
    }

    /// Peak resident memory (KiB) of each daemon.
    pub fn peak_rss(&self) -> Vec<(String, u64)> {
        self.daemons
            .iter()
            .filter_map(|(n, c)| Some((n.clone(), crate::cluster::peak_rss_kib(c.id())?)))
            .collect()
    }

    /// Delete the volumes and restored files (the daemons keep running).
    pub fn clean(&self) {
        for d in ["volumes", "restore"] {
            let _ = std::fs::remove_dir_all(self.work.join(d));
            let _ = std::fs::create_dir_all(self.work.join(d));
        }
    }

    pub fn log(&self) -> PathBuf {
        self.work.join("log/bacula.log")
    }
}

impl Drop for Bacula {
    fn drop(&mut self) {
        for (_, c) in self.daemons.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_and_port_and_job_ids() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5555/db").unwrap(),
            ("127.0.0.1".to_string(), 5555)
        );
        assert_eq!(Bacula::job_id("Job queued. JobId=17\n").unwrap(), 17);
        assert!(Bacula::job_id("nothing").is_err());
    }
}
