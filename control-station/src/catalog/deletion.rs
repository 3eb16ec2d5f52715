//! Deleting ABSs and reusing the tapes they leave empty (seed 002 FIG.
//! 14/16).
//!
//! A deleted ABS keeps its row in state `deleted` (its id is never reused;
//! the lineage of what was merged from it stays readable) but loses its
//! segments, their copies and its metadata places: the space is free. A
//! tape none of whose files is wanted any more is *emptied* at that time;
//! once its pool's retention has passed it returns to scratch (counters
//! and media set cleared) and is relabelled when next mounted for writing.
//! An emptied tape takes no new data meanwhile.

use proto::domain::{AbsId, AbsState, MediaSetId, TapeId};

use super::{Catalog, CatalogError, Result};

/// What a deletion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The ABSs deleted: the one asked for, then its dependents.
    pub abs: Vec<AbsId>,
    /// Tapes that hold nothing wanted any more (scratch after retention).
    pub tapes_emptied: Vec<String>,
}

impl Catalog {
    /// The ABSs that build on `abs_id` (differentials whose chain of bases
    /// leads to it), not deleted, oldest first.
    pub async fn dependents(&self, abs_id: AbsId) -> Result<Vec<AbsId>> {
        let ids = sqlx::query_scalar!(
            r#"WITH RECURSIVE d (id) AS (
                   SELECT id FROM abs WHERE base_abs_id = $1 AND state <> 'deleted'
                   UNION
                   SELECT a.id FROM abs a JOIN d ON a.base_abs_id = d.id WHERE a.state <> 'deleted')
               SELECT id AS "id!: AbsId" FROM d ORDER BY id"#,
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    /// Delete ABS `abs_id` (complete or failed), and with
    /// `with_dependents` every ABS that builds on it; without, an ABS
    /// others build on is a conflict naming them. `by` is who asked.
    pub async fn delete_abs(&self, abs_id: AbsId, with_dependents: bool, by: &str) -> Result<Deleted> {
        let mut tx = self.pool.begin().await?;
        let state = sqlx::query_scalar!(
            r#"SELECT state AS "state: AbsState" FROM abs WHERE id = $1 FOR UPDATE"#,
            abs_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        match state {
            AbsState::Running => {
                return Err(CatalogError::conflict(format!(
                    "ABS {abs_id} is being written; it can be deleted once it is complete or failed"
                )))
            }
            AbsState::Deleted => return Err(CatalogError::not_found("ABS", abs_id)),
            AbsState::Complete | AbsState::Failed => {}
        }
        let dependents = sqlx::query!(
            r#"WITH RECURSIVE d (id) AS (
                   SELECT id FROM abs WHERE base_abs_id = $1 AND state <> 'deleted'
                   UNION
                   SELECT a.id FROM abs a JOIN d ON a.base_abs_id = d.id WHERE a.state <> 'deleted')
               SELECT a.id AS "id: AbsId", a.state AS "state: AbsState"
               FROM abs a JOIN d ON d.id = a.id ORDER BY a.id FOR UPDATE OF a"#,
            abs_id as _
        )
        .fetch_all(&mut *tx)
        .await?;
        if let Some(r) = dependents.iter().find(|r| r.state == AbsState::Running) {
            return Err(CatalogError::conflict(format!(
                "ABS {} builds on ABS {abs_id} and is being written",
                r.id
            )));
        }
        if !dependents.is_empty() && !with_dependents {
            let ids: Vec<String> = dependents.iter().map(|r| r.id.to_string()).collect();
            return Err(CatalogError::conflict(format!(
                "ABS {abs_id} is the base of ABS {}: delete those first, or all of them with --with-dependents",
                ids.join(", ")
            )));
        }
        let mut all = vec![abs_id];
        all.extend(dependents.iter().map(|r| r.id));
        let ids: Vec<i64> = all
            .iter()
            .map(|a| a.to_i64().map_err(CatalogError::from))
            .collect::<Result<_>>()?;
        // The tapes holding anything of them, before it is released.
        let tapes = sqlx::query_scalar!(
            r#"SELECT DISTINCT t AS "t!: TapeId" FROM (
                   SELECT s.tape_id AS t FROM segments s WHERE s.abs_id = ANY($1)
                   UNION SELECT c.tape_id FROM segment_copies c JOIN segments s ON s.id = c.segment_id
                         WHERE s.abs_id = ANY($1)
                   UNION SELECT metadata_tape_id FROM abs WHERE id = ANY($1) AND metadata_tape_id IS NOT NULL
                   UNION SELECT metadata_tape_id FROM abs_copies WHERE abs_id = ANY($1)) x"#,
            &ids[..]
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM abs_copies WHERE abs_id = ANY($1)", &ids[..])
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "DELETE FROM segment_copies WHERE segment_id IN (SELECT id FROM segments WHERE abs_id = ANY($1))",
            &ids[..]
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM segments WHERE abs_id = ANY($1)", &ids[..])
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "UPDATE abs SET state = 'deleted', deleted = now(), deleted_by = $2,
                            metadata_tape_id = NULL, metadata_file = NULL
             WHERE id = ANY($1)",
            &ids[..],
            by
        )
        .execute(&mut *tx)
        .await?;
        let tape_ids: Vec<i64> = tapes
            .iter()
            .map(|t| t.to_i64().map_err(CatalogError::from))
            .collect::<Result<_>>()?;
        let emptied = mark_emptied(&mut tx, &tape_ids).await?;
        tx.commit().await?;
        tracing::info!(abs = %abs_id, deleted = all.len(), tapes_emptied = emptied.len(), %by, "ABS deleted");
        Ok(Deleted {
            abs: all,
            tapes_emptied: emptied,
        })
    }

