//! A fake `st` driver at the syscall boundary, for tests: a [`Syscalls`]
//! over an in-memory tape that behaves as Linux `st` documents it in
//! variable block mode:
//!
//! - `read` returns one record; a record longer than the read is `ENOMEM`
//!   (and the tape moves past it); at a tape mark it returns 0 and moves past
//!   the mark (`GMT_EOF`); at the end of data it returns 0 (`GMT_EOD`), then
//!   `EIO`.
//! - the write that crosses the early-warning point succeeds (`GMT_EOT`); the
//!   next write fails with `ENOSPC` and writes nothing; the one after is
//!   allowed, and so on; a write past the physical end fails with `EIO`.
//! - a write in the middle of the tape discards everything after it.
//! - `MTFSF` past the end of data and `MTBSF` past the beginning fail with
//!   `EIO`; after `MTBSF` the block number is unknown (-1).
//! - rewinding, `MTBSF`, ejecting or closing right after a write first
//!   writes a tape mark.
//! - reads and writes fail with `EINVAL` until `MTSETBLK 0` (variable).
//!
//! Every call is logged, so tests can check what reached the "kernel".

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::sys::{gmt, op, Fd, MtGet, MtOp, Syscalls};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Record(Vec<u8>),
    Mark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eof {
    None,
    /// Just crossed a tape mark.
    Mark,
    /// Met the end of data once.
    Eod,
    /// Past the early-warning point: the next write is refused.
    EomOk,
    /// The refused write happened: the next is allowed.
    EomAllowed,
    /// Physical end.
    EomError,
}

/// The emulated drive and medium.
#[derive(Debug)]
pub struct FakeTape {
    pub device: PathBuf,
    pub entries: Vec<Entry>,
    head: usize,
    fileno: i64,
    blkno: i64,
    eof: Eof,
    /// Record bytes before the early-warning point and the physical end.
    pub early_warning_at: usize,
    pub capacity: usize,
    pub block_size: Option<u32>,
    pub loaded: bool,
    pub write_protected: bool,
    open: Option<Fd>,
    last_was_write: bool,
    /// Every call, e.g. "write 10", "MTFSF 2", "MTIOCGET".
    pub calls: Vec<String>,
}

/// The fake; clones share one tape.
#[derive(Debug, Clone)]
pub struct FakeSt(pub Arc<Mutex<FakeTape>>);

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl FakeSt {
    /// A blank, loaded medium in `device` with an early-warning point and
    /// a physical end (in record bytes).
    pub fn new(device: &str, early_warning_at: usize, capacity: usize) -> FakeSt {
        FakeSt(Arc::new(Mutex::new(FakeTape {
            device: PathBuf::from(device),
            entries: Vec::new(),
            head: 0,
            fileno: 0,
            blkno: 0,
            eof: Eof::None,
            early_warning_at,
            capacity,
            block_size: Some(512),
            loaded: true,
            write_protected: false,
            open: None,
            last_was_write: false,
            calls: Vec::new(),
        })))
    }

    pub fn tape(&self) -> MutexGuard<'_, FakeTape> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FakeTape {
    fn used(&self) -> usize {
        self.entries[..self.head]
            .iter()
            .map(|e| match e {
                Entry::Record(r) => r.len(),
                Entry::Mark => 0,
            })
            .sum()
    }

    fn put(&mut self, e: Entry) {
        self.entries.truncate(self.head);
        self.entries.push(e);
        self.head += 1;
    }

    fn mark_after_write(&mut self) {
        if self.last_was_write {
            self.put(Entry::Mark);
            self.fileno += 1;
            self.blkno = 0;
            self.last_was_write = false;
        }
    }

    fn check_fd(&self, fd: Fd) -> io::Result<()> {
        if self.open == Some(fd) {
            Ok(())
        } else {
            Err(err(libc::EBADF))
        }
    }

    fn ready_for_data(&self) -> io::Result<()> {
        if !self.loaded {
            return Err(err(libc::EIO));
        }
        if self.block_size != Some(0) {
            return Err(err(libc::EINVAL));
        }
        Ok(())
    }

    fn op(&mut self, o: MtOp) -> io::Result<()> {
        let n = usize::try_from(o.count).map_err(|_| err(libc::EINVAL))?;
        match o.op {
            op::MTSETBLK => self.block_size = Some(o.count as u32),
            op::MTREW | op::MTOFFL => {
                self.mark_after_write();
                (self.head, self.fileno, self.blkno, self.eof) = (0, 0, 0, Eof::None);
                if o.op == op::MTOFFL {
                    self.loaded = false;
                }
            }
            op::MTWEOF => {
                if self.write_protected {
                    return Err(err(libc::EACCES));
                }
                for _ in 0..n {
                    self.put(Entry::Mark);
                }
                self.fileno += n as i64;
                if n > 0 {
                    self.blkno = 0;
                }
                self.last_was_write = false;
                if self.used() > self.early_warning_at {
                    self.eof = Eof::EomOk;
                }
            }
            op::MTFSF => {
                for _ in 0..n {
                    loop {
                        match self.entries.get(self.head) {
                            None => {
                                (self.eof, self.blkno) = (Eof::Eod, -1);
                                return Err(err(libc::EIO));
                            }
                            Some(Entry::Mark) => {
                                self.head += 1;
                                self.fileno += 1;
                                break;
                            }
                            Some(Entry::Record(_)) => self.head += 1,
                        }
                    }
                }
                (self.blkno, self.eof) = (0, Eof::Mark);
            }
            op::MTBSF => {
                self.mark_after_write();
                for _ in 0..n {
                    loop {
                        if self.head == 0 {
                            (self.fileno, self.blkno, self.eof) = (0, 0, Eof::None);
                            return Err(err(libc::EIO));
                        }
                        self.head -= 1;
                        if self.entries[self.head] == Entry::Mark {
                            self.fileno -= 1;
                            break;
                        }
                    }
                }
                (self.blkno, self.eof) = (-1, Eof::None);
            }
            op::MTBSR => {
                for _ in 0..n {
                    match self.head.checked_sub(1).map(|i| &self.entries[i]) {
                        Some(Entry::Record(_)) => {
                            self.head -= 1;
                            self.blkno -= 1;
                        }
                        _ => return Err(err(libc::EIO)),
                    }
                }
                self.eof = Eof::None;
            }
            op::MTEOM => {
                self.fileno += self.entries[self.head..].iter().filter(|e| **e == Entry::Mark).count() as i64;
                (self.head, self.blkno, self.eof) = (self.entries.len(), -1, Eof::Eod);
            }
            _ => return Err(err(libc::EINVAL)),
        }
        Ok(())
    }
}

