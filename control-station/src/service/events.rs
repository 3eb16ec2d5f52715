//! A running channel's client side: where its events go ([`EventSink`]),
//! how it waits ([`waiting`]), and the shell around its state machine
//! ([`LiveChannel`]): every transition is an input to the machine, whose
//! effects are performed here.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use proto::domain::{ChannelId, Failure, FailureCode};
use proto::wire::{ChannelEvent, StationReply};
use transport::FramedSend;

use super::Station;
use crate::catalog::{CatalogError, STATION_ACTOR};
use crate::channel::{Channel, ChannelInput, ChannelKind, Effect};

/// Where a channel's events go: the client's stream, or (for one drive of
/// a parallel restore) the task that merges the drives' events.
pub(crate) trait EventSink: Send {
    fn emit(&mut self, ev: ChannelEvent) -> impl std::future::Future<Output = ()> + Send;

    /// Emit `ev`; false when the client is gone (its stream failed).
    fn emit_checked(&mut self, ev: ChannelEvent) -> impl std::future::Future<Output = bool> + Send;
}

impl EventSink for FramedSend {
    async fn emit(&mut self, ev: ChannelEvent) {
        let _ = self.send(&StationReply::Event(ev)).await;
    }

    async fn emit_checked(&mut self, ev: ChannelEvent) -> bool {
        self.send(&StationReply::Event(ev)).await.is_ok()
    }
}

/// How often a client hears from a job that is waiting.
pub(crate) const PULSE: Duration = Duration::from_secs(3);

/// Whether a wait ends when its client goes away.
#[derive(Clone, Copy)]
pub(crate) enum Abandon<'a> {
    /// The job goes on without its client.
    Never,
    /// The job never started: a client gone (its connection closed, or an
    /// event it should get cannot be sent) cancels the wait.
    IfGone(Option<&'a quinn::Connection>),
}

/// Await `fut` while telling the client every [`PULSE`] what the channel
/// waits for; see [`Abandon`]. `fut` must be safe to drop at any await.
pub(crate) async fn waiting<T, E: EventSink>(
    sink: &mut E,
    what: &str,
    abandon: Abandon<'_>,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::pin!(fut);
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PULSE, PULSE);
    let gone = async {
        match abandon {
            Abandon::IfGone(Some(c)) => {
                c.closed().await;
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(gone);
    let cancelled = || {
        anyhow!(Failure::new(
            FailureCode::Cancelled,
            format!("the client went away while the job was waiting for {what}: cancelled before it started"),
        ))
    };
    loop {
        tokio::select! {
            r = &mut fut => return r,
            _ = &mut gone => return Err(cancelled()),
            _ = tick.tick() => {
                let ev = ChannelEvent::Waiting { what: what.to_string(), seconds: start.elapsed().as_secs() };
                if !sink.emit_checked(ev).await && matches!(abandon, Abandon::IfGone(_)) {
                    return Err(cancelled());
                }
            }
        }
    }
}

/// A channel the station runs: its catalog id and its state machine. Every
/// state change is an input to the machine; the effects it answers are
/// performed here (persisted, then told to the client), and the machine
/// keeps its new state only once they were.
#[derive(Debug, Clone)]
pub(crate) struct LiveChannel {
    id: ChannelId,
    machine: Channel,
}

impl LiveChannel {
    /// Channel `id` of `kind`, just created (`Requested`).
    pub(crate) fn new(id: ChannelId, kind: ChannelKind) -> LiveChannel {
        LiveChannel {
            id,
            machine: Channel::new(kind, "requested"),
        }
    }

    pub(crate) fn id(&self) -> ChannelId {
        self.id
    }

    /// Feed `input` to the machine and perform its effects.
    pub(crate) async fn step<E: EventSink>(&mut self, st: &Station, input: ChannelInput, sink: &mut E) -> Result<()> {
        let mut next = self.machine.clone();
        let effects = next.apply(input).map_err(|e| CatalogError::illegal(self.id, e))?;
        for effect in effects {
            match effect {
                Effect::Persist(t) => {
                    st.catalog.transition(self.id, t.to, &t.reason, STATION_ACTOR).await?;
                    tracing::info!(channel_id = %self.id, state = %t.to, reason = %t.reason, "channel transition");
                }
                Effect::Emit(ev) => sink.emit(ev).await,
            }
        }
        self.machine = next;
        Ok(())
    }

    /// The channel failed for `reason`: record `Error` unless it already
    /// ended (a failure to record it is logged: the job's failure is what
    /// the caller reports).
    pub(crate) async fn fail(&mut self, st: &Station, reason: &str) {
        let mut next = self.machine.clone();
        let effects = match next.apply(ChannelInput::Failed(reason.to_string())) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(channel_id = %self.id, error = %e, "channel failure not recorded");
                return;
            }
        };
        for effect in effects {
            if let Effect::Persist(t) = effect {
                if let Err(e) = st.catalog.transition(self.id, t.to, &t.reason, STATION_ACTOR).await {
                    tracing::warn!(channel_id = %self.id, error = %e, "could not record the channel's failure");
                    return;
                }
            }
        }
        self.machine = next;
    }
}
