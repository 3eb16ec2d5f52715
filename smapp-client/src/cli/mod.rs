//! The `smapp` command line: its arguments ([`args`]) and one module per
//! command group, each a function per command.

pub mod args;
mod catalog;
mod definitions;
mod jobs;
mod listing;
mod operator;
mod progress;
mod tape;
mod versions;

use anyhow::Result;
use smapp_client::client::Client;

use args::{Args, Cmd};

/// Connect to the station as the global options say.
async fn connect(a: &Args) -> Result<Client> {
    Ok(Client::connect(&a.pki, &a.name, a.station, &a.station_name)
        .await?
        .with_timeout(a.timeout.map(std::time::Duration::from_secs)))
}

/// Run one command.
pub async fn run(a: Args) -> Result<()> {
    match &a.cmd {
        Cmd::Tape {
            cmd: args::TapeCmd::Audit { label },
        } => operator::audit(&a, label).await,
        Cmd::Tape {
            cmd: args::TapeCmd::Recover { label, drives },
        } => jobs::recover(&a, label, *drives).await,
        Cmd::Tape { cmd } => tape::tape(cmd, a.json),
        Cmd::Backup(b) => jobs::backup(&a, b).await,
        Cmd::Abs { cmd } => jobs::abs(&a, cmd).await,
        Cmd::Restore(r) => jobs::restore(&a, r).await,
        Cmd::Merge(m) => jobs::merge(&a, m).await,
        Cmd::Library { cmd } => operator::library(&a, cmd).await,
        Cmd::Pool { cmd } => operator::pool(&a, cmd).await,
        Cmd::Vpool { cmd } => versions::vpool(&a, cmd).await,
        Cmd::Versions { cmd } => versions::versions(&a, cmd).await,
        Cmd::List { what, abs } => catalog::list(&a, what, *abs).await,
        Cmd::Delete { abs, with_dependents } => catalog::delete(&a, *abs, *with_dependents).await,
        Cmd::Grant(g) => operator::grant(&a, g, true).await,
        Cmd::Revoke(g) => operator::grant(&a, g, false).await,
        Cmd::Grants => operator::grants(&a).await,
        Cmd::Health => catalog::health(&a).await,
        Cmd::Notifications { acknowledged, cmd } => {
            operator::notifications(
                &a,
                *acknowledged,
                cmd.as_ref().map(|args::NotificationsCmd::Ack { id }| *id),
            )
            .await
        }
        Cmd::Console { console, listen } => {
            smapp_client::console::run(smapp_client::console::ConsoleForward {
                pki: a.pki.clone(),
                name: a.name.clone(),
                console: *console,
                station_name: a.station_name.clone(),
                listen: *listen,
            })
            .await
        }
        Cmd::Define(d) => definitions::define(&a, d).await,
        Cmd::Definitions { cmd: None } => definitions::list(&a).await,
        Cmd::Definitions {
            cmd: Some(args::DefinitionsCmd::Run { definition }),
        } => definitions::run(&a, definition).await,
        Cmd::Undefine { definition } => definitions::undefine(&a, definition).await,
        Cmd::Agent { workdir } => definitions::agent(&a, workdir).await,
        Cmd::Channels { what, interval, count } => catalog::channels(&a, what.as_deref(), *interval, *count).await,
    }
}

#[cfg(test)]
mod tests;
