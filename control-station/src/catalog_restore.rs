//! `control-station catalog restore --from IMAGE`: the catalog rebuilt
//! from a catalog backup's tapes, with no station and no catalog.
//!
//! 1. Every image is opened read-only with the tape layers: labels,
//!    DIRECTORY (or, on a tape never finished, a scan of its data files)
//!    and CATALOG file.
//! 2. The ABS metadata files name the catalog backups (object
//!    [`CATALOG_OBJECT`] mapped on volume [`DUMP_VOLUME`]); the newest one
//!    is taken unless `--abs` names one.
//! 3. Its segments are read from the images, every record and track
//!    checksum checked, and their tracks written at their offsets in the
//!    map into a dump file, which must come out whole: every segment of
//!    the metadata's count, every track once, exactly the object's bytes.
//! 4. The target database must be empty: `pg_restore` restores the dump
//!    in one transaction.
//! 5. The dump was taken before the catalog backup recorded itself, so
//!    the restored catalog is told about it from the tapes: its tapes
//!    (state, counters, media set), its ABS (same id) and segments, and
//!    where its metadata lies — so a later backup never writes over it and
//!    a later restore of the catalog finds it in the catalog too.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use proto::abs::TrackAddr;
use proto::domain::{AbsId, Level, SegmentSeq, TapeState};
use proto::tape::directory::{DirectoryEntry, FileKind};
use proto::tape::metadata::AbsMetadata;
use proto::tape::volume::TapeEnd;
use proto::wire::{CATALOG_OBJECT, STATION_NODE};

use crate::catalog::{Catalog, NewSegment};
use crate::pg_tools::PgTools;
use crate::rebuild::read::open;
use crate::service::catalog_backup::{dump_map, DUMP_VOLUME};

/// What to restore, from where, into where.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The tape images holding the catalog backup.
    pub images: Vec<PathBuf>,
    /// The catalog backup's ABS (None: the newest found).
    pub abs_id: Option<u64>,
    /// The empty database to restore into.
    pub database_url: String,
    pub pg_tools: PgTools,
}

/// What was restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub abs_id: AbsId,
    pub bytes: u64,
    pub segments: u32,
    /// The tapes its segments were read from.
    pub tapes: Vec<String>,
}

/// One image, as its labels and directory describe it.
struct Tape {
    path: PathBuf,
    label: String,
    /// From its CATALOG file (None: the tape was never finished).
    pool: Option<String>,
    media_set: Option<(u64, u32)>,
    /// Finished with EOV labels: its media set continues on another tape.
    full: bool,
    files: Vec<DirectoryEntry>,
}

/// The largest segment read back into memory (bytes).
const MAX_SEGMENT_READ: usize = 1 << 30;

fn describe(path: &Path) -> Result<Tape> {
    let mut r = open(path)?;
    let label = r.label().to_string();
    let ctx = || format!("tape {label} ({})", path.display());
    let files = r.data_files().with_context(ctx)?;
    let catalog = r.read_catalog().with_context(ctx)?;
    let full = matches!(r.tape_end().with_context(ctx)?, TapeEnd::Finished { labels, .. } if labels.continues());
    Ok(Tape {
        path: path.to_path_buf(),
        label: label.clone(),
        full,
        pool: catalog.as_ref().map(|c| c.pool.clone()),
        media_set: catalog.as_ref().map(|c| (c.media_set, c.sequence)),
        files,
    })
}

/// Whether ABS metadata describes a catalog backup.
fn is_catalog_backup(m: &AbsMetadata) -> bool {
    m.object_name == CATALOG_OBJECT && matches!(m.map.volumes.as_slice(), [v] if v.name == DUMP_VOLUME)
}

/// The catalog backup to restore: its metadata, and which tape and file
/// hold it.
fn find_backup(tapes: &[Tape], wanted: Option<u64>) -> Result<(AbsMetadata, usize, u32)> {
    let mut found: BTreeMap<u64, (AbsMetadata, usize, u32)> = BTreeMap::new();
    for (i, t) in tapes.iter().enumerate() {
        let metadata: Vec<&DirectoryEntry> = t.files.iter().filter(|e| e.kind == FileKind::AbsMetadata).collect();
        if metadata.is_empty() {
            continue;
        }
        let mut r = open(&t.path)?;
        for e in metadata {
            if wanted.is_some_and(|w| w != e.abs_id) {
                continue;
            }
            let m = r
                .read_abs_metadata(e.file_number)
                .with_context(|| format!("tape {} file {}: ABS {} metadata", t.label, e.file_number, e.abs_id))?;
            if is_catalog_backup(&m) {
                found.insert(m.abs_id, (m, i, e.file_number));
            }
        }
    }
    let labels = || tapes.iter().map(|t| t.label.as_str()).collect::<Vec<_>>().join(", ");
    match wanted {
        Some(w) => found.remove(&w).ok_or_else(|| {
            anyhow!(
                "ABS {w} is not a catalog backup with its metadata on {} (expected the metadata of object {CATALOG_OBJECT:?})",
                labels()
            )
        }),
        None => found
            .pop_last()
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("no catalog backup on {}: no ABS metadata of object {CATALOG_OBJECT:?}", labels())),
    }
}

