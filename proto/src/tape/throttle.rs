//! A drive speed limit: [`Throttle`] wraps any [`BlockDevice`] and paces its
//! record transfers (reads and writes) to at most a number of bytes per
//! second, like a real drive's streaming speed, and accounts the time the
//! drive is busy and idle (the "drive busy/idle" metric).
//!
//! Time comes from a [`Clock`], so tests use a [`ManualClock`] whose `sleep`
//! only advances its own time: deterministic and instant.
//!
//! The model: a record of `n` bytes keeps the drive busy for `n / rate`
//! seconds, starting when the transfer is asked for or, if the drive is still
//! busy with earlier records, when it is free. After the transfer the caller
//! sleeps until the record's end. A gap between records shorter than the
//! *burst window* (default [`DEFAULT_BURST_WINDOW`]) counts as busy and does
//! not restart the schedule, so the overshoot of real sleeps is absorbed
//! instead of slowing the drive down; a longer gap is idle time. Tape marks,
//! spacing, locating and rewinding move no data and are not paced. A sync
//! (the drive flushing its buffer to the medium) is not paced either, but
//! the time it takes counts as busy, like a real drive writing out its
//! buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::block::{Block, BlockDevice, Position};
use super::TapeError;

/// Default burst window: gaps up to this long between transfers count as busy.
pub const DEFAULT_BURST_WINDOW: Duration = Duration::from_millis(20);

/// A source of time that can also wait.
pub trait Clock {
    /// Time since an arbitrary fixed origin (monotonic).
    fn now(&self) -> Duration;
    /// Wait `d`.
    fn sleep(&self, d: Duration);
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Duration {
        (**self).now()
    }
    fn sleep(&self, d: Duration) {
        (**self).sleep(d)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
    fn sleep(&self, d: Duration) {
        (**self).sleep(d)
    }
}

/// The real clock: monotonic time since its creation, `std::thread::sleep`.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// A clock for tests: time stands still until [`ManualClock::advance`] or
/// [`Clock::sleep`] moves it (sleeping never blocks). Share it with the
/// throttle by reference or `Arc`.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock::default()
    }
    /// Move time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(n, Ordering::SeqCst);
    }
    /// Total time slept (or advanced) so far.
    pub fn elapsed(&self) -> Duration {
        self.now()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
    fn sleep(&self, d: Duration) {
        self.advance(d)
    }
}

/// What a throttled drive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveStats {
    /// Time spent transferring records (paced), including short gaps within
    /// a burst.
    pub busy: Duration,
    /// Time with no transfer, from the throttle's creation to now.
    pub idle: Duration,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub records_written: u64,
    pub records_read: u64,
}

/// A [`BlockDevice`] limited to `bytes_per_sec` for record reads and writes
/// (see the module docs). Everything else, including the capacity queries,
/// is passed through.
#[derive(Debug)]
pub struct Throttle<D, C: Clock = SystemClock> {
    inner: D,
    clock: C,
    /// None: no limit (time is still accounted).
    bytes_per_sec: Option<u64>,
    burst_window: Duration,
    /// When the drive finishes its last scheduled transfer.
    busy_until: Duration,
    busy: Duration,
    idle: Duration,
    stats: DriveStats,
}

impl<D: BlockDevice> Throttle<D, SystemClock> {
    /// Limit `inner` to `bytes_per_sec` (None or 0: unlimited) with the real clock.
    pub fn new(inner: D, bytes_per_sec: Option<u64>) -> Self {
        Throttle::with_clock(inner, bytes_per_sec, SystemClock::new())
    }
}

impl<D: BlockDevice, C: Clock> Throttle<D, C> {
    /// Limit `inner` to `bytes_per_sec` (None or 0: unlimited), timed by `clock`.
    pub fn with_clock(inner: D, bytes_per_sec: Option<u64>, clock: C) -> Self {
        let now = clock.now();
        Throttle {
            inner,
            clock,
            bytes_per_sec: bytes_per_sec.filter(|&r| r > 0),
            burst_window: DEFAULT_BURST_WINDOW,
            busy_until: now,
            busy: Duration::ZERO,
            idle: Duration::ZERO,
            stats: DriveStats::default(),
        }
    }

