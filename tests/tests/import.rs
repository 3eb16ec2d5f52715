//! Tapes from another cluster (issue 14, seed 002 FIG. 15): a second
//! cluster (its own PKI, database and label prefix) writes tapes; their
//! images are imported into the first cluster with `smapp library import`.
//! The ABS keeps its UUID, label and the cluster that wrote it, gets a new
//! id here because its own collides, and restores the same bytes. A tape
//! whose CATALOG file is corrupt imports by scanning its data files; a
//! tape whose ABS metadata has a format version this program does not
//! know is refused, naming the tape, the file and the version.

use std::path::{Path, PathBuf};

use dmc_tests::cluster::{Cluster, CLIENT, PRIMARY};
use dmc_tests::fixture;
use dmc_tests::scenario::{self, Layout, ScenarioSpec};
use proto::domain::FailureCode;
use proto::tape::block::SimhTape;
use proto::tape::directory::FileKind;
use proto::tape::volume::TapeReader;
use serde_json::Value;

const OBJECT: &str = "ledger";

fn spec(seed: u64) -> ScenarioSpec {
    ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed,
    }
}

/// Back up the layout's object into `pool` with `label`: its result line.
fn backup(cluster: &Cluster, layout: &Layout, pool: &str, label: &str) -> Value {
    let extents = layout.extents_file.to_string_lossy().to_string();
    let args = [
        "backup",
        "--primary",
        PRIMARY,
        "--object",
        OBJECT,
        "--extents",
        &extents,
        "--pool",
        pool,
        "--label",
        label,
    ];
    cluster.smapp(&args).unwrap().last().unwrap().clone()
}

/// A copy of `cluster`'s image of `tape` in `dir` (outside every library).
fn carry(cluster: &Cluster, tape: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join(format!("{tape}.tap"));
    std::fs::copy(cluster.library.join(format!("{tape}.tap")), &to).unwrap();
    to
}

fn only_tape(result: &Value) -> String {
    let tapes: Vec<String> = serde_json::from_value(result["tapes"].clone()).unwrap();
    assert_eq!(tapes.len(), 1, "{result}");
    tapes[0].clone()
}

/// The tape file numbers of the ABS metadata and of the CATALOG of an image.
fn files_of(image: &Path) -> (u32, u32) {
    let mut r = TapeReader::open(SimhTape::open(image).unwrap()).unwrap();
    let meta = r
        .data_files()
        .unwrap()
        .iter()
        .find(|f| f.kind == FileKind::AbsMetadata)
        .unwrap()
        .file_number;
    let trailer = r.read_node_trailer().unwrap().expect("a finished tape");
    (meta, trailer.directory_file + 2)
}

