//! Verifying a whole tape (`smapp tape verify`): every structure and
//! checksum from the scan, then the cross-references between them (order
//! of the tape files, DIRECTORY, NODE-TRAILER, CATALOG, block count).

use std::fmt;

use crate::num::saturating_u32;
use crate::tape::block::BlockDevice;
use crate::tape::directory::Catalog;
use crate::tape::labels::{EndLabels, LabelKind};
use crate::tape::volume::check_head;
use crate::tape::TapeError;

use super::report::{report_from, TapeReport};
use super::{scan_tape, FileContent, ScanStop, ScannedFile, ScannedKind};

/// One thing [`verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The tape file concerned, when there is one.
    pub file: Option<u32>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.file {
            Some(n) => write!(f, "tape file {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The result of [`verify`]: the scan and every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub report: TapeReport,
    pub problems: Vec<Problem>,
    /// DIRECTORY, NODE-TRAILER, CATALOG and end labels were found.
    pub finished: bool,
    /// The end labels are EOV (the media set continues on another tape).
    pub continues: bool,
    pub segments: u32,
    pub metadata_files: u32,
    pub tracks: u64,
    /// Bytes of all data tape files.
    pub data_bytes: u64,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Check a whole tape: every label, structure and checksum, the order of the
/// tape files, the DIRECTORY against the scan, the NODE-TRAILER and CATALOG
/// against the DIRECTORY, and the EOF1/EOV1 block count.
pub fn verify<D: BlockDevice>(mut dev: D) -> Result<VerifyReport, TapeError> {
    let (files, stop) = scan_tape(&mut dev)?;
    let mut problems = Vec::new();
    let mut problem = |file: Option<u32>, message: String| problems.push(Problem { file, message });
    for f in &files {
        if let Some(p) = &f.problem {
            problem(Some(f.file), p.to_string());
        }
    }
    let content = |i: usize| files.get(i).and_then(|f| f.content.as_ref());
    let labels = match content(0) {
        Some(FileContent::VolumeLabels(l)) => Some(l),
        _ => {
            problem(Some(0), "expected the labels VOL1 HDR1 HDR2".into());
            None
        }
    };
    let header = match content(1) {
        Some(FileContent::NodeHeader(h)) => Some(h),
        _ => {
            problem(Some(1), "expected the NODE-HEADER".into());
            None
        }
    };
    if let (Some(l), Some(h)) = (labels, header) {
        if let Err(e) = check_head(l, h) {
            problem(Some(1), e.to_string());
        }
    }

    // Data files.
    let mut i = 2;
    let mut scanned_entries = Vec::new();
    let (mut segments, mut metadata_files, mut tracks, mut data_bytes) = (0u32, 0u32, 0u64, 0u64);
    while let Some(f) = files.get(i) {
        if !matches!(f.kind, ScannedKind::Segment | ScannedKind::AbsMetadata) {
            break;
        }
        match &f.content {
            Some(FileContent::Segment(s)) => {
                segments += 1;
                tracks += u64::from(s.track_count);
            }
            Some(FileContent::AbsMetadata(_)) => metadata_files += 1,
            _ => {}
        }
        data_bytes += f.stats.bytes;
        if let Some(e) = f.directory_entry() {
            scanned_entries.push(e);
        }
        i += 1;
    }
    let data_files = saturating_u32(i - 2);

    // The end: DIRECTORY, NODE-TRAILER, CATALOG, end labels, logical end.
    let expect = [
        "DIRECTORY",
        "NODE-TRAILER",
        "CATALOG",
        "end labels (EOF1 EOF2 or EOV1 EOV2)",
    ];
    let kinds = [
        ScannedKind::Directory,
        ScannedKind::NodeTrailer,
        ScannedKind::Catalog,
        ScannedKind::EndLabels,
    ];
    let stop_text = match &stop {
        ScanStop::LogicalEnd { .. } => "the logical end of tape (two tape marks)".to_owned(),
        ScanStop::EndOfData => "the end of data".to_owned(),
        ScanStop::Error(_) => "a damaged container".to_owned(),
    };
    let mut tail: Vec<Option<&FileContent>> = Vec::new();
    for (k, (name, want)) in expect.iter().zip(kinds).enumerate() {
        match files.get(i + k) {
            Some(f) if f.kind == want => tail.push(f.content.as_ref()),
            Some(f) => {
                problem(Some(f.file), format!("expected the {name}, found {}", f.kind.name()));
                break;
            }
            None if k == 0 && stop == ScanStop::EndOfData => {
                problem(None, format!("the tape was never finished: the data ends after tape file {}, with no DIRECTORY, NODE-TRAILER, CATALOG or end labels", i.saturating_sub(1)));
                break;
            }
            None => {
                problem(
                    Some(saturating_u32(i + k)),
                    format!("expected the {name}, found {stop_text}"),
                );
                break;
            }
        }
    }
    let finished = tail.len() == 4 && files.len() == i + 4 && matches!(stop, ScanStop::LogicalEnd { .. });
    if tail.len() == 4 {
        match &stop {
            ScanStop::LogicalEnd { .. } if files.len() == i + 4 => {}
            ScanStop::LogicalEnd { .. } | ScanStop::EndOfData if files.len() > i + 4 => problem(
                Some(saturating_u32(i + 4)),
                "expected the logical end of tape after the end labels, found another tape file".into(),
            ),
            ScanStop::EndOfData => problem(
                Some(saturating_u32(i + 4)),
                "expected a second tape mark after the end labels (the logical end), found the end of data".into(),
            ),
            _ => {}
        }
    }
    if let ScanStop::Error(e) = &stop {
        problem(None, format!("the scan stopped at a damaged container: {e}"));
    }
    let dir = match tail.first().copied().flatten() {
        Some(FileContent::Directory(d)) => Some(d),
        _ => None,
    };
    let trailer = match tail.get(1).copied().flatten() {
        Some(FileContent::NodeTrailer(t)) => Some(t),
        _ => None,
    };
    let catalog = match tail.get(2).copied().flatten() {
        Some(FileContent::Catalog(c)) => Some(c),
        _ => None,
    };
    let end = match tail.get(3).copied().flatten() {
        Some(FileContent::EndLabels(e)) => Some(e),
        _ => None,
    };
    let dir_file = saturating_u32(i);

    if let (Some(d), Some(h)) = (dir, header) {
        if d.label != h.label || d.media_set != h.media_set || d.sequence != h.sequence {
            problem(
                Some(dir_file),
                format!(
                    "DIRECTORY is for tape {:?} media set {} seq {}, expected tape {:?} media set {} seq {}",
                    d.label, d.media_set, d.sequence, h.label, h.media_set, h.sequence
                ),
            );
        }
        if d.entries.len() != data_files as usize {
            problem(
                Some(dir_file),
                format!(
                    "DIRECTORY lists {} data files, the scan found {data_files}",
                    d.entries.len()
                ),
            );
        }
        for (k, e) in d.entries.iter().enumerate() {
            let scanned = files.get(2 + k).and_then(ScannedFile::directory_entry);
            match scanned {
                Some(s) if s == *e => {}
                Some(s) => problem(
                    Some(e.file_number),
                    format!("DIRECTORY entry {k} says {e:?}, the scan found {s:?}"),
                ),
                None => problem(
                    Some(e.file_number),
                    format!("DIRECTORY entry {k} says {e:?}, the scan found no valid data file there"),
                ),
            }
        }
    }
    if let (Some(t), Some(h)) = (trailer, header) {
        let want = (
            h.label.as_str(),
            h.media_set,
            h.sequence,
            data_files,
            data_bytes,
            dir_file,
        );
        let got = (
            t.label.as_str(),
            t.media_set,
            t.sequence,
            t.file_count,
            t.data_bytes,
            t.directory_file,
        );
        if want != got {
            problem(
                Some(dir_file + 1),
                format!(
                    "NODE-TRAILER says (label, media set, seq, data files, data bytes, directory file) = {got:?}, expected {want:?}"
                ),
            );
        }
        if let Some(e) = end {
            if e.continues() != t.continues {
                problem(
                    Some(dir_file + 1),
                    format!(
                        "NODE-TRAILER continues = {}, but the end labels say {}",
                        t.continues,
                        if e.continues() { "EOV" } else { "EOF" }
                    ),
                );
            }
        }
    }
    if let (Some(c), Some(h), Some(d)) = (catalog, header, dir) {
        let names: std::collections::HashMap<u64, String> =
            c.entries.iter().map(|a| (a.abs_id, a.object_name.clone())).collect();
        let want = Catalog::from_directory(
            &h.label,
            &h.pool,
            h.media_set,
            h.sequence,
            &d.entries,
            |id| names.get(&id).cloned().unwrap_or_default(),
            |id| c.record_of(id).cloned(),
        );
        if *c != want {
            problem(Some(dir_file + 2), "CATALOG does not match the DIRECTORY".into());
        }
        for f in files.iter().skip(2).take(data_files as usize) {
            if let Some(FileContent::AbsMetadata(m)) = &f.content {
                if names.get(&m.abs_id).is_some_and(|n| *n != m.object_name) {
                    problem(
                        Some(dir_file + 2),
                        format!(
                            "CATALOG names ABS {} {:?}, its metadata in tape file {} says {:?}",
                            m.abs_id,
                            names.get(&m.abs_id).cloned().unwrap_or_default(),
                            f.file,
                            m.object_name
                        ),
                    );
                }
                let last = c.entries.iter().find(|a| a.abs_id == m.abs_id);
                if let (Some(a), Some(r)) = (last, &m.management) {
                    if a.metadata_file == Some(f.file) && a.record.as_ref().is_some_and(|cr| cr != r) {
                        problem(
                            Some(dir_file + 2),
                            format!(
                                "CATALOG's management record of ABS {} differs from the one in its metadata (tape file {})",
                                m.abs_id, f.file
                            ),
                        );
                    }
                }
            }
        }
    }
    if let (Some(e), Some(l)) = (end, labels) {
        let records: u64 = files.iter().skip(1).take(i + 2).map(|f| f.stats.records).sum();
        let want = (records % 1_000_000) as u32;
        if e.label1.block_count != want {
            problem(
                Some(dir_file + 3),
                format!(
                    "{}1 block count is {}, expected {want} ({records} records in tape files 1 to {} modulo 1,000,000)",
                    if e.continues() { "EOV" } else { "EOF" },
                    e.label1.block_count,
                    dir_file + 2
                ),
            );
        }
        let mut h1 = e.label1.clone();
        h1.kind = LabelKind::Hdr;
        h1.block_count = 0;
        if h1 != l.hdr1 {
            problem(
                Some(dir_file + 3),
                format!("end label 1 {:?} does not repeat HDR1 {:?}", e.label1, l.hdr1),
            );
        }
        let mut h2 = e.label2.clone();
        h2.kind = LabelKind::Hdr;
        if h2 != l.hdr2 {
            problem(
                Some(dir_file + 3),
                format!("end label 2 {:?} does not repeat HDR2 {:?}", e.label2, l.hdr2),
            );
        }
    }
    let continues = end.is_some_and(EndLabels::continues);
    Ok(VerifyReport {
        report: report_from(&files, stop),
        problems,
        finished,
        continues,
        segments,
        metadata_files,
        tracks,
        data_bytes,
    })
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.report)?;
        writeln!(
            f,
            "{} segments, {} metadata files, {} tracks, {} data bytes; {}",
            self.segments,
            self.metadata_files,
            self.tracks,
            self.data_bytes,
            match (self.finished, self.continues) {
                (true, true) => "finished, media set continues on the next tape (EOV)",
                (true, false) => "finished (EOF)",
                (false, _) => "not finished",
            }
        )?;
        if self.problems.is_empty() {
            writeln!(f, "verify: OK: every label, structure and checksum is valid; directory, trailer, catalog and block count agree")
        } else {
            writeln!(f, "verify: {} problem(s):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}
