//! The main job as a reusable scenario: make a scattered logical object on
//! two volumes, start a cluster, back it up, restore it onto other volumes
//! through a remap and into a plain file, and verify both byte for byte.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use proto::abs::ObjectExtent;

use crate::cluster::{Cluster, ClusterSpec, PRIMARY};
use crate::fixture;

/// Sizes of a scenario.
#[derive(Debug, Clone)]
pub struct ScenarioSpec {
    pub object_size: u64,
    pub block_size: u32,
    pub track_size: u32,
    pub segment_size: u64,
    pub seed: u64,
}

/// What a scenario measured.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub abs_id: u64,
    pub object_size: u64,
    pub extents: usize,
    pub backup_bytes: u64,
    pub backup_seconds: f64,
    pub segments: u64,
    pub tapes: Vec<String>,
    pub restore_volume_seconds: f64,
    pub restore_file_seconds: f64,
    pub restored_file: PathBuf,
}

/// Source and destination volumes, and the object's extent files.
pub struct Layout {
    pub dir: PathBuf,
    pub volumes: Vec<(String, PathBuf)>,
    pub extents: Vec<ObjectExtent>,
    pub allocation: Vec<ObjectExtent>,
    pub extents_file: PathBuf,
    pub allocation_file: PathBuf,
}

impl Layout {
    pub fn path_of(&self, volume: &str) -> PathBuf {
        self.dir.join(format!("{volume}.img"))
    }
}

/// Make the volumes: `vol0`, `vol1` (random data, the object scattered over
/// both in tracks shared with other data) and `dst0`, `dst1` (zeros).
pub fn make_layout(dir: &Path, spec: &ScenarioSpec) -> Result<Layout> {
    std::fs::create_dir_all(dir)?;
    let block = u64::from(spec.block_size);
    // Each source volume holds half the object plus as much other data.
    let src_size = (spec.object_size + spec.object_size / 4).div_ceil(block) * block * 2 / 2 + 64 * block;
    let dst_size = (spec.object_size / 2 + spec.object_size / 8).div_ceil(block) * block + 64 * block;
    let mut volumes = Vec::new();
    for (i, name) in ["vol0", "vol1"].iter().enumerate() {
        let p = dir.join(format!("{name}.img"));
        fixture::make_volume(&p, src_size, spec.seed + i as u64 + 1)?;
        volumes.push((name.to_string(), p));
    }
    for name in ["dst0", "dst1"] {
        let p = dir.join(format!("{name}.img"));
        fixture::make_empty_volume(&p, dst_size)?;
        volumes.push((name.to_string(), p));
    }
    let src: Vec<(String, u64)> = vec![("vol0".into(), src_size), ("vol1".into(), src_size)];
    let dst: Vec<(String, u64)> = vec![("dst0".into(), dst_size), ("dst1".into(), dst_size)];
    let max_blocks = (u64::from(spec.track_size) / block * 3).max(2);
    let extents = fixture::scatter(&src, block, spec.object_size, max_blocks, spec.seed)?;
    let allocation = fixture::allocation(&dst, block, spec.object_size, spec.seed + 7)?;
    let extents_file = dir.join("object.extents");
    let allocation_file = dir.join("restore.allocation");
    std::fs::write(&extents_file, render(&extents))?;
    std::fs::write(&allocation_file, render(&allocation))?;
    Ok(Layout {
        dir: dir.to_path_buf(),
        volumes,
        extents,
        allocation,
        extents_file,
        allocation_file,
    })
}

/// An extent list in the `smapp` file format.
pub fn render(extents: &[ObjectExtent]) -> String {
    let mut s = String::from("# volume offset length (bytes, logical order)\n");
    for e in extents {
        s.push_str(&format!("{} {} {}\n", e.volume, e.offset, e.length));
    }
    s
}

/// The cluster for a layout.
pub fn cluster_spec(layout: &Layout, spec: &ScenarioSpec) -> ClusterSpec {
    ClusterSpec::new(
        layout.volumes.clone(),
        spec.block_size,
        spec.track_size,
        spec.segment_size,
    )
}

fn u(v: &serde_json::Value, key: &str) -> Result<u64> {
    v.get(key)
        .and_then(|x| x.as_u64())
        .with_context(|| format!("no {key} in {v}"))
}

/// What one backup of the scenario's object printed.
#[derive(Debug, Clone)]
pub struct BackupResult {
    pub abs_id: u64,
    pub bytes: u64,
    pub segments: u64,
    pub tapes: Vec<String>,
}

/// Back up the scenario's object (`demo-object` from its extent file).
pub fn backup(cluster: &Cluster, layout: &Layout) -> Result<BackupResult> {
    let extents_file = layout.extents_file.to_string_lossy().to_string();
    let out = cluster.smapp(&[
        "backup",
        "--primary",
        PRIMARY,
        "--object",
        "demo-object",
        "--extents",
        &extents_file,
    ])?;
    let res = out.last().context("backup printed no result")?;
    Ok(BackupResult {
        abs_id: u(res, "abs_id")?,
        bytes: u(res, "bytes")?,
        segments: u(res, "segments")?,
        tapes: res
            .get("tapes")
            .and_then(|t| t.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default(),
    })
}

/// Restore an ABS onto `dst0`/`dst1` through the layout's allocation.
pub fn restore_to_volumes(cluster: &Cluster, layout: &Layout, abs_id: u64) -> Result<()> {
    let alloc = layout.allocation_file.to_string_lossy().to_string();
    cluster.smapp(&[
        "restore",
        &abs_id.to_string(),
        "--to-volumes",
        PRIMARY,
        "--allocation",
        &alloc,
    ])?;
    Ok(())
}

/// Check the object restored onto `dst0`/`dst1` byte for byte.
pub fn verify_volumes(layout: &Layout) -> Result<()> {
    let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
    let dest = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.allocation);
    let n = fixture::compare(source, dest, "restore onto dst0/dst1 through the remap")?;
    let object_size: u64 = layout.extents.iter().map(|e| e.length).sum();
    if n != object_size {
        bail!("compared {n} bytes, the object has {object_size}");
    }
    Ok(())
}

