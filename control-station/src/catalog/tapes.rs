//! Tapes: labels, pools, states, which drive holds which tape.
//!
//! A tape is `scratch` (empty), `filling` (holds data, has room) or `full`.
//! Independently it is *in use* while a channel holds it: reserved by
//! [`Catalog::tape_for_writing`] or mounted in a drive. A tape in use is never
//! handed out again until it is dismounted or released.

use chrono::{DateTime, Utc};

use proto::domain::{DriveId, MediaSetId, TapeId, TapeLocation, TapeState};

use super::{to_i64, to_u32, to_u64, Catalog, CatalogError, Result};

/// Longest tape label: the ANSI VOL1 volume serial has six characters.
pub const MAX_LABEL_LEN: usize = 6;

/// A tape as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeRow {
    pub id: TapeId,
    pub label: String,
    pub pool: String,
    pub state: TapeState,
    /// Where the tape image lives (image mode) or the library slot name.
    pub path: String,
    pub bytes_written: u64,
    pub files_written: u32,
    pub media_set: Option<MediaSetId>,
    /// This tape's volume number in its media set (1, 2, …).
    pub media_set_seq: Option<u32>,
    /// Reserved by a channel or mounted.
    pub in_use: bool,
    /// The name of the drive the tape is mounted in.
    pub mounted_in: Option<String>,
    pub created: DateTime<Utc>,
    pub location: TapeLocation,
    /// Home slot in the library (None once exported).
    pub slot: Option<u32>,
    /// Every ABS on it was deleted at this time: scratch again once its
    /// pool's retention has passed.
    pub emptied: Option<DateTime<Utc>>,
    /// Times it was relabelled and used again.
    pub reuses: u32,
}

struct RawTape {
    id: TapeId,
    label: String,
    pool: String,
    state: TapeState,
    path: String,
    bytes_written: i64,
    files_written: i32,
    media_set: Option<MediaSetId>,
    media_set_seq: Option<i32>,
    in_use: bool,
    mounted_in: Option<String>,
    created: DateTime<Utc>,
    location: TapeLocation,
    slot: Option<i32>,
    emptied: Option<DateTime<Utc>>,
    reuses: i32,
}

impl TryFrom<RawTape> for TapeRow {
    type Error = CatalogError;

    fn try_from(r: RawTape) -> Result<TapeRow> {
        let small = |v: i32, what: &str| to_u32(i64::from(v), what);
        Ok(TapeRow {
            id: r.id,
            label: r.label,
            pool: r.pool,
            state: r.state,
            path: r.path,
            bytes_written: to_u64(r.bytes_written, "tape bytes written")?,
            files_written: small(r.files_written, "tape files written")?,
            media_set: r.media_set,
            media_set_seq: r.media_set_seq.map(|q| small(q, "media set sequence")).transpose()?,
            in_use: r.in_use,
            mounted_in: r.mounted_in,
            created: r.created,
            location: r.location,
            slot: r.slot.map(|q| small(q, "tape slot")).transpose()?,
            emptied: r.emptied,
            reuses: small(r.reuses, "tape reuses")?,
        })
    }
}

fn valid_label_char(c: char, first: bool) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || (!first && (c == '_' || c == '-'))
}

fn check_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label.chars().enumerate().all(|(i, c)| valid_label_char(c, i == 0));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::invalid(format!(
            "tape label {label:?}: 1 to {MAX_LABEL_LEN} characters A-Z 0-9 _ - (not starting with _ or -)"
        )))
    }
}

/// Whether the job mounting a tape holds its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapeClaim {
    /// A tape no job holds (a restore reads it): one reserved for writing
    /// is a conflict, waited out like a mounted one.
    Free,
    /// The tape [`Catalog::tape_for_writing`] reserved for this job.
    Reserved,
}

