//! Registry: primary nodes and their volumes, movers, FE/BE pairs, drives.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use proto::abs::{Geometry, VolumeRef};

use super::{check_one_of, to_i64, to_u32, to_u64, Catalog, CatalogError, Result};

pub const ROLE_FRONT_END: &str = "front-end";
pub const ROLE_BACK_END: &str = "back-end";
pub const ROLE_BOTH: &str = "both";
const ROLES: &[&str] = &[ROLE_FRONT_END, ROLE_BACK_END, ROLE_BOTH];

pub const MOVER_ONLINE: &str = "online";
pub const MOVER_OFFLINE: &str = "offline";
pub const MOVER_DRAINING: &str = "draining";
const MOVER_STATES: &[&str] = &[MOVER_ONLINE, MOVER_OFFLINE, MOVER_DRAINING];

/// A registered data mover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoverRow {
    pub id: i64,
    pub name: String,
    /// `front-end`, `back-end` or `both`.
    pub role: String,
    pub address: String,
    pub registered_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// `online`, `offline` or `draining`.
    pub state: String,
}

/// A front-end/back-end pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRow {
    pub id: i64,
    pub fe_id: i64,
    pub fe_name: String,
    pub fe_address: String,
    pub be_id: i64,
    pub be_name: String,
    pub be_address: String,
}

/// A drive owned by a back-end mover, and the tape mounted in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveRow {
    pub id: i64,
    pub name: String,
    pub be_mover_id: i64,
    pub tape_id: Option<i64>,
    pub tape_label: Option<String>,
}

fn can_front(role: &str) -> bool {
    role == ROLE_FRONT_END || role == ROLE_BOTH
}

fn can_back(role: &str) -> bool {
    role == ROLE_BACK_END || role == ROLE_BOTH
}

