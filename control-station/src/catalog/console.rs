//! What the operators' web console reads at once: the channels it shows
//! with their object, and their transitions, in two queries.

use chrono::{DateTime, Utc};
use proto::domain::{AbsId, ChannelId, ChannelKind, ChannelState, Level};

use super::{Catalog, Result, TransitionRow};

/// A channel with the names of what it uses and of what it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleChannelRow {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub abs_id: AbsId,
    pub state: ChannelState,
    pub reason: String,
    pub fe_name: Option<String>,
    pub be_name: Option<String>,
    pub drive_name: Option<String>,
    pub tape_label: Option<String>,
    pub bytes: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub object_name: String,
    pub primary_node: String,
    pub object_size: i64,
    /// The ABS's data bytes (what a restore of it moves; a running
    /// backup's count so far).
    pub data_bytes: i64,
    pub level: Level,
    pub pool: String,
}

impl Catalog {
    /// Every channel still running and the `ended` newest that ended (or
    /// channel `only`), newest first.
    pub async fn console_channels(&self, ended: i64, only: Option<ChannelId>) -> Result<Vec<ConsoleChannelRow>> {
        Ok(sqlx::query_as!(
            ConsoleChannelRow,
            r#"SELECT c.id AS "id!: ChannelId", c.kind AS "kind!: ChannelKind", c.abs_id AS "abs_id!: AbsId",
                      c.state AS "state!: ChannelState", c.reason AS "reason!",
                      fe.name AS "fe_name?", be.name AS "be_name?", d.name AS "drive_name?", t.label AS "tape_label?",
                      c.bytes AS "bytes!", c.created AS "created!", c.updated AS "updated!",
                      o.name AS "object_name!", n.name AS "primary_node!", a.object_size AS "object_size!", a.data_bytes AS "data_bytes!",
                      a.level AS "level!: Level", a.pool AS "pool!"
               FROM (SELECT id FROM channels WHERE $2::bigint IS NULL AND state NOT IN ('closed', 'error')
                     UNION
                     (SELECT id FROM channels WHERE $2::bigint IS NULL AND state IN ('closed', 'error')
                      ORDER BY id DESC LIMIT $1)
                     UNION
                     SELECT id FROM channels WHERE id = $2) shown
               JOIN channels c ON c.id = shown.id
               JOIN abs a ON a.id = c.abs_id
               JOIN logical_objects o ON o.id = a.object_id
               JOIN primary_nodes n ON n.id = o.primary_node_id
               LEFT JOIN movers fe ON fe.id = c.fe_id
               LEFT JOIN movers be ON be.id = c.be_id
               LEFT JOIN drives d ON d.id = c.drive_id
               LEFT JOIN tapes t ON t.id = c.tape_id
               ORDER BY c.id DESC"#,
            ended,
            only as _
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// For each drive, the seconds of the last `window` seconds during
    /// which at least one channel used it (channels interleaved on one
    /// tape count once), by drive name.
    pub async fn drive_busy_seconds(&self, window: f64) -> Result<Vec<(String, f64)>> {
        Ok(sqlx::query!(
            r#"WITH spans AS (
                   SELECT c.drive_id,
                          tstzrange(GREATEST(c.created, now() - make_interval(secs => $1)),
                                    CASE WHEN c.state IN ('closed', 'error') THEN c.updated ELSE now() END) AS r
                   FROM channels c
                   WHERE c.drive_id IS NOT NULL
                     AND (c.state NOT IN ('closed', 'error') OR c.updated > now() - make_interval(secs => $1))
               ), merged AS (
                   SELECT drive_id, range_agg(r) AS busy FROM spans WHERE NOT isempty(r) GROUP BY drive_id
               )
               SELECT d.name AS "name!",
                      COALESCE((SELECT SUM(EXTRACT(EPOCH FROM upper(x) - lower(x))) FROM unnest(m.busy) AS x), 0)::float8
                          AS "busy_seconds!"
               FROM drives d LEFT JOIN merged m ON m.drive_id = d.id
               ORDER BY d.name"#,
            window
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| (r.name, r.busy_seconds))
        .collect())
    }

    /// The transitions of channels `ids`, in order.
    pub async fn transitions_of(&self, ids: &[ChannelId]) -> Result<Vec<TransitionRow>> {
        let ids: Vec<i64> = ids
            .iter()
            .map(|id| id.to_i64())
            .collect::<std::result::Result<_, _>>()?;
        Ok(sqlx::query_as!(
            TransitionRow,
            r#"SELECT id, channel_id AS "channel_id: ChannelId", from_state AS "from_state: ChannelState",
                      to_state AS "to_state: ChannelState", reason, actor, at FROM channel_transitions
               WHERE channel_id = ANY($1) ORDER BY id"#,
            &ids
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
