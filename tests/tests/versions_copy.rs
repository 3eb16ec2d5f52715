//! Copy versions made and used (issue 15, seed 004 FIG. 6 and the version
//! chronology of its Appendix A): a source pool of volumes on two primary
//! nodes, two target pools, `--keep 2`. Versions V1…V5 rotate through the
//! target pools while `qemu-io` writes to the sources during every copy;
//! after each, exactly the two newest versions are kept and each copies
//! back byte-identical to the sources as they were at its point in time.
//! A source added before V3 gets a new pair there; one removed before V4
//! has its pair broken. A version onto targets that hold an earlier one
//! copies only the tracks changed since (exactly those), whole otherwise.
//! Target volumes are read-only to hosts and keep their version record
//! across a node restart; a version no target is large enough for is
//! refused before anything is copied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dmc_tests::cluster::{bin, free_port, station_cli, Cluster, ClusterSpec, ExtraNode, STATION};
use dmc_tests::faults::wait_until;
use dmc_tests::metrics::{free_tcp_port, scrape, value_in};
use proto::domain::FailureCode;
use serde_json::Value;
use std::net::SocketAddr;

const MIB: u64 = 1 << 20;
const TRACK_SIZE: u32 = 65536;
const TRACK: u64 = TRACK_SIZE as u64;
const SIZE: u64 = 4 * MIB;
const SET: &str = "nightly";

fn volume(dir: &Path, name: &str, size: u64) -> (String, PathBuf) {
    let path = dir.join(format!("{name}.img"));
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    (name.to_string(), path)
}

/// A target volume exposing `size` bytes (its management region after them).
fn target(dir: &Path, name: &str, size: u64) -> (String, PathBuf) {
    volume(dir, name, size + proto::region::REGION_BYTES as u64)
}

/// A source volume: where it is and which node exports it.
struct Source {
    key: &'static str,
    path: PathBuf,
    nbd: u16,
    /// Every write made to it through NBD: (sequence number, track).
    writes: Vec<(u64, u64)>,
}

impl Source {
    fn name(&self) -> &str {
        self.key.split_once(':').unwrap().1
    }
}

/// Host writes through the node's NBD export with `qemu-io`: 4 KiB of
/// `pattern` at each track's offset `at` within the track. Records them.
fn host_writes(s: &mut Source, seq: &mut u64, tracks: &[u64], at: u64, pattern: u8) {
    let url = format!("nbd://127.0.0.1:{}/{}", s.nbd, s.name());
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw", &url]);
    for t in tracks {
        cmd.args(["-c", &format!("write -P {pattern} {} 4096", t * TRACK + at)]);
    }
    let out = cmd
        .output()
        .expect("qemu-io (Debian package qemu-utils) must be installed");
    assert!(
        out.status.success(),
        "qemu-io: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for &t in tracks {
        s.writes.push((*seq, t));
        *seq += 1;
    }
}

/// The set's records as `versions list SET --json` shows them.
fn records(cluster: &Cluster) -> Vec<Value> {
    let sets = cluster.operator(&["versions", "list", SET]).unwrap();
    sets[0]["records"].as_array().unwrap().clone()
}

fn find<'a>(records: &'a [Value], version: u64, kind: &str) -> Option<&'a Value> {
    records.iter().find(|r| r["version"] == version && r["kind"] == kind)
}

