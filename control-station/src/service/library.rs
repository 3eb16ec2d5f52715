//! The virtual tape library: slots holding tape images (a directory), the
//! drives of the back-ends, mount and dismount (each taking the configured
//! robot time), import and export. Tapes of a pool go scratch → filling →
//! full; a full tape's media set continues on a scratch tape.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use proto::domain::{AbsId, ChannelId, Failure, MediaSetId, PoolKind, TapeLocation, TapeState};
use proto::wire::{AbsRecord, Command, CommandReply, NewTape, SegmentPlacement, StationReply};

use super::{registry, ChannelNote, Station};
use crate::catalog::{CatalogError, DriveRow, NewSegment, TapeClaim, TapeRow};

/// Label a new scratch tape in a free slot of the library: a catalog row
/// only. The back-end that first mounts it for writing creates and labels
/// its image in its library; the catalog's path is the library's name for
/// it (`LIBRARY/LABEL.tap`), for operators.
pub(crate) async fn label_new_tape(st: &Arc<Station>, pool: &str) -> Result<TapeRow> {
    if st.catalog.pool_named(pool).await?.is_none() {
        bail!(Failure::not_found(format!(
            "there is no pool {pool}: define it first (smapp pool define {pool} --kind primary|copy)"
        )));
    }
    let held = st.catalog.tapes_in_library().await?;
    if held >= u64::from(st.cfg.slots) {
        bail!(Failure::conflict(format!(
            "the library is full: its {} slots all hold tapes; export full tapes (smapp library export) to make room",
            st.cfg.slots
        )));
    }
    let label = st.catalog.allocate_tape_label(&st.cfg.label_prefix).await?;
    let path = st.cfg.library.join(format!("{label}.tap"));
    let tape = st.catalog.create_tape(&label, pool, &path.to_string_lossy()).await?;
    tracing::info!(%label, slot = ?tape.slot, path = %path.display(), "new scratch tape in the library");
    Ok(tape)
}

/// Reserve a tape of `pool` for writing: a filling one (unless
/// `scratch_only`), else a scratch one, else a newly labelled one.
async fn reserve_tape(st: &Arc<Station>, pool: &str, scratch_only: bool) -> Result<TapeRow> {
    // Emptied tapes past their retention are scratch tapes again.
    st.catalog.recycle_tapes().await?;
    // Another channel may reserve the new tape first: then label another.
    for _ in 0..16 {
        if let Some(t) = st.catalog.tape_for_writing(pool, scratch_only).await? {
            return Ok(t);
        }
        label_new_tape(st, pool).await?;
    }
    bail!("could not reserve a tape in pool {pool} after labelling 16 new ones")
}

/// Reserve a tape of `pool` for writing (a filling one, else a scratch
/// one, else a new image in the library), and have the back-end mount it.
pub(crate) async fn mount_for_write(st: &Arc<Station>, be: &str, drive: &DriveRow, pool: &str) -> Result<TapeRow> {
    mount_tape_for_write(st, be, drive, pool, false).await
}

/// [`mount_for_write`] of a scratch (or new) tape only: a merge reads the
/// filling tapes on another drive meanwhile.
pub(crate) async fn mount_scratch_for_write(
    st: &Arc<Station>,
    be: &str,
    drive: &DriveRow,
    pool: &str,
) -> Result<TapeRow> {
    mount_tape_for_write(st, be, drive, pool, true).await
}

async fn mount_tape_for_write(
    st: &Arc<Station>,
    be: &str,
    drive: &DriveRow,
    pool: &str,
    scratch_only: bool,
) -> Result<TapeRow> {
    let started = std::time::Instant::now();
    let tape = reserve_tape(st, pool, scratch_only).await?;
    tokio::time::sleep(st.cfg.mount_delay).await;
    let new = if tape.state == TapeState::Scratch {
        // A new media set is named after its first tape (a tape used
        // again starts one with a fresh id).
        let media_set = st.catalog.fresh_media_set(tape.id).await?;
        st.catalog.set_tape_media_set(tape.id, media_set, 1).await?;
        Some(NewTape {
            pool: tape.pool.clone(),
            media_set,
            sequence: 1,
            block_size: st.cfg.block_size,
        })
    } else {
        None
    };
    let cmd = Command::MountForWrite {
        drive: drive.name.clone(),
        tape_label: tape.label.clone(),
        new,
    };
    // The catalog first: a drive it says holds another tape is refused
    // before the back-end touches this one; a back-end that cannot mount
    // leaves the tape as it was, free.
    if let Err(e) = st.catalog.mount_tape(drive.id, tape.id, TapeClaim::Reserved).await {
        st.catalog.release_tape(tape.id).await?;
        return Err(anyhow!(e).context(format!("mounting tape {} in drive {}", tape.label, drive.name)));
    }
    back_end_mount(st, be, drive, &tape, &cmd).await?;
    metrics::histogram!("dmc_station_mount_seconds", "purpose" => "write").record(started.elapsed().as_secs_f64());
    Ok(tape)
}

