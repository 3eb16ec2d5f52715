//! A tape's listing: one line per tape file of a whole-tape scan, and its
//! text form (`smapp tape inspect`).

use std::fmt;

use crate::tape::labels::VolumeLabels;
use crate::tape::node::NodeHeader;

use super::{FileContent, FileEnd, ScanStop, ScannedFile, ScannedKind};

/// One line of [`TapeReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub file: u32,
    pub records: u64,
    pub bytes: u64,
    /// CRC32C of the file's bytes (as the directory records it).
    pub crc32c: u32,
    pub kind: ScannedKind,
    pub abs_id: Option<u64>,
    pub seq: Option<u32>,
    pub tracks: Option<u32>,
    /// A short description of the content.
    pub detail: String,
    pub problem: Option<String>,
    /// Ended by its tape mark.
    pub complete: bool,
}

/// Every tape file of a tape, as found by a full scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeReport {
    pub labels: Option<VolumeLabels>,
    pub header: Option<NodeHeader>,
    pub files: Vec<FileReport>,
    pub stop: ScanStop,
}

fn report_line(s: &ScannedFile) -> FileReport {
    let mut abs_id = s.segment.map(|(a, _)| a);
    let mut seq = s.segment.map(|(_, q)| q);
    let mut tracks = None;
    let detail = match &s.content {
        None => String::new(),
        Some(FileContent::VolumeLabels(l)) => format!(
            "VOL1 {} owner {:?}, HDR1 {} section {}, HDR2 block {}",
            l.vol1.volume_id, l.vol1.owner_id, l.hdr1.file_id, l.hdr1.file_section, l.hdr2.block_size
        ),
        Some(FileContent::EndLabels(l)) => format!(
            "{}1/{}2 block count {}{}",
            if l.continues() { "EOV" } else { "EOF" },
            if l.continues() { "EOV" } else { "EOF" },
            l.label1.block_count,
            if l.continues() {
                ", continues on the next tape"
            } else {
                ""
            }
        ),
        Some(FileContent::NodeHeader(h)) => format!(
            "tape {} pool {:?} media set {} seq {} block {} format {}",
            h.label, h.pool, h.media_set, h.sequence, h.block_size, h.format_version
        ),
        Some(FileContent::NodeTrailer(t)) => format!(
            "{} data files, {} data bytes, finished {}{}",
            t.file_count,
            t.data_bytes,
            t.finished_unix,
            if t.continues { ", continues" } else { "" }
        ),
        Some(FileContent::Segment(sum)) => {
            abs_id = Some(sum.header.abs_id);
            seq = Some(sum.header.seq);
            tracks = Some(sum.track_count);
            format!("{} data bytes, channel {}", sum.data_bytes, sum.header.channel_id)
        }
        Some(FileContent::AbsMetadata(m)) => {
            abs_id = Some(m.abs_id);
            let chain = match (m.base_abs_id, m.merged_from_abs_id) {
                (0, 0) => String::new(),
                (0, tip) => format!(" (synthetic, merged from the chain of ABS {tip})"),
                (base, _) => format!(" (since ABS {base}: {} bytes of blocks changed)", m.changed_bytes),
            };
            format!(
                "{:?}{chain} {:?}, {} segments, {} tracks, {} extents, object {} bytes",
                m.kind, m.object_name, m.segment_count, m.track_count, m.extents, m.object_size
            )
        }
        Some(FileContent::Directory(d)) => format!("{} entries", d.entries.len()),
        Some(FileContent::Catalog(c)) => format!(
            "{} ABSs, {} with their management record",
            c.entries.len(),
            c.entries.iter().filter(|a| a.record.is_some()).count()
        ),
    };
    FileReport {
        file: s.file,
        records: s.stats.records,
        bytes: s.stats.bytes,
        crc32c: s.stats.crc32c,
        kind: s.kind,
        abs_id,
        seq,
        tracks,
        detail,
        problem: s.problem.as_ref().map(ToString::to_string),
        complete: s.end == FileEnd::TapeMark,
    }
}

pub(super) fn report_from(files: &[ScannedFile], stop: ScanStop) -> TapeReport {
    let labels = files.first().and_then(|f| match &f.content {
        Some(FileContent::VolumeLabels(l)) => Some(l.clone()),
        _ => None,
    });
    let header = files.get(1).and_then(|f| match &f.content {
        Some(FileContent::NodeHeader(h)) => Some(h.clone()),
        _ => None,
    });
    TapeReport {
        labels,
        header,
        files: files.iter().map(report_line).collect(),
        stop,
    }
}

impl fmt::Display for TapeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.labels, &self.header) {
            (_, Some(h)) => writeln!(
                f,
                "tape {}  pool {:?}  media set {}  sequence {}  block size {}  format {}  created {}",
                h.label, h.pool, h.media_set, h.sequence, h.block_size, h.format_version, h.created_unix
            )?,
            (Some(l), None) => writeln!(f, "tape {} (no valid node header)", l.vol1.volume_id)?,
            (None, None) => writeln!(f, "tape with no valid labels")?,
        }
        writeln!(
            f,
            "{:>6} {:>8} {:>14}  {:<13} {:>10} {:>6} {:>7}  detail",
            "file", "records", "bytes", "kind", "ABS", "seq", "tracks"
        )?;
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        for r in &self.files {
            writeln!(
                f,
                "{:>6} {:>8} {:>14}  {:<13} {:>10} {:>6} {:>7}  {}{}",
                r.file,
                r.records,
                r.bytes,
                r.kind.name(),
                opt(r.abs_id.map(|v| v.to_string())),
                opt(r.seq.map(|v| v.to_string())),
                opt(r.tracks.map(|v| v.to_string())),
                r.detail,
                if r.complete { "" } else { " [no tape mark]" }
            )?;
            if let Some(p) = &r.problem {
                writeln!(f, "{:>6}   ! {p}", "")?;
            }
        }
        match &self.stop {
            ScanStop::LogicalEnd { empty_file } => {
                writeln!(
                    f,
                    "end: logical end of tape (two tape marks) after tape file {}",
                    empty_file.saturating_sub(1)
                )
            }
            ScanStop::EndOfData => writeln!(f, "end: end of data without a logical end (tape not finished)"),
            ScanStop::Error(e) => writeln!(f, "end: scan stopped: {e}"),
        }
    }
}
