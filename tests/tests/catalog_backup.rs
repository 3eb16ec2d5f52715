//! The catalog backs itself up (issue 13, seed 000 claim 12): `control-station
//! catalog backup --pool P` writes a consistent dump of the catalog database
//! through the movers onto a tape of catalog pool P, recorded like any ABS;
//! after the database is lost, `control-station catalog restore --from
//! IMAGE` rebuilds it from that tape alone: every ABS, tape and segment
//! listed as before, restores work, and new backups go on without reusing
//! an id or writing over the catalog backup.

use std::time::Duration;

use dmc_tests::cluster::{station_cli, Cluster, CLIENT, ROGUE_MOVER, STATION};
use dmc_tests::pg::TestDb;
use dmc_tests::scenario::{self, ScenarioSpec};
use proto::domain::{ChannelId, Failure, FailureCode};
use proto::wire::{StationReply, StationRequest, MAX_CONTROL_FRAME};
use serde_json::Value;
use transport::{Identity, Role};

/// Ask the station for the dump of channel 1 with `who`'s certificate:
/// the failure it answers.
async fn fetch_dump_as(cluster: &Cluster, who: &str) -> Failure {
    let id = Identity::load(&cluster.pki_of(who), who).unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &id).unwrap();
    let (conn, _) = transport::connect(&ep, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await.unwrap();
    let req = StationRequest::FetchDump {
        channel_id: ChannelId::new(1),
    };
    send.send(&req).await.unwrap();
    send.finish().await.unwrap();
    match recv.recv::<StationReply>().await {
        Ok(Some(StationReply::Error(f))) => f,
        other => panic!("{who} asking for a dump: expected a refusal, got {other:?}"),
    }
}