/// How long a restore waits for a tape another drive holds.
pub(crate) const TAPE_PATIENCE: Duration = Duration::from_secs(3600);

/// Have the back-end mount a tape for reading, for `job` (what a
/// notification says needs the tape when it is not in the library).
pub(crate) async fn mount_for_read(
    st: &Arc<Station>,
    job: &str,
    be: &str,
    drive: &DriveRow,
    tape: &TapeRow,
) -> Result<()> {
    if tape.location != TapeLocation::Library {
        let why = format!(
            "tape {} is {} (image at {}): import it into the library first (smapp library import)",
            tape.label, tape.location, tape.path
        );
        super::notify::raise(
            st,
            proto::domain::NotificationKind::TapeNeeded,
            &format!("tape_needed:{}", tape.label),
            &format!("tape {}", tape.label),
            &format!("{job} needs it and it is not in the library: {why}"),
            None,
        )
        .await;
        bail!(Failure::refused(why));
    }
    // A tape another drive holds (a backup writing it, another restore
    // reading it) is waited for, not refused: it comes back to its slot
    // when that job is done with it.
    let deadline = tokio::time::Instant::now() + TAPE_PATIENCE;
    loop {
        match st.catalog.mount_tape(drive.id, tape.id, TapeClaim::Free).await {
            Ok(()) => break,
            Err(CatalogError::Conflict { what }) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(tape = %tape.label, drive = %drive.name, %what, "tape in use elsewhere; waiting");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // From here on the library works: the wait for a busy tape is not
    // mount time.
    let started = std::time::Instant::now();
    tokio::time::sleep(st.cfg.mount_delay).await;
    let cmd = Command::MountForRead {
        drive: drive.name.clone(),
        tape_label: tape.label.clone(),
    };
    back_end_mount(st, be, drive, tape, &cmd).await?;
    metrics::histogram!("dmc_station_mount_seconds", "purpose" => "read").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Have the back-end perform `cmd`, a mount of `tape` (already recorded in
/// the catalog); when it cannot, the catalog's mount is undone, leaving the
/// tape as it was.
async fn back_end_mount(st: &Arc<Station>, be: &str, drive: &DriveRow, tape: &TapeRow, cmd: &Command) -> Result<()> {
    let Err(e) = st.command_ok(be, cmd).await else {
        return Ok(());
    };
    if let Err(undo) = st
        .catalog
        .dismount_tape(drive.id, tape.id, tape.state, tape.bytes_written, tape.files_written)
        .await
    {
        tracing::error!(tape = %tape.label, drive = %drive.name, error = %undo, "the failed mount stays recorded in the catalog");
    }
    Err(e.context(format!("mounting tape {} in drive {}", tape.label, drive.name)))
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
) -> Result<u64> {
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
        (Ok(CommandReply::Dismounted { bytes, files, .. }), true) => (TapeState::Filling, *bytes, *files),
        (Err(_), true) => (TapeState::Filling, fresh.bytes_written, fresh.files_written),
        _ => (fresh.state, fresh.bytes_written, fresh.files_written),
    };
    tokio::time::sleep(st.cfg.dismount_delay).await;
    st.catalog.dismount_tape(drive.id, tape.id, state, bytes, files).await?;
    match reply {
        Ok(CommandReply::Dismounted { records_read, .. }) => Ok(records_read),
        Ok(_) => Ok(0),
        Err(e) => Err(e.context(format!("dismounting tape {} from drive {}", tape.label, drive.name))),
    }
}

/// A back-end finished a full tape with EOV labels: record it full, take a
/// scratch tape for the next volume of its media set, mount it in the same
/// drive (in the catalog; the back-end loads it when it gets the answer),
/// and tell the channels writing there.
/// Back-end `be`'s drive `drive_name` and tape `label` mounted in it.
async fn mounted_tape(st: &Arc<Station>, be: &str, drive_name: &str, label: &str) -> Result<(DriveRow, TapeRow)> {
    let be_id = st
        .registry
        .lock()
        .await
        .movers
        .get(be)
        .map(|m| m.id)
        .ok_or_else(|| anyhow!(Failure::refused(format!("{be} is not a registered mover"))))?;
    let drive = st
        .catalog
        .drives_of(be_id)
        .await?
        .into_iter()
        .find(|d| d.name == drive_name)
        .ok_or_else(|| anyhow!(Failure::not_found(format!("back-end {be} has no drive {drive_name}"))))?;
    let tape = st
        .catalog
        .tape_by_label(label)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("back-end {be} names unknown tape {label}"))))?;
    if tape.mounted_in.as_deref() != Some(drive_name) {
        bail!(Failure::conflict(format!(
            "tape {label} is not mounted in drive {drive_name} (catalog: {})",
            tape.mounted_in.as_deref().unwrap_or("not mounted")
        )));
    }
    Ok((drive, tape))
}

/// Most ABSs one [`proto::wire::StationRequest::TapeRecords`] may name.
const MAX_RECORDS_ASKED: usize = 4096;

