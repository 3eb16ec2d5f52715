//! Registry: primary nodes and their volumes, movers, FE/BE pairs, drives.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use proto::abs::{Geometry, VolumeRef};
use proto::wire::TargetVolume;

use proto::domain::{DriveId, MoverId, MoverRole, MoverState, NodeId, PairId, TapeId};

use super::{to_i64, to_u32, to_u64, Catalog, CatalogError, Result};

/// A registered data mover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoverRow {
    pub id: MoverId,
    pub name: String,
    pub role: MoverRole,
    pub address: String,
    pub registered_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub state: MoverState,
}

/// A front-end/back-end pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRow {
    pub id: PairId,
    pub fe_id: MoverId,
    pub fe_name: String,
    pub fe_address: String,
    pub be_id: MoverId,
    pub be_name: String,
    pub be_address: String,
}

/// A drive owned by a back-end mover, and the tape mounted in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveRow {
    pub id: DriveId,
    pub name: String,
    pub be_mover_id: MoverId,
    pub tape_id: Option<TapeId>,
    pub tape_label: Option<String>,
}

impl Catalog {
    /// Register (or refresh) a primary node and its volumes. Volumes are
    /// upserted by name; volumes not listed are kept (old ABSs refer to them
    /// by name and carry their own geometry anyway). Returns the node id.
    pub async fn register_primary_node(&self, name: &str, volumes: &[VolumeRef]) -> Result<NodeId> {
        let mut names = Vec::with_capacity(volumes.len());
        let mut block_sizes = Vec::with_capacity(volumes.len());
        let mut track_sizes = Vec::with_capacity(volumes.len());
        let mut sizes = Vec::with_capacity(volumes.len());
        let mut seen = HashSet::new();
        for v in volumes {
            if !seen.insert(v.name.as_str()) {
                return Err(CatalogError::invalid(format!(
                    "volume {:?} listed twice for node {name:?}",
                    v.name
                )));
            }
            names.push(v.name.clone());
            block_sizes.push(i64::from(v.geometry.block_size));
            track_sizes.push(i64::from(v.geometry.track_size));
            sizes.push(to_i64(v.size, "volume size")?);
        }
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO primary_nodes (name) VALUES ($1)
             ON CONFLICT (name) DO UPDATE SET last_seen = now()
             RETURNING id AS "id: NodeId""#,
            name
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO volumes (primary_node_id, name, block_size, track_size, size_bytes)
             SELECT $1, v.name, v.block_size, v.track_size, v.size_bytes
             FROM UNNEST($2::text[], $3::int8[], $4::int8[], $5::int8[])
                  AS v (name, block_size, track_size, size_bytes)
             ON CONFLICT (primary_node_id, name) DO UPDATE
             SET block_size = EXCLUDED.block_size, track_size = EXCLUDED.track_size,
                 size_bytes = EXCLUDED.size_bytes",
            id as _,
            &names[..],
            &block_sizes[..],
            &track_sizes[..],
            &sizes[..],
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Record which of node `node`'s volumes are target volumes and what
    /// version each one's management region holds (its other volumes are
    /// data volumes).
    pub async fn record_targets(&self, node: NodeId, targets: &[TargetVolume]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE volumes SET kind = 'data', holds_set = NULL, holds_version = NULL, holds_source = NULL,
                    holds_point_in_time = NULL, region_damaged = NULL
             WHERE primary_node_id = $1",
            node as _
        )
        .execute(&mut *tx)
        .await?;
        for t in targets {
            let s = t.stamp.as_ref();
            let version = s.map(|s| to_i64(s.version, "version")).transpose()?;
            let at = s
                .map(|s| to_i64(s.point_in_time_ms, "point in time"))
                .transpose()?
                .and_then(DateTime::from_timestamp_millis);
            sqlx::query!(
                "UPDATE volumes SET kind = 'target', holds_set = $3, holds_version = $4, holds_source = $5,
                        holds_point_in_time = $6, region_damaged = $7
                 WHERE primary_node_id = $1 AND name = $2",
                node as _,
                t.volume,
                s.map(|s| s.set.clone()),
                version,
                s.map(|s| s.source.to_string()),
                at,
                t.damaged
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The id of the primary node called `name`.
    pub async fn primary_node_id(&self, name: &str) -> Result<Option<NodeId>> {
        Ok(
            sqlx::query_scalar!(r#"SELECT id AS "id: NodeId" FROM primary_nodes WHERE name = $1"#, name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The volumes registered for a primary node, by name.
    pub async fn volumes_of(&self, primary_node_id: NodeId) -> Result<Vec<VolumeRef>> {
        let rows = sqlx::query!(
            "SELECT name, block_size, track_size, size_bytes FROM volumes
             WHERE primary_node_id = $1 ORDER BY name",
            primary_node_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(VolumeRef {
                    name: r.name,
                    geometry: Geometry {
                        block_size: to_u32(r.block_size, "block size")?,
                        track_size: to_u32(r.track_size, "track size")?,
                    },
                    size: to_u64(r.size_bytes, "volume size")?,
                })
            })
            .collect()
    }

    /// Register a mover, or refresh it: role and address are updated,
    /// `last_seen` is now and the state is back to `online`. Returns its id.
    pub async fn register_mover(&self, name: &str, role: MoverRole, address: &str) -> Result<MoverId> {
        Ok(sqlx::query_scalar!(
            r#"INSERT INTO movers (name, role, address) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
             SET role = EXCLUDED.role, address = EXCLUDED.address, last_seen = now(), state = 'online'
             RETURNING id AS "id: MoverId""#,
            name,
            role as _,
            address
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// A heartbeat: set the mover's `last_seen` to now.
    pub async fn touch_mover(&self, id: MoverId) -> Result<()> {
        let done = sqlx::query!("UPDATE movers SET last_seen = now() WHERE id = $1", id as _)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("mover", id));
        }
        Ok(())
    }

    /// Set a mover's state.
    pub async fn set_mover_state(&self, id: MoverId, state: MoverState) -> Result<()> {
        let done = sqlx::query!("UPDATE movers SET state = $2 WHERE id = $1", id as _, state as _)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("mover", id));
        }
        Ok(())
    }

    async fn mover_role(&self, id: MoverId) -> Result<(String, MoverRole)> {
        let row = sqlx::query!(
            r#"SELECT name, role AS "role: MoverRole" FROM movers WHERE id = $1"#,
            id as _
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CatalogError::not_found("mover", id))?;
        Ok((row.name, row.role))
    }

    /// Register a front-end/back-end pair (idempotent). The front-end must
    /// have role `front-end` or `both`, the back-end `back-end` or `both`.
    pub async fn register_pair(&self, fe_id: MoverId, be_id: MoverId) -> Result<PairId> {
        let (fe_name, fe_role) = self.mover_role(fe_id).await?;
        if !fe_role.is_front_end() {
            return Err(CatalogError::conflict(format!(
                "mover {fe_name} ({fe_role}) cannot be a front-end"
            )));
        }
        let (be_name, be_role) = self.mover_role(be_id).await?;
        if !be_role.is_back_end() {
            return Err(CatalogError::conflict(format!(
                "mover {be_name} ({be_role}) cannot be a back-end"
            )));
        }
        Ok(sqlx::query_scalar!(
            r#"INSERT INTO mover_pairs (fe_id, be_id) VALUES ($1, $2)
             ON CONFLICT (fe_id, be_id) DO UPDATE SET fe_id = EXCLUDED.fe_id
             RETURNING id AS "id: PairId""#,
            fe_id as _,
            be_id as _
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Register a drive owned by a back-end mover (again: the same id).
    /// A drive another back-end owns is refused: a back-end cannot take
    /// over a drive (and the tape in it) by naming it.
    pub async fn register_drive(&self, be_mover_id: MoverId, name: &str) -> Result<DriveId> {
        let (be_name, be_role) = self.mover_role(be_mover_id).await?;
        if !be_role.is_back_end() {
            return Err(CatalogError::conflict(format!(
                "mover {be_name} ({be_role}) cannot own a drive"
            )));
        }
        let id = sqlx::query_scalar!(
            r#"INSERT INTO drives (name, be_mover_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET be_mover_id = EXCLUDED.be_mover_id
               WHERE drives.be_mover_id = EXCLUDED.be_mover_id
             RETURNING id AS "id: DriveId""#,
            name,
            be_mover_id as _
        )
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => Ok(id),
            None => {
                let owner = sqlx::query_scalar!(
                    "SELECT m.name FROM drives d JOIN movers m ON m.id = d.be_mover_id WHERE d.name = $1",
                    name
                )
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or_default();
                Err(CatalogError::conflict(format!(
                    "drive {name} belongs to back-end {owner}; {be_name} may not take it over"
                )))
            }
        }
    }

    /// Every mover, by name.
    pub async fn list_movers(&self) -> Result<Vec<MoverRow>> {
        Ok(sqlx::query_as!(
            MoverRow,
            r#"SELECT id AS "id: MoverId", name, role AS "role: MoverRole", address, registered_at, last_seen,
                      state AS "state: MoverState" FROM movers ORDER BY name"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// One mover.
    pub async fn mover(&self, id: MoverId) -> Result<Option<MoverRow>> {
        Ok(sqlx::query_as!(
            MoverRow,
            r#"SELECT id AS "id: MoverId", name, role AS "role: MoverRole", address, registered_at, last_seen,
                      state AS "state: MoverState" FROM movers WHERE id = $1"#,
            id as _
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every FE/BE pair with the movers' names and addresses.
    pub async fn list_pairs(&self) -> Result<Vec<PairRow>> {
        Ok(sqlx::query_as!(
            PairRow,
            r#"SELECT p.id AS "id: PairId", p.fe_id AS "fe_id: MoverId", fe.name AS fe_name, fe.address AS fe_address,
                    p.be_id AS "be_id: MoverId", be.name AS be_name, be.address AS be_address
             FROM mover_pairs p
             JOIN movers fe ON fe.id = p.fe_id
             JOIN movers be ON be.id = p.be_id
             ORDER BY p.id"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The drives of a back-end mover, by name.
    pub async fn drives_of(&self, be_mover_id: MoverId) -> Result<Vec<DriveRow>> {
        Ok(sqlx::query_as!(
            DriveRow,
            r#"SELECT d.id AS "id: DriveId", d.name, d.be_mover_id AS "be_mover_id: MoverId", t.id AS "tape_id?: TapeId",
                      t.label AS "tape_label?"
               FROM drives d LEFT JOIN tapes t ON t.mounted_in = d.id
               WHERE d.be_mover_id = $1
               ORDER BY d.name"#,
            be_mover_id as _
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every drive, by name.
    pub async fn list_drives(&self) -> Result<Vec<DriveRow>> {
        Ok(sqlx::query_as!(
            DriveRow,
            r#"SELECT d.id AS "id: DriveId", d.name, d.be_mover_id AS "be_mover_id: MoverId", t.id AS "tape_id?: TapeId",
                      t.label AS "tape_label?"
               FROM drives d LEFT JOIN tapes t ON t.mounted_in = d.id
               ORDER BY d.name"#
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
