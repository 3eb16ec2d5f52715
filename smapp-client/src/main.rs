//! `smapp`: back up and restore logical objects, list the catalog, watch
//! channels, inspect and verify tapes.

mod cli;

use clap::Parser;
use proto::domain::{Failure, FailureCode};
use smapp_client::client::failure_code;

use cli::args::Args;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // The agent is a service: it logs what it does.
    let level = if matches!(args.cmd, cli::args::Cmd::Agent { .. }) {
        "info"
    } else {
        "warn"
    };
    transport::telemetry::init_logging(level);
    let res = tokio::select! {
        r = cli::run(args) => r,
        // Dropping the command closes its connection: a job still waiting
        // for a drive is cancelled.
        _ = tokio::signal::ctrl_c() => {
            // The dropped command closed its connection; give the close a
            // moment to leave.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Err(anyhow::anyhow!(Failure::new(FailureCode::Cancelled, "interrupted")))
        }
    };
    if let Err(e) = res {
        eprintln!("smapp: error: {e:#}");
        std::process::exit(i32::from(failure_code(&e).exit_status()));
    }
}
