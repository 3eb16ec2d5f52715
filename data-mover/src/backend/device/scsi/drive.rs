//! A Linux SCSI tape drive (`/dev/nstN`, the non-rewinding `st` device) as
//! a [`TapeDrive`], in variable block mode: one `write(2)` per record, one
//! `read(2)` per record, tape marks and spacing through `MTIOCTOP`, status
//! through `MTIOCGET`, all through [`Syscalls`].
//!
//! End of medium, as the `st` driver reports it: the write that crosses the
//! early-warning point succeeds; the next write fails with `ENOSPC` and
//! writes nothing, the one after succeeds, and so on until the physical end,
//! where writes fail (`EIO`, or `ENOSPC` twice in a row). This drive retries
//! a write refused with `ENOSPC` once, remembers the early warning
//! ([`BlockDevice::early_warning`], and `early_warning_left` = 0, so the
//! writer refuses further data files and finishes the tape in the zone),
//! and reports a second refusal as [`TapeError::EndOfMedium`]. It also asks
//! for `MTIOCGET`'s `GMT_EOT` after every tape mark, so a warning met while
//! writing a file is known before the next file is started.
//!
//! A read of 0 bytes is a tape mark or the end of data; `MTIOCGET`'s
//! `GMT_EOD` tells which.

use std::io;
use std::path::{Path, PathBuf};

use proto::tape::block::{Block, BlockDevice, Position};
use proto::tape::{Location, TapeError, MAX_BLOCK_SIZE};

use super::sys::{gmt, op, Fd, MtGet, MtOp, Syscalls, MT_ST_BLKSIZE_MASK};
use crate::backend::device::{corrupt, io_error, not_found, DriveStatus, TapeDrive};

/// A tape drive behind the `st` driver (see the module docs).
pub struct ScsiDrive<S: Syscalls> {
    sys: S,
    fd: Fd,
    device: PathBuf,
    pos: Position,
    records_read: u64,
    writable: bool,
    /// The drive reported the early-warning point (sticky until rewind).
    early_warning: bool,
    /// A write was refused at the physical end.
    end_of_medium: bool,
    /// The last read found the end of recorded data.
    at_eod: bool,
    /// Buffer for skipped records.
    scratch: Vec<u8>,
}

impl<S: Syscalls> std::fmt::Debug for ScsiDrive<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScsiDrive")
            .field("device", &self.device)
            .field("pos", &self.pos)
            .field("early_warning", &self.early_warning)
            .finish_non_exhaustive()
    }
}

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

impl<S: Syscalls> ScsiDrive<S> {
    /// Open `device` (read-write if `writable`), set variable block mode,
    /// check a medium is loaded, and rewind (a non-rewinding device may be
    /// anywhere, and `st` numbers files from where it last knew them).
    pub fn open(mut sys: S, device: &Path, writable: bool) -> Result<Self, TapeError> {
        let fd = sys.open(device, writable).map_err(|e| {
            io_error(
                Position::default(),
                format!("opening tape drive {}", device.display()),
                e,
            )
        })?;
        let mut d = ScsiDrive {
            sys,
            fd,
            device: device.to_path_buf(),
            pos: Position::default(),
            records_read: 0,
            writable,
            early_warning: false,
            end_of_medium: false,
            at_eod: false,
            scratch: Vec::new(),
        };
        let st = d.get("reading the drive status")?;
        if st.gstat & gmt::DR_OPEN != 0 || st.gstat & gmt::ONLINE == 0 {
            return Err(not_found(
                d.pos,
                format!("a loaded tape in {}", device.display()),
                format!("no medium ready (status bits {:#010x})", st.gstat),
            ));
        }
        d.op(op::MTSETBLK, 0, "setting variable block mode")?;
        d.rewind()?;
        Ok(d)
    }

    /// Rewind and eject the medium (before a changer takes it out).
    pub fn eject(mut self) -> Result<(), TapeError> {
        self.op(op::MTOFFL, 1, "ejecting the tape")
    }

