//! A backup read from a copy version (seed 003's backup from a copy): the
//! object's volumes replaced by the version's targets, so the production
//! volumes see no read; the ABS records the version, its point in time
//! and what the version captured of the sources.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use proto::abs::{AbsMap, VolumeRef};
use proto::domain::{Failure, VersionRecordKind, VersionState, VolumeKey};
use proto::wire::VersionRef;

use super::Station;
use crate::catalog::CapturedEpoch;
use crate::service::backup::Reader;

/// Where a backup of `map` (an object of primary node `primary`) reads
/// version `v`: every volume of the object must have a pair in the
/// version, whose target still holds it, all on one node.
pub(crate) async fn reader(st: &Arc<Station>, v: &VersionRef, primary: &str, map: &AbsMap) -> Result<Reader> {
    let records = st.catalog.version_records(Some(&v.set)).await?;
    let record = records
        .iter()
        .find(|r| {
            r.kind == VersionRecordKind::Replication && r.number == v.version && r.state == VersionState::Complete
        })
        .ok_or_else(|| {
            anyhow!(Failure::not_found(format!(
                "set {} keeps no version {}",
                v.set, v.version
            )))
        })?;
    let point_in_time = record
        .point_in_time
        .ok_or_else(|| anyhow!("version {v} has no point in time"))?;
    let pools = st.catalog.vpools(Some(&record.target_vpool)).await?;
    let mut volumes = Vec::with_capacity(map.volumes.len());
    let mut epochs = Vec::with_capacity(map.volumes.len());
    let mut pairs = Vec::with_capacity(map.volumes.len());
    let mut node: Option<String> = None;
    for (i, source) in (0..=u16::MAX).zip(&map.volumes) {
        let key = VolumeKey::new(primary, &source.name);
        let pair = record.pairs.iter().find(|p| p.source == key).ok_or_else(|| {
            anyhow!(Failure::refused(format!(
                "volume {key} of the object has no copy in version {v}"
            )))
        })?;
        let target = super::holding_target(&pools, &pair.target, v, &key)?;
        if target.geometry != source.geometry || target.size < source.size {
            bail!(Failure::refused(format!(
                "target {} does not match {key} (size or geometry)",
                pair.target
            )));
        }
        match &node {
            None => node = Some(pair.target.node.clone()),
            Some(n) if *n == pair.target.node => {}
            Some(n) => bail!(Failure::refused(format!(
                "the object's volumes were copied onto two nodes ({n} and {}): a backup reads one node",
                pair.target.node
            ))),
        }
        let (map_id, epoch) = pair
            .captured
            .ok_or_else(|| anyhow!("version {v} did not record what it captured of {key}"))?;
        epochs.push(CapturedEpoch {
            volume_index: i,
            map_id,
            epoch,
        });
        volumes.push(VolumeRef {
            name: pair.target.volume.clone(),
            geometry: source.geometry,
            size: source.size,
        });
        pairs.push(format!("{key} → {}", pair.target));
    }
    let node = node.ok_or_else(|| anyhow!(Failure::invalid("the object has no volumes")))?;
    let read_map = AbsMap {
        volumes,
        extents: map.extents.clone(),
        object_size: map.object_size,
    };
    read_map.validate().map_err(|e| {
        anyhow!(Failure::invalid(format!(
            "the object's map on the version's targets: {e}"
        )))
    })?;
    Ok(Reader {
        version: v.clone(),
        node,
        map: read_map,
        epochs,
        point_in_time,
        pairs,
    })
}
