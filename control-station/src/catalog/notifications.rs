//! Operators' notifications (migration 0016) and the rows the station
//! reads to push the console live. A channel entering `error` raises its
//! notification in the catalog itself (a trigger, in the transition's
//! transaction); the station raises the others here. Each is raised once
//! (`key`), shown until acknowledged, and delivered to the webhook.

use chrono::{DateTime, Utc};
use proto::domain::{AbsId, ChannelId, ChannelKind, ChannelState, NotificationKind};

use super::{Catalog, Result};

/// The channel `dmc_live` carries `transition:ID` and `notification:ID`.
pub const LIVE_CHANNEL: &str = "dmc_live";

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    pub id: i64,
    pub key: String,
    pub kind: NotificationKind,
    pub subject: String,
    pub message: String,
    pub channel_id: Option<ChannelId>,
    pub raised: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub acknowledged: Option<DateTime<Utc>>,
    pub delivered: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// A recorded transition with what the console shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTransition {
    pub id: i64,
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    pub abs_id: AbsId,
    pub from_state: Option<ChannelState>,
    pub to_state: ChannelState,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

impl Catalog {
    /// Raise a notification unless one with `key` is open (raised and not
    /// acknowledged). Returns the new one, or None when one was open.
    pub async fn raise_notification(
        &self,
        key: &str,
        kind: NotificationKind,
        subject: &str,
        message: &str,
        channel_id: Option<ChannelId>,
    ) -> Result<Option<NotificationRow>> {
        Ok(sqlx::query_as!(
            NotificationRow,
            r#"INSERT INTO notifications (key, kind, subject, message, channel_id)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (key) WHERE acknowledged IS NULL DO NOTHING
               RETURNING id, key, kind AS "kind: NotificationKind", subject, message,
                         channel_id AS "channel_id: ChannelId", raised, acknowledged_by, acknowledged,
                         delivered, attempts, last_error"#,
            key,
            kind as _,
            subject,
            message,
            channel_id as _
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn notification(&self, id: i64) -> Result<Option<NotificationRow>> {
        Ok(sqlx::query_as!(
            NotificationRow,
            r#"SELECT id, key, kind AS "kind: NotificationKind", subject, message,
                      channel_id AS "channel_id: ChannelId", raised, acknowledged_by, acknowledged,
                      delivered, attempts, last_error
               FROM notifications WHERE id = $1"#,
            id
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every unacknowledged notification and the `recent` newest
    /// acknowledged ones, newest first.
    pub async fn notifications(&self, recent: i64) -> Result<Vec<NotificationRow>> {
        Ok(sqlx::query_as!(
            NotificationRow,
            r#"SELECT id AS "id!", key AS "key!", kind AS "kind!: NotificationKind", subject AS "subject!",
                      message AS "message!", channel_id AS "channel_id: ChannelId", raised AS "raised!",
                      acknowledged_by, acknowledged, delivered, attempts AS "attempts!", last_error
               FROM (SELECT * FROM notifications WHERE acknowledged IS NULL
                     UNION ALL
                     (SELECT * FROM notifications WHERE acknowledged IS NOT NULL ORDER BY id DESC LIMIT $1)) n
               ORDER BY id DESC"#,
            recent
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Acknowledge notification `id` on behalf of `by`. Returns false when
    /// there is no such notification or it was acknowledged already.
    pub async fn acknowledge_notification(&self, id: i64, by: &str) -> Result<bool> {
        let done = sqlx::query!(
            "UPDATE notifications SET acknowledged_by = $2, acknowledged = now()
             WHERE id = $1 AND acknowledged IS NULL",
            id,
            by
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notifications the webhook has not accepted yet, oldest first.
    pub async fn undelivered_notifications(&self, limit: i64) -> Result<Vec<NotificationRow>> {
        Ok(sqlx::query_as!(
            NotificationRow,
            r#"SELECT id, key, kind AS "kind: NotificationKind", subject, message,
                      channel_id AS "channel_id: ChannelId", raised, acknowledged_by, acknowledged,
                      delivered, attempts, last_error
               FROM notifications WHERE delivered IS NULL ORDER BY id LIMIT $1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Record one delivery attempt of notification `id`: accepted (`error`
    /// None) or failed with `error`.
    pub async fn record_delivery(&self, id: i64, error: Option<&str>) -> Result<()> {
        sqlx::query!(
            "UPDATE notifications
             SET attempts = attempts + 1,
                 delivered = CASE WHEN $2::text IS NULL THEN now() ELSE NULL END,
                 last_error = $2
             WHERE id = $1",
            id,
            error
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Transition `id` with its channel's kind and ABS.
    pub async fn live_transition(&self, id: i64) -> Result<Option<LiveTransition>> {
        Ok(sqlx::query_as!(
            LiveTransition,
            r#"SELECT t.id, t.channel_id AS "channel_id: ChannelId", c.kind AS "kind: ChannelKind",
                      c.abs_id AS "abs_id: AbsId", t.from_state AS "from_state: ChannelState",
                      t.to_state AS "to_state: ChannelState", t.reason, t.actor, t.at
               FROM channel_transitions t JOIN channels c ON c.id = t.channel_id
               WHERE t.id = $1"#,
            id
        )
        .fetch_optional(&self.pool)
        .await?)
    }
}
