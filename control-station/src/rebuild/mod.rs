//! `control-station catalog rebuild --library DIR`: a lost catalog made
//! again from the tapes alone (seed 002 FIG. 15), into an empty database,
//! with no station running.
//!
//! 1. [`read`]: every tape image's labels, DIRECTORY, CATALOG and ABS
//!    metadata with its management record (a damaged DIRECTORY or CATALOG:
//!    the tape's data files are scanned instead).
//! 2. [`plan`]: the pools, tapes, ABSs (levels, chains, points in time,
//!    epochs, changed tracks, UUIDs, clients, labels, times), segments and
//!    copies those describe: pure, unit-tested.
//! 3. Recorded in the database under the ids the tapes carry (ABS ids are
//!    in every segment header), the cluster taking the tapes' cluster id,
//!    the sequences moved past every label and media set found.
//!
//! Not on tape, so not rebuilt: grants, backup definitions, channel
//! history, registered movers and drives (they register again), damaged
//! marks.

pub mod plan;
pub mod read;
pub mod record;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::catalog::Catalog;
use crate::catalog_restore::{redacted, require_empty};

/// Where to read, where to write.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// The library directory holding the tape images.
    pub library: PathBuf,
    /// The empty database to rebuild into.
    pub database_url: String,
    /// The prefix of the station's new tape labels (its label sequence
    /// goes on after the highest label with it).
    pub label_prefix: String,
}

/// What was rebuilt.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub tapes: usize,
    pub pools: usize,
    /// Complete ABSs recorded, and those recorded as failed.
    pub complete: usize,
    pub failed: usize,
    pub segments: usize,
    pub copies: usize,
    /// Segments read to count them (tapes older than segment counts in
    /// management records); 0 for tapes written since.
    pub segments_read: u32,
    /// Bytes this process read while reading the tapes (Linux: `rchar` of
    /// /proc/self/io; None elsewhere).
    pub bytes_read: Option<u64>,
    pub seconds_reading: f64,
    pub seconds_total: f64,
    pub notes: Vec<String>,
}

/// Rebuild the catalog of the tapes in `opts.library` into the empty
/// database `opts.database_url`.
pub async fn rebuild(opts: &RebuildOptions) -> Result<Rebuilt> {
    let started = Instant::now();
    require_empty(&opts.database_url).await?;
    let dir = opts.library.clone();
    let read_before = bytes_read_so_far();
    let (tapes, plan, segments_read) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut notes = Vec::new();
        let tapes = read::read_library(&dir, &mut notes)?;
        if tapes.is_empty() {
            bail!("no tape images (*.tap) with labels in {}", dir.display());
        }
        let mut plan = plan::plan(&tapes);
        plan.notes.splice(0..0, notes);
        let read = read::read_missing_counts(&tapes, &mut plan)?;
        Ok((tapes, plan, read))
    })
    .await
    .context("the tape reading task")??;
    let seconds_reading = started.elapsed().as_secs_f64();
    let bytes_read = bytes_read_so_far()
        .zip(read_before)
        .map(|(after, before)| after.saturating_sub(before));
    tracing::info!(
        tapes = tapes.len(),
        abs = plan.abs.len(),
        seconds = seconds_reading,
        "tapes read"
    );
    let catalog = Catalog::connect(&opts.database_url)
        .await
        .with_context(|| format!("creating the catalog in {}", redacted(&opts.database_url)))?;
    let counts = record::record(&catalog, &tapes, &plan, &mut record::Ids::Keep, &opts.label_prefix).await?;
    Ok(Rebuilt {
        tapes: plan.tapes.len(),
        pools: plan.pools.len(),
        complete: counts.complete,
        failed: counts.failed,
        segments: counts.segments,
        copies: counts.copies,
        segments_read,
        bytes_read,
        seconds_reading,
        seconds_total: started.elapsed().as_secs_f64(),
        notes: plan.notes,
    })
}

/// Bytes this process has read so far (`rchar` of /proc/self/io).
fn bytes_read_so_far() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}