/// What an operator sees of the catalog: every ABS, tape and segment.
fn listings(cluster: &Cluster) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (
        cluster.operator(&["list", "abs"]).unwrap(),
        cluster.operator(&["library", "list"]).unwrap(),
        cluster.operator(&["list", "segments"]).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_backup_then_lost_database_then_restore_from_tape() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 1312,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cluster = Cluster::start(work.path(), &scenario::cluster_spec(&layout, &spec))
        .await
        .unwrap();
    let first = scenario::backup(&cluster, &layout).unwrap();
    let second = scenario::backup(&cluster, &layout).unwrap();

    // The catalog backup: through the movers, onto a tape of its own pool.
    let station = cluster.station.to_string();
    let operator_pki = cluster.pki_of("operator");
    let pki = operator_pki.to_string_lossy().to_string();
    let backup_args = [
        "catalog",
        "backup",
        "--pool",
        "vault-db",
        "--station",
        &station,
        "--pki",
        &pki,
        "--name",
        "operator",
    ];
    let (ok, out, err) = station_cli(&backup_args);
    assert!(ok, "catalog backup failed: {err}");
    assert!(out.contains("catalog backed up"), "{out}");
    let (abs, tapes, segments) = listings(&cluster);
    let catalog_abs = abs
        .iter()
        .find(|a| a["object"] == "catalog")
        .unwrap_or_else(|| panic!("no catalog backup ABS in {abs:?}"));
    assert_eq!(catalog_abs["primary"], "@station");
    assert_eq!(catalog_abs["state"], "complete");
    assert_eq!(catalog_abs["pool"], "vault-db");
    assert_eq!(catalog_abs["label"], "catalog backup");
    assert_eq!(catalog_abs["uuid"].as_str().unwrap().len(), 36, "{catalog_abs}");
    let catalog_tapes: Vec<String> = serde_json::from_value(catalog_abs["tapes"].clone()).unwrap();
    assert_eq!(catalog_tapes.len(), 1, "{catalog_abs}");
    let catalog_tape = &catalog_tapes[0];
    let tape = tapes.iter().find(|t| t["label"] == catalog_tape.as_str()).unwrap();
    assert_eq!(
        tape["pool"], "vault-db",
        "the catalog backup's tape is in its pool: {tape}"
    );
    for b in [&first, &second] {
        assert!(
            !b.tapes.contains(catalog_tape),
            "backups and the catalog backup share no tape"
        );
    }
    // The dump goes to the front-end of a running catalog backup only: a
    // mover asking for another channel's gets nothing, a client may not ask.
    for (who, code) in [(ROGUE_MOVER, FailureCode::NotFound), (CLIENT, FailureCode::Refused)] {
        let failure = fetch_dump_as(&cluster, who).await;
        assert_eq!(failure.code, code, "{who}: {failure:?}");
    }
    // The catalog pool takes catalog backups only.
    let err = format!(
        "{:#}",
        cluster
            .smapp(&[
                "backup",
                "--primary",
                dmc_tests::cluster::PRIMARY,
                "--object",
                "x",
                "--extents",
                &layout.extents_file.to_string_lossy(),
                "--pool",
                "vault-db",
            ])
            .unwrap_err()
    );
    assert!(err.contains("vault-db is a catalog pool"), "{err}");

    // The database is lost.
    cluster.lose_catalog().await.unwrap();

    // Restored from the tape alone.
    let image = cluster.library.join(format!("{catalog_tape}.tap"));
    let image = image.to_string_lossy().to_string();
    let url = cluster.db.url().to_string();
    let (ok, out, err) = station_cli(&["catalog", "restore", "--from", &image, "--database-url", &url]);
    assert!(ok, "catalog restore failed: {err}");
    assert!(out.contains("catalog restored from ABS"), "{out}");
    // Only into an empty database.
    let (ok, _, err) = station_cli(&["catalog", "restore", "--from", &image, "--database-url", &url]);
    assert!(!ok);
    assert!(err.contains("is not empty"), "{err}");
    // A tape without a catalog backup is refused, naming it.
    let other = cluster.library.join(format!("{}.tap", first.tapes[0]));
    let scratch_db = TestDb::new().await;
    let (ok, _, err) = station_cli(&[
        "catalog",
        "restore",
        "--from",
        &other.to_string_lossy(),
        "--database-url",
        scratch_db.url(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("no catalog backup on") && err.contains(&first.tapes[0]),
        "{err}"
    );

    // The station starts on the restored catalog: everything as it was.
    let peers: Vec<String> = ["pn1", "fe1", "be1"].iter().map(|s| s.to_string()).collect();
    cluster.restart(STATION).unwrap();
    let names: Vec<&str> = peers.iter().map(String::as_str).collect();
    cluster.wait_registered(&names, &[], Duration::from_secs(60)).unwrap();
    let (abs_after, tapes_after, segments_after) = listings(&cluster);
    // The catalog backup's own ABS is known from its tape: its management
    // record gives its UUID, client, label and times.
    assert_eq!(abs_after, abs, "ABSs after the catalog restore");
    assert_eq!(tapes_after, tapes, "tapes after the catalog restore");
    assert_eq!(segments_after, segments, "segments after the catalog restore");

    // A restore works, byte-identical.
    let file = cluster.restored("after-catalog-restore");
    scenario::restore_to_file(&cluster, second.abs_id, &file).unwrap();
    scenario::verify_file(&layout, &file).unwrap();
    // New backups go on: a new id, never on the catalog backup's tape.
    let third = scenario::backup(&cluster, &layout).unwrap();
    let catalog_id = catalog_abs["abs_id"].as_u64().unwrap();
    assert!(third.abs_id > catalog_id, "ABS {} reuses an id", third.abs_id);
    assert!(!third.tapes.contains(catalog_tape), "{:?}", third.tapes);
    // And the catalog backs up again, onto another tape of its pool.
    let (ok, _, err) = station_cli(&backup_args);
    assert!(ok, "second catalog backup failed: {err}");
    let abs_now = cluster.operator(&["list", "abs"]).unwrap();
    let backups: Vec<&Value> = abs_now.iter().filter(|a| a["object"] == "catalog").collect();
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert_ne!(backups[1]["tapes"], backups[0]["tapes"]);
}
