//! `smapp vpool …` and `smapp versions …`: volume pools and copy versions
//! (seed 004).

use anyhow::{bail, Result};
use proto::domain::{VolumeKey, VpoolKind};
use proto::wire::{StationReply, StationRequest, VersionSetInfo, VpoolInfo};
use serde_json::json;

use super::args::{Args, VersionRef, VersionsCmd, VpoolCmd};
use super::connect;

pub async fn vpool(a: &Args, cmd: &VpoolCmd) -> Result<()> {
    let req = match cmd {
        VpoolCmd::Define {
            vpool, source, volumes, ..
        } => StationRequest::VpoolDefine {
            name: vpool.clone(),
            kind: if *source { VpoolKind::Source } else { VpoolKind::Target },
            volumes: volumes.clone(),
        },
        VpoolCmd::Add { vpool, volumes } => StationRequest::VpoolAdd {
            name: vpool.clone(),
            volumes: volumes.clone(),
        },
        VpoolCmd::Remove { vpool, volumes } => StationRequest::VpoolRemove {
            name: vpool.clone(),
            volumes: volumes.clone(),
        },
        VpoolCmd::List => StationRequest::VpoolList,
    };
    match connect(a).await?.request(&req).await? {
        StationReply::Vpools(rows) => print_vpools(&rows, a.json),
        other => bail!("expected the volume pools, got {other:?}"),
    }
    Ok(())
}

pub async fn versions(a: &Args, cmd: &VersionsCmd) -> Result<()> {
    let req = match cmd {
        VersionsCmd::Define {
            set,
            source,
            targets,
            keep,
            pre,
            host,
            hook_timeout,
        } => StationRequest::VersionsDefine {
            name: set.clone(),
            source: source.clone(),
            targets: targets.clone(),
            keep: *keep,
            pre: pre
                .as_ref()
                .zip(host.as_ref())
                .map(|(command, host)| proto::wire::PreCommand {
                    host: host.clone(),
                    command: command.clone(),
                    timeout_seconds: *hook_timeout,
                }),
        },
        VersionsCmd::Prepare { set } => StationRequest::VersionsPrepare { name: set.clone() },
        VersionsCmd::List { set } => StationRequest::VersionsList { name: set.clone() },
        VersionsCmd::Run { set } => StationRequest::VersionsRun { name: set.clone() },
        VersionsCmd::Restore { version, volume, to } => return restore(a, version, volume, to.as_ref()).await,
    };
    match connect(a).await?.request(&req).await? {
        StationReply::VersionSets(rows) => print_sets(&rows, a.json),
        other => bail!("expected the version sets, got {other:?}"),
    }
    Ok(())
}

/// Copy version `v` of source `volume` back onto it (or onto `to`).
pub async fn restore(a: &Args, v: &VersionRef, volume: &VolumeKey, to: Option<&VolumeKey>) -> Result<()> {
    let req = StationRequest::VersionsRestore {
        set: v.set.clone(),
        version: v.version,
        volume: volume.clone(),
        to: to.cloned(),
    };
    match connect(a).await?.request(&req).await? {
        StationReply::VersionRestored {
            destination,
            bytes,
            tracks,
        } => {
            if a.json {
                println!(
                    "{}",
                    json!({"set": v.set, "version": v.version, "source": volume.to_string(),
                    "destination": destination.to_string(), "bytes": bytes, "tracks": tracks})
                );
            } else {
                println!(
                    "version {} of {} copied back onto {destination}: {bytes} bytes in {tracks} tracks, synced",
                    v.version, v.set
                );
            }
            Ok(())
        }
        other => bail!("expected the restored version, got {other:?}"),
    }
}

fn print_vpools(rows: &[VpoolInfo], as_json: bool) {
    for p in rows {
        if as_json {
            let volumes: Vec<_> = p
                .volumes
                .iter()
                .map(|v| {
                    json!({"volume": v.volume.to_string(), "size": v.size, "block_size": v.block_size,
                    "track_size": v.track_size, "online": v.online, "target": v.target, "holds": v.holds,
                    "region_damaged": v.region_damaged})
                })
                .collect();
            println!(
                "{}",
                json!({"vpool": p.name, "kind": p.kind.as_str(), "version_set": p.version_set, "volumes": volumes})
            );
            continue;
        }
        println!(
            "{} ({}, {} volumes{})",
            p.name,
            p.kind,
            p.volumes.len(),
            p.version_set
                .as_ref()
                .map_or_else(String::new, |s| format!(", version set {s}"))
        );
        for v in &p.volumes {
            println!(
                "  {:<24} {:>14} bytes  block/track {}/{}{}{}{}{}",
                v.volume.to_string(),
                v.size,
                v.block_size,
                v.track_size,
                if v.target { "  target" } else { "" },
                v.holds.as_ref().map_or_else(String::new, |h| format!(", holds {h}")),
                v.region_damaged
                    .as_ref()
                    .map_or_else(String::new, |d| format!("  (region damaged: {d})")),
                if v.online { "" } else { "  (node offline)" }
            );
        }
    }
}

fn print_sets(rows: &[VersionSetInfo], as_json: bool) {
    for s in rows {
        if as_json {
            let records: Vec<_> = s
                .records
                .iter()
                .map(|r| {
                    let pairs: Vec<_> = r
                        .pairs
                        .iter()
                        .map(|p| {
                            json!({"source": p.source.to_string(), "target": p.target.to_string(),
                            "bytes_copied": p.bytes_copied, "base_version": p.base_version})
                        })
                        .collect();
                    json!({"version": r.number, "kind": r.kind.as_str(), "target_pool": r.target_pool,
                    "state": r.state.as_str(), "reason": r.reason, "point_in_time_ms": r.point_in_time_ms,
                    "bytes_copied": r.bytes_copied, "created_ms": r.created_ms, "pairs": pairs})
                })
                .collect();
            println!(
                "{}",
                json!({"set": s.name, "source": s.source, "targets": s.targets, "keep": s.keep,
                "pre": s.pre.as_ref().map(|p| json!({"host": p.host, "command": p.command, "timeout_seconds": p.timeout_seconds})),
                "records": records})
            );
            continue;
        }
        println!(
            "{}: {} onto {} (keep {}){}",
            s.name,
            s.source,
            s.targets.join(", "),
            s.keep,
            s.pre
                .as_ref()
                .map_or_else(String::new, |p| format!(", first `{}` on {}", p.command, p.host))
        );
        for r in &s.records {
            let at = r.point_in_time_ms.map_or_else(
                || "-".to_string(),
                |ms| {
                    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
                        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                },
            );
            println!(
                "  V{} {:<12} {:<9} at {at} pool {:<12} {} bytes copied{}",
                r.number,
                r.kind,
                r.state,
                r.target_pool,
                r.bytes_copied,
                if r.reason.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.reason)
                }
            );
            for p in &r.pairs {
                let how = match (r.kind, p.base_version) {
                    (proto::domain::VersionRecordKind::Replication, 0) => format!("  {} bytes, whole", p.bytes_copied),
                    (proto::domain::VersionRecordKind::Replication, b) => {
                        format!("  {} bytes, changed tracks since V{b}", p.bytes_copied)
                    }
                    _ => String::new(),
                };
                println!("      {} -> {}{how}", p.source, p.target);
            }
        }
    }
}
