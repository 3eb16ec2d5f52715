//! The jobs a client follows to their end: `backup`, `restore`, `merge`.

use anyhow::{bail, Context, Result};
use proto::domain::{AbsId, ChannelId, Failure};
use proto::wire::{ChannelEvent, RestoreTarget, StationRequest};
use serde_json::json;

use super::args::{AbsCmd, Args, BackupArgs, MergeArgs, RestoreArgs};
use super::connect;
use super::progress::{on_event, progress_bar, report, report_copied, report_recovered, report_relocated};

pub async fn backup(a: &Args, b: &BackupArgs) -> Result<()> {
    let BackupArgs {
        what,
        drives,
        level,
        detach,
        pool,
        copy_to,
        label,
        from_version,
    } = b;
    let level = *level;
    let object = &what.object;
    let req = StationRequest::Backup {
        object_name: object.clone(),
        primary: what.primary.clone(),
        object: what.logical_object()?,
        drives: *drives,
        level,
        detach: *detach,
        pool: pool.clone(),
        copy_to: copy_to.clone(),
        label: label.clone(),
        from_version: from_version.clone(),
    };
    let client = connect(a).await?;
    let pb = progress_bar(a.json);
    let mut abs = AbsId::default();
    let mut channel = ChannelId::default();
    let mut cb = on_event(&pb, a.json);
    let res = client
        .backup(&req, |ev| {
            if let ChannelEvent::Started { abs_id, channel_id, .. } | ChannelEvent::Accepted { abs_id, channel_id } = ev
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

pub async fn restore(a: &Args, r: &RestoreArgs) -> Result<()> {
    if let (Some(v), Some(volume)) = (&r.version, &r.volume) {
        return super::versions::restore(a, v, volume, r.to.as_ref()).await;
    }
    let RestoreArgs {
        abs_id,
        version: _,
        volume: _,
        to: _,
        object,
        primary,
        at,
        original,
        to_volumes,
        allocation,
        to_file,
        replace,
        drives,
    } = r;
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
    let client = connect(a).await?;
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

pub async fn merge(a: &Args, m: &MergeArgs) -> Result<()> {
    let MergeArgs { primary, object, abs } = m;
    let client = connect(a).await?;
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

/// `pool backup PRIMARY --to COPY`: follow the copy to its end.
pub async fn pool_backup(a: &Args, primary: &str, to: &str, drives: u32) -> Result<()> {
    let client = connect(a).await?;
    let pb = progress_bar(a.json);
    let mut cb = on_event(&pb, a.json);
    let req = StationRequest::PoolBackup {
        primary: primary.to_string(),
        copy_pool: to.to_string(),
        drives,
    };
    let res = client.stream(&req, |ev| cb(ev)).await;
    pb.finish_and_clear();
    let ev = res.with_context(|| format!("pool backup of {primary} to {to}"))?;
    report_copied(primary, to, &ev, a.json);
    Ok(())
}

/// `abs copy|move ABS --pool P`, with progress.
pub async fn abs(a: &Args, cmd: &AbsCmd) -> Result<()> {
    let (what, req) = match cmd {
        AbsCmd::Copy { abs, pool } => (
            "abs copy",
            StationRequest::AbsCopy {
                abs_id: AbsId::new(*abs),
                pool: pool.clone(),
            },
        ),
        AbsCmd::Move { abs, pool } => (
            "abs move",
            StationRequest::AbsMove {
                abs_id: AbsId::new(*abs),
                pool: pool.clone(),
            },
        ),
    };
    let (AbsCmd::Copy { abs, pool } | AbsCmd::Move { abs, pool }) = cmd;
    let client = connect(a).await?;
    let pb = progress_bar(a.json);
    let mut cb = on_event(&pb, a.json);
    let res = client.stream(&req, |ev| cb(ev)).await;
    pb.finish_and_clear();
    let ev = res.with_context(|| format!("{what} of ABS {abs} to pool {pool}"))?;
    report_relocated(what, AbsId::new(*abs), pool, &ev, a.json);
    Ok(())
}

/// `tape recover LABEL`: rewrite a destroyed tape's segments from their
/// copies, with progress.
pub async fn recover(a: &Args, label: &str, drives: u32) -> Result<()> {
    let client = connect(a).await?;
    let pb = progress_bar(a.json);
    let mut cb = on_event(&pb, a.json);
    let req = StationRequest::TapeRecover {
        label: label.to_string(),
        drives,
    };
    let res = client.stream(&req, |ev| cb(ev)).await;
    pb.finish_and_clear();
    let ev = res.with_context(|| format!("recovering tape {label}"))?;
    report_recovered(label, &ev, a.json);
    Ok(())
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
