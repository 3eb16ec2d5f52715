//! Channels and their persisted state machine: every transition is checked
//! against [`crate::channel`] and recorded (from, to, reason, actor, time) in
//! the same transaction as the state change.

use chrono::{DateTime, Utc};

use super::{Catalog, CatalogError, Result, ABS_COMPLETE, ABS_RUNNING};
use crate::channel::{self, ChannelKind, ChannelState};

/// The actor recorded for transitions the station makes on its own.
pub const STATION_ACTOR: &str = "control-station";

/// Reason recorded for the initial `→ requested` transition.
const REQUESTED_REASON: &str = "requested";

/// A channel with the names of what it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: i64,
    pub kind: ChannelKind,
    pub abs_id: i64,
    pub state: ChannelState,
    /// Why the channel is in its state (the last transition's reason).
    pub reason: String,
    pub fe_id: Option<i64>,
    pub fe_name: Option<String>,
    pub be_id: Option<i64>,
    pub be_name: Option<String>,
    pub drive_id: Option<i64>,
    pub drive_name: Option<String>,
    pub tape_id: Option<i64>,
    pub tape_label: Option<String>,
    pub bytes: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// One recorded transition of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    pub id: i64,
    pub channel_id: i64,
    /// `None` for the creation of the channel.
    pub from_state: Option<ChannelState>,
    pub to_state: ChannelState,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

struct RawChannel {
    id: i64,
    kind: String,
    abs_id: i64,
    state: String,
    reason: String,
    fe_id: Option<i64>,
    fe_name: Option<String>,
    be_id: Option<i64>,
    be_name: Option<String>,
    drive_id: Option<i64>,
    drive_name: Option<String>,
    tape_id: Option<i64>,
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
            kind: r.kind.parse()?,
            abs_id: r.abs_id,
            state: r.state.parse()?,
            reason: r.reason,
            fe_id: r.fe_id,
            fe_name: r.fe_name,
            be_id: r.be_id,
            be_name: r.be_name,
            drive_id: r.drive_id,
            drive_name: r.drive_name,
            tape_id: r.tape_id,
            tape_label: r.tape_label,
            bytes: r.bytes,
            created: r.created,
            updated: r.updated,
        })
    }
}

