//! The segment release protocol of one ABS on the front-end, as a pure
//! state machine: events in, effects out, no I/O, no clock (the way
//! quinn-proto sits under quinn). The shells ([`super::accumulator`],
//! [`super::upload`], [`super::abs_writer`]) carry the effects out on a
//! [`super::store::Spool`] and report back what happened.
//!
//! ```text
//!             Create            Sync           Seal (rename)   Journal          Upload
//!  (none) ───────────► Received ──────► Durable ─────────────────────────► Sealed ──────► OnTape
//!                      tracks in        synced        seg-N.open → .sealed, one journal     │ back-end
//!                                                     line (synced)                         │ wrote it
//!                                                                                           ▼
//!                       Released ◄──────────────────────────────────────────────────── InCatalog
//!                       spool file freed     Release (only with a ReleasePermit)     placement committed
//! ```
//!
//! The back-end's `Placed` reply means both OnTape and InCatalog (it
//! commits the placement before it replies), hence [`Release::placed`].
//!
//! **Acknowledgement point.** The primary node keeps every track until it
//! hears that it is safe ([`proto::wire::TrackAck::OnTape`]); the core
//! acknowledges the track frames through the end of the last segment of the
//! unbroken run 0, 1, 2, … of segments in the catalog. A segment placed
//! out of order waits for the gap before it.
//!
//! **Invariants, enforced by the types.**
//! - A spool file is released only with a [`ReleasePermit`], which only
//!   this module makes, and only for a segment in the catalog.
//! - Acknowledgements are [`AckPoint`]s, which only this module makes,
//!   never ahead of the contiguous in-catalog prefix, never going back.
//! - A sealed file is discarded without being in the catalog only with a
//!   [`DiscardPermit`]: at a resume, for segments past the resume point
//!   (their tracks were never acknowledged; the node sends them again).
//! - The ABS's directory goes only with an [`AbsPermit`]: every segment
//!   released (finished), or the ABS abandoned (its channel failed; the
//!   node still holds every track not acknowledged).
//!
//! After a restart the core is rebuilt ([`Release::resume`]) from the
//! journal, the catalog's placements and which sealed files verify
//! ([`super::resume::plan`]): every acknowledged track is in the catalog,
//! and every journaled segment not in the catalog is uploaded again.

use std::collections::BTreeMap;

use proto::domain::{AbsId, SegmentSeq};
use proto::tape::segment::SegmentSummary;
use thiserror::Error;

use super::resume::{JournalEntry, ResumePlan};

/// Where a segment is in the release protocol (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Open: tracks arriving.
    Received,
    /// Synced to the spool.
    Durable,
    /// Renamed `.sealed` and journaled: may go to tape.
    Sealed,
    /// Written to tape by the back-end.
    OnTape,
    /// Its placement is committed in the catalog.
    InCatalog,
    /// Its spool file is freed.
    Released,
}

/// An event the core refuses: the shell and the protocol disagree.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReleaseError {
    #[error("ABS {abs}: {event} for segment {seq} in stage {stage:?}")]
    Stage {
        abs: AbsId,
        seq: SegmentSeq,
        stage: Stage,
        event: &'static str,
    },
    #[error("ABS {abs}: {event} for segment {seq}, which it does not hold")]
    Unknown {
        abs: AbsId,
        seq: SegmentSeq,
        event: &'static str,
    },
    #[error("ABS {abs}: a segment is already open ({seq})")]
    AlreadyOpen { abs: AbsId, seq: SegmentSeq },
    #[error("ABS {abs}: no segment sequence number after {last}")]
    Exhausted { abs: AbsId, last: SegmentSeq },
    #[error("ABS {abs}: the sealed segment says ABS {got_abs} segment {got_seq}, expected segment {seq}")]
    Summary {
        abs: AbsId,
        seq: SegmentSeq,
        got_abs: u64,
        got_seq: u32,
    },
    #[error("ABS {abs}: segment {seq} ends at frame {frames}, before the previous segment's end {before}")]
    FramesBack {
        abs: AbsId,
        seq: SegmentSeq,
        frames: u64,
        before: u64,
    },
    #[error("ABS {abs}: segment {seq} is still {stage:?}, the ABS cannot finish")]
    Unreleased { abs: AbsId, seq: SegmentSeq, stage: Stage },
    #[error("ABS {abs} has ended; {event} is too late")]
    Ended { abs: AbsId, event: &'static str },
}

