//! `smapp`: back up and restore logical objects, list the catalog, watch
//! channels, inspect and verify tapes.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use proto::domain::{AbsId, ChannelId, Failure, FailureCode, Level};
use proto::wire::{ChannelEvent, LogicalObject, RestoreTarget, StationReply, StationRequest};
use serde_json::json;
use smapp_client::client::{failure_code, Client};

/// The exit statuses, for `smapp --help`: a script branches on the kind of
/// failure, never on the message.
const EXIT_STATUSES: &str = "Exit status:
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
struct Args {
    /// Control station address.
    #[arg(long, env = "DMC_STATION", default_value = "127.0.0.1:7400", global = true)]
    station: SocketAddr,
    #[arg(long, default_value = "station", global = true)]
    station_name: String,
    /// Directory with the cluster CA and this client's certificate.
    #[arg(long, env = "DMC_PKI", default_value = "pki", global = true)]
    pki: PathBuf,
    /// This client's certificate name.
    #[arg(long, env = "DMC_CLIENT", default_value = "client", global = true)]
    name: String,
    /// Print results as JSON (one object per line) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Give up following a backup, restore or merge after this many
    /// seconds (a job that already started goes on at the station).
    #[arg(long, global = true)]
    timeout: Option<u64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Back up a logical object: a whole volume or an extent list.
    Backup {
        /// Primary node holding the object.
        #[arg(long)]
        primary: String,
        /// Name of the logical object.
        #[arg(long)]
        object: String,
        /// The object is this whole volume.
        #[arg(long, conflicts_with = "extents")]
        volume: Option<String>,
        /// The object is this extent list (`VOLUME OFFSET LENGTH` per line, logical order).
        #[arg(long)]
        extents: Option<PathBuf>,
        /// Write the ABS to this many drives of one back-end in parallel,
        /// its segments split across them (1: one drive, which other
        /// backups may share).
        #[arg(long, default_value_t = 1)]
        drives: u32,
        /// full: every track; cumulative: the tracks changed since the last
        /// full; incremental: the tracks changed since the last backup.
        #[arg(long, value_enum, default_value_t = Level::Full)]
        level: Level,
        /// Return once the station accepted the backup and let it run
        /// without this client (otherwise a backup still waiting for a
        /// drive when the client goes away is cancelled).
        #[arg(long)]
        detach: bool,
    },
    /// Restore the object as an ABS has it (a differential brings its
    /// chain along), or as it was at a time (--primary, --object, --at):
    /// to its original place, onto other volumes through a remap, or into a file.
    Restore {
        /// The ABS (or give --object and --primary).
        #[arg(required_unless_present = "object")]
        abs_id: Option<u64>,
        /// The logical object to restore from its chain of backups.
        #[arg(long, requires = "primary", conflicts_with = "abs_id")]
        object: Option<String>,
        /// The primary node holding --object.
        #[arg(long)]
        primary: Option<String>,
        /// The point in time (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` in
        /// UTC as `smapp list` prints it); default: the latest backup.
        #[arg(long, requires = "object")]
        at: Option<String>,
        /// Back to the original addresses.
        #[arg(long)]
        original: bool,
        /// Onto volumes of this primary node, with --allocation.
        #[arg(long, requires = "allocation")]
        to_volumes: Option<String>,
        /// Destination allocation (extent list, logical order).
        #[arg(long)]
        allocation: Option<PathBuf>,
        /// Into a plain file: PRIMARY:NAME, a file name (not a path) in
        /// that node's restore directory (its --restore-dir).
        #[arg(long)]
        to_file: Option<String>,
        /// With --to-file: overwrite the file if it exists (otherwise an
        /// existing file is refused and left as it is).
        #[arg(long, requires = "to_file")]
        replace: bool,
        /// Read the ABS's tapes on at most this many drives in parallel
        /// (0: every free drive).
        #[arg(long, default_value_t = 0)]
        drives: u32,
    },
    /// Merge a chain (a full and its differentials) into a synthetic full
    /// ABS on the movers, without reading the primary node.
    Merge {
        /// The primary node holding the object.
        #[arg(long)]
        primary: String,
        /// The logical object.
        #[arg(long)]
        object: String,
        /// The chain ending at this ABS (default: the latest backup).
        #[arg(long)]
        abs: Option<u64>,
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
    /// The tape library (operator): list, label scratch tapes, export, import.
    Library {
        #[command(subcommand)]
        cmd: LibraryCmd,
    },
    /// Tape images, with no database and no cluster.
    Tape {
        #[command(subcommand)]
        cmd: TapeCmd,
    },
}

#[derive(Subcommand)]
enum LibraryCmd {
    /// Every tape: pool, state, media set, slot or exported, drive.
    List,
    /// Label new scratch tapes into free slots.
    Label {
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, default_value = "default")]
        pool: String,
    },
    /// Move a tape's image out of the library (to a directory on the station's host).
    Export {
        label: String,
        #[arg(long)]
        to: PathBuf,
    },
    /// Bring an exported tape's image back, or a blank image in as a scratch tape.
    Import {
        image: PathBuf,
        #[arg(long, default_value = "default")]
        pool: String,
    },
}