impl Catalog {
    /// Open a new channel of `kind` for an ABS, in state `requested`, and
    /// record its creation (a transition from nothing). A backup channel
    /// needs a running ABS, a restore channel a complete one.
    pub async fn create_channel(&self, kind: ChannelKind, abs_id: i64, actor: &str) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let abs_state = sqlx::query_scalar!("SELECT state FROM abs WHERE id = $1 FOR SHARE", abs_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("ABS", abs_id))?;
        let needed = match kind {
            ChannelKind::Backup => ABS_RUNNING,
            ChannelKind::Restore => ABS_COMPLETE,
        };
        if abs_state != needed {
            return Err(CatalogError::conflict(format!(
                "a {kind} channel needs a {needed} ABS; ABS {abs_id} is {abs_state}"
            )));
        }
        let state = ChannelState::Requested.as_str();
        let id = sqlx::query_scalar!(
            "INSERT INTO channels (kind, abs_id, state, reason) VALUES ($1, $2, $3, $4) RETURNING id",
            kind.as_str(),
            abs_id,
            state,
            REQUESTED_REASON
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO channel_transitions (channel_id, from_state, to_state, reason, actor)
             VALUES ($1, NULL, $2, $3, $4)",
            id,
            state,
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
        channel_id: i64,
        to: ChannelState,
        reason: &str,
        actor: &str,
    ) -> Result<ChannelState> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!("SELECT kind, state FROM channels WHERE id = $1 FOR UPDATE", channel_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("channel", channel_id))?;
        let kind: ChannelKind = row.kind.parse()?;
        let from: ChannelState = row.state.parse()?;
        channel::transition(kind, from, to).map_err(|e| CatalogError::illegal(channel_id, e))?;
        Self::apply_transition(&mut tx, channel_id, from, to, reason, actor).await?;
        tx.commit().await?;
        Ok(to)
    }

    async fn apply_transition(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        channel_id: i64,
        from: ChannelState,
        to: ChannelState,
        reason: &str,
        actor: &str,
    ) -> Result<()> {
        sqlx::query!(
            "UPDATE channels SET state = $2, reason = $3, updated = now() WHERE id = $1",
            channel_id,
            to.as_str(),
            reason
        )
        .execute(&mut **tx)
        .await?;
        sqlx::query!(
            "INSERT INTO channel_transitions (channel_id, from_state, to_state, reason, actor)
             VALUES ($1, $2, $3, $4, $5)",
            channel_id,
            from.as_str(),
            to.as_str(),
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
    pub async fn note_channel(&self, channel_id: i64, front_end: &str, note: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query!(
            r#"SELECT c.state, fe.name AS "fe_name?" FROM channels c
               LEFT JOIN movers fe ON fe.id = c.fe_id
               WHERE c.id = $1 FOR UPDATE OF c"#,
            channel_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::not_found("channel", channel_id))?;
        if row.fe_name.as_deref() != Some(front_end) {
            return Err(CatalogError::conflict(format!(
                "channel {channel_id} is not served by front-end {front_end}"
            )));
        }
        let state: ChannelState = row.state.parse()?;
        if state.is_terminal() {
            return Ok(false);
        }
        sqlx::query!(
            "INSERT INTO channel_transitions (channel_id, from_state, to_state, reason, actor)
             VALUES ($1, $2, $2, $3, $4)",
            channel_id,
            state.as_str(),
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
    pub async fn assign_channel(&self, channel_id: i64, fe: i64, be: i64, drive: i64, tape: Option<i64>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let state = sqlx::query_scalar!("SELECT state FROM channels WHERE id = $1 FOR UPDATE", channel_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogError::not_found("channel", channel_id))?;
        let state: ChannelState = state.parse()?;
        if state.is_terminal() {
            return Err(CatalogError::conflict(format!(
                "channel {channel_id} is {state}; cannot assign it"
            )));
        }
        let paired = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM mover_pairs WHERE fe_id = $1 AND be_id = $2) AS "e!""#,
            fe,
            be
        )
        .fetch_one(&mut *tx)
        .await?;
        if !paired {
            return Err(CatalogError::conflict(format!(
                "movers {fe} and {be} are not a registered front-end/back-end pair"
            )));
        }
        let owner = sqlx::query!("SELECT name, be_mover_id FROM drives WHERE id = $1", drive)
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
            sqlx::query_scalar!("SELECT id FROM tapes WHERE id = $1", t)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| CatalogError::not_found("tape", t))?;
        }
        sqlx::query!(
            "UPDATE channels SET fe_id = $2, be_id = $3, drive_id = $4, tape_id = $5, updated = now() WHERE id = $1",
            channel_id,
            fe,
            be,
            drive,
            tape
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Set (or clear) the tape a channel is on.
    pub async fn set_channel_tape(&self, channel_id: i64, tape: Option<i64>) -> Result<()> {
        if let Some(t) = tape {
            self.tape(t).await?.ok_or_else(|| CatalogError::not_found("tape", t))?;
        }
        let done = sqlx::query!(
            "UPDATE channels SET tape_id = $2, updated = now() WHERE id = $1",
            channel_id,
            tape
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("channel", channel_id));
        }
        Ok(())
    }

    /// Set the number of bytes a channel has moved so far.
    pub async fn set_channel_bytes(&self, channel_id: i64, bytes: i64) -> Result<()> {
        if bytes < 0 {
            return Err(CatalogError::invalid(format!("negative channel byte count {bytes}")));
        }
        let done = sqlx::query!(
            "UPDATE channels SET bytes = $2, updated = now() WHERE id = $1",
            channel_id,
            bytes
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("channel", channel_id));
        }
        Ok(())
    }

    pub async fn channel(&self, id: i64) -> Result<Option<ChannelRow>> {
        sqlx::query_as!(
            RawChannel,
            r#"SELECT c.id, c.kind, c.abs_id, c.state, c.reason,
                      c.fe_id, fe.name AS "fe_name?", c.be_id, be.name AS "be_name?",
                      c.drive_id, d.name AS "drive_name?", c.tape_id, t.label AS "tape_label?",
                      c.bytes, c.created, c.updated
               FROM channels c
               LEFT JOIN movers fe ON fe.id = c.fe_id
               LEFT JOIN movers be ON be.id = c.be_id
               LEFT JOIN drives d ON d.id = c.drive_id
               LEFT JOIN tapes t ON t.id = c.tape_id
               WHERE c.id = $1"#,
            id
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
            r#"SELECT c.id, c.kind, c.abs_id, c.state, c.reason,
                      c.fe_id, fe.name AS "fe_name?", c.be_id, be.name AS "be_name?",
                      c.drive_id, d.name AS "drive_name?", c.tape_id, t.label AS "tape_label?",
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
    pub async fn channel_history(&self, channel_id: i64) -> Result<Vec<TransitionRow>> {
        let rows = sqlx::query!(
            "SELECT id, channel_id, from_state, to_state, reason, actor, at FROM channel_transitions
             WHERE channel_id = $1 ORDER BY id",
            channel_id
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TransitionRow {
                    id: r.id,
                    channel_id: r.channel_id,
                    from_state: r.from_state.as_deref().map(str::parse).transpose()?,
                    to_state: r.to_state.parse()?,
                    reason: r.reason,
                    actor: r.actor,
                    at: r.at,
                })
            })
            .collect()
    }

    /// Move every open channel that uses `mover_id` (as front-end or
    /// back-end) to `error` for `reason`, recording each transition with
    /// actor [`STATION_ACTOR`], all in one transaction. Returns the ids of
    /// the channels failed.
    pub async fn fail_open_channels_of_mover(&self, mover_id: i64, reason: &str) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query!(
            "SELECT id, kind, state FROM channels
             WHERE (fe_id = $1 OR be_id = $1) AND state NOT IN ('closed', 'error')
             ORDER BY id
             FOR UPDATE",
            mover_id
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut failed = Vec::with_capacity(open.len());
        for row in open {
            let kind: ChannelKind = row.kind.parse()?;
            let from: ChannelState = row.state.parse()?;
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
    pub channels: Vec<i64>,
    /// ABSs that were running, now failed.
    pub abs: Vec<i64>,
}

impl Catalog {
    /// A station starting runs no channel yet: every channel still open in
    /// the catalog was left by an earlier start. End each in `error` for
    /// `reason` and fail each running ABS for it, in one transaction; every
    /// mover is offline until it registers again.
    pub async fn recover_at_start(&self, reason: &str) -> Result<Recovered> {
        let mut tx = self.pool.begin().await?;
        let open = sqlx::query!(
            "SELECT id, kind, state FROM channels WHERE state NOT IN ('closed', 'error') ORDER BY id FOR UPDATE"
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Recovered::default();
        for row in open {
            let kind: ChannelKind = row.kind.parse()?;
            let from: ChannelState = row.state.parse()?;
            channel::transition(kind, from, ChannelState::Error).map_err(|e| CatalogError::illegal(row.id, e))?;
            Self::apply_transition(&mut tx, row.id, from, ChannelState::Error, reason, STATION_ACTOR).await?;
            out.channels.push(row.id);
        }
        out.abs = sqlx::query_scalar!(
            "UPDATE abs SET state = 'failed', reason = $1, completed = now() WHERE state = 'running' RETURNING id",
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
    pub async fn open_channels(&self) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query!("SELECT id, abs_id FROM channels WHERE state NOT IN ('closed', 'error') ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.id, r.abs_id)).collect())
    }

    /// Running ABSs none of whose channels is open.
    pub async fn running_abs_without_channel(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar!(
            "SELECT a.id FROM abs a
             WHERE a.state = 'running'
               AND NOT EXISTS (SELECT 1 FROM channels c
                               WHERE c.abs_id = a.id AND c.state NOT IN ('closed', 'error'))
             ORDER BY a.id"
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
