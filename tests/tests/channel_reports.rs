//! Issue 10, finding 3: a channel's reports are accepted only from its
//! participants. While a real backup runs, a rogue mover and a rogue
//! primary node (real certificates of those roles, taking part in nothing)
//! try to finish it, fail it, and place segments for it; a participant
//! tries to place a segment of another ABS. All are refused, and the backup
//! completes and restores byte-identical.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use dmc_tests::cluster::{bin, Cluster, ClusterSpec, CLIENT, FE, PRIMARY, ROGUE_MOVER, ROGUE_NODE, STATION};
use dmc_tests::{fixture, metrics};
use proto::domain::{AbsId, ChannelId, Failure, FailureCode};
use proto::wire::{
    BackEndReply, BackEndRequest, SegmentPlacement, StationReply, StationRequest, TrackAck, TrackStreamOpen,
    MAX_CONTROL_FRAME, MAX_DATA_FRAME,
};
use transport::{Identity, Role};

/// Send one request to the station with `name`'s certificate; the reply.
async fn ask(cluster: &Cluster, name: &str, req: &StationRequest) -> StationReply {
    let id = Identity::load(&cluster.pki_of(name), name).unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &id).unwrap();
    let (conn, _) = transport::connect(&ep, cluster.station, STATION, Role::Station)
        .await
        .unwrap();
    let (mut s, mut r) = transport::open_bi(&conn, MAX_CONTROL_FRAME).await.unwrap();
    s.send(req).await.unwrap();
    r.recv::<StationReply>().await.unwrap().unwrap()
}

/// `name`'s request is refused (its code), and the message says why
/// (`words`: which check refused it, for the operator reading it).
async fn refused(cluster: &Cluster, name: &str, req: &StationRequest, words: &str) {
    match ask(cluster, name, req).await {
        StationReply::Error(failure) => {
            assert_eq!(failure.code, FailureCode::Refused, "{name} {req:?}: {failure:?}");
            assert!(failure.message.contains(words), "{name} {req:?}: {failure:?}");
        }
        other => panic!("{name} {req:?} was accepted: {other:?}"),
    }
}

/// A loopback address for a back-end's `--metrics`.
fn free_metrics_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], metrics::free_tcp_port().unwrap()))
}