impl Catalog {
    /// A fresh tape label: `prefix` followed by a zero-padded number from a
    /// database sequence, six characters in all (e.g. `DM0001`). Numbers
    /// whose label already exists (created by hand) are skipped. The label is
    /// not stored until [`Catalog::create_tape`].
    pub async fn allocate_tape_label(&self, prefix: &str) -> Result<String> {
        if prefix.len() >= MAX_LABEL_LEN {
            return Err(CatalogError::invalid(format!(
                "tape label prefix {prefix:?} leaves no room for a number (at most {} characters)",
                MAX_LABEL_LEN - 1
            )));
        }
        if !prefix.is_empty() {
            check_label(prefix)?;
        }
        let width = MAX_LABEL_LEN - prefix.len();
        let limit = 10i64.pow(u32::try_from(width).unwrap_or(u32::MAX));
        for _ in 0..10_000 {
            let n = sqlx::query_scalar!(r#"SELECT nextval('tape_label_seq') AS "n!""#)
                .fetch_one(&self.pool)
                .await?;
            if n >= limit {
                return Err(CatalogError::conflict(format!(
                    "tape labels with prefix {prefix:?} are exhausted (sequence at {n})"
                )));
            }
            let label = format!("{prefix}{n:0width$}");
            let taken = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM tapes WHERE label = $1) AS "e!""#, label)
                .fetch_one(&self.pool)
                .await?;
            if !taken {
                return Ok(label);
            }
        }
        Err(CatalogError::conflict(format!(
            "no free tape label with prefix {prefix:?}"
        )))
    }

    /// Add a new, empty (`scratch`) tape to a pool.
    pub async fn create_tape(&self, label: &str, pool: &str, path: &str) -> Result<TapeRow> {
        check_label(label)?;
        if pool.is_empty() {
            return Err(CatalogError::invalid("tape pool name is empty"));
        }
        // Two tapes created at once may pick the same free slot: the unique
        // slot constraint refuses the second, which tries the next one.
        let mut attempt = 0;
        let id = loop {
            let res = sqlx::query_scalar!(
                r#"INSERT INTO tapes (label, pool, path, slot)
                 VALUES ($1, $2, $3, (SELECT COALESCE(min(s), 1) FROM generate_series(1, (SELECT count(*) + 1 FROM tapes)::int) s
                                      WHERE NOT EXISTS (SELECT 1 FROM tapes WHERE slot = s)))
                 ON CONFLICT (label) DO NOTHING
                 RETURNING id AS "id: TapeId""#,
                label,
                pool,
                path
            )
            .fetch_optional(&self.pool)
            .await;
            match res {
                Ok(Some(id)) => break id,
                Ok(None) => return Err(CatalogError::conflict(format!("tape label {label} already exists"))),
                Err(e) => {
                    let e = CatalogError::from(e);
                    attempt += 1;
                    if !e.is_unique_violation() || attempt >= 16 {
                        return Err(e);
                    }
                }
            }
        };
        self.tape(id).await?.ok_or_else(|| CatalogError::not_found("tape", id))
    }

