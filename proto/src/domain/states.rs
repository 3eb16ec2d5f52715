//! States, kinds and levels: what the catalog records and operators read.

use thiserror::Error;

use super::text_enum::text_enum;

/// A text that names no value of the type it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {value:?}: expected one of {expected:?}")]
pub struct ParseDomainError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

text_enum! {
    /// A backup's level: a full backup, a differential relative to the last
    /// full (cumulative) or to the last backup of any kind (incremental), or
    /// a full merged on the movers from a chain (synthetic; made by `merge`,
    /// never asked of a backup).
    pub enum Level as "level" {
        Full = "full",
        Cumulative = "cumulative",
        Incremental = "incremental",
        Synthetic = "synthetic" [hidden],
    }
}

impl Level {
    /// The kind of ABS a backup of this level makes.
    pub fn kind(self) -> AbsKind {
        match self {
            Level::Full | Level::Synthetic => AbsKind::Full,
            Level::Cumulative | Level::Incremental => AbsKind::Differential,
        }
    }

    /// A full or a synthetic full: a chain starts here.
    pub fn is_full(self) -> bool {
        self.kind() == AbsKind::Full
    }
}

text_enum! {
    /// What an ABS holds: every track of the object, or the tracks changed
    /// since its base.
    pub enum AbsKind as "ABS kind" {
        Full = "full",
        Differential = "differential",
    }
}

text_enum! {
    /// An ABS's life: being written, complete on tape (restorable),
    /// failed (with a reason), or deleted (`smapp delete`: no longer listed
    /// or restorable; its row stays so that its id is never reused).
    pub enum AbsState as "ABS state" {
        Running = "running",
        Complete = "complete",
        Failed = "failed",
        Deleted = "deleted",
    }
}

text_enum! {
    /// A tape's fill: blank, being written, or finished.
    pub enum TapeState as "tape state" {
        Scratch = "scratch",
        Filling = "filling",
        Full = "full",
    }
}

text_enum! {
    /// What a storage pool is for: primary pools take backups; copy pools
    /// hold second copies of the ABSs of the primary pools they are
    /// attached to (seed 000, copy storage pools); catalog pools hold the
    /// catalog's own backups (seed 000 claim 12) and nothing else.
    pub enum PoolKind as "pool kind" {
        Primary = "primary",
        Copy = "copy",
        Catalog = "catalog",
    }
}

text_enum! {
    /// Whether one copy of a segment can be read: `damaged` once a read
    /// found it unreadable or not matching its checksum (an audit, or a
    /// restore that fell back to another copy).
    pub enum SegmentStatus as "segment status" {
        Ok = "ok",
        Damaged = "damaged",
    }
}

text_enum! {
    /// Where a tape is: in the library, exported out of it, or destroyed
    /// (`tape recover` rewrote its segments from their copies; it is
    /// never mounted again).
    pub enum TapeLocation as "tape location" {
        Library = "library",
        Exported = "exported",
        Destroyed = "destroyed",
    }
}

text_enum! {
    /// Role of a data mover process.
    pub enum MoverRole as "mover role" {
        FrontEnd = "front-end",
        BackEnd = "back-end",
        Both = "both",
    }
}

impl MoverRole {
    pub fn is_front_end(self) -> bool {
        matches!(self, MoverRole::FrontEnd | MoverRole::Both)
    }

    pub fn is_back_end(self) -> bool {
        matches!(self, MoverRole::BackEnd | MoverRole::Both)
    }
}

text_enum! {
    /// When a backup definition's host command runs: `pre` before the
    /// backup starts (it must succeed), `post` after it ended, whatever
    /// happened.
    pub enum HookPhase as "hook phase" {
        Pre = "pre",
        Post = "post",
    }
}

text_enum! {
    /// One run of a backup definition: running, succeeded (its ABS is
    /// complete), failed (its pre command, its backup, or the station
    /// stopped), or skipped (the previous run was still going at its slot).
    pub enum RunState as "run state" {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Skipped = "skipped",
    }
}

text_enum! {
    /// Whether the station may assign work to a mover.
    pub enum MoverState as "mover state" {
        Online = "online",
        Offline = "offline",
        Draining = "draining",
    }
}

text_enum! {
    /// Whether the station can reach its catalog right now.
    pub enum CatalogHealth as "catalog health" {
        Ok = "ok",
        Unavailable = "unavailable",
    }
}

text_enum! {
    /// Whether a channel writes a backup to tape or reads one back.
    pub enum ChannelKind as "channel kind" {
        Backup = "backup",
        Restore = "restore",
    }
}

