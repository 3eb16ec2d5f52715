//! What a front-end keeps of a backup channel so that it can continue it
//! after a restart (a crash, a kill, an upgrade), instead of the backup
//! starting over.
//!
//! Beside the segments, each ABS directory of the spool holds:
//!
//! ```text
//! abs-<abs>/channel          the channel as the station opened it (written once, synced)
//! abs-<abs>/sealed.journal   one line per sealed segment, appended and synced at each seal
//! ```
//!
//! A journal line is ASCII, seven fields separated by one space, ending in
//! `\n`:
//!
//! ```text
//! <seq> <frames_through> <track_count> <data_bytes> <total_bytes> <crc32c hex8> <line crc32c hex8>
//! ```
//!
//! the last field being the CRC32C of everything before its separating
//! space. Lines are read up to the first one that does not check (a torn
//! append): everything after it was never acknowledged to anyone.
//!
//! The segment files themselves are not synced (see [`crate::spool`]): a
//! process that dies leaves them whole in the page cache; a machine that
//! crashes may tear them. So at resume each sealed file not yet on tape is
//! verified against its journal line, and the stream resumes after the
//! last segment that is on tape or verifies. The primary node still holds
//! every track not on tape, so cutting the resume point short costs a few
//! tracks sent again, never data.
//!
//! [`plan`] is the pure part: from the journal, the segments the catalog
//! holds and which files verify, where the stream resumes;
//! [`super::release::Release::resume`] turns the plan into the release
//! protocol's state (stages after a restart):
//!
//! ```text
//! journaled, in the catalog        → InCatalog → Released (file freed if still there)
//! journaled, not in it, verifies   → Sealed, uploaded again
//! first one that does not verify   → cut: it and every later one discarded, sent again by the node
//! open (not journaled)             → discarded at start
//! ```
//!
//! All storage goes through the [`Spool`] trait.

use proto::domain::{AbsId, SegmentSeq};
use std::collections::BTreeSet;
use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use proto::tape::segment::SegmentReader;
use proto::wire::BackupChannel;

use super::release::Release;
use super::store::Spool;

/// Magic and version of a channel file: `DMCCHAN1`, then the u32 length and
/// CRC32C (little-endian) of the rkyv-encoded [`BackupChannel`] that follows.
const CHANNEL_MAGIC: &[u8; 8] = b"DMCCHAN1";

/// Largest channel file read back (a channel carries its ABS map and track set).
const MAX_CHANNEL_FILE: u64 = 64 << 20;

/// One sealed segment, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: SegmentSeq,
    /// Track frames of the stream consumed through the end of this segment.
    pub frames_through: u64,
    pub track_count: u32,
    pub data_bytes: u64,
    pub total_bytes: u64,
    pub crc32c: u32,
}

impl JournalEntry {
    /// The entry's journal line, `\n` included.
    pub fn line(&self) -> String {
        let body = format!(
            "{} {} {} {} {} {:08x}",
            self.seq, self.frames_through, self.track_count, self.data_bytes, self.total_bytes, self.crc32c
        );
        let check = crc32c::crc32c(body.as_bytes());
        format!("{body} {check:08x}\n")
    }

    fn parse(line: &str) -> Option<JournalEntry> {
        let (body, check) = line.rsplit_once(' ')?;
        if u32::from_str_radix(check, 16).ok()? != crc32c::crc32c(body.as_bytes()) {
            return None;
        }
        let f: Vec<&str> = body.split(' ').collect();
        let [seq, frames, tracks, data, total, crc] = f.as_slice() else {
            return None;
        };
        Some(JournalEntry {
            seq: seq.parse().ok()?,
            frames_through: frames.parse().ok()?,
            track_count: tracks.parse().ok()?,
            data_bytes: data.parse().ok()?,
            total_bytes: total.parse().ok()?,
            crc32c: u32::from_str_radix(crc, 16).ok()?,
        })
    }

    /// A journal's entries up to the first line that does not check.
    pub fn read_all(text: &[u8]) -> Vec<JournalEntry> {
        let text = String::from_utf8_lossy(text);
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            let Some(entry) = line.strip_suffix('\n').and_then(JournalEntry::parse) else {
                break;
            };
            out.push(entry);
        }
        out
    }
}

