//! Where restores into files land: the node's own restore directory.
//!
//! A restore request names a file, never a path: one plain name (see
//! [`proto::wire::check_restore_file_name`]), checked again here, created
//! inside `--restore-dir` with `O_CREAT|O_EXCL` (so an existing file or a
//! symlink planted in its place is never written through), or, when the
//! request says `replace`, opened with `O_NOFOLLOW` and only if it is a
//! regular file. A file that is one of the node's served volumes (the same
//! inode, e.g. a hard link) is refused: volumes change only through the
//! host-write path, which keeps their change maps and snapshots right.
//!
//! Every stream of one restore (several drives, the members of a chain)
//! writes into the same file: the first opens it, the others of the same
//! restore job get the same open file.
//!
//! That file is a *partial* one, `.NAME.partial-JOB`, until the station
//! says the whole restore succeeded ([`RestoreDir::commit`]): it is synced
//! and renamed to NAME (atomically; without `replace` only if NAME still
//! does not exist), and an existing NAME is untouched until then. A
//! restore that fails removes its partial file ([`RestoreDir::discard`]);
//! one the node did not live to finish leaves only a `.partial-` name,
//! removed when the node starts again. No file that could pass for a good
//! restore is ever left behind.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proto::domain::{Failure, JobId};

/// How long a restore job's file stays open after its last use (the gap
/// between two members of a chain is much shorter).
const JOB_IDLE: Duration = Duration::from_secs(3600);

/// The node's restore directory.
pub struct RestoreDir {
    dir: PathBuf,
    /// (device, inode) of every served volume.
    volumes: Vec<(u64, u64)>,
    /// Files of restore jobs in progress.
    jobs: Mutex<HashMap<JobId, OpenJob>>,
}

/// A restore job's file: (file, its partial path, last use, final name, replace).
struct OpenJob {
    file: Arc<File>,
    partial: PathBuf,
    used: Instant,
    name: PathBuf,
    replace: bool,
}

/// The partial file of `job` restoring into `name`.
fn partial_name(name: &str, job: JobId) -> String {
    format!(".{name}.partial-{:016x}", job.get())
}

/// Whether a directory entry is a partial file a restore left.
fn is_partial(entry: &str) -> bool {
    entry.starts_with('.') && entry.contains(".partial-")
}