/// (source, target, bytes copied, base version) of a record's pairs.
fn pairs(r: &Value) -> Vec<(String, String, u64, u64)> {
    r["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["source"].as_str().unwrap().to_string(),
                p["target"].as_str().unwrap().to_string(),
                p["bytes_copied"].as_u64().unwrap(),
                p["base_version"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Start `smapp versions run SET` as the operator.
fn start_run(cluster: &Cluster) -> std::process::Child {
    Command::new(bin("smapp").unwrap())
        .args([
            "--station",
            &cluster.station.to_string(),
            "--name",
            "operator",
            "--json",
        ])
        .arg("--pki")
        .arg(cluster.pki_of("operator"))
        .args(["versions", "run", SET])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Copy version `v` of `source` back onto the data volume `to` (at
/// `to_path`); returns what it holds now.
fn copy_back(cluster: &Cluster, v: u64, source: &str, to: &str, to_path: &Path) -> Vec<u8> {
    let version = format!("{SET}@{v}");
    let out = cluster
        .operator(&["restore", "--version", &version, "--volume", source, "--to", to])
        .unwrap();
    assert_eq!(out[0]["bytes"], SIZE, "{out:?}");
    let mut bytes = std::fs::read(to_path).unwrap();
    bytes.truncate(usize::try_from(SIZE).unwrap());
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_rotate_keep_two_copy_changed_tracks_and_restore_byte_identical() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("volumes");
    std::fs::create_dir_all(&dir).unwrap();
    let (nbd1, nbd2) = (free_port().unwrap(), free_port().unwrap());
    let metrics1: SocketAddr = format!("127.0.0.1:{}", free_tcp_port().unwrap()).parse().unwrap();
    let metrics2: SocketAddr = format!("127.0.0.1:{}", free_tcp_port().unwrap()).parse().unwrap();
    // Copies send at most 4 MB/s per stream: a whole volume takes about a
    // second, long enough for hosts to write during it.
    let node_args = |port: u16, metrics: SocketAddr| {
        vec![
            "--nbd".to_string(),
            format!("127.0.0.1:{port}"),
            "--stream-rate".to_string(),
            "4".to_string(),
            "--metrics".to_string(),
            metrics.to_string(),
        ]
    };
    let mut spec = ClusterSpec::new(
        vec![
            volume(&dir, "s1", SIZE),
            volume(&dir, "s2", SIZE),
            volume(&dir, "back1", SIZE),
        ],
        4096,
        TRACK_SIZE,
        MIB,
    );
    spec.pn_args = node_args(nbd1, metrics1);
    spec.target_volumes = vec![
        target(&dir, "ta3", SIZE),
        target(&dir, "tb1", SIZE),
        target(&dir, "tb2", SIZE),
        target(&dir, "tb4", SIZE),
    ];
    spec.extra_nodes = vec![ExtraNode {
        name: "pn2".to_string(),
        volumes: vec![
            volume(&dir, "s3", SIZE),
            volume(&dir, "s4", SIZE),
            volume(&dir, "big", 2 * SIZE),
            volume(&dir, "back2", SIZE),
        ],
        target_volumes: vec![
            target(&dir, "ta1", SIZE),
            target(&dir, "ta2", SIZE),
            target(&dir, "ta4", SIZE),
            target(&dir, "tb3", SIZE),
        ],
        args: node_args(nbd2, metrics2),
    }];
    // Some contents before any host writes.
    for (i, name) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
        let bytes: Vec<u8> = (0..SIZE).map(|b| (b / 4096 + i as u64 * 7).to_le_bytes()[0]).collect();
        std::fs::write(dir.join(format!("{name}.img")), bytes).unwrap();
    }
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();
    define_set(&cluster, "pn1:s1,pn1:s2,pn2:s3");
    let op = |args: &[&str]| cluster.operator(args).unwrap();

    let img = |n: &str| dir.join(format!("{n}.img"));
    let mut sources: BTreeMap<&str, Source> = [("pn1:s1", nbd1), ("pn1:s2", nbd1), ("pn2:s3", nbd2), ("pn2:s4", nbd2)]
        .into_iter()
        .map(|(key, nbd)| {
            let name = key.split_once(':').unwrap().1;
            (
                key,
                Source {
                    key,
                    path: img(name),
                    nbd,
                    writes: Vec::new(),
                },
            )
        })
        .collect();
    let mut seq = 0u64;
    // The sources as they were at each version's point in time.
    let mut reference: BTreeMap<u64, BTreeMap<&str, Vec<u8>>> = BTreeMap::new();
    // Write sequence number at each version's start: writes from it on
    // are after the version's point in time.
    let mut pit_seq: BTreeMap<u64, u64> = BTreeMap::new();
    let mut in_pool: BTreeSet<&str> = ["pn1:s1", "pn1:s2", "pn2:s3"].into_iter().collect();

    for v in 1..=5u64 {
        // Between versions the pool changes (seed 004 FIG. 8).
        if v == 3 {
            op(&["vpool", "add", "prod", "--volumes", "pn2:s4"]);
            in_pool.insert("pn2:s4");
        }
        if v == 4 {
            op(&["vpool", "remove", "prod", "--volumes", "pn1:s2"]);
            in_pool.remove("pn1:s2");
        }
        // Hosts write, then the sources are what version v must hold.
        for key in &in_pool {
            let s = sources.get_mut(key).unwrap();
            let tracks: Vec<u64> = (0..6).map(|i| (v * 5 + i * 9) % 64).collect();
            host_writes(s, &mut seq, &tracks, 0, u8::try_from(0x10 + v).unwrap());
        }
        let refs = in_pool
            .iter()
            .map(|k| (*k, std::fs::read(&sources[k].path).unwrap()))
            .collect();
        reference.insert(v, refs);
        pit_seq.insert(v, seq);

        // The version is made while hosts go on writing: once its point in
        // time is taken, they overwrite tracks it copies (and others).
        let run = start_run(&cluster);
        wait_until(&cluster, "the version's point in time", Duration::from_secs(60), |c| {
            let r = records(c);
            find(&r, v, "copy").is_some_and(|c| !c["point_in_time_ms"].is_null())
                || find(&r, v, "replication").is_some()
        });
        for key in &in_pool {
            let s = sources.get_mut(key).unwrap();
            let tracks: Vec<u64> = (0..6).map(|i| (v * 5 + i * 9) % 64).chain([63 - v]).collect();
            host_writes(s, &mut seq, &tracks, 2048, u8::try_from(0xe0 + v).unwrap());
        }
        let out = tokio::task::block_in_place(|| run.wait_with_output()).unwrap();
        assert!(
            out.status.success(),
            "versions run V{v}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.log_tails()
        );

        // Exactly the two newest versions are kept, each complete.
        let recs = records(&cluster);
        let kept: Vec<u64> = recs
            .iter()
            .filter(|r| r["kind"] == "replication")
            .map(|r| r["version"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = (v.saturating_sub(1).max(1)..=v).collect();
        assert_eq!(kept, want, "after V{v}: {recs:?}");
        let made = find(&recs, v, "replication").unwrap();
        assert_eq!(made["state"], "complete");
        assert_eq!(made["target_pool"], if v % 2 == 1 { "ta" } else { "tb" });
        assert!(
            find(&recs, v, "copy").is_none(),
            "the copy record became the replication record"
        );
        assert!(
            find(&recs, v + 1, "pre_pairing").is_some(),
            "the next version is pre-paired: {recs:?}"
        );

        // Each pair copied only what it had to: whole onto a target that
        // held nothing of its source, else exactly the tracks written since
        // the target's version.
        let made_pairs = pairs(made);
        let srcs: BTreeSet<&str> = made_pairs.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            srcs,
            in_pool.iter().map(|s| &**s).collect(),
            "V{v}: one pair per source"
        );
        for (src, tgt, bytes, base) in &made_pairs {
            if *base == 0 {
                assert_eq!(*bytes, SIZE, "V{v} {src} -> {tgt} copied whole");
                continue;
            }
            assert_eq!(*base, v - 2, "V{v} {src} -> {tgt}: its target held V{}", v - 2);
            // Written after the target's version's point in time and before
            // this one's.
            let changed: BTreeSet<u64> = sources[src.as_str()]
                .writes
                .iter()
                .filter(|(n, _)| (pit_seq[base]..pit_seq[&v]).contains(n))
                .map(|(_, t)| *t)
                .collect();
            assert_eq!(
                *bytes,
                changed.len() as u64 * TRACK,
                "V{v} {src} -> {tgt}: only the tracks changed since V{base} ({changed:?})"
            );
            assert!(*bytes < SIZE / 2, "changed tracks only");
        }
        let total: u64 = made_pairs.iter().map(|p| p.2).sum();
        assert_eq!(made["bytes_copied"], total);

        // Every kept version copies back byte-identical to the sources at
        // its point in time.
        for kept_v in &want {
            for (src, _, _, _) in pairs(find(&recs, *kept_v, "replication").unwrap()) {
                let (to, to_path) = if src.starts_with("pn1:") {
                    ("pn1:back1", img("back1"))
                } else {
                    ("pn2:back2", img("back2"))
                };
                let got = copy_back(&cluster, *kept_v, &src, to, &to_path);
                assert!(
                    got == reference[kept_v][src.as_str()],
                    "V{kept_v} of {src} copied back differs from the source at its point in time"
                );
            }
        }
    }

    // The pool changes show in the records: s4 paired from V3 on, s2's
    // pair broken at V4 with its target freed.
    let recs = records(&cluster);
    let v5 = find(&recs, 5, "replication").unwrap();
    assert!(
        pairs(v5)
            .iter()
            .any(|p| p.0 == "pn2:s4" && p.1 == "pn2:ta4" && p.3 == 3),
        "{v5}"
    );
    assert!(pairs(v5).iter().all(|p| p.0 != "pn1:s2"));
    let v4 = find(&recs, 4, "replication").unwrap();
    let v4_s4 = pairs(v4).into_iter().find(|p| p.0 == "pn2:s4").unwrap();
    assert_eq!((v4_s4.2, v4_s4.3), (SIZE, 0), "s4 first reached tb at V4: whole");

    // Target volumes are read-only to hosts (exported for inspection).
    let url = format!("nbd://127.0.0.1:{nbd2}/ta1");
    let w = Command::new("qemu-io")
        .args(["-f", "raw", &url, "-c", "write -P 1 0 4096"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&w.stderr)
    );
    assert!(
        !w.status.success() || said.contains("ermission") || said.contains("read-only") || said.contains("Read-only"),
        "{said}"
    );
    let r = Command::new("qemu-io")
        .args(["-r", "-f", "raw", &url, "-c", "read -P 0 0 4096"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    // Copied back onto the source itself.
    let s1 = sources["pn1:s1"].path.clone();
    let out = cluster
        .operator(&["versions", "restore", &format!("{SET}@5"), "--volume", "pn1:s1"])
        .unwrap();
    assert_eq!(out[0]["destination"], "pn1:s1");
    assert!(std::fs::read(&s1).unwrap() == reference[&5]["pn1:s1"]);

    // A node restart: its targets still say which version they hold.
    let before = cluster.boots().unwrap();
    cluster.restart("pn2").unwrap();
    cluster
        .wait_registered(&["pn2"], &before, Duration::from_secs(30))
        .unwrap();
    let pools = cluster.operator(&["vpool", "list"]).unwrap();
    let ta = pools.iter().find(|p| p["vpool"] == "ta").unwrap();
    let holds: BTreeMap<String, String> = ta["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["volume"].as_str().unwrap().to_string(),
                v["holds"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(holds["pn2:ta1"], format!("{SET} V5 (pn1:s1)"));
    assert_eq!(holds["pn2:ta4"], format!("{SET} V5 (pn2:s4)"));

    // A backup to tape from V5 reads pn2's target, not the production
    // volume: pn1's read counters do not move, the target's grows by the
    // object, and the ABS restores byte-identical to the version.
    let read = |addr: SocketAddr, volume: &str| volume_reads(&scrape(addr).unwrap(), volume);
    let pn1_before = value_in(&scrape(metrics1).unwrap(), "dmc_primary_volume_read_bytes_total");
    let ta1_before = read(metrics2, "ta1");
    let v5 = format!("{SET}@5");
    let backup_from_v5 = |level: &str| {
        cluster.smapp(&[
            "backup",
            "--primary",
            "pn1",
            "--object",
            "s1-from-v5",
            "--volume",
            "s1",
            "--level",
            level,
            "--from-version",
            &v5,
        ])
    };
    let out = backup_from_v5("full").unwrap();
    let done = out.last().unwrap();
    let abs_id = done["abs_id"].as_u64().unwrap();
    assert_eq!(
        value_in(&scrape(metrics1).unwrap(), "dmc_primary_volume_read_bytes_total"),
        pn1_before,
        "the production volumes were not read"
    );
    assert_eq!(
        read(metrics2, "ta1") - ta1_before,
        SIZE as f64,
        "the version's target was read"
    );
    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    let abs = listed.iter().find(|a| a["abs_id"] == abs_id).unwrap();
    assert_eq!(abs["from_version"], format!("{SET}@5"));
    let v5_at = find(&records(&cluster), 5, "replication").unwrap()["point_in_time_ms"]
        .as_u64()
        .unwrap();
    let pit = chrono::NaiveDateTime::parse_from_str(abs["point_in_time"].as_str().unwrap(), "%Y-%m-%d %H:%M:%S%.3f")
        .unwrap()
        .and_utc()
        .timestamp_millis();
    assert_eq!(
        u64::try_from(pit).unwrap(),
        v5_at,
        "the ABS's point in time is the version's"
    );
    let dest = cluster.restored("s1-v5.img");
    cluster
        .smapp(&["restore", &abs_id.to_string(), "--to-file", &cluster.to_file(&dest)])
        .unwrap();
    assert!(
        std::fs::read(&dest).unwrap() == reference[&5]["pn1:s1"],
        "the ABS is version 5 of s1"
    );
    // Only a full backup reads a version.
    let err = backup_from_v5("incremental").unwrap_err().to_string();
    assert!(err.contains("full backup"), "{err}");

    // A source too large for any free target: the next version is refused
    // before anything is copied, with the reason in its record.
    cluster
        .operator(&["vpool", "add", "prod", "--volumes", "pn2:big"])
        .unwrap();
    let err = cluster.operator_fails(&["versions", "run", SET], FailureCode::Refused);
    assert!(err.contains("pn2:big"), "{err}");
    let recs = records(&cluster);
    let refused = find(&recs, 6, "copy").unwrap();
    assert_eq!(refused["state"], "refused");
    assert!(refused["reason"].as_str().unwrap().contains("pn2:big"), "{refused}");
    assert_eq!(
        recs.iter().filter(|r| r["kind"] == "replication").count(),
        2,
        "the kept versions are untouched"
    );

    // The catalog is lost and rebuilt from the tapes (which carry no
    // versions). Once the operator defines the pools and the set again,
    // the kept versions come back from their targets' management regions.
    cluster.lose_catalog().await.unwrap();
    let library = cluster.library.to_string_lossy().to_string();
    let url = cluster.db.url().to_string();
    let (ok, out, err) = station_cli(&["catalog", "rebuild", "--library", &library, "--database-url", &url]);
    assert!(ok, "catalog rebuild: {out}{err}");
    cluster.restart(STATION).unwrap();
    cluster
        .wait_registered(&["pn1", "pn2", "fe1", "be1"], &[], Duration::from_secs(60))
        .unwrap();
    cluster_operator_fails_not_found(&cluster);
    define_set(&cluster, "pn1:s1,pn2:s3,pn2:s4");
    let op = |args: &[&str]| cluster.operator(args).unwrap();
    let recs = records(&cluster);
    let back: Vec<u64> = recs
        .iter()
        .filter(|r| r["kind"] == "replication" && r["state"] == "complete")
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        back,
        [4, 5],
        "the two kept versions, not V3 (ta2 still names it): {recs:?}"
    );
    let v5 = find(&recs, 5, "replication").unwrap();
    assert!(v5["reason"].as_str().unwrap().starts_with("recovered"), "{v5}");
    let mut v5_pairs: Vec<(String, String)> = pairs(v5).into_iter().map(|p| (p.0, p.1)).collect();
    v5_pairs.sort();
    assert_eq!(
        v5_pairs,
        [
            ("pn1:s1".to_string(), "pn2:ta1".to_string()),
            ("pn2:s3".to_string(), "pn1:ta3".to_string()),
            ("pn2:s4".to_string(), "pn2:ta4".to_string())
        ]
    );
    assert_eq!(v5["point_in_time_ms"].as_u64().unwrap(), v5_at);
    let got = copy_back(&cluster, 5, "pn2:s3", "pn2:back2", &img("back2"));
    assert!(got == reference[&5]["pn2:s3"], "the recovered V5 copies back as it was");
    // The next version goes on from them: whole copies (what the copies
    // captured of the sources was lost with the catalog).
    op(&["versions", "run", SET]);
    let recs = records(&cluster);
    let v6 = find(&recs, 6, "replication").unwrap();
    assert_eq!(v6["target_pool"], "tb");
    assert!(pairs(v6).iter().all(|p| p.2 == SIZE && p.3 == 0), "{v6}");
    cluster.stop();
}

/// After a catalog loss the set is unknown until defined again.
fn cluster_operator_fails_not_found(cluster: &Cluster) {
    let err = cluster.operator_fails(&["versions", "list", SET], FailureCode::NotFound);
    assert!(err.contains(SET), "{err}");
}

/// Bytes read from `volume` in a primary node's metrics exposition.
fn volume_reads(text: &str, volume: &str) -> f64 {
    let name = format!("dmc_primary_volume_read_bytes_total{{volume=\"{volume}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The source pool `prod` of `sources`, target pools `ta` and `tb` (each
/// with targets on both nodes), and the set copying `prod` onto them in
/// turn, keeping 2.
fn define_set(cluster: &Cluster, sources: &str) {
    let op = |args: &[&str]| cluster.operator(args).unwrap();
    op(&["vpool", "define", "prod", "--source", "--volumes", sources]);
    op(&[
        "vpool",
        "define",
        "ta",
        "--target",
        "--volumes",
        "pn2:ta1,pn2:ta2,pn1:ta3,pn2:ta4",
    ]);
    op(&[
        "vpool",
        "define",
        "tb",
        "--target",
        "--volumes",
        "pn1:tb1,pn1:tb2,pn2:tb3,pn1:tb4",
    ]);
    op(&[
        "versions",
        "define",
        SET,
        "--source",
        "prod",
        "--targets",
        "ta,tb",
        "--keep",
        "2",
    ]);
}

/// A version set's pre command runs on its host's agent before the point
/// in time (what it writes is in the version); a failing one fails the
/// version before anything is copied, with its output in the reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_sets_pre_command_runs_before_the_point_in_time_and_its_failure_copies_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("volumes");
    std::fs::create_dir_all(&dir).unwrap();
    let nbd = free_port().unwrap();
    let mut spec = ClusterSpec::new(
        vec![volume(&dir, "a", MIB), volume(&dir, "b", MIB)],
        4096,
        TRACK_SIZE,
        MIB,
    );
    spec.target_volumes = vec![target(&dir, "ta", MIB), target(&dir, "tb", MIB)];
    spec.pn_args = vec!["--nbd".into(), format!("127.0.0.1:{nbd}")];
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();
    cluster.start_agent("client", &work.path().join("agent")).unwrap();
    let op = |args: &[&str]| cluster.operator(args).unwrap();
    op(&["vpool", "define", "src", "--source", "--volumes", "pn1:a"]);
    op(&["vpool", "define", "t1", "--target", "--volumes", "pn1:ta"]);
    op(&["vpool", "define", "src2", "--source", "--volumes", "pn1:b"]);
    op(&["vpool", "define", "t2", "--target", "--volumes", "pn1:tb"]);
    // The pre command writes to the source as the host would (quiescing
    // flushes what it held): that write is in the version.
    let pre = format!("qemu-io -f raw nbd://127.0.0.1:{nbd}/a -c 'write -P 90 0 4096' && echo \"$DMC_DEFINITION $DMC_PHASE\" > quiesced");
    let sets = op(&[
        "versions",
        "define",
        "good",
        "--source",
        "src",
        "--targets",
        "t1",
        "--keep",
        "1",
        "--host",
        "client",
        "--pre",
        &pre,
    ]);
    assert_eq!(sets[0]["pre"]["host"], "client");
    let sets = op(&["versions", "run", "good"]);
    let made = sets[0]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "replication")
        .unwrap()
        .clone();
    assert!(made["reason"].as_str().unwrap().contains("pre command"), "{made}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("agent/quiesced"))
            .unwrap()
            .trim(),
        "good pre"
    );
    let ta = std::fs::read(dir.join("ta.img")).unwrap();
    assert_eq!(
        &ta[..4096],
        &[90u8; 4096][..],
        "the pre command's write is in the version"
    );

    op(&[
        "versions",
        "define",
        "bad",
        "--source",
        "src2",
        "--targets",
        "t2",
        "--keep",
        "1",
        "--host",
        "client",
        "--pre",
        "echo cannot quiesce; exit 3",
    ]);
    let err = cluster.operator_fails(&["versions", "run", "bad"], FailureCode::Refused);
    assert!(err.contains("exit status 3") && err.contains("cannot quiesce"), "{err}");
    let sets = op(&["versions", "list", "bad"]);
    let copy = &sets[0]["records"][0];
    assert_eq!(
        (copy["kind"].as_str(), copy["state"].as_str()),
        (Some("copy"), Some("failed")),
        "{copy}"
    );
    assert!(
        copy["reason"].as_str().unwrap().contains("nothing was copied"),
        "{copy}"
    );
    let pools = op(&["vpool", "list"]);
    let t2 = pools.iter().find(|p| p["vpool"] == "t2").unwrap();
    assert!(t2["volumes"][0]["holds"].is_null(), "{t2}");
    cluster.stop();
}