    /// Space to the end of recorded data (`MTEOM`), where the drive's file
    /// number says which tape file that is.
    pub fn to_end_of_data(&mut self) -> Result<(), TapeError> {
        self.op(op::MTEOM, 1, "spacing to the end of data")?;
        let st = self.get("reading the status at the end of data")?;
        let file = u32::try_from(st.fileno).map_err(|_| {
            corrupt(
                self.pos,
                "drive status",
                "a file number at the end of data",
                format!("{}", st.fileno),
            )
        })?;
        self.pos = Position { file, record: 0 };
        self.at_eod = true;
        Ok(())
    }

    pub fn device(&self) -> &Path {
        &self.device
    }

    fn err(&self, action: impl Into<String>, e: io::Error) -> TapeError {
        io_error(self.pos, format!("{} on {}", action.into(), self.device.display()), e)
    }

    fn op(&mut self, code: i16, count: i32, action: &str) -> Result<(), TapeError> {
        self.sys
            .mtioctop(self.fd, MtOp { op: code, count })
            .map_err(|e| self.err(action, e))
    }

    fn get(&mut self, action: &str) -> Result<MtGet, TapeError> {
        self.sys.mtiocget(self.fd).map_err(|e| self.err(action, e))
    }

    fn block_number(&mut self) -> Result<u64, TapeError> {
        self.sys
            .mtiocpos(self.fd)
            .map_err(|e| self.err("reading the logical block number (MTIOCPOS)", e))
    }

    fn note_early_warning(&mut self, why: &str) {
        if !self.early_warning {
            tracing::warn!(device = %self.device.display(), file = self.pos.file, why, "tape early warning: the end of the medium is near");
        }
        self.early_warning = true;
    }

