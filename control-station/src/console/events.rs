//! `GET /api/events`: the station's live bus as Server-Sent Events. Each
//! event's name is its type (`transition`, `progress`, `notification`,
//! `resync`) and its data the JSON of [`LiveEvent`]. The subscription is
//! taken before the response starts, so a page that loads its snapshot
//! after the stream opened misses nothing; a page that falls behind gets
//! `resync` and reloads its snapshot.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::ConsoleState;
use crate::service::live::LiveEvent;

fn name_of(ev: &LiveEvent) -> &'static str {
    match ev {
        LiveEvent::Transition(_) => "transition",
        LiveEvent::Progress { .. } => "progress",
        LiveEvent::Notification(_) => "notification",
        LiveEvent::Resync { .. } => "resync",
    }
}

fn sse(ev: &LiveEvent) -> Event {
    match Event::default().event(name_of(ev)).json_data(ev) {
        Ok(e) => e,
        Err(e) => Event::default()
            .event("resync")
            .data(format!("{{\"type\":\"resync\",\"why\":\"{e}\"}}")),
    }
}

pub async fn events(State(s): State<ConsoleState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.st.live.subscribe();
    metrics::gauge!("dmc_console_event_streams").increment(1.0);
    let guard = StreamGauge;
    let stream = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => LiveEvent::Resync {
                why: format!("this page fell {n} events behind"),
            },
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(sse(&ev)), (rx, guard)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Counts an open event stream for as long as it lives.
struct StreamGauge;

impl Drop for StreamGauge {
    fn drop(&mut self) {
        metrics::gauge!("dmc_console_event_streams").decrement(1.0);
    }
}