/// Leave to free the spool file of a segment in the catalog.
#[derive(Debug, PartialEq, Eq)]
pub struct ReleasePermit {
    abs_id: AbsId,
    seq: SegmentSeq,
}

/// Leave to delete a sealed file that is not in the catalog: it lies past
/// the resume point, so none of its tracks was acknowledged.
#[derive(Debug, PartialEq, Eq)]
pub struct DiscardPermit {
    abs_id: AbsId,
    seq: SegmentSeq,
}

/// Why an ABS's spool directory may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsEnd {
    /// Every segment is in the catalog and released.
    Finished,
    /// The channel failed: its source still holds every unacknowledged track.
    Abandoned,
    /// Found at a restart without a channel record to resume it: no stream
    /// can continue it, and nothing beyond the catalog was acknowledged.
    Unresumable,
}

/// Leave to remove an ABS's spool directory (journal, channel record,
/// whatever files are left).
#[derive(Debug, PartialEq, Eq)]
pub struct AbsPermit {
    abs_id: AbsId,
    end: AbsEnd,
}

/// Track frames of the stream the primary node may let go of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AckPoint(u64);

macro_rules! permit_getters {
    ($($t:ident),*) => {$(
        impl $t {
            pub fn abs_id(&self) -> AbsId {
                self.abs_id
            }
            pub fn seq(&self) -> SegmentSeq {
                self.seq
            }
        }
    )*};
}
permit_getters!(ReleasePermit, DiscardPermit);

impl AbsPermit {
    pub fn abs_id(&self) -> AbsId {
        self.abs_id
    }
    pub fn end(&self) -> AbsEnd {
        self.end
    }
}

impl AckPoint {
    /// Track frames acknowledged.
    pub fn tracks(self) -> u64 {
        self.0
    }
}

/// What the shell must do, in order; each is reported back when done
/// (see the event of each variant).
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Create the open segment's spool file (nothing reported back).
    Create(SegmentSeq),
    /// Make the open segment's bytes durable ([`Release::synced`]).
    Sync(SegmentSeq),
    /// Rename it `.sealed` ([`Release::renamed`]).
    Seal(SegmentSeq),
    /// Append its journal line, synced ([`Release::journaled`]).
    Journal(JournalEntry),
    /// Hand it to the back-end ([`Release::placed`] or [`Release::upload_failed`]).
    Upload(JournalEntry),
    /// Free its spool file ([`Release::released`]).
    Release(ReleasePermit),
    /// Rewrite the journal to hold exactly these entries, atomically: a
    /// resume cut it short (nothing reported back).
    CutJournal(Vec<JournalEntry>),
    /// Delete a sealed file past the resume point (nothing reported back).
    Discard(DiscardPermit),
    /// Tell the primary node how far its stream is safe.
    Ack(AckPoint),
    /// Remove the ABS's spool directory (nothing reported back).
    RemoveAbs(AbsPermit),
}

#[derive(Debug, Clone)]
struct Seg {
    stage: Stage,
    /// Track frames of the stream through the end of this segment (known
    /// once sealing starts).
    frames_through: u64,
    entry: Option<JournalEntry>,
    uploading: bool,
}

/// The release protocol of one ABS.
#[derive(Debug)]
pub struct Release {
    abs_id: AbsId,
    /// Segments not yet both released and behind the acknowledgement point.
    segs: BTreeMap<SegmentSeq, Seg>,
    next_seq: SegmentSeq,
    open: Option<SegmentSeq>,
    /// Frames through the end of the last segment whose sealing began.
    frames_sealed: u64,
    /// First segment not in the contiguous in-catalog prefix.
    ack_next: SegmentSeq,
    acked: u64,
    placed: u32,
    placed_bytes: u64,
    ended: bool,
}