    /// Set the burst window (see the module docs).
    pub fn with_burst_window(mut self, window: Duration) -> Self {
        self.burst_window = window;
        self
    }

    /// Change the speed limit (None or 0: unlimited).
    pub fn set_rate(&mut self, bytes_per_sec: Option<u64>) {
        self.bytes_per_sec = bytes_per_sec.filter(|&r| r > 0);
    }

    pub fn rate(&self) -> Option<u64> {
        self.bytes_per_sec
    }

    /// How long `bytes` take at the limit.
    pub fn transfer_time(&self, bytes: u64) -> Duration {
        match self.bytes_per_sec {
            None => Duration::ZERO,
            Some(rate) => {
                let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        }
    }

    /// Busy time so far.
    pub fn busy(&self) -> Duration {
        self.busy
    }

    /// Idle time so far, up to now.
    pub fn idle(&self) -> Duration {
        self.idle + self.clock.now().saturating_sub(self.busy_until)
    }

    /// Busy and idle time and bytes moved, up to now.
    pub fn stats(&self) -> DriveStats {
        DriveStats {
            busy: self.busy,
            idle: self.idle(),
            ..self.stats
        }
    }

    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn into_inner(self) -> D {
        self.inner
    }

    /// Run one transfer and pace it: `op` returns its result and the bytes moved.
    fn paced<T>(&mut self, op: impl FnOnce(&mut D) -> Result<(T, u64), TapeError>) -> Result<(T, u64), TapeError> {
        let asked = self.clock.now();
        let start = if asked <= self.busy_until.saturating_add(self.burst_window) {
            // Still busy, or a gap short enough to be part of the burst.
            self.busy_until
        } else {
            self.idle += asked - self.busy_until;
            asked
        };
        let res = op(&mut self.inner);
        let moved = match &res {
            Ok((_, n)) => *n,
            Err(_) => 0,
        };
        let scheduled_end = start.saturating_add(self.transfer_time(moved));
        let now = self.clock.now();
        // A transfer slower than the limit ends when it ended; otherwise at
        // its scheduled end (a sleep's overshoot falls in the burst window).
        let end = if now < scheduled_end {
            self.clock.sleep(scheduled_end - now);
            scheduled_end
        } else {
            now
        };
        self.busy += end.saturating_sub(start);
        self.busy_until = end;
        res
    }
}

impl<D: BlockDevice, C: Clock> BlockDevice for Throttle<D, C> {
    fn write_record(&mut self, data: &[u8]) -> Result<(), TapeError> {
        let n = data.len() as u64;
        self.paced(|d| d.write_record(data).map(|()| ((), n)))?;
        self.stats.bytes_written += n;
        self.stats.records_written += 1;
        Ok(())
    }
    fn write_filemark(&mut self) -> Result<(), TapeError> {
        self.inner.write_filemark()
    }
    fn read_block(&mut self, buf: &mut Vec<u8>, max_len: usize) -> Result<Block, TapeError> {
        let (b, n) = self.paced(|d| {
            let b = d.read_block(buf, max_len)?;
            let n = match b {
                Block::Record(n) => n as u64,
                Block::FileMark | Block::EndOfData => 0,
            };
            Ok((b, n))
        })?;
        if let Block::Record(_) = b {
            self.stats.bytes_read += n;
            self.stats.records_read += 1;
        }
        Ok(b)
    }
    fn skip_block(&mut self) -> Result<Block, TapeError> {
        self.inner.skip_block()
    }
    fn rewind(&mut self) -> Result<(), TapeError> {
        self.inner.rewind()
    }
    fn locate_file(&mut self, file: u32) -> Result<(), TapeError> {
        self.inner.locate_file(file)
    }
    fn sync(&mut self) -> Result<(), TapeError> {
        // Busy from the end of the last transfer (a gap within the burst
        // window) or from now (after idle time) until the flush is done.
        let asked = self.clock.now();
        let from = if asked > self.busy_until.saturating_add(self.burst_window) {
            self.idle += asked - self.busy_until;
            asked
        } else {
            self.busy_until
        };
        let res = self.inner.sync();
        let end = self.clock.now().max(self.busy_until);
        self.busy += end.saturating_sub(from);
        self.busy_until = end;
        res
    }
    fn position(&self) -> Position {
        self.inner.position()
    }
    fn records_read(&self) -> u64 {
        self.inner.records_read()
    }
    fn record_cost(&self, len: usize) -> u64 {
        self.inner.record_cost(len)
    }
    fn filemark_cost(&self) -> u64 {
        self.inner.filemark_cost()
    }
    fn capacity_left(&self) -> Option<u64> {
        self.inner.capacity_left()
    }
    fn early_warning_left(&self) -> Option<u64> {
        self.inner.early_warning_left()
    }
    fn early_warning(&self) -> bool {
        self.inner.early_warning()
    }
    fn erase_to_end(&mut self) -> Result<(), TapeError> {
        self.inner.erase_to_end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::block::{Capacity, MemTape};

    const MB: u64 = 1_000_000;

    /// A tape whose sync (buffer flush) takes `flush` of the manual clock.
    struct SlowSync<'a> {
        tape: MemTape,
        clock: &'a ManualClock,
        flush: Duration,
    }

