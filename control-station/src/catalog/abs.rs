//! Logical objects and their abstract block sets (ABS), with the ABS map
//! stored as one row per volume and one row per extent (never per block).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use proto::abs::{AbsMap, Geometry, MapExtent, VolumeRef};

use proto::domain::{AbsId, AbsKind, AbsState, Level, NodeId, ObjectId, TapeId};

use super::{to_i64, to_u32, to_u64, Catalog, CatalogError, Result};

/// One ABS with its map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abs {
    pub id: AbsId,
    pub object_id: ObjectId,
    pub object_name: String,
    /// Name of the primary node holding the object.
    pub primary_node: String,
    pub kind: AbsKind,
    pub level: Level,
    /// The ABS a differential one is relative to.
    pub base_abs_id: Option<AbsId>,
    /// The chain tip a synthetic full was merged from.
    pub merged_from_abs_id: Option<AbsId>,
    /// When the primary node took the snapshot (a synthetic full: its tip's).
    pub point_in_time: DateTime<Utc>,
    pub state: AbsState,
    pub reason: Option<String>,
    pub object_size: u64,
    pub data_bytes: u64,
    pub track_count: u64,
    pub segment_count: u32,
    /// Where the ABS metadata was written (tape id and tape file).
    pub metadata_tape_id: Option<TapeId>,
    pub metadata_file: Option<u32>,
    /// The primary pool it was written to.
    pub pool: String,
    pub created: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
    pub map: AbsMap,
}

/// One ABS in a listing: no map, but what was recorded of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsSummaryRow {
    pub id: AbsId,
    pub object_id: ObjectId,
    pub object_name: String,
    pub primary_node: String,
    pub kind: AbsKind,
    pub level: Level,
    pub base_abs_id: Option<AbsId>,
    pub merged_from_abs_id: Option<AbsId>,
    pub point_in_time: DateTime<Utc>,
    pub state: AbsState,
    pub reason: Option<String>,
    pub object_size: u64,
    pub data_bytes: u64,
    pub track_count: u64,
    /// The count given at completion (0 while running).
    pub segment_count: u32,
    /// Segments recorded so far.
    pub segments_recorded: u64,
    /// Labels of the tapes holding its segments, in the order the library
    /// got them (a media set's tapes in sequence).
    pub tapes: Vec<String>,
    /// Extents of its ABS map.
    pub extents: u32,
    /// The primary pool it was written to.
    pub pool: String,
    pub created: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
    /// Its UUID (kept wherever its tapes go).
    pub uuid: String,
    /// The label text its client gave.
    pub label: String,
    /// The cluster that wrote it, when another one did (an imported tape).
    pub origin_cluster: Option<String>,
    /// The backup definition whose run made it.
    pub definition: Option<String>,
    /// The copy version it was read from ("SET@V"), if not the production volumes.
    pub from_version: Option<String>,
}

