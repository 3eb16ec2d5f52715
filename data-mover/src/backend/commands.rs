//! The station's drive commands to a back-end: mount a tape for writing
//! or reading, dismount it.

use anyhow::{anyhow, Result};
use proto::wire::{CommandReply, NewTape};

use super::context::BackEnd;

/// Mount `tape_label` (`new`: label it first) in `drive` for writing;
/// its writer hears of the tape.
pub fn mount_for_write(be: &BackEnd, drive: &str, tape_label: String, new: Option<&NewTape>) -> Result<CommandReply> {
    let d = be.drive(drive)?;
    let (files, bytes) = tokio::task::block_in_place(|| {
        let mut d = d.lock().map_err(|_| anyhow!("drive lock poisoned"))?;
        d.mount_for_write(&tape_label, new)
    })?;
    tracing::info!(%drive, %tape_label, files, "tape mounted for writing");
    if let Ok(w) = be.writer(drive) {
        w.tape_mounted(&tape_label);
    }
    Ok(CommandReply::Mounted {
        tape_label,
        files,
        bytes,
    })
}

/// Mount `tape_label` in `drive` for reading.
pub fn mount_for_read(be: &BackEnd, drive: &str, tape_label: String) -> Result<CommandReply> {
    let d = be.drive(drive)?;
    tokio::task::block_in_place(|| {
        let mut d = d.lock().map_err(|_| anyhow!("drive lock poisoned"))?;
        d.mount_for_read(&tape_label)
    })?;
    tracing::info!(%drive, %tape_label, "tape mounted for reading");
    Ok(CommandReply::Mounted {
        tape_label,
        files: 0,
        bytes: 0,
    })
}

/// Dismount the tape in `drive`.
pub fn dismount(be: &BackEnd, drive: &str) -> Result<CommandReply> {
    let d = be.drive(drive)?;
    let (tape_label, files, bytes, records_read) = tokio::task::block_in_place(|| {
        let mut d = d.lock().map_err(|_| anyhow!("drive lock poisoned"))?;
        let records_read = d.records_read();
        let (label, files, bytes) = d.dismount()?;
        Ok::<_, anyhow::Error>((label, files, bytes, records_read))
    })?;
    tracing::info!(%drive, %tape_label, files, bytes, records_read, "tape dismounted");
    Ok(CommandReply::Dismounted {
        tape_label,
        files,
        bytes,
        full: false,
        records_read,
    })
}