    /// One write(2) of the whole record.
    fn write_once(&mut self, data: &[u8]) -> io::Result<()> {
        loop {
            match self.sys.write(self.fd, data) {
                Ok(n) if n == data.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "the drive took {n} of the record's {} bytes",
                        data.len()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn end_of_medium(&mut self, needed: usize) -> TapeError {
        self.end_of_medium = true;
        TapeError::EndOfMedium {
            at: Box::new(Location::record(self.pos.file, self.pos.record)),
            needed: needed as u64,
            available: 0,
        }
    }

    fn check_writable(&self) -> Result<(), TapeError> {
        if self.writable {
            return Ok(());
        }
        Err(self.err(
            "writing",
            io::Error::new(io::ErrorKind::PermissionDenied, "the drive was opened read-only"),
        ))
    }
}

impl<S: Syscalls> Drop for ScsiDrive<S> {
    fn drop(&mut self) {
        if let Err(e) = self.sys.close(self.fd) {
            tracing::warn!(device = %self.device.display(), error = %e, "closing the tape drive failed");
        }
    }
}

impl<S: Syscalls> BlockDevice for ScsiDrive<S> {
    fn write_record(&mut self, data: &[u8]) -> Result<(), TapeError> {
        self.check_writable()?;
        if data.is_empty() || data.len() > MAX_BLOCK_SIZE {
            return Err(TapeError::Invalid {
                what: "record".into(),
                expected: format!("1 to {MAX_BLOCK_SIZE} bytes"),
                found: format!("{} bytes", data.len()),
            });
        }
        self.at_eod = false;
        match self.write_once(data) {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::ENOSPC) => {
                // The early warning: this write wrote nothing; the next is allowed.
                self.note_early_warning("a write was refused with ENOSPC");
                match self.write_once(data) {
                    Ok(()) => {}
                    Err(e) if matches!(errno(&e), Some(libc::ENOSPC | libc::EIO)) => {
                        return Err(self.end_of_medium(data.len()))
                    }
                    Err(e) => return Err(self.err("writing a record", e)),
                }
            }
            Err(e) if self.early_warning && errno(&e) == Some(libc::EIO) => return Err(self.end_of_medium(data.len())),
            Err(e) => return Err(self.err("writing a record", e)),
        }
        self.pos.record += 1;
        Ok(())
    }

    fn write_filemark(&mut self) -> Result<(), TapeError> {
        self.check_writable()?;
        self.at_eod = false;
        match self.op(op::MTWEOF, 1, "writing a tape mark") {
            Ok(()) => {}
            Err(TapeError::Io { source, .. }) if errno(&source) == Some(libc::ENOSPC) => {
                self.note_early_warning("a tape mark was refused with ENOSPC");
                if let Err(e) = self.op(op::MTWEOF, 1, "writing a tape mark") {
                    return Err(match e {
                        TapeError::Io { source, .. } if matches!(errno(&source), Some(libc::ENOSPC | libc::EIO)) => {
                            self.end_of_medium(0)
                        }
                        other => other,
                    });
                }
            }
            Err(e) => return Err(e),
        }
        self.pos = Position {
            file: self.pos.file + 1,
            record: 0,
        };
        if self.get("reading the status after a tape mark")?.gstat & gmt::EOT != 0 {
            self.note_early_warning("GMT_EOT after a tape mark");
        }
        Ok(())
    }

    fn read_block(&mut self, buf: &mut Vec<u8>, max_len: usize) -> Result<Block, TapeError> {
        if self.at_eod {
            buf.clear();
            return Ok(Block::EndOfData);
        }
        let limit = max_len.min(MAX_BLOCK_SIZE);
        // One byte more than allowed: a longer record shows as too long
        // (or as ENOMEM, st's "record longer than the read").
        buf.resize(limit + 1, 0);
        let res = loop {
            match self.sys.read(self.fd, buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        match res {
            Ok(0) => {
                buf.clear();
                if self.get("reading the status after a 0-byte read")?.gstat & gmt::EOD != 0 {
                    self.at_eod = true;
                    return Ok(Block::EndOfData);
                }
                self.pos = Position {
                    file: self.pos.file + 1,
                    record: 0,
                };
                Ok(Block::FileMark)
            }
            Ok(n) if n <= limit => {
                buf.truncate(n);
                self.pos.record += 1;
                self.records_read += 1;
                Ok(Block::Record(n))
            }
            Ok(_) => self.too_long(buf, limit),
            Err(e) if errno(&e) == Some(libc::ENOMEM) => self.too_long(buf, limit),
            Err(e) => {
                // A read at (or after) the end of data fails on some drives.
                if self.get("reading the status after a failed read")?.gstat & gmt::EOD != 0 {
                    buf.clear();
                    self.at_eod = true;
                    return Ok(Block::EndOfData);
                }
                Err(self.err("reading a record", e))
            }
        }
    }

    fn skip_block(&mut self) -> Result<Block, TapeError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = self.read_block(&mut scratch, MAX_BLOCK_SIZE);
        self.scratch = scratch;
        if let Ok(Block::Record(_)) = res {
            self.records_read -= 1;
        }
        res
    }

    fn rewind(&mut self) -> Result<(), TapeError> {
        self.op(op::MTREW, 1, "rewinding")?;
        self.pos = Position::default();
        self.at_eod = false;
        self.early_warning = false;
        self.end_of_medium = false;
        Ok(())
    }

    fn locate_file(&mut self, file: u32) -> Result<(), TapeError> {
        let cur = self.pos;
        if file == 0 {
            return self.rewind();
        }
        if cur.file == file && cur.record == 0 {
            return Ok(());
        }
        if file > cur.file {
            return self.space_files_forward(file - cur.file);
        }
        // Before the mark that ends tape file `file - 1`, then over it.
        self.op(op::MTBSF, (cur.file - file + 1) as i32, "spacing back over tape marks")?;
        self.at_eod = false;
        self.early_warning = false;
        self.pos = Position {
            file: file - 1,
            record: 0,
        };
        self.op(op::MTFSF, 1, "spacing forward over a tape mark")?;
        self.pos = Position { file, record: 0 };
        Ok(())
    }

    fn sync(&mut self) -> Result<(), TapeError> {
        if !self.writable {
            return Ok(());
        }
        // Writing 0 tape marks makes the drive write its buffer to the medium.
        self.op(op::MTWEOF, 0, "flushing the drive's buffer")
    }

    fn position(&self) -> Position {
        self.pos
    }

    fn records_read(&self) -> u64 {
        self.records_read
    }

    fn early_warning_left(&self) -> Option<u64> {
        // A real drive does not say how far the warning is, only when it is reached.
        self.early_warning.then_some(0)
    }

    fn early_warning(&self) -> bool {
        self.early_warning
    }
}

impl<S: Syscalls> ScsiDrive<S> {
    /// A record longer than `limit` was met: space back over it and refuse it.
    fn too_long(&mut self, buf: &mut Vec<u8>, limit: usize) -> Result<Block, TapeError> {
        buf.clear();
        self.op(op::MTBSR, 1, "spacing back over a record too long to read")?;
        Err(corrupt(
            self.pos,
            "record",
            format!("a record of at most {limit} bytes"),
            "a longer one (the drive is back before it)",
        ))
    }
}

impl<S: Syscalls> TapeDrive for ScsiDrive<S> {
    fn space_files_forward(&mut self, count: u32) -> Result<(), TapeError> {
        if count == 0 {
            return Ok(());
        }
        let from = self.pos;
        let count_i = i32::try_from(count)
            .map_err(|_| not_found(from, format!("{count} tape marks"), "more than MTFSF can space"))?;
        if let Err(e) = self.op(op::MTFSF, count_i, "spacing forward over tape marks") {
            let st = self.get("reading the status after spacing failed")?;
            self.at_eod = true;
            let file = u32::try_from(st.fileno).unwrap_or(from.file);
            self.pos = Position {
                file,
                record: u64::try_from(st.blkno).unwrap_or(0),
            };
            tracing::debug!(device = %self.device.display(), error = %e, "MTFSF stopped early");
            return Err(not_found(
                from,
                format!("tape file {}", u64::from(from.file) + u64::from(count)),
                format!("the end of data in tape file {file}"),
            ));
        }
        self.at_eod = false;
        self.pos = Position {
            file: from.file + count,
            record: 0,
        };
        Ok(())
    }

    fn space_files_back(&mut self, count: u32) -> Result<(), TapeError> {
        if count == 0 {
            return Ok(());
        }
        let from = self.pos;
        let Some(target) = from.file.checked_sub(count) else {
            self.rewind()?;
            return Err(not_found(
                from,
                format!("{count} tape marks before tape file {}", from.file),
                format!("{} (then the beginning of the tape)", from.file),
            ));
        };
        self.op(op::MTBSF, count as i32, "spacing back over tape marks")?;
        self.at_eod = false;
        self.early_warning = false;
        // st cannot say the record number after MTBSF: count it from
        // logical block numbers (records and tape marks from the beginning).
        let end = self.block_number()?;
        let start = if target == 0 {
            0 // the beginning of the tape is block 0
        } else {
            self.op(op::MTBSF, 1, "spacing back to the start of the file")?;
            self.op(op::MTFSF, 1, "spacing back to the start of the file")?;
            let start = self.block_number()?;
            self.op(op::MTFSF, 1, "spacing to the end of the file")?;
            self.op(op::MTBSF, 1, "spacing to the end of the file")?;
            start
        };
        self.pos = Position {
            file: target,
            record: end.checked_sub(start).ok_or_else(|| {
                corrupt(
                    from,
                    "logical block numbers",
                    format!("the end of tape file {target} after its start (block {start})"),
                    format!("block {end}"),
                )
            })?,
        };
        Ok(())
    }

    fn status(&mut self) -> Result<DriveStatus, TapeError> {
        let st = self.get("reading the drive status")?;
        if st.gstat & gmt::EOT != 0 {
            self.note_early_warning("GMT_EOT in the status");
        }
        let reported = (u32::try_from(st.fileno), u64::try_from(st.blkno));
        let position = match reported {
            (Ok(file), Ok(record)) => Position { file, record },
            _ => self.pos,
        };
        if position != self.pos {
            tracing::warn!(device = %self.device.display(), drive = ?position, kept = ?self.pos, "the drive reports another position than the one kept");
        }
        let block = (st.dsreg & MT_ST_BLKSIZE_MASK) as u32;
        Ok(DriveStatus {
            position,
            online: st.gstat & gmt::ONLINE != 0,
            write_protected: st.gstat & gmt::WR_PROT != 0,
            beginning_of_tape: st.gstat & gmt::BOT != 0,
            at_filemark: st.gstat & gmt::EOF != 0,
            end_of_data: st.gstat & gmt::EOD != 0 || self.at_eod,
            early_warning: self.early_warning,
            end_of_medium: self.end_of_medium,
            block_size: (block != 0).then_some(block),
        })
    }
}
