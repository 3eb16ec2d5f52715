//! The library commands a back-end serves for the control station
//! ([`Command::ExamineImage`], [`Command::DescribeImage`], [`Command::ImportImage`],
//! [`Command::ExportImage`]): the station keeps the catalog, the back-end
//! owns the images and decides where they go in its library.
//!
//! Everything from the wire is checked before a file is touched: labels
//! follow the tape label grammar (1 to 6 of A–Z 0–9, so `LABEL.tap` stays
//! a file name in the library), outside paths are absolute, without `.` or
//! `..`, and not in the library. Errors are typed [`Failure`]s, so the
//! station passes them to the operator with their codes.

use std::path::{Component, Path, PathBuf};

use proto::domain::Failure;
use proto::wire::{Command, CommandReply, ImageContents};

use super::device::images::{ImageError, ImageLibrary};
use super::device::library::DirectoryLibrary;

impl From<ImageError> for Failure {
    fn from(e: ImageError) -> Failure {
        let message = e.to_string();
        match e {
            ImageError::NotFound { .. } => Failure::not_found(message),
            ImageError::Exists { .. } => Failure::conflict(message),
            ImageError::NotAFile { .. } => Failure::invalid(message),
            ImageError::Corrupt { .. } => Failure::corrupt(message),
            ImageError::InsideLibrary { .. } => Failure::refused(message),
            ImageError::Io { .. } => Failure::internal(message),
        }
    }
}

/// Whether `cmd` is one of the library commands [`serve`] answers.
pub fn is_library_command(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ExamineImage { .. }
            | Command::DescribeImage { .. }
            | Command::ImportImage { .. }
            | Command::ExportImage { .. }
    )
}

/// A label from the wire: the tape label grammar.
pub fn check_label(label: &str) -> Result<(), Failure> {
    proto::tape::node::check_label(label).map_err(|e| Failure::invalid(e.to_string()))
}

/// A path outside the library from the wire: absolute, normal components
/// only (no `.`, `..`), no NUL.
pub fn outside_path(raw: &str) -> Result<PathBuf, Failure> {
    let path = Path::new(raw);
    let normal = path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !path.is_absolute() || !normal || raw.contains('\0') || path.file_name().is_none() {
        return Err(Failure::invalid(format!(
            "image path {raw:?}: expected an absolute path of a file, without `.` or `..`"
        )));
    }
    Ok(path.to_path_buf())
}

/// Answer a library command against `lib`.
pub fn exec(lib: &mut dyn ImageLibrary, cmd: &Command) -> Result<CommandReply, Failure> {
    match cmd {
        Command::ExamineImage { path } => {
            let path = outside_path(path)?;
            Ok(CommandReply::ImageExamined(lib.read_label(&path)?))
        }
        Command::DescribeImage { path } => {
            let path = outside_path(path)?;
            let d = lib.describe_image(&path)?;
            Ok(CommandReply::ImageDescribed(Box::new(d.into())))
        }
        Command::ImportImage { from, label, blank } => {
            check_label(label)?;
            let path = outside_path(from)?;
            // Examined again: the image may have changed since the
            // station looked.
            let found = lib.read_label(&path)?;
            let expected = if *blank {
                ImageContents::Blank
            } else {
                ImageContents::Labelled(label.clone())
            };
            if found != expected {
                return Err(Failure::conflict(format!(
                    "{from} holds {}, not {} as expected: it changed since it was examined",
                    describe(&found),
                    describe(&expected)
                )));
            }
            let dest = lib.import_image(&path, label)?;
            Ok(CommandReply::ImageImported {
                path: dest.to_string_lossy().into_owned(),
            })
        }
        Command::ExportImage { label, to } => {
            check_label(label)?;
            let path = outside_path(to)?;
            let had_image = lib.export_image(label, &path)?;
            Ok(CommandReply::ImageExported {
                path: to.clone(),
                blank: !had_image,
            })
        }
        other => Err(Failure::invalid(format!("not a library command: {other:?}"))),
    }
}

fn describe(c: &ImageContents) -> String {
    match c {
        ImageContents::Blank => "a blank image".to_string(),
        ImageContents::Labelled(l) => format!("tape {l}"),
    }
}

/// Serve a library command for back-end `name` with library directory
/// `library` (None: the back-end was started without `--library`).
pub fn serve(name: &str, library: Option<&Path>, cmd: &Command) -> CommandReply {
    let Some(dir) = library else {
        return CommandReply::Error(Failure::refused(format!(
            "back-end {name} has no tape library (start it with --library DIR)"
        )));
    };
    let mut lib = DirectoryLibrary::new(dir, dir.join("mailbox"), 0, 0, 0);
    match exec(&mut lib, cmd) {
        Ok(reply) => reply,
        Err(f) => {
            tracing::warn!(back_end = name, failure = %f, ?cmd, "library command failed");
            CommandReply::Error(Failure {
                message: format!("back-end {name}: {}", f.message),
                ..f
            })
        }
    }
}

#[cfg(test)]
mod tests;
