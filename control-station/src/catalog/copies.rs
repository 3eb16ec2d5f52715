//! Copies of ABSs in copy pools (seed 000 claims 10–11): one row per copy
//! of each segment, under the same segment, and one per ABS whose copy is
//! whole (its metadata written after its last segment).
//!
//! What a pool backup copies is a query (seed claim 2: "built from the
//! directory information"): every complete ABS of the primary pool with
//! no whole copy in the copy pool, or with a segment whose copies there are
//! all damaged.

use proto::domain::{AbsId, PoolKind, SegmentSeq, SegmentStatus, TapeId};

use super::segments::Segment;
use super::{to_i64, Catalog, CatalogError, Result};

/// What a pool backup copies of one ABS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCandidate {
    pub abs_id: AbsId,
    pub object_name: String,
    /// The primary copies of the segments with no healthy copy in the copy
    /// pool yet, readable as far as the catalog knows.
    pub segments: Vec<Segment>,
    /// Segments to copy whose primary copy is known damaged (no source).
    pub damaged: Vec<SegmentSeq>,
    /// Where the ABS metadata to copy with them is (None: it stays where
    /// it is).
    pub metadata: Option<MetadataSource>,
}

/// A tape file holding ABS metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSource {
    pub tape_id: TapeId,
    pub tape_label: String,
    pub tape_file: u32,
}

/// One copy of a segment written by a pool backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSegmentCopy {
    /// The segment (its primary row).
    pub segment_id: i64,
    pub tape_id: TapeId,
    pub tape_file: u32,
    pub bytes: u64,
    pub crc32c: u32,
}

impl Catalog {
    /// The ABSs of primary pool `primary` that pool backup to `copy_pool`
    /// has to copy, oldest first, each with the segments it lacks there.
    pub async fn copy_candidates(&self, primary: &str, copy_pool: &str) -> Result<Vec<CopyCandidate>> {
        let abs = sqlx::query!(
            r#"SELECT a.id AS "id: AbsId", o.name AS object_name,
                    a.metadata_tape_id AS "metadata_tape_id!: TapeId", mt.label AS metadata_tape,
                    a.metadata_file AS "metadata_file!"
             FROM abs a
             JOIN logical_objects o ON o.id = a.object_id
             JOIN tapes mt ON mt.id = a.metadata_tape_id
             WHERE a.pool = $1 AND a.state = 'complete'
               AND (NOT EXISTS (SELECT 1 FROM abs_copies c WHERE c.abs_id = a.id AND c.pool = $2)
                    OR EXISTS (SELECT 1 FROM segments s
                               WHERE s.abs_id = a.id
                                 AND NOT EXISTS (SELECT 1 FROM segment_copies c
                                                 WHERE c.segment_id = s.id AND c.pool = $2 AND c.status = 'ok')))
             ORDER BY a.id"#,
            primary,
            copy_pool
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(abs.len());
        for a in abs {
            let mut segments = Vec::new();
            let mut damaged = Vec::new();
            for s in self.segments_of(a.id).await? {
                let healthy_copy = sqlx::query_scalar!(
                    r#"SELECT EXISTS (SELECT 1 FROM segment_copies
                                      WHERE segment_id = $1 AND pool = $2 AND status = 'ok') AS "e!""#,
                    s.id,
                    copy_pool
                )
                .fetch_one(&self.pool)
                .await?;
                if healthy_copy {
                    continue;
                }
                if s.status == SegmentStatus::Damaged {
                    damaged.push(s.seq);
                } else {
                    segments.push(s);
                }
            }
            out.push(CopyCandidate {
                abs_id: a.id,
                object_name: a.object_name,
                segments,
                damaged,
                metadata: Some(MetadataSource {
                    tape_id: a.metadata_tape_id,
                    tape_label: a.metadata_tape,
                    tape_file: super::to_u32(a.metadata_file, "metadata file")?,
                }),
            });
        }
        Ok(out)
    }

