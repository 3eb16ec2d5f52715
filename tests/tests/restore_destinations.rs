//! Issue 10, finding 1: a restore into a file writes only where the primary
//! node allows — a plain name in its own `--restore-dir`. A client (even
//! one that bypasses `smapp` and sends the request itself) cannot make the
//! node write a path of its choosing, follow a planted symlink, overwrite
//! an existing file without asking, or write a served volume behind its
//! change map.

use std::time::Duration;

use dmc_tests::cluster::{Cluster, ClusterSpec, CLIENT, PRIMARY, STATION};
use dmc_tests::fixture;
use proto::domain::{AbsId, FailureCode};
use proto::wire::{ChannelEvent, RestoreTarget, StationReply, StationRequest, MAX_CONTROL_FRAME};
use transport::{Identity, Role};

async fn cluster_with_backup(work: &std::path::Path) -> (Cluster, u64, Vec<u8>) {
    let vol = work.join("vol0.img");
    fixture::make_volume(&vol, 2 << 20, 3).unwrap();
    let spec = ClusterSpec::new(vec![("vol0".into(), vol.clone())], 4096, 65536, 1 << 20);
    let cluster = Cluster::start(work, &spec).await.unwrap();
    let out = cluster
        .smapp(&["backup", "--primary", PRIMARY, "--object", "db1", "--volume", "vol0"])
        .unwrap();
    let abs_id = out.last().unwrap()["abs_id"].as_u64().unwrap();
    let image = std::fs::read(&vol).unwrap();
    (cluster, abs_id, image)
}

/// Send a restore request as the client would, without `smapp`'s own
/// checks; returns the final event.
async fn raw_restore(cluster: &Cluster, abs_id: u64, name: &str) -> ChannelEvent {
    let client = Identity::load(&cluster.pki_of(CLIENT), CLIENT).unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &client).unwrap();
    let (conn, _) = transport::connect(&ep, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    let (mut s, mut r) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await.unwrap();
    s.send(&StationRequest::Restore {
        abs_id: AbsId::new(abs_id),
        target: RestoreTarget::File {
            primary: PRIMARY.into(),
            name: name.into(),
            replace: true,
        },
        drives: 1,
    })
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), r.recv::<StationReply>())
            .await
            .unwrap()
        {
            Ok(Some(StationReply::Event(ev @ (ChannelEvent::Failed { .. } | ChannelEvent::Finished { .. })))) => {
                return ev
            }
            Ok(Some(StationReply::Error(failure))) => return ChannelEvent::Failed(failure),
            Ok(Some(_)) => continue,
            other => panic!("restore request: {other:?}"),
        }
    }
}

/// The restore failed with `code`; its message says why (`words`, what
/// the user reads).
fn failed_with(ev: &ChannelEvent, code: FailureCode, words: &str) {
    match ev {
        ChannelEvent::Failed(failure) => {
            assert_eq!(failure.code, code, "{failure:?}");
            assert!(failure.message.contains(words), "{failure:?}");
        }
        other => panic!("expected a refusal ({code}: {words}), got {other:?}"),
    }
}

/// smapp's exit status for a failure of `code`.
fn status(code: FailureCode) -> Option<i32> {
    Some(i32::from(code.exit_status()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_writes_only_a_new_file_in_the_nodes_restore_directory() {
    let work = tempfile::tempdir().unwrap();
    let (mut cluster, abs_id, image) = cluster_with_backup(work.path()).await;
    let outside = work.path().join("outside.txt");
    std::fs::write(&outside, b"not yours").unwrap();

    // Paths instead of names: refused before anything is written, even when
    // the client sends the request itself.
    for bad in [
        outside.to_string_lossy().into_owned(),
        "../outside.txt".to_string(),
        "sub/dir.img".to_string(),
        "..".to_string(),
    ] {
        failed_with(
            &raw_restore(&cluster, abs_id, &bad).await,
            FailureCode::Invalid,
            "not a path",
        );
    }
    let (code, err) = cluster.refused_restore_status(abs_id, &format!("{PRIMARY}:/etc/cron.d/x"), &[]);
    assert_eq!(code, status(FailureCode::Invalid), "{err}");
    assert!(err.contains("not a path"), "{err}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");

    // A symlink planted in the restore directory is not followed, with or
    // without --replace.
    std::os::unix::fs::symlink(&outside, cluster.restored("planted.img")).unwrap();
    failed_with(
        &raw_restore(&cluster, abs_id, "planted.img").await,
        FailureCode::Refused,
        "symlinks are not followed",
    );
    let (code, err) = cluster.refused_restore_status(abs_id, &format!("{PRIMARY}:planted.img"), &[]);
    assert_eq!(code, status(FailureCode::Conflict), "{err}");
    assert!(err.contains("--replace"), "the message says how to overwrite: {err}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");

    // A served volume, reached through a hard link in the directory, is
    // never a file target (it changes only through host writes).
    let vol = work.path().join("vol0.img");
    std::fs::hard_link(&vol, cluster.restored("alias.img")).unwrap();
    failed_with(
        &raw_restore(&cluster, abs_id, "alias.img").await,
        FailureCode::Refused,
        "served volumes",
    );
    assert_eq!(std::fs::read(&vol).unwrap(), image);

    // An existing file is kept unless --replace is given; then replaced.
    let existing = cluster.restored("db1.img");
    std::fs::write(&existing, b"yesterday's copy").unwrap();
    let (code, err) = cluster.refused_restore_status(abs_id, &cluster.to_file(&existing), &[]);
    assert_eq!(code, status(FailureCode::Conflict), "{err}");
    assert!(err.contains("--replace"), "{err}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"yesterday's copy");
    cluster
        .smapp(&[
            "restore",
            &abs_id.to_string(),
            "--to-file",
            &cluster.to_file(&existing),
            "--replace",
        ])
        .unwrap();
    assert_eq!(std::fs::read(&existing).unwrap(), image);

    // A new name is created, readable only by the node's user.
    let fresh = cluster.restored("fresh.img");
    cluster
        .smapp(&["restore", &abs_id.to_string(), "--to-file", &cluster.to_file(&fresh)])
        .unwrap();
    assert_eq!(std::fs::read(&fresh).unwrap(), image);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
    cluster.stop();
}
