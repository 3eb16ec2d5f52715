//! Logical objects and their abstract block sets (ABS), with the ABS map
//! stored as one row per volume and one row per extent (never per block).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use proto::abs::{AbsMap, Geometry, MapExtent, VolumeRef};

use super::{check_one_of, to_i64, to_u32, to_u64, Catalog, CatalogError, Result};

pub const ABS_FULL: &str = "full";
pub const ABS_DIFFERENTIAL: &str = "differential";

/// Levels: a full backup, a differential relative to the last full
/// (cumulative) or to the last backup of any kind (incremental), and a
/// full merged on the movers from a chain (synthetic).
pub const LEVEL_FULL: &str = "full";
pub const LEVEL_CUMULATIVE: &str = "cumulative";
pub const LEVEL_INCREMENTAL: &str = "incremental";
pub const LEVEL_SYNTHETIC: &str = "synthetic";
const BACKUP_LEVELS: &[&str] = &[LEVEL_FULL, LEVEL_CUMULATIVE, LEVEL_INCREMENTAL];

pub const ABS_RUNNING: &str = "running";
pub const ABS_COMPLETE: &str = "complete";
pub const ABS_FAILED: &str = "failed";

/// One ABS with its map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsRow {
    pub id: i64,
    pub object_id: i64,
    pub object_name: String,
    /// Name of the primary node holding the object.
    pub primary_node: String,
    /// `full` or `differential`.
    pub kind: String,
    /// `full`, `cumulative`, `incremental` or `synthetic`.
    pub level: String,
    /// The ABS a differential one is relative to.
    pub base_abs_id: Option<i64>,
    /// The chain tip a synthetic full was merged from.
    pub merged_from_abs_id: Option<i64>,
    /// When the primary node took the snapshot (a synthetic full: its tip's).
    pub point_in_time: DateTime<Utc>,
    /// `running`, `complete` or `failed`.
    pub state: String,
    pub reason: Option<String>,
    pub object_size: i64,
    pub data_bytes: i64,
    pub track_count: i64,
    pub segment_count: u32,
    /// Where the ABS metadata was written (tape id and tape file).
    pub metadata_tape_id: Option<i64>,
    pub metadata_file: Option<u32>,
    pub created: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
    pub map: AbsMap,
}

/// One ABS in a listing: no map, but what was recorded of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsSummaryRow {
    pub id: i64,
    pub object_id: i64,
    pub object_name: String,
    pub primary_node: String,
    pub kind: String,
    pub level: String,
    pub base_abs_id: Option<i64>,
    pub merged_from_abs_id: Option<i64>,
    pub point_in_time: DateTime<Utc>,
    pub state: String,
    pub reason: Option<String>,
    pub object_size: i64,
    pub data_bytes: i64,
    pub track_count: i64,
    /// The count given at completion (0 while running).
    pub segment_count: u32,
    /// Segments recorded so far.
    pub segments_recorded: i64,
    /// Labels of the tapes holding its segments, sorted.
    pub tapes: Vec<String>,
    pub created: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
}

/// The map as column arrays, ready for `UNNEST`.
struct MapColumns {
    vol_index: Vec<i32>,
    vol_name: Vec<String>,
    vol_block: Vec<i64>,
    vol_track: Vec<i64>,
    vol_size: Vec<i64>,
    ext_seq: Vec<i32>,
    ext_logical: Vec<i64>,
    ext_length: Vec<i64>,
    ext_volume: Vec<i32>,
    ext_offset: Vec<i64>,
}

