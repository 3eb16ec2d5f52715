//! The management record of an ABS (seed 002 FIG. 11), made from the
//! catalog: the cluster's and the ABS's UUIDs, who asked and their label,
//! the chain, the point in time and change-map epochs, the pool and the
//! placement of every segment. The front-end writes it in the ABS
//! metadata, so a catalog that never saw the ABS can take it in.

use chrono::{DateTime, Utc};
use proto::domain::{AbsId, Level, Uuid};
use proto::tape::management::{Management, Placement, PlacementCounts, VolumeEpoch};

use super::{to_u32, to_u64, Catalog, CatalogError, Result};

/// Longest chain followed (a loop in the base links is corruption).
const MAX_CHAIN_WALK: usize = 65536;

fn uuid_of(text: &str, what: &str) -> Result<Uuid> {
    text.parse::<Uuid>()
        .map_err(|e| CatalogError::corrupt(format!("{what}: {e}")))
}

fn unix_ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// One segment's place as the catalog has it.
struct PlacementRow {
    seq: i64,
    label: String,
    tape_file: i64,
    bytes: i64,
    crc32c: i64,
    data_bytes: i64,
    track_count: i64,
}

impl TryFrom<PlacementRow> for Placement {
    type Error = CatalogError;

    fn try_from(s: PlacementRow) -> Result<Placement> {
        Ok(Placement {
            seq: to_u32(s.seq, "segment seq")?,
            tape_label: s.label,
            tape_file: to_u32(s.tape_file, "tape file")?,
            bytes: to_u64(s.bytes, "segment bytes")?,
            crc32c: to_u32(s.crc32c, "segment CRC32C")?,
            counts: Some(PlacementCounts {
                data_bytes: to_u64(s.data_bytes, "segment data bytes")?,
                track_count: to_u32(s.track_count, "segment track count")?,
            }),
        })
    }
}

impl Catalog {
    /// This cluster's UUID (made when the catalog was created).
    pub async fn cluster_id(&self) -> Result<Uuid> {
        let id = sqlx::query_scalar!("SELECT id FROM cluster")
            .fetch_one(&self.pool)
            .await?;
        uuid_of(&id, "the cluster id")
    }

    /// Record who asked for ABS `abs_id` and the label they gave it.
    pub async fn describe_abs(&self, abs_id: AbsId, client: &str, label: &str) -> Result<()> {
        self.set_abs_fields(abs_id, None, client, label).await
    }

    /// Give ABS `abs_id` the identity its management record on tape names:
    /// its UUID, who asked for it, its label.
    pub async fn set_abs_identity(&self, abs_id: AbsId, uuid: Uuid, client: &str, label: &str) -> Result<()> {
        self.set_abs_fields(abs_id, Some(uuid), client, label).await
    }

