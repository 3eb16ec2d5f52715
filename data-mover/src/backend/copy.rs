//! Tape to tape on one back-end (a pool backup, seed 000 FIG. 5): a
//! segment read from a primary tape in one drive is verified on its way
//! into the spool, then written through the writer of another drive (the
//! copy tape) like any sealed segment, verified again and synced. ABS
//! metadata is read and written by the station's order, so it lands on the
//! copy tape after the last segment of its ABS.

use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{AbsId, Failure};
use proto::tape::metadata::AbsMetadata;
use proto::tape::segment::SegmentSummary;
use proto::wire::{CommandReply, SegmentRef};

use super::context::BackEnd;
use super::writer::SegmentSource;
use crate::limits::CHUNK;

/// The writer's queue key for copies: no channel owns them.
const COPY_QUEUE: u64 = 0;

/// Copy segment `source` of ABS `abs_id` from the tape in `read_drive` to
/// the tape in `write_drive`.
pub async fn copy_segment(
    be: &BackEnd,
    read_drive: &str,
    write_drive: &str,
    abs_id: AbsId,
    object_name: String,
    source: &SegmentRef,
) -> Result<CommandReply> {
    let writer = be.writer(write_drive)?.clone();
    let path = be.spool.copying(abs_id, source.seq);
    let staged = tokio::task::block_in_place(|| read_into(be, read_drive, abs_id, source, &path));
    let bytes = match staged {
        Ok(b) => b,
        Err(e) => {
            be.slots.release(&path);
            return Err(e);
        }
    };
    let src = SegmentSource {
        path: path.clone(),
        bytes,
        object_name,
        abandoned: Default::default(),
    };
    let placed = writer
        .write_segment(COPY_QUEUE, abs_id.get(), source.seq.get(), src)
        .await;
    be.slots.release(&path);
    let placed = placed.with_context(|| format!("writing the copy of segment {} of ABS {abs_id}", source.seq))?;
    let summary = placed.summary.ok_or_else(|| {
        anyhow!(
            "the drive did not verify the copy of segment {} of ABS {abs_id}",
            source.seq
        )
    })?;
    if summary.crc32c != source.crc32c {
        bail!(Failure::corrupt(format!(
            "the copy of segment {} of ABS {abs_id} on tape {} file {} has CRC32C {:08x}, not {:08x}",
            source.seq, placed.tape_label, placed.entry.file_number, summary.crc32c, source.crc32c
        )));
    }
    metrics::counter!("dmc_be_segments_copied_total").increment(1);
    metrics::counter!("dmc_be_bytes_copied_total").increment(placed.entry.bytes);
    tracing::info!(
        %abs_id,
        seq = %source.seq,
        from = %source.tape_label,
        from_file = source.tape_file,
        to = %placed.tape_label,
        to_file = placed.entry.file_number,
        "segment copied"
    );
    Ok(CommandReply::SegmentCopied {
        tape_label: placed.tape_label,
        tape_file: placed.entry.file_number,
        bytes: placed.entry.bytes,
        crc32c: summary.crc32c,
    })
}

/// Read the segment into the spool file `path`, verified, and check it is
/// the one asked for. Returns its length.
fn read_into(be: &BackEnd, drive: &str, abs_id: AbsId, f: &SegmentRef, path: &std::path::Path) -> Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = be
        .slots
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(CHUNK, file);
    let summary = {
        let d = be.drive(drive)?;
        let mut d = d.lock().map_err(|_| anyhow!("drive {drive} lock poisoned"))?;
        d.read_segment_into(&f.tape_label, f.tape_file, be.max_segment, &mut out)
            .map_err(unreadable)
            .with_context(|| format!("reading tape {} file {} in drive {drive}", f.tape_label, f.tape_file))?
    };
    let file = out
        .into_inner()
        .map_err(|e| anyhow!("writing {}: {}", path.display(), e.error()))?;
    crate::spool::Slots::finish(&file, summary.total_bytes).with_context(|| format!("writing {}", path.display()))?;
    expected(&summary, abs_id, f)?;
    Ok(summary.total_bytes)
}

