//! Differential backups and synthetic fulls (issue 4): a host writes
//! through NBD between backups; a chain full → incremental → cumulative →
//! incremental restores, at each point, exactly the object as it was then;
//! a differential's size follows the tracks changed (1% → about 1%); the
//! chain survives a SIGKILL of the primary node; the movers merge the chain
//! into a synthetic full that restores the same bytes, and later
//! differentials build on it.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dmc_tests::cluster::{Cluster, PRIMARY};
use dmc_tests::fixture;
use dmc_tests::metrics;
use dmc_tests::scenario::{self, Layout, ScenarioSpec};
use proto::abs::ObjectExtent;

const OBJECT: &str = "/db/ledger";
const TRACK: u64 = 65536;

fn qemu_write(port: u16, volume: &str, offset: u64, len: u64, pattern: u8) {
    let url = format!("nbd://127.0.0.1:{port}/{volume}");
    let out = Command::new("qemu-io")
        .args(["-f", "raw", &url, "-c", &format!("write -P {pattern} {offset} {len}")])
        .output()
        .expect("qemu-io (Debian package qemu-utils) must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Write 4 KiB inside the object in `n` tracks of the object not written
/// before by this call (deterministic from `seed`); returns the (volume,
/// track) pairs written.
fn write_object_tracks(
    port: u16,
    extents: &[ObjectExtent],
    n: usize,
    seed: u64,
    pattern: u8,
) -> BTreeSet<(String, u64)> {
    let mut x = seed | 1;
    let mut written = BTreeSet::new();
    while written.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let e = &extents[(x % extents.len() as u64) as usize];
        if e.length < 4096 {
            continue;
        }
        let off = e.offset + (x >> 20) % (e.length / 4096) * 4096;
        let key = (e.volume.clone(), off / TRACK);
        if written.contains(&key) {
            continue;
        }
        qemu_write(port, &e.volume, off, 4096, pattern);
        written.insert(key);
    }
    written
}

/// Copy the source volumes: the object's contents at this point.
fn keep_point(layout: &Layout, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for v in ["vol0", "vol1"] {
        std::fs::copy(layout.path_of(v), dir.join(format!("{v}.img"))).unwrap();
    }
    dir.to_path_buf()
}

fn backup_args<'a>(extents_file: &'a str, level: &'a str) -> [&'a str; 9] {
    [
        "backup",
        "--primary",
        PRIMARY,
        "--object",
        OBJECT,
        "--extents",
        extents_file,
        "--level",
        level,
    ]
}

fn backup(cluster: &Cluster, extents_file: &str, level: &str) -> serde_json::Value {
    let out = cluster.smapp(&backup_args(extents_file, level)).unwrap();
    out.last().unwrap().clone()
}

fn abs_row(cluster: &Cluster, abs: u64) -> serde_json::Value {
    cluster
        .smapp(&["list", "abs"])
        .unwrap()
        .into_iter()
        .find(|r| r["abs_id"] == abs)
        .unwrap()
}

