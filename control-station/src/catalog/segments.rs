//! Segment placements: which tape file holds which segment of which ABS.
//!
//! Recording is idempotent because a back-end may report a placement twice
//! (a retry after a lost acknowledgement): the same row again is accepted, a
//! different row at the same (ABS, seq) or (tape, tape file) is a conflict.
//! The front-end deletes a sealed segment only after this commit.

use chrono::{DateTime, Utc};

use proto::domain::{AbsId, AbsState, SegmentSeq, SegmentStatus, TapeId, TapeLocation};

use super::{to_i64, to_u32, to_u64, Catalog, CatalogError, Result};

/// A placement reported by a back-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSegment {
    pub abs_id: AbsId,
    /// Segment sequence number within the ABS.
    pub seq: SegmentSeq,
    pub tape_id: TapeId,
    /// Tape file number on that tape.
    pub tape_file: u32,
    /// Bytes of the tape file (headers, tracks, trailer).
    pub bytes: u64,
    /// Track data bytes in the segment.
    pub data_bytes: u64,
    pub track_count: u64,
    /// CRC32C of the segment as written (the trailer's checksum).
    pub crc32c: u32,
}

/// A recorded copy of a segment with its tape: the primary copy (where the
/// backup wrote it) or a copy in a copy pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The segment's id (the same for each of its copies).
    pub id: i64,
    /// A copy in a copy pool: its row (None: the primary copy).
    pub copy_id: Option<i64>,
    /// The pool of the tape holding this copy.
    pub pool: String,
    pub status: SegmentStatus,
    pub abs_id: AbsId,
    pub seq: SegmentSeq,
    pub tape_id: TapeId,
    pub tape_label: String,
    pub tape_path: String,
    /// Whether that tape is in the library.
    pub tape_location: TapeLocation,
    pub tape_file: u32,
    pub bytes: u64,
    pub data_bytes: u64,
    pub track_count: u64,
    pub crc32c: u32,
    pub written_at: DateTime<Utc>,
}

impl Segment {
    /// The same segment of the same ABS, wherever it was placed.
    fn same_content(&self, s: &NewSegment) -> bool {
        self.abs_id == s.abs_id
            && self.seq == s.seq
            && self.bytes == s.bytes
            && self.data_bytes == s.data_bytes
            && self.track_count == s.track_count
            && self.crc32c == s.crc32c
    }

    fn same_as(&self, s: &NewSegment) -> bool {
        self.same_content(s) && self.tape_id == s.tape_id && self.tape_file == s.tape_file
    }
}

struct RawSegment {
    id: i64,
    copy_id: Option<i64>,
    pool: String,
    status: SegmentStatus,
    abs_id: AbsId,
    seq: SegmentSeq,
    tape_id: TapeId,
    tape_label: String,
    tape_path: String,
    tape_location: TapeLocation,
    tape_file: i64,
    bytes: i64,
    data_bytes: i64,
    track_count: i64,
    crc32c: i64,
    written_at: DateTime<Utc>,
}

impl TryFrom<RawSegment> for Segment {
    type Error = CatalogError;

    fn try_from(r: RawSegment) -> Result<Segment> {
        Ok(Segment {
            id: r.id,
            copy_id: r.copy_id,
            pool: r.pool,
            status: r.status,
            abs_id: r.abs_id,
            seq: r.seq,
            tape_id: r.tape_id,
            tape_label: r.tape_label,
            tape_path: r.tape_path,
            tape_location: r.tape_location,
            tape_file: to_u32(r.tape_file, "tape file")?,
            bytes: to_u64(r.bytes, "segment bytes")?,
            data_bytes: to_u64(r.data_bytes, "segment data bytes")?,
            track_count: to_u64(r.track_count, "segment track count")?,
            crc32c: to_u32(r.crc32c, "crc32c")?,
            written_at: r.written_at,
        })
    }
}

