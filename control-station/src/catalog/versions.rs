//! Volume pools, version sets and their records (seed 004; migration
//! 0012). The station decides what a record holds ([`crate::plan::versions`]);
//! this stores it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::abs::Geometry;
use proto::domain::{MapId, VersionRecordKind, VersionState, VolumeKey, VpoolKind};
use sqlx::{Postgres, Transaction};

use super::pools::check_pool_name;
use super::{to_i64, to_u32, to_u64, Catalog, CatalogError, Result};

/// One volume of a volume pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpoolVolumeRow {
    pub volume_id: i64,
    pub key: VolumeKey,
    pub size: u64,
    pub geometry: Geometry,
    /// A target volume (its node serves it with a management region).
    pub target: bool,
    /// What its management region holds: "SET VN (SOURCE)".
    pub holds: Option<String>,
    /// The same, as fields.
    pub holding: Option<Holding>,
    /// Why its region could not be read at the node's last registration.
    pub region_damaged: Option<String>,
}

/// The version a target volume's management region holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub set: String,
    pub version: u64,
    /// The source volume ("node:volume").
    pub source: String,
}

/// A volume pool with its volumes in scan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpoolRow {
    pub name: String,
    pub kind: VpoolKind,
    pub volumes: Vec<VpoolVolumeRow>,
    pub version_set: Option<String>,
}

/// A version set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSetRow {
    pub name: String,
    pub source: String,
    pub targets: Vec<String>,
    pub keep: u32,
    /// Run before each version's point in time.
    pub pre: Option<proto::wire::PreCommand>,
}

/// One record of a version set, with its pairs in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecordRow {
    pub id: i64,
    pub set_name: String,
    pub number: u64,
    pub kind: VersionRecordKind,
    pub target_vpool: String,
    pub state: VersionState,
    pub reason: String,
    pub point_in_time: Option<DateTime<Utc>>,
    pub bytes_copied: u64,
    /// The bytes of the source volumes (a made version).
    pub source_bytes: u64,
    pub created: DateTime<Utc>,
    pub pairs: Vec<RecordPair>,
}

/// One (source, target) pair of a record, with what its copy captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPair {
    pub source: VolumeKey,
    pub target: VolumeKey,
    /// The source's change map and the epoch its snapshot captured.
    pub captured: Option<(MapId, u32)>,
    pub bytes_copied: u64,
    /// The version the target held whose unchanged tracks it kept (0: none).
    pub base_version: u64,
}

impl RecordPair {
    /// A pair chosen, not copied yet.
    pub fn new(source: VolumeKey, target: VolumeKey) -> RecordPair {
        RecordPair {
            source,
            target,
            captured: None,
            bytes_copied: 0,
            base_version: 0,
        }
    }
}

/// A record to store (its pairs by volume key).
#[derive(Debug, Clone)]
pub struct NewVersionRecord<'a> {
    pub set_name: &'a str,
    pub number: u64,
    pub kind: VersionRecordKind,
    pub target_vpool: &'a str,
    pub state: VersionState,
    pub reason: &'a str,
    pub pairs: &'a [RecordPair],
    pub point_in_time: Option<DateTime<Utc>>,
    pub bytes_copied: u64,
    pub source_bytes: u64,
}

/// The catalog ids of `keys`, in order; a volume no node reported is not found.
async fn volume_ids(tx: &mut Transaction<'_, Postgres>, keys: &[VolumeKey]) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let id = sqlx::query_scalar!(
            "SELECT v.id FROM volumes v JOIN primary_nodes n ON n.id = v.primary_node_id
             WHERE n.name = $1 AND v.name = $2",
            k.node,
            k.volume
        )
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("volume (no node reported it)", k))?;
        if out.contains(&id) {
            return Err(CatalogError::invalid(format!("volume {k} is given twice")));
        }
        out.push(id);
    }
    Ok(out)
}