/// Restore with `args` into a fresh file and compare it with the object
/// as the volumes in `point` hold it. Returns the result line.
fn restore_equals(
    cluster: &Cluster,
    extents: &[ObjectExtent],
    point: &Path,
    dest: &Path,
    args: &[&str],
) -> serde_json::Value {
    let to_file = cluster.to_file(dest);
    let mut all: Vec<&str> = vec!["restore"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--to-file", &to_file]);
    let out = cluster.smapp(&all).unwrap();
    let source = fixture::ObjectReader::new(|v| point.join(format!("{v}.img")), extents);
    let file = std::fs::File::open(dest).unwrap();
    fixture::compare(source, file, &format!("restore {args:?}")).unwrap();
    out.last().unwrap().clone()
}

fn id(v: &serde_json::Value) -> u64 {
    v["abs_id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_restores_every_point_and_merges_into_a_synthetic_full() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 24 << 20,
        block_size: 4096,
        track_size: TRACK as u32,
        segment_size: 2 << 20,
        seed: 41,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    // A TCP port for the NBD export (a free UDP port may be taken for TCP).
    let port = dmc_tests::metrics::free_tcp_port().unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    // The node's metrics say what it sent (read only after its restart
    // below, so no scrape holds its port when it starts again).
    let pn_metrics: std::net::SocketAddr = format!("127.0.0.1:{}", metrics::free_tcp_port().unwrap())
        .parse()
        .unwrap();
    cspec.pn_args = vec![
        "--nbd".into(),
        format!("127.0.0.1:{port}"),
        "--metrics".into(),
        pn_metrics.to_string(),
    ];
    // Two drives: a merge reads on one and writes on the other.
    cspec.drives_per_pair = vec![2];
    // Registered with the station means its NBD export listens.
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let extents_file = layout.extents_file.to_string_lossy().to_string();
    let ext = &layout.extents;
    let points = work.path().join("points");
    let restored = cluster.restore_dir.clone();

    // A differential before any full is refused with the reason.
    let early = cluster
        .smapp_as("client", &backup_args(&extents_file, "incremental"))
        .unwrap();
    assert!(!early.status.success());
    assert_eq!(
        early.status.code(),
        Some(i32::from(proto::domain::FailureCode::NotFound.exit_status())),
        "no full to build on"
    );
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("take a full backup first"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    // Point 0: the full.
    let p0 = keep_point(&layout, &points.join("0"));
    let full = backup(&cluster, &extents_file, "full");
    let full_tracks = full["tracks"].as_u64().unwrap();
    let full_bytes = full["bytes"].as_u64().unwrap();

    // Point 1: 1% of the object's tracks written; writes outside the
    // object (other data on the same volumes) are not its changes.
    let n1 = (full_tracks / 100).max(1) as usize;
    let w1 = write_object_tracks(port, ext, n1, 7, 0x11);
    let vol0_size = std::fs::metadata(layout.path_of("vol0")).unwrap().len();
    let inside = |v: &str, t: u64| {
        ext.iter()
            .any(|e| e.volume == v && e.offset / TRACK <= t && t <= (e.offset + e.length - 1) / TRACK)
    };
    let outside = (0..vol0_size / TRACK)
        .find(|&t| !inside("vol0", t))
        .expect("a track of vol0 outside the object");
    qemu_write(port, "vol0", outside * TRACK, 4096, 0x99);
    let p1 = keep_point(&layout, &points.join("1"));
    let inc1 = backup(&cluster, &extents_file, "incremental");
    assert_eq!(
        inc1["tracks"].as_u64().unwrap(),
        w1.len() as u64,
        "exactly the object's written tracks"
    );
    let ratio = inc1["bytes"].as_f64().unwrap() / full_bytes as f64;
    eprintln!(
        "full: {full_tracks} tracks, {full_bytes} bytes; incremental after {} tracks written: {} bytes ({:.2}%)",
        w1.len(),
        inc1["bytes"],
        ratio * 100.0
    );
    assert!(
        (0.005..0.02).contains(&ratio),
        "1% of the tracks changed gave {:.2}% of the bytes",
        ratio * 100.0
    );
    // The tape says so too: the incremental's metadata names its base and
    // the changed blocks, translated to the object's logical bytes.
    let tape = inc1["tapes"][0].as_str().unwrap();
    let meta = cluster
        .tape_inspect(tape)
        .unwrap()
        .into_iter()
        .find(|f| f["abs_id"] == inc1["abs_id"] && f["kind"] == "abs-metadata")
        .expect("the incremental's metadata on its tape");
    let detail = meta["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("Differential (since ABS {}: ", id(&full)))
            && detail.contains("bytes of blocks changed"),
        "{detail}"
    );
    let row1 = abs_row(&cluster, id(&inc1));
    assert_eq!(
        (row1["level"].as_str(), row1["base_abs_id"].as_u64()),
        (Some("incremental"), Some(id(&full)))
    );
    // Its management record (seed 002) names its base by UUID and the
    // chain a restore reads.
    let metas = cluster.abs_metadata_on_tapes().unwrap();
    let record = |abs: u64| {
        metas
            .iter()
            .find(|m| m.abs_id == abs)
            .and_then(|m| m.management.clone())
            .expect("a management record")
    };
    let (mf, mi) = (record(id(&full)), record(id(&inc1)));
    assert_eq!(mi.level, proto::domain::Level::Incremental);
    assert_eq!(mi.base_uuid, mf.abs_uuid);
    assert_eq!(mi.chain, vec![id(&full), id(&inc1)]);
    assert_eq!(mi.abs_uuid.to_string(), row1["uuid"].as_str().unwrap());
    assert!(mi.point_in_time_ms > mf.point_in_time_ms);

    // Point 2: more writes, some on tracks written before; a cumulative
    // backup holds everything since the full.
    let w2 = write_object_tracks(port, ext, 3, 99, 0x22);
    let p2 = keep_point(&layout, &points.join("2"));
    let cum = backup(&cluster, &extents_file, "cumulative");
    let since_full: BTreeSet<_> = w1.union(&w2).cloned().collect();
    assert_eq!(cum["tracks"].as_u64().unwrap(), since_full.len() as u64);
    assert_eq!(abs_row(&cluster, id(&cum))["base_abs_id"].as_u64(), Some(id(&full)));

    // The primary node is SIGKILLed after more writes; its change map
    // survives, and the next incremental holds exactly those writes.
    let w3 = write_object_tracks(port, ext, 4, 1234, 0x33);
    let p3 = keep_point(&layout, &points.join("3"));
    let before = cluster.boots().unwrap();
    cluster.kill(PRIMARY).unwrap();
    cluster.restart(PRIMARY).unwrap();
    // The station hears the node's new start (it registers once its NBD
    // export listens).
    cluster
        .wait_registered(&[PRIMARY], &before, Duration::from_secs(30))
        .unwrap();
    let inc3 = backup(&cluster, &extents_file, "incremental");
    assert_eq!(inc3["tracks"].as_u64().unwrap(), w3.len() as u64);
    assert_eq!(abs_row(&cluster, id(&inc3))["base_abs_id"].as_u64(), Some(id(&cum)));

    // Every point restores exactly: by ABS (the chain comes along) and by time.
    for (i, (abs, point)) in [(&full, &p0), (&inc1, &p1), (&cum, &p2), (&inc3, &p3)]
        .iter()
        .enumerate()
    {
        let dest = restored.join(format!("abs-{i}.img"));
        let a = id(abs).to_string();
        restore_equals(&cluster, ext, point, &dest, &[&a]);
    }
    let at = abs_row(&cluster, id(&inc1))["point_in_time"]
        .as_str()
        .unwrap()
        .to_string();
    let r = restore_equals(
        &cluster,
        ext,
        &p1,
        &restored.join("at-1.img"),
        &["--primary", PRIMARY, "--object", OBJECT, "--at", &at],
    );
    assert_eq!(
        id(&r),
        id(&inc1),
        "the point in time of ABS {} picks its chain",
        id(&inc1)
    );
    let before = cluster
        .smapp_as(
            "client",
            &[
                "restore",
                "--primary",
                PRIMARY,
                "--object",
                OBJECT,
                "--at",
                "2001-01-01 00:00:00",
                "--to-file",
                &format!("{PRIMARY}:none"),
            ],
        )
        .unwrap();
    assert_eq!(
        before.status.code(),
        Some(i32::from(proto::domain::FailureCode::NotFound.exit_status())),
        "nothing at that time"
    );
    assert!(String::from_utf8_lossy(&before.stderr).contains("no complete backup at or before"));

    // The movers merge the chain into a synthetic full, without the node:
    // it holds every track once and restores the latest point.
    let sent_before = metrics::value(pn_metrics, "dmc_primary_tracks_sent_total").unwrap();
    assert!(
        sent_before >= inc3["tracks"].as_f64().unwrap(),
        "the node counted the tracks it sent since its restart: {sent_before}"
    );
    let merged = cluster
        .smapp(&["merge", "--primary", PRIMARY, "--object", OBJECT])
        .unwrap();
    let merged = merged.last().unwrap().clone();
    assert_eq!(merged["tracks"].as_u64().unwrap(), full_tracks);
    let row = abs_row(&cluster, id(&merged));
    assert_eq!(row["level"], "synthetic");
    assert_eq!(row["merged_from_abs_id"].as_u64(), Some(id(&inc3)));
    assert_eq!(row["point_in_time"], abs_row(&cluster, id(&inc3))["point_in_time"]);
    assert_eq!(
        metrics::value(pn_metrics, "dmc_primary_tracks_sent_total").unwrap(),
        sent_before,
        "the merge read nothing from the primary node"
    );
    let latest = restore_equals(
        &cluster,
        ext,
        &p3,
        &restored.join("latest.img"),
        &["--primary", PRIMARY, "--object", OBJECT],
    );
    assert_eq!(
        id(&latest),
        id(&merged),
        "the latest point restores from the synthetic full alone"
    );
    let a = id(&merged).to_string();
    restore_equals(&cluster, ext, &p3, &restored.join("synthetic.img"), &[&a]);

    // With nothing written since, an incremental holds no track, and the
    // object still restores through it.
    let empty = backup(&cluster, &extents_file, "incremental");
    assert_eq!(
        (empty["tracks"].as_u64(), empty["segments"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(abs_row(&cluster, id(&empty))["base_abs_id"].as_u64(), Some(id(&merged)));
    let a = id(&empty).to_string();
    restore_equals(&cluster, ext, &p3, &restored.join("empty.img"), &[&a]);

    // Later incrementals build on the synthetic full (here through the
    // empty one, whose base it is).
    let w4 = write_object_tracks(port, ext, 2, 555, 0x44);
    let p4 = keep_point(&layout, &points.join("4"));
    let inc4 = backup(&cluster, &extents_file, "incremental");
    assert_eq!(inc4["tracks"].as_u64().unwrap(), w4.len() as u64);
    assert_eq!(abs_row(&cluster, id(&inc4))["base_abs_id"].as_u64(), Some(id(&empty)));
    let a = id(&inc4).to_string();
    restore_equals(&cluster, ext, &p4, &restored.join("after-merge.img"), &[&a]);
    cluster.stop();
}
