//! The first whole slice, through every real component: a 256 MiB logical
//! object scattered over two volumes, in tracks shared with other data,
//! backed up over QUIC through a front-end's accumulation file and a
//! back-end onto a labelled tape image, recorded in Postgres, and restored
//! onto other volumes through a remap and into a plain file, byte-identical.
//! Then: mtdump agrees with `smapp tape inspect`; a flipped byte on tape
//! fails the restore naming tape, file and segment, writing nothing of it;
//! foreign and wrong-role certificates are refused.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use std::process::Command;

use dmc_tests::cluster::{bin_dir, Cluster, CLIENT};
use dmc_tests::fixture;
use dmc_tests::metrics;
use dmc_tests::scenario::{self, ScenarioSpec};

#[tokio::test(flavor = "multi_thread")]
async fn backup_and_restore_a_scattered_object_through_every_component() {
    let work = tempfile::tempdir().unwrap();
    let mib: u64 = std::env::var("DMC_TEST_OBJECT_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let spec = ScenarioSpec {
        object_size: mib << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 16 << 20,
        seed: 42,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.station_metrics = true;
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let report = match scenario::run(&cluster, &layout) {
        Ok(r) => r,
        Err(e) => {
            for p in ["station", "fe1", "be1", "pn1"] {
                eprintln!("--- {p}\n{}", cluster.log(p));
            }
            panic!("{e:#}");
        }
    };
    assert_eq!(report.object_size, mib << 20);
    assert!(
        report.extents > 100,
        "the object is scattered ({} extents)",
        report.extents
    );
    assert!(report.backup_bytes >= report.object_size, "whole tracks are copied");
    assert!(
        report.segments >= mib / 16,
        "16 MiB segments: {} for {mib} MiB",
        report.segments
    );
    assert_eq!(report.tapes.len(), 1);

    // The catalog agrees with the tape.
    let segs = cluster
        .smapp(&["list", "segments", "--abs", &report.abs_id.to_string()])
        .unwrap();
    assert_eq!(segs.len() as u64, report.segments);
    let image = cluster.library.join(format!("{}.tap", report.tapes[0]));
    let smapp = bin_dir().unwrap().join("smapp");
    let inspect = Command::new(&smapp)
        .args(["--json", "tape", "inspect"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let files: Vec<serde_json::Value> = String::from_utf8_lossy(&inspect.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for s in &segs {
        let n = s["tape_file"].as_u64().unwrap();
        let f = files
            .iter()
            .find(|f| f["file"].as_u64() == Some(n))
            .expect("catalog's tape file on tape");
        assert_eq!(f["bytes"].as_u64(), s["bytes"].as_u64(), "tape file {n} size");
    }
    let verify = Command::new(&smapp)
        .args(["tape", "verify"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // Debian's mtdump reads the image; its files and record counts agree.
    match Command::new("mtdump").arg(&image).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mt = parse_mtdump(&text);
            let ours: Vec<(u64, u64)> = files
                .iter()
                .map(|f| (f["file"].as_u64().unwrap(), f["records"].as_u64().unwrap()))
                .collect();
            assert_eq!(mt, ours, "mtdump output:\n{text}");
        }
        Err(e) if std::env::var("DMC_SKIP_MTDUMP").is_ok() => eprintln!("mtdump skipped: {e}"),
        Err(e) => panic!("mtdump (Debian package simh) is needed: {e}"),
    }

    // Channel history is recorded.
    let chans = cluster.smapp(&["channels"]).unwrap();
    assert!(chans.iter().all(|c| c["state"] == "closed"), "{chans:?}");
    let hist = cluster
        .smapp(&["channels", &chans[0]["channel_id"].to_string()])
        .unwrap();
    let transitions = hist[0]["transitions"].as_array().unwrap();
    let states: Vec<String> = transitions
        .iter()
        .filter(|t| t["from"] != t["to"])
        .map(|t| t["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states,
        ["requested", "opened", "beginning_of_tape", "writing", "closed"]
    );
    // The pair shares its spool: the history says segments went to tape from it.
    let notes: Vec<&str> = transitions
        .iter()
        .filter(|t| t["from"] == t["to"])
        .filter_map(|t| t["reason"].as_str())
        .collect();
    assert!(
        notes.len() == 1 && notes[0].starts_with("data path: shared spool"),
        "{notes:?}"
    );

    // A flipped byte inside the first segment: the restore fails naming tape,
    // tape file and segment, and nothing is written to the destination.
    let first = segs.iter().min_by_key(|s| s["tape_file"].as_u64()).unwrap();
    let tape_file = first["tape_file"].as_u64().unwrap() as u32;
    let off = fixture::simh_record_offset(&image, tape_file, 1).unwrap();
    fixture::flip_byte(&image, off).unwrap();
    let bad = cluster.restored("bad.bin");
    let out = cluster
        .smapp_as(
            CLIENT,
            &[
                "restore",
                &report.abs_id.to_string(),
                "--to-file",
                &cluster.to_file(&bad),
            ],
        )
        .unwrap();
    assert!(!out.status.success(), "a corrupt segment must fail the restore");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&report.tapes[0]), "error names the tape: {err}");
    assert!(
        err.contains(&format!("file {tape_file}")),
        "error names the tape file: {err}"
    );
    assert!(
        err.contains(&format!("segment {}", first["seq"])),
        "error names the segment: {err}"
    );
    if let Ok(bytes) = std::fs::read(&bad) {
        assert!(
            bytes.iter().all(|&b| b == 0),
            "nothing of the bad segment reached the destination"
        );
    }
    let chans = cluster.smapp(&["channels"]).unwrap();
    assert!(
        chans.iter().any(|c| c["state"] == "error"),
        "the restore channel ended in error: {chans:?}"
    );

    // A certificate from another CA is refused; a mover may not start backups.
    let rogue = work.path().join("rogue-pki");
    let st = Command::new(bin_dir().unwrap().join("control-station"))
        .args(["pki", "init"])
        .arg(&rogue)
        .args(["--component", "client:client"])
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(&smapp)
        .args(["--station", &cluster.station.to_string(), "--name", "client", "--pki"])
        .arg(rogue.join("client"))
        .args(["list", "abs"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a client with a foreign certificate must be refused"
    );
    let out = cluster.smapp_as("fe1", &["list", "abs"]).unwrap();
    assert!(
        !out.status.success(),
        "a mover certificate may not read the catalog as a client"
    );
    assert_eq!(
        out.status.code(),
        Some(i32::from(proto::domain::FailureCode::Refused.exit_status())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The station counts (and logs) the refusal before it replies.
    let station_metrics = cluster.station_metrics.expect("the station serves its metrics");
    let refused = metrics::value(station_metrics, "dmc_station_requests_refused_total").unwrap();
    assert!(refused >= 1.0, "the station counts refusals ({refused})");
    cluster.stop();
}

/// (tape file, records) from mtdump's output.
///
/// mtdump prints `Processing tape file N` (from 1), one `Obj K, position P,
/// record R, length = L` line per record, and `end of tape file N` at its
/// tape mark.
fn parse_mtdump(text: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut records = 0u64;
    for line in text.lines() {
        if line.starts_with("Processing tape file") {
            records = 0;
        } else if line.contains(", record ") {
            records += 1;
        } else if let Some(n) = line.split("end of tape file ").nth(1) {
            let n: u64 = n.trim().parse().expect("mtdump file number");
            out.push((n - 1, records));
        }
    }
    out
}