#[derive(Subcommand)]
enum TapeCmd {
    /// List every tape file of an image.
    Inspect { image: PathBuf },
    /// Check every label, structure and checksum of an image.
    Verify { image: PathBuf },
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1048575 => format!("{:.1} KiB", b / 1024.0),
        1048576..=1073741823 => format!("{:.1} MiB", b / 1048576.0),
        _ => format!("{:.2} GiB", b / 1073741824.0),
    }
}

fn progress_bar(json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

fn on_event(pb: &ProgressBar, json: bool) -> impl FnMut(&ChannelEvent) + '_ {
    move |ev| match ev {
        ChannelEvent::Started {
            channel_id,
            abs_id,
            track_bytes,
            tracks,
            ..
        } => {
            pb.set_length(*track_bytes);
            pb.set_message(format!("channel {channel_id}, ABS {abs_id}, {tracks} tracks"));
        }
        ChannelEvent::Accepted { channel_id, abs_id } => {
            pb.set_message(format!("channel {channel_id}, ABS {abs_id}"));
            line(
                pb,
                json,
                json!({"event": "accepted", "channel_id": channel_id.get(), "abs_id": abs_id.get()}),
                || format!("  accepted: channel {channel_id}, ABS {abs_id}"),
            );
        }
        ChannelEvent::State { state, reason } => state_line(pb, json, state.as_str(), reason, None),
        // Steps that are not channel states print as state lines too.
        ChannelEvent::Snapshot { detail } => state_line(pb, json, "snapshot", detail, None),
        ChannelEvent::Planned { detail } => state_line(pb, json, "planned", detail, None),
        ChannelEvent::Chain { members, detail } => state_line(pb, json, "chain", detail, Some(members)),
        ChannelEvent::Waiting { what, seconds } => line(
            pb,
            json,
            json!({"event": "waiting", "for": what, "seconds": seconds}),
            || format!("  still waiting for {what} ({seconds}s)"),
        ),
        ChannelEvent::Resumed {
            front_end,
            segments_on_tape,
        } => line(
            pb,
            json,
            json!({"event": "resumed", "front_end": front_end, "segments_on_tape": segments_on_tape}),
            || format!("  resumed: front-end {front_end} came back; {segments_on_tape} segments were already on tape"),
        ),
        ChannelEvent::Progress { bytes } => pb.set_position(*bytes),
        _ => {}
    }
}

/// A `state` line: a channel state, or another step of the job (`chain`
/// with the ABSs of the chain, `snapshot`, `planned`).
fn state_line(pb: &ProgressBar, json: bool, state: &str, reason: &str, members: Option<&[AbsId]>) {
    let mut obj = json!({"event": "state", "state": state, "reason": reason});
    if let Some(m) = members {
        obj["members"] = json!(m.iter().map(|a| a.get()).collect::<Vec<_>>());
    }
    line(pb, json, obj, || format!("  {state}: {reason}"));
}

/// A line about a job while it runs: above the progress bar, or (with
/// --json) a JSON object on stderr, so that stdout holds only results.
fn line(pb: &ProgressBar, json: bool, obj: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        eprintln!("{obj}");
    } else {
        pb.println(text());
    }
}

