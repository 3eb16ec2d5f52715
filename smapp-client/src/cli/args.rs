//! The command line: global options, commands and their arguments. The
//! doc comments are `smapp --help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use proto::domain::{Level, PoolKind, VolumeKey};

/// The exit statuses, for `smapp --help`: a script branches on the kind of
/// failure, never on the message.
pub const EXIT_STATUSES: &str = "Exit status:
  0  success
  1  internal: anything else (a fault; the message says what)
  2  invalid: the request is malformed or contradicts itself (also bad arguments)
  3  refused: not authorized (an operator grants it), or not allowed in the current state
  4  not-found: what the request names does not exist (object, ABS, tape, file, channel)
  5  conflict: it already exists or is in use (a restore file, a tape in the library)
  6  corrupt: data failed a check (CRC, labels, catalog against tape)
  7  retryable: a transient condition (the station, a mover or the catalog unreachable); try again
  8  cancelled: interrupted, timed out (--timeout), or cancelled by the station";

#[derive(Parser)]
#[command(version, about = "SMAPP client of the data mover cluster", after_help = EXIT_STATUSES)]
pub struct Args {
    /// Control station address.
    #[arg(long, env = "DMC_STATION", default_value = "127.0.0.1:7400", global = true)]
    pub station: SocketAddr,
    #[arg(long, default_value = "station", global = true)]
    pub station_name: String,
    /// Directory with the cluster CA and this client's certificate.
    #[arg(long, env = "DMC_PKI", default_value = "pki", global = true)]
    pub pki: PathBuf,
    /// This client's certificate name.
    #[arg(long, env = "DMC_CLIENT", default_value = "client", global = true)]
    pub name: String,
    /// Print results as JSON (one object per line) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up following a backup, restore or merge after this many
    /// seconds (a job that already started goes on at the station).
    #[arg(long, global = true)]
    pub timeout: Option<u64>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Back up a logical object: a whole volume or an extent list.
    Backup(BackupArgs),
    /// Restore the object as an ABS has it (a differential brings its
    /// chain along), or as it was at a time (--primary, --object, --at):
    /// to its original place, onto other volumes through a remap, or into a file.
    Restore(RestoreArgs),
    /// Merge a chain (a full and its differentials) into a synthetic full
    /// ABS on the movers, without reading the primary node.
    Merge(MergeArgs),
    /// Delete an ABS from the catalog: no longer listed or restorable, its
    /// segments free; a tape left holding nothing wanted returns to
    /// scratch after its pool's retention. Refused while a differential
    /// builds on it, unless --with-dependents (which deletes those too).
    Delete {
        #[arg(value_name = "ABS")]
        abs: u64,
        /// Also delete every differential that builds on it.
        #[arg(long)]
        with_dependents: bool,
    },
    /// Define a backup the station runs on a schedule (times in UTC),
    /// with commands the host's agent runs before it (the backup starts
    /// only if that succeeded) and after it (whatever happened).
    Define(DefineArgs),
    /// Backup definitions and their latest runs (a client: its own);
    /// `definitions run NAME` runs one now and follows it.
    Definitions {
        #[command(subcommand)]
        cmd: Option<DefinitionsCmd>,
    },
    /// Remove a backup definition (the ABSs its runs made stay).
    Undefine {
        #[arg(value_name = "NAME")]
        definition: String,
    },
    /// Run on a host: register with the station under this client's
    /// certificate and run the pre and post commands of the backup
    /// definitions naming this host, until stopped.
    Agent {
        /// Directory the commands run in.
        #[arg(long, default_value = "/")]
        workdir: PathBuf,
    },
    /// List ABSs, tapes, segments or movers.
    List {
        #[arg(value_parser = ["abs", "tapes", "segments", "movers"], default_value = "abs")]
        what: String,
        /// Only the segments of this ABS.
        #[arg(long)]
        abs: Option<u64>,
    },
    /// Operator: give a client rights on a primary node's objects (added to
    /// what it has). Without --object: every object of the node, and its
    /// volumes as restore destinations.
    Grant(GrantScope),
    /// Operator: take rights away (both when neither --backup nor --restore
    /// is given).
    Revoke(GrantScope),
    /// Grants: an operator sees all, a client its own.
    Grants,
    /// The station's health: its catalog database, the processes it
    /// hears from, the channels it runs.
    Health,
    /// Operator: what needs your attention (a channel in error, a tape
    /// needed that is not in the library, a drive idle while work waits, a
    /// refused version), open until acknowledged; `notifications ack ID`
    /// acknowledges one. With --json, one line per notification.
    Notifications {
        /// Also list the recent acknowledged ones.
        #[arg(long)]
        acknowledged: bool,
        #[command(subcommand)]
        cmd: Option<NotificationsCmd>,
    },
    /// Operator: open the station's web console through a local address
    /// that presents your certificate (nothing to import into the
    /// browser). Prints the address to open, with its one-time token.
    Console {
        /// The station's web console (`control-station serve --http`).
        #[arg(long, env = "DMC_CONSOLE", default_value = "127.0.0.1:7443")]
        console: SocketAddr,
        /// Local address to serve the browser on (loopback only; port 0:
        /// any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Channels and their states; `channels ID` shows one channel's
    /// transition history; `channels watch` follows all channels live.
    Channels {
        /// A channel ID, or `watch`.
        what: Option<String>,
        /// Watch: seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Watch: stop after this many refreshes (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Volume pools (seed 004): source volumes a version set copies and
    /// target volumes its versions go to (define/add/remove: operator).
    Vpool {
        #[command(subcommand)]
        cmd: VpoolCmd,
    },
    /// Copy versions (seed 004): a source volume pool copied at a point in
    /// time onto target pools in rotation, N versions kept (define and
    /// prepare: operator).
    Versions {
        #[command(subcommand)]
        cmd: VersionsCmd,
    },
    /// Storage pools (operator): define primary and copy pools, list them,
    /// copy a primary pool's ABSs to a copy pool.
    Pool {
        #[command(subcommand)]
        cmd: PoolCmd,
    },
    /// The tape library (operator): list, label scratch tapes, export, import.
    Library {
        #[command(subcommand)]
        cmd: LibraryCmd,
    },
    /// One backup, tape to tape (operator): `abs copy ABS --pool C` copies
    /// it into copy pool C now; `abs move ABS --pool P` rewrites it onto
    /// tapes of primary pool P and frees its old places.
    Abs {
        #[command(subcommand)]
        cmd: AbsCmd,
    },
    /// Tape images, with no database and no cluster.
    Tape {
        #[command(subcommand)]
        cmd: TapeCmd,
    },
}

#[derive(Subcommand)]
pub enum AbsCmd {
    /// Copy the ABS into a copy pool of its pool now (as `pool backup`
    /// would), unless it has a whole, healthy copy there.
    Copy {
        #[arg(value_name = "ABS")]
        abs: u64,
        /// The copy pool.
        #[arg(long)]
        pool: String,
    },
    /// Move the ABS to another primary pool: its segments and metadata
    /// (with a management record naming the new pool and places) are
    /// rewritten onto that pool's tapes, its old places freed.
    Move {
        #[arg(value_name = "ABS")]
        abs: u64,
        /// The primary pool.
        #[arg(long)]
        pool: String,
    },
}

#[derive(Subcommand)]
pub enum DefinitionsCmd {
    /// Run a definition now, as its schedule would, and follow it.
    Run {
        #[arg(value_name = "NAME")]
        definition: String,
    },
}

#[derive(Subcommand)]
pub enum NotificationsCmd {
    /// Acknowledge a notification: you have seen it (it stays listed with
    /// --acknowledged, with your name).
    Ack {
        #[arg(value_name = "ID")]
        id: u64,
    },
}

#[derive(Subcommand)]
pub enum VpoolCmd {
    /// Define a volume pool of source or target volumes (NODE:VOLUME, each
    /// reported by its node; a volume is in one volume pool at most).
    Define {
        #[arg(value_name = "NAME")]
        vpool: String,
        /// Volumes a version set copies.
        #[arg(long, conflicts_with = "target", required_unless_present = "target")]
        source: bool,
        /// Volumes versions are copied to (scanned in this order).
        #[arg(long)]
        target: bool,
        #[arg(long, value_delimiter = ',', required = true)]
        volumes: Vec<VolumeKey>,
    },
    /// Add volumes to a volume pool (a source volume gets a pair at the
    /// next version).
    Add {
        #[arg(value_name = "NAME")]
        vpool: String,
        #[arg(long, value_delimiter = ',', required = true)]
        volumes: Vec<VolumeKey>,
    },
    /// Remove volumes from a volume pool (a source volume's pair is broken
    /// at the next version and its target freed).
    Remove {
        #[arg(value_name = "NAME")]
        vpool: String,
        #[arg(long, value_delimiter = ',', required = true)]
        volumes: Vec<VolumeKey>,
    },
    /// Every volume pool with its volumes.
    List,
}

#[derive(Subcommand)]
pub enum VersionsCmd {
    /// Define a version set: version k of source pool --source goes to
    /// target pool (k − 1) mod T of --targets; the newest --keep stay.
    Define {
        #[arg(value_name = "SET")]
        set: String,
        #[arg(long)]
        source: String,
        #[arg(long, value_delimiter = ',', required = true)]
        targets: Vec<String>,
        #[arg(long)]
        keep: u32,
        /// A command the agent of --host runs (`sh -c`) before each
        /// version's point in time (e.g. to quiesce a database); a
        /// failure fails the version before anything is copied.
        #[arg(long, requires = "host")]
        pre: Option<String>,
        /// The host whose agent (`smapp --name HOST agent`) runs --pre.
        #[arg(long, requires = "pre")]
        host: Option<String>,
        /// Longest the pre command may run, in seconds (then it is killed
        /// and the version fails).
        #[arg(long, default_value_t = 300)]
        hook_timeout: u32,
    },
    /// Choose the next version's targets now (its pre-pairing record);
    /// refused, with the reason, when a source volume has no eligible target.
    Prepare {
        #[arg(value_name = "SET")]
        set: String,
    },
    /// Version sets with their records (every set, or SET).
    List {
        #[arg(value_name = "SET")]
        set: Option<String>,
    },
    /// Make the set's next version now: one point in time across every
    /// source volume, each copied onto its target node to node (only the
    /// tracks changed since, when the target holds an earlier version of
    /// the same source). Waits until it is made.
    Run {
        #[arg(value_name = "SET")]
        set: String,
    },
    /// Copy a version back (the same as `smapp restore --version`).
    Restore {
        #[arg(value_name = "SET@V")]
        version: VersionRef,
        /// The source volume (NODE:VOLUME) whose copy comes back.
        #[arg(long)]
        volume: VolumeKey,
        /// Onto this data volume (NODE:VOLUME) instead of the source.
        #[arg(long)]
        to: Option<VolumeKey>,
    },
}

pub use proto::wire::VersionRef;

#[derive(Subcommand)]
pub enum PoolCmd {
    /// Define a pool: a primary pool takes backups; a copy pool holds
    /// second copies of the primary pools named by --copies-of (again with
    /// more --copies-of: attach it to more primary pools).
    Define {
        #[arg(value_name = "NAME")]
        pool: String,
        #[arg(long, value_enum)]
        kind: PoolKind,
        /// A copy pool: the primary pool(s) it copies (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        copies_of: Vec<String>,
        /// Days a tape whose every ABS was deleted is kept before it is
        /// scratch again (default 0 for a new pool; again: changes it).
        #[arg(long, value_name = "DAYS")]
        retain: Option<u32>,
    },
    /// Every pool: kind, what it copies, tapes, bytes, ABSs.
    List,
    /// Copy every complete ABS of PRIMARY that has no whole copy in the
    /// copy pool yet (or whose copy is damaged), tape to tape on the
    /// movers; each primary tape is mounted once.
    Backup {
        primary: String,
        /// The copy pool to write.
        #[arg(long)]
        to: String,
        /// Read/write drive pairs to use at once.
        #[arg(long, default_value_t = 1)]
        drives: u32,
    },
}

#[derive(Subcommand)]
pub enum LibraryCmd {
    /// Every tape: pool, state, media set, slot or exported, drive.
    List,
    /// Label new scratch tapes into free slots.
    Label {
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// The pool they belong to (default: the station's default pool).
        #[arg(long)]
        pool: Option<String>,
    },
    /// Move a tape's image out of the library (to a directory on the station's host).
    Export {
        label: String,
        #[arg(long)]
        to: PathBuf,
    },
    /// Bring an exported tape's image back, a blank image in as a scratch
    /// tape, or tapes another cluster wrote (their ABSs are recorded).
    Import {
        /// Images: tapes of this catalog, blank ones, or another
        /// cluster's (give every tape of a media set at once).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// A blank image's pool (default: the station's default pool).
        #[arg(long)]
        pool: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TapeCmd {
    /// List every tape file of an image.
    Inspect { image: PathBuf },
    /// Check every label, structure and checksum of an image.
    Verify { image: PathBuf },
    /// Operator, through the station: read every segment the catalog
    /// places on tape LABEL, check it, and mark what fails damaged.
    Audit { label: String },
    /// Operator, through the station: tape LABEL (of a primary pool) is
    /// destroyed; rewrite its segments from their copies onto new tapes of
    /// its pool and point the catalog there.
    Recover {
        label: String,
        /// Most read/write drive pairs to use at once.
        #[arg(long, default_value_t = 1)]
        drives: u32,
    },
}

/// Whose rights, on what, which: for `grant` and `revoke`.
#[derive(clap::Args)]
pub struct GrantScope {
    /// The client's certificate name.
    pub client: String,
    #[arg(long)]
    pub primary: String,
    /// One object of the node (default: all of it).
    #[arg(long)]
    pub object: Option<String>,
    /// Back up (and merge) the object(s).
    #[arg(long)]
    pub backup: bool,
    /// Restore the object(s).
    #[arg(long)]
    pub restore: bool,
}

/// The logical object a backup or a definition names.
#[derive(clap::Args)]
pub struct ObjectArgs {
    /// Primary node holding the object.
    #[arg(long)]
    pub primary: String,
    /// Name of the logical object.
    #[arg(long)]
    pub object: String,
    /// The object is this whole volume.
    #[arg(long, conflicts_with = "extents")]
    pub volume: Option<String>,
    /// The object is this extent list (`VOLUME OFFSET LENGTH` per line, logical order).
    #[arg(long)]
    pub extents: Option<PathBuf>,
}

impl ObjectArgs {
    /// The object as the station is told it: a volume, or the extents read
    /// from the file.
    pub fn logical_object(&self) -> anyhow::Result<proto::wire::LogicalObject> {
        use proto::wire::LogicalObject;
        match (&self.volume, &self.extents) {
            (Some(v), None) => Ok(LogicalObject::Volume(v.clone())),
            (None, Some(f)) => Ok(LogicalObject::Extents(smapp_client::extents::read(f)?)),
            _ => Err(proto::domain::Failure::invalid("give --volume or --extents").into()),
        }
    }
}

// The arguments of `smapp backup` (its help is the variant's doc comment).
#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub what: ObjectArgs,
    /// Write the ABS to this many drives of one back-end in parallel,
    /// its segments split across them (1: one drive, which other
    /// backups may share).
    #[arg(long, default_value_t = 1)]
    pub drives: u32,
    /// full: every track; cumulative: the tracks changed since the last
    /// full; incremental: the tracks changed since the last backup.
    #[arg(long, value_enum, default_value_t = Level::Full)]
    pub level: Level,
    /// Return once the station accepted the backup and let it run
    /// without this client (otherwise a backup still waiting for a
    /// drive when the client goes away is cancelled).
    #[arg(long)]
    pub detach: bool,
    /// The primary pool to write to (default: the station's default pool).
    #[arg(long)]
    pub pool: Option<String>,
    /// Also copy the ABS to this copy pool of that pool, tape to tape,
    /// before reporting done (two more drives of one back-end).
    #[arg(long, value_name = "COPYPOOL")]
    pub copy_to: Option<String>,
    /// Label text kept with the ABS, in the catalog and on tape (≤ 1024
    /// bytes; shown by `list abs`).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Read the object from this copy version (SET@V) instead of the
    /// production volumes, which see no read: a full backup whose point
    /// in time is the version's.
    #[arg(long, value_name = "SET@V")]
    pub from_version: Option<VersionRef>,
}

// The arguments of `smapp restore` (its help is the variant's doc comment).
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The ABS (or give --object and --primary, or --version).
    #[arg(required_unless_present_any = ["object", "version"])]
    pub abs_id: Option<u64>,
    /// Copy a version back instead (SET@V, operator): with --volume, the
    /// version's copy of that source volume onto it (or onto --to).
    #[arg(long, value_name = "SET@V", requires = "volume", conflicts_with_all = ["abs_id", "object", "original", "to_volumes", "to_file"])]
    pub version: Option<VersionRef>,
    /// With --version: the source volume (NODE:VOLUME) whose copy comes back.
    #[arg(long, requires = "version")]
    pub volume: Option<VolumeKey>,
    /// With --version: onto this data volume (NODE:VOLUME) instead of the source.
    #[arg(long, requires = "version")]
    pub to: Option<VolumeKey>,
    /// The logical object to restore from its chain of backups.
    #[arg(long, requires = "primary", conflicts_with = "abs_id")]
    pub object: Option<String>,
    /// The primary node holding --object.
    #[arg(long)]
    pub primary: Option<String>,
    /// The point in time (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` in
    /// UTC as `smapp list` prints it); default: the latest backup.
    #[arg(long, requires = "object")]
    pub at: Option<String>,
    /// Back to the original addresses.
    #[arg(long)]
    pub original: bool,
    /// Onto volumes of this primary node, with --allocation.
    #[arg(long, requires = "allocation")]
    pub to_volumes: Option<String>,
    /// Destination allocation (extent list, logical order).
    #[arg(long)]
    pub allocation: Option<PathBuf>,
    /// Into a plain file: PRIMARY:NAME, a file name (not a path) in
    /// that node's restore directory (its --restore-dir).
    #[arg(long)]
    pub to_file: Option<String>,
    /// With --to-file: overwrite the file if it exists (otherwise an
    /// existing file is refused and left as it is).
    #[arg(long, requires = "to_file")]
    pub replace: bool,
    /// Read the ABS's tapes on at most this many drives in parallel
    /// (0: every free drive).
    #[arg(long, default_value_t = 0)]
    pub drives: u32,
}

// The arguments of `smapp merge` (its help is the variant's doc comment).
#[derive(clap::Args)]
pub struct MergeArgs {
    /// The primary node holding the object.
    #[arg(long)]
    pub primary: String,
    /// The logical object.
    #[arg(long)]
    pub object: String,
    /// The chain ending at this ABS (default: the latest backup).
    #[arg(long)]
    pub abs: Option<u64>,
}

// The arguments of `smapp define` (its help is the variant's doc comment).
#[derive(clap::Args)]
pub struct DefineArgs {
    /// The definition's name (1 to 64 of A-Z a-z 0-9 . _ -).
    #[arg(value_name = "NAME")]
    pub definition: String,
    #[command(flatten)]
    pub what: ObjectArgs,
    #[arg(long, value_enum, default_value_t = Level::Full)]
    pub level: Level,
    /// Label text kept with each run's ABS.
    #[arg(long, default_value = "")]
    pub label: String,
    /// When it runs, in UTC: "daily HH:MM", "weekly DAY HH:MM" (DAY:
    /// mon..sun) or "every N" (N: 30s, 15m, 6h, 1d). Runs missed while
    /// the station was down run once when it is back.
    #[arg(long)]
    pub schedule: String,
    /// Shell command the host's agent runs before the backup (e.g. put
    /// the application into backup mode); the backup starts only if it
    /// exits 0.
    #[arg(long, default_value = "")]
    pub pre: String,
    /// Shell command the host's agent runs after the backup, whatever
    /// happened (`$DMC_RESULT` says succeeded or failed).
    #[arg(long, default_value = "")]
    pub post: String,
    /// Seconds each command may take before it is killed and counts as failed.
    #[arg(long, default_value_t = 300)]
    pub hook_timeout: u32,
    /// The primary pool to write to (default: the station's default pool).
    #[arg(long)]
    pub pool: Option<String>,
    /// The host whose agent runs the commands (default: this client; an
    /// operator names it).
    #[arg(long)]
    pub host: Option<String>,
}
