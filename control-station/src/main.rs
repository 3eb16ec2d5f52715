use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use control_station::catalog::Catalog;
use control_station::pg_tools::PgTools;
use control_station::service::{serve, Station, StationConfig};
use transport::pki::Component;

mod catalog_cli;
use transport::Role;

/// The control station of the data mover cluster.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Log lines as `text` or `json` (one object per line, with the
    /// channel and ABS ids of the job each belongs to).
    #[arg(long, env = "DMC_LOG_FORMAT", default_value = "text", global = true)]
    log_format: transport::telemetry::LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run the station.
    Serve {
        /// The station's certificate name.
        #[arg(long, default_value = "station")]
        name: String,
        #[arg(long, env = "DMC_PKI")]
        pki: PathBuf,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        /// Directory of the virtual tape library (tape images).
        #[arg(long)]
        library: PathBuf,
        /// Primary pool backups write to unless they name one (created
        /// when missing).
        #[arg(long, default_value = "default")]
        pool: String,
        /// Record size of new tapes, bytes.
        #[arg(long, default_value_t = 65536)]
        block_size: u32,
        /// Prometheus metrics address.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Serve the operators' web console on this address (HTTPS with
        /// the station's certificate; operators present theirs).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Send every notification (a channel in error, a tape needed that
        /// is not in the library, a drive idle while work waits, a refused
        /// version) to this webhook as a JSON POST, retried until accepted.
        #[arg(long, env = "DMC_NOTIFY_URL")]
        notify_url: Option<String>,
        /// CA certificates (PEM) trusted for an https --notify-url
        /// (default: the system's bundle).
        #[arg(long, env = "DMC_NOTIFY_CA")]
        notify_ca: Option<PathBuf>,
        /// Seconds a job waits for a drive before each drive left idle
        /// meanwhile (no connected pair serves it, or it holds a tape no
        /// job uses) is reported to the operators.
        #[arg(long, env = "DMC_IDLE_NOTICE", default_value_t = 30.0)]
        idle_notice: f64,
        /// Seconds a job waits for the catalog database while it is
        /// unreachable (restart, failover) before it fails with that reason.
        #[arg(long, default_value_t = 60)]
        catalog_patience: u64,
        /// Seconds a backup waits for its front-end to come back and resume
        /// from its spool after it died, before the backup fails.
        #[arg(long, default_value_t = 60)]
        resume_patience: u64,
        /// Seconds without a heartbeat after which a mover or primary node is declared dead.
        #[arg(long, default_value_t = 10)]
        heartbeat_timeout: u64,
        /// Seconds the library takes to move a tape from its slot into a
        /// drive and load it (an LTO-9 library: about 20).
        #[arg(long, default_value_t = 20.0)]
        mount_seconds: f64,
        /// Seconds to unload a tape and put it back in its slot (about 15).
        #[arg(long, default_value_t = 15.0)]
        dismount_seconds: f64,
        /// Slots of the library: tapes it can hold (imported, labelled or
        /// written), drives excluded.
        #[arg(long, default_value_t = 500)]
        slots: u32,
        /// Directory of the PostgreSQL programs catalog backups run
        /// (pg_dump; default: the newest /usr/lib/postgresql/N/bin, else PATH).
        #[arg(long, env = "DMC_PG_BIN")]
        pg_bin: Option<PathBuf>,
        /// Prefix of the labels of new tapes (1 to 5 of A-Z 0-9; the rest
        /// is a number): this site's barcode range, so that tapes brought
        /// from another cluster's library never share a label with ours.
        #[arg(long, default_value = control_station::service::TAPE_LABEL_PREFIX)]
        label_prefix: String,
    },
    /// Back up the catalog to tape, restore it from a tape, or rebuild it
    /// from the library's tapes.
    Catalog {
        #[command(subcommand)]
        cmd: CatalogCmd,
    },
    /// Cluster certificates.
    Pki {
        #[command(subcommand)]
        cmd: PkiCmd,
    },
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// Have the running station write a consistent dump of its catalog
    /// database to a scratch tape of catalog pool POOL (created when
    /// missing), recorded like any ABS. Speaks to the station as an
    /// operator.
    Backup {
        /// The catalog pool (kind catalog: it holds catalog backups only).
        #[arg(long, default_value = "catalog")]
        pool: String,
        /// The station's address.
        #[arg(long, default_value = "127.0.0.1:7400")]
        station: SocketAddr,
        /// The station's certificate name.
        #[arg(long, default_value = "station")]
        station_name: String,
        /// The operator's certificate directory.
        #[arg(long, env = "DMC_PKI")]
        pki: PathBuf,
        /// The operator's certificate name.
        #[arg(long, default_value = "operator")]
        name: String,
    },
    /// Rebuild the catalog from the tape images of a catalog backup, with
    /// no station running: read the dump back from the tapes (every
    /// checksum checked), restore it into the empty database
    /// --database-url, and record the catalog backup itself there.
    Restore {
        /// A tape image holding the catalog backup (repeat for one that
        /// spans tapes).
        #[arg(long = "from", required = true)]
        from: Vec<PathBuf>,
        /// The catalog backup's ABS (default: the newest on the images).
        #[arg(long)]
        abs: Option<u64>,
        /// The empty database to restore into.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Directory of pg_restore (default: the newest
        /// /usr/lib/postgresql/N/bin, else PATH).
        #[arg(long, env = "DMC_PG_BIN")]
        pg_bin: Option<PathBuf>,
    },
    /// Rebuild a lost catalog from the tapes alone, with no station
    /// running: read every tape image of the library (labels, DIRECTORY,
    /// CATALOG and ABS metadata with management records; a tape whose
    /// DIRECTORY or CATALOG is damaged is scanned) and record its pools,
    /// tapes, ABSs with their chains, segments and copies in the empty
    /// database --database-url.
    Rebuild {
        /// Directory of the tape library (its *.tap images).
        #[arg(long)]
        library: PathBuf,
        /// The empty database to rebuild into.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The station's --label-prefix (its label numbers go on after the
        /// highest label with it).
        #[arg(long, default_value = control_station::service::TAPE_LABEL_PREFIX)]
        label_prefix: String,
    },
}