/// Keep the channel record of `ch` in the spool (its ABS directory is
/// created), synced.
pub fn save_channel(spool: &dyn Spool, ch: &BackupChannel) -> Result<()> {
    let body = proto::wire::encode(ch).context("encoding the channel")?;
    let len = u32::try_from(body.len()).context("the channel is too large")?;
    let mut bytes = Vec::with_capacity(16 + body.len());
    bytes.extend_from_slice(CHANNEL_MAGIC);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(spool.save_channel(ch.abs_id, &bytes)?)
}

/// Read an ABS's channel record back; any damage is an error naming what
/// is wrong.
pub fn load_channel(spool: &dyn Spool, abs_id: AbsId) -> Result<BackupChannel> {
    let bytes = spool.load_channel(abs_id, MAX_CHANNEL_FILE)?;
    let what = format!("the channel record of ABS {abs_id}");
    if bytes.len() < 16 || &bytes[..8] != CHANNEL_MAGIC {
        bail!("{what}: not a channel file (expected magic {CHANNEL_MAGIC:?})");
    }
    let body_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let body = &bytes[16..];
    if body.len() != body_len {
        bail!("{what}: {} bytes of channel, the header says {body_len}", body.len());
    }
    if crc32c::crc32c(body) != crc {
        bail!("{what}: the channel's checksum does not match");
    }
    proto::wire::decode::<BackupChannel>(body).map_err(|e| anyhow!("{what}: {e}"))
}

/// A backup channel found in the spool at start.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub ch: BackupChannel,
    pub journal: Vec<JournalEntry>,
}

/// Front-end start: the channels the spool can resume (their open
/// segments discarded). ABS directories without a readable channel record
/// are removed.
pub fn recover(spool: &dyn Spool) -> Vec<Recovered> {
    let mut found = Vec::new();
    for abs_id in spool.list() {
        match load_channel(spool, abs_id) {
            Ok(ch) if ch.abs_id == abs_id && !ch.primary.is_empty() => {
                spool.discard_open(abs_id);
                let journal = spool.read_journal(abs_id);
                tracing::info!(
                    channel = %ch.channel_id,
                    abs = %abs_id,
                    sealed = journal.len(),
                    "a backup channel the spool can resume"
                );
                found.push(Recovered { ch, journal });
            }
            res => {
                let why = match res {
                    Ok(_) => "not a resumable backup".to_string(),
                    Err(e) => format!("{e:#}"),
                };
                tracing::warn!(abs = %abs_id, reason = %why, "discarding what a previous run left in the spool");
                if let Err(e) = spool.remove_abs(Release::unresumable(abs_id)) {
                    tracing::warn!(abs = %abs_id, error = %e, "could not discard it");
                }
            }
        }
    }
    found
}

/// Whether the sealed segment `entry` names is whole in the spool and is
/// the segment `entry` describes (every checksum is read).
pub fn verify_sealed(spool: &dyn Spool, abs_id: AbsId, entry: &JournalEntry) -> bool {
    let check = || -> Result<bool> {
        let (len, mut f) = spool.open_sealed(abs_id, entry.seq)?;
        if len != entry.total_bytes {
            return Ok(false);
        }
        let mut reader = SegmentReader::new(false);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            reader.feed(&buf[..n])?;
        }
        let s = reader.finish()?.summary;
        Ok(s.header.seq == entry.seq.get()
            && s.header.abs_id == abs_id.get()
            && s.crc32c == entry.crc32c
            && s.track_count == entry.track_count
            && s.data_bytes == entry.data_bytes)
    };
    check().unwrap_or(false)
}

/// A segment the catalog holds, as the journal describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacedSegment {
    pub seq: SegmentSeq,
    pub frames_through: u64,
    pub data_bytes: u64,
}

/// Where a resumed stream continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePlan {
    /// Track frames the front-end holds (the node sends from there).
    pub frames: u64,
    /// The next segment's sequence number.
    pub next_seq: SegmentSeq,
    /// Segments on tape and in the catalog.
    pub placed: Vec<PlacedSegment>,
    /// Sealed segments in the spool, not on tape: to be written.
    pub requeue: Vec<JournalEntry>,
    /// Journal entries past the resume point (their files are removed).
    pub dropped: Vec<SegmentSeq>,
    /// The journal's entries up to the resume point (what it must hold
    /// before the resumed stream seals more).
    pub kept: Vec<JournalEntry>,
}