    impl BlockDevice for SlowSync<'_> {
        fn write_record(&mut self, data: &[u8]) -> Result<(), TapeError> {
            self.tape.write_record(data)
        }
        fn write_filemark(&mut self) -> Result<(), TapeError> {
            self.tape.write_filemark()
        }
        fn read_block(&mut self, buf: &mut Vec<u8>, max_len: usize) -> Result<Block, TapeError> {
            self.tape.read_block(buf, max_len)
        }
        fn skip_block(&mut self) -> Result<Block, TapeError> {
            self.tape.skip_block()
        }
        fn rewind(&mut self) -> Result<(), TapeError> {
            self.tape.rewind()
        }
        fn locate_file(&mut self, file: u32) -> Result<(), TapeError> {
            self.tape.locate_file(file)
        }
        fn sync(&mut self) -> Result<(), TapeError> {
            self.clock.advance(self.flush);
            self.tape.sync()
        }
        fn position(&self) -> Position {
            self.tape.position()
        }
        fn records_read(&self) -> u64 {
            self.tape.records_read()
        }
    }

    #[test]
    fn a_sync_keeps_the_drive_busy_for_as_long_as_it_takes() {
        let clock = ManualClock::new();
        let dev = SlowSync {
            tape: MemTape::memory(),
            clock: &clock,
            flush: Duration::from_millis(300),
        };
        let mut t = Throttle::with_clock(dev, Some(MB), &clock);
        t.write_record(&vec![1u8; MB as usize]).unwrap();
        t.sync().unwrap();
        assert_eq!(clock.now(), Duration::from_millis(1300));
        assert_eq!((t.busy(), t.idle()), (Duration::from_millis(1300), Duration::ZERO));
        // After 2 s idle, a sync alone: 2 s idle, 0.3 s busy.
        clock.advance(Duration::from_secs(2));
        t.sync().unwrap();
        assert_eq!(
            (t.busy(), t.idle()),
            (Duration::from_millis(1600), Duration::from_secs(2))
        );
    }

