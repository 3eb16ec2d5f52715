//! Recovery: what a station does when it starts after a crash, and when a
//! process registers (again) holding state from before.
//!
//! A station keeps every running channel in memory (its task follows the
//! client's stream), so a channel it did not start itself cannot go on:
//! - at start, every channel still open in the catalog ends in `error`
//!   ("control station restarted") and every running ABS fails for it;
//! - when a mover or primary node registers, the channels it still holds
//!   that this station does not run are aborted on it, and a back-end's
//!   drives that no channel uses are dismounted (the tape is finished and
//!   recorded as the back-end reports it) so that no tape stays "mounted"
//!   in a drive nobody holds.

use std::sync::Arc;
use std::time::Duration;

use proto::domain::{AbsId, CatalogHealth, ChannelId, DriveId};
use proto::wire::{Command, CommandReply, HealthInfo, PeerHealth};

use super::registry::DriveUse;
use super::{ChannelNote, Station};

/// The reason given to channels and ABSs an earlier start left open.
pub(crate) const STATION_RESTARTED: &str = "control station restarted; the job did not survive it (run it again)";

/// End what an earlier start of the station left open.
pub(crate) async fn at_start(st: &Arc<Station>) -> anyhow::Result<()> {
    let r = st.catalog.recover_at_start(STATION_RESTARTED).await?;
    if !r.channels.is_empty() || !r.abs.is_empty() {
        tracing::warn!(
            channels = ?r.channels,
            abs = ?r.abs,
            "an earlier start left channels open: ended in error, their ABSs failed"
        );
    }
    Ok(())
}

/// A process registered: abort on it the `channels` it holds that this
/// station does not run, and empty its `drives` that no channel uses.
pub(crate) async fn reconcile(st: Arc<Station>, peer: String, channels: Vec<ChannelId>, drives: Vec<String>) {
    // Backups whose front-end this is learn whether it kept them (after
    // they learnt it was lost: see `Station::lifecycle`).
    let lifecycle = st.lifecycle.lock().await;
    let fronted: Vec<ChannelId> = st
        .resumable
        .lock()
        .await
        .iter()
        .filter(|(_, fe)| **fe == peer)
        .map(|(c, _)| *c)
        .collect();
    for channel_id in fronted {
        let kept = channels.contains(&channel_id);
        st.note(channel_id, ChannelNote::FrontEndBack { kept }).await;
    }
    drop(lifecycle);
    let running: Vec<ChannelId> = st.channels.lock().await.keys().copied().collect();
    for channel_id in channels.into_iter().filter(|c| !running.contains(c)) {
        let abort = Command::AbortChannel {
            channel_id,
            reason: format!("the control station runs no channel {channel_id} (it restarted, or the channel failed)"),
        };
        match st.command(&peer, &abort).await {
            Ok(_) => tracing::info!(%peer, %channel_id, "stale channel aborted"),
            Err(e) => tracing::warn!(%peer, %channel_id, error = %format!("{e:#}"), "could not abort a stale channel"),
        }
    }
    if drives.is_empty() {
        return;
    }
    let Some(be_id) = st.registry.lock().await.movers.get(&peer).map(|m| m.id) else {
        return;
    };
    let rows = match st.catalog.drives_of(be_id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "could not list the drives to reconcile");
            return;
        }
    };
    for drive in rows {
        empty_drive(&st, &peer, &drive).await;
    }
}

/// Empty `drive` of back-end `be` if no channel uses it: the back-end
/// unloads whatever it holds (the tape is finished and recorded as it
/// reports), and the catalog frees whatever it had mounted there.
async fn empty_drive(st: &Arc<Station>, be: &str, drive: &crate::catalog::DriveRow) {
    // Claim the drive while it is emptied, so no channel takes it meanwhile.
    {
        let mut uses = st.drive_use.lock().await;
        if uses.contains_key(&drive.id) {
            return;
        }
        uses.insert(drive.id, DriveUse::Reading);
    }
    let reply = st
        .command(
            be,
            &Command::Dismount {
                drive: drive.name.clone(),
            },
        )
        .await;
    let unloaded = match &reply {
        Ok(CommandReply::Dismounted {
            tape_label,
            files,
            bytes,
            ..
        }) if !tape_label.is_empty() => Some((tape_label.as_str(), *files, *bytes)),
        _ => None,
    };
    // A back-end that cannot answer holds nothing any more (it restarts
    // empty); what the catalog had mounted there is free either way.
    if let Err(e) = &reply {
        tracing::warn!(%be, drive = %drive.name, error = %format!("{e:#}"), "could not ask the back-end to empty a drive");
    }
    if unloaded.is_some() || drive.tape_id.is_some() {
        match st.catalog.drive_emptied(drive.id, unloaded).await {
            Ok(freed) => tracing::warn!(
                %be,
                drive = %drive.name,
                unloaded = ?unloaded.map(|u| u.0),
                ?freed,
                "a drive held a tape no channel uses: dismounted"
            ),
            Err(e) => tracing::warn!(%be, drive = %drive.name, error = %e, "could not record an emptied drive"),
        }
    }
    st.drive_use.lock().await.remove(&drive.id);
}

