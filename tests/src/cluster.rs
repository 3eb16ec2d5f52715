//! A local cluster of real processes on loopback: a control station with a
//! real Postgres catalog, a front-end/back-end mover pair, and a primary
//! node, all talking QUIC with mutual TLS. Used by the integration tests,
//! the demo and the benchmark.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::pg::TestDb;

/// Where the project's binaries are: `DMC_BIN_DIR`, else next to the
/// running executable (`target/<profile>`, also from `target/<profile>/deps`).
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(d) = std::env::var("DMC_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow!("no parent of {}", exe.display()))?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

pub fn bin(name: &str) -> Result<PathBuf> {
    let p = bin_dir()?.join(name);
    if !p.exists() {
        bail!(
            "{} not found: build the workspace first (cargo build --release --workspace)",
            p.display()
        );
    }
    Ok(p)
}

/// A free UDP port on loopback.
pub fn free_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A primary node besides `pn1`.
#[derive(Debug, Clone, Default)]
pub struct ExtraNode {
    pub name: String,
    pub volumes: Vec<(String, PathBuf)>,
    pub target_volumes: Vec<(String, PathBuf)>,
    /// More arguments of its `primary-node` command.
    pub args: Vec<String>,
}

/// Shape of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Volumes of the primary node `pn1`: (name, path).
    pub volumes: Vec<(String, PathBuf)>,
    pub block_size: u32,
    pub track_size: u32,
    /// Front-end segment threshold.
    pub segment_size: u64,
    /// Tape record size.
    pub tape_block_size: u32,
    /// Drives of each back-end; one front-end/back-end pair per entry
    /// (`fe1`/`be1`, `fe2`/`be2`, …). Drives are named `drive0`, `drive1`, …
    /// across the cluster. Empty means one pair with one drive.
    pub drives_per_pair: Vec<usize>,
    /// Capacity of each tape in bytes (0: unlimited).
    pub tape_capacity: u64,
    /// Speed limit of each drive in MB/s (0: unlimited).
    pub drive_speed: f64,
    /// Seconds the library takes to mount, and to dismount, a tape.
    pub mount_seconds: f64,
    /// Extra arguments for the station, every back-end and the primary node.
    pub station_args: Vec<String>,
    pub be_args: Vec<String>,
    /// Extra arguments of every front-end.
    pub fe_args: Vec<String>,
    pub pn_args: Vec<String>,
    /// Each front-end and its back-end use one spool directory (a pair on
    /// one machine: segments go to tape from it); false: separate ones, as
    /// a pair on two machines, so segments travel over QUIC.
    pub shared_spool: bool,
    /// Target volumes of `pn1` (`--target-volume`: the last 64 KiB of
    /// each file is its management region).
    pub target_volumes: Vec<(String, PathBuf)>,
    /// More primary nodes (`pn2`, …): each name with its volumes and its
    /// target volumes (same block and track size as `pn1`; their own state
    /// and restore directories).
    pub extra_nodes: Vec<ExtraNode>,
    /// Serve the station's metrics (`--metrics`, a free TCP port; see
    /// [`Cluster::station_metrics`]). Off by default: the exporter's port
    /// may not be free again at once when the station restarts.
    pub station_metrics: bool,
}

impl ClusterSpec {
    /// One pair with one drive, unlimited tapes and drives, instant mounts.
    pub fn new(volumes: Vec<(String, PathBuf)>, block_size: u32, track_size: u32, segment_size: u64) -> ClusterSpec {
        ClusterSpec {
            volumes,
            block_size,
            track_size,
            segment_size,
            tape_block_size: 65536,
            drives_per_pair: Vec::new(),
            tape_capacity: 0,
            drive_speed: 0.0,
            mount_seconds: 0.0,
            station_args: Vec::new(),
            be_args: Vec::new(),
            fe_args: Vec::new(),
            pn_args: Vec::new(),
            shared_spool: true,
            target_volumes: Vec::new(),
            extra_nodes: Vec::new(),
            station_metrics: false,
        }
    }
}

/// One running process.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
    /// Killed on purpose by a test.
    killed: bool,
}

