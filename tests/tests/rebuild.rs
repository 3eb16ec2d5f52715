//! A lost catalog rebuilt from the tapes alone (issue 14, seed 002 FIG.
//! 15): full, incremental and cumulative backups and a synthetic full of
//! one object and a full of another, on tapes of which one media set spans
//! two, with a copy in a copy pool; the database is dropped and
//! `control-station catalog rebuild --library DIR` reads the tape images
//! (labels, DIRECTORY, CATALOG, ABS metadata with management records).
//! Every listing equals what it was, every ABS restores the same bytes,
//! `--at` picks the same chain and the next incremental builds on the
//! right base with only the tracks changed since.
#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::time::Duration;

use dmc_tests::cluster::{nbd_write, station_cli, Cluster, CLIENT, PRIMARY, STATION};
use dmc_tests::scenario::{self, ScenarioSpec};
use serde_json::Value;

const OBJECT: &str = "/db/ledger";
const TRACK: u64 = 65536;

/// What an operator sees: ABSs, segments, tapes, library, pools (with the
/// drive a tape sits in left out: drives register again after a restart).
fn listings(cluster: &Cluster) -> BTreeMap<&'static str, Vec<Value>> {
    let unmounted = |mut rows: Vec<Value>| {
        for r in &mut rows {
            if let Some(o) = r.as_object_mut() {
                o.remove("mounted_in");
            }
        }
        rows
    };
    BTreeMap::from([
        ("list abs", cluster.operator(&["list", "abs"]).unwrap()),
        ("list segments", cluster.operator(&["list", "segments"]).unwrap()),
        ("list tapes", unmounted(cluster.operator(&["list", "tapes"]).unwrap())),
        (
            "library list",
            unmounted(cluster.operator(&["library", "list"]).unwrap()),
        ),
        ("pool list", cluster.operator(&["pool", "list"]).unwrap()),
    ])
}