#[tokio::main]
async fn main() {
    transport::telemetry::init_logging("warn");
    let res = tokio::select! {
        r = run(Args::parse()) => r,
        // Dropping the command closes its connection: a job still waiting
        // for a drive is cancelled.
        _ = tokio::signal::ctrl_c() => {
            // The dropped command closed its connection; give the close a
            // moment to leave.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Err(anyhow::anyhow!(Failure::new(FailureCode::Cancelled, "interrupted")))
        }
    };
    if let Err(e) = res {
        eprintln!("smapp: error: {e:#}");
        std::process::exit(i32::from(failure_code(&e).exit_status()));
    }
}

async fn connect(a: &Args) -> Result<Client> {
    Ok(Client::connect(&a.pki, &a.name, a.station, &a.station_name)
        .await?
        .with_timeout(a.timeout.map(std::time::Duration::from_secs)))
}

async fn run(a: Args) -> Result<()> {
    match &a.cmd {
        Cmd::Tape { cmd } => tape(cmd, a.json),
        Cmd::Backup {
            primary,
            object,
            volume,
            extents,
            drives,
            level,
            detach,
        } => {
            let level = *level;
            let spec = match (volume, extents) {
                (Some(v), None) => LogicalObject::Volume(v.clone()),
                (None, Some(f)) => LogicalObject::Extents(smapp_client::extents::read(f)?),
                _ => bail!(Failure::invalid("give --volume or --extents")),
            };
            let req = StationRequest::Backup {
                object_name: object.clone(),
                primary: primary.clone(),
                object: spec,
                drives: *drives,
                level,
                detach: *detach,
            };
            let client = connect(&a).await?;
            let pb = progress_bar(a.json);
            let mut abs = AbsId::default();
            let mut channel = ChannelId::default();
            let mut cb = on_event(&pb, a.json);
            let res = client
                .backup(&req, |ev| {
                    if let ChannelEvent::Started { abs_id, channel_id, .. }
                    | ChannelEvent::Accepted { abs_id, channel_id } = ev
                    {
                        abs = *abs_id;
                        channel = *channel_id;
                    }
                    cb(ev)
                })
                .await;
            pb.finish_and_clear();
            client.close().await;
            let ev = res.with_context(|| format!("backup of {object} (ABS {abs}, channel {channel})"))?;
            if *detach {
                if a.json {
                    println!(
                        "{}",
                        json!({"result": "detached", "abs_id": abs.get(), "channel_id": channel.get()})
                    );
                } else {
                    println!("backup detached: ABS {abs}, channel {channel} (follow it: smapp channels {channel})");
                }
                return Ok(());
            }
            report("backup", abs, channel, &ev, a.json);
            Ok(())
        }
        Cmd::Restore {
            abs_id,
            object,
            primary,
            at,
            original,
            to_volumes,
            allocation,
            to_file,
            replace,
            drives,
        } => {
            let target = match (original, to_volumes, to_file) {
                (true, None, None) => RestoreTarget::Original,
                (false, Some(p), None) => RestoreTarget::Volumes {
                    primary: p.clone(),
                    allocation: smapp_client::extents::read(allocation.as_ref().context("--allocation")?)?,
                },
                (false, None, Some(spec)) => {
                    let (p, name) = spec.split_once(':').context("--to-file expects PRIMARY:NAME")?;
                    proto::wire::check_restore_file_name(name).map_err(Failure::invalid)?;
                    RestoreTarget::File {
                        primary: p.into(),
                        name: name.into(),
                        replace: *replace,
                    }
                }
                _ => bail!(Failure::invalid(
                    "give exactly one of --original, --to-volumes, --to-file"
                )),
            };
            let client = connect(&a).await?;
            let pb = progress_bar(a.json);
            let mut channel = ChannelId::default();
            let mut abs = AbsId::new(abs_id.unwrap_or(0));
            let mut cb = on_event(&pb, a.json);
            let req = match (abs_id, object) {
                (Some(id), _) => StationRequest::Restore {
                    abs_id: AbsId::new(*id),
                    target,
                    drives: *drives,
                },
                (None, Some(o)) => StationRequest::RestoreAt {
                    primary: primary.clone().context("--primary")?,
                    object_name: o.clone(),
                    at_unix_ms: at.as_deref().map(parse_time).transpose()?,
                    target,
                    drives: *drives,
                },
                (None, None) => bail!(Failure::invalid("give an ABS id or --object")),
            };
            let res = client
                .stream(&req, |ev| {
                    if let ChannelEvent::Started { channel_id, abs_id, .. } = ev {
                        channel = *channel_id;
                        abs = *abs_id;
                    }
                    cb(ev)
                })
                .await;
            pb.finish_and_clear();
            let ev = res.with_context(|| format!("restore of ABS {abs} (channel {channel})"))?;
            report("restore", abs, channel, &ev, a.json);
            Ok(())
        }
        Cmd::Merge { primary, object, abs } => {
            let client = connect(&a).await?;
            let pb = progress_bar(a.json);
            let (mut channel, mut new_abs) = (ChannelId::default(), AbsId::default());
            let mut cb = on_event(&pb, a.json);
            let req = StationRequest::Merge {
                primary: primary.clone(),
                object_name: object.clone(),
                abs_id: abs.map(AbsId::new),
            };
            let res = client
                .stream(&req, |ev| {
                    if let ChannelEvent::Started { channel_id, abs_id, .. } = ev {
                        channel = *channel_id;
                        new_abs = *abs_id;
                    }
                    cb(ev)
                })
                .await;
            pb.finish_and_clear();
            let ev = res.with_context(|| format!("merge of {object} (ABS {new_abs}, channel {channel})"))?;
            report("merge", new_abs, channel, &ev, a.json);
            Ok(())
        }
        Cmd::Library { cmd } => {
            let client = connect(&a).await?;
            let abs_path = |p: &PathBuf| -> Result<String> {
                Ok(std::path::absolute(p)
                    .with_context(|| format!("{}", p.display()))?
                    .to_string_lossy()
                    .into_owned())
            };
            let req = match cmd {
                LibraryCmd::List => StationRequest::ListTapes,
                LibraryCmd::Label { count, pool } => StationRequest::LibraryLabel {
                    pool: pool.clone(),
                    count: *count,
                },
                LibraryCmd::Export { label, to } => StationRequest::LibraryExport {
                    label: label.clone(),
                    to_dir: abs_path(to)?,
                },
                LibraryCmd::Import { image, pool } => StationRequest::LibraryImport {
                    path: abs_path(image)?,
                    pool: pool.clone(),
                },
            };
            print_listing(client.request(&req).await?, a.json);
            Ok(())
        }
        Cmd::List { what, abs } => {
            let client = connect(&a).await?;
            let req = match what.as_str() {
                "tapes" => StationRequest::ListTapes,
                "movers" => StationRequest::ListMovers,
                "segments" => StationRequest::ListSegments {
                    abs_id: abs.map(AbsId::new),
                },
                _ => StationRequest::ListAbs,
            };
            print_listing(client.request(&req).await?, a.json);
            Ok(())
        }
        Cmd::Grant(g) | Cmd::Revoke(g) => {
            let granting = matches!(&a.cmd, Cmd::Grant(_));
            if granting && !g.backup && !g.restore {
                bail!(Failure::invalid("grant what? give --backup, --restore or both"));
            }
            let (client, primary, object) = (g.client.clone(), g.primary.clone(), g.object.clone());
            let (backup, restore) = (g.backup, g.restore);
            let req = if granting {
                StationRequest::Grant {
                    client,
                    primary,
                    object,
                    backup,
                    restore,
                }
            } else {
                StationRequest::Revoke {
                    client,
                    primary,
                    object,
                    backup,
                    restore,
                }
            };
            let client = connect(&a).await?;
            print_listing(client.request(&req).await?, a.json);
            Ok(())
        }
        Cmd::Grants => {
            let client = connect(&a).await?;
            print_listing(client.request(&StationRequest::ListGrants).await?, a.json);
            Ok(())
        }
        Cmd::Health => {
            let client = connect(&a).await?;
            let StationReply::Health(h) = client.request(&StationRequest::Health).await? else {
                bail!("the station answered the health request with something else");
            };
            // `ok`, or `unavailable: why`.
            let catalog = if h.catalog_detail.is_empty() {
                h.catalog.to_string()
            } else {
                format!("{}: {}", h.catalog, h.catalog_detail)
            };
            if a.json {
                let peers: Vec<_> = h
                    .peers
                    .iter()
                    .map(|p| json!({"name": p.name, "role": p.role, "boot": p.boot, "last_heard_ms": p.last_heard_ms}))
                    .collect();
                println!(
                    "{}",
                    json!({"catalog": catalog, "uptime_seconds": h.uptime_seconds, "channels": h.channels, "peers": peers})
                );
            } else {
                println!("catalog: {catalog}");
                println!("up {} s, {} channels running", h.uptime_seconds, h.channels);
                for p in &h.peers {
                    println!(
                        "  {:<12} {:<13} heard {:.1} s ago",
                        p.name,
                        p.role,
                        p.last_heard_ms as f64 / 1000.0
                    );
                }
            }
            Ok(())
        }
        Cmd::Channels { what, interval, count } => {
            let client = connect(&a).await?;
            let id = match what.as_deref() {
                Some("watch") => return smapp_client::watch::run(&client, *interval, *count, a.json).await,
                Some(n) => Some(
                    n.parse::<ChannelId>()
                        .map_err(|e| Failure::invalid(format!("{n:?} is neither a channel ID nor `watch`: {e}")))?,
                ),
                None => None,
            };
            print_listing(
                client.request(&StationRequest::Channels { channel_id: id }).await?,
                a.json,
            );
            Ok(())
        }
    }
}

