//! Tape recovery (issue 13, seed 000 FIG. 6A/6B): a primary tape marked
//! destroyed, its segments' rows re-pointed at the new tapes their copies
//! were rewritten to. The copies stay linked under the same segments.

use proto::domain::{AbsId, PoolKind, SegmentSeq, TapeId, TapeLocation};

use super::error::{CatalogError, Result};
use super::Catalog;

/// Where a whole copy of an ABS keeps its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataCopy {
    pub pool: String,
    pub tape_id: TapeId,
    pub tape_label: String,
    pub tape_location: TapeLocation,
    pub tape_file: u32,
}

impl Catalog {
    /// Mark tape `tape_id` destroyed: it leaves its slot and is never
    /// mounted again. Refused while it is in use.
    pub async fn mark_tape_destroyed(&self, tape_id: TapeId) -> Result<()> {
        let done = sqlx::query!(
            "UPDATE tapes SET location = 'destroyed', slot = NULL WHERE id = $1 AND NOT in_use",
            tape_id as _
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(CatalogError::conflict(format!(
                "tape {tape_id} is in use or gone: wait for its channels to finish"
            )));
        }
        Ok(())
    }

    /// The metadata of each whole copy of ABS `abs_id`, oldest first.
    pub async fn abs_copy_metadata(&self, abs_id: AbsId) -> Result<Vec<MetadataCopy>> {
        let rows = sqlx::query!(
            r#"SELECT c.pool, c.metadata_tape_id AS "tape_id: TapeId", t.label,
                      t.location AS "location: TapeLocation", c.metadata_file
               FROM abs_copies c JOIN tapes t ON t.id = c.metadata_tape_id
               WHERE c.abs_id = $1 ORDER BY c.copied, c.pool"#,
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(MetadataCopy {
                    pool: r.pool,
                    tape_id: r.tape_id,
                    tape_label: r.label,
                    tape_location: r.location,
                    tape_file: super::to_u32(r.metadata_file, "metadata file")?,
                })
            })
            .collect()
    }

    /// Segment `segment_id`'s primary copy was rewritten to file
    /// `tape_file` of `tape_id` (a primary-pool tape) from one of its
    /// copies: the row points there now, `ok`, with the new time. The bytes
    /// must be the segment's (same CRC32C).
    pub async fn relocate_segment(&self, segment_id: i64, tape_id: TapeId, tape_file: u32, crc32c: u32) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let seg = sqlx::query!(
            r#"SELECT crc32c, abs_id AS "abs_id: AbsId", seq AS "seq: SegmentSeq" FROM segments WHERE id = $1"#,
            segment_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("segment", segment_id))?;
        if seg.crc32c != i64::from(crc32c) {
            return Err(CatalogError::conflict(format!(
                "the rewritten segment {} of ABS {} has CRC32C {crc32c:08x}; the segment's is {:08x}",
                seg.seq, seg.abs_id, seg.crc32c
            )));
        }
        primary_tape(&mut tx, tape_id).await?;
        sqlx::query!(
            "UPDATE segments SET tape_id = $2, tape_file = $3, status = 'ok', written_at = now() WHERE id = $1",
            segment_id,
            tape_id as _,
            i64::from(tape_file)
        )
        .execute(&mut *tx)
        .await?;
        super::segments::data_file_written(&mut tx, tape_id, tape_file).await?;
        tx.commit().await?;
        Ok(())
    }

    /// ABS `abs_id`'s metadata was rewritten to file `tape_file` of
    /// `tape_id` (a primary-pool tape).
    pub async fn relocate_metadata(&self, abs_id: AbsId, tape_id: TapeId, tape_file: u32) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        primary_tape(&mut tx, tape_id).await?;
        let done = sqlx::query!(
            "UPDATE abs SET metadata_tape_id = $2, metadata_file = $3 WHERE id = $1",
            abs_id as _,
            tape_id as _,
            i64::from(tape_file)
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(CatalogError::not_found("ABS", abs_id));
        }
        super::segments::data_file_written(&mut tx, tape_id, tape_file).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Fail unless `tape_id` is a tape of a primary pool.
async fn primary_tape(tx: &mut sqlx::PgConnection, tape_id: TapeId) -> Result<()> {
    let tape = sqlx::query!(
        r#"SELECT t.label, t.pool, p.kind AS "kind: PoolKind" FROM tapes t JOIN pools p ON p.name = t.pool WHERE t.id = $1"#,
        tape_id as _
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| CatalogError::not_found("tape", tape_id))?;
    if tape.kind != PoolKind::Primary {
        return Err(CatalogError::conflict(format!(
            "tape {} is in {} pool {}: recovered segments go to primary pools",
            tape.label, tape.kind, tape.pool
        )));
    }
    Ok(())
}