impl Catalog {
    /// Register (or refresh) a primary node and its volumes. Volumes are
    /// upserted by name; volumes not listed are kept (old ABSs refer to them
    /// by name and carry their own geometry anyway). Returns the node id.
    pub async fn register_primary_node(&self, name: &str, volumes: &[VolumeRef]) -> Result<i64> {
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
            "INSERT INTO primary_nodes (name) VALUES ($1)
             ON CONFLICT (name) DO UPDATE SET last_seen = now()
             RETURNING id",
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
            id,
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

    /// The id of the primary node called `name`.
    pub async fn primary_node_id(&self, name: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar!("SELECT id FROM primary_nodes WHERE name = $1", name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The volumes registered for a primary node, by name.
    pub async fn volumes_of(&self, primary_node_id: i64) -> Result<Vec<VolumeRef>> {
        let rows = sqlx::query!(
            "SELECT name, block_size, track_size, size_bytes FROM volumes
             WHERE primary_node_id = $1 ORDER BY name",
            primary_node_id
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
    pub async fn register_mover(&self, name: &str, role: &str, address: &str) -> Result<i64> {
        check_one_of(role, ROLES, "mover role")?;
        Ok(sqlx::query_scalar!(
            "INSERT INTO movers (name, role, address) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
             SET role = EXCLUDED.role, address = EXCLUDED.address, last_seen = now(), state = 'online'
             RETURNING id",
            name,
            role,
            address
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// A heartbeat: set the mover's `last_seen` to now.
    pub async fn touch_mover(&self, id: i64) -> Result<()> {
        let done = sqlx::query!("UPDATE movers SET last_seen = now() WHERE id = $1", id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("mover", id));
        }
        Ok(())
    }

    /// Set a mover's state: `online`, `offline` or `draining`.
    pub async fn set_mover_state(&self, id: i64, state: &str) -> Result<()> {
        check_one_of(state, MOVER_STATES, "mover state")?;
        let done = sqlx::query!("UPDATE movers SET state = $2 WHERE id = $1", id, state)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("mover", id));
        }
        Ok(())
    }

    async fn mover_role(&self, id: i64) -> Result<(String, String)> {
        let row = sqlx::query!("SELECT name, role FROM movers WHERE id = $1", id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CatalogError::not_found("mover", id))?;
        Ok((row.name, row.role))
    }

    /// Register a front-end/back-end pair (idempotent). The front-end must
    /// have role `front-end` or `both`, the back-end `back-end` or `both`.
    pub async fn register_pair(&self, fe_id: i64, be_id: i64) -> Result<i64> {
        let (fe_name, fe_role) = self.mover_role(fe_id).await?;
        if !can_front(&fe_role) {
            return Err(CatalogError::conflict(format!(
                "mover {fe_name} ({fe_role}) cannot be a front-end"
            )));
        }
        let (be_name, be_role) = self.mover_role(be_id).await?;
        if !can_back(&be_role) {
            return Err(CatalogError::conflict(format!(
                "mover {be_name} ({be_role}) cannot be a back-end"
            )));
        }
        Ok(sqlx::query_scalar!(
            "INSERT INTO mover_pairs (fe_id, be_id) VALUES ($1, $2)
             ON CONFLICT (fe_id, be_id) DO UPDATE SET fe_id = EXCLUDED.fe_id
             RETURNING id",
            fe_id,
            be_id
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Register a drive owned by a back-end mover (again: the same id).
    /// A drive another back-end owns is refused: a back-end cannot take
    /// over a drive (and the tape in it) by naming it.
    pub async fn register_drive(&self, be_mover_id: i64, name: &str) -> Result<i64> {
        let (be_name, be_role) = self.mover_role(be_mover_id).await?;
        if !can_back(&be_role) {
            return Err(CatalogError::conflict(format!(
                "mover {be_name} ({be_role}) cannot own a drive"
            )));
        }
        let id = sqlx::query_scalar!(
            "INSERT INTO drives (name, be_mover_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET be_mover_id = EXCLUDED.be_mover_id
               WHERE drives.be_mover_id = EXCLUDED.be_mover_id
             RETURNING id",
            name,
            be_mover_id
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
            "SELECT id, name, role, address, registered_at, last_seen, state FROM movers ORDER BY name"
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// One mover.
    pub async fn mover(&self, id: i64) -> Result<Option<MoverRow>> {
        Ok(sqlx::query_as!(
            MoverRow,
            "SELECT id, name, role, address, registered_at, last_seen, state FROM movers WHERE id = $1",
            id
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every FE/BE pair with the movers' names and addresses.
    pub async fn list_pairs(&self) -> Result<Vec<PairRow>> {
        Ok(sqlx::query_as!(
            PairRow,
            "SELECT p.id, p.fe_id, fe.name AS fe_name, fe.address AS fe_address,
                    p.be_id, be.name AS be_name, be.address AS be_address
             FROM mover_pairs p
             JOIN movers fe ON fe.id = p.fe_id
             JOIN movers be ON be.id = p.be_id
             ORDER BY p.id"
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The drives of a back-end mover, by name.
    pub async fn drives_of(&self, be_mover_id: i64) -> Result<Vec<DriveRow>> {
        Ok(sqlx::query_as!(
            DriveRow,
            r#"SELECT d.id, d.name, d.be_mover_id, t.id AS "tape_id?", t.label AS "tape_label?"
               FROM drives d LEFT JOIN tapes t ON t.mounted_in = d.id
               WHERE d.be_mover_id = $1
               ORDER BY d.name"#,
            be_mover_id
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every drive, by name.
    pub async fn list_drives(&self) -> Result<Vec<DriveRow>> {
        Ok(sqlx::query_as!(
            DriveRow,
            r#"SELECT d.id, d.name, d.be_mover_id, t.id AS "tape_id?", t.label AS "tape_label?"
               FROM drives d LEFT JOIN tapes t ON t.mounted_in = d.id
               ORDER BY d.name"#
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
