//! Operator work on the tape library: label scratch tapes into free slots,
//! export a tape (its image leaves the library), import one back (or a
//! blank image as a new scratch tape). The station keeps the catalog; a
//! back-end owns the images: it reads an image's labels and moves images
//! in and out of its library ([`Command::ExamineImage`],
//! [`Command::ImportImage`], [`Command::ExportImage`]). The catalog changes
//! only after the back-end confirms the move; a failed catalog update has
//! the back-end move the image back.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use proto::domain::{AbsId, Failure, TapeLocation};
use proto::wire::{Command, CommandReply, ImageContents};

use super::library::label_new_tape;
use super::Station;

/// Most tapes one `label` request creates.
const MAX_LABEL_COUNT: u32 = 1000;

/// Label `count` new scratch tapes of `pool`. Returns their labels.
pub(crate) async fn label(st: &Arc<Station>, pool: &str, count: u32) -> Result<Vec<String>> {
    if count == 0 || count > MAX_LABEL_COUNT {
        bail!(Failure::invalid(format!(
            "label 1 to {MAX_LABEL_COUNT} tapes at a time, not {count}"
        )));
    }
    let mut labels = Vec::new();
    for _ in 0..count {
        labels.push(label_new_tape(st, pool).await?.label);
    }
    Ok(labels)
}

/// The back-end that moves images for the station: the first connected
/// mover (by name) with drives.
async fn library_back_end(st: &Arc<Station>) -> Result<String> {
    let mut movers: Vec<_> = st
        .registry
        .lock()
        .await
        .movers
        .iter()
        .map(|(name, m)| (name.clone(), m.id))
        .collect();
    movers.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, id) in movers {
        let connected = st.peers.lock().await.contains_key(&name);
        if connected && !st.catalog.drives_of(id).await?.is_empty() {
            return Ok(name);
        }
    }
    bail!(Failure::retryable(
        "no back-end is connected to move tape images; retry when one has registered"
    ))
}

/// Ask back-end `be` to do library command `cmd`.
async fn ask(st: &Arc<Station>, be: &str, cmd: &Command) -> Result<CommandReply> {
    st.command_ok(be, cmd).await
}

/// A reply that does not answer the command.
fn unexpected(be: &str, reply: &CommandReply) -> Failure {
    Failure::internal(format!("back-end {be} answered a library command with {reply:?}"))
}

/// Export a tape: its image moves to `to_dir/LABEL.tap`.
pub(crate) async fn export(st: &Arc<Station>, label: &str, to_dir: &str) -> Result<()> {
    let tape = st
        .catalog
        .tape_by_label(label)
        .await?
        .ok_or_else(|| Failure::not_found(format!("no tape labelled {label} in the catalog")))?;
    match tape.location {
        TapeLocation::Library => {}
        TapeLocation::Exported => bail!(Failure::conflict(format!(
            "tape {label} is already exported (to {})",
            tape.path
        ))),
        TapeLocation::Destroyed => bail!(Failure::conflict(format!(
            "tape {label} is destroyed (its segments were recovered onto other tapes); its image {} stays where it was",
            tape.path
        ))),
    }
    if tape.in_use {
        bail!(Failure::conflict(format!(
            "tape {label} is in use (mounted in {}): wait for its channels to finish",
            tape.mounted_in.as_deref().unwrap_or("no drive yet, reserved")
        )));
    }
    let be = library_back_end(st).await?;
    let to = Path::new(to_dir)
        .join(format!("{label}.tap"))
        .to_string_lossy()
        .into_owned();
    let cmd = Command::ExportImage {
        label: label.to_string(),
        to,
    };
    let (dest, blank) = match ask(st, &be, &cmd).await? {
        CommandReply::ImageExported { path, blank } => (path, blank),
        other => bail!(unexpected(&be, &other)),
    };
    if let Err(e) = st.catalog.export_tape(label, &dest).await {
        let back = Command::ImportImage {
            from: dest.clone(),
            label: label.to_string(),
            blank,
        };
        if let Err(undo) = ask(st, &be, &back).await {
            tracing::error!(%label, image = %dest, error = %format!("{undo:#}"), "export failed and the image could not be put back");
        }
        return Err(e.into());
    }
    tracing::info!(%label, to = %dest, back_end = %be, "tape exported");
    Ok(())
}

