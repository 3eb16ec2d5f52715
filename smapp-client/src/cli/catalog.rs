//! What the station knows: `list` (the catalog), `channels` (states,
//! histories, live), `health`.

use anyhow::{bail, Result};
use proto::domain::{AbsId, ChannelId, Failure};
use proto::wire::{StationReply, StationRequest};
use serde_json::json;

use super::args::Args;
use super::connect;
use super::listing::print_listing;

pub async fn list(a: &Args, what: &str, abs: Option<u64>) -> Result<()> {
    let client = connect(a).await?;
    let req = match what {
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

/// `delete ABS [--with-dependents]`.
pub async fn delete(a: &Args, abs: u64, with_dependents: bool) -> Result<()> {
    let client = connect(a).await?;
    let req = StationRequest::DeleteAbs {
        abs_id: AbsId::new(abs),
        with_dependents,
    };
    print_listing(client.request(&req).await?, a.json);
    Ok(())
}

pub async fn channels(a: &Args, what: Option<&str>, interval: f64, count: Option<u64>) -> Result<()> {
    let client = connect(a).await?;
    let id = match what {
        Some("watch") => return smapp_client::watch::run(&client, interval, count, a.json).await,
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

pub async fn health(a: &Args) -> Result<()> {
    let client = connect(a).await?;
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
            .map(|p| json!({"name": p.name, "role": p.role, "version": p.version, "boot": p.boot, "last_heard_ms": p.last_heard_ms}))
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
                "  {:<12} {:<13} {:<9} heard {:.1} s ago",
                p.name,
                p.role,
                p.version,
                p.last_heard_ms as f64 / 1000.0
            );
        }
    }
    Ok(())
}