/// How often the station looks for jobs nobody runs.
const SWEEP: Duration = Duration::from_secs(15);

/// The reason given to a channel or ABS the sweeper ends.
const ORPHANED: &str =
    "no task of the control station runs this job any more (its end could not be recorded, e.g. while the catalog was unavailable)";

/// Every job ends, and nothing waits on a drive no one holds: a channel
/// open in the catalog that this station does not run, a running ABS with
/// no open channel, or a drive holding a tape while no channel uses it,
/// seen so in two sweeps in a row (a job being created is in the catalog a
/// moment before it runs), ends in `error` / failed / emptied. Covers ends
/// the catalog could not record when they happened (e.g. the database
/// went away in the middle of a statement).
pub(crate) async fn sweeper(st: Arc<Station>) {
    let mut suspects: (Vec<ChannelId>, Vec<AbsId>, Vec<DriveId>) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        tokio::time::sleep(SWEEP).await;
        let (Ok(open), Ok(lone)) = (
            st.catalog.open_channels().await,
            st.catalog.running_abs_without_channel().await,
        ) else {
            continue;
        };
        let running: Vec<ChannelId> = st.channels.lock().await.keys().copied().collect();
        let orphans: Vec<(ChannelId, AbsId)> = open.into_iter().filter(|(c, _)| !running.contains(c)).collect();
        for (c, abs) in &orphans {
            if suspects.0.contains(c) {
                tracing::warn!(channel_id = %c, abs_id = %abs, "ending a channel no task runs");
                let _ = st
                    .catalog
                    .transition(
                        *c,
                        crate::channel::ChannelState::Error,
                        ORPHANED,
                        crate::catalog::STATION_ACTOR,
                    )
                    .await;
                let _ = st.catalog.fail_abs(*abs, ORPHANED).await;
            }
        }
        for abs in &lone {
            if suspects.1.contains(abs) {
                tracing::warn!(abs_id = %abs, "failing an ABS no channel writes");
                let _ = st.catalog.fail_abs(*abs, ORPHANED).await;
            }
        }
        // A drive the catalog says holds a tape while no channel uses it
        // (its dismount could not be recorded): emptied.
        let held: Vec<crate::catalog::DriveRow> = match st.catalog.list_drives().await {
            Ok(all) => {
                let uses = st.drive_use.lock().await;
                all.into_iter()
                    .filter(|d| d.tape_id.is_some() && !uses.contains_key(&d.id))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for drive in &held {
            if suspects.2.contains(&drive.id) {
                let be = st
                    .registry
                    .lock()
                    .await
                    .movers
                    .iter()
                    .find(|(_, m)| m.id == drive.be_mover_id)
                    .map(|(n, _)| n.clone());
                if let Some(be) = be {
                    empty_drive(&st, &be, drive).await;
                }
            }
        }
        suspects = (
            orphans.into_iter().map(|(c, _)| c).collect(),
            lone,
            held.iter().map(|d| d.id).collect(),
        );
    }
}

/// How long a health check waits for the catalog database.
const CATALOG_PROBE: Duration = Duration::from_secs(2);

/// The station's health: its catalog and the processes it hears from.
pub(crate) async fn health(st: &Arc<Station>) -> HealthInfo {
    let probe = sqlx::query("SELECT 1").execute(st.catalog.pool());
    let (catalog, catalog_detail) = match tokio::time::timeout(CATALOG_PROBE, probe).await {
        Ok(Ok(_)) => (CatalogHealth::Ok, String::new()),
        Ok(Err(e)) => (CatalogHealth::Unavailable, e.to_string()),
        Err(_) => (
            CatalogHealth::Unavailable,
            format!("no answer within {CATALOG_PROBE:?}"),
        ),
    };
    let seen = st.last_seen.lock().await.clone();
    let mut peers: Vec<PeerHealth> = st
        .peers
        .lock()
        .await
        .iter()
        .map(|(name, p)| PeerHealth {
            name: name.clone(),
            // A client certificate registers only as a host's agent.
            role: match p.role {
                transport::Role::Client => "agent".to_string(),
                r => r.as_str().to_string(),
            },
            boot: p.boot,
            version: p.version.clone(),
            last_heard_ms: seen
                .get(name)
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(u64::MAX),
        })
        .collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    HealthInfo {
        catalog,
        catalog_detail,
        uptime_seconds: st.started.elapsed().as_secs(),
        channels: u32::try_from(st.channels.lock().await.len()).unwrap_or(u32::MAX),
        peers,
    }
}
