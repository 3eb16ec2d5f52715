//! The storage the segment release protocol needs ([`Spool`]), its file
//! implementation on the spool directory ([`FileSpool`]; the in-memory one
//! is [`super::mem_spool::MemSpool`]), and [`execute`], which carries out
//! the core's storage effects and reports each back.
//!
//! ```text
//!  Release (pure) ──Effect──► execute ──► Spool: create · sync · seal · journal · release · discard · remove
//!        ▲                      │               (FileSpool: abs-<abs>/seg-<seq>.open|.sealed, sealed.journal, channel)
//!        └──── done events ─────┘  Upload, Ack, Create, Sync go back to the shell that holds the stream or the file
//! ```
//!
//! Stages of a segment on a file spool: Received = `seg-<seq>.open` being
//! written; Durable = its bytes handed to the kernel and cut to length
//! ([`SegmentFile::sync`]; not fsynced, see [`crate::spool`]: a resume
//! verifies every sealed file against its journal line); Sealed = renamed
//! `.sealed` and journaled (the journal line is fsynced); Released = the
//! file renamed into the slot directory to be written over.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use proto::domain::{AbsId, SegmentSeq};
use thiserror::Error;

use super::release::{AbsPermit, DiscardPermit, Effect, Effects, Release, ReleaseError, ReleasePermit};
use super::resume::JournalEntry;
use crate::spool::{Slots, SpoolDir};

/// Bytes buffered before a write to a spool file.
const WRITE_BUFFER: usize = 1 << 20;

/// A spool operation that failed.
#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}: not in the spool")]
    Missing(String),
    #[error("{path}: {len} bytes, more than the {max} allowed")]
    TooLarge { path: String, len: u64, max: u64 },
    #[error("the spool crashed (simulated)")]
    Crashed,
}

impl SpoolError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError + use<> {
        let path = path.display().to_string();
        move |source| SpoolError::Io { action, path, source }
    }
}

/// The protocol's storage failed, or the core refused an event.
#[derive(Debug, Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error("the release state of the ABS was poisoned by a panic")]
    Poisoned,
}

/// The open segment being written.
pub trait SegmentFile: Write + Send {
    /// Make the `len` bytes written durable (Durable) and cut anything an
    /// earlier use of the file left beyond them.
    fn sync(&mut self, len: u64) -> Result<(), SpoolError>;
}

