//! How an ABS ends in the catalog: its point in time, complete with its
//! totals, failed with the reason, and where its metadata went.

use chrono::{DateTime, Utc};
use proto::domain::{AbsId, AbsState, TapeId};

use super::{to_i64, Catalog, CatalogError, Result};

impl Catalog {
    /// Give ABS `abs_id` its creation time and point in time (a catalog
    /// restore recording a catalog backup at the times its tape gives).
    pub async fn set_abs_time(
        &self,
        abs_id: AbsId,
        created: DateTime<Utc>,
        point_in_time: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query!(
            "UPDATE abs SET created = $2, point_in_time = $3 WHERE id = $1",
            abs_id as _,
            created,
            point_in_time
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("ABS", abs_id));
        }
        Ok(())
    }

    /// Mark a running ABS complete. Every one of its `segment_count`
    /// segments must already be recorded (nothing is lost: the catalog holds
    /// the placement of every byte before the ABS counts as complete).
    /// Completing a complete ABS again with the same figures is a no-op.
    pub async fn complete_abs(
        &self,
        abs_id: AbsId,
        data_bytes: u64,
        track_count: u64,
        segment_count: u32,
    ) -> Result<()> {
        let data_bytes = to_i64(data_bytes, "ABS data bytes")?;
        let track_count = to_i64(track_count, "ABS track count")?;
        let mut tx = self.pool.begin().await?;
        let a = sqlx::query!(
            r#"SELECT state AS "state: AbsState", data_bytes, track_count, segment_count FROM abs WHERE id = $1 FOR UPDATE"#,
            abs_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        match a.state {
            AbsState::Running => {}
            AbsState::Complete
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
        let recorded = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM segments WHERE abs_id = $1"#,
            abs_id as _
        )
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
            abs_id as _,
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
    pub async fn fail_abs(&self, abs_id: AbsId, reason: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let state = sqlx::query_scalar!(
            r#"SELECT state AS "state: AbsState" FROM abs WHERE id = $1 FOR UPDATE"#,
            abs_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        match state {
            AbsState::Running => {}
            AbsState::Failed => return Ok(()),
            other => {
                return Err(CatalogError::conflict(format!(
                    "ABS {abs_id} is {other}, cannot fail it"
                )))
            }
        }
        sqlx::query!(
            "UPDATE abs SET state = 'failed', reason = $2, completed = now() WHERE id = $1",
            abs_id as _,
            reason
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record where an ABS's metadata was written on tape. A tape file
    /// already holding a segment or another ABS's metadata is a conflict.
    pub async fn record_abs_metadata(&self, abs_id: AbsId, tape_id: TapeId, tape_file: u32) -> Result<()> {
        let file = i64::from(tape_file);
        let mut tx = self.pool.begin().await?;
        sqlx::query_scalar!("SELECT id FROM tapes WHERE id = $1", tape_id as _)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("tape", tape_id))?;
        let clash = sqlx::query!(
            r#"SELECT (SELECT abs_id FROM segments WHERE tape_id = $1 AND tape_file = $2) AS "segment_of?: AbsId",
                      (SELECT id FROM abs WHERE metadata_tape_id = $1 AND metadata_file = $2 AND id <> $3)
                          AS "metadata_of?: AbsId""#,
            tape_id as _,
            file,
            abs_id as _
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
            abs_id as _,
            tape_id as _,
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
}