/// Restore an ABS into `file` (in the primary node's restore directory,
/// see [`Cluster::restored`]; removed first).
pub fn restore_to_file(cluster: &Cluster, abs_id: u64, file: &Path) -> Result<()> {
    let _ = std::fs::remove_file(file);
    let to_file = cluster.to_file(file);
    cluster.smapp(&["restore", &abs_id.to_string(), "--to-file", &to_file])?;
    Ok(())
}

/// Check a file restored from the object byte for byte.
pub fn verify_file(layout: &Layout, file: &Path) -> Result<()> {
    let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    fixture::compare(source, f, "restore into a plain file")?;
    Ok(())
}

/// Back up the object, restore it both ways, verify both.
pub fn run(cluster: &Cluster, layout: &Layout) -> Result<ScenarioReport> {
    let t = Instant::now();
    let b = backup(cluster, layout)?;
    let backup_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    restore_to_volumes(cluster, layout, b.abs_id)?;
    let restore_volume_seconds = t.elapsed().as_secs_f64();
    verify_volumes(layout)?;

    let restored_file = cluster.restored("restored.bin");
    let t = Instant::now();
    restore_to_file(cluster, b.abs_id, &restored_file)?;
    let restore_file_seconds = t.elapsed().as_secs_f64();
    verify_file(layout, &restored_file)?;

    Ok(ScenarioReport {
        abs_id: b.abs_id,
        object_size: layout.extents.iter().map(|e| e.length).sum(),
        extents: layout.extents.len(),
        backup_bytes: b.bytes,
        backup_seconds,
        segments: b.segments,
        tapes: b.tapes,
        restore_volume_seconds,
        restore_file_seconds,
        restored_file,
    })
}

/// One more logical object on the layout's source volumes, with its extent file.
pub struct Object {
    pub name: String,
    pub extents: Vec<ObjectExtent>,
    pub file: PathBuf,
}

/// `count` different objects of `object_size` scattered over `vol0` and
/// `vol1` (they may share tracks with each other), extent files in `dir`.
pub fn scatter_objects(layout: &Layout, dir: &Path, object_size: u64, count: usize, seed: u64) -> Result<Vec<Object>> {
    let src = ["vol0", "vol1"]
        .iter()
        .map(|v| Ok((v.to_string(), std::fs::metadata(layout.path_of(v))?.len())))
        .collect::<Result<Vec<(String, u64)>>>()?;
    (0..count)
        .map(|i| {
            let extents = fixture::scatter(&src, 4096, object_size, 40, seed + i as u64)?;
            let file = dir.join(format!("object{i}.extents"));
            std::fs::write(&file, render(&extents))?;
            Ok(Object {
                name: format!("object{i}"),
                extents,
                file,
            })
        })
        .collect()
}

/// Back up every object at the same time; the result line of each, in order.
pub fn backup_concurrently(cluster: &Cluster, objects: &[Object]) -> Result<Vec<serde_json::Value>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = objects
            .iter()
            .map(|o| {
                s.spawn(move || {
                    let file = o.file.to_string_lossy().to_string();
                    cluster.smapp(&["backup", "--primary", PRIMARY, "--object", &o.name, "--extents", &file])
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let lines = h.join().map_err(|_| anyhow::anyhow!("backup thread panicked"))??;
                lines.into_iter().last().context("backup printed no result")
            })
            .collect()
    })
}

/// Restore `abs_id` into `dest` on the primary node and compare it with the
/// object's bytes on the source volumes.
pub fn restore_and_verify(
    cluster: &Cluster,
    layout: &Layout,
    abs_id: u64,
    extents: &[ObjectExtent],
    dest: &Path,
) -> Result<()> {
    restore_and_verify_with(cluster, layout, abs_id, extents, dest, &[]).map(|_| ())
}

/// [`restore_and_verify`] with extra `smapp restore` arguments; returns
/// the restore's result line.
pub fn restore_and_verify_with(
    cluster: &Cluster,
    layout: &Layout,
    abs_id: u64,
    extents: &[ObjectExtent],
    dest: &Path,
    extra: &[&str],
) -> Result<serde_json::Value> {
    let to_file = cluster.to_file(dest);
    let _ = std::fs::remove_file(dest);
    let abs = abs_id.to_string();
    let mut args = vec!["restore", abs.as_str(), "--to-file", &to_file];
    args.extend_from_slice(extra);
    let lines = cluster.smapp(&args)?;
    let source = fixture::ObjectReader::new(|v| layout.path_of(v), extents);
    let file = std::fs::File::open(dest).with_context(|| format!("opening {}", dest.display()))?;
    fixture::compare(source, file, &format!("restore of ABS {abs_id}"))?;
    lines.into_iter().last().context("restore printed no result")
}