/// A running cluster; everything is stopped on drop.
pub struct Cluster {
    pub work: PathBuf,
    pub pki: PathBuf,
    pub library: PathBuf,
    pub station: SocketAddr,
    pub procs: Vec<Proc>,
    pub db: TestDb,
    /// The primary node's restore directory (its `--restore-dir`).
    pub restore_dir: PathBuf,
    /// The station's Prometheus endpoint (its `--metrics`; see
    /// [`crate::metrics`]), when [`ClusterSpec::station_metrics`] asked for it.
    pub station_metrics: Option<SocketAddr>,
}

/// Names of the components (and their certificates).
pub const STATION: &str = "station";
pub const FE: &str = "fe1";
pub const BE: &str = "be1";
pub const PRIMARY: &str = "pn1";
pub const CLIENT: &str = "client";
/// A mover certificate no process uses (hostile tests).
pub const ROGUE_MOVER: &str = "rogue";
/// A primary-node certificate no process uses (hostile tests).
pub const ROGUE_NODE: &str = "pn9";
/// A second client, with no grant unless a test gives it one.
pub const CLIENT2: &str = "client2";
pub const DRIVE: &str = "drive0";

impl Cluster {
    /// Create certificates, start the station, the movers and the primary
    /// node, and wait until all have registered.
    pub async fn start(work: &Path, spec: &ClusterSpec) -> Result<Cluster> {
        std::fs::create_dir_all(work)?;
        let pki = work.join("pki");
        let library = work.join("library");
        let logs = work.join("logs");
        std::fs::create_dir_all(&logs)?;
        std::fs::create_dir_all(&library)?;
        let drives_per_pair = if spec.drives_per_pair.is_empty() {
            vec![1]
        } else {
            spec.drives_per_pair.clone()
        };
        let mut components = vec![
            "station:station".to_string(),
            format!("{PRIMARY}:primary-node"),
            format!("{CLIENT}:client"),
            format!("{CLIENT2}:client"),
            "operator:operator".to_string(),
            // Real certificates for hostile tests: a mover and a primary
            // node that take part in nothing.
            format!("{ROGUE_MOVER}:mover"),
            format!("{ROGUE_NODE}:primary-node"),
        ];
        for i in 1..=drives_per_pair.len() {
            components.push(format!("fe{i}:mover"));
            components.push(format!("be{i}:mover"));
        }
        for n in &spec.extra_nodes {
            components.push(format!("{}:primary-node", n.name));
        }
        let mut pki_init = Command::new(bin("control-station")?);
        pki_init.args(["pki", "init"]).arg(&pki);
        for c in &components {
            pki_init.args(["--component", c]);
        }
        let status = pki_init
            .stderr(Stdio::null())
            .status()
            .context("running control-station pki init")?;
        if !status.success() {
            bail!("control-station pki init failed");
        }
        let db = TestDb::new().await;
        let port = free_port()?;
        let station: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let station_metrics: Option<SocketAddr> = if spec.station_metrics {
            Some(format!("127.0.0.1:{}", crate::metrics::free_tcp_port()?).parse()?)
        } else {
            None
        };
        let mut cluster = Cluster {
            work: work.to_path_buf(),
            pki: pki.clone(),
            library: library.clone(),
            station,
            procs: Vec::new(),
            db,
            restore_dir: work.join("pn-restores"),
            station_metrics,
        };

        let st = station.to_string();
        let metrics_args: Vec<String> = station_metrics
            .iter()
            .flat_map(|a| ["--metrics".to_string(), a.to_string()])
            .collect();
        cluster.spawn(
            STATION,
            Command::new(bin("control-station")?)
                .args([
                    "serve",
                    "--name",
                    STATION,
                    "--listen",
                    &st,
                    "--database-url",
                    cluster.db.url(),
                ])
                .arg("--pki")
                .arg(pki.join(STATION))
                .arg("--library")
                .arg(&library)
                .args([
                    "--block-size",
                    &spec.tape_block_size.to_string(),
                    "--heartbeat-timeout",
                    "5",
                    "--mount-seconds",
                    &spec.mount_seconds.to_string(),
                    "--dismount-seconds",
                    &spec.mount_seconds.to_string(),
                ])
                .args(&metrics_args)
                .args(&spec.station_args),
        )?;
        let mut drive_no = 0;
        for (i, &drives) in drives_per_pair.iter().enumerate() {
            let (fe, be) = (format!("fe{}", i + 1), format!("be{}", i + 1));
            // Fixed ports, as an operator would give them: a restarted
            // mover comes back at the same address.
            let (be_listen, fe_listen) = (
                format!("127.0.0.1:{}", free_port()?),
                format!("127.0.0.1:{}", free_port()?),
            );
            let mut be_cmd = Command::new(bin("data-mover")?);
            be_cmd.args([
                "--name",
                &be,
                "--role",
                "back-end",
                "--listen",
                &be_listen,
                "--station",
                &st,
            ]);
            for _ in 0..drives {
                be_cmd.args(["--drive", &format!("drive{drive_no}")]);
                drive_no += 1;
            }
            be_cmd.args([
                "--tape-capacity",
                &spec.tape_capacity.to_string(),
                "--drive-speed",
                &spec.drive_speed.to_string(),
            ]);
            be_cmd.args(&spec.be_args);
            be_cmd.arg("--pki").arg(pki.join(&be));
            be_cmd.arg("--library").arg(&library);
            let be_spool = if spec.shared_spool {
                format!("spool-{fe}")
            } else {
                format!("spool-{be}")
            };
            be_cmd.arg("--spool").arg(work.join(be_spool));
            cluster.spawn(&be, &mut be_cmd)?;
            cluster.spawn(
                &fe,
                Command::new(bin("data-mover")?)
                    .args([
                        "--name",
                        &fe,
                        "--role",
                        "front-end",
                        "--listen",
                        &fe_listen,
                        "--station",
                        &st,
                    ])
                    .args(["--back-end", &be, "--segment-size", &spec.segment_size.to_string()])
                    .arg("--pki")
                    .arg(pki.join(&fe))
                    .arg("--spool")
                    .arg(work.join(format!("spool-{fe}")))
                    .args(&spec.fe_args),
            )?;
        }
        let restore_dir = cluster.restore_dir.clone();
        let pn1 = ExtraNode {
            name: PRIMARY.to_string(),
            volumes: spec.volumes.clone(),
            target_volumes: spec.target_volumes.clone(),
            args: spec.pn_args.clone(),
        };
        cluster.spawn_primary(spec, &pn1, "pn-state", &restore_dir, &pn1.args)?;
        let mut everyone = vec![PRIMARY.to_string()];
        for n in &spec.extra_nodes {
            let restores = work.join(format!("{}-restores", n.name));
            cluster.spawn_primary(spec, n, &format!("{}-state", n.name), &restores, &n.args)?;
            everyone.push(n.name.clone());
        }
        for i in 1..=drives_per_pair.len() {
            everyone.push(format!("fe{i}"));
            everyone.push(format!("be{i}"));
        }
        let names: Vec<&str> = everyone.iter().map(String::as_str).collect();
        cluster.wait_registered(&names, &[], Duration::from_secs(60))?;
        // A client certificate alone grants nothing: the operator lets the
        // test client back up and restore everything of the node.
        cluster.operator(&["grant", CLIENT, "--primary", PRIMARY, "--backup", "--restore"])?;
        Ok(cluster)
    }

