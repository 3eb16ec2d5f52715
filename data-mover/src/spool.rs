//! The spool directory of a mover: the secondary node's internal storage
//! (seed FIG. 27, 271c; FIG. 32's internal memory 323).
//!
//! A front-end and its back-end on one machine share it: the front-end
//! accumulates each ABS's tracks in it and seals segments there; the
//! back-end copies sealed segments from it to tape, and places the
//! segments it reads back for a restore in it. Every name is built from ids
//! by the side that uses it; no path crosses the wire.
//!
//! ```text
//! abs-<abs>/seg-<seq>.open       front-end: the segment being accumulated
//! abs-<abs>/seg-<seq>.sealed     front-end: sealed, waiting for tape; deleted once on tape and in the catalog
//! abs-<abs>/channel              front-end: the backup channel, to resume it after a restart (see frontend::resume)
//! abs-<abs>/sealed.journal       front-end: one synced line per sealed segment (see frontend::resume)
//! restore-<channel>/seg-<seq>.part   back-end: being read from tape and verified
//! restore-<channel>/seg-<seq>.ready  back-end: verified, for the front-end; deleted when it says it is done
//! incoming/abs-<abs>-seg-<seq>       back-end of a pair on two machines: a segment received over QUIC
//! .pair-<32 hex digits>          front-end: the token that proves the directory is shared
//! slots-fe/, slots-be/           spool files done with, kept to be written over (see below)
//! ```
//!
//! **Warm files.** A spool file that is done with (a segment on tape, a
//! restored segment taken over) is not deleted but renamed into the
//! process's slot directory, and the next spool file is that one renamed
//! back and written over in place. Its pages stay in the page cache, so the
//! next segment is written into memory the kernel already holds instead of
//! freshly allocated pages (measured: a GiB written over cached pages costs
//! a fifth of the CPU of a GiB written into new ones, more under a
//! hypervisor that takes freed guest memory back). The slots hold stale
//! segment bytes, as freed disk blocks would; they never hold anything a
//! reader takes for a segment, and at most [`SLOTS_KEPT`] of them are kept.
//!
//! Segment files are not synced: the primary node keeps every track until
//! it is on tape ([`proto::wire::TrackAck::OnTape`]). A front-end that
//! restarts resumes its backups from what its spool kept (a killed process
//! leaves its files whole; they are verified before use), and the primary
//! node sends again only what the spool did not keep.
//!
//! The front-end's stages of a segment over these files (Received `.open`
//! → Durable → Sealed `.sealed` + journal line → OnTape → InCatalog →
//! Released into `slots-fe/`) are the release protocol of
//! [`crate::frontend::release`], carried out by
//! [`crate::frontend::store::FileSpool`].

use proto::domain::{AbsId, ChannelId, SegmentSeq};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes of a pairing token.
pub const TOKEN_LEN: usize = 32;

/// Free spool files kept for reuse, per process role.
pub const SLOTS_KEPT: usize = 16;

/// Spool files done with, kept to be written over (see the module docs).
#[derive(Debug, Clone)]
pub struct Slots {
    dir: PathBuf,
    free: Arc<Mutex<Vec<PathBuf>>>,
    next: Arc<AtomicU64>,
}

