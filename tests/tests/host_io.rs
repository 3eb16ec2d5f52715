//! Host I/O through the primary node (issue 4, first part): the node
//! exports its volumes over NBD on loopback; real clients (`qemu-io`,
//! `qemu-img`) read and write them; every write marks the tracks it
//! touches in the volume's change map, durably, and a backup captures an
//! epoch of the map. The map survives a SIGKILL of the node.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use std::process::Command;
use std::time::Duration;

use dmc_tests::cluster::{Cluster, PRIMARY};
use dmc_tests::metrics;
use dmc_tests::scenario::{self, ScenarioSpec};
use primary_node::change_map::ChangeMap;

fn qemu_io(url: &str, cmd: &str) -> std::process::Output {
    Command::new("qemu-io")
        .args(["-f", "raw", url, "-c", cmd])
        .output()
        .expect("qemu-io (Debian package qemu-utils) must be installed")
}

/// A cluster over a 24 MiB scattered object whose primary node exports
/// NBD and streams backups at `rate` MB/s.
async fn slow_cluster(work: &std::path::Path, seed: u64, rate: &str) -> (scenario::Layout, u16, Cluster) {
    slow_cluster_with(work, seed, rate, &[]).await
}

/// [`slow_cluster`] with more primary-node arguments.
async fn slow_cluster_with(
    work: &std::path::Path,
    seed: u64,
    rate: &str,
    extra: &[&str],
) -> (scenario::Layout, u16, Cluster) {
    let spec = ScenarioSpec {
        object_size: 24 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed,
    };
    let layout = scenario::make_layout(&work.join("volumes"), &spec).unwrap();
    // A TCP port for the NBD export (a free UDP port may be taken for TCP).
    let port = dmc_tests::metrics::free_tcp_port().unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.pn_args = vec![
        "--nbd".into(),
        format!("127.0.0.1:{port}"),
        "--stream-rate".into(),
        rate.into(),
    ];
    cspec.pn_args.extend(extra.iter().map(|a| a.to_string()));
    // Registered with the station means its NBD export listens.
    let cluster = Cluster::start(work, &cspec).await.unwrap();
    (layout, port, cluster)
}

#[tokio::test(flavor = "multi_thread")]
async fn qemu_writes_through_nbd_and_the_change_map_remembers() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 13,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    // A TCP port for the NBD export (a free UDP port may be taken for TCP).
    let port = dmc_tests::metrics::free_tcp_port().unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.pn_args = vec!["--nbd".into(), format!("127.0.0.1:{port}")];
    // Registered with the station means its NBD export listens.
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let url = format!("nbd://127.0.0.1:{port}/vol0");
    let vol0 = layout.path_of("vol0");
    let size = std::fs::metadata(&vol0).unwrap().len();

    // qemu-img sees the volume's size.
    let info = Command::new("qemu-img")
        .args(["info", "--output=json", &url])
        .output()
        .unwrap();
    assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stderr));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["virtual-size"].as_u64(), Some(size));

    // A full backup of vol0 captures the current epoch.
    let out = cluster
        .smapp(&["backup", "--primary", PRIMARY, "--object", "vol0", "--volume", "vol0"])
        .unwrap();
    assert_eq!(out.last().unwrap()["result"], "backup");

    // qemu-io writes tracks 1 and 2 (64 KiB tracks) and reads them back.
    let w = qemu_io(&url, "write -P 0xab 65536 131072");
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    let r = qemu_io(&url, "read -P 0xab 65536 131072");
    assert!(r.status.success() && !String::from_utf8_lossy(&r.stdout).contains("Pattern verification failed"));
    let bad = qemu_io(&url, "read -P 0xcd 65536 4096");
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("Pattern verification failed"),
        "reads are real"
    );
    let bytes = std::fs::read(&vol0).unwrap();
    assert!(
        bytes[65536..196608].iter().all(|&b| b == 0xab),
        "the write reached the volume"
    );
    // An export that does not exist is refused.
    let missing = qemu_io(&format!("nbd://127.0.0.1:{port}/nope"), "read 0 512");
    assert!(!missing.status.success());

    // SIGKILL the node: the change map on disk says exactly tracks 1 and 2
    // changed since the backup.
    // (kill waits until the process is gone.)
    cluster.kill(PRIMARY).unwrap();
    let file = work.path().join("pn-state").join("vol0.changes");
    let (map, torn) = ChangeMap::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert!(torn.is_empty());
    let captured = map.epoch() - 1;
    assert_eq!(map.changed_since(captured), vec![1, 2]);
    assert_eq!(
        map.changed_since(captured - 1).len() as u64,
        map.tracks(),
        "before: unknown history"
    );

    // The node comes back with the same map and serves again.
    let before = cluster.boots().unwrap();
    cluster.restart(PRIMARY).unwrap();
    cluster
        .wait_registered(&[PRIMARY], &before, Duration::from_secs(30))
        .unwrap();
    let r = qemu_io(&url, "read -P 0xab 65536 131072");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let w = qemu_io(&url, "write -P 0x11 0 4096");
    assert!(w.status.success());
    cluster.stop();
    let (map2, _) = ChangeMap::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(map2.map_id(), map.map_id(), "the same map after the restart");
    assert_eq!(map2.changed_since(captured), vec![0, 1, 2]);
}