impl Catalog {
    /// Define volume pool `name` with `volumes`; refused if the name is
    /// taken or a volume is in another pool.
    pub async fn vpool_define(&self, name: &str, kind: VpoolKind, volumes: &[VolumeKey]) -> Result<()> {
        check_pool_name(name)?;
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query_scalar!("SELECT kind FROM vpools WHERE name = $1", name)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(k) = exists {
            return Err(CatalogError::conflict(format!(
                "volume pool {name} exists ({k}): add volumes with vpool add"
            )));
        }
        sqlx::query!("INSERT INTO vpools (name, kind) VALUES ($1, $2)", name, kind as _)
            .execute(&mut *tx)
            .await?;
        add_volumes(&mut tx, name, volumes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Add `volumes` to volume pool `name`.
    pub async fn vpool_add(&self, name: &str, volumes: &[VolumeKey]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_vpool(&mut tx, name).await?;
        add_volumes(&mut tx, name, volumes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove `volumes` (each must be in it) from volume pool `name`.
    pub async fn vpool_remove(&self, name: &str, volumes: &[VolumeKey]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lock_vpool(&mut tx, name).await?;
        let ids = volume_ids(&mut tx, volumes).await?;
        for (id, k) in ids.iter().zip(volumes) {
            let gone = sqlx::query!(
                "DELETE FROM vpool_volumes WHERE vpool = $1 AND volume_id = $2",
                name,
                id
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if gone == 0 {
                return Err(CatalogError::not_found("volume in the pool", format!("{k} in {name}")));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every volume pool (or the one named), volumes in scan order.
    pub async fn vpools(&self, only: Option<&str>) -> Result<Vec<VpoolRow>> {
        let pools = sqlx::query!(
            r#"SELECT p.name, p.kind AS "kind: VpoolKind",
                      COALESCE(t.set_name, s.name) AS "version_set?"
             FROM vpools p
             LEFT JOIN version_set_targets t ON t.vpool = p.name
             LEFT JOIN version_sets s ON s.source = p.name
             WHERE $1::text IS NULL OR p.name = $1
             ORDER BY p.name"#,
            only
        )
        .fetch_all(&self.pool)
        .await?;
        let vols = sqlx::query!(
            "SELECT pv.vpool, v.id, n.name AS node, v.name, v.block_size, v.track_size, v.size_bytes,
                    v.kind, v.holds_set, v.holds_version, v.holds_source, v.region_damaged
             FROM vpool_volumes pv JOIN volumes v ON v.id = pv.volume_id
             JOIN primary_nodes n ON n.id = v.primary_node_id
             WHERE $1::text IS NULL OR pv.vpool = $1
             ORDER BY pv.position",
            only
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by: BTreeMap<String, Vec<VpoolVolumeRow>> = BTreeMap::new();
        for v in vols {
            by.entry(v.vpool).or_default().push(VpoolVolumeRow {
                volume_id: v.id,
                key: VolumeKey::new(&v.node, &v.name),
                size: to_u64(v.size_bytes, "volume size")?,
                geometry: Geometry {
                    block_size: to_u32(v.block_size, "block size")?,
                    track_size: to_u32(v.track_size, "track size")?,
                },
                target: v.kind == "target",
                holds: match (&v.holds_set, v.holds_version) {
                    (Some(set), Some(n)) => Some(format!(
                        "{set} V{n} ({})",
                        v.holds_source.as_deref().unwrap_or_default()
                    )),
                    _ => None,
                },
                holding: match (v.holds_set, v.holds_version) {
                    (Some(set), Some(n)) => Some(Holding {
                        set,
                        version: to_u64(n, "version")?,
                        source: v.holds_source.unwrap_or_default(),
                    }),
                    _ => None,
                },
                region_damaged: v.region_damaged,
            });
        }
        let mut out = Vec::new();
        for p in pools {
            // One row per pool: a pool serves one set (as source or target).
            if out.iter().any(|o: &VpoolRow| o.name == p.name) {
                continue;
            }
            out.push(VpoolRow {
                volumes: by.remove(&p.name).unwrap_or_default(),
                name: p.name,
                kind: p.kind,
                version_set: p.version_set,
            });
        }
        Ok(out)
    }

    /// Define version set `name`: source pool `source` onto `targets` in
    /// rotation, `keep` kept (shape checked by the caller).
    pub async fn version_set_define(
        &self,
        name: &str,
        source: &str,
        targets: &[String],
        keep: u32,
        pre: Option<&proto::wire::PreCommand>,
        by: &str,
    ) -> Result<()> {
        check_pool_name(name)?;
        let mut tx = self.pool.begin().await?;
        let kind_of = |pool: &str| {
            let pool = pool.to_string();
            async move {
                sqlx::query_scalar!(r#"SELECT kind AS "kind: VpoolKind" FROM vpools WHERE name = $1"#, pool)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(CatalogError::from)?
                    .ok_or_else(|| CatalogError::not_found("volume pool", pool))
            }
        };
        if kind_of(source).await? != VpoolKind::Source {
            return Err(CatalogError::invalid(format!(
                "--source {source} is not a source volume pool"
            )));
        }
        for t in targets {
            if kind_of(t).await? != VpoolKind::Target {
                return Err(CatalogError::invalid(format!(
                    "--targets {t} is not a target volume pool"
                )));
            }
        }
        let inserted = sqlx::query!(
            "INSERT INTO version_sets (name, source, keep, defined_by, pre_host, pre_command, hook_timeout_seconds)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO NOTHING",
            name,
            source,
            i32::try_from(keep).map_err(|_| CatalogError::invalid(format!("--keep {keep}")))?,
            by,
            pre.map(|p| p.host.clone()),
            pre.map_or("", |p| p.command.as_str()),
            pre.map_or(Ok(300), |p| i32::try_from(p.timeout_seconds))
                .map_err(|_| CatalogError::invalid("--hook-timeout"))?
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(CatalogError::conflict(format!("version set {name} exists")));
        }
        for (i, t) in targets.iter().enumerate() {
            let position = i32::try_from(i).map_err(|_| CatalogError::invalid("too many target pools"))?;
            let r = sqlx::query!(
                "INSERT INTO version_set_targets (set_name, position, vpool) VALUES ($1, $2, $3)",
                name,
                position,
                t
            )
            .execute(&mut *tx)
            .await;
            if let Err(e) = r {
                let e = CatalogError::from(e);
                if e.is_unique_violation() {
                    return Err(CatalogError::conflict(format!(
                        "target pool {t} serves another version set (or is given twice)"
                    )));
                }
                return Err(e);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every version set (or the one named).
    pub async fn version_sets(&self, only: Option<&str>) -> Result<Vec<VersionSetRow>> {
        let sets = sqlx::query!(
            "SELECT s.name, s.source, s.keep, s.pre_host, s.pre_command, s.hook_timeout_seconds,
                    array_agg(t.vpool ORDER BY t.position) AS \"targets!\"
             FROM version_sets s JOIN version_set_targets t ON t.set_name = s.name
             WHERE $1::text IS NULL OR s.name = $1
             GROUP BY s.name ORDER BY s.name",
            only
        )
        .fetch_all(&self.pool)
        .await?;
        sets.into_iter()
            .map(|s| {
                let pre = match s.pre_host {
                    Some(host) if !s.pre_command.is_empty() => Some(proto::wire::PreCommand {
                        host,
                        command: s.pre_command,
                        timeout_seconds: to_u32(i64::from(s.hook_timeout_seconds), "hook timeout")?,
                    }),
                    _ => None,
                };
                Ok(VersionSetRow {
                    pre,
                    keep: u32::try_from(s.keep).map_err(|_| CatalogError::corrupt("version set keep"))?,
                    name: s.name,
                    source: s.source,
                    targets: s.targets,
                })
            })
            .collect()
    }

    /// The records of version set `set` (every set: None), oldest first.
    pub async fn version_records(&self, set: Option<&str>) -> Result<Vec<VersionRecordRow>> {
        let rows = sqlx::query!(
            r#"SELECT id, set_name, number, kind AS "kind: VersionRecordKind", target_vpool,
                      state AS "state: VersionState", reason, point_in_time, bytes_copied, source_bytes, created
             FROM version_records WHERE $1::text IS NULL OR set_name = $1
             ORDER BY set_name, number, kind, id"#,
            set
        )
        .fetch_all(&self.pool)
        .await?;
        let pairs = sqlx::query!(
            r#"SELECT p.record_id, sn.name AS snode, s.name AS svol, tn.name AS tnode, t.name AS tvol,
                    p.map_id AS "map_id: MapId", p.epoch, p.bytes_copied, p.base_version
             FROM version_record_pairs p
             JOIN version_records r ON r.id = p.record_id
             JOIN volumes s ON s.id = p.source_volume_id JOIN primary_nodes sn ON sn.id = s.primary_node_id
             JOIN volumes t ON t.id = p.target_volume_id JOIN primary_nodes tn ON tn.id = t.primary_node_id
             WHERE $1::text IS NULL OR r.set_name = $1
             ORDER BY p.record_id, p.position"#,
            set
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by: BTreeMap<i64, Vec<RecordPair>> = BTreeMap::new();
        for p in pairs {
            let captured = match (p.map_id, p.epoch) {
                (Some(m), Some(e)) => Some((m, to_u32(e, "epoch")?)),
                _ => None,
            };
            by.entry(p.record_id).or_default().push(RecordPair {
                source: VolumeKey::new(&p.snode, &p.svol),
                target: VolumeKey::new(&p.tnode, &p.tvol),
                captured,
                bytes_copied: to_u64(p.bytes_copied, "bytes copied")?,
                base_version: to_u64(p.base_version, "base version")?,
            });
        }
        rows.into_iter()
            .map(|r| {
                Ok(VersionRecordRow {
                    pairs: by.remove(&r.id).unwrap_or_default(),
                    id: r.id,
                    set_name: r.set_name,
                    number: to_u64(r.number, "version number")?,
                    kind: r.kind,
                    target_vpool: r.target_vpool,
                    state: r.state,
                    reason: r.reason,
                    point_in_time: r.point_in_time,
                    bytes_copied: to_u64(r.bytes_copied, "bytes copied")?,
                    source_bytes: to_u64(r.source_bytes, "source bytes")?,
                    created: r.created,
                })
            })
            .collect()
    }

    /// Store `rec`, replacing the set's record of the same number and kind.
    pub async fn put_version_record(&self, rec: &NewVersionRecord<'_>) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let number = i64::try_from(rec.number).map_err(|_| CatalogError::invalid("version number"))?;
        sqlx::query!(
            "DELETE FROM version_records WHERE set_name = $1 AND number = $2 AND kind = $3",
            rec.set_name,
            number,
            rec.kind as _
        )
        .execute(&mut *tx)
        .await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO version_records (set_name, number, kind, target_vpool, state, reason,
                                          point_in_time, bytes_copied, source_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            rec.set_name,
            number,
            rec.kind as _,
            rec.target_vpool,
            rec.state as _,
            rec.reason,
            rec.point_in_time,
            to_i64(rec.bytes_copied, "bytes copied")?,
            to_i64(rec.source_bytes, "source bytes")?
        )
        .fetch_one(&mut *tx)
        .await?;
        let sources: Vec<VolumeKey> = rec.pairs.iter().map(|p| p.source.clone()).collect();
        let targets: Vec<VolumeKey> = rec.pairs.iter().map(|p| p.target.clone()).collect();
        let sources = volume_ids(&mut tx, &sources).await?;
        let targets = volume_ids(&mut tx, &targets).await?;
        for (i, ((s, t), p)) in sources.iter().zip(&targets).zip(rec.pairs).enumerate() {
            let position = i32::try_from(i).map_err(|_| CatalogError::invalid("too many pairs"))?;
            sqlx::query!(
                "INSERT INTO version_record_pairs (record_id, position, source_volume_id, target_volume_id,
                                                   map_id, epoch, bytes_copied, base_version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                id,
                position,
                s,
                t,
                p.captured.map(|(m, _)| m.to_bits()),
                p.captured.map(|(_, e)| i64::from(e)),
                to_i64(p.bytes_copied, "bytes copied")?,
                to_i64(p.base_version, "base version")?
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }
}

impl Catalog {
    /// Set the state (and reason) of the set's record `number` of `kind`;
    /// no such record: nothing changes.
    pub async fn set_version_state(
        &self,
        set: &str,
        number: u64,
        kind: VersionRecordKind,
        state: VersionState,
        reason: &str,
    ) -> Result<()> {
        let number = to_i64(number, "version number")?;
        sqlx::query!(
            "UPDATE version_records SET state = $4, reason = $5, updated = now()
             WHERE set_name = $1 AND number = $2 AND kind = $3",
            set,
            number,
            kind as _,
            state as _,
            reason
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A fresh id for a copy (its snapshots and stream on the primary
    /// nodes), or for a write hold: drawn from the channels' ids, so it
    /// is never a channel's.
    pub async fn next_copy_id(&self) -> Result<u64> {
        let n = sqlx::query_scalar!(r#"SELECT nextval(pg_get_serial_sequence('channels', 'id')) AS "n!""#)
            .fetch_one(&self.pool)
            .await?;
        to_u64(n, "copy id")
    }

    /// Record the point in time of the set's record `number` of `kind`.
    pub async fn set_version_point_in_time(
        &self,
        set: &str,
        number: u64,
        kind: VersionRecordKind,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let number = to_i64(number, "version number")?;
        sqlx::query!(
            "UPDATE version_records SET point_in_time = $4, updated = now()
             WHERE set_name = $1 AND number = $2 AND kind = $3",
            set,
            number,
            kind as _,
            at
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Delete the set's record `number` of `kind` (None: of every kind).
    pub async fn delete_version_record(&self, set: &str, number: u64, kind: Option<VersionRecordKind>) -> Result<()> {
        let number = to_i64(number, "version number")?;
        sqlx::query!(
            "DELETE FROM version_records WHERE set_name = $1 AND number = $2 AND ($3::text IS NULL OR kind = $3)",
            set,
            number,
            kind.map(|k| k.to_string())
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record what target volume `target`'s management region holds now
    /// (None: no version), as the station wrote or cleared it.
    pub async fn set_target_holding(
        &self,
        target: &VolumeKey,
        holds: Option<&proto::region::VersionStamp>,
    ) -> Result<()> {
        let version = holds.map(|s| to_i64(s.version, "version")).transpose()?;
        let at = holds
            .map(|s| to_i64(s.point_in_time_ms, "point in time"))
            .transpose()?
            .and_then(DateTime::from_timestamp_millis);
        sqlx::query!(
            "UPDATE volumes v SET holds_set = $3, holds_version = $4, holds_source = $5,
                    holds_point_in_time = $6, region_damaged = NULL
             FROM primary_nodes n
             WHERE n.id = v.primary_node_id AND n.name = $1 AND v.name = $2",
            target.node,
            target.volume,
            holds.map(|s| s.set.clone()),
            version,
            holds.map(|s| s.source.to_string()),
            at
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Lock volume pool `name` (not found: an error).
async fn lock_vpool(tx: &mut Transaction<'_, Postgres>, name: &str) -> Result<()> {
    sqlx::query_scalar!("SELECT name FROM vpools WHERE name = $1 FOR UPDATE", name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("volume pool", name))?;
    Ok(())
}

/// Add `volumes` at the end of pool `name`'s scan order.
async fn add_volumes(tx: &mut Transaction<'_, Postgres>, name: &str, volumes: &[VolumeKey]) -> Result<()> {
    let ids = volume_ids(tx, volumes).await?;
    for (id, k) in ids.iter().zip(volumes) {
        let other = sqlx::query_scalar!("SELECT vpool FROM vpool_volumes WHERE volume_id = $1", id)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(p) = other {
            return Err(CatalogError::conflict(format!(
                "volume {k} is in volume pool {p} already"
            )));
        }
        sqlx::query!("INSERT INTO vpool_volumes (vpool, volume_id) VALUES ($1, $2)", name, id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