/// One segment as read back.
struct ReadSegment {
    tape: usize,
    file: u32,
    seq: u32,
    bytes: u64,
    data_bytes: u64,
    tracks: u32,
    crc32c: u32,
}

/// Read every segment of `meta`'s ABS from `tapes` into `out` at its
/// tracks' offsets, checking that the dump comes out whole.
fn assemble(tapes: &[Tape], meta: &AbsMetadata, out: &std::fs::File) -> Result<Vec<ReadSegment>> {
    let abs = meta.abs_id;
    let mut segments: Vec<ReadSegment> = Vec::new();
    let mut seen_seq = HashSet::new();
    let mut seen_track: HashSet<TrackAddr> = HashSet::new();
    let mut bytes = 0u64;
    for (i, t) in tapes.iter().enumerate() {
        let files: Vec<&DirectoryEntry> = t
            .files
            .iter()
            .filter(|e| e.kind == FileKind::Segment && e.abs_id == abs)
            .collect();
        if files.is_empty() {
            continue;
        }
        let mut r = open(&t.path)?;
        for e in files {
            let at = || {
                format!(
                    "tape {} file {} (segment {} of ABS {abs})",
                    t.label, e.file_number, e.seq
                )
            };
            let seg = r.read_segment(e.file_number, MAX_SEGMENT_READ).with_context(at)?;
            let h = &seg.summary.header;
            if h.abs_id != abs || h.seq != e.seq {
                bail!(
                    "{}: the directory says ABS {abs} segment {}, the segment header says ABS {} segment {}",
                    at(),
                    e.seq,
                    h.abs_id,
                    h.seq
                );
            }
            if !seen_seq.insert(h.seq) {
                bail!("{}: segment {} of ABS {abs} found twice", at(), h.seq);
            }
            for track in &seg.tracks {
                let (offset, len) = meta
                    .map
                    .track_extent(track.addr)
                    .map_err(|e| anyhow!("{}: track {:?} is not in the dump's map: {e}", at(), track.addr))?;
                if track.data.len() as u64 != len {
                    bail!(
                        "{}: track {:?} holds {} bytes, its map says {len}",
                        at(),
                        track.addr,
                        track.data.len()
                    );
                }
                if !seen_track.insert(track.addr) {
                    bail!("{}: track {:?} found twice", at(), track.addr);
                }
                out.write_all_at(&track.data, offset)
                    .context("writing the catalog dump being rebuilt")?;
                bytes += len;
            }
            segments.push(ReadSegment {
                tape: i,
                file: e.file_number,
                seq: h.seq,
                bytes: seg.summary.total_bytes,
                data_bytes: seg.summary.data_bytes,
                tracks: seg.summary.track_count,
                crc32c: seg.summary.crc32c,
            });
        }
    }
    let missing: Vec<u32> = (0..meta.segment_count).filter(|s| !seen_seq.contains(s)).collect();
    if !missing.is_empty() {
        bail!(
            "catalog backup ABS {abs} has {} segments; segments {missing:?} are on none of the images given (--from each tape it spans)",
            meta.segment_count
        );
    }
    if seen_seq.len() as u64 != u64::from(meta.segment_count)
        || seen_track.len() as u64 != meta.track_count
        || bytes != meta.map.object_size
    {
        bail!(
            "catalog backup ABS {abs}: expected {} segments, {} tracks and {} bytes; read {} segments, {} tracks and {bytes} bytes",
            meta.segment_count,
            meta.track_count,
            meta.map.object_size,
            seen_seq.len(),
            seen_track.len()
        );
    }
    segments.sort_by_key(|s| s.seq);
    Ok(segments)
}

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Fail unless database `url` holds no tables of its own.
pub(crate) async fn require_empty(url: &str) -> Result<()> {
    let pool = sqlx::PgPool::connect(url)
        .await
        .with_context(|| format!("connecting to {}", redacted(url)))?;
    let tables = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"#
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    if tables > 0 {
        bail!(
            "database {} is not empty ({tables} tables): a catalog is restored only into an empty database",
            redacted(url)
        );
    }
    Ok(())
}