/// The management records of `abs_ids` for the CATALOG of full tape
/// `label` in back-end `be`'s drive `drive_name` (see
/// [`proto::wire::StationRequest::TapeRecords`]): ABSs of channels `be` takes part in,
/// others left out; a copy pool's tape gets the copy's record.
pub(crate) async fn tape_records(
    st: &Arc<Station>,
    be: &str,
    drive_name: &str,
    label: &str,
    abs_ids: &[AbsId],
) -> Result<StationReply> {
    if abs_ids.len() > MAX_RECORDS_ASKED {
        bail!(Failure::invalid(format!(
            "records of at most {MAX_RECORDS_ASKED} ABSs at a time, not {}",
            abs_ids.len()
        )));
    }
    let (_, tape) = mounted_tape(st, be, drive_name, label).await?;
    let mut theirs = std::collections::BTreeSet::new();
    for c in st.channels_of(be).await {
        if let Some(row) = st.catalog.channel(c).await? {
            theirs.insert(row.abs_id);
        }
    }
    let copy_pool = st
        .catalog
        .pool_named(&tape.pool)
        .await?
        .is_some_and(|p| p.kind == PoolKind::Copy);
    let mut out = Vec::new();
    for &abs_id in abs_ids {
        if !theirs.contains(&abs_id) || out.iter().any(|r: &AbsRecord| r.abs_id == abs_id) {
            tracing::debug!(%be, %label, %abs_id, "no record for the CATALOG: not an ABS of the back-end's channels");
            continue;
        }
        let record = if copy_pool {
            st.catalog.copy_record(abs_id, &tape.pool).await?
        } else {
            st.catalog.management_record(abs_id).await?
        };
        out.push(AbsRecord { abs_id, record });
    }
    Ok(StationReply::Records(out))
}

pub(crate) async fn continue_media_set(
    st: &Arc<Station>,
    be: &str,
    drive_name: &str,
    full_label: &str,
    files: u32,
    bytes: u64,
) -> Result<StationReply> {
    let (drive, full) = mounted_tape(st, be, drive_name, full_label).await?;
    st.catalog
        .dismount_tape(drive.id, full.id, TapeState::Full, bytes, files)
        .await?;
    tokio::time::sleep(st.cfg.dismount_delay).await;
    let media_set = full.media_set.unwrap_or(MediaSetId::new(full.id.get()));
    let sequence = full.media_set_seq.unwrap_or(1) + 1;
    // The media set continues in the full tape's pool.
    let next = reserve_tape(st, &full.pool, true).await?;
    let mounted = async {
        st.catalog.set_tape_media_set(next.id, media_set, sequence).await?;
        tokio::time::sleep(st.cfg.mount_delay).await;
        st.catalog.mount_tape(drive.id, next.id, TapeClaim::Reserved).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = mounted {
        let _ = st.catalog.release_tape(next.id).await;
        registry::mount_failed(st, &drive).await;
        return Err(e.context(format!("continuing media set {media_set} after tape {full_label}")));
    }
    let next = st.catalog.tape(next.id).await?.unwrap_or(next);
    tracing::info!(full = %full_label, next = %next.label, %media_set, sequence, drive = %drive_name, "media set continues on the next tape");
    metrics::counter!("dmc_station_tape_switches_total").increment(1);
    registry::tape_mounted(st, &drive, &next).await;
    let running: Vec<ChannelId> = st.channels.lock().await.keys().copied().collect();
    for channel_id in running {
        st.note(
            channel_id,
            ChannelNote::TapeSwitched {
                drive_id: drive.id,
                full: full_label.to_string(),
                next: Box::new(next.clone()),
            },
        )
        .await;
    }
    Ok(StationReply::NextTape {
        tape_label: next.label.clone(),
        new: NewTape {
            pool: next.pool.clone(),
            media_set,
            sequence,
            block_size: st.cfg.block_size,
        },
    })
}

pub(crate) async fn record_segment(st: &Arc<Station>, p: &SegmentPlacement) -> Result<()> {
    let tape = st.catalog.tape_by_label(&p.tape_label).await?.ok_or_else(|| {
        anyhow!(Failure::not_found(format!(
            "segment {} of ABS {} placed on unknown tape {}",
            p.seq, p.abs_id, p.tape_label
        )))
    })?;
    let seg = NewSegment {
        abs_id: p.abs_id,
        seq: p.seq,
        tape_id: tape.id,
        tape_file: p.tape_file,
        bytes: p.bytes,
        data_bytes: p.data_bytes,
        track_count: u64::from(p.track_count),
        crc32c: p.crc32c,
    };
    st.catalog.record_segment(&seg).await?;
    metrics::counter!("dmc_station_segments_committed_total").increment(1);
    Ok(())
}

pub(crate) async fn record_metadata(st: &Arc<Station>, abs_id: AbsId, tape_label: &str, tape_file: u32) -> Result<()> {
    let Some(tape) = st.catalog.tape_by_label(tape_label).await? else {
        bail!(Failure::not_found(format!(
            "ABS {abs_id} metadata placed on unknown tape {tape_label}"
        )));
    };
    st.catalog.record_abs_metadata(abs_id, tape.id, tape_file).await?;
    Ok(())
}