#[cfg(test)]
impl Segment {
    /// A healthy primary segment for the tests of pure planners: segment
    /// `seq` of ABS `abs` (its id `seq`) in file `file` of tape `T<tape>`,
    /// in the library, 1000 bytes of which 900 data in 2 tracks.
    pub(crate) fn fixture(abs: u64, seq: u32, tape: u64, file: u32) -> Segment {
        Segment {
            id: i64::from(seq),
            copy_id: None,
            pool: "default".into(),
            status: SegmentStatus::Ok,
            abs_id: AbsId::new(abs),
            seq: SegmentSeq::new(seq),
            tape_id: TapeId::new(tape),
            tape_label: format!("T{tape}"),
            tape_path: String::new(),
            tape_location: TapeLocation::Library,
            tape_file: file,
            bytes: 1000,
            data_bytes: 900,
            track_count: 2,
            crc32c: 0,
            written_at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
        }
    }
}

/// A data file was recorded as file `tape_file` of `tape_id`: a scratch
/// tape is `filling` now, and its file count covers the file.
pub(super) async fn data_file_written(tx: &mut sqlx::PgConnection, tape_id: TapeId, tape_file: u32) -> Result<()> {
    sqlx::query!(
        "UPDATE tapes
                 SET state = CASE WHEN state = 'scratch' THEN 'filling' ELSE state END,
                     files_written = GREATEST(files_written, $2), emptied = NULL
                 WHERE id = $1",
        tape_id as _,
        i32::try_from(i64::from(tape_file) + 1).unwrap_or(i32::MAX)
    )
    .execute(tx)
    .await?;
    Ok(())
}

fn describe(s: &Segment) -> String {
    format!(
        "ABS {} seq {} on tape {} file {} ({} bytes, {} data bytes, {} tracks, crc32c {:08x})",
        s.abs_id, s.seq, s.tape_label, s.tape_file, s.bytes, s.data_bytes, s.track_count, s.crc32c
    )
}