/// Restore the catalog backup on `opts.images` into `opts.database_url`.
pub async fn restore(opts: &RestoreOptions) -> Result<Restored> {
    require_empty(&opts.database_url).await?;
    let dir = tempfile::Builder::new()
        .prefix("dmc-catalog-restore")
        .tempdir()
        .context("a temporary directory for the catalog dump")?;
    let dump = dir.path().join("catalog.dump");
    let images = opts.images.clone();
    let wanted = opts.abs_id;
    let path = dump.clone();
    let (tapes, meta, meta_at, segments) = tokio::task::spawn_blocking(move || -> Result<_> {
        let tapes = images.iter().map(|p| describe(p)).collect::<Result<Vec<_>>>()?;
        let (meta, tape, file) = find_backup(&tapes, wanted)?;
        let map = dump_map(meta.map.object_size)?;
        if map != meta.map {
            bail!(
                "catalog backup ABS {}: its map is not the map of a {}-byte dump",
                meta.abs_id,
                meta.map.object_size
            );
        }
        let out = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        out.set_len(meta.map.object_size)?;
        let segments = assemble(&tapes, &meta, &out)?;
        out.sync_all()?;
        Ok((tapes, meta, (tape, file), segments))
    })
    .await
    .context("the tape reading task")??;
    tracing::info!(
        abs = meta.abs_id,
        bytes = meta.map.object_size,
        "catalog dump read back from tape"
    );
    opts.pg_tools
        .restore(&opts.database_url, &dump)
        .await
        .context("restoring the catalog dump")?;
    let catalog = Catalog::connect(&opts.database_url)
        .await
        .context("opening the restored catalog")?;
    let abs_id = adopt(&catalog, &tapes, &meta, meta_at, &segments)
        .await
        .with_context(|| format!("recording catalog backup ABS {} in the restored catalog", meta.abs_id))?;
    let mut labels: Vec<String> = segments.iter().map(|s| tapes[s.tape].label.clone()).collect();
    labels.dedup();
    Ok(Restored {
        abs_id,
        bytes: meta.map.object_size,
        segments: meta.segment_count,
        tapes: labels,
    })
}

/// Record the catalog backup read from `tapes` in the restored catalog.
async fn adopt(
    catalog: &Catalog,
    tapes: &[Tape],
    meta: &AbsMetadata,
    (meta_tape, meta_file): (usize, u32),
    segments: &[ReadSegment],
) -> Result<AbsId> {
    let home = tapes[meta_tape].pool.clone().unwrap_or_else(|| "catalog".to_string());
    catalog.ensure_catalog_pool(&home).await?;
    let mut tape_ids = Vec::with_capacity(tapes.len());
    for t in tapes {
        let pool = t.pool.clone().unwrap_or_else(|| home.clone());
        let row = match catalog.tape_by_label(&t.label).await? {
            Some(row) => row,
            None => {
                catalog.ensure_catalog_pool(&pool).await?;
                catalog.create_tape(&t.label, &pool, &t.path.to_string_lossy()).await?
            }
        };
        if let (None, Some((set, seq))) = (row.media_set, t.media_set) {
            catalog.set_tape_media_set(row.id, set.into(), seq).await?;
        }
        tape_ids.push(row.id);
    }
    let abs_id = AbsId::from(meta.abs_id);
    let node = catalog.register_primary_node(STATION_NODE, &meta.map.volumes).await?;
    catalog.reserve_abs_id(abs_id).await?;
    let (_, created) = catalog
        .create_abs(CATALOG_OBJECT, node, Level::Full, None, &meta.map, &home)
        .await?;
    if created != abs_id {
        bail!("the restored catalog gave the catalog backup ABS {created}, not {abs_id}");
    }
    // Its identity and times from its management record (older tapes:
    // the creation time, to the second).
    let ms = |ms: u64| {
        i64::try_from(ms)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .ok_or_else(|| anyhow!("ABS {abs_id} metadata: time {ms} ms is out of range"))
    };
    match &meta.management {
        Some(m) => {
            catalog
                .set_abs_identity(abs_id, m.abs_uuid, &m.client, &m.label)
                .await?;
            catalog
                .set_abs_time(abs_id, ms(m.created_ms)?, ms(m.point_in_time_ms)?)
                .await?;
        }
        None => {
            let at = ms(meta.created_unix.saturating_mul(1000))?;
            catalog.set_abs_time(abs_id, at, at).await?;
        }
    }
    for s in segments {
        catalog
            .record_segment(&NewSegment {
                abs_id,
                seq: SegmentSeq::from(s.seq),
                tape_id: tape_ids[s.tape],
                tape_file: s.file,
                bytes: s.bytes,
                data_bytes: s.data_bytes,
                track_count: u64::from(s.tracks),
                crc32c: s.crc32c,
            })
            .await?;
    }
    catalog
        .record_abs_metadata(abs_id, tape_ids[meta_tape], meta_file)
        .await?;
    catalog
        .complete_abs(abs_id, meta.data_bytes, meta.track_count, meta.segment_count)
        .await?;
    // What each tape holds, as its back-end reports it at dismount: data
    // files and bytes, full when its media set goes on elsewhere.
    for (t, id) in tapes.iter().zip(&tape_ids) {
        let files = u32::try_from(t.files.len()).unwrap_or(u32::MAX);
        let bytes = t.files.iter().map(|e| e.bytes).sum();
        let state = if t.full { TapeState::Full } else { TapeState::Filling };
        catalog.record_tape_contents(*id, state, bytes, files).await?;
    }
    Ok(abs_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(redacted("postgres://u:secret@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("postgres:///db?host=/tmp"), "postgres:///db?host=/tmp");
    }
}
