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

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a restore job's file stays open after its last use (the gap
/// between two members of a chain is much shorter).
const JOB_IDLE: Duration = Duration::from_secs(3600);

/// The node's restore directory.
pub struct RestoreDir {
    dir: PathBuf,
    /// (device, inode) of every served volume.
    volumes: Vec<(u64, u64)>,
    /// Files of restore jobs in progress.
    jobs: Mutex<HashMap<u64, OpenJob>>,
}

/// A restore job's file: (file, its path, last use).
type OpenJob = (Arc<File>, PathBuf, Instant);

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

    /// The file `name` of restore `job`, `size` bytes long: created (or,
    /// with `replace`, an existing regular file reused) by the job's first
    /// stream, shared by the others.
    pub fn file(&self, job: u64, name: &str, replace: bool, size: u64) -> Result<(PathBuf, Arc<File>)> {
        proto::wire::check_restore_file_name(name).map_err(anyhow::Error::msg)?;
        let path = self.dir.join(name);
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.retain(|_, (_, _, used)| used.elapsed() < JOB_IDLE);
        if let Some((file, open_path, used)) = jobs.get_mut(&job) {
            if *open_path != path {
                bail!(
                    "restore job {job} writes {}, not {}",
                    open_path.display(),
                    path.display()
                );
            }
            *used = Instant::now();
            return Ok((path, file.clone()));
        }
        let file = self.create(&path, replace)?;
        let meta = file
            .metadata()
            .with_context(|| format!("restore file {}", path.display()))?;
        if !meta.is_file() {
            bail!("restore file {}: not a regular file", path.display());
        }
        if self.volumes.contains(&(meta.dev(), meta.ino())) {
            bail!(
                "restore file {} is one of this node's served volumes; restore onto volumes with --original or --to-volumes",
                path.display()
            );
        }
        // Never truncated below what it will hold: streams of several
        // drives write into it, each its own tracks; every byte of the
        // object is rewritten, and set_len cuts anything beyond it.
        file.set_len(size)
            .with_context(|| format!("sizing restore file {}", path.display()))?;
        let file = Arc::new(file);
        jobs.insert(job, (file.clone(), path.clone(), Instant::now()));
        Ok((path, file))
    }

    fn create(&self, path: &Path, replace: bool) -> Result<File> {
        let mut new = OpenOptions::new();
        // O_EXCL: fails on anything at the path, a symlink included.
        new.read(true).write(true).create_new(true).mode(0o600);
        match new.open(path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && replace => OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .with_context(|| format!("replacing restore file {} (symlinks are not followed)", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "restore file {} already exists; restore with --replace to overwrite it",
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("creating restore file {}", path.display())),
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
            assert!(d.file(1, bad, true, 10).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_existing_file_is_kept_unless_replace_is_asked() {
        let (_t, d, _) = dir_with_volume();
        std::fs::write(d.path().join("db.img"), b"precious").unwrap();
        let err = d.file(1, "db.img", false, 4).unwrap_err();
        assert!(format!("{err:#}").contains("--replace"), "{err:#}");
        assert_eq!(std::fs::read(d.path().join("db.img")).unwrap(), b"precious");
        let (_, f) = d.file(2, "db.img", true, 4).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 4);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (t, d, _) = dir_with_volume();
        let outside = t.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, d.path().join("link")).unwrap();
        assert!(d.file(1, "link", false, 100).is_err());
        assert!(d.file(2, "link", true, 100).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
    }

    #[test]
    fn a_served_volume_is_never_a_target() {
        let (_t, d, vol) = dir_with_volume();
        std::fs::hard_link(&vol, d.path().join("alias")).unwrap();
        let err = d.file(1, "alias", true, 100).unwrap_err();
        assert!(format!("{err:#}").contains("served volumes"), "{err:#}");
        assert_eq!(std::fs::read(&vol).unwrap(), b"volume");
    }

    #[test]
    fn streams_of_one_job_share_the_file_and_other_jobs_do_not() {
        let (_t, d, _) = dir_with_volume();
        let (_, a) = d.file(7, "x.img", false, 8).unwrap();
        let (_, b) = d.file(7, "x.img", false, 8).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(d.file(8, "x.img", false, 8).is_err());
        assert!(d.file(7, "y.img", false, 8).is_err());
    }
}
