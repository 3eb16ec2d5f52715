//! Registration of primary nodes and movers; pairing front-ends with
//! back-ends; choosing a pair and a drive for a channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use proto::abs::VolumeRef;
use proto::wire::MoverRole;

use super::Station;
use crate::catalog::{DriveRow, PairRow};

#[derive(Debug, Clone)]
pub(crate) struct PrimaryEntry {
    pub id: i64,
    pub volumes: Vec<VolumeRef>,
}

#[derive(Debug, Clone)]
pub(crate) struct MoverEntry {
    pub id: i64,
    pub back_end: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub primaries: HashMap<String, PrimaryEntry>,
    pub movers: HashMap<String, MoverEntry>,
}

pub(crate) async fn register_primary(st: &Arc<Station>, name: &str, volumes: Vec<VolumeRef>) -> Result<i64> {
    let id = st.catalog.register_primary_node(name, &volumes).await?;
    tracing::info!(name, volumes = volumes.len(), "primary node registered");
    st.registry
        .lock()
        .await
        .primaries
        .insert(name.to_string(), PrimaryEntry { id, volumes });
    Ok(id)
}

pub(crate) async fn register_mover(
    st: &Arc<Station>,
    name: &str,
    role: MoverRole,
    address: &str,
    drives: &[String],
    back_end: Option<String>,
) -> Result<i64> {
    let id = st.catalog.register_mover(name, role.as_str(), address).await?;
    for d in drives {
        st.catalog.register_drive(id, d).await?;
    }
    let mut reg = st.registry.lock().await;
    reg.movers.insert(name.to_string(), MoverEntry { id, back_end });
    // Pair every front-end whose back-end is known.
    let pairs: Vec<(i64, i64)> = reg
        .movers
        .values()
        .filter_map(|m| {
            let be = reg.movers.get(m.back_end.as_ref()?)?;
            Some((m.id, be.id))
        })
        .collect();
    drop(reg);
    for (fe, be) in pairs {
        st.catalog.register_pair(fe, be).await?;
    }
    tracing::info!(
        name,
        role = role.as_str(),
        address,
        drives = drives.len(),
        "mover registered"
    );
    Ok(id)
}

pub(crate) async fn heartbeat(st: &Arc<Station>, name: &str) -> Result<()> {
    let id = st.registry.lock().await.movers.get(name).map(|m| m.id);
    if let Some(id) = id {
        st.catalog.touch_mover(id).await?;
    }
    Ok(())
}

pub(crate) async fn primary(st: &Arc<Station>, name: &str) -> Result<PrimaryEntry> {
    let reg = st.registry.lock().await;
    match reg.primaries.get(name) {
        Some(p) if st.peers.lock().await.contains_key(name) => Ok(p.clone()),
        Some(_) => bail!("primary node {name} is registered but not connected"),
        None => bail!("no primary node named {name} has registered"),
    }
}

/// A pair whose both movers are connected, least loaded first, and a free
/// drive of its back-end; waits (up to `patience`) while all drives are busy.
pub(crate) async fn assign(st: &Arc<Station>, patience: Duration) -> Result<(PairRow, DriveRow)> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let pairs = st.catalog.list_pairs().await?;
        let connected: Vec<PairRow> = {
            let peers = st.peers.lock().await;
            pairs
                .into_iter()
                .filter(|p| peers.contains_key(&p.fe_name) && peers.contains_key(&p.be_name))
                .collect()
        };
        if connected.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                bail!("no front-end/back-end pair is connected");
            }
        } else {
            let load = st.pair_load.lock().await.clone();
            let mut ordered = connected;
            ordered.sort_by_key(|p| load.get(&p.id).copied().unwrap_or(0));
            for pair in ordered {
                let drives = st.catalog.drives_of(pair.be_id).await?;
                let mut busy = st.busy_drives.lock().await;
                if let Some(d) = drives
                    .into_iter()
                    .find(|d| !busy.contains(&d.id) && d.tape_id.is_none())
                {
                    busy.insert(d.id);
                    *st.pair_load.lock().await.entry(pair.id).or_default() += 1;
                    return Ok((pair, d));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("every drive stayed busy for {patience:?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Give back what [`assign`] handed out.
pub(crate) async fn release(st: &Arc<Station>, pair: &PairRow, drive: &DriveRow) {
    st.busy_drives.lock().await.remove(&drive.id);
    if let Some(n) = st.pair_load.lock().await.get_mut(&pair.id) {
        *n = n.saturating_sub(1);
    }
}
