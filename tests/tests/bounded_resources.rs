//! Issue 10, finding 6: an authenticated client cannot make the station
//! hold unbounded memory. It may open only a few streams per connection;
//! a request that does not arrive whole in time is dropped; the station's
//! memory stays bounded while the attack runs, and an honest client's
//! backup and restore complete meanwhile.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use std::time::{Duration, Instant};

use dmc_tests::cluster::{peak_rss_kib, Cluster, ClusterSpec, CLIENT2, PRIMARY, STATION};
use dmc_tests::fixture;
use futures::FutureExt;
use proto::wire::MAX_CONTROL_FRAME;
use transport::{Identity, Role};

/// Peak RSS the station may reach while attacked: its usual ~45 MiB, plus
/// what the attack can make it hold (4 connections x 8 streams x the 1 MiB
/// each sends) with room to spare.
const STATION_RSS_BOUND_KIB: u64 = 160 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn slow_huge_requests_are_bounded_dropped_and_honest_work_goes_on() {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("vol0.img");
    fixture::make_volume(&vol, 4 << 20, 9).unwrap();
    let spec = ClusterSpec::new(vec![("vol0".into(), vol.clone())], 4096, 65536, 1 << 20);
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();
    let station_pid = cluster.pids().into_iter().find(|(n, _)| n == STATION).unwrap().1;

    let id = Identity::load(&cluster.pki_of(CLIENT2), CLIENT2).unwrap();
    let mut streams: Vec<(quinn::SendStream, quinn::RecvStream)> = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..4 {
        let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &id).unwrap();
        let (conn, _) = transport::connect(&ep, cluster.station, STATION, Role::Station)
            .await
            .unwrap();
        for _ in 0..transport::MAX_BIDI_STREAMS {
            let (mut send, recv) = conn.open_bi().await.unwrap();
            // A frame announced at the limit, 1 MiB of it sent, the rest never.
            send.write_all(&(MAX_CONTROL_FRAME as u32).to_be_bytes()).await.unwrap();
            send.write_all(&vec![0u8; 1 << 20]).await.unwrap();
            streams.push((send, recv));
        }
        // No more streams for a client on this connection.
        assert!(
            conn.open_bi().now_or_never().is_none(),
            "a client opened more than {} streams",
            transport::MAX_BIDI_STREAMS
        );
        connections.push((ep, conn));
    }

    // Honest work goes on meanwhile.
    let out = cluster
        .smapp(&["backup", "--primary", PRIMARY, "--object", "db1", "--volume", "vol0"])
        .unwrap();
    let abs_id = out.last().unwrap()["abs_id"].as_u64().unwrap();
    let dest = cluster.restored("db1.img");
    cluster
        .smapp(&["restore", &abs_id.to_string(), "--to-file", &cluster.to_file(&dest)])
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&vol).unwrap());

    // Every stalled request is dropped by the station within its timeout
    // (waiting on the protocol's STOP_SENDING, not on a clock).
    let deadline = Instant::now() + Duration::from_secs(60);
    for (send, _) in streams.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        let stopped = tokio::time::timeout(left, send.stopped()).await;
        assert!(
            matches!(stopped, Ok(Ok(Some(code))) if code == transport::codes::REFUSED),
            "a stalled request was kept: {stopped:?}"
        );
    }
    let peak = peak_rss_kib(station_pid).unwrap();
    assert!(
        peak < STATION_RSS_BOUND_KIB,
        "station peak RSS {peak} KiB, bound {STATION_RSS_BOUND_KIB} KiB"
    );
    drop(connections);
    cluster.stop();
}