/// Effects, usually one or two.
pub type Effects = Vec<Effect>;

impl Release {
    /// A new ABS: nothing in the spool, nothing acknowledged.
    pub fn new(abs_id: AbsId) -> Release {
        Release {
            abs_id,
            segs: BTreeMap::new(),
            next_seq: SegmentSeq::new(0),
            open: None,
            frames_sealed: 0,
            ack_next: SegmentSeq::new(0),
            acked: 0,
            placed: 0,
            placed_bytes: 0,
            ended: false,
        }
    }

    /// The core of an ABS resumed after a restart, from its resume plan:
    /// the sealed files past the resume point are discarded, the files of
    /// placed segments released, the journaled segments not in the catalog
    /// uploaded again, and the in-catalog prefix acknowledged.
    pub fn resume(abs_id: AbsId, plan: &ResumePlan) -> (Release, Effects) {
        let mut r = Release::new(abs_id);
        let mut fx = Vec::new();
        if !plan.dropped.is_empty() {
            // Before anything is deleted or sealed again, the journal forgets
            // the segments past the resume point.
            fx.push(Effect::CutJournal(plan.kept.clone()));
        }
        for seq in plan.dropped.iter().filter(|s| **s >= plan.next_seq) {
            fx.push(Effect::Discard(DiscardPermit { abs_id, seq: *seq }));
        }
        for p in &plan.placed {
            r.segs.insert(
                p.seq,
                Seg {
                    stage: Stage::InCatalog,
                    frames_through: p.frames_through,
                    entry: None,
                    uploading: false,
                },
            );
            r.placed += 1;
            r.placed_bytes += p.data_bytes;
            fx.push(Effect::Release(ReleasePermit { abs_id, seq: p.seq }));
        }
        for e in &plan.requeue {
            r.segs.insert(
                e.seq,
                Seg {
                    stage: Stage::Sealed,
                    frames_through: e.frames_through,
                    entry: Some(*e),
                    uploading: true,
                },
            );
        }
        r.next_seq = plan.next_seq;
        r.frames_sealed = plan.frames;
        r.advance_ack(&mut fx);
        fx.extend(plan.requeue.iter().map(|e| Effect::Upload(*e)));
        (r, fx)
    }

    pub fn abs_id(&self) -> AbsId {
        self.abs_id
    }

    /// Leave to remove an ABS directory found at a restart that no channel
    /// can resume (see [`AbsEnd::Unresumable`]).
    pub fn unresumable(abs_id: AbsId) -> AbsPermit {
        AbsPermit {
            abs_id,
            end: AbsEnd::Unresumable,
        }
    }

    /// The stage of a segment this core still tracks (released segments
    /// behind the acknowledgement point are forgotten).
    pub fn stage(&self, seq: SegmentSeq) -> Option<Stage> {
        self.segs.get(&seq).map(|s| s.stage)
    }

    /// Track frames acknowledged so far.
    pub fn acked(&self) -> AckPoint {
        AckPoint(self.acked)
    }

    /// The next segment's sequence number.
    pub fn next_seq(&self) -> SegmentSeq {
        self.next_seq
    }

    /// Segments in the catalog, and their data bytes.
    pub fn placed_totals(&self) -> (u32, u64) {
        (self.placed, self.placed_bytes)
    }