/// Fail unless the segment read is the one the catalog expects there.
fn expected(summary: &SegmentSummary, abs_id: AbsId, f: &SegmentRef) -> Result<()> {
    let h = &summary.header;
    if h.abs_id != abs_id.get() || h.seq != f.seq.get() || summary.crc32c != f.crc32c {
        bail!(Failure::corrupt(format!(
            "tape {} file {} holds ABS {} segment {} (crc {:08x}); the catalog expects ABS {abs_id} segment {} (crc {:08x})",
            f.tape_label, f.tape_file, h.abs_id, h.seq, summary.crc32c, f.seq, f.crc32c
        )));
    }
    Ok(())
}

/// Read segment `f` of ABS `abs_id` from the tape in `drive`, checking
/// every checksum, and throw the bytes away (an audit).
pub fn verify_segment(be: &BackEnd, drive: &str, abs_id: AbsId, f: &SegmentRef) -> Result<CommandReply> {
    let summary = tokio::task::block_in_place(|| {
        let d = be.drive(drive)?;
        let mut d = d.lock().map_err(|_| anyhow!("drive {drive} lock poisoned"))?;
        d.read_segment_into(&f.tape_label, f.tape_file, be.max_segment, &mut std::io::sink())
            .map_err(unreadable)
            .with_context(|| format!("reading tape {} file {} in drive {drive}", f.tape_label, f.tape_file))
    })?;
    expected(&summary, abs_id, f)?;
    metrics::counter!("dmc_be_segments_verified_total").increment(1);
    Ok(CommandReply::Ok)
}

/// A tape file that could not be read back as written (a checksum, a
/// structure, a record the medium lost) is `Corrupt`: the station falls
/// back to another copy and marks this one damaged. Anything else (no such
/// drive, the tape not mounted) keeps its own kind.
pub(crate) fn unreadable(e: anyhow::Error) -> anyhow::Error {
    if e.chain().any(|c| c.downcast_ref::<proto::tape::TapeError>().is_some()) {
        anyhow::Error::new(Failure::corrupt(format!("{e:#}")))
    } else {
        e
    }
}

/// The `Corrupt` failure in `e`'s chain, if any: the tape file is not
/// readable as written (see [`unreadable`]).
pub(crate) fn corrupt(e: &anyhow::Error) -> Option<Failure> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<Failure>())
        .find(|f| f.code == proto::domain::FailureCode::Corrupt)
        .map(|_| Failure::corrupt(format!("{e:#}")))
}

/// Read the metadata of ABS `abs_id` in file `tape_file` of the tape in
/// `drive`.
pub fn read_metadata(
    be: &BackEnd,
    drive: &str,
    tape_label: &str,
    tape_file: u32,
    abs_id: AbsId,
) -> Result<CommandReply> {
    let meta = tokio::task::block_in_place(|| {
        let d = be.drive(drive)?;
        let mut d = d.lock().map_err(|_| anyhow!("drive {drive} lock poisoned"))?;
        d.read_metadata(tape_label, tape_file).map_err(unreadable)
    })?;
    if meta.abs_id != abs_id.get() {
        bail!(Failure::corrupt(format!(
            "tape {tape_label} file {tape_file} holds the metadata of ABS {}, not of ABS {abs_id}",
            meta.abs_id
        )));
    }
    Ok(CommandReply::MetadataRead {
        metadata: meta.encode(),
    })
}

/// Write ABS metadata (its encoding, checked) through the writer of `drive`.
pub async fn write_metadata(be: &BackEnd, drive: &str, metadata: &[u8]) -> Result<CommandReply> {
    let meta = AbsMetadata::decode(metadata).context("ABS metadata from the station")?;
    meta.map.validate().context("the metadata's map")?;
    let abs_id = meta.abs_id;
    let placed = be.writer(drive)?.write_metadata(meta).await?;
    tracing::info!(abs_id, tape = %placed.tape_label, file = placed.entry.file_number, "ABS metadata copied");
    Ok(CommandReply::Placed {
        tape_label: placed.tape_label,
        tape_file: placed.entry.file_number,
    })
}
