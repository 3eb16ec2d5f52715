//! Channels and their persisted state machine: every transition is checked
//! against [`crate::channel`] and recorded (from, to, reason, actor, time) in
//! the same transaction as the state change.

use chrono::{DateTime, Utc};
use proto::domain::{AbsId, AbsState, ChannelId, DriveId, MoverId, TapeId};

use super::{to_i64, to_u64, Catalog, CatalogError, Result};
use crate::channel::{self, ChannelKind, ChannelState};

/// The actor recorded for transitions the station makes on its own.
pub const STATION_ACTOR: &str = "control-station";

/// Reason recorded for the initial `→ requested` transition.
const REQUESTED_REASON: &str = "requested";

/// A channel with the names of what it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub abs_id: AbsId,
    pub state: ChannelState,
    /// Why the channel is in its state (the last transition's reason).
    pub reason: String,
    pub fe_id: Option<MoverId>,
    pub fe_name: Option<String>,
    pub be_id: Option<MoverId>,
    pub be_name: Option<String>,
    pub drive_id: Option<DriveId>,
    pub drive_name: Option<String>,
    pub tape_id: Option<TapeId>,
    pub tape_label: Option<String>,
    pub bytes: u64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One recorded transition of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    pub id: i64,
    pub channel_id: ChannelId,
    /// `None` for the creation of the channel.
    pub from_state: Option<ChannelState>,
    pub to_state: ChannelState,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

