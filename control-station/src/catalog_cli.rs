//! `control-station catalog backup|restore|rebuild`: what an operator runs.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use control_station::catalog_restore::{self, RestoreOptions};
use control_station::rebuild::{self, RebuildOptions};
use proto::wire::{ChannelEvent, StationReply, StationRequest, MAX_CONTROL_FRAME};
use transport::{Identity, Role};

/// Ask the running station for a catalog backup to `pool` and follow it
/// to its end, one line per event on standard error.
pub async fn backup(pki: &Path, name: &str, station: SocketAddr, station_name: &str, pool: &str) -> Result<()> {
    let identity =
        Identity::load(pki, name).with_context(|| format!("loading certificate {name} from {}", pki.display()))?;
    let endpoint = transport::bind("127.0.0.1:0".parse()?, &identity)?;
    let (conn, _) = transport::connect(&endpoint, station, station_name, Role::Station)
        .await
        .with_context(|| format!("connecting to the control station at {station}"))?;
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
    send.send(&StationRequest::CatalogBackup { pool: pool.to_string() })
        .await?;
    send.finish().await?;
    let outcome = loop {
        let event = match recv.recv::<StationReply>().await? {
            Some(StationReply::Event(ev)) => ev,
            Some(StationReply::Error(f)) => break Err(anyhow!(f)),
            Some(other) => break Err(anyhow!("unexpected reply from the station: {other:?}")),
            None => break Err(anyhow!("the station closed the stream before the catalog backup ended")),
        };
        match event {
            ChannelEvent::Accepted { channel_id, abs_id } => {
                eprintln!("catalog backup accepted: channel {channel_id}, ABS {abs_id}");
            }
            ChannelEvent::Started { object_size, .. } => eprintln!("dump of {object_size} bytes taken"),
            ChannelEvent::State { state, reason } => eprintln!("{state}: {reason}"),
            ChannelEvent::Waiting { what, seconds } => eprintln!("waiting {seconds} s for {what}"),
            ChannelEvent::Finished {
                bytes,
                segments,
                tapes,
                seconds,
                ..
            } => {
                println!(
                    "catalog backed up: {bytes} bytes in {segments} segments on {} ({seconds:.1} s)",
                    tapes.join(", ")
                );
                break Ok(());
            }
            ChannelEvent::Failed(f) => break Err(anyhow!(f).context("the catalog backup failed")),
            _ => {}
        }
    };
    conn.close(transport::codes::DONE, b"done");
    endpoint.wait_idle().await;
    outcome
}

/// Restore the catalog from tape images, saying what was restored.
pub async fn restore(opts: RestoreOptions) -> Result<()> {
    if opts.images.is_empty() {
        bail!("--from IMAGE: at least one tape image");
    }
    let r = catalog_restore::restore(&opts).await?;
    println!(
        "catalog restored from ABS {} ({} bytes, {} segments on {}) into {}",
        r.abs_id,
        r.bytes,
        r.segments,
        r.tapes.join(", "),
        catalog_restore::redacted(&opts.database_url)
    );
    Ok(())
}

/// Rebuild the catalog from the library's tapes; say what was recorded,
/// what could not be and how long it took.
pub async fn rebuild(opts: RebuildOptions) -> Result<()> {
    let r = rebuild::rebuild(&opts).await?;
    for note in &r.notes {
        eprintln!("note: {note}");
    }
    println!(
        "catalog rebuilt from {} tapes in {} into {}: {} pools, {} complete ABSs, {} failed, {} segments, {} segment copies",
        r.tapes,
        opts.library.display(),
        catalog_restore::redacted(&opts.database_url),
        r.pools,
        r.complete,
        r.failed,
        r.segments,
        r.copies
    );
    let read = r
        .bytes_read
        .map(|b| format!("{:.3} MB", b as f64 / 1e6))
        .unwrap_or_else(|| "?".into());
    println!(
        "tapes read in {:.3} s ({read} read; {} segments read for counts older tapes do not record), {:.3} s in all",
        r.seconds_reading, r.segments_read, r.seconds_total
    );
    println!(
        "not on tape, so not rebuilt: grants (smapp grant), channel history, movers and drives (they register again)"
    );
    Ok(())
}
