use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use primary_node::node::{run, NodeConfig};
use primary_node::volume::Volume;
use proto::abs::Geometry;

/// A primary storage node of the data mover cluster.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// This node's name (its certificate's name).
    #[arg(long, env = "DMC_NAME")]
    name: String,
    /// Directory with the cluster CA and this node's certificate.
    #[arg(long, env = "DMC_PKI")]
    pki: PathBuf,
    /// Control station address.
    #[arg(long, env = "DMC_STATION")]
    station: SocketAddr,
    /// Control station TLS name.
    #[arg(long, default_value = "station")]
    station_name: String,
    /// Local QUIC address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A volume: NAME=PATH (repeatable).
    #[arg(long = "volume", required_unless_present = "target_volumes")]
    volumes: Vec<String>,
    /// A target volume for copy versions: NAME=PATH whose last 64 KiB are
    /// its management region (the version it holds), not exposed
    /// (repeatable).
    #[arg(long = "target-volume")]
    target_volumes: Vec<String>,
    /// Block size of the volumes, bytes.
    #[arg(long, default_value_t = 4096)]
    block_size: u32,
    /// Track size of the volumes, bytes (a multiple of the block size).
    #[arg(long, default_value_t = 65536)]
    track_size: u32,
    /// Most tracks sent but not yet on tape (the request queue: addresses
    /// only, the data stays on the volume). The front-end seals segments
    /// small enough for this window; a larger one lets more pile up in its
    /// spool while the drive writes.
    #[arg(long, default_value_t = 4096)]
    window: u64,
    /// Most MB/s each backup or copy stream sends (0: as fast as the
    /// receiver takes them). Keeps a node's backups and version copies
    /// from crowding out host I/O.
    #[arg(long, default_value_t = 0.0)]
    stream_rate: f64,
    /// Export the volumes over NBD on this loopback address (hosts read
    /// and write through the node), e.g. 127.0.0.1:10809.
    #[arg(long)]
    nbd: Option<SocketAddr>,
    /// Directory for the node's state (each volume's change map).
    #[arg(long, default_value = "pn-state")]
    state_dir: PathBuf,
    /// The only directory restores into files write to (created 0700 if
    /// missing); a restore names a file in it, never a path.
    #[arg(long, default_value = "pn-restores")]
    restore_dir: PathBuf,
    /// Bytes the side files of all running backups may hold together (in
    /// --state-dir). A backup whose snapshot would need more fails with the
    /// reason; host writes never wait for or fail because of a backup.
    #[arg(long, default_value_t = 4 << 30)]
    side_file_limit: u64,
    /// Prometheus metrics address.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Log lines as `text` or `json` (one object per line, with the
    /// channel and ABS ids of the job each belongs to).
    #[arg(long, env = "DMC_LOG_FORMAT", default_value = "text")]
    log_format: transport::telemetry::LogFormat,
}

fn main() -> Result<()> {
    // The allocator is tuned before any thread starts.
    transport::runtime()?.block_on(main_async())
}

async fn main_async() -> Result<()> {
    let args = Args::parse();
    transport::telemetry::init_logging_as("info", args.log_format);
    transport::telemetry::serve_metrics(args.metrics)?;
    if let Some(addr) = args.nbd {
        if !addr.ip().is_loopback() {
            bail!("--nbd {addr}: NBD has no authentication; bind it to a loopback address (127.0.0.1 or ::1)");
        }
    }
    let geometry = Geometry {
        block_size: args.block_size,
        track_size: args.track_size,
    };
    let mut volumes = Vec::new();
    for (spec, target) in args
        .volumes
        .iter()
        .map(|s| (s, false))
        .chain(args.target_volumes.iter().map(|s| (s, true)))
    {
        let Some((name, path)) = spec.split_once('=') else {
            bail!("--volume/--target-volume {spec:?}: expected NAME=PATH");
        };
        if volumes.iter().any(|v: &Volume| v.name == name) {
            bail!("volume {name} is given twice");
        }
        let path = PathBuf::from(path);
        volumes.push(if target {
            Volume::open_target(name, &path, geometry)?
        } else {
            Volume::open(name, &path, geometry)?
        });
    }
    let identity = transport::Identity::load(&args.pki, &args.name).context("loading this node's certificate")?;
    run(NodeConfig {
        name: args.name,
        pki: args.pki,
        identity,
        listen: args.listen,
        station: args.station,
        station_name: args.station_name,
        volumes,
        window: args.window,
        nbd: args.nbd,
        state_dir: args.state_dir,
        restore_dir: args.restore_dir,
        side_file_limit: args.side_file_limit,
        stream_rate: proto::num::bytes_per_second(args.stream_rate),
    })
    .await
}
