//! Issue 16: metrics worth graphing and logs one can follow a job through.
//!
//! A backup (with host writes through NBD while it runs) and a restore on
//! a cluster whose every process serves `/metrics` and logs JSON. Scraped
//! during the backup, the primary node already shows track
//! acknowledgement latencies; afterwards every histogram has samples in
//! its process (segment write, track ack, mount, restore time to first
//! byte, NBD write), beside per-drive throughput, spool bytes and queue
//! depths. The Grafana dashboard in `deploy/grafana/` refers only to
//! metrics these processes serve. Every process's JSON log has lines
//! carrying the backup's channel id.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dmc_tests::cluster::{bin, nbd_write, Cluster, ClusterSpec, CLIENT, PRIMARY};
use dmc_tests::{fixture, metrics};

fn addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], metrics::free_tcp_port().unwrap()))
}

/// The `_count` of histogram `name` (summed over its labels).
fn count(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}_count")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The metric names a scrape declares (`# TYPE name kind`).
fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// The metric names a dashboard's queries use (`dmc_…`, without the
/// `_bucket`/`_count`/`_sum` of a histogram's series).
fn dashboard_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("dmc_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                out.insert(base.to_string());
                rest = &tail[end..];
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_histogram_has_samples_and_the_dashboard_only_uses_real_metrics() {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("vol0.img");
    fixture::make_volume(&vol, 16 << 20, 21).unwrap();
    let (pn_metrics, be_metrics, fe_metrics) = (addr(), addr(), addr());
    let nbd_port = metrics::free_tcp_port().unwrap();
    let mut spec = ClusterSpec::new(vec![("vol0".into(), vol)], 4096, 65536, 1 << 20);
    spec.station_metrics = true;
    spec.mount_seconds = 0.2;
    let json = ["--log-format".to_string(), "json".to_string()];
    spec.station_args = json.to_vec();
    spec.pn_args = [
        "--stream-rate",
        "4",
        "--nbd",
        &format!("127.0.0.1:{nbd_port}"),
        "--metrics",
        &pn_metrics.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(json.iter().cloned())
    .collect();
    spec.be_args = ["--metrics".to_string(), be_metrics.to_string()]
        .into_iter()
        .chain(json.iter().cloned())
        .collect();
    spec.fe_args = ["--metrics".to_string(), fe_metrics.to_string()]
        .into_iter()
        .chain(json.iter().cloned())
        .collect();
    let cluster = Cluster::start(work.path(), &spec).await.unwrap();
    let station_metrics = cluster.station_metrics.unwrap();

    // A backup of four seconds; hosts write meanwhile.
    let backup = Command::new(bin("smapp").unwrap())
        .args(["--station", &cluster.station.to_string(), "--name", CLIENT, "--json"])
        .arg("--pki")
        .arg(cluster.pki_of(CLIENT))
        .args(["backup", "--primary", PRIMARY, "--object", "db1", "--volume", "vol0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let during = loop {
        let text = metrics::scrape(pn_metrics).unwrap();
        if count(&text, "dmc_primary_track_ack_seconds") > 0.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no track acknowledged during the backup:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for i in 0..8u64 {
        nbd_write(nbd_port, "vol0", i * (1 << 20), 0x5a);
    }
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let done = printed.last().unwrap();
    let abs_id = done["abs_id"].as_u64().unwrap();
    let channel_id = printed
        .iter()
        .find_map(|e| e["channel_id"].as_u64())
        .expect("the backup printed its channel");
    assert!(
        during.contains("dmc_primary_request_queue_tracks"),
        "queue depth served during the backup"
    );

    // A restore into a file: a read mount and a first byte.
    let dest = cluster.to_file(&cluster.restored("restored.img"));
    cluster
        .smapp(&["restore", &abs_id.to_string(), "--to-file", &dest])
        .unwrap();

    let station = metrics::scrape(station_metrics).unwrap();
    let pn = metrics::scrape(pn_metrics).unwrap();
    let be = metrics::scrape(be_metrics).unwrap();
    let fe = metrics::scrape(fe_metrics).unwrap();
    for (text, histogram) in [
        (&be, "dmc_be_segment_write_seconds"),
        (&pn, "dmc_primary_track_ack_seconds"),
        (&pn, "dmc_primary_nbd_write_seconds"),
        (&station, "dmc_station_mount_seconds"),
        (&station, "dmc_station_restore_first_byte_seconds"),
    ] {
        assert!(count(text, histogram) > 0.0, "{histogram} has no samples:\n{text}");
        assert!(
            text.contains(&format!("{histogram}_bucket{{")),
            "{histogram} is a histogram with buckets"
        );
    }
    assert!(station.contains("dmc_station_mount_seconds_count{purpose=\"write\"}"));
    assert!(station.contains("dmc_station_mount_seconds_count{purpose=\"read\"}"));
    assert!(metrics::value_in(&be, "dmc_be_drive_written_bytes_total{drive=\"drive0\"}") >= (16 << 20) as f64);
    assert!(metrics::value_in(&be, "dmc_be_drive_read_bytes_total{drive=\"drive0\"}") >= (16 << 20) as f64);
    for (text, gauge) in [
        (&fe, "dmc_mover_spool_bytes"),
        (&be, "dmc_be_queued_segments"),
        (&pn, "dmc_primary_request_queue_tracks"),
        (&station, "dmc_station_jobs_waiting"),
    ] {
        assert!(names(text).contains(gauge), "{gauge} is served:\n{text}");
    }
    assert_eq!(
        metrics::value_in(&pn, "dmc_primary_request_queue_tracks"),
        0.0,
        "every track left the queue"
    );
    assert_eq!(metrics::value_in(&station, "dmc_station_jobs_waiting"), 0.0);

    // The dashboard uses only what the processes serve.
    let served: BTreeSet<String> = [&station, &pn, &be, &fe].iter().flat_map(|t| names(t)).collect();
    let base: BTreeSet<String> = served
        .iter()
        .map(|n| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/dmc-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let used = dashboard_metrics(&dashboard);
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<_> = used.difference(&base).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics nobody serves: {missing:?}"
    );

    // One job, followed through every process's JSON log by its channel.
    let mut untraced = Vec::new();
    for name in ["station", "fe1", "be1", PRIMARY] {
        let log = cluster.log(name);
        let lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert!(!lines.is_empty(), "{name} logs JSON:\n{log}");
        let of_job = lines
            .iter()
            .filter(|l| {
                l["spans"].as_array().is_some_and(|spans| {
                    spans
                        .iter()
                        .any(|s| s["channel_id"].as_str() == Some(channel_id.to_string().as_str()))
                })
            })
            .count();
        if of_job == 0 {
            untraced.push(format!("{name}: no log line carries channel {channel_id}:\n{log}"));
        }
    }
    assert!(untraced.is_empty(), "{}", untraced.join("\n"));
}