    #[test]
    fn ten_megabytes_at_one_megabyte_per_second_take_ten_seconds() {
        let clock = ManualClock::new();
        let mut t = Throttle::with_clock(MemTape::memory(), Some(MB), &clock);
        let rec = vec![7u8; MB as usize];
        for _ in 0..10 {
            t.write_record(&rec).unwrap();
        }
        t.write_filemark().unwrap();
        assert_eq!(clock.now(), Duration::from_secs(10));
        assert_eq!(t.busy(), Duration::from_secs(10));
        assert_eq!(t.idle(), Duration::ZERO);
        // The drive sits idle for 5 s, then reads 2 MB (2 s).
        clock.advance(Duration::from_secs(5));
        assert_eq!(t.idle(), Duration::from_secs(5));
        t.rewind().unwrap();
        let mut buf = Vec::new();
        for _ in 0..2 {
            assert_eq!(t.read_block(&mut buf, MB as usize).unwrap(), Block::Record(MB as usize));
        }
        assert_eq!(clock.now(), Duration::from_secs(17));
        let s = t.stats();
        assert_eq!((s.busy, s.idle), (Duration::from_secs(12), Duration::from_secs(5)));
        assert_eq!((s.bytes_written, s.records_written), (10 * MB, 10));
        assert_eq!((s.bytes_read, s.records_read), (2 * MB, 2));
        assert_eq!(s.busy + s.idle, clock.now(), "busy + idle = all the time");
        // Spacing and tape marks move no data: no time.
        t.skip_block().unwrap();
        assert_eq!(clock.now(), Duration::from_secs(17));
    }

    #[test]
    fn short_gaps_are_busy_long_gaps_idle_and_slow_transfers_count_in_full() {
        let clock = ManualClock::new();
        let mut t =
            Throttle::with_clock(MemTape::memory(), Some(1000), &clock).with_burst_window(Duration::from_millis(10));
        t.write_record(&[0; 500]).unwrap(); // 0.5 s
        clock.advance(Duration::from_millis(5)); // within the window: busy
        t.write_record(&[0; 500]).unwrap(); // scheduled from 0.5 s: ends at 1.0 s
        assert_eq!(clock.now(), Duration::from_millis(1000));
        assert_eq!((t.busy(), t.idle()), (Duration::from_millis(1000), Duration::ZERO));
        clock.advance(Duration::from_millis(250)); // idle
        t.write_record(&[0; 100]).unwrap();
        assert_eq!(clock.now(), Duration::from_millis(1350));
        assert_eq!(
            (t.busy(), t.idle()),
            (Duration::from_millis(1100), Duration::from_millis(250))
        );
        // Unlimited: no pacing, and a transfer takes the time it takes.
        t.set_rate(Some(0));
        assert_eq!(t.rate(), None);
        t.write_record(&[0; 1000]).unwrap();
        assert_eq!(clock.now(), Duration::from_millis(1350));
        assert_eq!(t.transfer_time(123), Duration::ZERO);
        t.set_rate(Some(3));
        assert_eq!(t.transfer_time(1), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn errors_take_no_time_and_capacity_passes_through() {
        let clock = ManualClock::new();
        let cap = Capacity::new(100, 30).unwrap();
        let mut t = Throttle::with_clock(MemTape::memory().with_capacity(cap), Some(10), &clock);
        assert_eq!((t.capacity_left(), t.early_warning_left()), (Some(100), Some(70)));
        assert_eq!((t.record_cost(5), t.filemark_cost()), (14, 4));
        t.write_record(&[1; 80]).unwrap();
        assert!(t.early_warning());
        let before = clock.now();
        assert!(t.write_record(&[1; 80]).unwrap_err().is_end_of_medium());
        assert_eq!(clock.now(), before);
        assert_eq!(t.stats().records_written, 1);
        assert_eq!(t.into_inner().bytes().len(), 88);
    }

    #[test]
    fn the_system_clock_moves() {
        let c = SystemClock::new();
        let a = c.now();
        c.sleep(Duration::from_millis(1));
        assert!(c.now() >= a + Duration::from_millis(1));
    }
}