/// Whose rights, on what, which: for `grant` and `revoke`.
#[derive(clap::Args)]
struct GrantScope {
    /// The client's certificate name.
    client: String,
    #[arg(long)]
    primary: String,
    /// One object of the node (default: all of it).
    #[arg(long)]
    object: Option<String>,
    /// Back up (and merge) the object(s).
    #[arg(long)]
    backup: bool,
    /// Restore the object(s).
    #[arg(long)]
    restore: bool,
}

/// A point in time: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` in UTC.
fn parse_time(s: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .with_context(|| format!("{s:?} is neither RFC 3339 nor `YYYY-MM-DD HH:MM:SS[.fff]` (UTC)"))?;
    Ok(t.and_utc().timestamp_millis())
}

fn report(what: &str, abs: AbsId, channel: ChannelId, ev: &ChannelEvent, as_json: bool) {
    if let ChannelEvent::Finished {
        bytes,
        tracks,
        segments,
        tapes,
        seconds,
    } = ev
    {
        let mbs = *bytes as f64 / 1e6 / seconds.max(1e-9);
        if as_json {
            println!(
                "{}",
                json!({"result": what, "abs_id": abs.get(), "channel_id": channel.get(), "bytes": bytes, "tracks": tracks,
                       "segments": segments, "tapes": tapes, "seconds": seconds, "mb_per_s": mbs})
            );
        } else {
            println!(
                "{what} done: ABS {abs}, channel {channel}: {} in {tracks} tracks, {segments} segments on {}, {seconds:.1} s, {mbs:.1} MB/s",
                human(*bytes),
                tapes.join(", ")
            );
        }
    }
}

