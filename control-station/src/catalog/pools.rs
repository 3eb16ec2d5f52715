//! Storage pools: primary pools take backups, copy pools hold second copies
//! of the ABSs of the primary pools they are attached to (seed 000).

use proto::domain::PoolKind;

use super::{to_u32, to_u64, Catalog, CatalogError, Result};

/// Longest pool name.
pub const MAX_POOL_NAME: usize = 64;

/// A pool and, for a copy pool, the primary pools it copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub name: String,
    pub kind: PoolKind,
    pub copies_of: Vec<String>,
    /// Days a tape whose every ABS was deleted is kept before it is
    /// scratch again.
    pub retain_days: u32,
}

/// Most days a pool keeps emptied tapes.
pub const MAX_RETAIN_DAYS: u32 = 36500;

/// A pool in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSummary {
    pub pool: PoolRow,
    pub tapes: u32,
    pub bytes_written: u64,
    /// A primary pool: its complete ABSs; a copy pool: the ABSs it holds a
    /// whole copy of.
    pub abs: u32,
}

/// A pool name: 1 to 64 of A–Z a–z 0–9 `_` `.` `-`, starting with a letter
/// or digit.
pub fn check_pool_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POOL_NAME
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::invalid(format!(
            "pool name {name:?}: expected 1 to {MAX_POOL_NAME} of A-Z a-z 0-9 _ . - starting with a letter or digit"
        )))
    }
}

impl Catalog {
    /// Define pool `name` of `kind`. A copy pool is attached to the primary
    /// pools `copies_of` (at least one when it is new); a primary pool
    /// takes none. Defining an existing pool again with the same kind adds
    /// the primary pools named; another kind is a conflict. `retain_days`
    /// (None: 0 for a new pool, unchanged otherwise) is how long a tape
    /// whose every ABS was deleted is kept before it is scratch again.
    pub async fn define_pool(
        &self,
        name: &str,
        kind: PoolKind,
        copies_of: &[String],
        retain_days: Option<u32>,
    ) -> Result<PoolRow> {
        check_pool_name(name)?;
        if let Some(d) = retain_days.filter(|d| *d > MAX_RETAIN_DAYS) {
            return Err(CatalogError::invalid(format!(
                "pool {name}: retention of {d} days; at most {MAX_RETAIN_DAYS}"
            )));
        }
        if kind != PoolKind::Copy && !copies_of.is_empty() {
            return Err(CatalogError::invalid(format!(
                "{kind} pool {name} cannot copy other pools (--copies-of is for copy pools)"
            )));
        }
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query_scalar!(
            r#"SELECT kind AS "kind: PoolKind" FROM pools WHERE name = $1 FOR UPDATE"#,
            name
        )
        .fetch_optional(&mut *tx)
        .await?;
        match existing {
            Some(k) if k != kind => {
                return Err(CatalogError::conflict(format!(
                    "pool {name} exists as a {k} pool, not {kind}"
                )))
            }
            Some(_) => {}
            None => {
                if kind == PoolKind::Copy && copies_of.is_empty() {
                    return Err(CatalogError::invalid(format!(
                        "copy pool {name} needs the primary pools it copies (--copies-of)"
                    )));
                }
                sqlx::query!("INSERT INTO pools (name, kind) VALUES ($1, $2)", name, kind as _)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(days) = retain_days {
            sqlx::query!(
                "UPDATE pools SET retain_days = $2 WHERE name = $1",
                name,
                i32::try_from(days).unwrap_or(i32::MAX)
            )
            .execute(&mut *tx)
            .await?;
        }
        for primary in copies_of {
            let k = sqlx::query_scalar!(r#"SELECT kind AS "kind: PoolKind" FROM pools WHERE name = $1"#, primary)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| CatalogError::not_found("pool", primary))?;
            if k != PoolKind::Primary {
                return Err(CatalogError::invalid(format!(
                    "copy pool {name} can only copy primary pools; {primary} is a {k} pool"
                )));
            }
            sqlx::query!(
                "INSERT INTO pool_copies (copy_pool, primary_pool) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                name,
                primary
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.pool_named(name)
            .await?
            .ok_or_else(|| CatalogError::not_found("pool", name))
    }

    /// The pool named `name`.
    pub async fn pool_named(&self, name: &str) -> Result<Option<PoolRow>> {
        let Some(p) = sqlx::query!(
            r#"SELECT kind AS "kind: PoolKind", retain_days FROM pools WHERE name = $1"#,
            name
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let copies_of = sqlx::query_scalar!(
            "SELECT primary_pool FROM pool_copies WHERE copy_pool = $1 ORDER BY primary_pool",
            name
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(PoolRow {
            name: name.to_string(),
            kind: p.kind,
            copies_of,
            retain_days: to_u32(i64::from(p.retain_days), "pool retention")?,
        }))
    }

    /// Every pool, by name, with its tapes and what it holds.
    pub async fn list_pools(&self) -> Result<Vec<PoolSummary>> {
        let rows = sqlx::query!(
            r#"SELECT p.name, p.kind AS "kind: PoolKind", p.retain_days,
                    COALESCE((SELECT array_agg(c.primary_pool ORDER BY c.primary_pool) FROM pool_copies c
                              WHERE c.copy_pool = p.name), '{}') AS "copies_of!",
                    (SELECT count(*) FROM tapes t WHERE t.pool = p.name) AS "tapes!",
                    (SELECT COALESCE(sum(t.bytes_written), 0) FROM tapes t WHERE t.pool = p.name)::int8 AS "bytes!",
                    CASE p.kind
                        WHEN 'copy' THEN (SELECT count(*) FROM abs_copies c WHERE c.pool = p.name)
                        ELSE (SELECT count(*) FROM abs a WHERE a.pool = p.name AND a.state = 'complete')
                    END AS "abs!"
             FROM pools p ORDER BY p.name"#
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PoolSummary {
                    pool: PoolRow {
                        name: r.name,
                        kind: r.kind,
                        copies_of: r.copies_of,
                        retain_days: to_u32(i64::from(r.retain_days), "pool retention")?,
                    },
                    tapes: to_u32(r.tapes, "pool tape count")?,
                    bytes_written: to_u64(r.bytes, "pool bytes")?,
                    abs: to_u32(r.abs, "pool ABS count")?,
                })
            })
            .collect()
    }

    /// Make sure primary pool `name` exists (the station's default pool):
    /// created when missing; a pool of another kind is a conflict.
    pub async fn ensure_primary_pool(&self, name: &str) -> Result<()> {
        self.ensure_pool(name, PoolKind::Primary, "backups need a primary pool")
            .await
    }

    /// Make sure catalog pool `name` exists (where catalog backups go):
    /// created when missing; a pool of another kind is a conflict.
    pub async fn ensure_catalog_pool(&self, name: &str) -> Result<()> {
        self.ensure_pool(
            name,
            PoolKind::Catalog,
            "catalog backups go to a pool of their own (kind catalog)",
        )
        .await
    }

    async fn ensure_pool(&self, name: &str, kind: PoolKind, why: &str) -> Result<()> {
        check_pool_name(name)?;
        sqlx::query!(
            "INSERT INTO pools (name, kind) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name,
            kind as _
        )
        .execute(&self.pool)
        .await?;
        match self.pool_named(name).await? {
            Some(p) if p.kind == kind => Ok(()),
            Some(p) => Err(CatalogError::conflict(format!(
                "pool {name} is a {} pool; {why}",
                p.kind
            ))),
            None => Err(CatalogError::not_found("pool", name)),
        }
    }
}
