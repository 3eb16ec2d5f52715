//! An in-memory [`Spool`] with crash simulation, to test the release
//! protocol and its shells without a disk.
//!
//! ```text
//!  write ──► file bytes ──sync──► durable bytes        crash: every file goes back to its durable bytes;
//!  create/seal/remove: names change at once (atomic)    names stay as they were (renames are atomic)
//!  journal append or rewrite, channel record: durable at once
//! ```
//!
//! [`MemSpool::crash_after`] arms a crash: after that many more mutating
//! operations the spool stops (that operation and every later one fail
//! with [`SpoolError::Crashed`]) until [`MemSpool::restart`] applies it.
//! Every file deleted is logged ([`MemSpool::take_deleted`]) so a test can
//! check it against what the catalog held at the time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use proto::domain::{AbsId, SegmentSeq};

use super::release::{AbsPermit, DiscardPermit, ReleasePermit};
use super::resume::JournalEntry;
use super::store::{SegmentFile, Spool, SpoolError};

/// Why a file left the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Released(AbsId, SegmentSeq),
    Discarded(AbsId, SegmentSeq),
    /// A whole ABS directory.
    Removed(AbsId),
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Mem {
    dirs: BTreeSet<AbsId>,
    names: BTreeMap<String, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    fuel: Option<u64>,
    crashed: bool,
    deleted: Vec<Deleted>,
}

impl Mem {
    /// One mutating operation: fails once the armed crash happened.
    fn step(&mut self) -> Result<(), SpoolError> {
        if self.crashed {
            return Err(SpoolError::Crashed);
        }
        if let Some(f) = self.fuel.as_mut() {
            if *f == 0 {
                self.crashed = true;
                return Err(SpoolError::Crashed);
            }
            *f -= 1;
        }
        Ok(())
    }

    fn new_file(&mut self, name: String, durable: bool, data: Vec<u8>) -> u64 {
        let ino = self.next_inode;
        self.next_inode += 1;
        let durable = if durable { data.clone() } else { Vec::new() };
        self.inodes.insert(ino, Inode { data, durable });
        if let Some(old) = self.names.insert(name, ino) {
            self.inodes.remove(&old);
        }
        ino
    }

    fn unlink(&mut self, name: &str) -> bool {
        match self.names.remove(name) {
            Some(ino) => {
                self.inodes.remove(&ino);
                true
            }
            None => false,
        }
    }

    fn file(&self, name: &str) -> Result<&Inode, SpoolError> {
        self.names
            .get(name)
            .and_then(|i| self.inodes.get(i))
            .ok_or_else(|| SpoolError::Missing(name.to_string()))
    }
}

/// The in-memory spool (clones share it).
#[derive(Debug, Clone, Default)]
pub struct MemSpool {
    mem: Arc<Mutex<Mem>>,
}

fn open_name(abs: AbsId, seq: SegmentSeq) -> String {
    format!("abs-{abs}/seg-{seq:06}.open")
}

fn sealed_name(abs: AbsId, seq: SegmentSeq) -> String {
    format!("abs-{abs}/seg-{seq:06}.sealed")
}

fn journal_name(abs: AbsId) -> String {
    format!("abs-{abs}/sealed.journal")
}

fn channel_name(abs: AbsId) -> String {
    format!("abs-{abs}/channel")
}

impl MemSpool {
    pub fn new() -> MemSpool {
        MemSpool::default()
    }

    fn mem(&self) -> MutexGuard<'_, Mem> {
        // A test that panicked holding the lock has failed already.
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Crash after `ops` more mutating operations.
    pub fn crash_after(&self, ops: u64) {
        self.mem().fuel = Some(ops);
    }

    /// Whether the armed crash happened.
    pub fn crashed(&self) -> bool {
        self.mem().crashed
    }

    /// Crash now (if not already) and start again: every file keeps only
    /// its durable bytes.
    pub fn restart(&self) {
        let mut m = self.mem();
        for inode in m.inodes.values_mut() {
            inode.data = inode.durable.clone();
        }
        m.crashed = false;
        m.fuel = None;
    }

    /// The files deleted since the last call.
    pub fn take_deleted(&self) -> Vec<Deleted> {
        std::mem::take(&mut self.mem().deleted)
    }

    /// The names of the files the spool holds.
    pub fn names(&self) -> Vec<String> {
        self.mem().names.keys().cloned().collect()
    }

    /// Whether a sealed segment file is in the spool.
    pub fn has_sealed(&self, abs: AbsId, seq: SegmentSeq) -> bool {
        self.mem().names.contains_key(&sealed_name(abs, seq))
    }

    /// Damage a sealed file (a machine crash that lost some of its pages).
    pub fn tear(&self, abs: AbsId, seq: SegmentSeq) {
        let mut m = self.mem();
        if let Some(ino) = m.names.get(&sealed_name(abs, seq)).copied() {
            if let Some(f) = m.inodes.get_mut(&ino) {
                for data in [&mut f.data, &mut f.durable] {
                    let mid = data.len() / 2;
                    if let Some(b) = data.get_mut(mid) {
                        *b ^= 0x5a;
                    }
                }
            }
        }
    }
}

/// An open segment of a [`MemSpool`].
struct MemFile {
    mem: Arc<Mutex<Mem>>,
    ino: u64,
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut Mem) -> Result<T, SpoolError>) -> Result<T, SpoolError> {
        let mut m = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        m.step()?;
        f(&mut m)
    }
}