#[tokio::test(flavor = "multi_thread")]
async fn another_clusters_tapes_import_and_restore() {
    let work = tempfile::tempdir().unwrap();
    // The second cluster, with its own label range.
    let lb = scenario::make_layout(&work.path().join("b-volumes"), &spec(2202)).unwrap();
    let mut bspec = scenario::cluster_spec(&lb, &spec(2202));
    bspec.station_args = vec!["--label-prefix".into(), "XB".into()];
    let b = Cluster::start(&work.path().join("b"), &bspec).await.unwrap();
    for pool in ["second", "third"] {
        b.operator(&["pool", "define", pool, "--kind", "primary"]).unwrap();
    }
    let from_b = backup(&b, &lb, "default", "from cluster b");
    let scanned_b = backup(&b, &lb, "second", "catalog file damaged");
    let refused_b = backup(&b, &lb, "third", "from the future");
    let b_abs = b.smapp(&["list", "abs"]).unwrap();
    let b_row = b_abs.iter().find(|a| a["abs_id"] == from_b["abs_id"]).unwrap().clone();
    // What the ABS restores to in its own cluster.
    let b_file = b.restored("in-b.img");
    scenario::restore_to_file(&b, from_b["abs_id"].as_u64().unwrap(), &b_file).unwrap();
    let transfer = work.path().join("transfer");
    let (t1, t2, t3) = (only_tape(&from_b), only_tape(&scanned_b), only_tape(&refused_b));
    assert!(t1.starts_with("XB") && t2.starts_with("XB"), "{t1} {t2}");
    let (img1, img2, img3) = (
        carry(&b, &t1, &transfer),
        carry(&b, &t2, &transfer),
        carry(&b, &t3, &transfer),
    );
    drop(b);

    // The first cluster has ABS 1 of its own.
    let la = scenario::make_layout(&work.path().join("a-volumes"), &spec(1101)).unwrap();
    let a = Cluster::start(&work.path().join("a"), &scenario::cluster_spec(&la, &spec(1101)))
        .await
        .unwrap();
    let own = backup(&a, &la, "default", "ours");
    assert_eq!(own["abs_id"], from_b["abs_id"], "the two clusters' ids collide");

    // Imported: a new id, the same UUID, label and node, from cluster b.
    let twin = transfer.join("twin").join(format!("{t1}.tap"));
    std::fs::create_dir_all(twin.parent().unwrap()).unwrap();
    std::fs::copy(&img1, &twin).unwrap();
    let imported = a
        .operator(&["library", "import", &img1.to_string_lossy()])
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(imported["tapes"], serde_json::json!([t1]), "{imported}");
    let ids: Vec<u64> = serde_json::from_value(imported["abs"].clone()).unwrap();
    assert_eq!(ids.len(), 1, "{imported}");
    let new_id = ids[0];
    assert_ne!(new_id, own["abs_id"].as_u64().unwrap(), "the colliding id is remapped");
    let listed = a.operator(&["list", "abs"]).unwrap();
    let row = listed.iter().find(|r| r["abs_id"] == new_id).unwrap();
    assert_eq!(row["uuid"], b_row["uuid"], "{row}");
    assert_eq!(row["label"], "from cluster b");
    assert_eq!(row["state"], "complete");
    assert_eq!(row["tapes"], serde_json::json!([t1]));
    let origin = row["origin_cluster"].as_str().unwrap();
    assert_eq!(origin.len(), 36, "the cluster that wrote it: {row}");
    assert_eq!(
        row["primary"],
        format!("{PRIMARY}.{}", &origin[..8]),
        "kept apart from our node"
    );
    let ours = listed.iter().find(|r| r["abs_id"] == own["abs_id"]).unwrap();
    assert_eq!(ours["origin_cluster"], "", "{ours}");
    let tape = a
        .operator(&["list", "tapes"])
        .unwrap()
        .into_iter()
        .find(|t| t["label"] == t1.as_str())
        .unwrap();
    assert_eq!(tape["state"], "full", "an imported tape is not written here: {tape}");
    // It restores the same bytes here, read under the id it carries on
    // tape, once the operator lets the client restore that node's objects.
    let node = row["primary"].as_str().unwrap();
    a.operator(&["grant", CLIENT, "--primary", node, "--restore"]).unwrap();
    let a_file = a.restored("imported.img");
    scenario::restore_to_file(&a, new_id, &a_file).unwrap();
    assert!(
        std::fs::read(&a_file).unwrap() == std::fs::read(&b_file).unwrap(),
        "the imported ABS restores what it restored in its own cluster"
    );
    // Importing it again is refused: the tape is in the library.
    assert!(!img1.exists(), "the image moved into the library");
    let again = a.operator_fails(&["library", "import", &twin.to_string_lossy()], FailureCode::Conflict);
    assert!(again.contains("already in the library"), "{again}");

    // A damaged CATALOG file: imported by scanning the data files.
    let (_, catalog_file) = files_of(&img2);
    let off = fixture::simh_record_offset(&img2, catalog_file, 0).unwrap();
    fixture::flip_byte(&img2, off).unwrap();
    let out = a
        .smapp_as("operator", &["library", "import", &img2.to_string_lossy()])
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scanned instead"), "the operator is told: {err}");
    let line: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let scanned_id = line["abs"][0].as_u64().unwrap();
    let file = a.restored("scanned.img");
    scenario::restore_to_file(&a, scanned_id, &file).unwrap();
    scenario::verify_file(&lb, &file).unwrap();

    // ABS metadata of a version from the future: refused, naming it.
    let (meta_file, _) = files_of(&img3);
    let (start, _) = fixture::simh_record_data(&img3, meta_file, 0).unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&img3).unwrap();
        f.seek(SeekFrom::Start(start + 8)).unwrap();
        f.write_all(&9u16.to_le_bytes()).unwrap();
    }
    let err = a.operator_fails(&["library", "import", &img3.to_string_lossy()], FailureCode::Corrupt);
    assert!(
        err.contains(&format!("tape {t3}")) && err.contains(&format!("file {meta_file}")) && err.contains("version 9"),
        "{err}"
    );
    assert!(img3.exists(), "a refused image stays where it was");
    let tapes = a.operator(&["list", "tapes"]).unwrap();
    assert!(tapes.iter().all(|t| t["label"] != t3.as_str()), "{tapes:?}");
}
