//! Delete and retention (issue 14, seed 002 FIG. 14/16): `smapp delete ABS`
//! is refused while a differential builds on it (unless
//! `--with-dependents`) and to a client without a backup grant; a deleted
//! ABS no longer lists or restores; a tape whose every ABS is deleted
//! returns to scratch once its pool's retention (`pool define --retain
//! DAYS`) has passed and is relabelled and reused; a pool that keeps
//! emptied tapes for 30 days does not reuse them.
#![allow(clippy::cast_possible_truncation)]

use std::process::Command;

use dmc_tests::cluster::{bin, nbd_write, Cluster, CLIENT, CLIENT2, PRIMARY};
use dmc_tests::scenario::{self, ScenarioSpec};
use proto::domain::FailureCode;
use serde_json::Value;

const OBJECT: &str = "/db/orders";
const TRACK: u64 = 65536;

fn id(v: &Value) -> u64 {
    v["abs_id"].as_u64().unwrap()
}

/// The exit status `smapp` gives a failure of `code`.
fn status_of(code: FailureCode) -> Option<i32> {
    Some(i32::from(code.exit_status()))
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_backups_free_their_tapes_after_retention() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: TRACK as u32,
        segment_size: 1 << 20,
        seed: 1616,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    // A TCP port for the NBD export (a free UDP port may be taken for TCP).
    let port = dmc_tests::metrics::free_tcp_port().unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.pn_args = vec!["--nbd".into(), format!("127.0.0.1:{port}")];
    let cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let extents = layout.extents_file.to_string_lossy().to_string();
    cluster
        .operator(&["pool", "define", "short", "--kind", "primary", "--retain", "0"])
        .unwrap();
    let pools = cluster
        .operator(&["pool", "define", "long", "--kind", "primary", "--retain", "30"])
        .unwrap();
    let long = pools.iter().find(|p| p["pool"] == "long").unwrap();
    assert_eq!(long["retain_days"], 30, "{long}");
    let backup = |pool: &str, level: &str| -> Value {
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
            "--level",
            level,
        ];
        cluster.smapp(&args).unwrap().last().unwrap().clone()
    };
    let tape_row = |label: &str| -> Value {
        cluster
            .operator(&["list", "tapes"])
            .unwrap()
            .into_iter()
            .find(|t| t["label"] == label)
            .unwrap_or_else(|| panic!("no tape {label}"))
    };

    // A full and an incremental on one tape of pool `short`.
    let full = backup("short", "full");
    let tape: String = serde_json::from_value::<Vec<String>>(full["tapes"].clone()).unwrap()[0].clone();
    let e = layout.extents.iter().find(|e| e.volume == "vol0").unwrap();
    nbd_write(port, "vol0", e.offset, 7);
    let inc = backup("short", "incremental");
    assert_eq!(inc["tapes"], full["tapes"], "both on one tape");
    let old_set = tape_row(&tape)["media_set"].clone();

    // The full is the incremental's base: refused, naming it.
    let f = full["abs_id"].to_string();
    let refused = cluster.smapp_as(CLIENT, &["delete", &f]).unwrap();
    assert_eq!(refused.status.code(), status_of(FailureCode::Conflict));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("is the base of ABS {}", id(&inc))) && err.contains("--with-dependents"),
        "{err}"
    );
    // A client with no grant on the object may not delete it (nor learn
    // whether it exists).
    let other = cluster.smapp_as(CLIENT2, &["delete", &f, "--with-dependents"]).unwrap();
    assert_eq!(other.status.code(), status_of(FailureCode::Refused));

    // Deleted with its dependent: the tape holds nothing wanted, and pool
    // `short` keeps nothing, so it is scratch at once.
    let deleted = cluster.smapp(&["delete", &f, "--with-dependents"]).unwrap();
    let d = deleted.last().unwrap();
    assert_eq!(d["abs"], serde_json::json!([id(&full), id(&inc)]), "{d}");
    assert_eq!(d["tapes_emptied"], serde_json::json!([tape]), "{d}");
    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    assert!(listed.is_empty(), "deleted ABSs no longer list: {listed:?}");
    let dest = cluster.restored("deleted.img");
    let gone = cluster
        .smapp_as(CLIENT, &["restore", &f, "--to-file", &cluster.to_file(&dest)])
        .unwrap();
    assert_eq!(gone.status.code(), status_of(FailureCode::NotFound));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("was deleted"));
    let again = cluster.smapp_as(CLIENT, &["delete", &f]).unwrap();
    assert_eq!(again.status.code(), status_of(FailureCode::NotFound));
    let t = tape_row(&tape);
    assert_eq!(t["state"], "scratch", "{t}");
    assert_eq!(
        (t["bytes_written"].as_u64(), t["reuses"].as_u64()),
        (Some(0), Some(1)),
        "{t}"
    );

    // The next backup to `short` reuses it, relabelled: only the new ABS
    // on it, restorable.
    let next = backup("short", "full");
    assert_eq!(next["tapes"], serde_json::json!([tape]), "the emptied tape is reused");
    let t = tape_row(&tape);
    assert_eq!(t["state"], "filling");
    assert_eq!(
        (t["media_set"].as_u64(), t["sequence"].as_u64()),
        (old_set.as_u64(), Some(1)),
        "{t}"
    );
    let image = cluster.library.join(format!("{tape}.tap"));
    let inspect = Command::new(bin("smapp").unwrap())
        .args(["--json", "tape", "inspect", &image.to_string_lossy()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    for old in [id(&full), id(&inc)] {
        assert!(
            !report.contains(&format!("\"abs_id\":{old},")),
            "nothing of deleted ABS {old} is left on the relabelled tape: {report}"
        );
    }
    assert!(report.contains(&format!("\"abs_id\":{},", id(&next))), "{report}");
    let file = cluster.restored("next.img");
    scenario::restore_to_file(&cluster, id(&next), &file).unwrap();
    scenario::verify_file(&layout, &file).unwrap();

    // Pool `long` keeps an emptied tape 30 days: not scratch, not reused.
    let kept = backup("long", "full");
    let kept_tape: String = serde_json::from_value::<Vec<String>>(kept["tapes"].clone()).unwrap()[0].clone();
    let k = kept["abs_id"].to_string();
    let d = cluster.smapp(&["delete", &k]).unwrap();
    assert_eq!(d.last().unwrap()["tapes_emptied"], serde_json::json!([kept_tape]));
    let t = tape_row(&kept_tape);
    assert_ne!(t["state"], "scratch", "{t}");
    assert!(!t["emptied"].as_str().unwrap().is_empty(), "{t}");
    let later = backup("long", "full");
    let later_tapes: Vec<String> = serde_json::from_value(later["tapes"].clone()).unwrap();
    assert!(
        !later_tapes.contains(&kept_tape),
        "a tape within its retention is not written: {later_tapes:?}"
    );
}
