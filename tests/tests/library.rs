//! The tape library as an operator uses it: scratch tapes labelled into
//! slots, a written tape exported (its image leaves the library) and the
//! restore that needs it refused with a clear error, the tape imported back
//! and the restore succeeding, a blank image imported as scratch, and a
//! foreign tape refused. Only an operator may manage the library, and the
//! back-end that moves the images never moves one into its library, or
//! out of it, by any other way than import and export.

use dmc_tests::cluster::Cluster;
use dmc_tests::scenario::{self, ScenarioSpec};
use proto::domain::FailureCode;

#[tokio::test(flavor = "multi_thread")]
async fn export_import_and_slots() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 3,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cluster = Cluster::start(work.path(), &scenario::cluster_spec(&layout, &spec))
        .await
        .unwrap();
    let op = |args: &[&str]| cluster.smapp_json_as("operator", args);
    let op_fails = |args: &[&str], code: FailureCode| cluster.operator_fails(args, code);

    // A client may not manage the library.
    assert!(cluster.smapp(&["library", "label", "--count", "2"]).is_err());
    let labelled = op(&["library", "label", "--count", "2"]).unwrap();
    assert_eq!(labelled.len(), 2);
    let slots: Vec<u64> = labelled.iter().map(|t| t["slot"].as_u64().unwrap()).collect();
    assert_eq!(slots, vec![1, 2], "scratch tapes in the first free slots");
    assert!(labelled
        .iter()
        .all(|t| t["state"] == "scratch" && t["location"] == "library"));

    // Back up onto the first scratch tape.
    let extents = layout.extents_file.to_string_lossy().to_string();
    let out = cluster
        .smapp(&["backup", "--primary", "pn1", "--object", "obj", "--extents", &extents])
        .unwrap();
    let abs_id = out.last().unwrap()["abs_id"].as_u64().unwrap();
    let tape = out.last().unwrap()["tapes"][0].as_str().unwrap().to_string();
    assert_eq!(
        tape,
        labelled[0]["label"].as_str().unwrap(),
        "the oldest scratch tape is used first"
    );

    // Export it: the image leaves the library, the restore explains.
    let vault = work.path().join("vault");
    let exported = op(&["library", "export", &tape, "--to", vault.to_str().unwrap()]).unwrap();
    assert_eq!(exported[0]["location"], "exported");
    assert!(exported[0]["slot"].is_null());
    let image = vault.join(format!("{tape}.tap"));
    assert!(image.exists() && !cluster.library.join(format!("{tape}.tap")).exists());
    let dest = cluster.restored("restored.bin");
    let err = scenario::restore_and_verify(&cluster, &layout, abs_id, &layout.extents, &dest).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&tape) && msg.contains("exported") && msg.contains("import"),
        "{msg}"
    );

    // Import it back: a free slot, and the restore works.
    let imported = op(&["library", "import", image.to_str().unwrap()]).unwrap();
    assert_eq!(imported[0]["label"].as_str().unwrap(), tape);
    assert_eq!(imported[0]["location"], "library");
    assert_eq!(imported[0]["slot"].as_u64(), Some(1), "the lowest free slot");
    scenario::restore_and_verify(&cluster, &layout, abs_id, &layout.extents, &dest).unwrap();

    // A blank image becomes a scratch tape; a copy of a tape in the library
    // and an old tape this catalog never wrote are refused.
    let blank = work.path().join("blank.tap");
    std::fs::write(&blank, b"").unwrap();
    let b = op(&["library", "import", blank.to_str().unwrap()]).unwrap();
    assert_eq!(b[0]["state"], "scratch");
    assert_eq!(b[0]["slot"].as_u64(), Some(3));
    let copy = work.path().join("copy.tap");
    std::fs::copy(cluster.library.join(format!("{tape}.tap")), &copy).unwrap();
    let err = op_fails(&["library", "import", copy.to_str().unwrap()], FailureCode::Conflict);
    assert!(err.contains("already in the library"), "{err}");
    let foreign = work.path().join("foreign.tap");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/golden/small_v1.tap");
    std::fs::copy(golden, &foreign).unwrap();
    // (a tape written before management records carried segment sizes:
    // another cluster's tapes import when they are newer, see import.rs)
    let err = op_fails(&["library", "import", foreign.to_str().unwrap()], FailureCode::Refused);
    assert!(
        err.contains("written before") && err.contains("catalog rebuild"),
        "{err}"
    );
    assert!(foreign.exists(), "a refused image stays where it was");

    // The back-end moves images only between its library and outside
    // files: an export into the library, or to a path that climbs, and an
    // import from the library are refused and move nothing.
    let scratch = b[0]["label"].as_str().unwrap();
    let into_library = cluster.library.join("sub");
    let err = op_fails(
        &["library", "export", scratch, "--to", into_library.to_str().unwrap()],
        FailureCode::Refused,
    );
    assert!(err.contains("inside the library"), "{err}");
    assert!(!into_library.exists());
    let climbing = format!("{}/x/../vault2", work.path().display());
    op_fails(&["library", "export", scratch, "--to", &climbing], FailureCode::Invalid);
    assert!(!work.path().join("vault2").exists() && !work.path().join("x").exists());
    let in_library = cluster.library.join(format!("{tape}.tap"));
    let err = op_fails(
        &["library", "import", in_library.to_str().unwrap()],
        FailureCode::Refused,
    );
    assert!(err.contains("inside the library"), "{err}");
    let out = op(&["library", "export", scratch, "--to", vault.to_str().unwrap()]).unwrap();
    assert_eq!(out[0]["location"], "exported");
    assert!(vault.join(format!("{scratch}.tap")).exists());
    cluster.stop();
}