#[derive(Subcommand)]
enum PkiCmd {
    /// Create the cluster CA in DIR/ca (mode 0700, kept if it exists) and
    /// each component's key, certificate and the CA certificate in its own
    /// DIR/NAME (existing components are kept). Give each process only its
    /// own directory (--pki DIR/NAME).
    Init {
        dir: PathBuf,
        /// NAME:ROLE[:HOST,HOST...] with ROLE one of station, mover,
        /// primary-node, client, operator (repeatable).
        #[arg(long = "component")]
        components: Vec<String>,
    },
    /// Issue one component into its own directory (mode 0700): its key,
    /// certificate, the CA certificate and the current revocation list.
    Issue {
        /// NAME:ROLE[:HOST,HOST...]
        component: String,
        /// The CA's directory (DIR/ca of `pki init`).
        #[arg(long)]
        ca: PathBuf,
        /// The component's directory.
        #[arg(long)]
        out: PathBuf,
        /// Also write OUT/NAME.p12 (key, certificate and CA, for a
        /// browser to import: an operator's way into the web console),
        /// encrypted with the password of --p12-password-file, or with a
        /// new random one written to OUT/NAME.p12.password.
        #[arg(long)]
        p12: bool,
        /// File holding the PKCS#12 password (its first line).
        #[arg(long, requires = "p12")]
        p12_password_file: Option<PathBuf>,
    },
    /// A new key and certificate for a component, same role and hosts.
    Renew {
        name: String,
        #[arg(long)]
        ca: PathBuf,
        /// The component's directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a component's certificate: sign a new revocation list and
    /// copy it into each --publish directory (every process reloads its
    /// own crl.pem when it changes; the station drops the revoked peer's
    /// connections).
    Revoke {
        name: String,
        #[arg(long)]
        ca: PathBuf,
        /// Component directories to publish the list to (repeatable).
        #[arg(long)]
        publish: Vec<PathBuf>,
    },
}

fn parse_component(spec: &str) -> Result<Component> {
    let mut parts = spec.splitn(3, ':');
    let (Some(name), Some(role)) = (parts.next(), parts.next()) else {
        bail!("--component {spec:?}: expected NAME:ROLE[:HOST,...]");
    };
    let role: Role = role.parse().with_context(|| format!("--component {spec:?}"))?;
    let mut hosts: Vec<String> = parts
        .next()
        .map(|h| h.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    if hosts.is_empty() {
        hosts = vec!["localhost".into(), "127.0.0.1".into()];
    }
    Ok(Component::new(name, role, hosts))
}

/// Write OUT/NAME.p12 under the password of `password_file`, or a new
/// random one saved beside it.
fn write_p12(out: &std::path::Path, name: &str, password_file: Option<&std::path::Path>) -> Result<()> {
    let password = match password_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the PKCS#12 password from {}", f.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        None => {
            use rand::Rng;
            let mut rng = rand::rng();
            let pw: String = (0..20)
                .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[rng.random_range(0..32)]))
                .collect();
            let path = out.join(format!("{name}.p12.password"));
            write_secret(&path, format!("{pw}\n").as_bytes())?;
            eprintln!("PKCS#12 password in {}", path.display());
            pw
        }
    };
    if password.is_empty() {
        bail!("the PKCS#12 password is empty: browsers refuse such files");
    }
    let path = transport::pki::write_p12(out, name, &password)
        .with_context(|| format!("writing the PKCS#12 of {name} in {}", out.display()))?;
    eprintln!(
        "PKCS#12 for browsers in {} (import it, then open the console)",
        path.display()
    );
    Ok(())
}

/// Create `path` readable by its owner only.
fn write_secret(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    // The allocator is tuned before any thread starts.
    transport::runtime()?.block_on(main_async())
}