impl Write for MemFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let ino = self.ino;
        self.with(|m| {
            let f = m.inodes.get_mut(&ino).ok_or(SpoolError::Crashed)?;
            f.data.extend_from_slice(buf);
            Ok(buf.len())
        })
        .map_err(io::Error::other)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SegmentFile for MemFile {
    fn sync(&mut self, len: u64) -> Result<(), SpoolError> {
        let ino = self.ino;
        self.with(|m| {
            let f = m.inodes.get_mut(&ino).ok_or(SpoolError::Crashed)?;
            f.data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            f.durable = f.data.clone();
            Ok(())
        })
    }
}

impl Spool for MemSpool {
    fn save_channel(&self, abs_id: AbsId, record: &[u8]) -> Result<(), SpoolError> {
        let mut m = self.mem();
        m.step()?;
        m.dirs.insert(abs_id);
        m.new_file(channel_name(abs_id), true, record.to_vec());
        Ok(())
    }

    fn load_channel(&self, abs_id: AbsId, max: u64) -> Result<Vec<u8>, SpoolError> {
        let m = self.mem();
        let name = channel_name(abs_id);
        let data = &m.file(&name)?.data;
        if data.len() as u64 > max {
            return Err(SpoolError::TooLarge {
                path: name,
                len: data.len() as u64,
                max,
            });
        }
        Ok(data.clone())
    }

    fn list(&self) -> Vec<AbsId> {
        self.mem().dirs.iter().copied().collect()
    }

    fn create(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<Box<dyn SegmentFile>, SpoolError> {
        let mut m = self.mem();
        m.step()?;
        m.dirs.insert(abs_id);
        let ino = m.new_file(open_name(abs_id, seq), false, Vec::new());
        Ok(Box::new(MemFile {
            mem: self.mem.clone(),
            ino,
        }))
    }

    fn seal(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<(), SpoolError> {
        let mut m = self.mem();
        m.step()?;
        let from = open_name(abs_id, seq);
        let ino = m.names.remove(&from).ok_or(SpoolError::Missing(from))?;
        if let Some(old) = m.names.insert(sealed_name(abs_id, seq), ino) {
            m.inodes.remove(&old);
        }
        Ok(())
    }

    fn journal(&self, abs_id: AbsId, entry: &JournalEntry) -> Result<(), SpoolError> {
        let mut m = self.mem();
        m.step()?;
        let name = journal_name(abs_id);
        let line = entry.line();
        let ino = match m.names.get(&name) {
            Some(i) => *i,
            None => m.new_file(name, true, Vec::new()),
        };
        let f = m.inodes.get_mut(&ino).ok_or(SpoolError::Crashed)?;
        f.data.extend_from_slice(line.as_bytes());
        f.durable = f.data.clone();
        Ok(())
    }

    fn read_journal(&self, abs_id: AbsId) -> Vec<JournalEntry> {
        let m = self.mem();
        m.file(&journal_name(abs_id))
            .map(|f| JournalEntry::read_all(&f.data))
            .unwrap_or_default()
    }

    fn rewrite_journal(&self, abs_id: AbsId, entries: &[JournalEntry]) -> Result<(), SpoolError> {
        let mut m = self.mem();
        m.step()?;
        let text: String = entries.iter().map(JournalEntry::line).collect();
        m.new_file(journal_name(abs_id), true, text.into_bytes());
        Ok(())
    }

    fn open_sealed(&self, abs_id: AbsId, seq: SegmentSeq) -> Result<(u64, Box<dyn Read + Send>), SpoolError> {
        let m = self.mem();
        let data = m.file(&sealed_name(abs_id, seq))?.data.clone();
        Ok((data.len() as u64, Box::new(io::Cursor::new(data))))
    }

    fn release(&self, permit: ReleasePermit) -> Result<(), SpoolError> {
        let mut m = self.mem();
        m.step()?;
        if m.unlink(&sealed_name(permit.abs_id(), permit.seq())) {
            m.deleted.push(Deleted::Released(permit.abs_id(), permit.seq()));
        }
        Ok(())
    }

    fn discard(&self, permit: DiscardPermit) -> Result<(), SpoolError> {
        let mut m = self.mem();
        m.step()?;
        if m.unlink(&sealed_name(permit.abs_id(), permit.seq())) {
            m.deleted.push(Deleted::Discarded(permit.abs_id(), permit.seq()));
        }
        Ok(())
    }

    fn remove_abs(&self, permit: AbsPermit) -> Result<(), SpoolError> {
        let mut m = self.mem();
        m.step()?;
        let prefix = format!("abs-{}/", permit.abs_id());
        let gone: Vec<String> = m.names.keys().filter(|n| n.starts_with(&prefix)).cloned().collect();
        for n in gone {
            m.unlink(&n);
        }
        m.dirs.remove(&permit.abs_id());
        m.deleted.push(Deleted::Removed(permit.abs_id()));
        Ok(())
    }

    fn discard_open(&self, abs_id: AbsId) {
        let mut m = self.mem();
        let prefix = format!("abs-{abs_id}/");
        let gone: Vec<String> = m
            .names
            .keys()
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".open"))
            .cloned()
            .collect();
        for n in gone {
            m.unlink(&n);
        }
    }
}
