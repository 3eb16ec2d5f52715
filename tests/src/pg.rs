//! A real Postgres for tests, with a fresh database per test.
//!
//! - If `DATABASE_URL` is set, that server is used: each [`TestDb`] creates
//!   its own uniquely named database there (and drops it when dropped).
//! - Otherwise a private cluster is started once per test process by
//!   `deploy/pg.sh` in a temporary directory on a free loopback port, and
//!   shared by every test of the binary; each [`TestDb`] still gets its own
//!   database. A detached watchdog stops the cluster and deletes its
//!   directory when the test process exits (statics are never dropped).
//!
//! Note: `DATABASE_URL` also switches sqlx's query macros to live mode at
//! compile time; build with `SQLX_OFFLINE=true` when it points at a server
//! without the catalog schema.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

/// One test's database: empty, uniquely named, on the shared server.
pub struct TestDb {
    url: String,
    name: String,
    admin_url: String,
    drop_on_drop: bool,
}

enum Server {
    /// `DATABASE_URL`: a server someone else runs.
    External { admin_url: String },
    /// Our own cluster in `dir`, stopped by the watchdog at exit.
    Private { admin_url: String, dir: PathBuf },
}

impl Server {
    fn admin_url(&self) -> &str {
        match self {
            Server::External { admin_url } | Server::Private { admin_url, .. } => admin_url,
        }
    }
}

static SERVER: OnceLock<Server> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server::External { admin_url: url },
        _ => start_private().unwrap_or_else(|e| panic!("cannot start a private Postgres for the tests: {e}")),
    })
}

/// `postgres://…/db?x` with the database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..host_end])
}

fn pg_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pg.sh")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn start_private() -> Result<Server, String> {
    // As root the server runs as `postgres`, which must be able to reach the
    // directory: stay under /tmp rather than a private TMPDIR.
    let base = if is_root() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("dmc-test-pg-")
        .tempdir_in(&base)
        .map_err(|e| format!("temp dir in {}: {e}", base.display()))?
        .keep();
    spawn_watchdog(&dir);
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let out = Command::new("bash")
            .arg(pg_sh())
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", pg_sh().display()))?;
        if out.status.success() {
            let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            return Ok(Server::Private {
                admin_url: with_database(&url, "postgres"),
                dir,
            });
        }
        last_error = format!(
            "pg.sh start {} {port} failed ({}): {}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Maybe the port was taken in between: stop whatever half-started.
        let _ = Command::new("bash").arg(pg_sh()).arg("stop").arg(&dir).output();
    }
    Err(last_error)
}

/// A detached shell that waits for this process to exit, then stops the
/// cluster and removes its directory. It runs in its own process group so a
/// Ctrl-C aimed at the tests does not kill it first.
fn spawn_watchdog(dir: &Path) {
    let script =
        r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; bash "$2" stop "$3" >/dev/null 2>&1; rm -rf "$3""#;
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("dmc-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(pg_sh())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        eprintln!("warning: no watchdog for the test Postgres in {}: {e}", dir.display());
    }
}

async fn admin_connection(admin_url: &str) -> Result<PgConnection, sqlx::Error> {
    let mut last = None;
    for _ in 0..20 {
        match PgConnection::connect(admin_url).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    Err(last.expect("at least one attempt"))
}

impl TestDb {
    /// A fresh, empty database for one test. Panics if no server can be had.
    pub async fn new() -> TestDb {
        let server = tokio::task::spawn_blocking(server)
            .await
            .expect("starting Postgres panicked");
        let admin_url = server.admin_url().to_owned();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("dmc_test_{}_{n}_{nanos:x}", std::process::id());
        let mut conn = admin_connection(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test Postgres at {admin_url}: {e}"));
        let mut attempt = 0;
        loop {
            // Concurrent CREATE DATABASE from one template can fail
            // transiently ("source database is being accessed").
            match conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await {
                Ok(_) => break,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("CREATE DATABASE {name} failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("CREATE DATABASE {name} on {admin_url}: {e}"),
            }
        }
        let _ = conn.close().await;
        let drop_on_drop = matches!(server, Server::External { .. });
        TestDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
            drop_on_drop,
        }
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL to the server's maintenance database (for CREATE/DROP DATABASE).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Crash the private server (`pg_ctl stop -m immediate`); false on an
    /// external server, which a test may not stop.
    pub fn crash_server() -> bool {
        let Some(dir) = Self::cluster_dir() else {
            return false;
        };
        let out = Command::new("bash").arg(pg_sh()).arg("crash").arg(dir).output();
        matches!(out, Ok(o) if o.status.success())
    }

    /// Start the private server again on its port (after [`TestDb::crash_server`]).
    pub fn restart_server() {
        let dir = Self::cluster_dir().expect("a private server");
        let port = std::fs::read_to_string(dir.join("port")).expect("the private server's port file");
        let out = Command::new("bash")
            .arg(pg_sh())
            .arg("start")
            .arg(dir)
            .arg(port.trim())
            .stdin(Stdio::null())
            .output()
            .expect("running pg.sh start");
        assert!(
            out.status.success(),
            "pg.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The private cluster's directory (None on an external server).
    pub fn cluster_dir() -> Option<&'static Path> {
        match SERVER.get()? {
            Server::Private { dir, .. } => Some(dir),
            Server::External { .. } => None,
        }
    }
}

impl Drop for TestDb {
    /// On an external server, drop the database (forcing out any connection
    /// a test left open). A private cluster is deleted whole at exit.
    fn drop(&mut self) {
        if !self.drop_on_drop {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() {
        assert_eq!(with_database("postgres://u@h:1/dmc", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u:p@h/dmc?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }
}
