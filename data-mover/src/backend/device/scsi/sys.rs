//! The syscall boundary of the SCSI tape drive: `open`, `read`, `write`,
//! `close` and the `st` driver's magnetic-tape ioctls (`MTIOCTOP`,
//! `MTIOCGET`, `MTIOCPOS`, from `<linux/mtio.h>`), as the [`Syscalls`]
//! trait, and [`Libc`], its real implementation, the only `unsafe` code of
//! the crate. Tests put a fake emulating the driver behind the trait.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A file descriptor the [`Syscalls`] implementation handed out.
pub type Fd = i32;

/// `struct mtop` operations (`<linux/mtio.h>`).
pub mod op {
    /// Forward space over filemarks; positioned after the last one.
    pub const MTFSF: i16 = 1;
    /// Backward space over filemarks; positioned before the last one.
    pub const MTBSF: i16 = 2;
    /// Backward space over records.
    pub const MTBSR: i16 = 4;
    /// Write filemarks (count 0: flush the drive's buffer to the medium).
    pub const MTWEOF: i16 = 5;
    /// Rewind.
    pub const MTREW: i16 = 6;
    /// Rewind and unload (eject) the medium.
    pub const MTOFFL: i16 = 7;
    /// Space to the end of recorded data.
    pub const MTEOM: i16 = 12;
    /// Set the block size (0: variable-length records).
    pub const MTSETBLK: i16 = 20;
}

/// `mt_gstat` bits of `struct mtget` (`GMT_*` in `<linux/mtio.h>`).
pub mod gmt {
    /// Just crossed a filemark.
    pub const EOF: i64 = 0x8000_0000;
    /// At the beginning of the tape.
    pub const BOT: i64 = 0x4000_0000;
    /// At or past the early-warning point (end of tape).
    pub const EOT: i64 = 0x2000_0000;
    /// At the end of recorded data (or of the tape).
    pub const EOD: i64 = 0x0800_0000;
    /// The medium is write-protected.
    pub const WR_PROT: i64 = 0x0400_0000;
    /// A medium is loaded and the drive is ready.
    pub const ONLINE: i64 = 0x0100_0000;
    /// No medium in the drive (door open).
    pub const DR_OPEN: i64 = 0x0004_0000;
}

/// `mt_dsreg` block-size field (`MT_ST_BLKSIZE_MASK`).
pub const MT_ST_BLKSIZE_MASK: i64 = 0x00ff_ffff;

/// One `struct mtop`: operation and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtOp {
    pub op: i16,
    pub count: i32,
}

/// The fields of `struct mtget` the drive uses, widened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtGet {
    pub dsreg: i64,
    pub gstat: i64,
    /// Error register (recovered errors since the last status, low word).
    pub erreg: i64,
    /// File number, -1 when unknown.
    pub fileno: i64,
    /// Block number within the file, -1 when unknown (e.g. after MTBSF).
    pub blkno: i64,
}

/// The system calls the SCSI tape drive makes, one method each.
pub trait Syscalls: Send {
    /// open(2) `path`, read-write or read-only.
    fn open(&mut self, path: &Path, writable: bool) -> io::Result<Fd>;
    fn close(&mut self, fd: Fd) -> io::Result<()>;
    /// read(2): one record in variable block mode; 0 at a filemark or the
    /// end of data.
    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize>;
    /// write(2): one record in variable block mode.
    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize>;
    /// ioctl(fd, MTIOCTOP, &mtop).
    fn mtioctop(&mut self, fd: Fd, op: MtOp) -> io::Result<()>;
    /// ioctl(fd, MTIOCGET, &mtget).
    fn mtiocget(&mut self, fd: Fd) -> io::Result<MtGet>;
    /// ioctl(fd, MTIOCPOS, &mtpos): the drive's logical block number.
    fn mtiocpos(&mut self, fd: Fd) -> io::Result<u64>;
}

/// `struct mtop` as the kernel lays it out.
#[repr(C)]
struct RawMtOp {
    mt_op: libc::c_short,
    mt_count: libc::c_int,
}

/// `struct mtget` as the kernel lays it out.
#[repr(C)]
#[derive(Default)]
struct RawMtGet {
    mt_type: libc::c_long,
    mt_resid: libc::c_long,
    mt_dsreg: libc::c_long,
    mt_gstat: libc::c_long,
    mt_erreg: libc::c_long,
    mt_fileno: libc::c_int,
    mt_blkno: libc::c_int,
}