impl Catalog {
    /// Record a segment's placement. Returns `true` if it was new, `false` if
    /// exactly this placement was already recorded. A different placement
    /// for the same (ABS, seq) or the same (tape, tape file), a new segment
    /// of a complete ABS, or a tape file holding ABS metadata is a
    /// [`CatalogError::Conflict`]. A new segment also moves a scratch tape to
    /// `filling` and raises its file count.
    pub async fn record_segment(&self, seg: &NewSegment) -> Result<bool> {
        let bytes = to_i64(seg.bytes, "segment bytes")?;
        let data_bytes = to_i64(seg.data_bytes, "segment data bytes")?;
        let track_count = to_i64(seg.track_count, "segment track count")?;
        let tape_file = i64::from(seg.tape_file);
        let crc = i64::from(seg.crc32c);
        let mut tx = self.pool.begin().await?;
        // Shares the lock complete_abs takes: completion waits for
        // in-flight recordings and sees them.
        let abs_state = sqlx::query_scalar!(
            r#"SELECT state AS "state: AbsState" FROM abs WHERE id = $1 FOR SHARE"#,
            seg.abs_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", seg.abs_id))?;
        sqlx::query_scalar!("SELECT id FROM tapes WHERE id = $1", seg.tape_id as _)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("tape", seg.tape_id))?;
        let inserted = if abs_state == AbsState::Complete {
            None
        } else {
            let metadata_there = sqlx::query_scalar!(
                r#"SELECT id AS "id: AbsId" FROM abs WHERE metadata_tape_id = $1 AND metadata_file = $2"#,
                seg.tape_id as _,
                tape_file
            )
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(other) = metadata_there {
                return Err(CatalogError::conflict(format!(
                    "tape {} file {} holds the metadata of ABS {other}, not a segment",
                    seg.tape_id, seg.tape_file
                )));
            }
            sqlx::query_scalar!(
                "INSERT INTO segments (abs_id, seq, tape_id, tape_file, bytes, data_bytes, track_count, crc32c)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT DO NOTHING
                 RETURNING id",
                seg.abs_id as _,
                seg.seq as _,
                seg.tape_id as _,
                tape_file,
                bytes,
                data_bytes,
                track_count,
                crc
            )
            .fetch_optional(&mut *tx)
            .await?
        };
        if inserted.is_some() {
            data_file_written(&mut tx, seg.tape_id, seg.tape_file).await?;
            tx.commit().await?;
            return Ok(true);
        }
        // Something is already there: the same placement (a retry) or a clash.
        let existing = sqlx::query_as!(
            RawSegment,
            r#"SELECT s.id, NULL::int8 AS copy_id, t.pool, s.status AS "status: SegmentStatus",
                    s.abs_id AS "abs_id: AbsId", s.seq AS "seq: SegmentSeq", s.tape_id AS "tape_id: TapeId",
                    t.label AS tape_label, t.path AS tape_path, t.location AS "tape_location: TapeLocation", s.tape_file,
                    s.bytes, s.data_bytes, s.track_count, s.crc32c, s.written_at
             FROM segments s JOIN tapes t ON t.id = s.tape_id
             WHERE (s.abs_id = $1 AND s.seq = $2) OR (s.tape_id = $3 AND s.tape_file = $4)
             ORDER BY s.id"#,
            seg.abs_id as _,
            seg.seq as _,
            seg.tape_id as _,
            tape_file
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(Segment::try_from)
        .collect::<Result<Vec<_>>>()?;
        match existing.as_slice() {
            [one] if one.same_as(seg) => Ok(false),
            // The same segment written again elsewhere (its front-end
            // restarted before it heard the first write's outcome): the
            // catalog keeps the first copy; the second is a tape file no
            // ABS refers to, like a torn one.
            [one] if one.same_content(seg) => {
                sqlx::query!(
                    "UPDATE tapes SET files_written = GREATEST(files_written, $2) WHERE id = $1",
                    seg.tape_id as _,
                    i32::try_from(tape_file + 1).unwrap_or(i32::MAX)
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::warn!(
                    abs = %seg.abs_id,
                    seq = %seg.seq,
                    kept = %describe(one),
                    unreferenced_tape = %seg.tape_id,
                    unreferenced_file = seg.tape_file,
                    "segment written twice; the catalog keeps its first copy"
                );
                Ok(false)
            }
            [] => Err(CatalogError::conflict(format!(
                "ABS {} is complete; segment seq {} was not part of it",
                seg.abs_id, seg.seq
            ))),
            [first, ..] => Err(CatalogError::conflict(format!(
                "segment ABS {} seq {} on tape {} file {} clashes with the recorded {}",
                seg.abs_id,
                seg.seq,
                seg.tape_id,
                seg.tape_file,
                describe(existing.iter().find(|s| !s.same_as(seg)).unwrap_or(first))
            ))),
        }
    }

    /// The segments of an ABS in restore order: by tape, then tape file.
    pub async fn segments_of(&self, abs_id: AbsId) -> Result<Vec<Segment>> {
        sqlx::query_as!(
            RawSegment,
            r#"SELECT s.id, NULL::int8 AS copy_id, t.pool, s.status AS "status: SegmentStatus",
                    s.abs_id AS "abs_id: AbsId", s.seq AS "seq: SegmentSeq", s.tape_id AS "tape_id: TapeId",
                    t.label AS tape_label, t.path AS tape_path, t.location AS "tape_location: TapeLocation", s.tape_file,
                    s.bytes, s.data_bytes, s.track_count, s.crc32c, s.written_at
             FROM segments s JOIN tapes t ON t.id = s.tape_id
             WHERE s.abs_id = $1
             ORDER BY s.tape_id, s.tape_file"#,
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Segment::try_from)
        .collect()
    }

    /// The copies of an ABS's segments in copy pools (not the primary
    /// ones), by seq, then as they were written.
    pub async fn segment_copies_of(&self, abs_id: AbsId) -> Result<Vec<Segment>> {
        sqlx::query_as!(
            RawSegment,
            r#"SELECT s.id, c.id AS "copy_id?", c.pool, c.status AS "status: SegmentStatus",
                    s.abs_id AS "abs_id: AbsId", s.seq AS "seq: SegmentSeq", c.tape_id AS "tape_id: TapeId",
                    t.label AS tape_label, t.path AS tape_path, t.location AS "tape_location: TapeLocation",
                    c.tape_file, c.bytes, s.data_bytes, s.track_count, c.crc32c, c.written_at
             FROM segment_copies c JOIN segments s ON s.id = c.segment_id JOIN tapes t ON t.id = c.tape_id
             WHERE s.abs_id = $1
             ORDER BY s.seq, c.id"#,
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Segment::try_from)
        .collect()
    }

    /// Every segment copy (primary or in a copy pool) the catalog places
    /// on tape `tape_id`, in position order.
    pub async fn segments_on_tape(&self, tape_id: TapeId) -> Result<Vec<Segment>> {
        sqlx::query_as!(
            RawSegment,
            r#"SELECT s.id AS "id!", NULL::int8 AS copy_id, t.pool AS "pool!", s.status AS "status!: SegmentStatus",
                    s.abs_id AS "abs_id!: AbsId", s.seq AS "seq!: SegmentSeq", s.tape_id AS "tape_id!: TapeId",
                    t.label AS "tape_label!", t.path AS "tape_path!", t.location AS "tape_location!: TapeLocation",
                    s.tape_file AS "tape_file!",
                    s.bytes AS "bytes!", s.data_bytes AS "data_bytes!", s.track_count AS "track_count!",
                    s.crc32c AS "crc32c!", s.written_at AS "written_at!"
             FROM segments s JOIN tapes t ON t.id = s.tape_id
             WHERE s.tape_id = $1
             UNION ALL
             SELECT s.id, c.id, c.pool, c.status, s.abs_id, s.seq, c.tape_id, t.label, t.path, t.location, c.tape_file,
                    c.bytes, s.data_bytes, s.track_count, c.crc32c, c.written_at
             FROM segment_copies c JOIN segments s ON s.id = c.segment_id JOIN tapes t ON t.id = c.tape_id
             WHERE c.tape_id = $1
             ORDER BY 11"#,
            tape_id as _
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Segment::try_from)
        .collect()
    }

    /// Every copy of every segment (of one ABS if given), by ABS, seq,
    /// then the primary copy first and the others as they were written.
    pub async fn list_segments(&self, abs_id: Option<AbsId>) -> Result<Vec<Segment>> {
        sqlx::query_as!(
            RawSegment,
            r#"SELECT s.id AS "id!", NULL::int8 AS copy_id, t.pool AS "pool!", s.status AS "status!: SegmentStatus",
                    s.abs_id AS "abs_id!: AbsId", s.seq AS "seq!: SegmentSeq", s.tape_id AS "tape_id!: TapeId",
                    t.label AS "tape_label!", t.path AS "tape_path!", t.location AS "tape_location!: TapeLocation",
                    s.tape_file AS "tape_file!",
                    s.bytes AS "bytes!", s.data_bytes AS "data_bytes!", s.track_count AS "track_count!",
                    s.crc32c AS "crc32c!", s.written_at AS "written_at!"
             FROM segments s JOIN tapes t ON t.id = s.tape_id
             WHERE $1::int8 IS NULL OR s.abs_id = $1
             UNION ALL
             SELECT s.id, c.id, c.pool, c.status, s.abs_id, s.seq, c.tape_id, t.label, t.path, t.location, c.tape_file,
                    c.bytes, s.data_bytes, s.track_count, c.crc32c, c.written_at
             FROM segment_copies c JOIN segments s ON s.id = c.segment_id JOIN tapes t ON t.id = c.tape_id
             WHERE $1::int8 IS NULL OR s.abs_id = $1
             ORDER BY 5, 6, 2 NULLS FIRST"#,
            abs_id as _
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Segment::try_from)
        .collect()
    }
}