impl Syscalls for FakeSt {
    fn open(&mut self, path: &Path, _writable: bool) -> io::Result<Fd> {
        let mut t = self.tape();
        t.calls.push(format!("open {}", path.display()));
        if path != t.device {
            return Err(err(libc::ENOENT));
        }
        if t.open.is_some() {
            return Err(err(libc::EBUSY));
        }
        t.open = Some(3);
        Ok(3)
    }

    fn close(&mut self, fd: Fd) -> io::Result<()> {
        let mut t = self.tape();
        t.calls.push("close".into());
        t.check_fd(fd)?;
        t.mark_after_write();
        t.open = None;
        Ok(())
    }

    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        let mut t = self.tape();
        t.calls.push(format!("read {}", buf.len()));
        t.check_fd(fd)?;
        t.ready_for_data()?;
        t.last_was_write = false;
        if t.eof == Eof::Eod {
            return Err(err(libc::EIO));
        }
        let head = t.head;
        match t.entries.get(head).cloned() {
            None => {
                t.eof = Eof::Eod;
                Ok(0)
            }
            Some(Entry::Mark) => {
                t.head += 1;
                (t.fileno, t.blkno, t.eof) = (t.fileno + 1, 0, Eof::Mark);
                Ok(0)
            }
            Some(Entry::Record(r)) => {
                t.head += 1;
                t.blkno += 1;
                t.eof = Eof::None;
                if r.len() > buf.len() {
                    return Err(err(libc::ENOMEM));
                }
                buf[..r.len()].copy_from_slice(&r);
                Ok(r.len())
            }
        }
    }

    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        let mut t = self.tape();
        t.calls.push(format!("write {}", buf.len()));
        t.check_fd(fd)?;
        t.ready_for_data()?;
        if t.write_protected {
            return Err(err(libc::EACCES));
        }
        match t.eof {
            Eof::EomOk => {
                t.eof = Eof::EomAllowed;
                return Err(err(libc::ENOSPC));
            }
            Eof::EomError => return Err(err(libc::EIO)),
            _ => {}
        }
        let used = t.used();
        if used + buf.len() > t.capacity {
            t.eof = Eof::EomError;
            return Err(err(libc::EIO));
        }
        t.put(Entry::Record(buf.to_vec()));
        t.blkno += 1;
        t.last_was_write = true;
        t.eof = if used + buf.len() > t.early_warning_at {
            Eof::EomOk
        } else {
            Eof::None
        };
        Ok(buf.len())
    }

    fn mtioctop(&mut self, fd: Fd, o: MtOp) -> io::Result<()> {
        let mut t = self.tape();
        t.calls.push(format!("{} {}", op_name(o.op), o.count));
        t.check_fd(fd)?;
        t.op(o)
    }

    fn mtiocget(&mut self, fd: Fd) -> io::Result<MtGet> {
        let mut t = self.tape();
        t.calls.push("MTIOCGET".into());
        t.check_fd(fd)?;
        let mut g = if t.loaded { gmt::ONLINE } else { gmt::DR_OPEN };
        if t.loaded && t.head == 0 {
            g |= gmt::BOT;
        }
        match t.eof {
            Eof::Mark => g |= gmt::EOF,
            Eof::Eod => g |= gmt::EOD,
            Eof::EomOk | Eof::EomError => g |= gmt::EOT,
            Eof::None | Eof::EomAllowed => {}
        }
        if t.write_protected {
            g |= gmt::WR_PROT;
        }
        Ok(MtGet {
            dsreg: i64::from(t.block_size.unwrap_or(0)),
            gstat: g,
            erreg: 0,
            fileno: t.fileno,
            blkno: t.blkno,
        })
    }

    fn mtiocpos(&mut self, fd: Fd) -> io::Result<u64> {
        let mut t = self.tape();
        t.calls.push("MTIOCPOS".into());
        t.check_fd(fd)?;
        Ok(t.head as u64)
    }
}

fn op_name(o: i16) -> &'static str {
    match o {
        op::MTFSF => "MTFSF",
        op::MTBSF => "MTBSF",
        op::MTBSR => "MTBSR",
        op::MTWEOF => "MTWEOF",
        op::MTREW => "MTREW",
        op::MTOFFL => "MTOFFL",
        op::MTEOM => "MTEOM",
        op::MTSETBLK => "MTSETBLK",
        _ => "MT?",
    }
}