struct RawChannel {
    id: ChannelId,
    kind: ChannelKind,
    abs_id: AbsId,
    state: ChannelState,
    reason: String,
    fe_id: Option<MoverId>,
    fe_name: Option<String>,
    be_id: Option<MoverId>,
    be_name: Option<String>,
    drive_id: Option<DriveId>,
    drive_name: Option<String>,
    tape_id: Option<TapeId>,
    tape_label: Option<String>,
    bytes: i64,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl TryFrom<RawChannel> for ChannelRow {
    type Error = CatalogError;

    fn try_from(r: RawChannel) -> Result<ChannelRow> {
        Ok(ChannelRow {
            id: r.id,
            kind: r.kind,
            abs_id: r.abs_id,
            state: r.state,
            reason: r.reason,
            fe_id: r.fe_id,
            fe_name: r.fe_name,
            be_id: r.be_id,
            be_name: r.be_name,
            drive_id: r.drive_id,
            drive_name: r.drive_name,
            tape_id: r.tape_id,
            tape_label: r.tape_label,
            bytes: to_u64(r.bytes, "channel bytes")?,
            created: r.created,
            updated: r.updated,
        })
    }
}

impl Catalog {
    /// Open a new channel of `kind` for an ABS, in state `requested`, and
    /// record its creation (a transition from nothing). A backup channel
    /// needs a running ABS, a restore channel a complete one.
    pub async fn create_channel(&self, kind: ChannelKind, abs_id: AbsId, actor: &str) -> Result<ChannelId> {
        let mut tx = self.pool.begin().await?;
        let abs_state = sqlx::query_scalar!(
            r#"SELECT state AS "state: AbsState" FROM abs WHERE id = $1 FOR SHARE"#,
            abs_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        let needed = match kind {
            ChannelKind::Backup => AbsState::Running,
            ChannelKind::Restore => AbsState::Complete,
        };
        if abs_state != needed {
            return Err(CatalogError::conflict(format!(
                "a {kind} channel needs a {needed} ABS; ABS {abs_id} is {abs_state}"
            )));
        }
        let state = ChannelState::Requested;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO channels (kind, abs_id, state, reason) VALUES ($1, $2, $3, $4) RETURNING id AS "id: ChannelId""#,
            kind as _,
            abs_id as _,
            state as _,
            REQUESTED_REASON
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO channel_transitions (channel_id, from_state, to_state, reason, actor)
             VALUES ($1, NULL, $2, $3, $4)",
            id as _,
            state as _,
            REQUESTED_REASON,
            actor
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Move a channel to `to` for `reason`, on behalf of `actor`. In one
    /// transaction: lock the channel row, check the transition against the
    /// state machine of its kind, update it and record the transition. An
    /// illegal transition is [`CatalogError::IllegalTransition`] and changes
    /// nothing. Returns the new state.
    pub async fn transition(
        &self,
        channel_id: ChannelId,
        to: ChannelState,
        reason: &str,
        actor: &str,
    ) -> Result<ChannelState> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!(
            r#"SELECT kind AS "kind: ChannelKind", state AS "state: ChannelState" FROM channels WHERE id = $1 FOR UPDATE"#,
            channel_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("channel", channel_id))?;
        let (kind, from) = (row.kind, row.state);
        channel::transition(kind, from, to).map_err(|e| CatalogError::illegal(channel_id, e))?;
        Self::apply_transition(&mut tx, channel_id, from, to, reason, actor).await?;
        tx.commit().await?;
        Ok(to)
    }

    async fn apply_transition(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        channel_id: ChannelId,
        from: ChannelState,
        to: ChannelState,
        reason: &str,
        actor: &str,
    ) -> Result<()> {
        sqlx::query!(
            "UPDATE channels SET state = $2, reason = $3, updated = now() WHERE id = $1",
            channel_id as _,
            to as _,
            reason
        )
        .execute(&mut **tx)
        .await?;
        sqlx::query!(
            "INSERT INTO channel_transitions (channel_id, from_state, to_state, reason, actor)
             VALUES ($1, $2, $3, $4, $5)",
            channel_id as _,
            from as _,
            to as _,
            reason,
            actor
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Record, in a channel's history, something about it that is not a
    /// change of state (e.g. the data path its movers use): a row from its
    /// current state to the same state, with `note` as the reason. Only the
    /// channel's front-end (`front_end`) may; nothing is recorded once the
    /// channel is closed or failed. Returns whether it was recorded.
    pub async fn note_channel(&self, channel_id: ChannelId, front_end: &str, note: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!(
            r#"SELECT c.state AS "state: ChannelState", fe.name AS "fe_name?" FROM channels c
               LEFT JOIN movers fe ON fe.id = c.fe_id
               WHERE c.id = $1 FOR UPDATE OF c"#,
            channel_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("channel", channel_id))?;
        if row.fe_name.as_deref() != Some(front_end) {
            return Err(CatalogError::conflict(format!(
                "channel {channel_id} is not served by front-end {front_end}"
            )));
        }
        let state = row.state;
        if state.is_terminal() {
            return Ok(false);
        }
        sqlx::query!(
            "INSERT INTO channel_transitions (channel_id, from_state, to_state, reason, actor)
             VALUES ($1, $2, $2, $3, $4)",
            channel_id as _,
            state as _,
            note,
            front_end
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Assign the front-end, back-end, drive (and maybe tape) a channel
    /// uses. The movers must be a registered pair and the drive must belong
    /// to the back-end; a closed or failed channel cannot be reassigned.
    pub async fn assign_channel(
        &self,
        channel_id: ChannelId,
        fe: MoverId,
        be: MoverId,
        drive: DriveId,
        tape: Option<TapeId>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let state = sqlx::query_scalar!(
            r#"SELECT state AS "state: ChannelState" FROM channels WHERE id = $1 FOR UPDATE"#,
            channel_id as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("channel", channel_id))?;
        if state.is_terminal() {
            return Err(CatalogError::conflict(format!(
                "channel {channel_id} is {state}; cannot assign it"
            )));
        }
        let paired = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM mover_pairs WHERE fe_id = $1 AND be_id = $2) AS "e!""#,
            fe as _,
            be as _
        )
        .fetch_one(&mut *tx)
        .await?;
        if !paired {
            return Err(CatalogError::conflict(format!(
                "movers {fe} and {be} are not a registered front-end/back-end pair"
            )));
        }
        let owner = sqlx::query!(
            r#"SELECT name, be_mover_id AS "be_mover_id: MoverId" FROM drives WHERE id = $1"#,
            drive as _
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("drive", drive))?;
        if owner.be_mover_id != be {
            return Err(CatalogError::conflict(format!(
                "drive {} belongs to mover {}, not to back-end {be}",
                owner.name, owner.be_mover_id
            )));
        }
        if let Some(t) = tape {
            sqlx::query_scalar!("SELECT id FROM tapes WHERE id = $1", t as _)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| CatalogError::not_found("tape", t))?;
        }
        sqlx::query!(
            "UPDATE channels SET fe_id = $2, be_id = $3, drive_id = $4, tape_id = $5, updated = now() WHERE id = $1",
            channel_id as _,
            fe as _,
            be as _,
            drive as _,
            tape as _
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Set (or clear) the tape a channel is on.
    pub async fn set_channel_tape(&self, channel_id: ChannelId, tape: Option<TapeId>) -> Result<()> {
        if let Some(t) = tape {
            self.tape(t).await?.ok_or_else(|| CatalogError::not_found("tape", t))?;
        }
        let done = sqlx::query!(
            "UPDATE channels SET tape_id = $2, updated = now() WHERE id = $1",
            channel_id as _,
            tape as _
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("channel", channel_id));
        }
        Ok(())
    }

    /// Set the number of bytes a channel has moved so far.
    pub async fn set_channel_bytes(&self, channel_id: ChannelId, bytes: u64) -> Result<()> {
        let bytes = to_i64(bytes, "channel byte count")?;
        let done = sqlx::query!(
            "UPDATE channels SET bytes = $2, updated = now() WHERE id = $1",
            channel_id as _,
            bytes
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("channel", channel_id));
        }
        Ok(())
    }

    pub async fn channel(&self, id: ChannelId) -> Result<Option<ChannelRow>> {
        sqlx::query_as!(
            RawChannel,
            r#"SELECT c.id AS "id: ChannelId", c.kind AS "kind: ChannelKind", c.abs_id AS "abs_id: AbsId",
                      c.state AS "state: ChannelState", c.reason,
                      c.fe_id AS "fe_id: MoverId", fe.name AS "fe_name?", c.be_id AS "be_id: MoverId",
                      be.name AS "be_name?", c.drive_id AS "drive_id: DriveId", d.name AS "drive_name?",
                      c.tape_id AS "tape_id: TapeId", t.label AS "tape_label?",
                      c.bytes, c.created, c.updated
               FROM channels c
               LEFT JOIN movers fe ON fe.id = c.fe_id
               LEFT JOIN movers be ON be.id = c.be_id
               LEFT JOIN drives d ON d.id = c.drive_id
               LEFT JOIN tapes t ON t.id = c.tape_id
               WHERE c.id = $1"#,
            id as _
        )
        .fetch_optional(&self.pool)
        .await?
        .map(ChannelRow::try_from)
        .transpose()
    }

    /// Every channel, oldest first.
    pub async fn list_channels(&self) -> Result<Vec<ChannelRow>> {
        sqlx::query_as!(
            RawChannel,
            r#"SELECT c.id AS "id: ChannelId", c.kind AS "kind: ChannelKind", c.abs_id AS "abs_id: AbsId",
                      c.state AS "state: ChannelState", c.reason,
                      c.fe_id AS "fe_id: MoverId", fe.name AS "fe_name?", c.be_id AS "be_id: MoverId",
                      be.name AS "be_name?", c.drive_id AS "drive_id: DriveId", d.name AS "drive_name?",
                      c.tape_id AS "tape_id: TapeId", t.label AS "tape_label?",
                      c.bytes, c.created, c.updated
               FROM channels c
               LEFT JOIN movers fe ON fe.id = c.fe_id
               LEFT JOIN movers be ON be.id = c.be_id
               LEFT JOIN drives d ON d.id = c.drive_id
               LEFT JOIN tapes t ON t.id = c.tape_id
               ORDER BY c.id"#
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ChannelRow::try_from)
        .collect()
    }

    /// The recorded transitions of a channel, in order (empty for an unknown
    /// channel).
    pub async fn channel_history(&self, channel_id: ChannelId) -> Result<Vec<TransitionRow>> {
        Ok(sqlx::query_as!(
            TransitionRow,
            r#"SELECT id, channel_id AS "channel_id: ChannelId", from_state AS "from_state: ChannelState",
                      to_state AS "to_state: ChannelState", reason, actor, at FROM channel_transitions
             WHERE channel_id = $1 ORDER BY id"#,
            channel_id as _
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Move every open channel that uses `mover_id` (as front-end or
    /// back-end) to `error` for `reason`, recording each transition with
    /// actor [`STATION_ACTOR`], all in one transaction. Returns the ids of
    /// the channels failed.
    pub async fn fail_open_channels_of_mover(&self, mover_id: MoverId, reason: &str) -> Result<Vec<ChannelId>> {
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query!(
            r#"SELECT id AS "id: ChannelId", kind AS "kind: ChannelKind", state AS "state: ChannelState" FROM channels
             WHERE (fe_id = $1 OR be_id = $1) AND state NOT IN ('closed', 'error')
             ORDER BY id
             FOR UPDATE"#,
            mover_id as _
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut failed = Vec::with_capacity(open.len());
        for row in open {
            let (kind, from) = (row.kind, row.state);
            channel::transition(kind, from, ChannelState::Error).map_err(|e| CatalogError::illegal(row.id, e))?;
            Self::apply_transition(&mut tx, row.id, from, ChannelState::Error, reason, STATION_ACTOR).await?;
            failed.push(row.id);
        }
        tx.commit().await?;
        Ok(failed)
    }
}

/// What [`Catalog::recover_at_start`] ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Channels that were open, now in `error`.
    pub channels: Vec<ChannelId>,
    /// ABSs that were running, now failed.
    pub abs: Vec<AbsId>,
}

impl Catalog {
    /// A station starting runs no channel yet: every channel still open in
    /// the catalog was left by an earlier start. End each in `error` for
    /// `reason` and fail each running ABS for it, in one transaction; every
    /// mover is offline until it registers again.
    pub async fn recover_at_start(&self, reason: &str) -> Result<Recovered> {
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query!(
            r#"SELECT id AS "id: ChannelId", kind AS "kind: ChannelKind", state AS "state: ChannelState" FROM channels
               WHERE state NOT IN ('closed', 'error') ORDER BY id FOR UPDATE"#
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Recovered::default();
        for row in open {
            let (kind, from) = (row.kind, row.state);
            channel::transition(kind, from, ChannelState::Error).map_err(|e| CatalogError::illegal(row.id, e))?;
            Self::apply_transition(&mut tx, row.id, from, ChannelState::Error, reason, STATION_ACTOR).await?;
            out.channels.push(row.id);
        }
        out.abs = sqlx::query_scalar!(
            r#"UPDATE abs SET state = 'failed', reason = $1, completed = now() WHERE state = 'running'
               RETURNING id AS "id: AbsId""#,
            reason
        )
        .fetch_all(&mut *tx)
        .await?;
        out.abs.sort_unstable();
        sqlx::query!("UPDATE movers SET state = 'offline' WHERE state = 'online'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(out)
    }
}

impl Catalog {
    /// Open channels (not closed, not in error) and the ABS each one moves.
    pub async fn open_channels(&self) -> Result<Vec<(ChannelId, AbsId)>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id: ChannelId", abs_id AS "abs_id: AbsId" FROM channels
               WHERE state NOT IN ('closed', 'error') ORDER BY id"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.id, r.abs_id)).collect())
    }

    /// Running ABSs none of whose channels is open.
    pub async fn running_abs_without_channel(&self) -> Result<Vec<AbsId>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT a.id AS "id: AbsId" FROM abs a
             WHERE a.state = 'running'
               AND NOT EXISTS (SELECT 1 FROM channels c
                               WHERE c.abs_id = a.id AND c.state NOT IN ('closed', 'error'))
             ORDER BY a.id"#
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