    /// Return to scratch every emptied tape whose pool's retention has
    /// passed (in the library, not in use). Returns their labels.
    pub async fn recycle_tapes(&self) -> Result<Vec<String>> {
        let labels = sqlx::query_scalar!(
            r#"UPDATE tapes t
             SET state = 'scratch', emptied = NULL, bytes_written = 0, files_written = 0,
                 media_set = NULL, media_set_seq = NULL, reuses = t.reuses + 1
             FROM pools p
             WHERE p.name = t.pool AND t.emptied IS NOT NULL AND NOT t.in_use AND t.location = 'library'
               AND t.emptied + make_interval(days => p.retain_days) <= now()
               AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.tape_id = t.id)
               AND NOT EXISTS (SELECT 1 FROM segment_copies c WHERE c.tape_id = t.id)
               AND NOT EXISTS (SELECT 1 FROM abs a WHERE a.metadata_tape_id = t.id)
               AND NOT EXISTS (SELECT 1 FROM abs_copies c WHERE c.metadata_tape_id = t.id)
             RETURNING t.label"#
        )
        .fetch_all(&self.pool)
        .await?;
        for l in &labels {
            tracing::info!(tape = %l, "tape back to scratch: every ABS on it was deleted and its retention passed");
        }
        Ok(labels)
    }

    /// The id of a new media set starting on tape `tape_id`: the tape's
    /// id, unless a media set of that id exists (a tape used again), then
    /// a fresh one from the tape id sequence (above every media set id).
    pub async fn fresh_media_set(&self, tape_id: TapeId) -> Result<MediaSetId> {
        let id = sqlx::query_scalar!(
            r#"SELECT CASE WHEN EXISTS (SELECT 1 FROM tapes WHERE media_set = $1)
                           THEN nextval(pg_get_serial_sequence('tapes', 'id'))
                           ELSE $1 END AS "id!: MediaSetId""#,
            tape_id as _
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }
}

/// Mark emptied those of `tape_ids` (not scratch) that hold nothing the
/// catalog wants any more: no segment, copy or ABS metadata. Their labels.
async fn mark_emptied(tx: &mut sqlx::PgConnection, tape_ids: &[i64]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        r#"UPDATE tapes t SET emptied = now()
             WHERE t.id = ANY($1) AND t.state <> 'scratch' AND t.emptied IS NULL
               AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.tape_id = t.id)
               AND NOT EXISTS (SELECT 1 FROM segment_copies c WHERE c.tape_id = t.id)
               AND NOT EXISTS (SELECT 1 FROM abs a WHERE a.metadata_tape_id = t.id)
               AND NOT EXISTS (SELECT 1 FROM abs_copies c WHERE c.metadata_tape_id = t.id)
             RETURNING t.label"#,
        tape_ids
    )
    .fetch_all(&mut *tx)
    .await?)
}

impl Catalog {
    /// ABS `abs_id` now belongs to primary pool `pool` (`abs move`): its
    /// segments and metadata are being rewritten onto that pool's tapes.
    pub async fn set_abs_pool(&self, abs_id: AbsId, pool: &str) -> Result<()> {
        let done = sqlx::query!("UPDATE abs SET pool = $2 WHERE id = $1", abs_id as _, pool)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("ABS", abs_id));
        }
        Ok(())
    }

    /// Tapes of `tape_ids` left holding nothing wanted (after an `abs
    /// move`) are emptied: scratch again after their pool's retention.
    pub async fn empty_if_unused(&self, tape_ids: &[TapeId]) -> Result<Vec<String>> {
        let ids: Vec<i64> = tape_ids
            .iter()
            .map(|t| t.to_i64().map_err(CatalogError::from))
            .collect::<Result<_>>()?;
        let mut tx = self.pool.begin().await?;
        let emptied = mark_emptied(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(emptied)
    }
}