    async fn set_abs_fields(&self, abs_id: AbsId, uuid: Option<Uuid>, client: &str, label: &str) -> Result<()> {
        let done = sqlx::query!(
            "UPDATE abs SET uuid = COALESCE($2, uuid), client = $3, label = $4 WHERE id = $1",
            abs_id as _,
            uuid.map(|u| u.to_string()),
            client,
            label
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("ABS", abs_id));
        }
        Ok(())
    }

    /// ABS `abs_id` came from another catalog's tape: `tape_abs_id` is the
    /// id it carries there (None: the same as its id here), `origin` the
    /// cluster that wrote it (None or this cluster's: ours).
    pub async fn set_abs_origin(&self, abs_id: AbsId, tape_abs_id: Option<AbsId>, origin: Option<Uuid>) -> Result<()> {
        let ours = self.cluster_id().await?;
        let origin = origin.filter(|o| *o != ours).map(|o| o.to_string());
        let done = sqlx::query!(
            "UPDATE abs SET tape_abs_id = $2, origin_cluster = $3 WHERE id = $1",
            abs_id as _,
            tape_abs_id as _,
            origin
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("ABS", abs_id));
        }
        Ok(())
    }

    /// The catalog id of the ABS whose UUID is `uuid`, if any.
    pub async fn abs_by_uuid(&self, uuid: Uuid) -> Result<Option<AbsId>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT id AS "id: AbsId" FROM abs WHERE uuid = $1 AND state <> 'deleted'"#,
            uuid.to_string()
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The management record of ABS `abs_id` as the catalog knows it now:
    /// every segment recorded so far is placed (the primary copies).
    pub async fn management_record(&self, abs_id: AbsId) -> Result<Management> {
        let a = sqlx::query!(
            r#"SELECT a.uuid, a.client, a.label, a.level AS "level: Level", a.base_abs_id AS "base_abs_id: AbsId",
                    a.point_in_time, a.created, a.pool, n.name AS node, b.uuid AS "base_uuid?"
             FROM abs a
             JOIN logical_objects o ON o.id = a.object_id
             JOIN primary_nodes n ON n.id = o.primary_node_id
             LEFT JOIN abs b ON b.id = a.base_abs_id
             WHERE a.id = $1"#,
            abs_id as _
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        let chain = self.chain_ids(abs_id, a.base_abs_id).await?;
        let epochs = sqlx::query!(
            "SELECT volume_index, map_id, epoch FROM abs_epochs WHERE abs_id = $1 ORDER BY volume_index",
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|e| {
            Ok(VolumeEpoch {
                volume: u16::try_from(e.volume_index)
                    .map_err(|_| CatalogError::corrupt(format!("ABS {abs_id} epoch volume {}", e.volume_index)))?,
                map_id: u64::from_ne_bytes(e.map_id.to_ne_bytes()),
                epoch: to_u64(e.epoch, "epoch")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let placements = sqlx::query_as!(
            PlacementRow,
            "SELECT s.seq, t.label, s.tape_file, s.bytes, s.crc32c, s.data_bytes, s.track_count
             FROM segments s JOIN tapes t ON t.id = s.tape_id
             WHERE s.abs_id = $1 ORDER BY s.seq",
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Placement::try_from)
        .collect::<Result<Vec<_>>>()?;
        Ok(Management {
            cluster_id: self.cluster_id().await?,
            abs_uuid: uuid_of(&a.uuid, &format!("ABS {abs_id} uuid"))?,
            client: a.client,
            primary_node: a.node,
            level: a.level,
            base_uuid: match a.base_uuid {
                Some(u) => uuid_of(&u, &format!("the base of ABS {abs_id}"))?,
                None => Uuid::NIL,
            },
            chain,
            point_in_time_ms: unix_ms(a.point_in_time),
            epochs,
            pool: a.pool,
            copy_number: 0,
            label: a.label,
            created_ms: unix_ms(a.created),
            placements,
            written_ms: Some(unix_ms(chrono::Utc::now())),
        })
    }

    /// The management record of ABS `abs_id`'s copy in copy pool `pool`:
    /// the pool, the copy's number (1 for the ABS's first copy, 2 for the
    /// next, …, in the order they were made; a copy being made counts
    /// after those made before it) and its segments' places in that pool.
    pub async fn copy_record(&self, abs_id: AbsId, pool: &str) -> Result<Management> {
        let mut m = self.management_record(abs_id).await?;
        let before = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM abs_copies
             WHERE abs_id = $1 AND pool <> $2
               AND copied <= COALESCE((SELECT copied FROM abs_copies WHERE abs_id = $1 AND pool = $2), now())"#,
            abs_id as _,
            pool
        )
        .fetch_one(&self.pool)
        .await?;
        m.copy_number = to_u32(before + 1, "copy number")?;
        m.pool = pool.to_string();
        m.placements = sqlx::query_as!(
            PlacementRow,
            "SELECT DISTINCT ON (s.seq) s.seq, t.label, c.tape_file, c.bytes, c.crc32c, s.data_bytes, s.track_count
             FROM segment_copies c JOIN segments s ON s.id = c.segment_id JOIN tapes t ON t.id = c.tape_id
             WHERE s.abs_id = $1 AND c.pool = $2 AND c.status = 'ok'
             ORDER BY s.seq, c.id DESC",
            abs_id as _,
            pool
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Placement::try_from)
        .collect::<Result<Vec<_>>>()?;
        Ok(m)
    }

    /// The ABSs a restore of `abs_id` reads, full first, `abs_id` last
    /// (following base links from `base`).
    async fn chain_ids(&self, abs_id: AbsId, mut base: Option<AbsId>) -> Result<Vec<u64>> {
        let mut chain = vec![abs_id.get()];
        while let Some(b) = base {
            if chain.len() >= MAX_CHAIN_WALK || chain.contains(&b.get()) {
                return Err(CatalogError::corrupt(format!(
                    "ABS {abs_id}: the base links loop or run past {MAX_CHAIN_WALK} ABSs"
                )));
            }
            chain.push(b.get());
            base = sqlx::query_scalar!(r#"SELECT base_abs_id AS "b: AbsId" FROM abs WHERE id = $1"#, b as _)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| CatalogError::not_found("base ABS", b))?;
        }
        chain.reverse();
        Ok(chain)
    }
}
