//! Hostile or confused peers against the real control station process: no
//! certificate, malformed and oversized frames, a role asking for what it
//! may not. Each is refused (with a logged reason, and counted in the
//! station's metrics, which the test reads), and the station keeps serving
//! everyone else.

use std::sync::Arc;
use std::time::Duration;

use dmc_tests::cluster::{Cluster, ClusterSpec, STATION};
use dmc_tests::fixture;
use dmc_tests::metrics;
use proto::domain::FailureCode;
use proto::wire::{LogicalObject, StationReply, StationRequest, MAX_CONTROL_FRAME};
use transport::{Identity, Role};

async fn small_cluster(work: &std::path::Path) -> Cluster {
    let vol = work.join("vol0.img");
    fixture::make_volume(&vol, 4 << 20, 1).unwrap();
    let mut spec = ClusterSpec::new(vec![("vol0".into(), vol)], 4096, 65536, 1 << 20);
    spec.station_metrics = true;
    Cluster::start(work, &spec).await.unwrap()
}

fn catalog_still_answers(cluster: &Cluster) {
    let out = cluster.operator(&["list", "tapes"]);
    assert!(out.is_ok(), "the station stopped serving: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_peers_are_refused_and_the_station_keeps_serving() {
    let work = tempfile::tempdir().unwrap();
    let mut cluster = small_cluster(work.path()).await;
    let station_metrics = cluster.station_metrics.expect("the station serves its metrics");
    let client = Identity::load(&cluster.pki_of("client"), "client").unwrap();

    // 1. No client certificate: the handshake is refused, with a logged reason.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in client.ca_certs() {
        roots.add(ca.clone()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![transport::ALPN.to_vec()];
    let cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let usable = match ep.connect_with(cfg, cluster.station, STATION).unwrap().await {
        Err(_) => false,
        Ok(conn) => {
            // TLS 1.3 may let the client finish first; the station then closes it.
            match transport::open_bi(&conn, MAX_CONTROL_FRAME).await {
                Err(_) => false,
                Ok((mut s, mut r)) => {
                    let sent = s.send(&StationRequest::ListTapes).await.is_ok();
                    sent && matches!(
                        tokio::time::timeout(Duration::from_secs(5), r.recv::<StationReply>()).await,
                        Ok(Ok(Some(_)))
                    )
                }
            }
        }
    };
    assert!(!usable, "a client without a certificate got an answer");
    // The station counts the refused handshake (it may finish after the
    // client gave up on it).
    metrics::wait_at_least(
        station_metrics,
        "dmc_station_connections_refused_total",
        1.0,
        Duration::from_secs(10),
    )
    .unwrap();
    catalog_still_answers(&cluster);

    // 2. A malformed frame (valid length, garbage body) from an authenticated client.
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &client).unwrap();
    let (conn, _) = transport::connect(&ep, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await.unwrap();
    let mut frame = 64u32.to_be_bytes().to_vec();
    frame.extend([0xFFu8; 64]); // no StationRequest variant has tag 255
    send.stream_mut().write_all(&frame).await.unwrap();
    let _ = send.stream_mut().finish();
    match recv.recv::<StationReply>().await {
        Ok(Some(StationReply::Error(failure))) => assert_eq!(failure.code, FailureCode::Invalid, "{failure:?}"),
        other => panic!("expected an error reply to a malformed frame, got {other:?}"),
    }
    // Counted before the reply was sent.
    assert_eq!(
        metrics::value(station_metrics, "dmc_station_requests_malformed_total").unwrap(),
        1.0
    );

    // 3. An oversized frame: the station stops the stream (code 2) and goes on.
    let (mut send, mut recv) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await.unwrap();
    send.stream_mut()
        .write_all(&(512u32 << 20).to_be_bytes())
        .await
        .unwrap();
    // The station may stop the stream as soon as it has read the length, so
    // the rest of the frame either goes out or meets that same stop.
    let stopped = match send.stream_mut().write_all(&[0u8; 4096]).await {
        Err(quinn::WriteError::Stopped(code)) => Some(code),
        Err(e) => panic!("writing the oversized frame: {e}"),
        Ok(()) => tokio::time::timeout(Duration::from_secs(10), send.stopped())
            .await
            .unwrap()
            .unwrap(),
    };
    assert_eq!(
        stopped.map(|c| c.into_inner()),
        Some(transport::codes::FRAME_TOO_LARGE.into_inner())
    );
    let _ = recv.stop(transport::codes::DONE);
    catalog_still_answers(&cluster);

    // 4. A primary node may not start backups; a client may not register as a mover.
    let pn = Identity::load(&cluster.pki_of("pn1"), "pn1").unwrap();
    let ep2 = transport::bind("127.0.0.1:0".parse().unwrap(), &pn).unwrap();
    let (conn2, _) = transport::connect(&ep2, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    let (mut s, mut r) = transport::open_bi(&conn2, MAX_CONTROL_FRAME).await.unwrap();
    s.send(&StationRequest::Backup {
        drives: 1,
        object_name: "x".into(),
        primary: "pn1".into(),
        object: LogicalObject::Volume("vol0".into()),
        level: proto::domain::Level::Full,
        detach: false,
        pool: None,
        copy_to: None,
        label: String::new(),
        from_version: None,
    })
    .await
    .unwrap();
    match r.recv::<StationReply>().await.unwrap() {
        Some(StationReply::Error(failure)) => assert_eq!(failure.code, FailureCode::Refused, "{failure:?}"),
        other => panic!("a primary node started a backup: {other:?}"),
    }
    let (mut s, mut r) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await.unwrap();
    s.send(&StationRequest::RegisterMover {
        name: "client".into(),
        role: proto::wire::MoverRole::BackEnd,
        address: "127.0.0.1:1".into(),
        drives: vec!["evil".into()],
        back_end: None,
        boot: 1,
        channels: Vec::new(),
        version: "0".into(),
    })
    .await
    .unwrap();
    match r.recv::<StationReply>().await.unwrap() {
        Some(StationReply::Error(failure)) => assert_eq!(failure.code, FailureCode::Refused, "{failure:?}"),
        other => panic!("a client registered as a mover: {other:?}"),
    }
    // A mover certificate registering with a version no operator could
    // read (oversized) is refused before anything is recorded.
    let rogue = Identity::load(
        &cluster.pki_of(dmc_tests::cluster::ROGUE_MOVER),
        dmc_tests::cluster::ROGUE_MOVER,
    )
    .unwrap();
    let ep3 = transport::bind("127.0.0.1:0".parse().unwrap(), &rogue).unwrap();
    let (conn3, _) = transport::connect(&ep3, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    let (mut s, mut r) = transport::open_bi(&conn3, MAX_CONTROL_FRAME).await.unwrap();
    s.send(&StationRequest::RegisterMover {
        name: dmc_tests::cluster::ROGUE_MOVER.into(),
        role: proto::wire::MoverRole::BackEnd,
        address: "127.0.0.1:1".into(),
        drives: Vec::new(),
        back_end: None,
        boot: 1,
        channels: Vec::new(),
        version: "x".repeat(proto::wire::MAX_VERSION_TEXT + 1),
    })
    .await
    .unwrap();
    match r.recv::<StationReply>().await.unwrap() {
        Some(StationReply::Error(failure)) => assert_eq!(failure.code, FailureCode::Invalid, "{failure:?}"),
        other => panic!("an oversized version was registered: {other:?}"),
    }
    // Both refusals counted before their replies were sent.
    assert_eq!(
        metrics::value(station_metrics, "dmc_station_requests_refused_total").unwrap(),
        2.0
    );

    // The cluster still works end to end.
    let out = cluster
        .smapp(&["backup", "--primary", "pn1", "--object", "after", "--volume", "vol0"])
        .unwrap();
    assert_eq!(out.last().unwrap()["result"], "backup");

    // 5. A back-end gets no management record of an ABS it is not writing,
    // whatever tape and drive it names; and not too many at once.
    let abs_id = out.last().unwrap()["abs_id"].as_u64().unwrap();
    let tape = cluster.operator(&["list", "tapes"]).unwrap()[0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    let drive = cluster.operator(&["library", "list"]).unwrap()[0]["drives"][0]["name"]
        .as_str()
        .unwrap_or("d0")
        .to_string();
    let be = Identity::load(&cluster.pki_of("be1"), "be1").unwrap();
    let ep3 = transport::bind("127.0.0.1:0".parse().unwrap(), &be).unwrap();
    let (conn3, _) = transport::connect(&ep3, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    for (drive, n) in [(drive.as_str(), 1), ("no-such-drive", 1), (drive.as_str(), 5000)] {
        let (mut s, mut r) = transport::open_bi(&conn3, MAX_CONTROL_FRAME).await.unwrap();
        s.send(&StationRequest::TapeRecords {
            drive: drive.to_string(),
            tape_label: tape.clone(),
            abs_ids: vec![proto::domain::AbsId::new(abs_id); n],
        })
        .await
        .unwrap();
        match r.recv::<StationReply>().await.unwrap() {
            Some(StationReply::Error(failure)) if n > 1 => {
                assert_eq!(failure.code, FailureCode::Invalid, "{failure:?}")
            }
            Some(StationReply::Error(_)) => {}
            Some(StationReply::Records(records)) => assert!(records.is_empty(), "{records:?}"),
            other => panic!("asking for records of ABS {abs_id} on {tape} in {drive}: {other:?}"),
        }
    }
    catalog_still_answers(&cluster);
    cluster.stop();
}

/// A primary node takes connections only from primary nodes, and a copy
/// stream only when the station announced it from that node with its
/// capability: another node guessing a copy gets nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_node_takes_only_the_copies_the_station_announced() {
    use proto::wire::{TrackAck, TrackStreamOpen, MAX_DATA_FRAME};
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("vol0.img");
    fixture::make_volume(&vol, 4 << 20, 1).unwrap();
    let port = dmc_tests::cluster::free_port().unwrap();
    let mut spec = ClusterSpec::new(vec![("vol0".into(), vol.clone())], 4096, 65536, 1 << 20);
    spec.pn_args = vec!["--listen".into(), format!("127.0.0.1:{port}")];
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();
    let pn1: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let before = std::fs::read(&vol).unwrap();

    // A client (or a mover) is not a primary node: the connection is closed.
    let client = Identity::load(&cluster.pki_of("client"), "client").unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &client).unwrap();
    let (conn, _) = transport::connect(&ep, pn1, "pn1", Role::PrimaryNode).await.unwrap();
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, transport::codes::REFUSED);
            assert!(
                String::from_utf8_lossy(&c.reason).contains("primary nodes only"),
                "{c:?}"
            );
        }
        other => panic!("a client's connection to a primary node ended with {other:?}"),
    }

    // Another primary node guessing a copy: refused, nothing written.
    let rogue = Identity::load(&cluster.pki_of("pn9"), "pn9").unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &rogue).unwrap();
    let (conn, _) = transport::connect(&ep, pn1, "pn1", Role::PrimaryNode).await.unwrap();
    for open in [
        TrackStreamOpen::Copy {
            copy_id: proto::domain::ChannelId::new(4242),
            token: [7; 16],
            window: 8,
        },
        TrackStreamOpen::Restore {
            channel_id: proto::domain::ChannelId::new(4242),
            token: [7; 16],
        },
    ] {
        let (mut s, mut r) = transport::open_bi(&conn, MAX_DATA_FRAME).await.unwrap();
        s.send(&open).await.unwrap();
        match r.recv::<TrackAck>().await.unwrap() {
            Some(TrackAck::Failed(f)) => {
                assert!(matches!(f.code, FailureCode::NotFound | FailureCode::Invalid), "{f:?}")
            }
            other => panic!("{open:?} was answered {other:?}"),
        }
    }
    assert!(std::fs::read(&vol).unwrap() == before, "nothing written");
    catalog_still_answers(&cluster);
    cluster.stop();
}