    /// Record a copy of a segment on a tape of a copy pool. The copy must
    /// hold what the primary copy holds (same CRC32C); exactly this copy
    /// recorded again is accepted (`false`), another row at the same tape
    /// file is a conflict. Moves a scratch tape to `filling`.
    pub async fn record_segment_copy(&self, c: &NewSegmentCopy) -> Result<bool> {
        let file = i64::from(c.tape_file);
        let mut tx = self.pool.begin().await?;
        let seg = sqlx::query!(
            r#"SELECT s.crc32c, s.abs_id AS "abs_id: AbsId", s.seq AS "seq: SegmentSeq" FROM segments s WHERE s.id = $1"#,
            c.segment_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("segment", c.segment_id))?;
        if seg.crc32c != i64::from(c.crc32c) {
            return Err(CatalogError::conflict(format!(
                "the copy of segment {} of ABS {} has CRC32C {:08x}; the segment's is {:08x}",
                seg.seq, seg.abs_id, c.crc32c, seg.crc32c
            )));
        }
        let tape = sqlx::query!(
            r#"SELECT t.pool, p.kind AS "kind: PoolKind" FROM tapes t JOIN pools p ON p.name = t.pool WHERE t.id = $1"#,
            c.tape_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("tape", c.tape_id))?;
        if tape.kind != PoolKind::Copy {
            return Err(CatalogError::conflict(format!(
                "tape {} is in {} pool {}: copies go to copy pools",
                c.tape_id, tape.kind, tape.pool
            )));
        }
        let inserted = sqlx::query_scalar!(
            "INSERT INTO segment_copies (segment_id, pool, tape_id, tape_file, bytes, crc32c)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING RETURNING id",
            c.segment_id,
            tape.pool,
            c.tape_id as _,
            file,
            to_i64(c.bytes, "copy bytes")?,
            i64::from(c.crc32c)
        )
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let same = sqlx::query_scalar!(
                r#"SELECT (segment_id = $3 AND crc32c = $4) AS "same!" FROM segment_copies
                 WHERE tape_id = $1 AND tape_file = $2"#,
                c.tape_id as _,
                file,
                c.segment_id,
                i64::from(c.crc32c)
            )
            .fetch_optional(&mut *tx)
            .await?;
            return match same {
                Some(true) => Ok(false),
                _ => Err(CatalogError::conflict(format!(
                    "tape {} file {} already holds another copy",
                    c.tape_id, c.tape_file
                ))),
            };
        }
        super::segments::data_file_written(&mut tx, c.tape_id, c.tape_file).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// An ABS's copy in the tape's (copy) pool is whole: its metadata is
    /// file `tape_file` of `tape_id`, written after its last segment. Every
    /// segment of the ABS must have a healthy copy in that pool.
    pub async fn record_abs_copy(&self, abs_id: AbsId, tape_id: TapeId, tape_file: u32) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let pool = sqlx::query_scalar!("SELECT pool FROM tapes WHERE id = $1", tape_id as _)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("tape", tape_id))?;
        let missing = sqlx::query_scalar!(
            r#"SELECT s.seq AS "seq: SegmentSeq" FROM segments s
             WHERE s.abs_id = $1 AND NOT EXISTS (SELECT 1 FROM segment_copies c
                                                WHERE c.segment_id = s.id AND c.pool = $2 AND c.status = 'ok')
             ORDER BY s.seq LIMIT 1"#,
            abs_id as _,
            pool
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(seq) = missing {
            return Err(CatalogError::conflict(format!(
                "ABS {abs_id} has no copy of segment {seq} in pool {pool}: its copy is not whole"
            )));
        }
        sqlx::query!(
            "INSERT INTO abs_copies (abs_id, pool, metadata_tape_id, metadata_file) VALUES ($1, $2, $3, $4)
             ON CONFLICT (abs_id, pool) DO UPDATE
             SET metadata_tape_id = EXCLUDED.metadata_tape_id, metadata_file = EXCLUDED.metadata_file, copied = now()",
            abs_id as _,
            pool,
            tape_id as _,
            i64::from(tape_file)
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE tapes SET files_written = GREATEST(files_written, $2) WHERE id = $1",
            tape_id as _,
            i32::try_from(i64::from(tape_file) + 1).unwrap_or(i32::MAX)
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Mark one copy of a segment damaged: the primary copy (`copy_id`
    /// None) or a copy in a copy pool. Returns whether it was ok before.
    pub async fn mark_segment_damaged(&self, segment_id: i64, copy_id: Option<i64>) -> Result<bool> {
        let changed = match copy_id {
            None => sqlx::query!(
                "UPDATE segments SET status = 'damaged' WHERE id = $1 AND status = 'ok'",
                segment_id
            )
            .execute(&self.pool)
            .await?
            .rows_affected(),
            Some(c) => sqlx::query!(
                "UPDATE segment_copies SET status = 'damaged' WHERE id = $1 AND segment_id = $2 AND status = 'ok'",
                c,
                segment_id
            )
            .execute(&self.pool)
            .await?
            .rows_affected(),
        };
        Ok(changed > 0)
    }

    /// The copy pools holding a whole, healthy copy of each ABS (by ABS
    /// id): its metadata and a copy not known damaged of every segment.
    pub async fn abs_copy_pools(&self) -> Result<Vec<(AbsId, String)>> {
        let rows = sqlx::query!(
            r#"SELECT a.abs_id AS "abs_id: AbsId", a.pool FROM abs_copies a
             WHERE NOT EXISTS (SELECT 1 FROM segments s
                               WHERE s.abs_id = a.abs_id
                                 AND NOT EXISTS (SELECT 1 FROM segment_copies c
                                                 WHERE c.segment_id = s.id AND c.pool = a.pool AND c.status = 'ok'))
             ORDER BY a.abs_id, a.pool"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.abs_id, r.pool)).collect())
    }
}