impl MapColumns {
    /// Checks what the schema needs (indices in range, numbers fit); the
    /// map's own validation (`AbsMap::validate`) is the caller's business.
    fn from_map(map: &AbsMap) -> Result<MapColumns> {
        if map.volumes.len() > usize::from(u16::MAX) + 1 {
            return Err(CatalogError::invalid(format!(
                "ABS map has {} volumes",
                map.volumes.len()
            )));
        }
        let mut names = HashSet::new();
        let mut c = MapColumns {
            vol_index: Vec::with_capacity(map.volumes.len()),
            vol_name: Vec::with_capacity(map.volumes.len()),
            vol_block: Vec::with_capacity(map.volumes.len()),
            vol_track: Vec::with_capacity(map.volumes.len()),
            vol_size: Vec::with_capacity(map.volumes.len()),
            ext_seq: Vec::with_capacity(map.extents.len()),
            ext_logical: Vec::with_capacity(map.extents.len()),
            ext_length: Vec::with_capacity(map.extents.len()),
            ext_volume: Vec::with_capacity(map.extents.len()),
            ext_offset: Vec::with_capacity(map.extents.len()),
        };
        for (i, v) in map.volumes.iter().enumerate() {
            if !names.insert(v.name.as_str()) {
                return Err(CatalogError::invalid(format!(
                    "ABS map lists volume {:?} twice",
                    v.name
                )));
            }
            c.vol_index.push(i as i32);
            c.vol_name.push(v.name.clone());
            c.vol_block.push(i64::from(v.geometry.block_size));
            c.vol_track.push(i64::from(v.geometry.track_size));
            c.vol_size.push(to_i64(v.size, "volume size")?);
        }
        let seq_max = i32::MAX as usize;
        if map.extents.len() > seq_max {
            return Err(CatalogError::invalid(format!(
                "ABS map has {} extents",
                map.extents.len()
            )));
        }
        for (i, e) in map.extents.iter().enumerate() {
            if usize::from(e.volume) >= map.volumes.len() {
                return Err(CatalogError::invalid(format!(
                    "ABS map extent {i} refers to volume {} but the map has {} volumes",
                    e.volume,
                    map.volumes.len()
                )));
            }
            c.ext_seq.push(i as i32);
            c.ext_logical.push(to_i64(e.logical_offset, "logical offset")?);
            c.ext_length.push(to_i64(e.length, "extent length")?);
            c.ext_volume.push(i32::from(e.volume));
            c.ext_offset.push(to_i64(e.volume_offset, "volume offset")?);
        }
        Ok(c)
    }
}

impl Catalog {
    /// Record a new ABS (state `running`) of the object `object_name` on a
    /// primary node, with its map, in one transaction. The logical object is
    /// created on first use and its size refreshed afterwards. `level` is
    /// `full`, `cumulative` or `incremental`; a differential level needs a
    /// `base`: a complete ABS of the same object. Returns `(object_id, abs_id)`.
    pub async fn create_abs(
        &self,
        object_name: &str,
        primary_node_id: i64,
        level: &str,
        base: Option<i64>,
        map: &AbsMap,
    ) -> Result<(i64, i64)> {
        check_one_of(level, BACKUP_LEVELS, "backup level")?;
        match (level, base) {
            (LEVEL_FULL, Some(b)) => {
                return Err(CatalogError::invalid(format!(
                    "a full ABS has no base (got base ABS {b})"
                )))
            }
            (LEVEL_CUMULATIVE | LEVEL_INCREMENTAL, None) => {
                return Err(CatalogError::invalid(format!("a {level} ABS needs a base ABS")))
            }
            _ => {}
        }
        self.insert_abs(object_name, primary_node_id, level, base, None, map)
            .await
    }

    /// Record a synthetic full ABS (state `running`) merged from the chain
    /// whose tip is `tip`: same object and map, and the tip's point in time
    /// and change-map epochs. Returns `(object_id, abs_id)`.
    pub async fn create_synthetic_abs(&self, tip: i64) -> Result<(i64, i64)> {
        let t = self
            .load_abs(tip)
            .await?
            .ok_or_else(|| CatalogError::not_found("ABS", tip))?;
        if t.state != ABS_COMPLETE {
            return Err(CatalogError::conflict(format!(
                "ABS {tip} is {}, not complete",
                t.state
            )));
        }
        let node = sqlx::query_scalar!("SELECT primary_node_id FROM logical_objects WHERE id = $1", t.object_id)
            .fetch_one(&self.pool)
            .await?;
        let (object_id, abs_id) = self
            .insert_abs(
                &t.object_name,
                node,
                LEVEL_SYNTHETIC,
                None,
                Some((tip, t.point_in_time)),
                &t.map,
            )
            .await?;
        sqlx::query!(
            "INSERT INTO abs_epochs (abs_id, volume_index, map_id, epoch)
             SELECT $1, volume_index, map_id, epoch FROM abs_epochs WHERE abs_id = $2",
            abs_id,
            tip
        )
        .execute(&self.pool)
        .await?;
        Ok((object_id, abs_id))
    }