fn print_listing(reply: StationReply, as_json: bool) {
    match reply {
        StationReply::Abs(rows) => {
            if !as_json {
                println!(
                    "{:>6} {:<20} {:<10} {:<11} {:>6} {:<9} {:<23} {:>12} {:>8} {:>5} {:>4}  tapes",
                    "abs",
                    "object",
                    "primary",
                    "level",
                    "of",
                    "state",
                    "point in time",
                    "size",
                    "tracks",
                    "segs",
                    "ext"
                );
            }
            for r in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"abs_id": r.abs_id.get(), "object": r.object_name, "primary": r.primary, "kind": r.kind.as_str(),
                        "level": r.level.as_str(), "base_abs_id": r.base_abs_id.map_or(0, AbsId::get),
                        "merged_from_abs_id": r.merged_from_abs_id.map_or(0, AbsId::get),
                        "point_in_time": r.point_in_time, "state": r.state.as_str(), "object_size": r.object_size, "data_bytes": r.data_bytes, "tracks": r.track_count,
                        "segments": r.segment_count, "extents": r.extents, "created": r.created, "tapes": r.tapes})
                    );
                } else {
                    println!(
                        "{:>6} {:<20} {:<10} {:<11} {:>6} {:<9} {:<23} {:>12} {:>8} {:>5} {:>4}  {}",
                        r.abs_id,
                        r.object_name,
                        r.primary,
                        r.level,
                        match (r.base_abs_id, r.merged_from_abs_id) {
                            (None, None) => "-".to_string(),
                            (Some(b), None) => b.to_string(),
                            (_, Some(m)) => format!("<{m}"),
                        },
                        r.state,
                        r.point_in_time,
                        human(r.object_size),
                        r.track_count,
                        r.segment_count,
                        r.extents,
                        r.tapes.join(",")
                    );
                }
            }
        }
        StationReply::Grants(rows) => {
            if !as_json {
                println!(
                    "{:<12} {:<12} {:<16} {:<7} {:<8} {:<12} granted",
                    "client", "primary", "object", "backup", "restore", "by"
                );
            }
            for g in rows {
                let object = if g.object.is_empty() { "*" } else { g.object.as_str() };
                if as_json {
                    println!(
                        "{}",
                        json!({"client": g.client, "primary": g.primary, "object": object, "backup": g.backup,
                        "restore": g.restore, "granted_by": g.granted_by, "granted_at": g.granted_at})
                    );
                } else {
                    println!(
                        "{:<12} {:<12} {:<16} {:<7} {:<8} {:<12} {}",
                        g.client, g.primary, object, g.backup, g.restore, g.granted_by, g.granted_at
                    );
                }
            }
        }
        StationReply::Movers(rows) => {
            if !as_json {
                println!(
                    "{:<12} {:<10} {:<22} {:<8} {:<23} last seen",
                    "name", "role", "address", "state", "registered"
                );
            }
            for m in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"name": m.name, "role": m.role.as_str(), "address": m.address, "state": m.state.as_str(),
                        "registered": m.registered, "last_seen": m.last_seen})
                    );
                } else {
                    println!(
                        "{:<12} {:<10} {:<22} {:<8} {:<23} {}",
                        m.name, m.role, m.address, m.state, m.registered, m.last_seen
                    );
                }
            }
        }
        StationReply::Tapes(rows) => {
            if !as_json {
                println!(
                    "{:<8} {:<10} {:<8} {:>12} {:>6} {:<9} {:<8} {:>5} {:<8} path",
                    "label", "pool", "state", "bytes", "files", "media-set", "where", "slot", "drive"
                );
            }
            for t in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"label": t.label, "pool": t.pool, "state": t.state.as_str(), "path": t.path,
                        "bytes_written": t.bytes_written, "files_written": t.files_written, "mounted_in": t.mounted_in,
                        "media_set": t.media_set.map(|m| m.get()), "sequence": t.sequence, "location": t.location.as_str(),
                        "slot": t.slot})
                    );
                } else {
                    let set = match (t.media_set, t.sequence) {
                        (Some(m), Some(q)) => format!("{m}.{q}"),
                        _ => "-".into(),
                    };
                    println!(
                        "{:<8} {:<10} {:<8} {:>12} {:>6} {:<9} {:<8} {:>5} {:<8} {}",
                        t.label,
                        t.pool,
                        t.state,
                        human(t.bytes_written),
                        t.files_written,
                        set,
                        t.location,
                        t.slot.map(|q| q.to_string()).unwrap_or_else(|| "-".into()),
                        t.mounted_in.unwrap_or_else(|| "-".into()),
                        t.path
                    );
                }
            }
        }
        StationReply::Segments(rows) => {
            if !as_json {
                println!(
                    "{:>6} {:>5} {:<8} {:>6} {:>12} {:>7} crc32c",
                    "abs", "seq", "tape", "file", "bytes", "tracks"
                );
            }
            for s in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"abs_id": s.abs_id.get(), "seq": s.seq.get(), "tape": s.tape_label, "tape_file": s.tape_file,
                        "bytes": s.bytes, "data_bytes": s.data_bytes, "tracks": s.track_count, "crc32c": s.crc32c})
                    );
                } else {
                    println!(
                        "{:>6} {:>5} {:<8} {:>6} {:>12} {:>7} {:08x}",
                        s.abs_id, s.seq, s.tape_label, s.tape_file, s.bytes, s.track_count, s.crc32c
                    );
                }
            }
        }
        StationReply::Channels(rows) => {
            if !as_json {
                println!(
                    "{:>5} {:<8} {:>5} {:<17} {:<6} {:<6} {:<6} {:<7} {:>12}  reason",
                    "chan", "kind", "abs", "state", "fe", "be", "drive", "tape", "bytes"
                );
            }
            for c in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"channel_id": c.channel_id.get(), "kind": c.kind.as_str(), "abs_id": c.abs_id.get(), "state": c.state.as_str(),
                        "reason": c.reason, "front_end": c.front_end, "back_end": c.back_end, "drive": c.drive, "tape": c.tape,
                        "bytes": c.bytes, "updated": c.updated})
                    );
                } else {
                    println!(
                        "{:>5} {:<8} {:>5} {:<17} {:<6} {:<6} {:<6} {:<7} {:>12}  {}",
                        c.channel_id,
                        c.kind,
                        c.abs_id,
                        c.state,
                        c.front_end,
                        c.back_end,
                        c.drive,
                        c.tape,
                        human(c.bytes),
                        c.reason
                    );
                }
            }
        }
        StationReply::History { channel, transitions } => {
            // A channel's creation is a transition from nothing: `-`.
            let from = |t: &proto::wire::TransitionInfo| t.from.map_or("-", |s| s.as_str());
            if as_json {
                let t: Vec<_> = transitions
                    .iter()
                    .map(|t| json!({"from": from(t), "to": t.to.as_str(), "reason": t.reason, "actor": t.actor, "at": t.at}))
                    .collect();
                println!(
                    "{}",
                    json!({"channel_id": channel.channel_id.get(), "kind": channel.kind.as_str(), "state": channel.state.as_str(), "transitions": t})
                );
            } else {
                println!(
                    "channel {} ({} of ABS {}): {} — {}",
                    channel.channel_id, channel.kind, channel.abs_id, channel.state, channel.reason
                );
                for t in &transitions {
                    println!(
                        "  {}  {:<17} -> {:<17} {:<10} {}",
                        t.at,
                        from(t),
                        t.to,
                        t.actor,
                        t.reason
                    );
                }
            }
        }
        other => println!("{other:?}"),
    }
}