    /// Segments whose upload was asked for and not yet answered.
    pub fn uploading(&self) -> impl Iterator<Item = SegmentSeq> + '_ {
        self.segs.iter().filter(|(_, s)| s.uploading).map(|(q, _)| *q)
    }

    fn live(&self, event: &'static str) -> Result<(), ReleaseError> {
        if self.ended {
            return Err(ReleaseError::Ended {
                abs: self.abs_id,
                event,
            });
        }
        Ok(())
    }

    fn seg(&mut self, seq: SegmentSeq, want: Stage, event: &'static str) -> Result<&mut Seg, ReleaseError> {
        let abs = self.abs_id;
        let s = self
            .segs
            .get_mut(&seq)
            .ok_or(ReleaseError::Unknown { abs, seq, event })?;
        if s.stage != want {
            return Err(ReleaseError::Stage {
                abs,
                seq,
                stage: s.stage,
                event,
            });
        }
        Ok(s)
    }

    /// A track is about to be written and no segment is open: open the
    /// next one (Received).
    pub fn open(&mut self) -> Result<Effects, ReleaseError> {
        self.live("opening a segment")?;
        if let Some(seq) = self.open {
            return Err(ReleaseError::AlreadyOpen { abs: self.abs_id, seq });
        }
        let seq = self.next_seq;
        self.next_seq = seq.next().ok_or(ReleaseError::Exhausted {
            abs: self.abs_id,
            last: seq,
        })?;
        self.segs.insert(
            seq,
            Seg {
                stage: Stage::Received,
                frames_through: self.frames_sealed,
                entry: None,
                uploading: false,
            },
        );
        self.open = Some(seq);
        Ok(vec![Effect::Create(seq)])
    }

    /// The open segment is complete (its trailer written, `summary`) and
    /// holds the stream's frames through `frames_through`: make it durable.
    pub fn seal(&mut self, summary: &SegmentSummary, frames_through: u64) -> Result<Effects, ReleaseError> {
        self.live("sealing")?;
        let abs = self.abs_id;
        let seq = self.open.ok_or(ReleaseError::Unknown {
            abs,
            seq: self.next_seq,
            event: "sealing",
        })?;
        if summary.header.seq != seq.get() || summary.header.abs_id != abs.get() {
            return Err(ReleaseError::Summary {
                abs,
                seq,
                got_abs: summary.header.abs_id,
                got_seq: summary.header.seq,
            });
        }
        if frames_through < self.frames_sealed {
            return Err(ReleaseError::FramesBack {
                abs,
                seq,
                frames: frames_through,
                before: self.frames_sealed,
            });
        }
        let s = self.seg(seq, Stage::Received, "sealing")?;
        s.frames_through = frames_through;
        s.entry = Some(JournalEntry {
            seq,
            frames_through,
            track_count: summary.track_count,
            data_bytes: summary.data_bytes,
            total_bytes: summary.total_bytes,
            crc32c: summary.crc32c,
        });
        self.frames_sealed = frames_through;
        self.open = None;
        Ok(vec![Effect::Sync(seq)])
    }

    /// The segment's bytes are durable: rename it.
    pub fn synced(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        self.live("synced")?;
        let s = self.seg(seq, Stage::Received, "synced")?;
        if s.entry.is_none() {
            return Err(ReleaseError::Stage {
                abs: self.abs_id,
                seq,
                stage: Stage::Received,
                event: "synced before sealing",
            });
        }
        s.stage = Stage::Durable;
        Ok(vec![Effect::Seal(seq)])
    }

    /// The segment is renamed `.sealed`: journal it.
    pub fn renamed(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        self.live("renamed")?;
        let abs = self.abs_id;
        let s = self.seg(seq, Stage::Durable, "renamed")?;
        let entry = s.entry.ok_or(ReleaseError::Unknown {
            abs,
            seq,
            event: "journal entry",
        })?;
        Ok(vec![Effect::Journal(entry)])
    }

    /// The journal holds the segment (Sealed): upload it.
    pub fn journaled(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        self.live("journaled")?;
        let abs = self.abs_id;
        let s = self.seg(seq, Stage::Durable, "journaled")?;
        let entry = s.entry.ok_or(ReleaseError::Unknown {
            abs,
            seq,
            event: "journal entry",
        })?;
        s.stage = Stage::Sealed;
        s.uploading = true;
        Ok(vec![Effect::Upload(entry)])
    }

    /// The back-end wrote the segment to tape (its placement not yet
    /// committed).
    pub fn on_tape(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        self.live("on tape")?;
        let s = self.seg(seq, Stage::Sealed, "on tape")?;
        s.stage = Stage::OnTape;
        Ok(Vec::new())
    }

    /// The segment's placement is committed in the catalog: its file may be
    /// released, and the acknowledgement point may advance.
    pub fn in_catalog(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        self.live("in catalog")?;
        let s = self.seg(seq, Stage::OnTape, "in catalog")?;
        s.stage = Stage::InCatalog;
        s.uploading = false;
        let bytes = s.entry.map_or(0, |e| e.data_bytes);
        self.placed += 1;
        self.placed_bytes += bytes;
        let mut fx = vec![Effect::Release(ReleasePermit {
            abs_id: self.abs_id,
            seq,
        })];
        self.advance_ack(&mut fx);
        Ok(fx)
    }

    /// The back-end's `Placed`: on tape and in the catalog.
    pub fn placed(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        let mut fx = self.on_tape(seq)?;
        fx.extend(self.in_catalog(seq)?);
        Ok(fx)
    }

    /// The upload of a segment failed: it stays sealed in the spool, not
    /// acknowledged (a resume uploads it again).
    pub fn upload_failed(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        self.live("upload failed")?;
        let s = self.seg(seq, Stage::Sealed, "upload failed")?;
        s.uploading = false;
        Ok(Vec::new())
    }

    /// The segment's spool file is freed.
    pub fn released(&mut self, seq: SegmentSeq) -> Result<Effects, ReleaseError> {
        let s = self.seg(seq, Stage::InCatalog, "released")?;
        s.stage = Stage::Released;
        self.forget_behind_ack();
        Ok(Vec::new())
    }

    /// Every track is in and every segment released: the ABS's directory
    /// may go.
    pub fn finish(&mut self) -> Result<Effects, ReleaseError> {
        self.live("finishing")?;
        if let Some((seq, s)) = self.segs.iter().find(|(_, s)| s.stage != Stage::Released) {
            return Err(ReleaseError::Unreleased {
                abs: self.abs_id,
                seq: *seq,
                stage: s.stage,
            });
        }
        self.ended = true;
        Ok(vec![Effect::RemoveAbs(AbsPermit {
            abs_id: self.abs_id,
            end: AbsEnd::Finished,
        })])
    }

    /// The channel failed: stop, and let the directory go (nothing beyond
    /// the acknowledgement point was promised to anyone).
    pub fn abandon(&mut self) -> Effects {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec![Effect::RemoveAbs(AbsPermit {
            abs_id: self.abs_id,
            end: AbsEnd::Abandoned,
        })]
    }

    fn advance_ack(&mut self, fx: &mut Effects) {
        let before = self.acked;
        while let Some(s) = self.segs.get(&self.ack_next) {
            if s.stage < Stage::InCatalog {
                break;
            }
            self.acked = self.acked.max(s.frames_through);
            match self.ack_next.next() {
                Some(n) => self.ack_next = n,
                None => break,
            }
        }
        if self.acked > before {
            fx.push(Effect::Ack(AckPoint(self.acked)));
        }
        self.forget_behind_ack();
    }

    fn forget_behind_ack(&mut self) {
        let ack_next = self.ack_next;
        self.segs.retain(|q, s| *q >= ack_next || s.stage != Stage::Released);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::tape::segment::SegmentHeader;

    fn summary(seq: u32) -> SegmentSummary {
        SegmentSummary {
            header: SegmentHeader {
                abs_id: 5,
                seq,
                channel_id: 1,
                created_unix: 0,
            },
            track_count: 1,
            data_bytes: 10,
            total_bytes: 100,
            crc32c: seq,
        }
    }

    /// Open and seal segment `seq` through `frames`, up to its upload.
    fn sealed(r: &mut Release, frames: u64) -> SegmentSeq {
        let Effect::Create(seq) = r.open().unwrap().remove(0) else {
            panic!()
        };
        assert_eq!(r.seal(&summary(seq.get()), frames).unwrap(), [Effect::Sync(seq)]);
        assert_eq!(r.stage(seq), Some(Stage::Received));
        assert_eq!(r.synced(seq).unwrap(), [Effect::Seal(seq)]);
        assert_eq!(r.stage(seq), Some(Stage::Durable));
        assert!(matches!(r.renamed(seq).unwrap()[..], [Effect::Journal(e)] if e.seq == seq));
        assert!(matches!(r.journaled(seq).unwrap()[..], [Effect::Upload(e)] if e.frames_through == frames));
        assert_eq!(r.stage(seq), Some(Stage::Sealed));
        seq
    }

    #[test]
    fn out_of_order_placements_wait_for_the_gap() {
        let mut r = Release::new(AbsId::new(5));
        let s: Vec<_> = [4, 9, 12].iter().map(|f| sealed(&mut r, *f)).collect();
        // Segment 1 first: released, not acknowledged.
        let fx = r.placed(s[1]).unwrap();
        assert!(matches!(fx[..], [Effect::Release(ref p)] if p.seq() == s[1]));
        r.released(s[1]).unwrap();
        assert_eq!(r.acked().tracks(), 0);
        // Segment 0 fills the gap: both acknowledged at once.
        let fx = r.placed(s[0]).unwrap();
        assert_eq!(fx.last(), Some(&Effect::Ack(AckPoint(9))));
        assert!(r.finish().is_err(), "segment 0 unreleased, 2 unplaced");
        r.released(s[0]).unwrap();
        r.upload_failed(s[2]).unwrap();
        assert!(r.released(s[2]).is_err(), "not in the catalog");
        assert!(matches!(r.finish(), Err(ReleaseError::Unreleased { .. })));
    }

    #[test]
    fn events_out_of_stage_are_refused() {
        let mut r = Release::new(AbsId::new(5));
        assert!(r.synced(SegmentSeq::new(0)).is_err());
        r.open().unwrap();
        assert!(r.open().is_err());
        assert!(r.synced(SegmentSeq::new(0)).is_err(), "not sealed yet");
        assert!(r.seal(&summary(3), 1).is_err(), "wrong segment");
        r.seal(&summary(0), 5).unwrap();
        assert!(r.placed(SegmentSeq::new(0)).is_err(), "not uploaded");
        r.open().unwrap();
        assert!(matches!(r.seal(&summary(1), 4), Err(ReleaseError::FramesBack { .. })));
        assert!(!r.abandon().is_empty());
        assert!(r.abandon().is_empty());
        assert!(r.open().is_err());
    }

    #[test]
    fn a_resume_releases_the_placed_and_uploads_the_rest() {
        let e = |seq: u32, f: u64| JournalEntry {
            seq: SegmentSeq::new(seq),
            frames_through: f,
            track_count: 1,
            data_bytes: 10,
            total_bytes: 100,
            crc32c: 0,
        };
        let j = [e(0, 3), e(1, 6), e(2, 9), e(3, 12)];
        let seqs = |v: &[u32]| v.iter().map(|s| SegmentSeq::new(*s)).collect::<Vec<_>>();
        let plan = super::super::resume::plan(&j, &seqs(&[1]), |e| e.seq.get() != 3).unwrap();
        let (mut r, fx) = Release::resume(AbsId::new(5), &plan);
        assert_eq!(fx[0], Effect::CutJournal(j[..3].to_vec()));
        assert!(matches!(&fx[1], Effect::Discard(p) if p.seq().get() == 3));
        assert!(matches!(&fx[2], Effect::Release(p) if p.seq().get() == 1));
        assert!(matches!(fx[3..], [Effect::Upload(a), Effect::Upload(b)] if a.seq.get() == 0 && b.seq.get() == 2));
        assert_eq!(r.acked().tracks(), 0);
        assert_eq!(r.next_seq().get(), 3);
        let fx = r.placed(SegmentSeq::new(0)).unwrap();
        assert_eq!(fx.last(), Some(&Effect::Ack(AckPoint(6))));
    }
}