#[test]
fn nbd_refuses_a_non_loopback_address() {
    let out = Command::new(dmc_tests::cluster::bin("primary-node").unwrap())
        .args(["--name", "pn1", "--pki", "/nonexistent", "--station", "127.0.0.1:1"])
        .args(["--volume", "v=/dev/null", "--nbd", "0.0.0.0:10809"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}

/// Concurrent copy: a host keeps writing through NBD while a backup runs;
/// the restored object is exactly the volume as it was when the backup
/// started, never a mix.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_is_the_image_at_its_start_while_a_host_writes() {
    let work = tempfile::tempdir().unwrap();
    // Slow enough (about 8 s) for the host to write during the backup; the
    // node's metrics count the tracks it copied aside.
    let pn_metrics: std::net::SocketAddr = format!("127.0.0.1:{}", metrics::free_tcp_port().unwrap())
        .parse()
        .unwrap();
    let metrics_arg = pn_metrics.to_string();
    let (layout, port, mut cluster) = slow_cluster_with(work.path(), 17, "4", &["--metrics", &metrics_arg]).await;
    let url = format!("nbd://127.0.0.1:{port}/vol0");
    let vol0 = layout.path_of("vol0");
    let size = std::fs::metadata(&vol0).unwrap().len();
    let at_start = std::fs::read(&vol0).unwrap();

    let (result, writes) = std::thread::scope(|s| {
        let backup =
            s.spawn(|| cluster.smapp(&["backup", "--primary", PRIMARY, "--object", "live", "--volume", "vol0"]));
        // Once the snapshot is taken, the host writes all over the volume,
        // last tracks first (the backup reads them last), in rounds.
        // The channel writes only after the node captured its snapshot.
        dmc_tests::faults::wait_until(&cluster, "the backup to write", Duration::from_secs(30), |c| {
            dmc_tests::faults::latest_channel(c)
                .is_some_and(|ch| matches!(ch["state"].as_str(), Some("writing" | "closed")))
        });
        let mut writes = 0;
        for round in 0..4u64 {
            let mut cmds = Vec::new();
            for i in (0..16u64).rev() {
                let off = (size / 16) * i / 65536 * 65536 + round * 8192;
                cmds.push(format!("write -P {} {off} 8192", 0x40 + round * 16 + i));
                writes += 1;
            }
            let mut c = Command::new("qemu-io");
            c.args(["-f", "raw", &url]);
            for cmd in &cmds {
                c.args(["-c", cmd]);
            }
            let out = c.output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        (backup.join().unwrap(), writes)
    });
    let result = result.unwrap();
    let abs_id = result.last().unwrap()["abs_id"].as_u64().unwrap();
    let now = std::fs::read(&vol0).unwrap();
    assert_ne!(now, at_start, "the host's {writes} writes changed the volume");
    let copied = metrics::value(pn_metrics, "dmc_primary_side_copies_total").unwrap();
    assert!(copied > 0.0, "some writes hit tracks the backup had not read yet");

    let dest = cluster.restored("restored.bin");
    cluster
        .smapp(&["restore", &abs_id.to_string(), "--to-file", &cluster.to_file(&dest)])
        .unwrap();
    let restored = std::fs::read(&dest).unwrap();
    assert_eq!(restored.len(), at_start.len());
    let first_diff = restored.iter().zip(&at_start).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "the restored object is the volume at the backup's start"
    );
    cluster.stop();
}

/// A backup interrupted midway (its front-end SIGKILLed) stalls no host
/// write: writes to tracks it had not read go on landing (copied aside),
/// and once the station fails the channel the node drops the snapshot and
/// its side file.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_backup_stalls_no_host_write() {
    let work = tempfile::tempdir().unwrap();
    let (layout, port, mut cluster) = slow_cluster(work.path(), 23, "2").await;
    let url = format!("nbd://127.0.0.1:{port}/vol0");
    let size = std::fs::metadata(layout.path_of("vol0")).unwrap().len();
    let backup = {
        let args: Vec<String> = ["backup", "--primary", PRIMARY, "--object", "cut", "--volume", "vol0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let bin = dmc_tests::cluster::bin("smapp").unwrap();
        let pki = cluster.pki_of("client");
        let station = cluster.station.to_string();
        std::thread::spawn(move || {
            Command::new(bin)
                .args([
                    "--pki",
                    pki.to_str().unwrap(),
                    "--station",
                    &station,
                    "--name",
                    "client",
                ])
                .args(&args)
                .output()
                .unwrap()
        })
    };
    // Killed once the channel streams (bytes reached its front-end).
    dmc_tests::faults::wait_until(&cluster, "the backup to stream", Duration::from_secs(30), |c| {
        dmc_tests::faults::latest_channel(c)
            .is_some_and(|ch| ch["state"] == "writing" && ch["bytes"].as_u64().unwrap_or(0) > 0)
    });
    cluster.kill("fe1").unwrap();

    // The host writes all over the volume while the channel is broken:
    // every write returns promptly.
    for i in (0..16u64).rev() {
        let off = (size / 16) * i / 65536 * 65536;
        let t = std::time::Instant::now();
        let out = Command::new("timeout")
            .args([
                "20",
                "qemu-io",
                "-f",
                "raw",
                &url,
                "-c",
                &format!("write -P 7 {off} 65536"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "write at {off}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "write at {off} took {:?}",
            t.elapsed()
        );
    }
    let out = backup.join().unwrap();
    assert!(!out.status.success(), "the backup fails");
    // The station failed the channel; the node dropped the snapshot (its
    // side file goes with it).
    dmc_tests::faults::wait_until(
        &cluster,
        "the snapshot's side file to go",
        Duration::from_secs(60),
        |c| {
            std::fs::read_dir(c.work.join("pn-state"))
                .map(|d| {
                    d.flatten()
                        .all(|e| !e.file_name().to_string_lossy().starts_with("side-"))
                })
                .unwrap_or(false)
        },
    );
    let side: Vec<_> = std::fs::read_dir(work.path().join("pn-state"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("side-"))
        .collect();
    assert!(side.is_empty(), "no side file is left: {side:?}");
    let t = std::time::Instant::now();
    let w = qemu_io(&url, "write -P 8 0 65536");
    assert!(w.status.success() && t.elapsed() < Duration::from_secs(10));
    cluster.stop();
}

/// Issue 10, finding 8: side-file space is bounded per node. A backup
/// whose snapshot would need more than `--side-file-limit` fails with the
/// reason; the host's writes all land.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_side_file_fails_the_backup_not_the_host() {
    let work = tempfile::tempdir().unwrap();
    // Room for two track copies; the backup would run about 24 s (it
    // fails as soon as the third write needs a copy).
    let (layout, port, mut cluster) = slow_cluster_with(work.path(), 19, "1", &["--side-file-limit", "131072"]).await;
    let url = format!("nbd://127.0.0.1:{port}/vol0");
    let size = std::fs::metadata(layout.path_of("vol0")).unwrap().len();
    let (result, written) = std::thread::scope(|s| {
        let backup = s.spawn(|| {
            cluster.smapp_as(
                dmc_tests::cluster::CLIENT,
                &["backup", "--primary", PRIMARY, "--object", "full", "--volume", "vol0"],
            )
        });
        // Once the channel writes, the snapshot exists: write the last 8
        // tracks (the backup reads them last).
        dmc_tests::faults::wait_until(&cluster, "the backup to write", Duration::from_secs(60), |c| {
            c.operator(&["channels"])
                .unwrap_or_default()
                .iter()
                .any(|ch| ch["kind"] == "backup" && ch["state"] == "writing")
        });
        let mut c = Command::new("qemu-io");
        c.args(["-f", "raw", &url]);
        let mut written = Vec::new();
        for i in 1..=8u64 {
            let off = (size / 65536 - i) * 65536;
            c.args(["-c", &format!("write -P 0x5a {off} 65536")]);
            written.push(off);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "a host write failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (backup.join().unwrap().unwrap(), written)
    });
    assert!(
        !result.status.success(),
        "the backup completed without its image: {}",
        String::from_utf8_lossy(&result.stdout)
    );
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(err.contains("--side-file-limit"), "{err}");
    let now = std::fs::read(layout.path_of("vol0")).unwrap();
    for off in written {
        assert!(now[off as usize..off as usize + 65536].iter().all(|&b| b == 0x5a));
    }
    cluster.stop();
}