impl ChannelKind {
    /// The data-moving state of this kind: `Writing` for a backup, `Reading`
    /// for a restore.
    pub fn streaming_state(self) -> ChannelState {
        match self {
            ChannelKind::Backup => ChannelState::Writing,
            ChannelKind::Restore => ChannelState::Reading,
        }
    }
}

text_enum! {
    /// The state of a channel (seed FIG. 28/29).
    pub enum ChannelState as "channel state" {
        /// Asked for; no movers or drive assigned yet.
        Requested = "requested",
        /// FE/BE pair and drive assigned, the virtual circuit is open.
        Opened = "opened",
        /// A tape is mounted and its labels are being read or written.
        BeginningOfTape = "beginning_of_tape",
        /// Backup: segments are being written to the tape.
        Writing = "writing",
        /// Restore: segments are being read from the tape.
        Reading = "reading",
        /// The tape is full (backup) or done (restore); the channel pauses
        /// until the next tape of the media set is at its beginning.
        EndOfTape = "end_of_tape",
        /// Finished normally (terminal).
        Closed = "closed",
        /// Stopped by an error (terminal); the reason says why.
        Error = "error",
    }
}

impl ChannelState {
    /// `Closed` and `Error` are terminal: no transition leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, ChannelState::Closed | ChannelState::Error)
    }

    /// Whether the machine of `kind` has this state at all: a backup never
    /// is `Reading`, a restore never is `Writing`.
    pub fn belongs_to(self, kind: ChannelKind) -> bool {
        match self {
            ChannelState::Writing => kind == ChannelKind::Backup,
            ChannelState::Reading => kind == ChannelKind::Restore,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(all: &[T])
    where
        T: Copy + std::fmt::Display + std::str::FromStr + PartialEq + std::fmt::Debug,
        T::Err: std::fmt::Debug,
    {
        for v in all {
            assert_eq!(v.to_string().parse::<T>().unwrap(), *v);
        }
    }

    #[test]
    fn every_value_parses_back_from_its_text() {
        round_trip(Level::ALL);
        round_trip(AbsKind::ALL);
        round_trip(AbsState::ALL);
        round_trip(TapeState::ALL);
        round_trip(TapeLocation::ALL);
        round_trip(PoolKind::ALL);
        round_trip(SegmentStatus::ALL);
        round_trip(MoverRole::ALL);
        round_trip(MoverState::ALL);
        round_trip(CatalogHealth::ALL);
        round_trip(ChannelKind::ALL);
        round_trip(ChannelState::ALL);
    }

    #[test]
    fn texts_are_the_catalogs() {
        // The migrations' CHECK constraints spell these.
        assert_eq!(ChannelState::BeginningOfTape.as_str(), "beginning_of_tape");
        assert_eq!(MoverRole::FrontEnd.as_str(), "front-end");
        let e = "Full".parse::<Level>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown level "Full": expected one of ["full", "cumulative", "incremental", "synthetic"]"#
        );
    }

    #[test]
    fn levels_make_their_kind() {
        assert_eq!(Level::Full.kind(), AbsKind::Full);
        assert_eq!(Level::Synthetic.kind(), AbsKind::Full);
        assert_eq!(Level::Incremental.kind(), AbsKind::Differential);
        assert_eq!(Level::Cumulative.kind(), AbsKind::Differential);
    }
}

text_enum! {
    /// What a volume pool holds (seed 004 Table 3.4): the source volumes
    /// a version set copies, or target volumes its versions are copied to.
    pub enum VpoolKind as "volume pool kind" {
        Source = "source",
        Target = "target",
    }
}

text_enum! {
    /// One record of a version set (seed 004): the pre-pairing record of a
    /// future version (its pairs chosen ahead of the copy window), the
    /// copy record a version is made from, and the replication record of
    /// a version made.
    pub enum VersionRecordKind as "version record kind" {
        PrePairing = "pre_pairing",
        Copy = "copy",
        Replication = "replication",
    }
}

text_enum! {
    /// A version record's state: `ready` (its pairs are chosen), `refused`
    /// (no eligible target for some source: the reason says which),
    /// `running` (the copy is going on), `complete` (the version is made
    /// and restorable), `failed` (the copy stopped, with the reason), or
    /// `retired` (replaced by a newer version: kept for history only).
    pub enum VersionState as "version state" {
        Ready = "ready",
        Refused = "refused",
        Running = "running",
        Complete = "complete",
        Failed = "failed",
        Retired = "retired",
    }
}

text_enum! {
    /// What an operator is told about (issue 16): a channel that entered
    /// `error`, a tape a job needs that is not in the library, a drive left
    /// idle while work waits, a version of a version set refused.
    pub enum NotificationKind as "notification kind" {
        ChannelError = "channel_error",
        TapeNeeded = "tape_needed",
        DriveIdle = "drive_idle",
        VersionRefused = "version_refused",
    }
}
