//! `smapp channels watch`: every channel, live — state, reason, pair, drive,
//! tape, bytes and rate — redrawn in place like `top`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use proto::domain::{ChannelId, ChannelState};
use proto::wire::{ChannelInfo, StationReply, StationRequest};

use crate::client::Client;

/// Rate of each channel between two samples.
#[derive(Default)]
pub struct Rates {
    last: HashMap<ChannelId, (u64, Instant)>,
}

impl Rates {
    /// Bytes per second of `c` since its previous sample (0 on the first).
    pub fn sample(&mut self, c: &ChannelInfo, now: Instant) -> f64 {
        let rate = match self.last.get(&c.channel_id) {
            Some((bytes, at)) if now > *at && c.bytes >= *bytes => {
                (c.bytes - bytes) as f64 / now.duration_since(*at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last.insert(c.channel_id, (c.bytes, now));
        rate
    }
}

fn is_active(state: ChannelState) -> bool {
    !state.is_terminal()
}

/// One screen: active channels first, then the most recent finished ones.
pub fn render(rows: &[ChannelInfo], rates: &mut Rates, now: Instant, recent: usize) -> String {
    let mut active: Vec<&ChannelInfo> = rows.iter().filter(|c| is_active(c.state)).collect();
    let mut done: Vec<&ChannelInfo> = rows.iter().filter(|c| !is_active(c.state)).collect();
    active.sort_by_key(|c| c.channel_id);
    done.sort_by_key(|c| std::cmp::Reverse(c.channel_id));
    done.truncate(recent);
    let mut out = format!(
        "{} channels: {} active, {} finished\n{:>5} {:<8} {:>5} {:<17} {:<8} {:<8} {:<8} {:<8} {:>10} {:>10}  reason\n",
        rows.len(),
        rows.iter().filter(|c| is_active(c.state)).count(),
        rows.iter().filter(|c| !is_active(c.state)).count(),
        "chan",
        "kind",
        "abs",
        "state",
        "fe",
        "be",
        "drive",
        "tape",
        "MiB",
        "MB/s"
    );
    for c in active.iter().chain(done.iter()) {
        let rate = rates.sample(c, now);
        out.push_str(&format!(
            "{:>5} {:<8} {:>5} {:<17} {:<8} {:<8} {:<8} {:<8} {:>10.1} {:>10.1}  {}\n",
            c.channel_id,
            c.kind,
            c.abs_id,
            c.state,
            c.front_end,
            c.back_end,
            c.drive,
            c.tape,
            c.bytes as f64 / 1048576.0,
            rate / 1e6,
            c.reason
        ));
    }
    out
}

/// Poll the station and redraw until interrupted (or `count` refreshes).
pub async fn run(client: &Client, interval: f64, count: Option<u64>, json: bool) -> Result<()> {
    if interval.is_nan() || interval <= 0.0 {
        bail!("--interval must be positive");
    }
    let mut rates = Rates::default();
    let mut n = 0u64;
    loop {
        let rows = match client.request(&StationRequest::Channels { channel_id: None }).await? {
            StationReply::Channels(rows) => rows,
            other => bail!("unexpected reply {other:?}"),
        };
        let now = Instant::now();
        let mut stdout = std::io::stdout().lock();
        if json {
            for c in &rows {
                let rate = rates.sample(c, now);
                writeln!(
                    stdout,
                    "{}",
                    serde_json::json!({"channel_id": c.channel_id.get(), "kind": c.kind.as_str(), "abs_id": c.abs_id.get(), "state": c.state.as_str(),
                        "reason": c.reason, "front_end": c.front_end, "back_end": c.back_end, "drive": c.drive,
                        "tape": c.tape, "bytes": c.bytes, "bytes_per_s": rate})
                )?;
            }
        } else {
            // Clear the screen and home the cursor, then draw.
            write!(stdout, "\x1b[2J\x1b[H{}", render(&rows, &mut rates, now, 10))?;
        }
        stdout.flush()?;
        drop(stdout);
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(interval)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(id: u64, state: ChannelState, bytes: u64) -> ChannelInfo {
        ChannelInfo {
            channel_id: ChannelId::new(id),
            kind: proto::domain::ChannelKind::Backup,
            abs_id: proto::domain::AbsId::new(id),
            state,
            reason: "r".into(),
            front_end: "fe1".into(),
            back_end: "be1".into(),
            drive: "drive0".into(),
            tape: "DM0001".into(),
            bytes,
            updated: String::new(),
        }
    }

    #[test]
    fn rates_come_from_byte_deltas() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        assert_eq!(r.sample(&ch(1, ChannelState::Writing, 0), t0), 0.0);
        let rate = r.sample(&ch(1, ChannelState::Writing, 10_000_000), t0 + Duration::from_secs(2));
        assert!((rate - 5_000_000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn active_channels_come_first_and_old_ones_are_trimmed() {
        let rows: Vec<ChannelInfo> = (1..=20)
            .map(|i| {
                let state = if i == 3 {
                    ChannelState::Writing
                } else {
                    ChannelState::Closed
                };
                ch(i, state, i * 1000)
            })
            .collect();
        let text = render(&rows, &mut Rates::default(), Instant::now(), 5);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("20 channels: 1 active, 19 finished"),
            "{}",
            lines[0]
        );
        assert!(lines[2].trim_start().starts_with("3 "), "active first: {}", lines[2]);
        assert_eq!(lines.len(), 2 + 1 + 5, "header, 1 active, 5 recent");
        assert!(
            lines[3].trim_start().starts_with("20 "),
            "newest finished next: {}",
            lines[3]
        );
    }
}
