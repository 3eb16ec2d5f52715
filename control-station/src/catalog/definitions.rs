//! Backup definitions and their runs (seed 002 FIG. 5, 10), and the notes
//! of a channel's history that are not state changes (a run's hooks).

use chrono::{DateTime, Utc};
use proto::abs::ObjectExtent;
use proto::domain::{AbsId, ChannelId, DefinitionId, HookPhase, Level, RunId, RunState};
use proto::wire::LogicalObject;

use super::{Catalog, CatalogError, Result};

/// A definition as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionRow {
    pub id: DefinitionId,
    pub name: String,
    /// Who defined it; `client_is_operator`: as an operator.
    pub client: String,
    pub client_is_operator: bool,
    pub host: String,
    pub primary_node: String,
    pub object_name: String,
    pub object: LogicalObject,
    pub level: Level,
    pub label: String,
    pub pool: Option<String>,
    /// Canonical spelling (parses as a `proto::domain::Schedule`).
    pub schedule: String,
    /// Empty: none.
    pub pre_command: String,
    pub post_command: String,
    pub hook_timeout_seconds: u32,
    pub created: DateTime<Utc>,
    pub next_due: DateTime<Utc>,
}

/// One run of a definition as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: RunId,
    pub due: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub state: RunState,
    pub abs_id: Option<AbsId>,
    pub channel_id: Option<ChannelId>,
    pub reason: String,
    pub pre_status: Option<i32>,
    pub pre_output: String,
    pub post_status: Option<i32>,
    pub post_output: String,
}

/// A note in a channel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNoteRow {
    pub actor: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// The object columns of a definition: a volume, or three extent arrays.
type ObjectColumns = (Option<String>, Option<Vec<String>>, Option<Vec<i64>>, Option<Vec<i64>>);

fn object_columns(object: &LogicalObject) -> Result<ObjectColumns> {
    Ok(match object {
        LogicalObject::Volume(v) => (Some(v.clone()), None, None, None),
        LogicalObject::Extents(e) => {
            let big =
                |v: u64| i64::try_from(v).map_err(|_| CatalogError::invalid(format!("extent value {v} is too large")));
            (
                None,
                Some(e.iter().map(|x| x.volume.clone()).collect()),
                Some(e.iter().map(|x| big(x.offset)).collect::<Result<_>>()?),
                Some(e.iter().map(|x| big(x.length)).collect::<Result<_>>()?),
            )
        }
    })
}