impl Slots {
    /// The slot directory `dir` (created), with the slots already in it.
    pub fn open(dir: PathBuf) -> std::io::Result<Slots> {
        std::fs::create_dir_all(&dir)?;
        let mut free = Vec::new();
        let mut next = 0;
        for e in std::fs::read_dir(&dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            match name.strip_prefix("slot-").and_then(|n| n.parse::<u64>().ok()) {
                Some(n) if free.len() < SLOTS_KEPT => {
                    next = next.max(n + 1);
                    free.push(e.path());
                }
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(Slots {
            dir,
            free: Arc::new(Mutex::new(free)),
            next: Arc::new(AtomicU64::new(next)),
        })
    }

    /// Create `path` for writing from its start: a free slot renamed into
    /// place (not truncated: the caller sets the length when done, see
    /// [`Slots::finish`]) or a new file.
    pub fn create(&self, path: &Path) -> std::io::Result<File> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        if let Some(slot) = reused {
            if std::fs::rename(&slot, path).is_ok() {
                return OpenOptions::new().write(true).open(path);
            }
        }
        OpenOptions::new().write(true).create(true).truncate(true).open(path)
    }

    /// A file made with [`Slots::create`] is complete at `len` bytes: cut
    /// whatever an earlier use left beyond.
    pub fn finish(file: &File, len: u64) -> std::io::Result<()> {
        if file.metadata()?.len() != len {
            file.set_len(len)?;
        }
        Ok(())
    }

    /// Done with `path`: keep it as a free slot, or delete it when enough
    /// are kept.
    pub fn release(&self, path: &Path) {
        if let Ok(mut free) = self.free.lock() {
            if free.len() < SLOTS_KEPT {
                let slot = self
                    .dir
                    .join(format!("slot-{}", self.next.fetch_add(1, Ordering::Relaxed)));
                if std::fs::rename(path, &slot).is_ok() {
                    free.push(slot);
                    return;
                }
            }
        }
        let _ = std::fs::remove_file(path);
    }
}

/// A mover's spool directory: the names in it. The front-end's segment
/// release protocol uses it through [`crate::frontend::store::FileSpool`].
#[derive(Debug, Clone)]
pub struct SpoolDir {
    dir: PathBuf,
}

impl SpoolDir {
    pub fn new(dir: impl Into<PathBuf>) -> SpoolDir {
        SpoolDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The accumulation directory of an ABS.
    pub fn abs_dir(&self, abs_id: AbsId) -> PathBuf {
        self.dir.join(format!("abs-{abs_id}"))
    }

    /// The segment of an ABS being accumulated.
    pub fn open_segment(&self, abs_id: AbsId, seq: SegmentSeq) -> PathBuf {
        self.abs_dir(abs_id).join(format!("seg-{seq:06}.open"))
    }

    /// A sealed segment of an ABS, waiting for tape.
    pub fn sealed_segment(&self, abs_id: AbsId, seq: SegmentSeq) -> PathBuf {
        self.abs_dir(abs_id).join(format!("seg-{seq:06}.sealed"))
    }

    /// The backup channel an ABS directory belongs to.
    pub fn channel_file(&self, abs_id: AbsId) -> PathBuf {
        self.abs_dir(abs_id).join("channel")
    }

    /// The journal of an ABS's sealed segments.
    pub fn journal(&self, abs_id: AbsId) -> PathBuf {
        self.abs_dir(abs_id).join("sealed.journal")
    }

    /// Where a restore channel's segments are placed.
    pub fn restore_dir(&self, channel_id: ChannelId) -> PathBuf {
        self.dir.join(format!("restore-{channel_id}"))
    }

    /// A segment being read from tape for a restore channel.
    pub fn staged_part(&self, channel_id: ChannelId, seq: SegmentSeq) -> PathBuf {
        self.restore_dir(channel_id).join(format!("seg-{seq:06}.part"))
    }

    /// A verified segment of a restore channel, for the front-end.
    pub fn staged_ready(&self, channel_id: ChannelId, seq: SegmentSeq) -> PathBuf {
        self.restore_dir(channel_id).join(format!("seg-{seq:06}.ready"))
    }

    /// The front-end's free spool files.
    pub fn front_end_slots(&self) -> std::io::Result<Slots> {
        Slots::open(self.dir.join("slots-fe"))
    }

    /// The back-end's free spool files.
    pub fn back_end_slots(&self) -> std::io::Result<Slots> {
        Slots::open(self.dir.join("slots-be"))
    }

    /// A segment received over QUIC by a back-end, before it goes to tape.
    pub fn incoming(&self, abs_id: AbsId, seq: SegmentSeq) -> PathBuf {
        self.dir.join("incoming").join(format!("abs-{abs_id}-seg-{seq:06}"))
    }

    /// A segment read from one tape on its way to another (a pool backup).
    pub fn copying(&self, abs_id: AbsId, seq: SegmentSeq) -> PathBuf {
        self.dir.join("copying").join(format!("abs-{abs_id}-seg-{seq:06}"))
    }

    /// The file of a pairing token, if `name` is a token name
    /// (`.pair-` and 32 lower-case hex digits); anything else, e.g. a path,
    /// is refused.
    pub fn token(&self, name: &str) -> Option<PathBuf> {
        valid_token_name(name).then(|| self.dir.join(name))
    }

    /// Back-end start: restore placements, received segments and segments
    /// being copied of the previous run.
    pub fn discard_back_end_leftovers(&self) {
        self.discard(|name| name.starts_with("restore-") || name == "incoming" || name == "copying");
    }

    /// Front-end start: pairing tokens of the previous run.
    pub fn discard_front_end_leftovers(&self) {
        self.discard(|name| name.starts_with(".pair-"));
    }

    fn discard(&self, ours: impl Fn(&str) -> bool) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !ours(&name.to_string_lossy()) {
                continue;
            }
            let path = e.path();
            tracing::warn!(path = %path.display(), "discarding what a previous run left in the spool");
            let res = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(err) = res {
                tracing::warn!(path = %path.display(), error = %err, "could not discard it");
            }
        }
    }
}

