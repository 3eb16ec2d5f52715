//! The request queue of a backup stream (seed FIG. 31): the tracks sent to
//! the front-end and not yet on tape, oldest first.
//!
//! The front-end keeps tracks only in its spool, which is not durable,
//! until its back-end wrote them to tape, synced, and the catalog committed
//! them; it then acknowledges how many of the track set's first tracks are
//! on tape ([`proto::wire::TrackAck::OnTape`]). Only then do the tracks
//! leave the queue (and with them their side copies, see
//! [`super::protection`]). The queue holds addresses only and is bounded by
//! the window, so a slow front-end slows the node down instead of growing
//! its memory. When the front-end is lost, the stream resumes with its next
//! start from the track it names; the tracks before stay queued.
//!
//! Pure state: the shell ([`crate::send`]) reads the tracks, sends them
//! and receives the acknowledgements.

use std::collections::VecDeque;

use proto::abs::{TrackAddr, TrackSet};

/// How many of the track set's first tracks were acknowledged on tape and
/// released: the request queue's state that outlives one stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Released(pub u64);

/// A stream cannot start where the front-end said: before what is on tape
/// already, or past the end of the track set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the front-end resumed from track {from}, but {released} are on tape and the track set has {total}")]
pub struct BadResume {
    pub from: u64,
    pub released: u64,
    pub total: u64,
}

/// A track cannot be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// `window` tracks are in flight: wait for acknowledgements.
    #[error("the request queue holds {window} tracks not yet on tape (the window)")]
    WindowFull { window: u64 },
    /// Every track of the track set was sent.
    #[error("all {total} tracks of the track set were sent")]
    AllSent { total: u64 },
}

/// The request queue of one backup stream.
///
/// Invariants: its entries are the track set's tracks `released..sent` in
/// track-set order; a track is pushed only while fewer than `window` are
/// in flight (sent, not acknowledged on tape), so a stream never has more
/// than `window` in flight of its own making; a track leaves only when the
/// front-end acknowledged every track up to it on tape, oldest first, and
/// once; a resumed stream keeps the tracks the front-end kept queued and
/// sends exactly the rest.
#[derive(Debug, Clone)]
pub struct RequestQueue {
    total: u64,
    window: u64,
    released: u64,
    /// The most tracks the front-end said are on tape.
    acked: u64,
    /// Tracks `released..sent` of the track set, oldest first.
    entries: VecDeque<TrackAddr>,
}

impl RequestQueue {
    /// A stream of `tracks` starts at track `from`: 0 for a new stream, or
    /// where the front-end said when it resumes one. The first `released`
    /// tracks are on tape already (an earlier stream's); the front-end kept
    /// those up to `from`, so they are queued, and the stream sends the
    /// rest. At most `window` tracks (at least 1) are in flight.
    pub fn start(tracks: &TrackSet, window: u64, released: Released, from: u64) -> Result<RequestQueue, BadResume> {
        let total = tracks.len();
        if from < released.0 || from > total {
            return Err(BadResume {
                from,
                released: released.0,
                total,
            });
        }
        let kept = usize::try_from(from - released.0).unwrap_or(usize::MAX);
        let skip = usize::try_from(released.0).unwrap_or(usize::MAX);
        Ok(RequestQueue {
            total,
            window: window.max(1),
            released: released.0,
            acked: released.0,
            entries: tracks.iter().skip(skip).take(kept).collect(),
        })
    }

    /// Tracks of the track set.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Most tracks in flight.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// How far the stream is: the track set's first `sent` tracks were
    /// sent (or kept by the front-end); the next to send is number `sent`.
    pub fn sent(&self) -> u64 {
        self.released + self.entries.len() as u64
    }

    /// Tracks acknowledged on tape and released, over all streams.
    pub fn released(&self) -> Released {
        Released(self.released)
    }

    /// Tracks sent and not yet on tape.
    pub fn in_flight(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether a track may be sent now (fewer than the window in flight).
    pub fn has_room(&self) -> bool {
        self.in_flight() < self.window
    }

    /// Whether every track of the track set was sent.
    pub fn all_sent(&self) -> bool {
        self.sent() >= self.total
    }

    /// The queued tracks, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = TrackAddr> + '_ {
        self.entries.iter().copied()
    }

    /// The next track of the track set goes out: it joins the queue.
    pub fn push(&mut self, addr: TrackAddr) -> Result<(), PushError> {
        if self.all_sent() {
            return Err(PushError::AllSent { total: self.total });
        }
        if !self.has_room() {
            return Err(PushError::WindowFull { window: self.window });
        }
        self.entries.push_back(addr);
        Ok(())
    }

    /// The front-end has the track set's first `tracks` on tape: the
    /// queued ones among them leave, oldest first; returns them (each
    /// once). An acknowledgement behind an earlier one changes nothing; one
    /// ahead of what was sent releases what was sent, and the rest as it
    /// is sent.
    pub fn on_tape(&mut self, tracks: u64) -> Vec<TrackAddr> {
        self.acked = self.acked.max(tracks);
        let n = usize::try_from(self.acked - self.released)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        self.released += n as u64;
        self.entries.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::abs::TrackRun;

    fn set(n: u64) -> TrackSet {
        TrackSet::from_runs([TrackRun {
            volume: 0,
            first: 10,
            count: n,
        }])
    }

    fn addr(track: u64) -> TrackAddr {
        TrackAddr { volume: 0, track }
    }

    #[test]
    fn the_window_bounds_what_is_in_flight_and_acks_release_in_order() {
        let tracks = set(5);
        let mut q = RequestQueue::start(&tracks, 2, Released(0), 0).unwrap();
        q.push(addr(10)).unwrap();
        q.push(addr(11)).unwrap();
        assert_eq!(q.push(addr(12)), Err(PushError::WindowFull { window: 2 }));
        assert_eq!(q.on_tape(1), vec![addr(10)]);
        assert_eq!(q.on_tape(0), vec![], "behind an earlier acknowledgement");
        q.push(addr(12)).unwrap();
        // Ahead of what was sent: what was sent leaves, the rest as it goes.
        assert_eq!(q.on_tape(4), vec![addr(11), addr(12)]);
        q.push(addr(13)).unwrap();
        assert_eq!(q.on_tape(4), vec![addr(13)]);
        q.push(addr(14)).unwrap();
        assert_eq!(q.push(addr(15)), Err(PushError::AllSent { total: 5 }));
        assert_eq!((q.sent(), q.released(), q.all_sent()), (5, Released(4), true));
    }

    #[test]
    fn a_resumed_stream_queues_what_the_front_end_kept() {
        let tracks = set(6);
        let q = RequestQueue::start(&tracks, 0, Released(2), 4).unwrap();
        assert_eq!(q.window(), 1);
        assert_eq!(q.entries().collect::<Vec<_>>(), vec![addr(12), addr(13)]);
        assert_eq!((q.sent(), q.in_flight(), q.has_room()), (4, 2, false));
        let bad = RequestQueue::start(&tracks, 4, Released(2), 1).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "the front-end resumed from track 1, but 2 are on tape and the track set has 6"
        );
        assert!(RequestQueue::start(&tracks, 4, Released(2), 7).is_err());
        assert!(RequestQueue::start(&tracks, 4, Released(2), 6).is_ok());
    }
}
