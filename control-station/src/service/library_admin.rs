//! Operator work on the tape library: label scratch tapes into free slots,
//! export a tape (its image leaves the library directory), import one back
//! (or a blank image as a new scratch tape). Images move with `rename`
//! (copy and remove across file systems), and the catalog changes only
//! after the image is where it says; a failed catalog update moves it back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use proto::tape::block::SimhTape;
use proto::tape::volume::TapeReader;

use proto::domain::{Failure, TapeLocation};

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

/// Move a file, across file systems too.
fn move_file(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        bail!(Failure::conflict(format!(
            "{} already exists; not overwriting it",
            to.display()
        )));
    }
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", to.display()))?;
    std::fs::remove_file(from).with_context(|| format!("removing {}", from.display()))
}

/// Export a tape: its image moves to `to_dir/LABEL.tap`.
pub(crate) async fn export(st: &Arc<Station>, label: &str, to_dir: &str) -> Result<()> {
    let tape = st
        .catalog
        .tape_by_label(label)
        .await?
        .ok_or_else(|| Failure::not_found(format!("no tape labelled {label} in the catalog")))?;
    if tape.location == TapeLocation::Exported {
        bail!(Failure::conflict(format!(
            "tape {label} is already exported (to {})",
            tape.path
        )));
    }
    if tape.in_use {
        bail!(Failure::conflict(format!(
            "tape {label} is in use (mounted in {}): wait for its channels to finish",
            tape.mounted_in.as_deref().unwrap_or("no drive yet, reserved")
        )));
    }
    let dir = PathBuf::from(to_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dest = dir.join(format!("{label}.tap"));
    let src = PathBuf::from(&tape.path);
    if src.exists() {
        move_file(&src, &dest)?;
    } else {
        // A scratch tape never mounted has no image yet: export it blank.
        std::fs::File::create(&dest).with_context(|| format!("creating {}", dest.display()))?;
    }
    if let Err(e) = st.catalog.export_tape(label, &dest.to_string_lossy()).await {
        if src.exists() || move_file(&dest, &src).is_err() {
            tracing::error!(%label, image = %dest.display(), "export failed and the image could not be put back");
        }
        return Err(e.into());
    }
    tracing::info!(%label, to = %dest.display(), "tape exported");
    Ok(())
}

/// What an image to import holds.
enum Found {
    Blank,
    Labelled(String),
}

fn examine(path: &Path) -> Result<Found> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(Failure::not_found(format!("reading {}: {e}", path.display())))
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    };
    if len == 0 {
        return Ok(Found::Blank);
    }
    let corrupt = |what: &str, e: &dyn std::fmt::Display| Failure::corrupt(format!("{what} {}: {e}", path.display()));
    let dev = SimhTape::open(path).map_err(|e| corrupt("opening as a SIMH tape image", &e))?;
    let reader = TapeReader::open(dev).map_err(|e| corrupt("reading the labels of", &e))?;
    Ok(Found::Labelled(reader.label().to_string()))
}

/// Import an image: an exported tape of this catalog goes back to a free
/// slot; a blank image becomes a new scratch tape of `pool`. Returns the
/// tape's label.
pub(crate) async fn import(st: &Arc<Station>, path: &str, pool: &str) -> Result<String> {
    let src = PathBuf::from(path);
    let held = st.catalog.tapes_in_library().await?;
    if held >= u64::from(st.cfg.slots) {
        bail!(Failure::conflict(format!(
            "the library is full: its {} slots all hold tapes",
            st.cfg.slots
        )));
    }
    std::fs::create_dir_all(&st.cfg.library)
        .with_context(|| format!("creating the library directory {}", st.cfg.library.display()))?;
    match examine(&src)? {
        Found::Blank => {
            let tape = label_new_tape(st, pool).await?;
            let dest = PathBuf::from(&tape.path);
            move_file(&src, &dest)?;
            tracing::info!(label = %tape.label, from = %src.display(), "blank tape imported as scratch");
            Ok(tape.label)
        }
        Found::Labelled(label) => {
            let Some(tape) = st.catalog.tape_by_label(&label).await? else {
                bail!(Failure::refused(format!(
                    "{} holds tape {label}, which this catalog never wrote; importing foreign tapes is not supported",
                    src.display()
                )));
            };
            if tape.location == TapeLocation::Library {
                bail!(Failure::conflict(format!(
                    "tape {label} is already in the library (slot {}); {} is a copy",
                    tape.slot.unwrap_or_default(),
                    src.display()
                )));
            }
            let dest = st.cfg.library.join(format!("{label}.tap"));
            move_file(&src, &dest)?;
            if let Err(e) = st.catalog.import_tape(&label, &dest.to_string_lossy()).await {
                let _ = move_file(&dest, &src);
                return Err(e.into());
            }
            tracing::info!(%label, from = %src.display(), "tape imported");
            Ok(label)
        }
    }
}