async fn main_async() -> Result<()> {
    let args = Args::parse();
    transport::telemetry::init_logging_as("info", args.log_format);
    match args.cmd {
        Cmd::Catalog {
            cmd:
                CatalogCmd::Backup {
                    pool,
                    station,
                    station_name,
                    pki,
                    name,
                },
        } => catalog_cli::backup(&pki, &name, station, &station_name, &pool).await,
        Cmd::Catalog {
            cmd:
                CatalogCmd::Restore {
                    from,
                    abs,
                    database_url,
                    pg_bin,
                },
        } => {
            let opts = control_station::catalog_restore::RestoreOptions {
                images: from,
                abs_id: abs,
                database_url,
                pg_tools: PgTools { bin: pg_bin },
            };
            catalog_cli::restore(opts).await
        }
        Cmd::Catalog {
            cmd:
                CatalogCmd::Rebuild {
                    library,
                    database_url,
                    label_prefix,
                },
        } => {
            catalog_cli::rebuild(control_station::rebuild::RebuildOptions {
                library,
                database_url,
                label_prefix,
            })
            .await
        }
        Cmd::Pki {
            cmd: PkiCmd::Init { dir, components },
        } => {
            let comps = components
                .iter()
                .map(|c| parse_component(c))
                .collect::<Result<Vec<_>>>()?;
            transport::pki::init_cluster(&dir, &comps)
                .with_context(|| format!("creating certificates in {}", dir.display()))?;
            eprintln!("cluster CA in {}", dir.join("ca").display());
            for c in &comps {
                eprintln!(
                    "certificate for {} ({}) in {}",
                    c.name,
                    c.role.as_str(),
                    dir.join(&c.name).display()
                );
            }
            Ok(())
        }
        Cmd::Pki {
            cmd:
                PkiCmd::Issue {
                    component,
                    ca,
                    out,
                    p12,
                    p12_password_file,
                },
        } => {
            let c = parse_component(&component)?;
            transport::pki::issue_into(&ca, &out, &c, transport::pki::Overwrite::Refuse)
                .with_context(|| format!("issuing {} into {}", c.name, out.display()))?;
            eprintln!("certificate for {} ({}) in {}", c.name, c.role.as_str(), out.display());
            if p12 {
                write_p12(&out, &c.name, p12_password_file.as_deref())?;
            }
            Ok(())
        }
        Cmd::Pki {
            cmd: PkiCmd::Renew { name, ca, out },
        } => {
            let c = transport::pki::renew(&ca, &out, &name)
                .with_context(|| format!("renewing {name} in {}", out.display()))?;
            eprintln!("renewed {} ({}) in {}", c.name, c.role.as_str(), out.display());
            Ok(())
        }
        Cmd::Pki {
            cmd: PkiCmd::Revoke { name, ca, publish },
        } => {
            let crl = transport::pki::revoke(&ca, &name).with_context(|| format!("revoking {name}"))?;
            for dir in &publish {
                transport::pki::publish_crl(&ca, dir)
                    .with_context(|| format!("publishing the revocation list to {}", dir.display()))?;
            }
            eprintln!(
                "revoked {name}: {} published to {} directories",
                crl.display(),
                publish.len()
            );
            Ok(())
        }
        Cmd::Serve {
            name,
            pki,
            database_url,
            listen,
            library,
            pool,
            block_size,
            metrics,
            http,
            notify_url,
            notify_ca,
            idle_notice,
            heartbeat_timeout,
            catalog_patience,
            resume_patience,
            mount_seconds,
            dismount_seconds,
            slots,
            pg_bin,
            label_prefix,
        } => {
            control_station::service::check_label_prefix(&label_prefix)?;
            let seconds = |flag: &str, v: f64| {
                if v.is_finite() && v >= 0.0 {
                    Ok(Duration::from_secs_f64(v))
                } else {
                    bail!("--{flag} {v}: expected a number of seconds, 0 or more")
                }
            };
            transport::telemetry::serve_metrics(metrics)?;
            let identity = transport::Identity::load(&pki, &name).context("loading the station's certificate")?;
            let catalog = Catalog::connect_with_patience(&database_url, Duration::from_secs(catalog_patience))
                .await
                .context("connecting to the catalog database")?;
            catalog
                .ensure_primary_pool(&pool)
                .await
                .with_context(|| format!("the default pool --pool {pool}"))?;
            let webhook = notify_url
                .as_deref()
                .map(|u| control_station::service::notify::Webhook::new(u, notify_ca.as_deref()))
                .transpose()?;
            let cfg = StationConfig {
                listen,
                http,
                library,
                pool,
                block_size,
                command_timeout: Duration::from_secs(120),
                heartbeat_timeout: Duration::from_secs(heartbeat_timeout),
                resume_patience: Duration::from_secs(resume_patience),
                mount_delay: seconds("mount-seconds", mount_seconds)?,
                dismount_delay: seconds("dismount-seconds", dismount_seconds)?,
                slots,
                database_url,
                pg_tools: PgTools { bin: pg_bin },
                label_prefix,
                idle_notice: seconds("idle-notice", idle_notice)?,
            };
            serve(Station::new(catalog, cfg, webhook), identity, pki).await
        }
    }
}
