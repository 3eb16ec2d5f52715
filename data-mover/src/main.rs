use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use data_mover::backend::drive::DriveSpec;
use data_mover::backend::schedule::Policy;
use data_mover::mover::{run, MoverConfig};
use proto::tape::block::Capacity;
use proto::wire::MoverRole;

/// A data mover of the cluster: front-end, back-end, or both.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[arg(long, env = "DMC_NAME")]
    name: String,
    #[arg(long, env = "DMC_PKI")]
    pki: PathBuf,
    #[arg(long, env = "DMC_STATION")]
    station: SocketAddr,
    #[arg(long, default_value = "station")]
    station_name: String,
    /// front-end, back-end or both.
    #[arg(long, value_enum)]
    role: MoverRole,
    /// QUIC address peers dial (a real address; port 0 picks one).
    #[arg(long)]
    listen: SocketAddr,
    /// Front-end: the back-end this front-end is paired with.
    #[arg(long)]
    back_end: Option<String>,
    /// Spool directory: the front-end's accumulation files; the segments a
    /// back-end receives or reads back. A front-end and its back-end on one
    /// machine should use the same one (they prove it to each other, and
    /// segments then go to tape without crossing the network again).
    #[arg(long, default_value = "spool")]
    spool: PathBuf,
    /// Front-end: never use a spool shared with the back-end; send every
    /// segment over QUIC.
    #[arg(long)]
    no_shared_spool: bool,
    /// Front-end: segment threshold in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    segment_size: u64,
    /// Front-end: sealed segments a channel may hold on the spool before it waits.
    #[arg(long, default_value_t = 4)]
    spool_segments: usize,
    /// Back-end: a drive name (repeatable).
    #[arg(long = "drive")]
    drives: Vec<String>,
    /// Back-end: largest segment accepted, bytes.
    #[arg(long, default_value_t = 256 << 20)]
    max_segment: usize,
    /// Back-end: capacity of each tape image in bytes (0: unlimited). The
    /// default is an LTO-9 cartridge's native 18 TB.
    #[arg(long, default_value_t = 18_000_000_000_000)]
    tape_capacity: u64,
    /// Back-end: size of the early-warning zone at the end of each tape,
    /// in bytes (default: 1% of the capacity).
    #[arg(long)]
    early_warning: Option<u64>,
    /// Back-end: speed limit of each drive in MB/s (0: unlimited). The
    /// default is an LTO-9 drive's native 300 MB/s.
    #[arg(long, default_value_t = 300.0)]
    drive_speed: f64,
    /// Back-end: which ready segment a drive writes next: fifo (the one
    /// delivered first) or lifo (the channel that delivered most recently
    /// first, the seed's suggestion). Measured with dmc-bench-drives, fifo
    /// kept the drive busier and every channel progressing; lifo starves
    /// some channels while others finish early.
    #[arg(long, value_enum, default_value_t = Policy::Fifo)]
    schedule: Policy,
    /// Back-end: the SCSI tape device (`/dev/nstN`, non-rewinding) of each
    /// --drive, in the same order (repeatable). Without it drives mount
    /// SIMH images of the --library. Needs a build with `--features scsi`.
    #[arg(long = "drive-device")]
    drive_devices: Vec<PathBuf>,
    /// Back-end: the SCSI medium changer (`/dev/sgN`) loading the
    /// --drive-device drives, driven through `mtx`; drive i is its Data
    /// Transfer Element i. Needs a build with `--features scsi`.
    #[arg(long)]
    changer: Option<PathBuf>,
    /// Back-end: the tape library directory (`LABEL.tap` images). The
    /// back-end owns it: drives mount its images by label, and it imports
    /// and exports tapes for the station. Required for image drives (the
    /// station names tapes, never files); with --drive-device drives,
    /// library commands are refused without it.
    #[arg(long)]
    library: Option<PathBuf>,
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
    let role = args.role;
    if role.is_back_end() && args.drives.is_empty() {
        bail!("a back-end needs at least one --drive");
    }
    let back_end = match role {
        MoverRole::Both => Some(args.back_end.unwrap_or_else(|| args.name.clone())),
        _ => args.back_end,
    };
    let capacity = match args.tape_capacity {
        0 => None,
        total => {
            let ew = args.early_warning.unwrap_or(total / 100);
            Some(Capacity::new(total, ew).context("--tape-capacity / --early-warning")?)
        }
    };
    if !(args.drive_speed >= 0.0 && args.drive_speed.is_finite()) {
        bail!(
            "--drive-speed {}: expected a number of MB/s, 0 for unlimited",
            args.drive_speed
        );
    }
    let speed = proto::num::bytes_per_second(args.drive_speed);
    // Refuse a drive configuration this build cannot run before connecting.
    data_mover::backend::device::drive_mounters(
        args.drives.len(),
        &args.drive_devices,
        args.changer.as_deref(),
        capacity,
        args.library.as_deref(),
    )
    .context("--drive-device / --changer")?;
    let schedule = args.schedule;
    let identity = transport::Identity::load(&args.pki, &args.name).context("loading this mover's certificate")?;
    let cfg = MoverConfig {
        name: args.name,
        pki: args.pki,
        role,
        listen: args.listen,
        station: args.station,
        station_name: args.station_name,
        back_end,
        spool: args.spool,
        shared_spool: !args.no_shared_spool,
        segment_size: args.segment_size,
        spool_segments: args.spool_segments,
        drives: args.drives,
        max_segment: args.max_segment,
        drive_spec: DriveSpec { capacity, speed },
        drive_devices: args.drive_devices,
        changer: args.changer,
        schedule,
        library: args.library,
    };
    run(cfg, identity).await
}
