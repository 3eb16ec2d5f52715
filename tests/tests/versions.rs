//! Copy versions, first part (issue 15, seed 004 FIG. 4, 5): volume pools
//! of two primary nodes' volumes, a version set with two target pools, and
//! the pre-pairing record of its next version — a target for every source
//! volume, the first eligible one of the pool in order (not reserved, at
//! least as large, same geometry, node online), or the version refused
//! before any copy with the reason naming each rejected target.

use std::path::PathBuf;
use std::time::Duration;

use dmc_tests::cluster::{Cluster, ClusterSpec, ExtraNode};
use proto::domain::FailureCode;
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn volume(dir: &std::path::Path, name: &str, size: u64) -> (String, PathBuf) {
    let path = dir.join(format!("{name}.img"));
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    (name.to_string(), path)
}

/// A target volume exposing `size` bytes (its file has the management
/// region after them).
fn target(dir: &std::path::Path, name: &str, size: u64) -> (String, PathBuf) {
    volume(dir, name, size + proto::region::REGION_BYTES as u64)
}

/// The pairs of a set's record of `kind` for `version`, as "src>tgt".
fn pairs(set: &Value, version: u64, kind: &str) -> Vec<String> {
    record(set, version, kind)["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}>{}", p["source"].as_str().unwrap(), p["target"].as_str().unwrap()))
        .collect()
}

/// `versions define SET --source S --targets T --keep K`.
fn define<'a>(set: &'a str, source: &'a str, targets: &'a str, keep: &'a str) -> [&'a str; 9] {
    [
        "versions",
        "define",
        set,
        "--source",
        source,
        "--targets",
        targets,
        "--keep",
        keep,
    ]
}

