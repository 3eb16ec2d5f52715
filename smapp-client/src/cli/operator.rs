//! Operator commands: rights on primary nodes (`grant`, `revoke`,
//! `grants`), the tape library (`library`), notifications.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use proto::domain::Failure;
use proto::wire::StationRequest;

use super::args::{Args, GrantScope, LibraryCmd, PoolCmd};
use super::connect;
use super::listing::print_listing;

/// `notifications [--acknowledged]`, or `notifications ack ID` (`ack`).
pub async fn notifications(a: &Args, acknowledged: bool, ack: Option<u64>) -> Result<()> {
    let req = match ack {
        Some(id) => StationRequest::AcknowledgeNotification { id },
        None => StationRequest::Notifications { acknowledged },
    };
    let client = connect(a).await?;
    print_listing(client.request(&req).await?, a.json);
    Ok(())
}

/// `grant` (`granting`) or `revoke`.
pub async fn grant(a: &Args, g: &GrantScope, granting: bool) -> Result<()> {
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
    let client = connect(a).await?;
    print_listing(client.request(&req).await?, a.json);
    Ok(())
}

pub async fn grants(a: &Args) -> Result<()> {
    let client = connect(a).await?;
    print_listing(client.request(&StationRequest::ListGrants).await?, a.json);
    Ok(())
}

pub async fn library(a: &Args, cmd: &LibraryCmd) -> Result<()> {
    let client = connect(a).await?;
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
        LibraryCmd::Import { images, pool } => StationRequest::LibraryImport {
            paths: images.iter().map(abs_path).collect::<Result<_>>()?,
            pool: pool.clone(),
        },
    };
    print_listing(client.request(&req).await?, a.json);
    Ok(())
}

pub async fn pool(a: &Args, cmd: &PoolCmd) -> Result<()> {
    let req = match cmd {
        PoolCmd::Define {
            pool,
            kind,
            copies_of,
            retain,
        } => StationRequest::PoolDefine {
            name: pool.clone(),
            kind: *kind,
            copies_of: copies_of.clone(),
            retain_days: *retain,
        },
        PoolCmd::List => StationRequest::PoolList,
        PoolCmd::Backup { primary, to, drives } => return super::jobs::pool_backup(a, primary, to, *drives).await,
    };
    let client = connect(a).await?;
    print_listing(client.request(&req).await?, a.json);
    Ok(())
}

/// `tape audit LABEL`: the station reads the tape and marks what is damaged.
pub async fn audit(a: &Args, label: &str) -> Result<()> {
    let client = connect(a).await?;
    print_listing(
        client
            .request(&StationRequest::TapeAudit {
                label: label.to_string(),
            })
            .await?,
        a.json,
    );
    Ok(())
}
