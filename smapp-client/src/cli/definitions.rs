//! Backup definitions: `define`, `definitions [run NAME]`, `undefine`, and
//! the host's `agent` that runs their hooks.

use anyhow::{Context, Result};
use proto::domain::{AbsId, ChannelId, Failure};
use proto::wire::{ChannelEvent, DefinitionInfo, DefinitionSpec, StationRequest};
use serde_json::json;

use super::args::{Args, DefineArgs};
use super::connect;
use super::listing::print_listing;
use super::progress::{on_event, progress_bar, report};

pub async fn define(a: &Args, d: &DefineArgs) -> Result<()> {
    let object = d.what.logical_object()?;
    // Checked here for a quick answer; the station checks again.
    d.schedule
        .parse::<proto::domain::Schedule>()
        .map_err(|e| Failure::invalid(e.to_string()))?;
    let spec = DefinitionSpec {
        name: d.definition.clone(),
        host: d.host.clone(),
        primary: d.what.primary.clone(),
        object_name: d.what.object.clone(),
        object,
        level: d.level,
        label: d.label.clone(),
        pool: d.pool.clone(),
        schedule: d.schedule.clone(),
        pre: d.pre.clone(),
        post: d.post.clone(),
        hook_timeout_seconds: d.hook_timeout,
    };
    let client = connect(a).await?;
    print_listing(client.request(&StationRequest::Define(Box::new(spec))).await?, a.json);
    Ok(())
}

pub async fn list(a: &Args) -> Result<()> {
    let client = connect(a).await?;
    print_listing(client.request(&StationRequest::ListDefinitions).await?, a.json);
    Ok(())
}

pub async fn undefine(a: &Args, name: &str) -> Result<()> {
    let client = connect(a).await?;
    client
        .request(&StationRequest::Undefine { name: name.to_string() })
        .await?;
    if a.json {
        println!("{}", serde_json::json!({"result": "undefined", "name": name}));
    } else {
        println!("definition {name} removed");
    }
    Ok(())
}

/// `definitions run NAME`: run it now and follow it like a backup.
pub async fn run(a: &Args, name: &str) -> Result<()> {
    let client = connect(a).await?;
    let pb = progress_bar(a.json);
    let (mut abs, mut channel) = (AbsId::default(), ChannelId::default());
    let mut cb = on_event(&pb, a.json);
    let req = StationRequest::RunDefinition { name: name.to_string() };
    let res = client
        .stream(&req, |ev| {
            if let ChannelEvent::Accepted { abs_id, channel_id } = ev {
                (abs, channel) = (*abs_id, *channel_id);
            }
            cb(ev)
        })
        .await;
    pb.finish_and_clear();
    client.close().await;
    let ev = res.with_context(|| format!("run of definition {name} (ABS {abs}, channel {channel})"))?;
    report("backup", abs, channel, &ev, a.json);
    Ok(())
}

/// `agent`: run until stopped.
pub async fn agent(a: &Args, workdir: &std::path::Path) -> Result<()> {
    let workdir = workdir
        .canonicalize()
        .with_context(|| format!("--workdir {}", workdir.display()))?;
    smapp_client::agent::run(smapp_client::agent::AgentConfig {
        name: a.name.clone(),
        pki: a.pki.clone(),
        station: a.station,
        station_name: a.station_name.clone(),
        workdir,
    })
    .await
}

/// Print definitions and their latest runs.
pub fn print(rows: &[DefinitionInfo], as_json: bool) {
    for d in rows {
        if as_json {
            let runs: Vec<_> = d
                .runs
                .iter()
                .map(|r| {
                    json!({"run_id": r.run_id.get(), "due": r.due, "started": r.started, "finished": r.finished,
                    "state": r.state.as_str(), "abs_id": r.abs_id.map(AbsId::get), "channel_id": r.channel_id.map(ChannelId::get),
                    "reason": r.reason, "pre_status": r.pre_status, "pre_output": r.pre_output,
                    "post_status": r.post_status, "post_output": r.post_output})
                })
                .collect();
            println!(
                "{}",
                json!({"name": d.name, "client": d.client, "host": d.host, "primary": d.primary, "object": d.object_name,
                "level": d.level.as_str(), "label": d.label, "pool": d.pool, "schedule": d.schedule, "pre": d.pre,
                "post": d.post, "hook_timeout": d.hook_timeout_seconds, "created": d.created, "next_due": d.next_due,
                "runs": runs})
            );
            continue;
        }
        println!(
            "{}: {} backup of {} on {} ({}), next {} UTC; by {}, hooks on {}",
            d.name, d.level, d.object_name, d.primary, d.schedule, d.next_due, d.client, d.host
        );
        for (what, c) in [("pre ", &d.pre), ("post", &d.post)] {
            if !c.is_empty() {
                println!("    {what}: {c}");
            }
        }
        for r in &d.runs {
            let abs = r.abs_id.map_or("-".to_string(), |a| a.to_string());
            let status = |s: Option<i32>, c: &str| match (c.is_empty(), s) {
                (true, _) => String::new(),
                (false, Some(s)) => format!(" exit {s}"),
                (false, None) => " killed".to_string(),
            };
            println!(
                "  run {:>4}  due {}  {:<9} ABS {:<5} pre{} post{}  {}",
                r.run_id,
                r.due,
                r.state,
                abs,
                status(r.pre_status, &d.pre),
                status(r.post_status, &d.post),
                r.reason
            );
        }
    }
}
