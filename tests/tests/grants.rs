//! Issue 10, finding 2: who may do what is in the catalog. A second client
//! with a real certificate of the client role gets nothing until an
//! operator grants it, then exactly what was granted, until it is revoked.

use dmc_tests::cluster::{Cluster, ClusterSpec, CLIENT, CLIENT2, PRIMARY};
use dmc_tests::fixture;
use proto::domain::FailureCode;

/// `who`'s `smapp ARGS` fails with `code` (its exit status); its message
/// names `words` (what was refused, or what to do), or nothing in
/// particular when `words` is empty.
fn failed(cluster: &Cluster, who: &str, args: &[&str], code: FailureCode, words: &str) {
    let out = cluster.smapp_as(who, args).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{who} {args:?} was allowed");
    assert_eq!(
        out.status.code(),
        Some(i32::from(code.exit_status())),
        "{who} {args:?}: {err}"
    );
    assert!(err.contains(words), "{who} {args:?}: {err}");
}

/// `who` may not `smapp ARGS`.
fn refused(cluster: &Cluster, who: &str, args: &[&str], words: &str) {
    failed(cluster, who, args, FailureCode::Refused, words);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_touches_only_what_an_operator_granted() {
    let work = tempfile::tempdir().unwrap();
    let vol0 = work.path().join("vol0.img");
    let vol1 = work.path().join("vol1.img");
    fixture::make_volume(&vol0, 2 << 20, 1).unwrap();
    fixture::make_volume(&vol1, 2 << 20, 2).unwrap();
    let spec = ClusterSpec::new(
        vec![("vol0".into(), vol0.clone()), ("vol1".into(), vol1.clone())],
        4096,
        65536,
        1 << 20,
    );
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();
    // The first client holds a grant on the whole node (Cluster::start).
    let backup = |who: &str, object: &str, volume: &str| {
        cluster
            .smapp_as(
                who,
                &["backup", "--primary", PRIMARY, "--object", object, "--volume", volume],
            )
            .unwrap()
    };
    let abs_of = |out: std::process::Output| -> u64 {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["abs_id"]
            .as_u64()
            .unwrap()
    };
    let db1 = abs_of(backup(CLIENT, "db1", "vol0"));
    let db2 = abs_of(backup(CLIENT, "db2", "vol1"));
    let (db1s, db2s) = (db1.to_string(), db2.to_string());

    // A certificate alone grants nothing.
    let out = backup(CLIENT2, "db3", "vol0");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(FailureCode::Refused.exit_status())),
        "{err}"
    );
    assert!(
        err.contains("smapp grant client2 --primary pn1"),
        "the grant to ask for: {err}"
    );
    let to_c2 = format!("{PRIMARY}:c2.img");
    refused(&cluster, CLIENT2, &["restore", &db1s, "--to-file", &to_c2], "");
    refused(&cluster, CLIENT2, &["restore", &db1s, "--original"], "");
    refused(
        &cluster,
        CLIENT2,
        &["restore", "--primary", PRIMARY, "--object", "db1", "--to-file", &to_c2],
        "",
    );
    refused(&cluster, CLIENT2, &["list", "tapes"], "");
    refused(&cluster, CLIENT2, &["list", "segments", "--abs", &db1s], "");
    refused(&cluster, CLIENT2, &["list", "segments"], "for operators");
    refused(
        &cluster,
        CLIENT2,
        &["grant", CLIENT2, "--primary", PRIMARY, "--backup"],
        "",
    );
    assert!(cluster.smapp_json_as(CLIENT2, &["list", "abs"]).unwrap().is_empty());
    assert!(cluster.smapp_json_as(CLIENT2, &["channels"]).unwrap().is_empty());
    assert!(!cluster.restored("c2.img").exists());

    // Granted: restore one object, nothing else.
    cluster
        .operator(&["grant", CLIENT2, "--primary", PRIMARY, "--object", "db1", "--restore"])
        .unwrap();
    cluster
        .smapp_json_as(CLIENT2, &["restore", &db1s, "--to-file", &to_c2])
        .unwrap();
    assert_eq!(
        std::fs::read(cluster.restored("c2.img")).unwrap(),
        std::fs::read(&vol0).unwrap()
    );
    let seen: Vec<u64> = cluster
        .smapp_json_as(CLIENT2, &["list", "abs"])
        .unwrap()
        .iter()
        .map(|a| a["abs_id"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, vec![db1]);
    assert!(!cluster
        .smapp_json_as(CLIENT2, &["list", "segments", "--abs", &db1s])
        .unwrap()
        .is_empty());
    let channels = cluster.smapp_json_as(CLIENT2, &["channels"]).unwrap();
    assert!(
        !channels.is_empty() && channels.iter().all(|c| c["abs_id"] == db1),
        "{channels:?}"
    );
    refused(
        &cluster,
        CLIENT2,
        &["restore", &db2s, "--to-file", &format!("{PRIMARY}:x.img")],
        "object db2",
    );
    refused(&cluster, CLIENT2, &["list", "segments", "--abs", &db2s], "");
    let out = backup(CLIENT2, "db1", "vol0");
    assert!(!out.status.success(), "a restore grant let client2 back up");
    assert_eq!(out.status.code(), Some(i32::from(FailureCode::Refused.exit_status())));
    let grants = cluster.smapp_json_as(CLIENT2, &["grants"]).unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["object"], "db1");
    assert_eq!(grants[0]["restore"], true);
    assert_eq!(grants[0]["backup"], false);
    assert_eq!(cluster.operator(&["grants"]).unwrap().len(), 2);

    // Rights add up; a backup grant lets it back up that object only.
    cluster
        .operator(&["grant", CLIENT2, "--primary", PRIMARY, "--object", "db1", "--backup"])
        .unwrap();
    abs_of(backup(CLIENT2, "db1", "vol0"));
    assert!(!backup(CLIENT2, "db2", "vol1").status.success());

    // Revoked: refused again, and the grant is gone.
    cluster
        .operator(&["revoke", CLIENT2, "--primary", PRIMARY, "--object", "db1"])
        .unwrap();
    refused(
        &cluster,
        CLIENT2,
        &["restore", &db1s, "--to-file", &format!("{PRIMARY}:again.img")],
        "",
    );
    assert!(cluster.smapp_json_as(CLIENT2, &["grants"]).unwrap().is_empty());
    failed(
        &cluster,
        "operator",
        &["revoke", CLIENT2, "--primary", PRIMARY, "--object", "db1"],
        FailureCode::NotFound,
        "no grant",
    );
    cluster.stop();
}