/// Where a new ABS comes from: its level, a differential's base, a
/// synthetic full's chain tip and point in time.
struct Lineage {
    level: Level,
    base: Option<AbsId>,
    merged_from: Option<(AbsId, DateTime<Utc>)>,
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
            c.vol_index
                .push(i32::try_from(i).map_err(|_| CatalogError::invalid(format!("ABS map volume {i}")))?);
            c.vol_name.push(v.name.clone());
            c.vol_block.push(i64::from(v.geometry.block_size));
            c.vol_track.push(i64::from(v.geometry.track_size));
            c.vol_size.push(to_i64(v.size, "volume size")?);
        }
        if i32::try_from(map.extents.len()).is_err() {
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
            c.ext_seq
                .push(i32::try_from(i).map_err(|_| CatalogError::invalid(format!("ABS map extent {i}")))?);
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
    /// full, cumulative or incremental (a synthetic full is made by
    /// [`Catalog::create_synthetic_abs`]); a differential level needs a
    /// `base`: a complete ABS of the same object. Returns `(object_id, abs_id)`.
    pub async fn create_abs(
        &self,
        object_name: &str,
        primary_node_id: NodeId,
        level: Level,
        base: Option<AbsId>,
        map: &AbsMap,
        pool: &str,
    ) -> Result<(ObjectId, AbsId)> {
        match (level, level.kind(), base) {
            (Level::Synthetic, _, _) => {
                return Err(CatalogError::invalid(
                    "a synthetic full ABS is merged from a chain, never asked of a backup",
                ))
            }
            (_, AbsKind::Full, Some(b)) => {
                return Err(CatalogError::invalid(format!(
                    "a full ABS has no base (got base ABS {b})"
                )))
            }
            (_, AbsKind::Differential, None) => {
                return Err(CatalogError::invalid(format!("a {level} ABS needs a base ABS")))
            }
            _ => {}
        }
        let lineage = Lineage {
            level,
            base,
            merged_from: None,
        };
        self.insert_abs(object_name, primary_node_id, lineage, map, pool).await
    }

    /// Record a synthetic full ABS (state `running`) merged from the chain
    /// whose tip is `tip`: same object and map, and the tip's point in time
    /// and change-map epochs. Returns `(object_id, abs_id)`.
    pub async fn create_synthetic_abs(&self, tip: AbsId) -> Result<(ObjectId, AbsId)> {
        let t = self
            .load_abs(tip)
            .await?
            .ok_or_else(|| CatalogError::not_found("ABS", tip))?;
        if t.state != AbsState::Complete {
            return Err(CatalogError::conflict(format!(
                "ABS {tip} is {}, not complete",
                t.state
            )));
        }
        let node = sqlx::query_scalar!(
            r#"SELECT primary_node_id AS "id: NodeId" FROM logical_objects WHERE id = $1"#,
            t.object_id as _
        )
        .fetch_one(&self.pool)
        .await?;
        let (object_id, abs_id) = self
            .insert_abs(
                &t.object_name,
                node,
                Lineage {
                    level: Level::Synthetic,
                    base: None,
                    merged_from: Some((tip, t.point_in_time)),
                },
                &t.map,
                &t.pool,
            )
            .await?;
        sqlx::query!(
            "INSERT INTO abs_epochs (abs_id, volume_index, map_id, epoch)
             SELECT $1, volume_index, map_id, epoch FROM abs_epochs WHERE abs_id = $2",
            abs_id as _,
            tip as _
        )
        .execute(&self.pool)
        .await?;
        Ok((object_id, abs_id))
    }

    async fn insert_abs(
        &self,
        object_name: &str,
        primary_node_id: NodeId,
        lineage: Lineage,
        map: &AbsMap,
        pool: &str,
    ) -> Result<(ObjectId, AbsId)> {
        let Lineage {
            level,
            base,
            merged_from,
        } = lineage;
        if object_name.is_empty() {
            return Err(CatalogError::invalid("logical object name is empty"));
        }
        let kind = if base.is_some() {
            AbsKind::Differential
        } else {
            AbsKind::Full
        };
        let cols = MapColumns::from_map(map)?;
        let object_size = to_i64(map.object_size, "object size")?;
        let primary_node = primary_node_id.to_i64()?;

        let mut tx = self.pool.begin().await?;
        let node = sqlx::query_scalar!("SELECT id FROM primary_nodes WHERE id = $1", primary_node)
            .fetch_optional(&mut *tx)
            .await?;
        if node.is_none() {
            return Err(CatalogError::not_found("primary node", primary_node_id));
        }
        let object_id = sqlx::query_scalar!(
            r#"INSERT INTO logical_objects (name, primary_node_id, size_bytes) VALUES ($1, $2, $3)
             ON CONFLICT (primary_node_id, name) DO UPDATE SET size_bytes = EXCLUDED.size_bytes
             RETURNING id AS "id: ObjectId""#,
            object_name,
            primary_node,
            object_size
        )
        .fetch_one(&mut *tx)
        .await?;
        if let Some(base_id) = base {
            let b = sqlx::query!(
                r#"SELECT object_id AS "object_id: ObjectId", state AS "state: AbsState" FROM abs WHERE id = $1"#,
                base_id as _
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("base ABS", base_id))?;
            if b.object_id != object_id {
                return Err(CatalogError::conflict(format!(
                    "base ABS {base_id} is of another logical object than {object_name:?}"
                )));
            }
            if b.state != AbsState::Complete {
                return Err(CatalogError::conflict(format!(
                    "base ABS {base_id} is {}, not complete",
                    b.state
                )));
            }
        }
        let abs_id = sqlx::query_scalar!(
            r#"INSERT INTO abs (object_id, kind, level, base_abs_id, merged_from_abs_id, object_size, point_in_time, pool)
             VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()), $8) RETURNING id AS "id: AbsId""#,
            object_id as _,
            kind as _,
            level as _,
            base as _,
            merged_from.map(|m| m.0) as _,
            object_size,
            merged_from.map(|m| m.1),
            pool
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO abs_volumes (abs_id, volume_index, name, block_size, track_size, size_bytes)
             SELECT $1, v.i, v.name, v.block_size, v.track_size, v.size_bytes
             FROM UNNEST($2::int4[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
                  AS v (i, name, block_size, track_size, size_bytes)",
            abs_id as _,
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
            abs_id as _,
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
    pub async fn load_abs(&self, abs_id: AbsId) -> Result<Option<Abs>> {
        let Some(a) = sqlx::query!(
            r#"SELECT a.id AS "id: AbsId", a.object_id AS "object_id: ObjectId", o.name AS object_name,
                    n.name AS primary_node, a.kind AS "kind: AbsKind", a.level AS "level: Level",
                    a.base_abs_id AS "base_abs_id: AbsId", a.merged_from_abs_id AS "merged_from_abs_id: AbsId",
                    a.point_in_time, a.state AS "state: AbsState", a.reason, a.object_size, a.data_bytes,
                    a.track_count, a.segment_count, a.metadata_tape_id AS "metadata_tape_id: TapeId",
                    a.metadata_file, a.pool, a.created, a.completed
             FROM abs a
             JOIN logical_objects o ON o.id = a.object_id
             JOIN primary_nodes n ON n.id = o.primary_node_id
             WHERE a.id = $1"#,
            abs_id as _
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let vols = sqlx::query!(
            "SELECT volume_index, name, block_size, track_size, size_bytes FROM abs_volumes
             WHERE abs_id = $1 ORDER BY volume_index",
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        let extents = sqlx::query!(
            "SELECT seq, logical_offset, length, volume_index, volume_offset FROM abs_map_extents
             WHERE abs_id = $1 ORDER BY seq",
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?;

        let mut volumes = Vec::with_capacity(vols.len());
        for (i, v) in vols.into_iter().enumerate() {
            if usize::try_from(v.volume_index).ok() != Some(i) {
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
        let object_size = to_u64(a.object_size, "object size")?;
        Ok(Some(Abs {
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
            object_size,
            data_bytes: to_u64(a.data_bytes, "data bytes")?,
            track_count: to_u64(a.track_count, "track count")?,
            segment_count: to_u32(a.segment_count, "segment count")?,
            metadata_tape_id: a.metadata_tape_id,
            metadata_file: a.metadata_file.map(|f| to_u32(f, "metadata file")).transpose()?,
            pool: a.pool,
            created: a.created,
            completed: a.completed,
            map: AbsMap {
                volumes,
                extents,
                object_size,
            },
        }))
    }

    /// The id ABS `abs_id`'s segments and metadata carry on tape (what a
    /// back-end checks when it reads them): its own, unless it was
    /// imported under another id or copied from another ABS.
    pub async fn tape_abs_id(&self, abs_id: AbsId) -> Result<AbsId> {
        sqlx::query_scalar!(
            r#"SELECT COALESCE(tape_abs_id, id) AS "id!: AbsId" FROM abs WHERE id = $1"#,
            abs_id as _
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", abs_id))
    }

    /// Make `abs_id` the id the next new ABS gets (a catalog restore
    /// recording the catalog backup it was read from under the id its tape
    /// carries). Refused when an ABS with that id or a later one exists:
    /// ids are never reused.
    pub async fn reserve_abs_id(&self, abs_id: AbsId) -> Result<()> {
        let id = abs_id.to_i64()?;
        let mut tx = self.pool.begin().await?;
        sqlx::query!("LOCK TABLE abs IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let highest = sqlx::query_scalar!(r#"SELECT COALESCE(max(id), 0) AS "n!" FROM abs"#)
            .fetch_one(&mut *tx)
            .await?;
        if highest >= id {
            return Err(CatalogError::conflict(format!(
                "ABS id {abs_id} is taken: the catalog already has ABS {highest}"
            )));
        }
        // The next nextval() returns `id`.
        sqlx::query!("SELECT setval(pg_get_serial_sequence('abs', 'id'), $1, false)", id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every ABS not deleted, oldest first, with what was recorded of it
    /// (one query: 20,000 ABSs with 60,000 segments in about 0.2 s).
    pub async fn list_abs(&self) -> Result<Vec<AbsSummaryRow>> {
        let rows = sqlx::query!(
            r#"WITH placed AS (SELECT x.abs_id, array_agg(t.label ORDER BY t.id) AS tapes, sum(x.n)::int8 AS segments
                               FROM (SELECT abs_id, tape_id, count(*) AS n FROM segments GROUP BY abs_id, tape_id) x
                               JOIN tapes t ON t.id = x.tape_id
                               GROUP BY x.abs_id),
                    mapped AS (SELECT abs_id, count(*) AS extents FROM abs_map_extents GROUP BY abs_id)
               SELECT a.id AS "id: AbsId", a.object_id AS "object_id: ObjectId", o.name AS object_name,
                      n.name AS primary_node, a.kind AS "kind: AbsKind", a.level AS "level: Level",
                      a.base_abs_id AS "base_abs_id: AbsId", a.merged_from_abs_id AS "merged_from_abs_id: AbsId",
                      a.point_in_time, a.state AS "state: AbsState", a.reason, a.object_size, a.data_bytes,
                      a.track_count, a.segment_count,
                      COALESCE(p.segments, 0) AS "segments_recorded!",
                      COALESCE(p.tapes, '{}') AS "tapes!",
                      COALESCE(m.extents, 0) AS "extents!",
                      a.pool, a.created, a.completed, a.uuid, a.label, a.origin_cluster, a.definition,
                      a.from_version
               FROM abs a
               JOIN logical_objects o ON o.id = a.object_id
               JOIN primary_nodes n ON n.id = o.primary_node_id
               LEFT JOIN placed p ON p.abs_id = a.id
               LEFT JOIN mapped m ON m.abs_id = a.id
               WHERE a.state <> 'deleted'
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
                    object_size: to_u64(a.object_size, "object size")?,
                    data_bytes: to_u64(a.data_bytes, "data bytes")?,
                    track_count: to_u64(a.track_count, "track count")?,
                    segment_count: to_u32(a.segment_count, "segment count")?,
                    segments_recorded: to_u64(a.segments_recorded, "segment count")?,
                    tapes: a.tapes,
                    extents: to_u32(a.extents, "extent count")?,
                    pool: a.pool,
                    created: a.created,
                    completed: a.completed,
                    uuid: a.uuid,
                    label: a.label,
                    origin_cluster: a.origin_cluster,
                    definition: a.definition,
                    from_version: a.from_version,
                })
            })
            .collect()
    }
}