/// What an import brought in: the tapes' labels, the ABSs recorded from
/// tapes this catalog never saw, and what was left out and why.
pub(crate) struct ImportDone {
    pub labels: Vec<String>,
    pub abs: Vec<AbsId>,
    pub notes: Vec<String>,
}

/// Import images: an exported tape of this catalog goes back to a free
/// slot; a blank image becomes a new scratch tape of `pool`; tapes this
/// catalog never saw are described and recorded together
/// ([`super::import`]).
pub(crate) async fn import(st: &Arc<Station>, paths: &[String], pool: &str) -> Result<ImportDone> {
    if paths.is_empty() {
        bail!(Failure::invalid("import: name at least one image"));
    }
    let held = st.catalog.tapes_in_library().await?;
    let room = u64::from(st.cfg.slots).saturating_sub(held);
    if (paths.len() as u64) > room {
        bail!(Failure::conflict(format!(
            "the library has {room} free slots of {}: not enough for {} tapes",
            st.cfg.slots,
            paths.len()
        )));
    }
    let be = library_back_end(st).await?;
    let mut done = ImportDone {
        labels: Vec::new(),
        abs: Vec::new(),
        notes: Vec::new(),
    };
    let mut foreign = Vec::new();
    for path in paths {
        let examine = Command::ExamineImage { path: path.clone() };
        let found = match ask(st, &be, &examine).await? {
            CommandReply::ImageExamined(found) => found,
            other => bail!(unexpected(&be, &other)),
        };
        match &found {
            ImageContents::Labelled(label) if st.catalog.tape_by_label(label).await?.is_none() => {
                foreign.push(path.clone());
            }
            _ => done.labels.push(import_one(st, &be, path, found, pool).await?),
        }
    }
    if !foreign.is_empty() {
        let i = super::import::import_foreign(st, &be, &foreign).await?;
        done.labels.extend(i.tapes);
        done.abs.extend(i.abs.into_iter().map(|(_, id)| id));
        done.notes = i.notes;
    }
    Ok(done)
}

/// Import one image this catalog knows the label of, or a blank one.
async fn import_one(st: &Arc<Station>, be: &str, path: &str, found: ImageContents, pool: &str) -> Result<String> {
    let be = be.to_string();
    match found {
        ImageContents::Blank => {
            let tape = label_new_tape(st, pool).await?;
            let cmd = Command::ImportImage {
                from: path.to_string(),
                label: tape.label.clone(),
                blank: true,
            };
            match ask(st, &be, &cmd).await? {
                CommandReply::ImageImported { .. } => {}
                other => bail!(unexpected(&be, &other)),
            }
            tracing::info!(label = %tape.label, from = %path, back_end = %be, "blank tape imported as scratch");
            Ok(tape.label)
        }
        ImageContents::Labelled(label) => {
            let Some(tape) = st.catalog.tape_by_label(&label).await? else {
                bail!(Failure::conflict(format!(
                    "{path} holds tape {label}, which this catalog lost meanwhile"
                )));
            };
            if tape.location == TapeLocation::Library {
                bail!(Failure::conflict(format!(
                    "tape {label} is already in the library (slot {}); {path} is a copy",
                    tape.slot.unwrap_or_default(),
                )));
            }
            let cmd = Command::ImportImage {
                from: path.to_string(),
                label: label.clone(),
                blank: false,
            };
            let dest = match ask(st, &be, &cmd).await? {
                CommandReply::ImageImported { path } => path,
                other => bail!(unexpected(&be, &other)),
            };
            if let Err(e) = st.catalog.import_tape(&label, &dest).await {
                let back = Command::ExportImage {
                    label: label.clone(),
                    to: path.to_string(),
                };
                if let Err(undo) = ask(st, &be, &back).await {
                    tracing::error!(%label, image = %dest, error = %format!("{undo:#}"), "import failed and the image could not be put back");
                }
                return Err(e.into());
            }
            tracing::info!(%label, from = %path, back_end = %be, "tape imported");
            Ok(label)
        }
    }
}
