//! Reading a library of tape images for a catalog rebuild: per tape its
//! labels and node header, how it ends, its DIRECTORY and CATALOG (or, when
//! either is missing or damaged, a scan of its data files) and its ABS
//! metadata files. Data segments are read only for what no management
//! record gives (tapes written before records carried segment counts).
//! Blocking: run it off the async runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use proto::tape::block::SimhTape;
use proto::tape::metadata::AbsMetadata;
use proto::tape::volume::{describe, TapeDescription, TapeReader};

use super::plan::{Plan, SegmentCounts, TapeSeen};

/// The largest segment read to count its tracks (bytes).
const MAX_SEGMENT_READ: usize = 1 << 30;

type Reader = TapeReader<SimhTape<std::fs::File>>;

/// Open a tape image read-only and read its labels.
pub(crate) fn open(path: &Path) -> Result<Reader> {
    let dev = SimhTape::open(path).with_context(|| format!("opening tape image {}", path.display()))?;
    TapeReader::open(dev).with_context(|| format!("reading the labels of tape image {}", path.display()))
}

/// The tape images of library `dir` (`*.tap`), by name.
pub fn images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing the library {}", dir.display()))? {
        let p = e
            .with_context(|| format!("listing the library {}", dir.display()))?
            .path();
        if p.extension().is_some_and(|x| x == "tap") && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether an image holds nothing (a blank tape).
fn is_blank(path: &Path) -> Result<bool> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len()
        == 0)
}

/// Read one image. `notes` gets what was not as expected (a damaged
/// DIRECTORY or CATALOG, scanned instead). A metadata file that cannot be
/// read (an unknown format version, a checksum) is an error naming the
/// tape and the file.
pub fn read_tape(path: &Path, notes: &mut Vec<String>) -> Result<TapeSeen> {
    let mut r = open(path)?;
    let d = describe(&mut r).with_context(|| format!("describing tape image {}", path.display()))?;
    seen(d, &path.to_string_lossy(), notes)
}

/// A tape as described (here or by a back-end), its metadata decoded and
/// checked. `path` says where the image is, for messages and the catalog.
pub fn seen(d: TapeDescription, path: &str, notes: &mut Vec<String>) -> Result<TapeSeen> {
    notes.extend(d.notes.iter().map(|n| format!("{n} ({path})")));
    let mut metadata = Vec::with_capacity(d.metadata.len());
    for (file, bytes) in &d.metadata {
        let m = AbsMetadata::decode(bytes).with_context(|| {
            format!(
                "tape {} ({path}) file {file}: its ABS metadata cannot be read (leave the tape out to go on without it)",
                d.label
            )
        })?;
        metadata.push((*file, m));
    }
    Ok(TapeSeen {
        path: path.to_string(),
        label: d.label,
        pool: d.pool,
        media_set: d.media_set,
        sequence: d.sequence,
        created_unix: d.created_unix,
        continues: d.continues,
        files: d.files,
        metadata,
        continued: d.continued,
    })
}

/// Read every image of library `dir`; blank ones are noted and left out.
pub fn read_library(dir: &Path, notes: &mut Vec<String>) -> Result<Vec<TapeSeen>> {
    let mut tapes = Vec::new();
    for path in images(dir)? {
        if is_blank(&path)? {
            notes.push(format!("{}: a blank tape, left out", path.display()));
            continue;
        }
        tapes.push(read_tape(&path, notes)?);
    }
    Ok(tapes)
}

/// Fill in the counts no management record gave by reading those
/// segments (each tape opened once). Returns how many were read.
pub fn read_missing_counts(tapes: &[TapeSeen], plan: &mut Plan) -> Result<u32> {
    let mut wanted: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for (a, abs) in plan.abs.iter().enumerate() {
        for (s, seg) in abs.segments.iter().enumerate() {
            if seg.counts.is_none() {
                wanted.entry(seg.at.tape).or_default().push((a, s));
            }
        }
    }
    let mut read = 0;
    for (tape, list) in wanted {
        let t = &tapes[tape];
        let mut r = open(Path::new(&t.path))?;
        for (a, s) in list {
            let seg = &mut plan.abs[a].segments[s];
            let summary = r
                .read_segment_into(seg.at.file, MAX_SEGMENT_READ, &mut std::io::sink())
                .with_context(|| {
                    format!(
                        "tape {} file {}: reading segment {} to count it",
                        t.label, seg.at.file, seg.seq
                    )
                })?;
            seg.counts = Some(SegmentCounts {
                data_bytes: summary.data_bytes,
                track_count: summary.track_count,
                crc32c: summary.crc32c,
            });
            read += 1;
        }
    }
    Ok(read)
}
