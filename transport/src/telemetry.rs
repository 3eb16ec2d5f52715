//! Logs and metrics of every process, set up one way: logs to stderr with
//! `RUST_LOG` filtering (the process's default level otherwise), and an
//! optional Prometheus scrape endpoint (`--metrics ADDR`).

use std::net::SocketAddr;

use anyhow::Context;

/// Log to stderr; `RUST_LOG` overrides `default_filter` (e.g. `"info"`).
/// Colours only when stderr is a terminal: a log file holds plain text.
pub fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Serve the process's metrics for Prometheus at `addr` (`None`: metrics
/// are counted but not served).
pub fn serve_metrics(addr: Option<SocketAddr>) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("starting the metrics exporter on {addr}"))?;
    }
    Ok(())
}