impl RestoreDir {
    /// Use `dir` (created 0700 if missing) for restores; `volumes`: the
    /// files of the node's served volumes.
    pub fn open(dir: &Path, volumes: &[PathBuf]) -> Result<RestoreDir> {
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating restore directory {}", dir.display()))?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .with_context(|| format!("restricting restore directory {}", dir.display()))?;
        }
        let meta = std::fs::metadata(dir).with_context(|| format!("restore directory {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("restore directory {}: not a directory", dir.display());
        }
        let volumes = volumes
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).with_context(|| format!("volume {}", p.display()))?;
                Ok((m.dev(), m.ino()))
            })
            .collect::<Result<Vec<_>>>()?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("restore directory {}", dir.display()))?;
        // Partial files of restores an earlier start did not finish.
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(is_partial) {
                tracing::warn!(file = %entry.path().display(), "removing the partial file of an unfinished restore");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(RestoreDir {
            dir,
            volumes,
            jobs: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The partial file of restore `job` into `name`, `size` bytes long:
    /// created by the job's first stream, shared by the others. Returns
    /// the path written (the partial one) and the file.
    pub fn file(&self, job: JobId, name: &str, replace: bool, size: u64) -> Result<(PathBuf, Arc<File>)> {
        proto::wire::check_restore_file_name(name).map_err(Failure::invalid)?;
        let path = self.dir.join(name);
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.retain(|_, j| j.used.elapsed() < JOB_IDLE);
        if let Some(j) = jobs.get_mut(&job) {
            if j.name != path {
                bail!(Failure::invalid(format!(
                    "restore job {job} writes {}, not {}",
                    j.name.display(),
                    path.display()
                )));
            }
            j.used = Instant::now();
            return Ok((j.partial.clone(), j.file.clone()));
        }
        self.check_target(&path, replace)?;
        let partial = self.dir.join(partial_name(name, job));
        // O_EXCL: fails on anything at the path, a symlink included.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating restore file {}", partial.display()))?;
        file.set_len(size)
            .with_context(|| format!("sizing restore file {}", partial.display()))?;
        let file = Arc::new(file);
        jobs.insert(
            job,
            OpenJob {
                file: file.clone(),
                partial: partial.clone(),
                used: Instant::now(),
                name: path,
                replace,
            },
        );
        Ok((partial, file))
    }

    /// Whether `path` may become a restore's result: free, or (with
    /// `replace`) a regular file that is not a served volume. Symlinks are
    /// never followed.
    fn check_target(&self, path: &Path, replace: bool) -> Result<()> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("restore file {}", path.display())),
        };
        if !replace {
            bail!(Failure::conflict(format!(
                "restore file {} already exists; restore with --replace to overwrite it",
                path.display()
            )));
        }
        if !meta.is_file() {
            bail!(Failure::refused(format!(
                "restore file {}: not a regular file (symlinks are not followed)",
                path.display()
            )));
        }
        if self.volumes.contains(&(meta.dev(), meta.ino())) {
            bail!(Failure::refused(format!(
                "restore file {} is one of this node's served volumes; restore onto volumes with --original or --to-volumes",
                path.display()
            )));
        }
        Ok(())
    }

    /// Restore `job` succeeded: sync its file, give it its name, sync the
    /// directory. Returns the final path. Without `replace`, a file that
    /// appeared at the name meanwhile is kept and the restore fails.
    pub fn commit(&self, job: JobId) -> Result<PathBuf> {
        let j = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job)
            .ok_or_else(|| anyhow::anyhow!("restore job {job} has no file on this node"))?;
        let done = (|| {
            j.file
                .sync_all()
                .with_context(|| format!("syncing {}", j.partial.display()))?;
            if j.replace {
                self.check_target(&j.name, true)?;
                std::fs::rename(&j.partial, &j.name)
                    .with_context(|| format!("renaming {} to {}", j.partial.display(), j.name.display()))?;
            } else {
                // link(2) never replaces: the name is taken only if free.
                std::fs::hard_link(&j.partial, &j.name).with_context(|| {
                    format!(
                        "naming the restored file {} (created meanwhile? it is kept)",
                        j.name.display()
                    )
                })?;
                std::fs::remove_file(&j.partial).with_context(|| format!("removing {}", j.partial.display()))?;
            }
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("syncing directory {}", self.dir.display()))?;
            Ok(j.name.clone())
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&j.partial);
        }
        done
    }

    /// Restore `job` failed: remove its partial file (none: nothing to do).
    pub fn discard(&self, job: JobId) {
        let j = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&job);
        if let Some(j) = j {
            tracing::info!(file = %j.partial.display(), "restore failed: partial file removed");
            let _ = std::fs::remove_file(&j.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_volume() -> (tempfile::TempDir, RestoreDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol0.img");
        std::fs::write(&vol, b"volume").unwrap();
        let d = RestoreDir::open(&t.path().join("restores"), std::slice::from_ref(&vol)).unwrap();
        (t, d, vol)
    }

    #[test]
    fn names_that_are_paths_are_refused() {
        let (_t, d, _) = dir_with_volume();
        for bad in ["../x", "/etc/passwd", "a/b", "..", ".", "", "x\0y"] {
            assert!(d.file(JobId::new(1), bad, true, 10).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_existing_file_is_kept_unless_replace_is_asked() {
        let (_t, d, _) = dir_with_volume();
        std::fs::write(d.path().join("db.img"), b"precious").unwrap();
        let err = d.file(JobId::new(1), "db.img", false, 4).unwrap_err();
        assert!(format!("{err:#}").contains("--replace"), "{err:#}");
        assert_eq!(std::fs::read(d.path().join("db.img")).unwrap(), b"precious");
        let (_, f) = d.file(JobId::new(2), "db.img", true, 4).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 4);
        // Replaced only when the restore succeeds.
        assert_eq!(std::fs::read(d.path().join("db.img")).unwrap(), b"precious");
        d.commit(JobId::new(2)).unwrap();
        assert_eq!(std::fs::read(d.path().join("db.img")).unwrap(), vec![0u8; 4]);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (t, d, _) = dir_with_volume();
        let outside = t.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, d.path().join("link")).unwrap();
        assert!(d.file(JobId::new(1), "link", false, 100).is_err());
        assert!(d.file(JobId::new(2), "link", true, 100).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
    }

    #[test]
    fn a_served_volume_is_never_a_target() {
        let (_t, d, vol) = dir_with_volume();
        std::fs::hard_link(&vol, d.path().join("alias")).unwrap();
        let err = d.file(JobId::new(1), "alias", true, 100).unwrap_err();
        assert!(format!("{err:#}").contains("served volumes"), "{err:#}");
        assert_eq!(std::fs::read(&vol).unwrap(), b"volume");
    }

    #[test]
    fn streams_of_one_job_share_the_file_and_other_jobs_do_not() {
        let (_t, d, _) = dir_with_volume();
        let (_, a) = d.file(JobId::new(7), "x.img", false, 8).unwrap();
        let (_, b) = d.file(JobId::new(7), "x.img", false, 8).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(d.file(JobId::new(7), "y.img", false, 8).is_err());
    }

    /// Until the restore succeeds there is only a partial file, which no
    /// one could take for the result; a failed restore leaves nothing.
    #[test]
    fn only_a_successful_restore_leaves_a_file_under_its_name() {
        let (_t, d, _) = dir_with_volume();
        let (partial, f) = d.file(JobId::new(9), "good.img", false, 3).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&*f, b"abc", 0).unwrap();
        assert!(!d.path().join("good.img").exists());
        assert!(partial
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".good.img.partial-"));
        assert_eq!(d.commit(JobId::new(9)).unwrap(), d.path().join("good.img"));
        assert_eq!(std::fs::read(d.path().join("good.img")).unwrap(), b"abc");
        assert!(!partial.exists());

        let (partial, _) = d.file(JobId::new(10), "bad.img", false, 3).unwrap();
        d.discard(JobId::new(10));
        assert!(!partial.exists() && !d.path().join("bad.img").exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "only good.img is left");
    }

    /// A name taken while the restore ran is kept (without --replace).
    #[test]
    fn a_name_taken_meanwhile_is_not_overwritten() {
        let (_t, d, _) = dir_with_volume();
        d.file(JobId::new(11), "race.img", false, 3).unwrap();
        std::fs::write(d.path().join("race.img"), b"theirs").unwrap();
        assert!(d.commit(JobId::new(11)).is_err());
        assert_eq!(std::fs::read(d.path().join("race.img")).unwrap(), b"theirs");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    /// Partial files of an earlier start are removed when the node starts.
    #[test]
    fn partial_files_left_by_a_crash_are_removed_at_start() {
        let (t, d, vol) = dir_with_volume();
        d.file(JobId::new(12), "crash.img", false, 3).unwrap();
        std::fs::write(d.path().join("kept.img"), b"k").unwrap();
        drop(d);
        let d = RestoreDir::open(&t.path().join("restores"), &[vol]).unwrap();
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["kept.img".to_string()]);
    }
}