/// `struct mtpos`.
#[repr(C)]
#[derive(Default)]
struct RawMtPos {
    mt_blkno: libc::c_long,
}

/// `_IOC(dir, 'm', nr, size)` with the asm-generic encoding (x86, x86-64,
/// arm, aarch64, riscv, s390; not powerpc, mips, sparc, alpha).
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'm' as u64) << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
/// `_IOW('m', 1, struct mtop)`.
pub const MTIOCTOP: u64 = ioc(IOC_WRITE, 1, std::mem::size_of::<RawMtOp>());
/// `_IOR('m', 2, struct mtget)`.
pub const MTIOCGET: u64 = ioc(IOC_READ, 2, std::mem::size_of::<RawMtGet>());
/// `_IOR('m', 3, struct mtpos)`.
pub const MTIOCPOS: u64 = ioc(IOC_READ, 3, std::mem::size_of::<RawMtPos>());

/// The real system calls, through `libc`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Libc;

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_len(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc64"
)))]
impl Syscalls for Libc {
    fn open(&mut self, path: &Path, writable: bool) -> io::Result<Fd> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a device path with a NUL byte"))?;
        let flags = libc::O_CLOEXEC | if writable { libc::O_RDWR } else { libc::O_RDONLY };
        // SAFETY: `c` is a NUL-terminated string that outlives the call;
        // open(2) only reads it and takes no other pointer.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        check(fd).map(|()| fd)
    }

    fn close(&mut self, fd: Fd) -> io::Result<()> {
        // SAFETY: close(2) takes no pointer; `fd` was returned by `open`
        // above and the drive closes it once (see `ScsiDrive::drop`).
        check(unsafe { libc::close(fd) })
    }

    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`,
        // which is valid, exclusively borrowed memory of that length.
        check_len(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`,
        // which is valid, borrowed memory of that length.
        check_len(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
    }

    fn mtioctop(&mut self, fd: Fd, op: MtOp) -> io::Result<()> {
        let raw = RawMtOp {
            mt_op: op.op,
            mt_count: op.count,
        };
        // SAFETY: MTIOCTOP reads one `struct mtop`; `raw` has its C layout
        // (repr(C), the size encoded in the request number) and lives
        // across the call. The kernel does not keep the pointer.
        check(unsafe { libc::ioctl(fd, MTIOCTOP as _, &raw as *const RawMtOp) })
    }

    // `c_long` is i64 only on 64-bit targets: the casts widen on 32-bit ones.
    #[allow(clippy::unnecessary_cast)]
    fn mtiocget(&mut self, fd: Fd) -> io::Result<MtGet> {
        let mut raw = RawMtGet::default();
        // SAFETY: MTIOCGET writes one `struct mtget` into `raw`, which has
        // its C layout (repr(C), the size encoded in the request number),
        // is exclusively borrowed and lives across the call.
        check(unsafe { libc::ioctl(fd, MTIOCGET as _, &mut raw as *mut RawMtGet) })?;
        Ok(MtGet {
            dsreg: raw.mt_dsreg as i64,
            gstat: raw.mt_gstat as i64,
            erreg: raw.mt_erreg as i64,
            fileno: i64::from(raw.mt_fileno),
            blkno: i64::from(raw.mt_blkno),
        })
    }

    fn mtiocpos(&mut self, fd: Fd) -> io::Result<u64> {
        let mut raw = RawMtPos::default();
        // SAFETY: MTIOCPOS writes one `struct mtpos` into `raw`, which has
        // its C layout and lives, exclusively borrowed, across the call.
        check(unsafe { libc::ioctl(fd, MTIOCPOS as _, &mut raw as *mut RawMtPos) })?;
        u64::try_from(raw.mt_blkno).map_err(|_| io::Error::other(format!("MTIOCPOS gave block {}", raw.mt_blkno)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn request_numbers_match_linux_mtio_h_on_64_bit() {
        // Values printed by a C program including <sys/mtio.h> on x86-64.
        assert_eq!(MTIOCTOP, 0x4008_6d01);
        assert_eq!(MTIOCGET, 0x8030_6d02);
        assert_eq!(MTIOCPOS, 0x8008_6d03);
    }

    #[test]
    fn a_missing_device_is_an_os_error() {
        let e = Libc.open(Path::new("/nonexistent/nst0"), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(Libc.open(Path::new("a\0b"), false).is_err());
    }
}
