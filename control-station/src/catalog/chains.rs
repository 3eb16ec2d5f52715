//! Backup chains in the catalog: the change-map position each backup's
//! snapshot captured, and the complete ABSs of an object with their levels.

use chrono::{DateTime, Utc};
use proto::abs::{TrackRun, TrackSet};
use proto::domain::{AbsId, AbsKind, Level, MapId, ObjectId};

use super::{to_u32, Catalog, CatalogError, Result};

/// The change-map position a snapshot captured on one volume of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedEpoch {
    /// Index into the ABS map's volumes.
    pub volume_index: u16,
    pub map_id: MapId,
    pub epoch: u32,
}

/// A complete ABS of an object, as a chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    pub id: AbsId,
    pub level: Level,
    pub base_abs_id: Option<AbsId>,
    pub merged_from_abs_id: Option<AbsId>,
    pub point_in_time: DateTime<Utc>,
}

impl Catalog {
    /// The primary node took the ABS's snapshot now: record the epochs it
    /// captured, the tracks it holds if it is a differential, and set the
    /// point in time.
    pub async fn record_snapshot(
        &self,
        abs_id: AbsId,
        epochs: &[CapturedEpoch],
        changed: Option<&TrackSet>,
    ) -> Result<DateTime<Utc>> {
        self.record_snapshot_of(abs_id, epochs, changed, None).await
    }

    /// [`Catalog::record_snapshot`] of a backup read from a copy version
    /// (`from`: the version "SET@V" and its point in time) instead of the
    /// production volumes: the ABS's point in time is the version's.
    pub async fn record_snapshot_of(
        &self,
        abs_id: AbsId,
        epochs: &[CapturedEpoch],
        changed: Option<&TrackSet>,
        from: Option<(&str, DateTime<Utc>)>,
    ) -> Result<DateTime<Utc>> {
        let idx: Vec<i32> = epochs.iter().map(|e| i32::from(e.volume_index)).collect();
        // A map id is a random u64, kept bit for bit in a BIGINT.
        let ids: Vec<i64> = epochs.iter().map(|e| e.map_id.to_bits()).collect();
        let eps: Vec<i64> = epochs.iter().map(|e| i64::from(e.epoch)).collect();
        let mut tx = self.pool.begin().await?;
        let at = sqlx::query_scalar!(
            "UPDATE abs SET point_in_time = COALESCE($2, now()), from_version = $3
             WHERE id = $1 AND state = 'running' RETURNING point_in_time",
            abs_id as _,
            from.map(|(_, at)| at),
            from.map(|(v, _)| v)
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::conflict(format!("ABS {abs_id} is not a running backup")))?;
        sqlx::query!(
            "INSERT INTO abs_epochs (abs_id, volume_index, map_id, epoch)
             SELECT $1, e.i, e.map_id, e.epoch FROM UNNEST($2::int4[], $3::int8[], $4::int8[]) AS e (i, map_id, epoch)",
            abs_id as _,
            &idx[..],
            &ids[..],
            &eps[..]
        )
        .execute(&mut *tx)
        .await?;
        if let Some(set) = changed {
            let runs = set.runs();
            let n =
                i32::try_from(runs.len()).map_err(|_| CatalogError::invalid(format!("{} track runs", runs.len())))?;
            let seq: Vec<i32> = (0..n).collect();
            let vol: Vec<i32> = runs.iter().map(|r| i32::from(r.volume)).collect();
            let first = runs
                .iter()
                .map(|r| super::to_i64(r.first, "track number"))
                .collect::<Result<Vec<_>>>()?;
            let count = runs
                .iter()
                .map(|r| super::to_i64(r.count, "track count"))
                .collect::<Result<Vec<_>>>()?;
            sqlx::query!(
                "INSERT INTO abs_changed_runs (abs_id, seq, volume_index, first_track, track_count)
                 SELECT $1, r.seq, r.v, r.first, r.count
                 FROM UNNEST($2::int4[], $3::int4[], $4::int8[], $5::int8[]) AS r (seq, v, first, count)",
                abs_id as _,
                &seq[..],
                &vol[..],
                &first[..],
                &count[..]
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(at)
    }

    /// The tracks a differential ABS holds (None for a full).
    pub async fn changed_tracks(&self, abs_id: AbsId) -> Result<Option<TrackSet>> {
        let kind = sqlx::query_scalar!(r#"SELECT kind AS "kind: AbsKind" FROM abs WHERE id = $1"#, abs_id as _)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        if kind != AbsKind::Differential {
            return Ok(None);
        }
        let rows = sqlx::query!(
            "SELECT volume_index, first_track, track_count FROM abs_changed_runs WHERE abs_id = $1 ORDER BY seq",
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        let runs = rows
            .into_iter()
            .map(|r| {
                Ok(TrackRun {
                    volume: u16::try_from(r.volume_index)
                        .map_err(|_| CatalogError::corrupt(format!("volume index {}", r.volume_index)))?,
                    first: super::to_u64(r.first_track, "track number")?,
                    count: super::to_u64(r.track_count, "track count")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(TrackSet::from_runs(runs)))
    }

    /// The epochs an ABS's snapshot captured, by volume index.
    pub async fn abs_epochs(&self, abs_id: AbsId) -> Result<Vec<CapturedEpoch>> {
        let rows = sqlx::query!(
            r#"SELECT volume_index, map_id AS "map_id: MapId", epoch FROM abs_epochs WHERE abs_id = $1 ORDER BY volume_index"#,
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(CapturedEpoch {
                    volume_index: u16::try_from(r.volume_index)
                        .map_err(|_| CatalogError::corrupt(format!("volume index {}", r.volume_index)))?,
                    map_id: r.map_id,
                    epoch: to_u32(r.epoch, "epoch")?,
                })
            })
            .collect()
    }

    /// The complete ABSs of the object `object_name` on a primary node,
    /// oldest point in time first. Returns the object's id too (None: the
    /// object was never backed up).
    pub async fn chain_members(&self, primary: &str, object_name: &str) -> Result<Option<(ObjectId, Vec<ChainRow>)>> {
        let Some(object_id) = sqlx::query_scalar!(
            r#"SELECT o.id AS "id: ObjectId" FROM logical_objects o JOIN primary_nodes n ON n.id = o.primary_node_id
             WHERE n.name = $1 AND o.name = $2"#,
            primary,
            object_name
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query_as!(
            ChainRow,
            r#"SELECT id AS "id: AbsId", level AS "level: Level", base_abs_id AS "base_abs_id: AbsId",
                      merged_from_abs_id AS "merged_from_abs_id: AbsId", point_in_time FROM abs
             WHERE object_id = $1 AND state = 'complete' ORDER BY point_in_time, id"#,
            object_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((object_id, rows)))
    }
}
