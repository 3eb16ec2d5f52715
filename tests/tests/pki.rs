//! Issue 10, finding 5: a PKI an operator can run. The CA key lives only
//! in its own directory; each process reads only its own; a revoked
//! certificate stops working, live connections included; a renewed one
//! keeps working.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use dmc_tests::cluster::{bin, Cluster, ClusterSpec, CLIENT, CLIENT2, STATION};
use dmc_tests::{fixture, metrics};
use proto::wire::{StationReply, StationRequest, MAX_CONTROL_FRAME};
use transport::{Identity, Role};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn pki(args: &[&str]) {
    let out = Command::new(bin("control-station").unwrap())
        .arg("pki")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pki {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_process_holds_only_its_own_keys_and_revocation_cuts_a_peer_off() {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("vol0.img");
    fixture::make_volume(&vol, 1 << 20, 1).unwrap();
    let mut spec = ClusterSpec::new(vec![("vol0".into(), vol)], 4096, 65536, 1 << 20);
    spec.station_metrics = true;
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();
    let station_metrics = cluster.station_metrics.expect("the station serves its metrics");

    // The layout: the CA alone in pki/ca (0700); every component in its
    // own 0700 directory with its key (0600), its certificate and the CA
    // certificate, and no other key.
    let ca = cluster.pki.join("ca");
    assert_eq!(mode(&ca), 0o700);
    assert!(ca.join("ca.key").exists());
    for entry in std::fs::read_dir(&cluster.pki).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "ca" {
            continue;
        }
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut expected = ["ca.crt".to_string(), format!("{name}.crt"), format!("{name}.key")];
        expected.sort();
        assert_eq!(files, expected);
        assert_eq!(mode(&dir.join(format!("{name}.key"))), 0o600);
    }

    // client2 holds a live connection and can ask the station.
    let id = Identity::load(&cluster.pki_of(CLIENT2), CLIENT2).unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &id).unwrap();
    let (conn, _) = transport::connect(&ep, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    let ask = |conn: quinn::Connection| async move {
        let (mut s, mut r) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await?;
        s.send(&StationRequest::ListGrants).await?;
        r.recv::<StationReply>().await
    };
    assert!(matches!(ask(conn.clone()).await, Ok(Some(StationReply::Grants(_)))));

    // Revoked, and the list published to the station: the live connection
    // is dropped, and new handshakes fail (waiting on the station's answer,
    // not on time).
    let ca_s = ca.to_string_lossy().into_owned();
    let station_dir = cluster.pki_of(STATION).to_string_lossy().into_owned();
    pki(&["revoke", CLIENT2, "--ca", &ca_s, "--publish", &station_dir]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask(conn.clone()).await.is_ok_and(|r| r.is_some()) {
        assert!(
            Instant::now() < deadline,
            "the station kept serving a revoked certificate"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(
        metrics::value(station_metrics, "dmc_station_revoked_connections_closed_total").unwrap(),
        1.0,
        "the station closed the revoked client's live connection"
    );
    let refused_before = metrics::value(station_metrics, "dmc_station_connections_refused_total").unwrap();
    let out = cluster.smapp_as(CLIENT2, &["grants"]).unwrap();
    assert!(!out.status.success(), "a revoked client got an answer");
    metrics::wait_at_least(
        station_metrics,
        "dmc_station_connections_refused_total",
        refused_before + 1.0,
        Duration::from_secs(30),
    )
    .expect("the station refused the revoked certificate's handshake");
    // Everyone else is served.
    cluster.smapp(&["list", "abs"]).unwrap();

    // Renewed: a new key and certificate, same role, still served.
    let client_dir = cluster.pki_of(CLIENT);
    let before = std::fs::read(client_dir.join("client.crt")).unwrap();
    pki(&["renew", CLIENT, "--ca", &ca_s, "--out", &client_dir.to_string_lossy()]);
    assert_ne!(std::fs::read(client_dir.join("client.crt")).unwrap(), before);
    cluster.smapp(&["list", "abs"]).unwrap();
    cluster.stop();
}
