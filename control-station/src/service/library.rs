//! The virtual tape library: a directory of tape images (the slots), the
//! drives of the back-ends, mount and dismount. Tapes of a pool go scratch
//! → filling (→ full in a later issue).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use proto::wire::{Command, CommandReply, NewTape, SegmentPlacement};

use super::Station;
use crate::catalog::{DriveRow, NewSegment, TapeRow, TAPE_FILLING, TAPE_SCRATCH};

/// Reserve a tape of the pool for writing (a filling one, else a scratch
/// one, else a new image in the library), and have the back-end mount it.
pub(crate) async fn mount_for_write(st: &Arc<Station>, be: &str, drive: &DriveRow) -> Result<TapeRow> {
    // Reserve a tape; when the pool has none, label a new one. Another
    // channel may reserve the new tape first: then label another.
    let mut attempts = 0;
    let tape = loop {
        if let Some(t) = st.catalog.tape_for_writing(&st.cfg.pool).await? {
            break t;
        }
        attempts += 1;
        if attempts > 16 {
            bail!(
                "could not reserve a tape in pool {} after labelling {attempts} new ones",
                st.cfg.pool
            );
        }
        let label = st.catalog.allocate_tape_label("DM").await?;
        std::fs::create_dir_all(&st.cfg.library)
            .with_context(|| format!("creating the library directory {}", st.cfg.library.display()))?;
        let path = st.cfg.library.join(format!("{label}.tap"));
        st.catalog
            .create_tape(&label, &st.cfg.pool, &path.to_string_lossy())
            .await?;
        tracing::info!(%label, path = %path.display(), "new scratch tape in the library");
    };
    let new = if tape.state == TAPE_SCRATCH {
        st.catalog.set_tape_media_set(tape.id, tape.id, 1).await?;
        Some(NewTape {
            pool: tape.pool.clone(),
            media_set: tape.id as u64,
            sequence: 1,
            block_size: st.cfg.block_size,
        })
    } else {
        None
    };
    let cmd = Command::MountForWrite {
        drive: drive.name.clone(),
        tape_label: tape.label.clone(),
        path: tape.path.clone(),
        new,
    };
    if let Err(e) = st.command_ok(be, &cmd).await {
        st.catalog.release_tape(tape.id).await?;
        return Err(e.context(format!("mounting tape {} in drive {}", tape.label, drive.name)));
    }
    st.catalog.mount_tape(drive.id, tape.id).await?;
    Ok(tape)
}

/// Have the back-end mount a tape for reading.
pub(crate) async fn mount_for_read(st: &Arc<Station>, be: &str, drive: &DriveRow, tape: &TapeRow) -> Result<()> {
    st.catalog.mount_tape(drive.id, tape.id).await?;
    let cmd = Command::MountForRead {
        drive: drive.name.clone(),
        tape_label: tape.label.clone(),
        path: tape.path.clone(),
    };
    if let Err(e) = st.command_ok(be, &cmd).await {
        let _ = st
            .catalog
            .dismount_tape(drive.id, tape.id, &tape.state, tape.bytes_written, tape.files_written)
            .await;
        return Err(e.context(format!("mounting tape {} in drive {}", tape.label, drive.name)));
    }
    Ok(())
}

/// Have the back-end finish (if written) and unload the tape; record it.
/// When the back-end cannot answer (it died), the tape is still released in
/// the catalog; a tape that was written to stays `filling` (never back to
/// `scratch`), and the next writer appends after its last complete file.
pub(crate) async fn dismount(
    st: &Arc<Station>,
    be: &str,
    drive: &DriveRow,
    tape: &TapeRow,
    written: bool,
) -> Result<()> {
    let reply = st
        .command_ok(
            be,
            &Command::Dismount {
                drive: drive.name.clone(),
            },
        )
        .await;
    let fresh = st.catalog.tape(tape.id).await?.unwrap_or_else(|| tape.clone());
    let (state, bytes, files) = match (&reply, written) {
        (Ok(CommandReply::Dismounted { bytes, files, .. }), true) => (TAPE_FILLING, *bytes as i64, *files as i32),
        (Err(_), true) => (TAPE_FILLING, fresh.bytes_written, fresh.files_written),
        _ => (fresh.state.as_str(), fresh.bytes_written, fresh.files_written),
    };
    st.catalog.dismount_tape(drive.id, tape.id, state, bytes, files).await?;
    reply
        .map(|_| ())
        .with_context(|| format!("dismounting tape {} from drive {}", tape.label, drive.name))
}

pub(crate) async fn record_segment(st: &Arc<Station>, p: &SegmentPlacement) -> Result<()> {
    let tape = st.catalog.tape_by_label(&p.tape_label).await?.ok_or_else(|| {
        anyhow!(
            "segment {} of ABS {} placed on unknown tape {}",
            p.seq,
            p.abs_id,
            p.tape_label
        )
    })?;
    let seg = NewSegment {
        abs_id: i64::try_from(p.abs_id)?,
        seq: p.seq,
        tape_id: tape.id,
        tape_file: p.tape_file,
        bytes: i64::try_from(p.bytes)?,
        data_bytes: i64::try_from(p.data_bytes)?,
        track_count: i64::from(p.track_count),
        crc32c: p.crc32c,
    };
    st.catalog.record_segment(&seg).await?;
    metrics::counter!("dmc_station_segments_committed_total").increment(1);
    Ok(())
}

pub(crate) async fn record_metadata(st: &Arc<Station>, abs_id: u64, tape_label: &str, tape_file: u32) -> Result<()> {
    let Some(tape) = st.catalog.tape_by_label(tape_label).await? else {
        bail!("ABS {abs_id} metadata placed on unknown tape {tape_label}");
    };
    st.catalog
        .record_abs_metadata(i64::try_from(abs_id)?, tape.id, tape_file)
        .await?;
    Ok(())
}
