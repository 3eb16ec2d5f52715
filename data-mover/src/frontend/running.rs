//! The channels whose streams run in this front-end, each with the token
//! the station's `AbortChannel` cancels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proto::domain::ChannelId;
use tokio_util::sync::CancellationToken;

/// Running channels, by ID.
#[derive(Default)]
pub struct Running {
    tokens: Mutex<HashMap<ChannelId, CancellationToken>>,
}

/// A channel's stream running in this mover; dropping it forgets the channel.
pub struct RunningChannel {
    running: Arc<Running>,
    channel_id: ChannelId,
    pub token: CancellationToken,
}

impl Drop for RunningChannel {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.tokens.lock() {
            r.remove(&self.channel_id);
        }
    }
}

impl Running {
    /// Note that channel `channel_id`'s stream runs here until the guard
    /// is dropped.
    pub fn start(self: &Arc<Self>, channel_id: ChannelId) -> RunningChannel {
        let token = CancellationToken::new();
        if let Ok(mut r) = self.tokens.lock() {
            r.insert(channel_id, token.clone());
        }
        RunningChannel {
            running: self.clone(),
            channel_id,
            token,
        }
    }

    /// Stop channel `channel_id`'s stream, if it runs here.
    pub fn cancel(&self, channel_id: ChannelId) {
        if let Some(t) = self.tokens.lock().ok().and_then(|r| r.get(&channel_id).cloned()) {
            t.cancel();
        }
    }

    /// The running channels.
    pub fn ids(&self) -> Vec<ChannelId> {
        self.tokens
            .lock()
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_runs_until_its_guard_is_dropped_and_cancel_reaches_it() {
        let running = Arc::new(Running::default());
        let (a, b) = (ChannelId::new(1), ChannelId::new(2));
        let ga = running.start(a);
        let gb = running.start(b);
        let mut ids = running.ids();
        ids.sort_unstable();
        assert_eq!(ids, vec![a, b]);
        running.cancel(a);
        assert!(ga.token.is_cancelled());
        assert!(!gb.token.is_cancelled());
        drop(ga);
        assert_eq!(running.ids(), vec![b]);
        // Cancelling a channel that is not running is a no-op.
        running.cancel(a);
        drop(gb);
        assert!(running.ids().is_empty());
    }
}
