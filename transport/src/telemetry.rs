//! Logs and metrics of every process, set up one way: logs to stderr with
//! `RUST_LOG` filtering (the process's default level otherwise), as text or
//! as JSON lines (`--log-format json`: one object per event, with the
//! fields of every span it happened in, e.g. `channel_id` and `abs_id`, so
//! one job can be followed through every process's logs), and an optional
//! Prometheus scrape endpoint (`--metrics ADDR`).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use anyhow::Context;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For people: one line per event, spans as `name{field=value}:`.
    #[default]
    Text,
    /// For machines: one JSON object per line (`timestamp`, `level`,
    /// `fields`, `target`, `span`, `spans`).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: expected text or json")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Log to stderr as text; `RUST_LOG` overrides `default_filter` (e.g.
/// `"info"`). Colours only when stderr is a terminal: a log file holds
/// plain text.
pub fn init_logging(default_filter: &str) {
    init_logging_as(default_filter, LogFormat::Text);
}

/// [`init_logging`] in `format`.
pub fn init_logging_as(default_filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
}

/// Bucket bounds of every `*_seconds` histogram: from half a millisecond
/// (an NBD write, a track's acknowledgement on loopback) to five minutes
/// (a mount waiting for a robot, a restore's first byte behind a long
/// tape position).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Serve the process's metrics for Prometheus at `addr` (`None`: metrics
/// are counted but not served). Histograms named `*_seconds` are
/// Prometheus histograms with [`SECONDS_BUCKETS`].
pub fn serve_metrics(addr: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".to_string()),
                SECONDS_BUCKETS,
            )
            .context("histogram buckets")?
            .install()
            .with_context(|| format!("starting the metrics exporter on {addr}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_print() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
        assert!("yaml".parse::<LogFormat>().is_err());
        assert!(SECONDS_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