/// A cluster over a 16 MiB volume whose node streams at 4 MB/s, and a
/// backup of it (about four seconds) whose channel is writing, its
/// back-end serving metrics at `be_metrics`: the
/// cluster, the running `smapp backup`, the volume, channel and ABS ids.
// The child is handed to the caller, which waits for it.
#[allow(clippy::zombie_processes)]
async fn writing_backup(
    work: &std::path::Path,
    seed: u64,
    be_metrics: SocketAddr,
) -> (Cluster, std::process::Child, std::path::PathBuf, ChannelId, AbsId) {
    let vol = work.join("vol0.img");
    fixture::make_volume(&vol, 16 << 20, seed).unwrap();
    let mut spec = ClusterSpec::new(vec![("vol0".into(), vol.clone())], 4096, 65536, 1 << 20);
    spec.pn_args = vec!["--stream-rate".into(), "4".into()];
    spec.station_metrics = true;
    spec.be_args = vec!["--metrics".into(), be_metrics.to_string()];
    let cluster = Cluster::start(work, &spec).await.unwrap();
    let mut backup = Command::new(bin("smapp").unwrap())
        .args(["--station", &cluster.station.to_string(), "--name", CLIENT, "--json"])
        .arg("--pki")
        .arg(cluster.pki_of(CLIENT))
        .args(["backup", "--primary", PRIMARY, "--object", "db1", "--volume", "vol0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (on the catalog, not on time) until its channel is writing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let chans = cluster.operator(&["channels"]).unwrap();
        if let Some(c) = chans.iter().find(|c| c["kind"] == "backup" && c["state"] == "writing") {
            let (channel_id, abs_id) = (
                ChannelId::new(c["channel_id"].as_u64().unwrap()),
                AbsId::new(c["abs_id"].as_u64().unwrap()),
            );
            return (cluster, backup, vol, channel_id, abs_id);
        }
        if Instant::now() >= deadline {
            let _ = backup.kill();
            let _ = backup.wait();
            panic!("no backup channel started writing: {chans:?}");
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_channels_participants_report_on_it() {
    let work = tempfile::tempdir().unwrap();
    let be_metrics = free_metrics_addr();
    let (mut cluster, backup, vol, channel_id, abs_id) = writing_backup(work.path(), 5, be_metrics).await;

    let finish = StationRequest::ChannelFinished {
        channel_id,
        data_bytes: 0,
        tracks: 0,
        segments: 0,
    };
    let fail = StationRequest::ChannelFailed {
        channel_id,
        failure: Failure::internal("rogue"),
    };
    let progress = StationRequest::ChannelProgress {
        channel_id,
        bytes: 1 << 40,
        tracks: 0,
    };
    let placement = |abs_id| SegmentPlacement {
        channel_id,
        abs_id,
        seq: proto::domain::SegmentSeq::new(0),
        tape_label: "DM0001".into(),
        tape_file: 1,
        bytes: 1,
        data_bytes: 1,
        track_count: 1,
        crc32c: 0,
    };
    let metadata = StationRequest::MetadataPlaced {
        channel_id,
        abs_id,
        tape_label: "DM0001".into(),
        tape_file: 1,
        bytes: 1,
    };
    for req in [&finish, &fail, &progress, &metadata] {
        refused(&cluster, ROGUE_MOVER, req, "takes no part").await;
    }
    refused(
        &cluster,
        ROGUE_MOVER,
        &StationRequest::SegmentPlaced(placement(abs_id)),
        "takes no part",
    )
    .await;
    for req in [&finish, &fail, &progress] {
        refused(&cluster, ROGUE_NODE, req, "takes no part").await;
    }
    // A participant may not place a segment of another ABS.
    refused(
        &cluster,
        FE,
        &StationRequest::SegmentPlaced(placement(AbsId::new(abs_id.get() + 100))),
        "not ABS",
    )
    .await;

    // The front-end gives the channel's stream only to its node with the
    // channel's token: a rogue node guessing is refused, and the channel
    // stays for its owner (the backup below completes).
    let fe_addr = cluster.mover_address(FE).unwrap().unwrap().parse().unwrap();
    let rogue_node = Identity::load(&cluster.pki_of(ROGUE_NODE), ROGUE_NODE).unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &rogue_node).unwrap();
    let (conn, _) = transport::connect(&ep, fe_addr, FE, Role::Mover).await.unwrap();
    let (mut s, mut r) = transport::open_bi(&conn, MAX_DATA_FRAME).await.unwrap();
    s.send(&TrackStreamOpen::Restore {
        channel_id,
        token: [0; 16],
    })
    .await
    .unwrap();
    match r.recv::<TrackAck>().await.unwrap() {
        Some(TrackAck::Failed(failure)) => {
            assert_eq!(failure.code, FailureCode::Refused, "{failure:?}");
            assert!(failure.message.contains("with that token"), "{failure:?}");
        }
        other => panic!("a rogue node opened channel {channel_id}: {other:?}"),
    }
    // Nor a backup stream, new or resumed (as after a front-end restart).
    for resume in [false, true] {
        let (mut s, mut r) = transport::open_bi(&conn, MAX_DATA_FRAME).await.unwrap();
        s.send(&TrackStreamOpen::Backup {
            channel_id,
            abs_id,
            window: 1,
            token: [0; 16],
            resume,
        })
        .await
        .unwrap();
        match r.recv::<TrackAck>().await.unwrap() {
            Some(TrackAck::Failed(failure)) => {
                assert_eq!(failure.code, FailureCode::Refused, "{failure:?}");
                assert!(failure.message.contains("backup channel"), "{failure:?}");
            }
            other => panic!("a rogue node took backup channel {channel_id} (resume {resume}): {other:?}"),
        }
    }

    // A back-end serves only its own front-ends: a rogue mover is cut off
    // before it can ask for anything.
    let be_addr = cluster.mover_address("be1").unwrap().unwrap().parse().unwrap();
    let rogue = Identity::load(&cluster.pki_of(ROGUE_MOVER), ROGUE_MOVER).unwrap();
    let ep = transport::bind("127.0.0.1:0".parse().unwrap(), &rogue).unwrap();
    let (conn, _) = transport::connect(&ep, be_addr, "be1", Role::Mover).await.unwrap();
    let answered = async {
        let (mut s, mut r) = transport::open_bi(&conn, MAX_DATA_FRAME).await?;
        s.send(&BackEndRequest::Pair {
            token_name: ".pair-00000000000000000000000000000000".into(),
            token: vec![0; 32],
        })
        .await?;
        r.recv::<BackEndReply>().await
    }
    .await;
    assert!(
        !matches!(answered, Ok(Some(_))),
        "be1 answered a rogue mover: {answered:?}"
    );

    // The backup was not disturbed: it completes, and restores identical.
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dest = cluster.restored("db1.img");
    cluster
        .smapp(&["restore", &abs_id.to_string(), "--to-file", &cluster.to_file(&dest)])
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&vol).unwrap());
    // The refusals are counted where an operator's monitoring sees them.
    let station_metrics = cluster.station_metrics.expect("the station serves its metrics");
    let refusals = metrics::value(station_metrics, "dmc_station_requests_refused_total").unwrap();
    assert!(refusals >= 8.0, "the station counted {refusals} refusals");
    assert_eq!(
        metrics::value(be_metrics, "dmc_mover_peers_refused_total").unwrap(),
        1.0,
        "be1 counted the rogue mover it cut off"
    );
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_report_completes_nothing_that_is_not_on_tape() {
    let work = tempfile::tempdir().unwrap();
    let (mut cluster, backup, _, channel_id, abs_id) = writing_backup(work.path(), 6, free_metrics_addr()).await;
    // Its own front-end (a participant) claims the ABS finished, with every
    // track, while most of it is not on tape yet.
    let placed = u32::try_from(
        cluster
            .operator(&["list", "segments", "--abs", &abs_id.to_string()])
            .unwrap()
            .len(),
    )
    .unwrap();
    let reply = ask(
        &cluster,
        FE,
        &StationRequest::ChannelFinished {
            channel_id,
            data_bytes: 16 << 20,
            tracks: 256,
            segments: placed,
        },
    )
    .await;
    assert!(matches!(reply, StationReply::Ok), "{reply:?}");
    let out = backup.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the backup completed on a report alone");
    // The station's check found the report false: the catalog and the
    // tape disagree with it.
    assert_eq!(
        out.status.code(),
        Some(i32::from(FailureCode::Corrupt.exit_status())),
        "{err}"
    );
    assert!(
        err.contains("incomplete") || err.contains("segments but the catalog has"),
        "{err}"
    );
    let abs = cluster.operator(&["list", "abs"]).unwrap();
    let row = abs.iter().find(|a| a["abs_id"] == abs_id.get()).unwrap();
    assert!(row["state"].is_string() && row["state"] != "complete", "{row}");
    let out = cluster.refused_restore_status(abs_id.get(), &format!("{PRIMARY}:db1.img"), &[]);
    assert_eq!(out.0, Some(i32::from(FailureCode::Refused.exit_status())), "{}", out.1);
    assert!(out.1.contains("not complete"), "{}", out.1);
    cluster.stop();
}