fn object_of(name: &str, cols: ObjectColumns) -> Result<LogicalObject> {
    let corrupt = || CatalogError::corrupt(format!("definition {name}: its object columns do not agree"));
    match cols {
        (Some(v), None, None, None) => Ok(LogicalObject::Volume(v)),
        (None, Some(vols), Some(offs), Some(lens)) if vols.len() == offs.len() && vols.len() == lens.len() => {
            let extents = vols
                .into_iter()
                .zip(offs)
                .zip(lens)
                .map(|((volume, o), l)| {
                    Ok(ObjectExtent {
                        volume,
                        offset: u64::try_from(o).map_err(|_| corrupt())?,
                        length: u64::try_from(l).map_err(|_| corrupt())?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(LogicalObject::Extents(extents))
        }
        _ => Err(corrupt()),
    }
}

fn timeout_of(name: &str, t: i32) -> Result<u32> {
    u32::try_from(t).map_err(|_| CatalogError::corrupt(format!("definition {name}: hook timeout {t}")))
}

impl Catalog {
    /// Store a new definition (`id` and `created` of `d` are ignored). A
    /// name in use is a conflict.
    pub async fn define(&self, d: &DefinitionRow) -> Result<DefinitionId> {
        let (volume, vols, offs, lens) = object_columns(&d.object)?;
        let timeout = i32::try_from(d.hook_timeout_seconds)
            .map_err(|_| CatalogError::invalid(format!("hook timeout {} s is too long", d.hook_timeout_seconds)))?;
        let role = if d.client_is_operator { "operator" } else { "client" };
        let r = sqlx::query_scalar!(
            r#"INSERT INTO definitions (name, client, client_role, host, primary_node, object_name, object_volume,
                                        extent_volumes, extent_offsets, extent_lengths, level, label, pool, schedule,
                                        pre_command, post_command, hook_timeout, next_due)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
               RETURNING id AS "id: DefinitionId""#,
            d.name,
            d.client,
            role,
            d.host,
            d.primary_node,
            d.object_name,
            volume,
            vols.as_deref(),
            offs.as_deref(),
            lens.as_deref(),
            d.level as _,
            d.label,
            d.pool,
            d.schedule,
            d.pre_command,
            d.post_command,
            timeout,
            d.next_due
        )
        .fetch_one(&self.pool)
        .await;
        match r {
            Ok(id) => Ok(id),
            Err(e) => {
                let e = CatalogError::from(e);
                if e.is_unique_violation() {
                    Err(CatalogError::conflict(format!(
                        "a definition named {} exists (smapp undefine {} first)",
                        d.name, d.name
                    )))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Remove definition `name` (its runs go with it; the ABSs they made
    /// stay). `owner`: only if that client defined it (None: anyone's).
    pub async fn undefine(&self, name: &str, owner: Option<&str>) -> Result<()> {
        let done = sqlx::query!(
            "DELETE FROM definitions WHERE name = $1 AND ($2::TEXT IS NULL OR client = $2)",
            name,
            owner
        )
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::not_found("definition", name));
        }
        Ok(())
    }

    /// Every definition (`owner`: only that client's), by name.
    pub async fn definitions(&self, owner: Option<&str>) -> Result<Vec<DefinitionRow>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id: DefinitionId", name, client, client_role, host, primary_node, object_name,
                      object_volume, extent_volumes, extent_offsets, extent_lengths, level AS "level: Level", label,
                      pool, schedule, pre_command, post_command, hook_timeout, created, next_due
               FROM definitions WHERE $1::TEXT IS NULL OR client = $1 ORDER BY name"#,
            owner
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let object = object_of(
                    &r.name,
                    (r.object_volume, r.extent_volumes, r.extent_offsets, r.extent_lengths),
                )?;
                Ok(DefinitionRow {
                    id: r.id,
                    hook_timeout_seconds: timeout_of(&r.name, r.hook_timeout)?,
                    name: r.name,
                    client: r.client,
                    client_is_operator: r.client_role == "operator",
                    host: r.host,
                    primary_node: r.primary_node,
                    object_name: r.object_name,
                    object,
                    level: r.level,
                    label: r.label,
                    pool: r.pool,
                    schedule: r.schedule,
                    pre_command: r.pre_command,
                    post_command: r.post_command,
                    created: r.created,
                    next_due: r.next_due,
                })
            })
            .collect()
    }

    /// Definition `name`.
    pub async fn definition_named(&self, name: &str) -> Result<DefinitionRow> {
        self.definitions(None)
            .await?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| CatalogError::not_found("definition", name))
    }

    /// Move definition `id`'s next slot from `due` to `next`: true if this
    /// caller did it (false: someone else already claimed the slot, or the
    /// definition is gone).
    pub async fn claim_slot(&self, id: DefinitionId, due: DateTime<Utc>, next: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query!(
            "UPDATE definitions SET next_due = $3 WHERE id = $1 AND next_due = $2",
            id as _,
            due,
            next
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Start a run of definition `id` for slot `due`; None when one is
    /// still running (a `skipped` run is recorded instead, naming it).
    pub async fn start_run(&self, id: DefinitionId, due: DateTime<Utc>) -> Result<Option<RunId>> {
        let mut tx = self.pool.begin().await?;
        let running = sqlx::query_scalar!(
            r#"SELECT id AS "id: RunId" FROM definition_runs WHERE definition_id = $1 AND state = 'running'
               FOR UPDATE"#,
            id as _
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = running {
            sqlx::query!(
                "INSERT INTO definition_runs (definition_id, due, state, finished, reason)
                 VALUES ($1, $2, 'skipped', now(), $3)",
                id as _,
                due,
                format!("run {other} was still going at this slot")
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(None);
        }
        let run = sqlx::query_scalar!(
            r#"INSERT INTO definition_runs (definition_id, due) VALUES ($1, $2) RETURNING id AS "id: RunId""#,
            id as _,
            due
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(run))
    }

    /// The ABS and channel run `run` backs up into.
    pub async fn run_attached(&self, run: RunId, abs_id: AbsId, channel_id: ChannelId) -> Result<()> {
        sqlx::query!(
            "UPDATE definition_runs SET abs_id = $2, channel_id = $3 WHERE id = $1",
            run as _,
            abs_id as _,
            channel_id as _
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How run `run`'s `phase` command ended (`status` None: killed or not
    /// run) and its output.
    pub async fn run_hook(&self, run: RunId, phase: HookPhase, status: Option<i32>, output: &str) -> Result<()> {
        let q = match phase {
            HookPhase::Pre => sqlx::query!(
                "UPDATE definition_runs SET pre_status = $2, pre_output = $3 WHERE id = $1",
                run as _,
                status,
                output
            ),
            HookPhase::Post => sqlx::query!(
                "UPDATE definition_runs SET post_status = $2, post_output = $3 WHERE id = $1",
                run as _,
                status,
                output
            ),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    /// Run `run` ended (`state` succeeded or failed, with `reason`).
    pub async fn finish_run(&self, run: RunId, state: RunState, reason: &str) -> Result<()> {
        sqlx::query!(
            "UPDATE definition_runs SET state = $2, reason = $3, finished = now() WHERE id = $1 AND state = 'running'",
            run as _,
            state as _,
            reason
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// At start: runs an earlier start of the station left running failed
    /// (their channels are recovered like any other). Returns how many.
    pub async fn fail_running_runs(&self, reason: &str) -> Result<u64> {
        let done = sqlx::query!(
            "UPDATE definition_runs SET state = 'failed', reason = $1, finished = now() WHERE state = 'running'",
            reason
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The latest `limit` runs of definition `id`, newest first.
    pub async fn runs_of(&self, id: DefinitionId, limit: i64) -> Result<Vec<RunRow>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id: RunId", due, started, finished, state AS "state: RunState",
                      abs_id AS "abs_id: AbsId", channel_id AS "channel_id: ChannelId", reason, pre_status,
                      pre_output, post_status, post_output
               FROM definition_runs WHERE definition_id = $1 ORDER BY id DESC LIMIT $2"#,
            id as _,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RunRow {
                id: r.id,
                due: r.due,
                started: r.started,
                finished: r.finished,
                state: r.state,
                abs_id: r.abs_id,
                channel_id: r.channel_id,
                reason: r.reason,
                pre_status: r.pre_status,
                pre_output: r.pre_output,
                post_status: r.post_status,
                post_output: r.post_output,
            })
            .collect())
    }

    /// Record that ABS `abs_id` was made by a run of definition `name`.
    pub async fn set_abs_definition(&self, abs_id: AbsId, name: &str) -> Result<()> {
        sqlx::query!("UPDATE abs SET definition = $2 WHERE id = $1", abs_id as _, name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Add a note to channel `channel_id`'s history.
    pub async fn channel_note(&self, channel_id: ChannelId, actor: &str, text: &str) -> Result<()> {
        sqlx::query!(
            "INSERT INTO channel_notes (channel_id, actor, text) VALUES ($1, $2, $3)",
            channel_id as _,
            actor,
            text
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Channel `channel_id`'s notes, in order.
    pub async fn channel_notes(&self, channel_id: ChannelId) -> Result<Vec<ChannelNoteRow>> {
        let rows = sqlx::query!(
            "SELECT actor, text, at FROM channel_notes WHERE channel_id = $1 ORDER BY id",
            channel_id as _
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ChannelNoteRow {
                actor: r.actor,
                text: r.text,
                at: r.at,
            })
            .collect())
    }
}
