//! Cross-check the SIMH container against an independent reader: `mtdump`
//! from Debian's `simh` package. Its tape files and records must be exactly
//! what `inspect` reports.
//!
//! Requires `mtdump` on PATH (`apt-get install simh`); set
//! `DMC_SKIP_MTDUMP=1` to skip where it cannot be installed.

mod tape_support;

use std::path::Path;
use std::process::Command;

use proto::tape::block::SimhTape;
use proto::tape::inspect::{inspect, ScanStop};
use proto::tape::volume::TapeWriter;
use tape_support::*;

/// One tape file as mtdump lists it: its record lengths.
#[derive(Debug, PartialEq, Eq)]
struct DumpFile {
    /// mtdump numbers tape files from 1.
    number: u32,
    records: Vec<u64>,
    ended_by_mark: bool,
}

#[derive(Debug)]
struct Dump {
    files: Vec<DumpFile>,
    logical_end: bool,
}

fn mtdump_available() -> bool {
    Command::new("mtdump").arg("/dev/null").output().is_ok()
}

fn require_mtdump() -> bool {
    if mtdump_available() {
        return true;
    }
    if std::env::var("DMC_SKIP_MTDUMP").as_deref() == Ok("1") {
        eprintln!("mtdump not found; skipped because DMC_SKIP_MTDUMP=1");
        return false;
    }
    panic!(
        "mtdump is not on PATH: install Debian's simh package (apt-get install -y simh), \
         or set DMC_SKIP_MTDUMP=1 to skip this cross-check"
    );
}

/// Parse mtdump's output, e.g.
/// ```text
/// Processing tape file 1
/// Obj 1, position 0, record 1, length = 80 (0x50)
/// Obj 4, position 264, end of tape file 1
/// Obj 39, position 8464, end of logical tape
/// End of physical tape
/// ```
fn run_mtdump(path: &Path) -> Dump {
    let out = Command::new("mtdump").arg(path).output().expect("run mtdump");
    assert!(out.status.success(), "mtdump failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("mtdump prints ASCII");
    let mut files: Vec<DumpFile> = Vec::new();
    let mut logical_end = false;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("Processing tape file ") {
            files.push(DumpFile {
                number: n.trim().parse().unwrap(),
                records: Vec::new(),
                ended_by_mark: false,
            });
        } else if line.starts_with("Obj ") {
            let cur = files
                .last_mut()
                .unwrap_or_else(|| panic!("record before a tape file in {text}"));
            if let Some(rest) = line.split(", record ").nth(1) {
                let (rec, len) = rest.split_once(", length = ").unwrap();
                assert_eq!(rec.parse::<usize>().unwrap(), cur.records.len() + 1, "{line}");
                let len: u64 = len.split_whitespace().next().unwrap().parse().unwrap();
                cur.records.push(len);
            } else if line.contains(", end of tape file ") {
                let n: u32 = line.rsplit(' ').next().unwrap().parse().unwrap();
                assert_eq!(n, cur.number, "{line}");
                cur.ended_by_mark = true;
            } else if line.ends_with("end of logical tape") {
                logical_end = true;
            } else {
                panic!("unexpected mtdump line {line:?} in\n{text}");
            }
        } else if line.starts_with("Processing input file") || line == "End of physical tape" {
        } else {
            panic!("unexpected mtdump line {line:?} in\n{text}");
        }
    }
    // mtdump announces a tape file before finding it has no records.
    files.retain(|f| !f.records.is_empty() || f.ended_by_mark);
    Dump { files, logical_end }
}

fn compare(path: &Path) {
    let dump = run_mtdump(path);
    let report = inspect(SimhTape::open(path).unwrap()).unwrap();
    assert_eq!(
        dump.files.len(),
        report.files.len(),
        "tape files: mtdump {dump:?}\ninspect:\n{report}"
    );
    for (d, r) in dump.files.iter().zip(&report.files) {
        assert_eq!(d.number, r.file + 1, "mtdump numbers tape files from 1");
        assert_eq!(d.records.len() as u64, r.records, "records of tape file {}", r.file);
        assert_eq!(d.records.iter().sum::<u64>(), r.bytes, "bytes of tape file {}", r.file);
        assert_eq!(d.ended_by_mark, r.complete, "tape mark after tape file {}", r.file);
    }
    assert_eq!(dump.logical_end, matches!(report.stop, ScanStop::LogicalEnd { .. }));
}

#[test]
fn mtdump_sees_the_same_tape_files_and_records_as_inspect() {
    if !require_mtdump() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cross.tap");
    // 4 KiB blocks (mtdump reads records up to 64 KiB), multi-record segments, odd lengths.
    let mut w = TapeWriter::create_at(SimhTape::create(&path).unwrap(), params("MTDMP1", 4096), T0).unwrap();
    let written = write_interleaved(&mut w, 3, 5, 3001, true);
    assert!(
        written.entries.iter().any(|e| e.records > 2),
        "some files span several records"
    );
    assert!(
        written.entries.iter().any(|e| e.bytes % 2 == 1),
        "an odd record length is padded"
    );
    w.finish_at(false, T0).unwrap();
    let dump = run_mtdump(&path);
    assert!(dump.logical_end, "a finished tape ends with two tape marks");
    assert_eq!(dump.files.len(), 2 + written.entries.len() + 4);
    assert_eq!(dump.files[0].records, [80, 80, 80]);
    compare(&path);
}

#[test]
fn mtdump_agrees_on_an_unfinished_tape_and_at_the_default_block_size() {
    if !require_mtdump() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.tap");
    let mut w = TapeWriter::create_at(
        SimhTape::create(&path).unwrap(),
        params("MTDMP2", proto::tape::DEFAULT_BLOCK_SIZE),
        T0,
    )
    .unwrap();
    write_interleaved(&mut w, 2, 30, 4096, false);
    w.sync().unwrap();
    drop(w);
    let dump = run_mtdump(&path);
    assert!(!dump.logical_end);
    assert!(
        dump.files.iter().any(|f| f.records.contains(&65536)),
        "full 64 KiB records"
    );
    compare(&path);
}
