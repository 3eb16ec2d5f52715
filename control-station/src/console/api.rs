//! The console's JSON API under `/api/`: what the page shows, and what
//! scripts can read too. Every route sits behind [`super::auth`].
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/channels` | running channels and the newest ended ones, with their transitions |
//! | `GET /api/channels/{id}` | one channel, with its transitions |
//! | `GET /api/machines` | the state machine of each channel kind (states, edges) |
//! | `GET /api/library` | slots, drives (tape, use, channels), tapes, pools |
//! | `GET /api/abs?q=TEXT&limit=N` | ABSs matching TEXT (id, object, node, label, level, pool, tape, uuid) |
//! | `GET /api/abs/{id}` | one ABS and its segments (copies too) along its tapes |
//! | `GET /api/peers` | health, movers, primary nodes, and the channels each takes part in |
//! | `GET /api/notifications` | unacknowledged notifications and the newest acknowledged |
//! | `POST /api/notifications/{id}/ack` | acknowledge one |
//! | `POST /api/library/label` | `{"pool": P?, "count": N}`: label N scratch tapes |
//! | `POST /api/library/export` | `{"label": L, "to_dir": D}`: take a tape out of the library |
//! | `POST /api/library/import` | `{"paths": [...], "pool": P?}`: bring tape images in |
//! | `GET /api/events` | Server-Sent Events: see [`super::events`] |
//!
//! Errors are `{"code": …, "message": …}` with the failure code of the
//! station's wire protocol and a matching HTTP status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use proto::domain::{AbsId, ChannelId, ChannelKind, ChannelState, FailureCode, Level};
use proto::wire::{AbsInfo, HealthInfo, MoverInfo, PoolInfo, SegmentInfo, TapeInfo};
use serde::{Deserialize, Serialize};

use super::auth::Operator;
use super::ConsoleState;
use crate::catalog::ConsoleChannelRow;
use crate::channel::transition_table;
use crate::service::live::{NotificationView, TransitionView};
use crate::service::registry::DriveUse;
use crate::service::{failure_of, library_admin, listing, recovery, Station};

/// Ended channels the channel list shows beside the running ones.
const ENDED_SHOWN: i64 = 50;
/// The window of a drive's busy share, seconds (an hour).
const BUSY_WINDOW: f64 = 3600.0;
/// ABSs one search answers with at most.
const ABS_SHOWN: usize = 500;

/// A failure as the API answers it.
pub struct ApiError(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let failure = failure_of(&self.0);
        let status = match failure.code {
            FailureCode::Refused => StatusCode::FORBIDDEN,
            FailureCode::NotFound => StatusCode::NOT_FOUND,
            FailureCode::Invalid => StatusCode::BAD_REQUEST,
            FailureCode::Conflict | FailureCode::Cancelled => StatusCode::CONFLICT,
            FailureCode::Retryable => StatusCode::SERVICE_UNAVAILABLE,
            FailureCode::Corrupt | FailureCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(serde_json::json!({ "code": failure.code, "message": failure.message })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A channel as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    pub abs_id: AbsId,
    pub state: ChannelState,
    pub reason: String,
    pub front_end: Option<String>,
    pub back_end: Option<String>,
    pub drive: Option<String>,
    pub tape: Option<String>,
    pub bytes: u64,
    /// What the channel will have moved when done, where known (a full
    /// backup: the object's size; a restore: the ABS's data).
    pub expected_bytes: Option<u64>,
    pub object_name: String,
    pub primary: String,
    pub level: Level,
    pub pool: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub transitions: Vec<TransitionView>,
}

fn channel_view(row: ConsoleChannelRow, transitions: Vec<TransitionView>) -> ChannelView {
    let expected_bytes = match (row.kind, row.level) {
        (ChannelKind::Backup, Level::Full) => Some(to_u64(row.object_size)),
        (ChannelKind::Restore, _) => Some(to_u64(row.data_bytes)),
        _ => None,
    };
    ChannelView {
        channel_id: row.id,
        kind: row.kind,
        abs_id: row.abs_id,
        state: row.state,
        reason: row.reason,
        front_end: row.fe_name,
        back_end: row.be_name,
        drive: row.drive_name,
        tape: row.tape_label,
        bytes: to_u64(row.bytes),
        expected_bytes,
        object_name: row.object_name,
        primary: row.primary_node,
        level: row.level,
        pool: row.pool,
        created_ms: row.created.timestamp_millis(),
        updated_ms: row.updated.timestamp_millis(),
        transitions,
    }
}

/// The channels shown (or channel `only`), each with its transitions.
pub async fn channel_views(st: &Arc<Station>, only: Option<ChannelId>) -> anyhow::Result<Vec<ChannelView>> {
    let rows = st.catalog.console_channels(ENDED_SHOWN, only).await?;
    let ids: Vec<ChannelId> = rows.iter().map(|r| r.id).collect();
    let mut by_channel: HashMap<ChannelId, Vec<TransitionView>> = HashMap::new();
    let kinds: HashMap<ChannelId, (ChannelKind, AbsId)> = rows.iter().map(|r| (r.id, (r.kind, r.abs_id))).collect();
    for t in st.catalog.transitions_of(&ids).await? {
        let Some(&(kind, abs_id)) = kinds.get(&t.channel_id) else {
            continue;
        };
        by_channel.entry(t.channel_id).or_default().push(TransitionView {
            channel_id: t.channel_id,
            kind,
            abs_id,
            from: t.from_state,
            to: t.to_state,
            reason: t.reason,
            actor: t.actor,
            at_ms: t.at.timestamp_millis(),
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let ts = by_channel.remove(&r.id).unwrap_or_default();
            channel_view(r, ts)
        })
        .collect())
}

pub async fn channels(State(s): State<ConsoleState>) -> ApiResult<Vec<ChannelView>> {
    Ok(Json(channel_views(&s.st, None).await?))
}

pub async fn channel(State(s): State<ConsoleState>, Path(id): Path<u64>) -> ApiResult<ChannelView> {
    let id = ChannelId::new(id);
    let view = channel_views(&s.st, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!(proto::domain::Failure::not_found(format!("no channel {id}"))))?;
    Ok(Json(view))
}

/// One channel kind's state machine, for drawing.
#[derive(Debug, Clone, Serialize)]
pub struct MachineView {
    pub kind: ChannelKind,
    /// Its states along the main path, then the terminal error.
    pub states: Vec<ChannelState>,
    pub edges: Vec<(ChannelState, ChannelState)>,
}

/// The machines of every channel kind, from the transition tables the
/// station enforces.
pub fn machine_views() -> Vec<MachineView> {
    ChannelKind::ALL
        .iter()
        .map(|&kind| {
            let edges = transition_table(kind).to_vec();
            let mut states = Vec::new();
            for (from, to) in &edges {
                for s in [*from, *to] {
                    if !states.contains(&s) {
                        states.push(s);
                    }
                }
            }
            // Closed is drawn last on the main path, Error below it.
            states.retain(|s| *s != ChannelState::Closed);
            states.push(ChannelState::Closed);
            states.push(ChannelState::Error);
            MachineView { kind, states, edges }
        })
        .collect()
}

pub async fn machines() -> Json<Vec<MachineView>> {
    Json(machine_views())
}

/// A drive as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DriveView {
    pub name: String,
    pub back_end: String,
    pub tape: Option<String>,
    /// `idle`, `reading`, `writing`, `mounting` (a backup's first tape
    /// on its way) or `closing` (its tape being finished).
    pub activity: &'static str,
    /// Running channels using it.
    pub channels: Vec<ChannelId>,
    /// Share of the last hour it spent on channels (0 to 1).
    pub busy_share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LibraryView {
    pub slots: u32,
    /// Tapes in the library's slots or drives.
    pub in_library: usize,
    pub drives: Vec<DriveView>,
    pub tapes: Vec<TapeInfo>,
    pub pools: Vec<PoolInfo>,
}

pub async fn library(State(s): State<ConsoleState>) -> ApiResult<LibraryView> {
    let st = &s.st;
    let movers: HashMap<_, String> = st
        .catalog
        .list_movers()
        .await?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    let uses = st.drive_use.lock().await.clone();
    let running: Vec<_> = st
        .catalog
        .list_channels()
        .await?
        .into_iter()
        .filter(|c| !c.state.is_terminal())
        .collect();
    let busy: HashMap<String, f64> = st.catalog.drive_busy_seconds(BUSY_WINDOW).await?.into_iter().collect();
    let drives = st
        .catalog
        .list_drives()
        .await?
        .into_iter()
        .map(|d| {
            let activity = match uses.get(&d.id) {
                None => "idle",
                Some(DriveUse::Reading) => "reading",
                Some(DriveUse::Writing { closing: true, .. }) => "closing",
                Some(DriveUse::Writing { tape: None, .. }) => "mounting",
                Some(DriveUse::Writing { .. }) => "writing",
            };
            DriveView {
                channels: running
                    .iter()
                    .filter(|c| c.drive_id == Some(d.id))
                    .map(|c| c.id)
                    .collect(),
                back_end: movers.get(&d.be_mover_id).cloned().unwrap_or_default(),
                busy_share: (busy.get(&d.name).copied().unwrap_or(0.0) / BUSY_WINDOW).clamp(0.0, 1.0),
                name: d.name,
                tape: d.tape_label,
                activity,
            }
        })
        .collect();
    let tapes = listing::tapes(st).await?;
    let in_library = tapes
        .iter()
        .filter(|t| t.location == proto::domain::TapeLocation::Library)
        .count();
    Ok(Json(LibraryView {
        slots: st.cfg.slots,
        in_library,
        drives,
        tapes,
        pools: listing::pools(st).await?,
    }))
}

#[derive(Debug, Deserialize)]
pub struct AbsQuery {
    #[serde(default)]
    pub q: String,
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct AbsSearch {
    /// ABSs matching, before the limit.
    pub matching: usize,
    pub abs: Vec<AbsInfo>,
}

/// Whether `a` matches every word of `q` (case-insensitive) in one of its
/// id, object, node, label, level, kind, state, pool, tapes, copies, uuid.
pub fn abs_matches(a: &AbsInfo, q: &str) -> bool {
    let hay = format!(
        "{} {} {} {} {} {} {} {} {} {} {}",
        a.abs_id,
        a.object_name,
        a.primary,
        a.label,
        a.level,
        a.kind,
        a.state,
        a.pool,
        a.tapes.join(" "),
        a.copies.join(" "),
        a.uuid
    )
    .to_lowercase();
    q.split_whitespace().all(|w| hay.contains(&w.to_lowercase()))
}

pub async fn abs_search(State(s): State<ConsoleState>, Query(q): Query<AbsQuery>) -> ApiResult<AbsSearch> {
    let mut all = listing::abs(&s.st).await?;
    all.retain(|a| abs_matches(a, &q.q));
    all.reverse(); // newest first
    let matching = all.len();
    all.truncate(q.limit.unwrap_or(ABS_SHOWN).min(ABS_SHOWN));
    Ok(Json(AbsSearch { matching, abs: all }))
}

#[derive(Debug, Serialize)]
pub struct AbsDetail {
    pub abs: AbsInfo,
    /// Its segments and their copies, by tape then file.
    pub segments: Vec<SegmentInfo>,
    /// Its chain, oldest first (a differential's full and the
    /// differentials between), ending with itself.
    pub chain: Vec<AbsId>,
}

pub async fn abs_detail(State(s): State<ConsoleState>, Path(id): Path<u64>) -> ApiResult<AbsDetail> {
    let id = AbsId::new(id);
    let all = listing::abs(&s.st).await?;
    let by_id: BTreeMap<AbsId, &AbsInfo> = all.iter().map(|a| (a.abs_id, a)).collect();
    let abs = by_id
        .get(&id)
        .map(|a| (*a).clone())
        .ok_or_else(|| anyhow::anyhow!(proto::domain::Failure::not_found(format!("no ABS {id}"))))?;
    let mut chain = vec![id];
    let mut at = abs.base_abs_id;
    while let Some(b) = at {
        if chain.contains(&b) || chain.len() > 10_000 {
            break;
        }
        chain.push(b);
        at = by_id.get(&b).and_then(|a| a.base_abs_id);
    }
    chain.reverse();
    let mut segments = listing::segments(&s.st, Some(id)).await?;
    segments.sort_by(|a, b| (&a.tape_label, a.tape_file, a.seq).cmp(&(&b.tape_label, b.tape_file, b.seq)));
    Ok(Json(AbsDetail { abs, segments, chain }))
}

#[derive(Debug, Serialize)]
pub struct PrimaryView {
    pub name: String,
    pub volumes: Vec<String>,
    pub target_volumes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PeersView {
    /// The station's own version.
    pub station_version: &'static str,
    pub health: HealthInfo,
    pub movers: Vec<MoverInfo>,
    pub primaries: Vec<PrimaryView>,
    /// The running channels each peer takes part in.
    pub channels: BTreeMap<String, Vec<ChannelId>>,
}

pub async fn peers(State(s): State<ConsoleState>) -> ApiResult<PeersView> {
    let st = &s.st;
    let health = recovery::health(st).await;
    let movers = listing::movers(st).await?;
    let mut primaries: Vec<PrimaryView> = st
        .registry
        .lock()
        .await
        .primaries
        .iter()
        .map(|(name, p)| PrimaryView {
            name: name.clone(),
            volumes: p.volumes.iter().map(|v| v.name.clone()).collect(),
            target_volumes: p.targets.iter().map(|t| t.volume.clone()).collect(),
        })
        .collect();
    primaries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut channels: BTreeMap<String, Vec<ChannelId>> = BTreeMap::new();
    for (id, names) in st.channel_peers.lock().await.iter() {
        for n in names {
            channels.entry(n.clone()).or_default().push(*id);
        }
    }
    for ids in channels.values_mut() {
        ids.sort();
    }
    Ok(Json(PeersView {
        station_version: env!("CARGO_PKG_VERSION"),
        health,
        movers,
        primaries,
        channels,
    }))
}

pub async fn notifications(State(s): State<ConsoleState>) -> ApiResult<Vec<NotificationView>> {
    Ok(Json(
        s.st.catalog
            .notifications(crate::service::notify::ACKNOWLEDGED_SHOWN)
            .await?
            .into_iter()
            .map(NotificationView::from)
            .collect(),
    ))
}

pub async fn acknowledge(
    State(s): State<ConsoleState>,
    Extension(op): Extension<Operator>,
    Path(id): Path<i64>,
) -> ApiResult<NotificationView> {
    let row = crate::service::notify::acknowledge(&s.st, id, &op.0).await?;
    Ok(Json(row.into()))
}

#[derive(Debug, Deserialize)]
pub struct LabelRequest {
    pub pool: Option<String>,
    pub count: u32,
}

pub async fn label(
    State(s): State<ConsoleState>,
    Extension(op): Extension<Operator>,
    Json(r): Json<LabelRequest>,
) -> ApiResult<Vec<TapeInfo>> {
    let st = &s.st;
    let pool = r.pool.unwrap_or_else(|| st.cfg.pool.clone());
    tracing::info!(operator = %op.0, %pool, count = r.count, "console: label tapes");
    let labels = library_admin::label(st, &pool, r.count).await?;
    Ok(Json(listing::tapes_named(st, &labels).await?))
}

#[derive(Debug, Deserialize)]
pub struct ExportRequest {
    pub label: String,
    pub to_dir: String,
}

pub async fn export(
    State(s): State<ConsoleState>,
    Extension(op): Extension<Operator>,
    Json(r): Json<ExportRequest>,
) -> ApiResult<Vec<TapeInfo>> {
    let st = &s.st;
    tracing::info!(operator = %op.0, label = %r.label, to_dir = %r.to_dir, "console: export tape");
    library_admin::export(st, &r.label, &r.to_dir).await?;
    Ok(Json(listing::tapes_named(st, std::slice::from_ref(&r.label)).await?))
}

#[derive(Debug, Deserialize)]
pub struct ImportRequest {
    pub paths: Vec<String>,
    pub pool: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImportView {
    pub tapes: Vec<TapeInfo>,
    pub notes: Vec<String>,
}

pub async fn import(
    State(s): State<ConsoleState>,
    Extension(op): Extension<Operator>,
    Json(r): Json<ImportRequest>,
) -> ApiResult<ImportView> {
    let st = &s.st;
    let pool = r.pool.unwrap_or_else(|| st.cfg.pool.clone());
    tracing::info!(operator = %op.0, paths = r.paths.len(), %pool, "console: import tapes");
    let done = library_admin::import(st, &r.paths, &pool).await?;
    Ok(Json(ImportView {
        tapes: listing::tapes_named(st, &done.labels).await?,
        notes: done.notes,
    }))
}

/// `text` safe inside HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_follow_the_transition_tables() {
        let ms = machine_views();
        assert_eq!(ms.len(), ChannelKind::ALL.len());
        for m in &ms {
            assert_eq!(m.states.first(), Some(&ChannelState::Requested));
            assert_eq!(m.states.last(), Some(&ChannelState::Error));
            assert_eq!(m.states[m.states.len() - 2], ChannelState::Closed);
            assert_eq!(m.edges, transition_table(m.kind).to_vec());
            for (a, b) in &m.edges {
                assert!(m.states.contains(a) && m.states.contains(b));
            }
            assert!(m.states.contains(&m.kind.streaming_state()));
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