fn id(v: &Value) -> u64 {
    v["abs_id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_is_rebuilt_from_the_tapes_alone() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 8 << 20,
        block_size: 4096,
        track_size: TRACK as u32,
        segment_size: 1 << 20,
        seed: 1415,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    // A TCP port for the NBD export (a free UDP port may be taken for TCP).
    let port = dmc_tests::metrics::free_tcp_port().unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.pn_args = vec!["--nbd".into(), format!("127.0.0.1:{port}")];
    // Two drives: a merge and a pool backup read on one, write on the other.
    cspec.drives_per_pair = vec![2];
    // Small tapes: the backups' media set goes on on a second tape.
    cspec.tape_capacity = 14 << 20;
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let extents = layout.extents_file.to_string_lossy().to_string();
    let other = scenario::scatter_objects(&layout, work.path(), 4 << 20, 1, 77)
        .unwrap()
        .remove(0);
    let other_extents = other.file.to_string_lossy().to_string();
    let backup = |cluster: &Cluster, level: &str, label: &str| -> Value {
        let args = [
            "backup",
            "--primary",
            PRIMARY,
            "--object",
            OBJECT,
            "--extents",
            &extents,
            "--level",
            level,
            "--label",
            label,
        ];
        cluster.smapp(&args).unwrap().last().unwrap().clone()
    };
    // The object's tracks (on vol0) to write between backups.
    let track_of_object = |n: usize| -> u64 {
        let e = layout
            .extents
            .iter()
            .filter(|e| e.volume == "vol0" && e.length >= TRACK * 2)
            .nth(n)
            .expect("an extent of the object on vol0 two tracks long");
        e.offset.div_ceil(TRACK)
    };

    let full = backup(&cluster, "full", "weekly");
    nbd_write(port, "vol0", track_of_object(0) * TRACK, 0x21);
    let inc = backup(&cluster, "incremental", "nightly 1");
    nbd_write(port, "vol0", track_of_object(1) * TRACK, 0x22);
    let cum = backup(&cluster, "cumulative", "nightly 2");
    let merged = cluster
        .smapp(&["merge", "--primary", PRIMARY, "--object", OBJECT])
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let second = cluster
        .smapp(&[
            "backup",
            "--primary",
            PRIMARY,
            "--object",
            &other.name,
            "--extents",
            &other_extents,
        ])
        .unwrap()
        .last()
        .unwrap()
        .clone();
    cluster
        .operator(&["pool", "define", "vault", "--kind", "copy", "--copies-of", "default"])
        .unwrap();
    cluster
        .operator(&["pool", "backup", "default", "--to", "vault"])
        .unwrap();
    let ids = [id(&full), id(&inc), id(&cum), id(&merged), id(&second)];

    let before = listings(&cluster);
    let tapes = &before["list tapes"];
    assert!(tapes.len() >= 3, "at least three tapes: {tapes:?}");
    assert!(
        tapes.iter().any(|t| t["sequence"] == 2),
        "a media set spans two tapes: {tapes:?}"
    );
    let abs_rows = &before["list abs"];
    assert!(
        abs_rows
            .iter()
            .all(|a| a["state"] == "complete" && a["copy_pools"] == serde_json::json!(["vault"])),
        "every ABS complete with a copy in vault: {abs_rows:?}"
    );
    // What each ABS restores to, and what --at picks.
    let restore = |cluster: &Cluster, name: &str, args: &[&str]| -> (Value, Vec<u8>) {
        let dest = cluster.restored(name);
        let to = cluster.to_file(&dest);
        let mut all = vec!["restore"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--to-file", &to]);
        let line = cluster.smapp(&all).unwrap().last().unwrap().clone();
        (line, std::fs::read(&dest).unwrap())
    };
    let mut restored = Vec::new();
    for a in ids {
        let s = a.to_string();
        restored.push(restore(&cluster, &format!("before-{a}"), &[&s]).1);
    }
    let at = abs_rows.iter().find(|a| id(a) == id(&inc)).unwrap()["point_in_time"]
        .as_str()
        .unwrap()
        .to_string();
    let at_args = ["--primary", PRIMARY, "--object", OBJECT, "--at", &at];
    let (at_before, at_bytes) = restore(&cluster, "at-before", &at_args);

    // Every tape's CATALOG has the records (copies': the copy's).
    dmc_tests::records::check_catalog_records(&cluster.library, tapes, &["vault"]).unwrap();

    // The catalog is lost.
    cluster.lose_catalog().await.unwrap();

    // Rebuilt from the library's tapes.
    let library = cluster.library.to_string_lossy().to_string();
    let url = cluster.db.url().to_string();
    let (ok, out, err) = station_cli(&["catalog", "rebuild", "--library", &library, "--database-url", &url]);
    assert!(ok, "catalog rebuild failed: {err}");
    eprintln!("{out}{err}");
    assert!(
        out.contains(&format!("catalog rebuilt from {} tapes", tapes.len())) && out.contains("5 complete ABSs"),
        "{out}\n{err}"
    );
    assert!(out.contains("0 segments read"), "no data segment read: {out}");
    // Only into an empty database.
    let (ok, _, err) = station_cli(&["catalog", "rebuild", "--library", &library, "--database-url", &url]);
    assert!(!ok);
    assert!(err.contains("is not empty"), "{err}");

    cluster.restart(STATION).unwrap();
    cluster
        .wait_registered(&["pn1", "fe1", "be1"], &[], Duration::from_secs(60))
        .unwrap();
    let after = listings(&cluster);
    for (what, rows) in &before {
        assert_eq!(&after[what], rows, "{what} after the rebuild");
    }
    // Grants are not on tape: the operator gives them again.
    cluster
        .operator(&["grant", CLIENT, "--primary", PRIMARY, "--backup", "--restore"])
        .unwrap();
    for (a, bytes) in ids.iter().zip(&restored) {
        let s = a.to_string();
        let (_, again) = restore(&cluster, &format!("after-{a}"), &[&s]);
        assert!(again == *bytes, "ABS {a} restores the same bytes after the rebuild");
    }
    let (at_after, at_bytes_after) = restore(&cluster, "at-after", &at_args);
    // The same ABS, whose chain (its base links) the ABS listing compared.
    assert_eq!(id(&at_after), id(&at_before), "--at picks the same ABS");
    assert_eq!(id(&at_before), id(&inc));
    assert!(at_bytes_after == at_bytes);

    // The next incremental builds on the synthetic full, with only the
    // track written since (the change-map epochs came back from tape).
    nbd_write(port, "vol0", track_of_object(2) * TRACK, 0x23);
    let next = backup(&cluster, "incremental", "after the rebuild");
    assert!(id(&next) > ids[4], "a new id: {next}");
    assert_eq!(next["tracks"].as_u64(), Some(1), "{next}");
    let row = cluster
        .operator(&["list", "abs"])
        .unwrap()
        .into_iter()
        .find(|a| id(a) == id(&next))
        .unwrap();
    assert_eq!(row["base_abs_id"].as_u64(), Some(id(&merged)), "{row}");
}