/// What the release protocol needs of the front-end's spool. Names are the
/// implementation's; the protocol speaks in ids.
pub trait Spool: Send + Sync + fmt::Debug {
    /// Keep an ABS's channel record (its directory created), durably and
    /// atomically.
    fn save_channel(&self, abs_id: AbsId, record: &[u8]) -> Result<(), SpoolError>;
    /// An ABS's channel record, at most `max` bytes.
    fn load_channel(&self, abs_id: AbsId, max: u64) -> Result<Vec<u8>, SpoolError>;
    /// The ABSs the spool holds.
    fn list(&self) -> Vec<AbsId>;
    /// Create the open segment `seq` (Received), written from its start.
    fn create(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<Box<dyn SegmentFile>, SpoolError>;
    /// Rename the open segment sealed, atomically.
    fn seal(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<(), SpoolError>;
    /// Append a sealed segment's line to the ABS's journal, synced.
    fn journal(&self, abs_id: AbsId, entry: &JournalEntry) -> Result<(), SpoolError>;
    /// The journal's entries up to the first one that does not check.
    fn read_journal(&self, abs_id: AbsId) -> Vec<JournalEntry>;
    /// Replace the journal by `entries`, atomically and durably.
    fn rewrite_journal(&self, abs_id: AbsId, entries: &[JournalEntry]) -> Result<(), SpoolError>;
    /// A sealed segment's length and bytes.
    fn open_sealed(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<(u64, Box<dyn Read + Send>), SpoolError>;
    /// Free the spool file of a segment in the catalog (gone already: fine).
    fn release(&self, permit: ReleasePermit) -> Result<(), SpoolError>;
    /// Delete a sealed file past the resume point (gone already: fine).
    fn discard(&self, permit: DiscardPermit) -> Result<(), SpoolError>;
    /// Remove an ABS's directory and all in it.
    fn remove_abs(&self, permit: AbsPermit) -> Result<(), SpoolError>;
    /// Restart: drop the ABS's open segments and half-written records.
    fn discard_open(&self, abs_id: AbsId);
}

/// Lock an ABS's shared core.
pub fn lock(core: &Mutex<Release>) -> Result<MutexGuard<'_, Release>, ProtocolError> {
    core.lock().map_err(|_| ProtocolError::Poisoned)
}

/// Carry out the storage effects (seal, journal, release, discard,
/// remove) in order on `spool`, reporting each back to `core` and carrying
/// out what that yields in turn; returns the effects left for the caller
/// (create, sync, upload, ack), in order. Stops at the first failure.
pub fn execute(spool: &dyn Spool, core: &Mutex<Release>, effects: Effects) -> Result<Effects, ProtocolError> {
    let mut todo: std::collections::VecDeque<Effect> = effects.into();
    let mut out = Vec::new();
    while let Some(fx) = todo.pop_front() {
        let next = match fx {
            Effect::Seal(seq) => {
                spool.seal(lock(core)?.abs_id(), seq)?;
                lock(core)?.renamed(seq)?
            }
            Effect::Journal(entry) => {
                spool.journal(lock(core)?.abs_id(), &entry)?;
                lock(core)?.journaled(entry.seq)?
            }
            Effect::Release(permit) => {
                let seq = permit.seq();
                spool.release(permit)?;
                metrics::counter!("dmc_fe_segments_released_total").increment(1);
                lock(core)?.released(seq)?
            }
            Effect::CutJournal(entries) => {
                spool.rewrite_journal(lock(core)?.abs_id(), &entries)?;
                Vec::new()
            }
            Effect::Discard(permit) => {
                tracing::info!(abs = %permit.abs_id(), seq = %permit.seq(), "discarding a sealed segment past the resume point");
                spool.discard(permit)?;
                Vec::new()
            }
            Effect::RemoveAbs(permit) => {
                spool.remove_abs(permit)?;
                Vec::new()
            }
            other => {
                out.push(other);
                Vec::new()
            }
        };
        for (i, fx) in next.into_iter().enumerate() {
            todo.insert(i, fx);
        }
    }
    Ok(out)
}

/// Run blocking file work: in place on a multi-threaded runtime (so the
/// runtime's other tasks go on), directly elsewhere.
pub fn block<T>(f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The front-end's spool directory as a [`Spool`]; released files go to
/// its slots, to be written over (see [`crate::spool`]).
#[derive(Debug, Clone)]
pub struct FileSpool {
    dir: SpoolDir,
    slots: Slots,
}

impl FileSpool {
    pub fn new(dir: SpoolDir, slots: Slots) -> FileSpool {
        FileSpool { dir, slots }
    }

    pub fn dir(&self) -> &SpoolDir {
        &self.dir
    }
}

/// A spool file written through a large buffer; the write itself runs with
/// [`block`], so a slow disk does not stall the runtime's other tasks.
struct FileSegment {
    file: File,
    buf: Vec<u8>,
}

impl FileSegment {
    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (file, buf) = (&mut self.file, &self.buf);
        block(|| file.write_all(buf))?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for FileSegment {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.write_out()?;
        }
        if data.len() >= WRITE_BUFFER {
            // Large pieces go straight through.
            self.file.write_all(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

impl SegmentFile for FileSegment {
    fn sync(&mut self, len: u64) -> Result<(), SpoolError> {
        let to_io = |source| SpoolError::Io {
            action: "writing out",
            path: "a spool segment".into(),
            source,
        };
        self.write_out().map_err(to_io)?;
        // A reused spool file may be longer than this segment.
        Slots::finish(&self.file, len).map_err(to_io)
    }
}

impl Spool for FileSpool {
    fn save_channel(&self, abs_id: AbsId, record: &[u8]) -> Result<(), SpoolError> {
        let dir = self.dir.abs_dir(abs_id);
        fs::create_dir_all(&dir).map_err(SpoolError::io("creating", &dir))?;
        let path = self.dir.channel_file(abs_id);
        let tmp = path.with_extension("new");
        let mut f = File::create(&tmp).map_err(SpoolError::io("creating", &tmp))?;
        f.write_all(record)
            .and_then(|()| f.sync_all())
            .map_err(SpoolError::io("writing", &tmp))?;
        fs::rename(&tmp, &path).map_err(SpoolError::io("renaming into place", &tmp))?;
        sync_dir(&dir);
        Ok(())
    }

    fn load_channel(&self, abs_id: AbsId, max: u64) -> Result<Vec<u8>, SpoolError> {
        let path = self.dir.channel_file(abs_id);
        let len = fs::metadata(&path).map_err(SpoolError::io("reading", &path))?.len();
        if len > max {
            return Err(SpoolError::TooLarge {
                path: path.display().to_string(),
                len,
                max,
            });
        }
        fs::read(&path).map_err(SpoolError::io("reading", &path))
    }

    fn list(&self) -> Vec<AbsId> {
        let Ok(entries) = fs::read_dir(self.dir.dir()) else {
            return Vec::new();
        };
        let mut out: Vec<AbsId> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("abs-").and_then(|n| n.parse::<AbsId>().ok())
            })
            .collect();
        out.sort();
        out
    }

    fn create(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<Box<dyn SegmentFile>, SpoolError> {
        let dir = self.dir.abs_dir(abs_id);
        fs::create_dir_all(&dir).map_err(SpoolError::io("creating", &dir))?;
        let path = self.dir.open_segment(abs_id, seq);
        let file = self.slots.create(&path).map_err(SpoolError::io("creating", &path))?;
        Ok(Box::new(FileSegment {
            file,
            buf: Vec::with_capacity(WRITE_BUFFER),
        }))
    }

    fn seal(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<(), SpoolError> {
        let open = self.dir.open_segment(abs_id, seq);
        fs::rename(&open, self.dir.sealed_segment(abs_id, seq)).map_err(SpoolError::io("sealing", &open))
    }

    fn journal(&self, abs_id: AbsId, entry: &JournalEntry) -> Result<(), SpoolError> {
        let path = self.dir.journal(abs_id);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(SpoolError::io("opening", &path))?;
        f.write_all(entry.line().as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(SpoolError::io("appending to", &path))
    }

    fn read_journal(&self, abs_id: AbsId) -> Vec<JournalEntry> {
        fs::read(self.dir.journal(abs_id))
            .map(|text| JournalEntry::read_all(&text))
            .unwrap_or_default()
    }

    fn rewrite_journal(&self, abs_id: AbsId, entries: &[JournalEntry]) -> Result<(), SpoolError> {
        let path = self.dir.journal(abs_id);
        let tmp = path.with_extension("new");
        let text: String = entries.iter().map(JournalEntry::line).collect();
        let mut f = File::create(&tmp).map_err(SpoolError::io("creating", &tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(SpoolError::io("writing", &tmp))?;
        fs::rename(&tmp, &path).map_err(SpoolError::io("renaming into place", &tmp))?;
        sync_dir(&self.dir.abs_dir(abs_id));
        Ok(())
    }

    fn open_sealed(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<(u64, Box<dyn Read + Send>), SpoolError> {
        let path = self.dir.sealed_segment(abs_id, seq);
        let f = File::open(&path).map_err(SpoolError::io("opening", &path))?;
        let len = f.metadata().map_err(SpoolError::io("reading", &path))?.len();
        Ok((len, Box::new(f)))
    }

    fn release(&self, permit: ReleasePermit) -> Result<(), SpoolError> {
        let path = self.dir.sealed_segment(permit.abs_id(), permit.seq());
        if path.exists() {
            self.slots.release(&path);
        }
        Ok(())
    }

    fn discard(&self, permit: DiscardPermit) -> Result<(), SpoolError> {
        let path = self.dir.sealed_segment(permit.abs_id(), permit.seq());
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SpoolError::io("deleting", &path)(e)),
            _ => Ok(()),
        }
    }

    fn remove_abs(&self, permit: AbsPermit) -> Result<(), SpoolError> {
        let dir = self.dir.abs_dir(permit.abs_id());
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SpoolError::io("removing", &dir)(e)),
            _ => Ok(()),
        }
    }

    fn discard_open(&self, abs_id: AbsId) {
        let Ok(entries) = fs::read_dir(self.dir.abs_dir(abs_id)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".open") || name.ends_with(".new") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}