    async fn insert_abs(
        &self,
        object_name: &str,
        primary_node_id: i64,
        level: &str,
        base: Option<i64>,
        merged_from: Option<(i64, DateTime<Utc>)>,
        map: &AbsMap,
    ) -> Result<(i64, i64)> {
        if object_name.is_empty() {
            return Err(CatalogError::invalid("logical object name is empty"));
        }
        let kind = if base.is_some() { ABS_DIFFERENTIAL } else { ABS_FULL };
        let cols = MapColumns::from_map(map)?;
        let object_size = to_i64(map.object_size, "object size")?;

        let mut tx = self.pool.begin().await?;
        let node = sqlx::query_scalar!("SELECT id FROM primary_nodes WHERE id = $1", primary_node_id)
            .fetch_optional(&mut *tx)
            .await?;
        if node.is_none() {
            return Err(CatalogError::not_found("primary node", primary_node_id));
        }
        let object_id = sqlx::query_scalar!(
            "INSERT INTO logical_objects (name, primary_node_id, size_bytes) VALUES ($1, $2, $3)
             ON CONFLICT (primary_node_id, name) DO UPDATE SET size_bytes = EXCLUDED.size_bytes
             RETURNING id",
            object_name,
            primary_node_id,
            object_size
        )
        .fetch_one(&mut *tx)
        .await?;
        if let Some(base_id) = base {
            let b = sqlx::query!("SELECT object_id, state FROM abs WHERE id = $1", base_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| CatalogError::not_found("base ABS", base_id))?;
            if b.object_id != object_id {
                return Err(CatalogError::conflict(format!(
                    "base ABS {base_id} is of another logical object than {object_name:?}"
                )));
            }
            if b.state != ABS_COMPLETE {
                return Err(CatalogError::conflict(format!(
                    "base ABS {base_id} is {}, not complete",
                    b.state
                )));
            }
        }
        let abs_id = sqlx::query_scalar!(
            "INSERT INTO abs (object_id, kind, level, base_abs_id, merged_from_abs_id, object_size, point_in_time)
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now())) RETURNING id",
            object_id,
            kind,
            level,
            base,
            merged_from.map(|m| m.0),
            object_size,
            merged_from.map(|m| m.1)
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO abs_volumes (abs_id, volume_index, name, block_size, track_size, size_bytes)
             SELECT $1, v.i, v.name, v.block_size, v.track_size, v.size_bytes
             FROM UNNEST($2::int4[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
                  AS v (i, name, block_size, track_size, size_bytes)",
            abs_id,
            &cols.vol_index[..],
            &cols.vol_name[..],
            &cols.vol_block[..],
            &cols.vol_track[..],
            &cols.vol_size[..],
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO abs_map_extents (abs_id, seq, logical_offset, length, volume_index, volume_offset)
             SELECT $1, e.seq, e.logical_offset, e.length, e.volume_index, e.volume_offset
             FROM UNNEST($2::int4[], $3::int8[], $4::int8[], $5::int4[], $6::int8[])
                  AS e (seq, logical_offset, length, volume_index, volume_offset)",
            abs_id,
            &cols.ext_seq[..],
            &cols.ext_logical[..],
            &cols.ext_length[..],
            &cols.ext_volume[..],
            &cols.ext_offset[..],
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((object_id, abs_id))
    }

    /// One ABS with its map rebuilt from the rows.
    pub async fn load_abs(&self, abs_id: i64) -> Result<Option<AbsRow>> {
        let Some(a) = sqlx::query!(
            "SELECT a.id, a.object_id, o.name AS object_name, n.name AS primary_node, a.kind, a.level,
                    a.base_abs_id, a.merged_from_abs_id, a.point_in_time, a.state, a.reason, a.object_size, a.data_bytes, a.track_count, a.segment_count,
                    a.metadata_tape_id, a.metadata_file, a.created, a.completed
             FROM abs a
             JOIN logical_objects o ON o.id = a.object_id
             JOIN primary_nodes n ON n.id = o.primary_node_id
             WHERE a.id = $1",
            abs_id
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let vols = sqlx::query!(
            "SELECT volume_index, name, block_size, track_size, size_bytes FROM abs_volumes
             WHERE abs_id = $1 ORDER BY volume_index",
            abs_id
        )
        .fetch_all(&self.pool)
        .await?;
        let extents = sqlx::query!(
            "SELECT seq, logical_offset, length, volume_index, volume_offset FROM abs_map_extents
             WHERE abs_id = $1 ORDER BY seq",
            abs_id
        )
        .fetch_all(&self.pool)
        .await?;

        let mut volumes = Vec::with_capacity(vols.len());
        for (i, v) in vols.into_iter().enumerate() {
            if v.volume_index as usize != i {
                return Err(CatalogError::corrupt(format!(
                    "ABS {abs_id}: volume indices are not 0..n (found {} at position {i})",
                    v.volume_index
                )));
            }
            volumes.push(VolumeRef {
                name: v.name,
                geometry: Geometry {
                    block_size: to_u32(v.block_size, "block size")?,
                    track_size: to_u32(v.track_size, "track size")?,
                },
                size: to_u64(v.size_bytes, "volume size")?,
            });
        }
        let extents = extents
            .into_iter()
            .map(|e| {
                Ok(MapExtent {
                    logical_offset: to_u64(e.logical_offset, "logical offset")?,
                    length: to_u64(e.length, "extent length")?,
                    volume: u16::try_from(e.volume_index)
                        .map_err(|_| CatalogError::corrupt(format!("volume index {}", e.volume_index)))?,
                    volume_offset: to_u64(e.volume_offset, "volume offset")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(AbsRow {
            id: a.id,
            object_id: a.object_id,
            object_name: a.object_name,
            primary_node: a.primary_node,
            kind: a.kind,
            level: a.level,
            base_abs_id: a.base_abs_id,
            merged_from_abs_id: a.merged_from_abs_id,
            point_in_time: a.point_in_time,
            state: a.state,
            reason: a.reason,
            object_size: a.object_size,
            data_bytes: a.data_bytes,
            track_count: a.track_count,
            segment_count: to_u32(a.segment_count, "segment count")?,
            metadata_tape_id: a.metadata_tape_id,
            metadata_file: a.metadata_file.map(|f| to_u32(f, "metadata file")).transpose()?,
            created: a.created,
            completed: a.completed,
            map: AbsMap {
                volumes,
                extents,
                object_size: to_u64(a.object_size, "object size")?,
            },
        }))
    }

    /// Mark a running ABS complete. Every one of its `segment_count`
    /// segments must already be recorded (nothing is lost: the catalog holds
    /// the placement of every byte before the ABS counts as complete).
    /// Completing a complete ABS again with the same figures is a no-op.
    pub async fn complete_abs(&self, abs_id: i64, data_bytes: i64, track_count: i64, segment_count: u32) -> Result<()> {
        if data_bytes < 0 || track_count < 0 {
            return Err(CatalogError::invalid(format!(
                "negative ABS figures: {data_bytes} bytes, {track_count} tracks"
            )));
        }
        let mut tx = self.pool.begin().await?;
        let a = sqlx::query!(
            "SELECT state, data_bytes, track_count, segment_count FROM abs WHERE id = $1 FOR UPDATE",
            abs_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        match a.state.as_str() {
            ABS_RUNNING => {}
            ABS_COMPLETE
                if a.data_bytes == data_bytes
                    && a.track_count == track_count
                    && a.segment_count == i64::from(segment_count) =>
            {
                return Ok(())
            }
            other => {
                return Err(CatalogError::conflict(format!(
                    "ABS {abs_id} is {other}, cannot complete it"
                )))
            }
        }
        let recorded = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM segments WHERE abs_id = $1"#, abs_id)
            .fetch_one(&mut *tx)
            .await?;
        if recorded != i64::from(segment_count) {
            return Err(CatalogError::conflict(format!(
                "ABS {abs_id}: {recorded} segments recorded but completion claims {segment_count}"
            )));
        }
        sqlx::query!(
            "UPDATE abs SET state = 'complete', completed = now(), data_bytes = $2, track_count = $3,
                            segment_count = $4
             WHERE id = $1",
            abs_id,
            data_bytes,
            track_count,
            i64::from(segment_count)
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Mark a running ABS failed for `reason`. Failing a failed ABS again
    /// keeps the first reason; a complete ABS cannot fail.
    pub async fn fail_abs(&self, abs_id: i64, reason: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let state = sqlx::query_scalar!("SELECT state FROM abs WHERE id = $1 FOR UPDATE", abs_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        match state.as_str() {
            ABS_RUNNING => {}
            ABS_FAILED => return Ok(()),
            other => {
                return Err(CatalogError::conflict(format!(
                    "ABS {abs_id} is {other}, cannot fail it"
                )))
            }
        }
        sqlx::query!(
            "UPDATE abs SET state = 'failed', reason = $2, completed = now() WHERE id = $1",
            abs_id,
            reason
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record where an ABS's metadata was written on tape. A tape file
    /// already holding a segment or another ABS's metadata is a conflict.
    pub async fn record_abs_metadata(&self, abs_id: i64, tape_id: i64, tape_file: u32) -> Result<()> {
        let file = i64::from(tape_file);
        let mut tx = self.pool.begin().await?;
        sqlx::query_scalar!("SELECT id FROM tapes WHERE id = $1", tape_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("tape", tape_id))?;
        let clash = sqlx::query!(
            r#"SELECT (SELECT abs_id FROM segments WHERE tape_id = $1 AND tape_file = $2) AS "segment_of?",
                      (SELECT id FROM abs WHERE metadata_tape_id = $1 AND metadata_file = $2 AND id <> $3)
                          AS "metadata_of?""#,
            tape_id,
            file,
            abs_id
        )
        .fetch_one(&mut *tx)
        .await?;
        if let Some(other) = clash.segment_of {
            return Err(CatalogError::conflict(format!(
                "tape {tape_id} file {tape_file} holds a segment of ABS {other}, not ABS {abs_id}'s metadata"
            )));
        }
        if let Some(other) = clash.metadata_of {
            return Err(CatalogError::conflict(format!(
                "tape {tape_id} file {tape_file} holds the metadata of ABS {other}"
            )));
        }
        let done = sqlx::query!(
            "UPDATE abs SET metadata_tape_id = $2, metadata_file = $3 WHERE id = $1",
            abs_id,
            tape_id,
            file
        )
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("ABS", abs_id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every ABS, oldest first, with what was recorded of it.
    pub async fn list_abs(&self) -> Result<Vec<AbsSummaryRow>> {
        let rows = sqlx::query!(
            r#"SELECT a.id, a.object_id, o.name AS object_name, n.name AS primary_node, a.kind, a.level,
                      a.base_abs_id, a.merged_from_abs_id, a.point_in_time, a.state, a.reason, a.object_size, a.data_bytes, a.track_count, a.segment_count,
                      (SELECT count(*) FROM segments s WHERE s.abs_id = a.id) AS "segments_recorded!",
                      ARRAY(SELECT DISTINCT t.label FROM segments s JOIN tapes t ON t.id = s.tape_id
                            WHERE s.abs_id = a.id ORDER BY t.label) AS "tapes!",
                      a.created, a.completed
               FROM abs a
               JOIN logical_objects o ON o.id = a.object_id
               JOIN primary_nodes n ON n.id = o.primary_node_id
               ORDER BY a.id"#
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|a| {
                Ok(AbsSummaryRow {
                    id: a.id,
                    object_id: a.object_id,
                    object_name: a.object_name,
                    primary_node: a.primary_node,
                    kind: a.kind,
                    level: a.level,
                    base_abs_id: a.base_abs_id,
                    merged_from_abs_id: a.merged_from_abs_id,
                    point_in_time: a.point_in_time,
                    state: a.state,
                    reason: a.reason,
                    object_size: a.object_size,
                    data_bytes: a.data_bytes,
                    track_count: a.track_count,
                    segment_count: to_u32(a.segment_count, "segment count")?,
                    segments_recorded: a.segments_recorded,
                    tapes: a.tapes,
                    created: a.created,
                    completed: a.completed,
                })
            })
            .collect()
    }
}