    /// Hand a tape of `pool` to one writer: a `filling` tape not in use if
    /// there is one, else a `scratch` one, oldest first. The tape is marked
    /// in use in the same transaction (rows locked `FOR UPDATE SKIP LOCKED`),
    /// so concurrent callers never get the same tape. `None` when the pool has
    /// no free tape.
    ///
    /// `scratch_only`: only a scratch tape (one that continues a media set).
    pub async fn tape_for_writing(&self, pool: &str, scratch_only: bool) -> Result<Option<TapeRow>> {
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar!(
            r#"SELECT id AS "id: TapeId" FROM tapes
             WHERE pool = $1 AND NOT in_use AND location = 'library' AND emptied IS NULL
               AND (state = 'scratch' OR (state = 'filling' AND NOT $2))
             ORDER BY (state = 'filling') DESC, created, id
             LIMIT 1
             FOR UPDATE SKIP LOCKED"#,
            pool,
            scratch_only
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        sqlx::query!("UPDATE tapes SET in_use = true WHERE id = $1", id as _)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.tape(id).await
    }

    /// Give back a tape reserved by [`Catalog::tape_for_writing`] that was
    /// never mounted. A mounted tape must be dismounted instead.
    pub async fn release_tape(&self, tape_id: TapeId) -> Result<()> {
        let row = sqlx::query!(
            "UPDATE tapes SET in_use = false WHERE id = $1 AND mounted_in IS NULL RETURNING id",
            tape_id as _
        )
        .fetch_optional(&self.pool)
        .await?;
        if row.is_none() {
            let tape = self
                .tape(tape_id)
                .await?
                .ok_or_else(|| CatalogError::not_found("tape", tape_id))?;
            return Err(CatalogError::conflict(format!(
                "tape {} is mounted in drive {}: dismount it",
                tape.label,
                tape.mounted_in.unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Record that `tape_id` is mounted in `drive_id` (and so in use).
    /// Mounting the same tape in the same drive again is a no-op; a tape in
    /// another drive, a drive holding another tape, or (for
    /// [`TapeClaim::Free`]) a tape another job reserved for writing is a
    /// conflict.
    pub async fn mount_tape(&self, drive_id: DriveId, tape_id: TapeId, claim: TapeClaim) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let drive = sqlx::query!("SELECT name FROM drives WHERE id = $1 FOR UPDATE", drive_id as _)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("drive", drive_id))?;
        let tape = sqlx::query!(
            r#"SELECT t.label, t.in_use, t.mounted_in AS "mounted_in: DriveId", d.name AS "drive_name?"
               FROM tapes t LEFT JOIN drives d ON d.id = t.mounted_in
               WHERE t.id = $1 FOR UPDATE OF t"#,
            tape_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("tape", tape_id))?;
        match tape.mounted_in {
            Some(d) if d == drive_id => return Ok(()),
            Some(_) => {
                return Err(CatalogError::conflict(format!(
                    "tape {} is already mounted in drive {}",
                    tape.label,
                    tape.drive_name.unwrap_or_default()
                )))
            }
            None if tape.in_use && claim == TapeClaim::Free => {
                return Err(CatalogError::conflict(format!(
                    "tape {} is reserved for writing by another job",
                    tape.label
                )))
            }
            None => {}
        }
        if let Some(other) = sqlx::query_scalar!("SELECT label FROM tapes WHERE mounted_in = $1", drive_id as _)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Err(CatalogError::conflict(format!(
                "drive {} already holds tape {other}; cannot mount {}",
                drive.name, tape.label
            )));
        }
        sqlx::query!(
            "UPDATE tapes SET mounted_in = $2, in_use = true WHERE id = $1",
            tape_id as _,
            drive_id as _
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record what a tape holds as read from the tape itself (a catalog
    /// restore learning of the tapes its backup wrote): its state, data
    /// bytes and data files. A tape in use is a conflict.
    pub async fn record_tape_contents(
        &self,
        tape_id: TapeId,
        state: TapeState,
        bytes_written: u64,
        files_written: u32,
    ) -> Result<()> {
        let bytes_written = to_i64(bytes_written, "tape bytes written")?;
        let files_written = i32::try_from(files_written)
            .map_err(|_| CatalogError::invalid(format!("{files_written} tape files exceed the catalog's range")))?;
        let row = sqlx::query!(
            "UPDATE tapes SET state = $2, bytes_written = $3, files_written = $4
             WHERE id = $1 AND NOT in_use
             RETURNING id",
            tape_id as _,
            state as _,
            bytes_written,
            files_written
        )
        .fetch_optional(&self.pool)
        .await?;
        if row.is_none() {
            return Err(CatalogError::conflict(format!(
                "tape {tape_id} is missing or in use: its contents cannot be recorded"
            )));
        }
        Ok(())
    }

    /// Record that `tape_id` left `drive_id`, with its state and counters as
    /// the back-end reports them. The tape is free again.
    pub async fn dismount_tape(
        &self,
        drive_id: DriveId,
        tape_id: TapeId,
        state: TapeState,
        bytes_written: u64,
        files_written: u32,
    ) -> Result<()> {
        let bytes_written = to_i64(bytes_written, "tape bytes written")?;
        let files_written = i32::try_from(files_written)
            .map_err(|_| CatalogError::invalid(format!("{files_written} tape files exceed the catalog's range")))?;
        let row = sqlx::query!(
            "UPDATE tapes
             SET mounted_in = NULL, in_use = false, state = $3, bytes_written = $4, files_written = $5
             WHERE id = $1 AND mounted_in = $2
             RETURNING id",
            tape_id as _,
            drive_id as _,
            state as _,
            bytes_written,
            files_written
        )
        .fetch_optional(&self.pool)
        .await?;
        if row.is_none() {
            let tape = self
                .tape(tape_id)
                .await?
                .ok_or_else(|| CatalogError::not_found("tape", tape_id))?;
            return Err(CatalogError::conflict(format!(
                "tape {} is not mounted in drive {drive_id} (mounted in: {})",
                tape.label,
                tape.mounted_in.as_deref().unwrap_or("none")
            )));
        }
        Ok(())
    }

    /// A drive found holding a tape nobody uses (left by a channel of an
    /// earlier start of the station, or by a back-end that restarted) was
    /// emptied. `unloaded`: what its back-end reported taking out (label,
    /// data files, data bytes), if anything; a tape it wrote to is
    /// `filling` with those counters. Whatever the catalog had mounted
    /// there is free again. Returns the labels freed.
    pub async fn drive_emptied(&self, drive_id: DriveId, unloaded: Option<(&str, u32, u64)>) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        if let Some((label, files, bytes)) = unloaded {
            if files > 0 {
                sqlx::query!(
                    "UPDATE tapes SET state = 'filling', files_written = $2, bytes_written = $3
                     WHERE label = $1 AND state IN ('scratch', 'filling')",
                    label,
                    i32::try_from(files).unwrap_or(i32::MAX),
                    i64::try_from(bytes).unwrap_or(i64::MAX)
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        let mut freed = sqlx::query_scalar!(
            "UPDATE tapes SET mounted_in = NULL, in_use = false WHERE mounted_in = $1 RETURNING label",
            drive_id as _
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        freed.sort();
        Ok(freed)
    }

    /// Record that a tape belongs to media set `media_set` as its
    /// `media_set_seq`-th volume.
    pub async fn set_tape_media_set(&self, tape_id: TapeId, media_set: MediaSetId, media_set_seq: u32) -> Result<()> {
        let seq = i32::try_from(media_set_seq).map_err(|_| {
            CatalogError::invalid(format!(
                "media set sequence {media_set_seq} exceeds the catalog's range"
            ))
        })?;
        let done = sqlx::query!(
            "UPDATE tapes SET media_set = $2, media_set_seq = $3 WHERE id = $1",
            tape_id as _,
            media_set as _,
            seq
        )
        .execute(&self.pool)
        .await
        .map_err(|e| {
            let e = CatalogError::from(e);
            if e.is_unique_violation() {
                CatalogError::conflict(format!("media set {media_set} already has a volume {media_set_seq}"))
            } else {
                e
            }
        })?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("tape", tape_id));
        }
        Ok(())
    }

    pub async fn tape_by_label(&self, label: &str) -> Result<Option<TapeRow>> {
        sqlx::query_as!(
            RawTape,
            r#"SELECT t.id AS "id: TapeId", t.label, t.pool, t.state AS "state: TapeState", t.path, t.bytes_written,
                      t.files_written, t.media_set AS "media_set: MediaSetId", t.media_set_seq, t.in_use,
                      d.name AS "mounted_in?", t.created, t.location AS "location: TapeLocation", t.slot,
                      t.emptied, t.reuses
               FROM tapes t LEFT JOIN drives d ON d.id = t.mounted_in
               WHERE t.label = $1"#,
            label
        )
        .fetch_optional(&self.pool)
        .await?
        .map(TapeRow::try_from)
        .transpose()
    }

    pub async fn tape(&self, id: TapeId) -> Result<Option<TapeRow>> {
        sqlx::query_as!(
            RawTape,
            r#"SELECT t.id AS "id: TapeId", t.label, t.pool, t.state AS "state: TapeState", t.path, t.bytes_written,
                      t.files_written, t.media_set AS "media_set: MediaSetId", t.media_set_seq, t.in_use,
                      d.name AS "mounted_in?", t.created, t.location AS "location: TapeLocation", t.slot,
                      t.emptied, t.reuses
               FROM tapes t LEFT JOIN drives d ON d.id = t.mounted_in
               WHERE t.id = $1"#,
            id as _
        )
        .fetch_optional(&self.pool)
        .await?
        .map(TapeRow::try_from)
        .transpose()
    }

    /// Every tape, by label.
    pub async fn list_tapes(&self) -> Result<Vec<TapeRow>> {
        sqlx::query_as!(
            RawTape,
            r#"SELECT t.id AS "id: TapeId", t.label, t.pool, t.state AS "state: TapeState", t.path, t.bytes_written,
                      t.files_written, t.media_set AS "media_set: MediaSetId", t.media_set_seq, t.in_use,
                      d.name AS "mounted_in?", t.created, t.location AS "location: TapeLocation", t.slot,
                      t.emptied, t.reuses
               FROM tapes t LEFT JOIN drives d ON d.id = t.mounted_in
               ORDER BY t.label"#
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TapeRow::try_from)
        .collect()
    }

    /// Tapes in the library (every location but `exported`).
    pub async fn tapes_in_library(&self) -> Result<u64> {
        let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM tapes WHERE location = 'library'"#)
            .fetch_one(&self.pool)
            .await?;
        to_u64(n, "tape count")
    }

    /// Record that a tape left the library: its image now lives at `path`.
    /// A tape in use (reserved or mounted) cannot leave.
    pub async fn export_tape(&self, label: &str, path: &str) -> Result<TapeRow> {
        let id = sqlx::query_scalar!(
            r#"UPDATE tapes SET location = 'exported', slot = NULL, path = $2
             WHERE label = $1 AND location = 'library' AND NOT in_use
             RETURNING id AS "id: TapeId""#,
            label,
            path
        )
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => self.tape(id).await?.ok_or_else(|| CatalogError::not_found("tape", id)),
            None => {
                let t = self
                    .tape_by_label(label)
                    .await?
                    .ok_or_else(|| CatalogError::not_found("tape labelled", label))?;
                Err(CatalogError::conflict(if t.location == TapeLocation::Exported {
                    format!("tape {label} is already exported (to {})", t.path)
                } else {
                    format!(
                        "tape {label} is in use (mounted in {}): wait for its channels to finish",
                        t.mounted_in.as_deref().unwrap_or("no drive, reserved")
                    )
                }))
            }
        }
    }

    /// Record that an exported tape is back in the library, its image at
    /// `path`, in the lowest free slot.
    pub async fn import_tape(&self, label: &str, path: &str) -> Result<TapeRow> {
        // A free slot, as in create_tape: retry when another tape took it.
        let mut attempt = 0;
        let id = loop {
            let res = sqlx::query_scalar!(
                r#"UPDATE tapes SET location = 'library', path = $2,
                     slot = (SELECT COALESCE(min(s), 1) FROM generate_series(1, (SELECT count(*) + 1 FROM tapes)::int) s
                             WHERE NOT EXISTS (SELECT 1 FROM tapes WHERE slot = s))
                 WHERE label = $1 AND location = 'exported'
                 RETURNING id AS "id: TapeId""#,
                label,
                path
            )
            .fetch_optional(&self.pool)
            .await;
            match res {
                Ok(id) => break id,
                Err(e) => {
                    let e = CatalogError::from(e);
                    attempt += 1;
                    if !e.is_unique_violation() || attempt >= 16 {
                        return Err(e);
                    }
                }
            }
        };
        match id {
            Some(id) => self.tape(id).await?.ok_or_else(|| CatalogError::not_found("tape", id)),
            None => Err(CatalogError::conflict(format!(
                "tape {label} is not an exported tape of this catalog"
            ))),
        }
    }
}