impl ResumePlan {
    /// Tracks and data bytes the kept segments hold.
    pub fn kept(&self) -> (u64, u64) {
        let tracks = self.frames;
        let bytes = self.placed.iter().map(|p| p.data_bytes).sum::<u64>()
            + self.requeue.iter().map(|e| e.data_bytes).sum::<u64>();
        (tracks, bytes)
    }
}

/// Plan a resume from the `journal`, the sequence numbers the catalog
/// holds (`placed`) and whether an unplaced segment's file verifies.
/// Fails when the catalog holds a segment the resumed stream would write
/// again differently (it lies past a segment that was lost).
pub fn plan(
    journal: &[JournalEntry],
    placed: &[SegmentSeq],
    verifies: impl Fn(&JournalEntry) -> bool,
) -> Result<ResumePlan> {
    let placed_set: BTreeSet<SegmentSeq> = placed.iter().copied().collect();
    let mut out = ResumePlan {
        frames: 0,
        next_seq: SegmentSeq::new(0),
        placed: Vec::new(),
        requeue: Vec::new(),
        dropped: Vec::new(),
        kept: Vec::new(),
    };
    let mut cut = false;
    for (i, e) in journal.iter().enumerate() {
        if cut {
            out.dropped.push(e.seq);
            continue;
        }
        if e.seq.get() as usize != i || e.frames_through < out.frames {
            bail!(
                "the spool's journal is out of order at line {}: segment {} through frame {} after frame {}",
                i + 1,
                e.seq,
                e.frames_through,
                out.frames
            );
        }
        if placed_set.contains(&e.seq) {
            out.placed.push(PlacedSegment {
                seq: e.seq,
                frames_through: e.frames_through,
                data_bytes: e.data_bytes,
            });
        } else if verifies(e) {
            out.requeue.push(*e);
        } else {
            cut = true;
            out.dropped.push(e.seq);
            continue;
        }
        out.kept.push(*e);
        out.frames = e.frames_through;
        out.next_seq = e
            .seq
            .next()
            .ok_or_else(|| anyhow!("the journal runs past the last segment number"))?;
    }
    if let Some(lost) = placed_set.iter().find(|s| **s >= out.next_seq) {
        bail!(
            "the catalog holds segment {lost} of the ABS but the spool kept only segments before {} \
             (its files were damaged): the backup cannot resume",
            out.next_seq
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::store::FileSpool;
    use crate::spool::SpoolDir;
    use proptest::prelude::*;

    fn entry(seq: u32, frames: u64) -> JournalEntry {
        JournalEntry {
            seq: SegmentSeq::new(seq),
            frames_through: frames,
            track_count: 4,
            data_bytes: 100 * u64::from(seq + 1),
            total_bytes: 500,
            crc32c: 0xdead_beef ^ seq,
        }
    }

    fn seqs(v: &[u32]) -> Vec<SegmentSeq> {
        v.iter().map(|s| SegmentSeq::new(*s)).collect()
    }

    fn file_spool(dir: &std::path::Path) -> FileSpool {
        let d = SpoolDir::new(dir);
        let slots = d.front_end_slots().unwrap();
        FileSpool::new(d, slots)
    }

    #[test]
    fn journal_lines_read_back_up_to_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let spool = file_spool(dir.path());
        let abs = AbsId::new(3);
        std::fs::create_dir_all(spool.dir().abs_dir(abs)).unwrap();
        for i in 0..3 {
            spool.journal(abs, &entry(i, u64::from(i + 1) * 4)).unwrap();
        }
        assert_eq!(spool.read_journal(abs), vec![entry(0, 4), entry(1, 8), entry(2, 12)]);
        // The format on disk is unchanged.
        let text = std::fs::read_to_string(spool.dir().journal(abs)).unwrap();
        let first = format!("0 4 4 100 500 {:08x}", 0xdead_beefu32);
        assert_eq!(
            text.lines().next().unwrap(),
            format!("{first} {:08x}", crc32c::crc32c(first.as_bytes()))
        );
        // A torn append, and a flipped byte: read up to the first bad line.
        let mut text = text.into_bytes();
        text.extend_from_slice(b"3 16 4 40");
        std::fs::write(spool.dir().journal(abs), &text).unwrap();
        assert_eq!(spool.read_journal(abs).len(), 3);
        let second = text.iter().position(|b| *b == b'\n').unwrap() + 1;
        text[second] ^= 1;
        std::fs::write(spool.dir().journal(abs), &text).unwrap();
        assert_eq!(spool.read_journal(abs), vec![entry(0, 4)]);
    }

    #[test]
    fn the_channel_file_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = file_spool(dir.path());
        let ch = crate::frontend::test_fixtures::backup_channel(9, 4, "pn1");

        save_channel(&spool, &ch).unwrap();
        assert_eq!(load_channel(&spool, AbsId::new(4)).unwrap(), ch);
        let recovered = recover(&spool);
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].ch, ch);
        let path = spool.dir().channel_file(AbsId::new(4));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let e = load_channel(&spool, AbsId::new(4)).unwrap_err();
        assert!(format!("{e:#}").contains("checksum"), "{e:#}");
        // A damaged channel is discarded at start, with its directory.
        assert!(recover(&spool).is_empty());
        assert!(!spool.dir().abs_dir(AbsId::new(4)).exists());
    }

    #[test]
    fn resume_continues_after_what_is_on_tape_or_verifies() {
        let j: Vec<_> = (0..5).map(|i| entry(i, u64::from(i + 1) * 10)).collect();
        // 0 and 1 on tape, 2 and 3 whole in the spool, 4 torn.
        let p = plan(&j, &seqs(&[0, 1]), |e| e.seq.get() != 4).unwrap();
        assert_eq!(p.frames, 40);
        assert_eq!(p.next_seq.get(), 4);
        assert_eq!(p.placed.iter().map(|x| x.seq.get()).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(p.requeue.iter().map(|e| e.seq.get()).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(p.dropped, seqs(&[4]));
        // Nothing sealed: resume from the start.
        let p = plan(&[], &[], |_| true).unwrap();
        assert_eq!((p.frames, p.next_seq.get()), (0, 0));
        // A segment on tape past a lost one cannot be written again the same way.
        let e = plan(&j, &seqs(&[0, 3]), |e| e.seq.get() != 1).unwrap_err();
        assert!(format!("{e}").contains("cannot resume"), "{e}");
        // On tape but not in the journal at all.
        assert!(plan(&j[..2], &seqs(&[0, 1, 2]), |_| true).is_err());
    }

    proptest! {
        /// Whatever is on tape and whatever verifies, the resume point is a
        /// prefix of the journal: every frame before it is in a kept
        /// segment, no kept segment is past it, and no placed segment is
        /// ever written again.
        #[test]
        fn the_resume_point_never_skips_a_lost_segment(
            sizes in proptest::collection::vec(1u64..50, 0..12),
            placed_mask in any::<u16>(),
            good_mask in any::<u16>(),
        ) {
            let mut frames = 0;
            let j: Vec<_> = sizes.iter().enumerate().map(|(i, s)| { frames += s; entry(i as u32, frames) }).collect();
            let placed: Vec<u32> = (0..j.len() as u32).filter(|i| placed_mask & (1 << i) != 0).collect();
            match plan(&j, &seqs(&placed), |e| good_mask & (1 << e.seq.get()) != 0) {
                Ok(p) => {
                    let kept = p.next_seq.get() as usize;
                    prop_assert_eq!(p.frames, if kept == 0 { 0 } else { j[kept - 1].frames_through });
                    prop_assert_eq!(p.placed.len() + p.requeue.len(), kept);
                    for e in &p.requeue {
                        prop_assert!(!placed.contains(&e.seq.get()));
                        prop_assert!(good_mask & (1 << e.seq.get()) != 0);
                    }
                    prop_assert!(placed.iter().all(|s| (*s as usize) < kept));
                    prop_assert_eq!(p.dropped.len(), j.len() - kept);
                }
                Err(_) => {
                    // Only when something on tape lies past a lost segment.
                    let first_lost = (0..j.len() as u32).find(|i| placed_mask & (1 << i) == 0 && good_mask & (1 << i) == 0);
                    prop_assert!(first_lost.is_some_and(|l| placed.iter().any(|s| *s > l)));
                }
            }
        }
    }
}