/// Whether `name` is a pairing token's file name.
pub fn valid_token_name(name: &str) -> bool {
    name.strip_prefix(".pair-")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// A fresh token: its file name and its contents (random).
pub fn new_token() -> (String, Vec<u8>) {
    let name: [u8; 16] = rand::random();
    let token: [u8; TOKEN_LEN] = rand::random();
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    (format!(".pair-{hex}"), token.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_from_ids_and_tokens_are_checked() {
        let s = SpoolDir::new("/sp");
        assert_eq!(
            s.sealed_segment(AbsId::new(12), SegmentSeq::new(3)),
            PathBuf::from("/sp/abs-12/seg-000003.sealed")
        );
        assert_eq!(
            s.open_segment(AbsId::new(12), SegmentSeq::new(3)),
            PathBuf::from("/sp/abs-12/seg-000003.open")
        );
        assert_eq!(
            s.staged_ready(ChannelId::new(7), SegmentSeq::new(0)),
            PathBuf::from("/sp/restore-7/seg-000000.ready")
        );
        assert_eq!(
            s.incoming(AbsId::new(5), SegmentSeq::new(1)),
            PathBuf::from("/sp/incoming/abs-5-seg-000001")
        );
        let (name, token) = new_token();
        assert!(valid_token_name(&name), "{name}");
        assert_eq!(token.len(), TOKEN_LEN);
        assert_ne!(new_token().0, name);
        for bad in [
            "",
            ".pair-",
            "../etc/passwd",
            ".pair-0123456789abcdef0123456789abcdeg",
            ".pair-0123456789ABCDEF0123456789abcdef",
            ".pair-0123456789abcdef0123456789abcdef/x",
            ".pair-0123456789abcdef0123456789abcde",
        ] {
            assert!(s.token(bad).is_none(), "{bad:?} accepted");
        }
        assert_eq!(
            s.token(".pair-0123456789abcdef0123456789abcdef"),
            Some(PathBuf::from("/sp/.pair-0123456789abcdef0123456789abcdef"))
        );
    }

    #[test]
    fn slots_are_written_over_and_cut_to_length() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path().join("slots")).unwrap();
        let a = dir.path().join("a");
        let mut f = slots.create(&a).unwrap();
        f.write_all(&[7u8; 1000]).unwrap();
        Slots::finish(&f, 1000).unwrap();
        slots.release(&a);
        assert!(!a.exists());
        // The same file comes back, written over from its start and cut.
        let b = dir.path().join("b");
        let mut f = slots.create(&b).unwrap();
        f.write_all(&[9u8; 10]).unwrap();
        Slots::finish(&f, 10).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), vec![9u8; 10]);
        assert_eq!(std::fs::read_dir(dir.path().join("slots")).unwrap().count(), 0);
        // Slots survive a restart; at most SLOTS_KEPT are kept.
        slots.release(&b);
        let again = Slots::open(dir.path().join("slots")).unwrap();
        let c = dir.path().join("c");
        drop(again.create(&c).unwrap());
        assert!(c.exists());
        let many: Vec<PathBuf> = (0..SLOTS_KEPT + 3).map(|i| dir.path().join(format!("x{i}"))).collect();
        for p in &many {
            drop(again.create(p).unwrap());
        }
        for p in &many {
            again.release(p);
        }
        assert!(many.iter().all(|p| !p.exists()));
        assert_eq!(std::fs::read_dir(dir.path().join("slots")).unwrap().count(), SLOTS_KEPT);
    }

    #[test]
    fn each_side_discards_only_its_own_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let s = SpoolDir::new(dir.path());
        for d in ["abs-1", "restore-2", "incoming", "other"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join(".pair-0123456789abcdef0123456789abcdef"), b"t").unwrap();
        s.discard_back_end_leftovers();
        let left = |names: &[&str]| names.iter().all(|n| dir.path().join(n).exists());
        assert!(left(&["abs-1", "other", ".pair-0123456789abcdef0123456789abcdef"]));
        assert!(!dir.path().join("restore-2").exists() && !dir.path().join("incoming").exists());
        // The front-end keeps only what it can resume (abs-1 has no channel file).
        s.discard_front_end_leftovers();
        let fe = crate::frontend::store::FileSpool::new(s.clone(), s.front_end_slots().unwrap());
        assert!(crate::frontend::resume::recover(&fe).is_empty());
        assert!(left(&["other"]));
        assert!(!dir.path().join("abs-1").exists());
        assert!(!dir.path().join(".pair-0123456789abcdef0123456789abcdef").exists());
    }
}

/// Bytes in the files under `dir`, at any depth (a file that vanishes
/// while it is counted counts nothing).
pub fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// How often the spool's size is published.
pub const SPOOL_GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Publish the spool's bytes (gauge `dmc_mover_spool_bytes`: accumulation
/// files, sealed segments, staged restores) every [`SPOOL_GAUGE_INTERVAL`],
/// for as long as the process runs.
pub async fn publish_spool_bytes(spool: SpoolDir) {
    loop {
        let dir = spool.dir().to_path_buf();
        if let Ok(bytes) = tokio::task::spawn_blocking(move || bytes_under(&dir)).await {
            metrics::gauge!("dmc_mover_spool_bytes").set(bytes as f64);
        }
        tokio::time::sleep(SPOOL_GAUGE_INTERVAL).await;
    }
}

#[cfg(test)]
mod spool_bytes_tests {
    #[test]
    fn bytes_under_counts_files_at_any_depth() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir_all(d.path().join("abs-1")).unwrap();
        std::fs::write(d.path().join("abs-1").join("seg-0.sealed"), [0u8; 32]).unwrap();
        assert_eq!(super::bytes_under(d.path()), 42);
        assert_eq!(super::bytes_under(&d.path().join("missing")), 0);
    }
}