fn record<'a>(set: &'a Value, version: u64, kind: &str) -> &'a Value {
    set["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version && r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} record of version {version}: {set}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_pools_version_sets_and_pre_pairing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("volumes");
    std::fs::create_dir_all(&dir).unwrap();
    let pn1 = vec![
        volume(&dir, "vol-a", 4 * MIB),
        volume(&dir, "vol-b", 4 * MIB),
        volume(&dir, "scratch", 8 * MIB),
    ];
    let mut spec = ClusterSpec::new(pn1, 4096, 65536, MIB);
    spec.target_volumes = vec![
        target(&dir, "t1a", 4 * MIB),
        target(&dir, "t1b", 8 * MIB),
        target(&dir, "t1d", 4 * MIB),
    ];
    spec.extra_nodes = vec![ExtraNode {
        name: "pn2".to_string(),
        volumes: vec![volume(&dir, "vol-c", 2 * MIB)],
        target_volumes: vec![
            target(&dir, "small", MIB),
            target(&dir, "t1c", 2 * MIB),
            target(&dir, "t2a", 4 * MIB),
            target(&dir, "t2b", 4 * MIB),
        ],
        args: Vec::new(),
    }];
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();

    // Volume pools: a source pool over both nodes, two target pools.
    cluster
        .operator(&[
            "vpool",
            "define",
            "prod",
            "--source",
            "--volumes",
            "pn1:vol-a,pn1:vol-b,pn2:vol-c",
        ])
        .unwrap();
    cluster
        .operator(&[
            "vpool",
            "define",
            "t1",
            "--target",
            "--volumes",
            "pn1:scratch,pn2:small,pn1:t1a,pn1:t1b,pn2:t1c",
        ])
        .unwrap();
    let listed = cluster
        .operator(&["vpool", "define", "t2", "--target", "--volumes", "pn2:t2a,pn2:t2b"])
        .unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let prod = listed.iter().find(|p| p["vpool"] == "prod").unwrap();
    assert_eq!(prod["kind"], "source");
    let vols: Vec<(&str, u64, bool)> = prod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["volume"].as_str().unwrap(),
                v["size"].as_u64().unwrap(),
                v["online"] == true,
            )
        })
        .collect();
    assert_eq!(
        vols,
        [
            ("pn1:vol-a", 4 * MIB, true),
            ("pn1:vol-b", 4 * MIB, true),
            ("pn2:vol-c", 2 * MIB, true)
        ],
        "sizes as the nodes reported them"
    );
    let t1 = listed.iter().find(|p| p["vpool"] == "t1").unwrap();
    let kinds: Vec<(&str, bool, u64)> = t1["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["volume"].as_str().unwrap(),
                v["target"] == true,
                v["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds[..3],
        [
            ("pn1:scratch", false, 8 * MIB),
            ("pn2:small", true, MIB),
            ("pn1:t1a", true, 4 * MIB)
        ],
        "target volumes expose their size without the management region"
    );
    assert!(t1["volumes"].as_array().unwrap().iter().all(|v| v["holds"].is_null()));

    // What is refused, and how.
    let e = cluster.operator_fails(
        &["vpool", "define", "x", "--target", "--volumes", "pn1:vol-a"],
        FailureCode::Conflict,
    );
    assert!(e.contains("pn1:vol-a is in volume pool prod already"), "{e}");
    let e = cluster.operator_fails(&["vpool", "add", "t2", "--volumes", "pn2:nope"], FailureCode::NotFound);
    assert!(e.contains("pn2:nope"), "{e}");
    let e = cluster.operator_fails(&define("daily", "prod", "t1,t2", "3"), FailureCode::Invalid);
    assert!(e.contains("--keep 3"), "{e}");
    let e = cluster.operator_fails(&define("daily", "t1", "t2", "1"), FailureCode::Invalid);
    assert!(e.contains("not a source volume pool"), "{e}");
    let client = cluster
        .smapp_as(
            dmc_tests::cluster::CLIENT,
            &["vpool", "define", "mine", "--source", "--volumes", "pn1:t1d"],
        )
        .unwrap();
    assert_eq!(
        client.status.code(),
        Some(i32::from(FailureCode::Refused.exit_status()))
    );

    let sets = cluster.operator(&define("daily", "prod", "t1,t2", "2")).unwrap();
    assert_eq!(sets[0]["targets"], serde_json::json!(["t1", "t2"]));
    let e = cluster.operator_fails(&define("other", "prod", "t2", "1"), FailureCode::Conflict);
    assert!(e.contains("t2 serves another version set"), "{e}");

    // Version 1 goes to t1: each source gets the first eligible target in
    // pool order (pn1:scratch is a data volume, pn2:small too small).
    let set = cluster.operator(&["versions", "prepare", "daily"]).unwrap().remove(0);
    let r = record(&set, 1, "pre_pairing");
    assert_eq!(
        (r["state"].as_str(), r["target_pool"].as_str()),
        (Some("ready"), Some("t1")),
        "{r}"
    );
    assert_eq!(
        pairs(&set, 1, "pre_pairing"),
        ["pn1:vol-a>pn1:t1a", "pn1:vol-b>pn1:t1b", "pn2:vol-c>pn2:t1c"]
    );

    // Without t1b there is no target large enough for vol-b: version 1 is
    // refused before any copy, the reason names every rejected target.
    cluster
        .operator(&["vpool", "remove", "t1", "--volumes", "pn1:t1b"])
        .unwrap();
    let e = cluster.operator_fails(&["versions", "prepare", "daily"], FailureCode::Refused);
    assert!(e.contains("no eligible target in pool t1 for source pn1:vol-b"), "{e}");
    assert!(
        e.contains("pn2:small: 1048576 bytes, smaller than the source's 4194304"),
        "{e}"
    );
    assert!(e.contains("pn1:t1a: reserved by the pair of pn1:vol-a"), "{e}");
    assert!(e.contains("pn1:scratch: not a target volume"), "{e}");
    let set = cluster.operator(&["versions", "list", "daily"]).unwrap().remove(0);
    let r = record(&set, 1, "pre_pairing");
    assert_eq!(r["state"], "refused");
    assert!(r["reason"].as_str().unwrap().contains("for source pn1:vol-b"), "{r}");
    assert!(r["pairs"].as_array().unwrap().is_empty());

    // A new target volume: ready again, at the end of the scan order.
    cluster
        .operator(&["vpool", "add", "t1", "--volumes", "pn1:t1d"])
        .unwrap();
    let set = cluster.operator(&["versions", "prepare", "daily"]).unwrap().remove(0);
    assert_eq!(
        pairs(&set, 1, "pre_pairing"),
        ["pn1:vol-a>pn1:t1a", "pn1:vol-b>pn1:t1d", "pn2:vol-c>pn2:t1c"]
    );

    // A node that is down has no eligible volumes (once the station has
    // seen it go: its volumes are listed offline).
    cluster.kill("pn2").unwrap();
    dmc_tests::faults::wait_until(&cluster, "pn2's volumes listed offline", Duration::from_secs(30), |c| {
        c.operator(&["vpool", "list"])
            .unwrap()
            .iter()
            .flat_map(|p| p["volumes"].as_array().unwrap().clone())
            .any(|v| v["volume"] == "pn2:t1c" && v["online"] == false)
    });
    let e = cluster.operator_fails(&["versions", "prepare", "daily"], FailureCode::Refused);
    assert!(e.contains("node pn2 is not online"), "{e}");
    // The operators were notified of the refused version once, while it
    // stays open (refused twice, not acknowledged), with the first reason.
    {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(cluster.db.url()).await.unwrap();
        let notes: Vec<(String, String, String)> =
            sqlx::query_as("SELECT kind, subject, message FROM notifications ORDER BY id")
                .fetch_all(&mut db)
                .await
                .unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(
            (notes[0].0.as_str(), notes[0].1.as_str()),
            ("version_refused", "version set daily")
        );
        assert!(notes[0].2.contains("for source pn1:vol-b"), "{notes:?}");
    }
    // A client lists (read-only).
    let seen = cluster.smapp(&["versions", "list"]).unwrap();
    assert_eq!(seen[0]["set"], "daily");
    cluster.stop();
}