    /// Start primary node `node` (state in `work/STATE`).
    fn spawn_primary(
        &mut self,
        spec: &ClusterSpec,
        node: &ExtraNode,
        state: &str,
        restore_dir: &Path,
        extra: &[String],
    ) -> Result<()> {
        let name = node.name.as_str();
        let mut pn = Command::new(bin("primary-node")?);
        pn.args(["--name", name, "--station", &self.station.to_string()])
            .args([
                "--block-size",
                &spec.block_size.to_string(),
                "--track-size",
                &spec.track_size.to_string(),
            ])
            .arg("--state-dir")
            .arg(self.work.join(state))
            .arg("--restore-dir")
            .arg(restore_dir)
            .args(extra)
            .arg("--pki")
            .arg(self.pki.join(name));
        for (v, path) in &node.volumes {
            pn.arg("--volume").arg(format!("{v}={}", path.display()));
        }
        for (v, path) in &node.target_volumes {
            pn.arg("--target-volume").arg(format!("{v}={}", path.display()));
        }
        self.spawn(name, &mut pn)
    }

    /// Every ABS metadata on the library's tape images (read offline with
    /// the tape layers), by ABS id.
    pub fn abs_metadata_on_tapes(&self) -> Result<Vec<proto::tape::metadata::AbsMetadata>> {
        use proto::tape::directory::FileKind;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.library)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "tap") {
                continue;
            }
            let dev = proto::tape::block::SimhTape::open(&path)?;
            let mut r = proto::tape::volume::TapeReader::open(dev)?;
            for f in r.data_files()?.iter().filter(|f| f.kind == FileKind::AbsMetadata) {
                out.push(r.read_abs_metadata(f.file_number)?);
            }
        }
        out.sort_by_key(|m| m.abs_id);
        Ok(out)
    }

    /// The certificate directory of component `name` (`pki/<name>`; the
    /// CA is in `pki/ca`).
    pub fn pki_of(&self, name: &str) -> PathBuf {
        self.pki.join(name)
    }

    /// Where the primary node puts a restore into the file `name`.
    pub fn restored(&self, name: &str) -> PathBuf {
        self.restore_dir.join(name)
    }

    /// The `--to-file` argument for a restore into `dest`, a file in the
    /// primary node's restore directory (see [`Cluster::restored`]).
    pub fn to_file(&self, dest: &Path) -> String {
        assert_eq!(
            dest.parent(),
            Some(self.restore_dir.as_path()),
            "{} is not in the node's restore directory",
            dest.display()
        );
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{PRIMARY}:{name}")
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<()> {
        let program = PathBuf::from(cmd.get_program());
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_os_string()).collect();
        let child = self.launch(name, &program, &args, false)?;
        let log = self.work.join("logs").join(format!("{name}.log"));
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            log,
            program,
            args,
            killed: false,
        });
        Ok(())
    }

    fn launch(&self, name: &str, program: &Path, args: &[std::ffi::OsString], append: bool) -> Result<Child> {
        let log = self.work.join("logs").join(format!("{name}.log"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&log)?;
        Command::new(program)
            .args(args)
            .env("RUST_LOG", std::env::var("DMC_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .with_context(|| format!("starting {name}"))
    }

    /// Start a stopped (or killed) process again with the same arguments;
    /// its log goes on in the same file.
    pub fn restart(&mut self, name: &str) -> Result<()> {
        let i = self
            .procs
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| anyhow!("no process {name}"))?;
        let _ = self.procs[i].child.kill();
        let _ = self.procs[i].child.wait();
        let (program, args) = (self.procs[i].program.clone(), self.procs[i].args.clone());
        let child = self.launch(name, &program, &args, true)?;
        self.procs[i].child = child;
        self.procs[i].killed = false;
        Ok(())
    }

    /// Restart a back-end or front-end mover (killed or running) and wait
    /// until the station hears from its new start.
    pub fn restart_mover(&mut self, name: &str, timeout: Duration) -> Result<()> {
        let before = self.boots()?;
        self.restart(name)?;
        self.wait_registered(&[name], &before, timeout)
    }

    /// The station's health (`smapp health` as the operator).
    pub fn health(&self) -> Result<serde_json::Value> {
        self.operator(&["health"])?
            .pop()
            .ok_or_else(|| anyhow!("smapp health printed nothing"))
    }

    /// The start (`boot`) of every process the station hears from.
    pub fn boots(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.health()?["peers"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["boot"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Wait until the station has every one of `names` registered, each
    /// with a start other than the one it had in `before` (a restarted
    /// process registered again). Synchronizes on the station's health.
    pub fn wait_registered(&mut self, names: &[&str], before: &[(String, u64)], timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(now) = self.boots() {
                let ready = names.iter().all(|n| {
                    now.iter()
                        .any(|(p, b)| p == n && !before.iter().any(|(q, old)| q == n && old == b))
                });
                if ready {
                    return Ok(());
                }
            }
            for p in &mut self.procs {
                if p.killed {
                    continue;
                }
                if let Some(status) = p.child.try_wait()? {
                    bail!("{} exited ({status}) while waiting; its log:\n{}", p.name, tail(&p.log));
                }
            }
            if start.elapsed() > timeout {
                bail!(
                    "{names:?} did not register within {timeout:?}; the station hears {:?}\n{}",
                    self.boots().ok(),
                    tail(&self.work.join("logs").join(format!("{STATION}.log")))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill the station (SIGKILL) and start it again; wait until it
    /// answers and every mover and primary node registered with it again.
    pub fn restart_station(&mut self, timeout: Duration) -> Result<()> {
        let peers: Vec<String> = self.boots()?.into_iter().map(|(n, _)| n).collect();
        self.kill(STATION)?;
        self.restart(STATION)?;
        let names: Vec<&str> = peers.iter().map(String::as_str).collect();
        self.wait_registered(&names, &[], timeout)
    }

    /// Start `smapp agent` under client certificate `name` (its hooks run
    /// in `workdir`; its log is `logs/agent-NAME.log`) and wait until the
    /// station counts it.
    pub fn start_agent(&mut self, name: &str, workdir: &Path) -> Result<()> {
        std::fs::create_dir_all(workdir)?;
        let mut cmd = Command::new(bin("smapp")?);
        cmd.args(["--station", &self.station.to_string(), "--name", name])
            .arg("--pki")
            .arg(self.pki_of(name))
            .arg("agent")
            .arg("--workdir")
            .arg(workdir);
        self.spawn(&format!("agent-{name}"), &mut cmd)?;
        self.wait_registered(&[name], &[], Duration::from_secs(30))
    }

    /// The address the station has for a mover.
    pub fn mover_address(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .operator(&["list", "movers"])?
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["address"].as_str().map(String::from)))
    }

    /// The log of a process.
    pub fn log(&self, name: &str) -> String {
        let path = self.work.join("logs").join(format!("{name}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Peak resident memory (VmHWM, KiB) of each running process.
    pub fn peak_rss(&self) -> Vec<(String, u64)> {
        self.procs
            .iter()
            .filter_map(|p| Some((p.name.clone(), peak_rss_kib(p.child.id())?)))
            .collect()
    }

    /// The running processes: (name, pid).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .filter(|p| !p.killed)
            .map(|p| (p.name.clone(), p.child.id()))
            .collect()
    }

    /// Stop one process with SIGKILL.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("no process {name}"))?;
        p.child.kill()?;
        p.child.wait()?;
        p.killed = true;
        Ok(())
    }

    /// The catalog is lost: the station is killed and its database
    /// dropped and created again, empty (a catalog restore or rebuild
    /// follows, then [`Cluster::restart`] of the station).
    pub async fn lose_catalog(&mut self) -> Result<()> {
        use sqlx::{Connection, Executor};
        self.kill(STATION)?;
        let mut admin = sqlx::PgConnection::connect(self.db.admin_url()).await?;
        let name = self.db.name().to_string();
        admin
            .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
            .await?;
        admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await?;
        admin.close().await?;
        Ok(())
    }

    /// Stop everything.
    pub fn stop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `control-station ARGS` (the station's offline commands): (success,
/// stdout, stderr).
pub fn station_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("control-station").expect("the control-station binary"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running control-station");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Write 4 KiB of `pattern` at byte `offset` of `volume` through the NBD
/// export of the primary node listening on `port` (qemu-io, Debian package
/// qemu-utils).
pub fn nbd_write(port: u16, volume: &str, offset: u64, pattern: u8) {
    let url = format!("nbd://127.0.0.1:{port}/{volume}");
    let out = Command::new("qemu-io")
        .args(["-f", "raw", &url, "-c", &format!("write -P {pattern} {offset} 4096")])
        .output()
        .expect("qemu-io (Debian package qemu-utils) must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Peak resident memory (VmHWM, KiB) of a running process.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Cluster {
    /// CPU seconds used so far by every process of the cluster.
    pub fn cpu_seconds(&self) -> f64 {
        self.pids()
            .iter()
            .filter_map(|(_, pid)| crate::cpu::process_seconds(*pid))
            .sum()
    }

    /// The last lines of every process's log, for a failure's message.
    pub fn log_tails(&self) -> String {
        [STATION, FE, BE, PRIMARY]
            .iter()
            .map(|p| format!("--- {p}:\n{}", tail(&self.work.join("logs").join(format!("{p}.log")))))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The last 30 lines of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The value after `--name` on the command line of a driver binary.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}
