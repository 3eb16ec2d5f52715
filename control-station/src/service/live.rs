//! What the station tells its operators as it happens: channel transitions
//! and progress, and notifications raised or acknowledged. One broadcast
//! bus; the web console streams it to each open page (Server-Sent Events).
//!
//! Transitions and notifications come from the catalog itself: its
//! triggers announce every new row on [`LIVE_CHANNEL`] at commit, whatever
//! code path wrote it, and [`follow`] reads the row and publishes it.
//! Progress comes from the movers' reports ([`Station::note`]). A
//! subscriber that falls behind, or a catalog connection that was lost,
//! gets [`LiveEvent::Resync`]: it reloads what it shows.

use std::sync::Arc;
use std::time::Duration;

use proto::domain::{AbsId, ChannelId, ChannelKind, ChannelState};
use serde::Serialize;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use super::Station;
use crate::catalog::{LiveTransition, NotificationRow, LIVE_CHANNEL};

/// Events a slow subscriber may fall behind by before it must resync.
pub(crate) const BUS_CAPACITY: usize = 4096;

/// One thing that happened, as the console receives it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A channel changed state (or noted something in its history).
    Transition(TransitionView),
    /// A running channel's bytes so far.
    Progress {
        channel_id: ChannelId,
        bytes: u64,
        at_ms: i64,
    },
    /// A notification was raised, or acknowledged.
    Notification(NotificationView),
    /// Events were missed: reload everything shown.
    Resync { why: String },
}

/// A channel transition as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransitionView {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    pub abs_id: AbsId,
    pub from: Option<ChannelState>,
    pub to: ChannelState,
    pub reason: String,
    pub actor: String,
    pub at_ms: i64,
}

impl From<LiveTransition> for TransitionView {
    fn from(t: LiveTransition) -> TransitionView {
        TransitionView {
            channel_id: t.channel_id,
            kind: t.kind,
            abs_id: t.abs_id,
            from: t.from_state,
            to: t.to_state,
            reason: t.reason,
            actor: t.actor,
            at_ms: t.at.timestamp_millis(),
        }
    }
}

/// A notification as the console and the webhook show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotificationView {
    pub id: i64,
    pub kind: proto::domain::NotificationKind,
    pub subject: String,
    pub message: String,
    pub channel_id: Option<ChannelId>,
    pub raised_ms: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
    /// Whether the webhook accepted it (always false without one).
    pub delivered: bool,
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl From<NotificationRow> for NotificationView {
    fn from(n: NotificationRow) -> NotificationView {
        NotificationView {
            id: n.id,
            kind: n.kind,
            subject: n.subject,
            message: n.message,
            channel_id: n.channel_id,
            raised_ms: n.raised.timestamp_millis(),
            acknowledged_by: n.acknowledged_by,
            acknowledged_ms: n.acknowledged.map(|t| t.timestamp_millis()),
            delivered: n.delivered.is_some(),
            attempts: n.attempts,
            last_error: n.last_error,
        }
    }
}

/// The bus.
pub struct Live {
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }
}

impl Live {
    pub fn publish(&self, ev: LiveEvent) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(ev);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What one announcement on [`LIVE_CHANNEL`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announced {
    Transition(i64),
    Notification(i64),
}

/// Parse an announcement (`transition:ID` or `notification:ID`); None for
/// anything else (ignored with a warning by the caller).
pub(crate) fn parse_announcement(payload: &str) -> Option<Announced> {
    let (what, id) = payload.split_once(':')?;
    let id: i64 = id.parse().ok()?;
    match what {
        "transition" => Some(Announced::Transition(id)),
        "notification" => Some(Announced::Notification(id)),
        _ => None,
    }
}

/// Follow the catalog's announcements for as long as the station runs,
/// publishing each announced row; the webhook sender is woken for every
/// notification. A lost connection is retried, and subscribers told to
/// resync since they may have missed something meanwhile.
pub(crate) async fn follow(st: Arc<Station>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match listen(&st).await {
            Ok(never) => match never {},
            Err(e) => {
                tracing::warn!(error = %e, "lost the catalog's live announcements; listening again");
                metrics::counter!("dmc_station_live_resyncs_total").increment(1);
                st.live.publish(LiveEvent::Resync {
                    why: format!("the station lost the catalog's announcements: {e}"),
                });
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

enum Never {}

async fn listen(st: &Arc<Station>) -> anyhow::Result<Never> {
    let mut listener = PgListener::connect_with(st.catalog.pool()).await?;
    listener.listen(LIVE_CHANNEL).await?;
    tracing::info!(channel = LIVE_CHANNEL, "following the catalog's live announcements");
    // Anything raised while nobody listened is delivered now.
    st.notifier.wake();
    loop {
        // `try_recv`: a lost connection is an error here, not a silent
        // reconnect that would hide missed announcements.
        let Some(n) = listener.try_recv().await? else {
            anyhow::bail!("the connection to the catalog closed");
        };
        match parse_announcement(n.payload()) {
            Some(Announced::Transition(id)) => match st.catalog.live_transition(id).await {
                Ok(Some(t)) => st.live.publish(LiveEvent::Transition(t.into())),
                Ok(None) => {}
                Err(e) => tracing::warn!(transition = id, error = %e, "announced transition not read"),
            },
            Some(Announced::Notification(id)) => {
                match st.catalog.notification(id).await {
                    Ok(Some(row)) => {
                        if row.acknowledged.is_none() && row.attempts == 0 {
                            metrics::counter!("dmc_station_notifications_total", "kind" => row.kind.as_str())
                                .increment(1);
                            tracing::warn!(notification = id, kind = %row.kind, subject = %row.subject,
                                message = %row.message, "operator notified");
                        }
                        st.live.publish(LiveEvent::Notification(row.into()));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(notification = id, error = %e, "announced notification not read"),
                }
                st.notifier.wake();
            }
            None => tracing::warn!(payload = n.payload(), "unknown live announcement ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse_or_are_ignored() {
        assert_eq!(parse_announcement("transition:42"), Some(Announced::Transition(42)));
        assert_eq!(parse_announcement("notification:7"), Some(Announced::Notification(7)));
        assert_eq!(parse_announcement("transition:"), None);
        assert_eq!(parse_announcement("transition:x"), None);
        assert_eq!(parse_announcement("other:1"), None);
        assert_eq!(parse_announcement("no colon"), None);
    }

    #[test]
    fn events_serialize_with_their_type() {
        let ev = LiveEvent::Progress {
            channel_id: ChannelId::new(3),
            bytes: 10,
            at_ms: 5,
        };
        let json = serde_json::to_value(&ev).expect("json");
        assert_eq!(json["type"], "progress");
        assert_eq!(json["channel_id"], 3);
        let ev = LiveEvent::Transition(TransitionView {
            channel_id: ChannelId::new(3),
            kind: ChannelKind::Backup,
            abs_id: AbsId::new(9),
            from: Some(ChannelState::Opened),
            to: ChannelState::BeginningOfTape,
            reason: "tape DM0001 mounted".into(),
            actor: "control-station".into(),
            at_ms: 1,
        });
        let json = serde_json::to_value(&ev).expect("json");
        assert_eq!(json["type"], "transition");
        assert_eq!(json["to"], "beginning_of_tape");
        assert_eq!(json["from"], "opened");
    }
}