fn tape(cmd: &TapeCmd, as_json: bool) -> Result<()> {
    use proto::tape::block::SimhTape;
    match cmd {
        TapeCmd::Inspect { image } => {
            let dev = SimhTape::open(image).with_context(|| format!("opening {}", image.display()))?;
            let report =
                proto::tape::inspect::inspect(dev).with_context(|| format!("inspecting {}", image.display()))?;
            if as_json {
                for f in &report.files {
                    println!(
                        "{}",
                        json!({"file": f.file, "records": f.records, "bytes": f.bytes, "kind": f.kind.name(), "abs_id": f.abs_id, "seq": f.seq, "tracks": f.tracks, "detail": f.detail, "problem": f.problem})
                    );
                }
            } else {
                print!("{report}");
            }
            Ok(())
        }
        TapeCmd::Verify { image } => {
            let dev = SimhTape::open(image).with_context(|| format!("opening {}", image.display()))?;
            let report = proto::tape::inspect::verify(dev).with_context(|| format!("verifying {}", image.display()))?;
            print!("{report}");
            if !report.is_ok() {
                bail!("{} is damaged", image.display());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn level_of(args: &[&str]) -> Result<Level, clap::Error> {
        let base = ["smapp", "backup", "--primary", "p", "--object", "o", "--volume", "v"];
        let a = Args::try_parse_from(base.iter().chain(args))?;
        match a.cmd {
            Cmd::Backup { level, .. } => Ok(level),
            _ => unreachable!("a backup"),
        }
    }

    #[test]
    fn levels_parse_as_the_enum_and_synthetic_is_not_listed() {
        Args::command().debug_assert();
        assert_eq!(level_of(&[]).unwrap(), Level::Full);
        assert_eq!(level_of(&["--level", "incremental"]).unwrap(), Level::Incremental);
        assert!(level_of(&["--level", "partial"]).is_err());
        let help = Args::command()
            .find_subcommand_mut("backup")
            .expect("backup")
            .render_long_help()
            .to_string();
        assert!(help.contains("cumulative") && !help.contains("synthetic"), "{help}");
    }

    #[test]
    fn exit_statuses_are_documented() {
        for &code in FailureCode::ALL {
            let line = format!("  {}  {}:", code.exit_status(), code);
            assert!(EXIT_STATUSES.contains(&line), "{line:?} missing from --help");
        }
    }
}
