//! Copy storage pools (issue 13, seed 000): an operator defines a primary
//! pool and a copy pool attached to it; backups land in the primary pool;
//! `pool backup` copies every complete ABS tape to tape on the movers,
//! each primary tape mounted once, the copies written as ordinary,
//! self-describing segments and metadata on copy-pool tapes; a rerun
//! copies nothing, and after a fourth backup it copies just that one. The
//! catalog links every copy under its segment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dmc_tests::cluster::{station_cli, Cluster, PRIMARY, STATION};
use dmc_tests::scenario::{self, Layout, ScenarioSpec};
use proto::domain::FailureCode;
use serde_json::Value;

fn result(lines: Vec<Value>) -> Value {
    lines.into_iter().last().expect("a result line")
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_backup_copies_each_abs_once_tape_to_tape() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 8 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 13,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cs = scenario::cluster_spec(&layout, &spec);
    // One back-end with three drives: backups on two at once, then a copy
    // reads on one and writes on another.
    cs.drives_per_pair = vec![3];
    let cluster = Cluster::start(work.path(), &cs).await.unwrap();
    let op = |args: &[&str]| cluster.operator(args);
    let op_fails = |args: &[&str], code: FailureCode| cluster.operator_fails(args, code);

    // Pools: a primary pool and a copy pool attached to it.
    op(&["pool", "define", "onsite", "--kind", "primary"]).unwrap();
    let pools = op(&["pool", "define", "vault", "--kind", "copy", "--copies-of", "onsite"]).unwrap();
    let vault = pools.iter().find(|p| p["pool"] == "vault").unwrap();
    assert_eq!(vault["kind"], "copy");
    assert_eq!(vault["copies_of"], serde_json::json!(["onsite"]));
    let err = op_fails(&["pool", "define", "vault", "--kind", "primary"], FailureCode::Conflict);
    assert!(err.contains("exists as a copy pool"), "{err}");
    let err = op_fails(&["pool", "define", "lone", "--kind", "copy"], FailureCode::Invalid);
    assert!(err.contains("--copies-of"), "{err}");
    // A client may list pools, not define them or copy.
    assert!(cluster.smapp(&["pool", "list"]).is_ok());
    assert!(cluster.smapp(&["pool", "define", "x", "--kind", "primary"]).is_err());
    // Backups go to primary pools only.
    let extents = layout.extents_file.to_string_lossy().to_string();
    let backup = |extra: &[&str]| {
        let mut args = vec!["backup", "--primary", PRIMARY, "--object", "obj", "--extents", &extents];
        args.extend_from_slice(extra);
        cluster.smapp(&args)
    };
    let err = format!("{:#}", backup(&["--pool", "vault"]).unwrap_err());
    assert!(err.contains("vault is a copy pool"), "{err}");

    // Three backups to the primary pool, the first split over two drives
    // (two primary tapes).
    let mut abs_ids = Vec::new();
    for extra in [
        &["--pool", "onsite", "--drives", "2"][..],
        &["--pool", "onsite"],
        &["--pool", "onsite"],
    ] {
        abs_ids.push(result(backup(extra).unwrap())["abs_id"].as_u64().unwrap());
    }
    let tapes = op(&["library", "list"]).unwrap();
    let onsite: BTreeSet<String> = tapes
        .iter()
        .filter(|t| t["pool"] == "onsite")
        .map(|t| t["label"].as_str().unwrap().to_string())
        .collect();
    assert!(onsite.len() >= 2, "{tapes:?}");

    // A pool backup to the wrong pools is refused with the reason.
    let err = op_fails(&["pool", "backup", "onsite", "--to", "onsite"], FailureCode::Refused);
    assert!(err.contains("copy pool"), "{err}");
    op(&["pool", "define", "other", "--kind", "primary"]).unwrap();
    let err = op_fails(&["pool", "backup", "other", "--to", "vault"], FailureCode::Refused);
    assert!(err.contains("does not copy pool other"), "{err}");
    assert!(cluster.smapp(&["pool", "backup", "onsite", "--to", "vault"]).is_err());

    // The copy: all three, each primary tape mounted once.
    let copied = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(copied["abs"], 3, "{copied}");
    let read: Vec<String> = serde_json::from_value(copied["tapes_read"].clone()).unwrap();
    let read_set: BTreeSet<String> = read.iter().cloned().collect();
    assert_eq!(read.len(), read_set.len(), "a primary tape mounted twice: {read:?}");
    assert_eq!(read_set, onsite, "every primary tape read");
    let written: Vec<String> = serde_json::from_value(copied["tapes_written"].clone()).unwrap();
    let tapes = op(&["library", "list"]).unwrap();
    for label in &written {
        let t = tapes.iter().find(|t| t["label"] == label.as_str()).unwrap();
        assert_eq!(t["pool"], "vault", "{t}");
    }

    // The catalog links every copy: one copy pool per ABS, and under each
    // segment its primary copy and its copy, the same bytes.
    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    for id in &abs_ids {
        let a = listed.iter().find(|a| a["abs_id"] == *id).unwrap();
        assert_eq!(a["pool"], "onsite");
        assert_eq!(a["copy_pools"], serde_json::json!(["vault"]), "{a}");
        let segs = cluster.smapp(&["list", "segments", "--abs", &id.to_string()]).unwrap();
        let mut by_seq: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
        for s in &segs {
            by_seq.entry(s["seq"].as_u64().unwrap()).or_default().push(s);
        }
        assert_eq!(by_seq.len() as u64, a["segments"].as_u64().unwrap());
        for (seq, copies) in by_seq {
            assert_eq!(copies.len(), 2, "segment {seq} of ABS {id}: {copies:?}");
            assert_eq!(copies[0]["copy"], false);
            assert_eq!(copies[1]["copy"], true);
            assert_eq!(copies[1]["pool"], "vault");
            assert!(copies.iter().all(|c| c["status"] == "ok"));
            assert_eq!(copies[0]["crc32c"], copies[1]["crc32c"]);
            assert!(written.contains(&copies[1]["tape"].as_str().unwrap().to_string()));
        }
    }
    // The copy tapes describe themselves: every segment and the metadata
    // of each ABS, readable with no catalog.
    for label in &written {
        let files = cluster.tape_inspect(label).unwrap();
        assert!(!files.is_empty());
        let verify = std::process::Command::new(dmc_tests::cluster::bin("smapp").unwrap())
            .args(["tape", "verify"])
            .arg(cluster.library.join(format!("{label}.tap")))
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    }

    // Nothing new: nothing copied, and it says so.
    let again = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(
        (again["abs"].as_u64(), again["bytes"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(again["tapes_read"], serde_json::json!([]));

    // A fourth backup: the next run copies just it.
    let fourth = result(backup(&["--pool", "onsite"]).unwrap())["abs_id"]
        .as_u64()
        .unwrap();
    let next = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(next["abs"], 1, "{next}");
    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    let a = listed.iter().find(|a| a["abs_id"] == fourth).unwrap();
    assert_eq!(a["copies"], 1);
    assert_eq!(next["segments"], a["segments"]);

    // The primary copies still restore.
    let dest = cluster.restored("after-copy.bin");
    scenario::restore_and_verify(&cluster, &layout, fourth, &layout.extents, &dest).unwrap();

    // Every primary tape leaves the library: each ABS restores from its
    // copies, byte for byte, and the channel history names each segment
    // served from a copy. Exported is unavailable, not damaged.
    let offsite = work.path().join("offsite");
    for label in &onsite {
        op(&["library", "export", label, "--to", offsite.to_str().unwrap()]).unwrap();
    }
    let before: BTreeSet<u64> = channel_ids(&cluster);
    let dest = cluster.restored("from-copies.bin");
    let restored = scenario::restore_and_verify(&cluster, &layout, abs_ids[0], &layout.extents, &dest);
    restored.unwrap();
    let segments = listed.iter().find(|a| a["abs_id"] == abs_ids[0]).unwrap()["segments"]
        .as_u64()
        .unwrap();
    let mut served = 0;
    for id in channel_ids(&cluster).difference(&before) {
        let history = cluster.smapp(&["channels", &id.to_string()]).unwrap();
        for t in history[0]["transitions"].as_array().unwrap() {
            let reason = t["reason"].as_str().unwrap();
            served += reason
                .matches(&format!("of ABS {} served from copy on tape", abs_ids[0]))
                .count();
        }
    }
    assert_eq!(served as u64, segments, "every segment named as served from a copy");
    let segs = cluster
        .smapp(&["list", "segments", "--abs", &abs_ids[0].to_string()])
        .unwrap();
    assert!(segs.iter().all(|s| s["status"] == "ok"), "{segs:?}");
    let again = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(again["abs"], 0, "{again}");
}

/// A cluster of one back-end with `drives` drives (each at most `speed`
/// MB/s, 0: unlimited), primary pool `onsite` and copy pool `vault` of it.
async fn pooled(work: &Path, spec: &ScenarioSpec, drives: usize, speed: f64) -> (Layout, Cluster) {
    let layout = scenario::make_layout(&work.join("volumes"), spec).unwrap();
    let mut cs = scenario::cluster_spec(&layout, spec);
    cs.drives_per_pair = vec![drives];
    cs.drive_speed = speed;
    let cluster = Cluster::start(work, &cs).await.unwrap();
    cluster
        .operator(&["pool", "define", "onsite", "--kind", "primary"])
        .unwrap();
    cluster
        .operator(&["pool", "define", "vault", "--kind", "copy", "--copies-of", "onsite"])
        .unwrap();
    (layout, cluster)
}

/// The arguments of a backup of the layout's object to pool `onsite`.
fn onsite_backup(layout: &Layout, extra: &[&str]) -> Vec<String> {
    let extents = layout.extents_file.to_string_lossy().to_string();
    let mut args: Vec<String> = [
        "backup",
        "--primary",
        PRIMARY,
        "--object",
        "obj",
        "--extents",
        &extents,
        "--pool",
        "onsite",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Back up the layout's object to pool `onsite`; its ABS id.
fn backup_onsite(cluster: &Cluster, layout: &Layout, extra: &[&str]) -> u64 {
    let args = onsite_backup(layout, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    result(cluster.smapp(&args).unwrap())["abs_id"].as_u64().unwrap()
}

/// Every channel's id.
fn channel_ids(cluster: &Cluster) -> BTreeSet<u64> {
    cluster
        .smapp(&["channels"])
        .unwrap()
        .iter()
        .map(|c| c["channel_id"].as_u64().unwrap())
        .collect()
}

/// A flipped byte in a segment on a primary tape: `tape audit` finds it
/// and marks that copy damaged; a restore reads the segment from its copy
/// and completes byte for byte, its history naming the segment; the copy
/// stays healthy, so the next pool backup copies nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_audited_damage_is_restored_from_the_copy() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 29,
    };
    let (layout, cluster) = pooled(work.path(), &spec, 2, 0.0).await;
    let op = |args: &[&str]| cluster.operator(args);
    let abs_id = backup_onsite(&cluster, &layout, &[]);
    let copied = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(copied["abs"], 1, "{copied}");
    let copy_tape = copied["tapes_written"][0].as_str().unwrap().to_string();

    let segs = cluster
        .smapp(&["list", "segments", "--abs", &abs_id.to_string()])
        .unwrap();
    let primaries: Vec<&Value> = segs.iter().filter(|s| s["copy"] == false).collect();
    let victim = primaries.iter().min_by_key(|s| s["tape_file"].as_u64()).unwrap();
    let (tape, file, seq) = (
        victim["tape"].as_str().unwrap().to_string(),
        u32::try_from(victim["tape_file"].as_u64().unwrap()).unwrap(),
        victim["seq"].as_u64().unwrap(),
    );
    let image = cluster.library.join(format!("{tape}.tap"));
    let off = dmc_tests::fixture::simh_record_offset(&image, file, 1).unwrap();
    dmc_tests::fixture::flip_byte(&image, off).unwrap();

    // The audit reads every segment of the tape and marks the one.
    assert!(cluster.smapp(&["tape", "audit", &tape]).is_err(), "operators only");
    let report = op(&["tape", "audit", &tape]).unwrap();
    let found: Vec<&Value> = report.iter().filter(|l| l["damaged"] == true).collect();
    assert_eq!(found.len(), 1, "{report:?}");
    assert_eq!(found[0]["seq"].as_u64(), Some(seq));
    assert_eq!(found[0]["tape_file"].as_u64(), Some(u64::from(file)));
    assert_eq!(found[0]["copy"], false);
    let summary = report.last().unwrap();
    assert_eq!(
        summary["checked"].as_u64(),
        Some(primaries.iter().filter(|s| s["tape"] == tape.as_str()).count() as u64)
    );
    let segs = cluster
        .smapp(&["list", "segments", "--abs", &abs_id.to_string()])
        .unwrap();
    for s in &segs {
        let damaged = s["copy"] == false && s["seq"].as_u64() == Some(seq);
        assert_eq!(s["status"], if damaged { "damaged" } else { "ok" }, "{s}");
    }
    // The copy tape is healthy.
    let clean = result(op(&["tape", "audit", &copy_tape]).unwrap());
    assert_eq!(clean["damaged"], 0, "{clean}");

    // The restore reads that segment from the copy, byte for byte.
    let before = channel_ids(&cluster);
    let dest = cluster.restored("healed.bin");
    scenario::restore_and_verify(&cluster, &layout, abs_id, &layout.extents, &dest).unwrap();
    let needle = format!("segment {seq} of ABS {abs_id} served from copy on tape {copy_tape}");
    let named = channel_ids(&cluster).difference(&before).any(|id| {
        let history = cluster.smapp(&["channels", &id.to_string()]).unwrap();
        history[0]["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["reason"].as_str().unwrap().contains(&needle))
    });
    assert!(named, "no channel history names {needle:?}");
    // Its copy is healthy: nothing to copy again.
    let again = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(again["abs"], 0, "{again}");
}

/// A flipped byte in the middle of a primary tape, found only by the
/// restore: the back-end skips that segment and reads the rest of the
/// tape, the station marks it damaged and reads it from the copy tape, and
/// the restore completes byte for byte; its history names the segment.
#[tokio::test(flavor = "multi_thread")]
async fn a_segment_unreadable_mid_restore_is_read_from_the_copy() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 31,
    };
    let (layout, cluster) = pooled(work.path(), &spec, 2, 0.0).await;
    let op = |args: &[&str]| cluster.operator(args);
    let abs_id = backup_onsite(&cluster, &layout, &[]);
    let copied = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(copied["abs"], 1, "{copied}");
    let copy_tape = copied["tapes_written"][0].as_str().unwrap().to_string();

    // A byte of a segment between two others on the same primary tape.
    let segs = cluster
        .smapp(&["list", "segments", "--abs", &abs_id.to_string()])
        .unwrap();
    let mut primaries: Vec<&Value> = segs.iter().filter(|s| s["copy"] == false).collect();
    primaries.sort_by_key(|s| s["tape_file"].as_u64());
    assert!(primaries.len() >= 3, "{primaries:?}");
    let victim = primaries[primaries.len() / 2];
    let (tape, file, seq) = (
        victim["tape"].as_str().unwrap().to_string(),
        u32::try_from(victim["tape_file"].as_u64().unwrap()).unwrap(),
        victim["seq"].as_u64().unwrap(),
    );
    let image = cluster.library.join(format!("{tape}.tap"));
    let off = dmc_tests::fixture::simh_record_offset(&image, file, 1).unwrap();
    dmc_tests::fixture::flip_byte(&image, off).unwrap();

    let before = channel_ids(&cluster);
    let dest = cluster.restored("fallback.bin");
    scenario::restore_and_verify(&cluster, &layout, abs_id, &layout.extents, &dest).unwrap();
    let mut reasons = Vec::new();
    for id in channel_ids(&cluster).difference(&before) {
        let history = cluster.smapp(&["channels", &id.to_string()]).unwrap();
        for t in history[0]["transitions"].as_array().unwrap() {
            reasons.push(t["reason"].as_str().unwrap().to_string());
        }
    }
    let needle = format!("segment {seq} of ABS {abs_id} served from copy on tape {copy_tape}");
    assert!(
        reasons.iter().any(|r| r.contains(&needle)),
        "{needle:?} not in {reasons:?}"
    );
    // The primary tape was read once, the rest of it after the bad segment
    // too: only that segment came from the copy.
    let served: usize = reasons.iter().map(|r| r.matches("served from copy").count()).sum();
    assert_eq!(served, 1, "{reasons:?}");

    // The catalog knows: that primary copy damaged, everything else ok.
    let segs = cluster
        .smapp(&["list", "segments", "--abs", &abs_id.to_string()])
        .unwrap();
    for s in &segs {
        let damaged = s["copy"] == false && s["seq"].as_u64() == Some(seq);
        assert_eq!(s["status"], if damaged { "damaged" } else { "ok" }, "{s}");
    }
    // The copy is healthy: the next pool backup copies nothing.
    let again = result(op(&["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(again["abs"], 0, "{again}");
    // A second restore plans with the copy from the start, still whole.
    let dest = cluster.restored("fallback-again.bin");
    scenario::restore_and_verify(&cluster, &layout, abs_id, &layout.extents, &dest).unwrap();
}

/// `tape recover`: a primary tape is declared destroyed; its segments are
/// rewritten from the copy tapes onto new tapes of its pool (two drive
/// pairs), the catalog points at them, the new tapes verify, and with
/// every copy tape exported each ABS restores from primary tapes alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_primary_tape_is_recovered_from_its_copies() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 37,
    };
    let (layout, cluster) = pooled(work.path(), &spec, 4, 0.0).await;
    let op = |args: &[&str]| cluster.operator(args);
    let abs_ids: Vec<u64> = (0..2)
        .map(|_| backup_onsite(&cluster, &layout, &["--drives", "2"]))
        .collect();
    let copied = result(op(&["pool", "backup", "onsite", "--to", "vault", "--drives", "2"]).unwrap());
    assert_eq!(copied["abs"], 2, "{copied}");

    // The tape holding the first segment of the first ABS is lost.
    let segs = cluster
        .smapp(&["list", "segments", "--abs", &abs_ids[0].to_string()])
        .unwrap();
    let lost = segs.iter().find(|s| s["copy"] == false).unwrap()["tape"]
        .as_str()
        .unwrap()
        .to_string();
    let on_lost = |cluster: &Cluster| -> usize {
        abs_ids
            .iter()
            .map(|id| {
                cluster
                    .smapp(&["list", "segments", "--abs", &id.to_string()])
                    .unwrap()
                    .iter()
                    .filter(|s| s["copy"] == false && s["tape"] == lost.as_str())
                    .count()
            })
            .sum()
    };
    let lost_segments = on_lost(&cluster);
    assert!(lost_segments > 0);
    assert!(cluster.smapp(&["tape", "recover", &lost]).is_err(), "operators only");
    let report = result(op(&["tape", "recover", &lost, "--drives", "2"]).unwrap());
    assert_eq!(report["segments"].as_u64(), Some(lost_segments as u64), "{report}");
    let written: Vec<String> = serde_json::from_value(report["tapes_written"].clone()).unwrap();
    assert!(!written.is_empty() && !written.contains(&lost), "{report}");
    let tapes = op(&["library", "list"]).unwrap();
    let row = |label: &str| tapes.iter().find(|t| t["label"] == label).unwrap().clone();
    assert_eq!(row(&lost)["location"], "destroyed");
    for label in &written {
        assert_eq!(row(label)["pool"], "onsite");
        let verify = std::process::Command::new(dmc_tests::cluster::bin("smapp").unwrap())
            .args(["tape", "verify"])
            .arg(cluster.library.join(format!("{label}.tap")))
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    }
    // Nothing points at the lost tape; the copies stay linked.
    assert_eq!(on_lost(&cluster), 0);
    for id in &abs_ids {
        let segs = cluster.smapp(&["list", "segments", "--abs", &id.to_string()]).unwrap();
        assert!(segs.iter().all(|s| s["status"] == "ok"), "{segs:?}");
        let copies = segs.iter().filter(|s| s["copy"] == true).count();
        assert_eq!(copies * 2, segs.len(), "{segs:?}");
    }
    // Again: nothing left to recover.
    let again = result(op(&["tape", "recover", &lost]).unwrap());
    assert_eq!(again["segments"], 0, "{again}");

    // Every copy tape leaves the library: the ABSs restore from primaries.
    let vault: Vec<String> = op(&["library", "list"])
        .unwrap()
        .iter()
        .filter(|t| t["pool"] == "vault")
        .map(|t| t["label"].as_str().unwrap().to_string())
        .collect();
    let offsite = work.path().join("offsite");
    for label in &vault {
        op(&["library", "export", label, "--to", offsite.to_str().unwrap()]).unwrap();
    }
    for id in &abs_ids {
        let dest = cluster.restored(&format!("recovered-{id}.bin"));
        scenario::restore_and_verify(&cluster, &layout, *id, &layout.extents, &dest).unwrap();
    }
    // A copy-pool tape is not recovered this way.
    let err = cluster.operator_fails(&["tape", "recover", &vault[0]], FailureCode::Refused);
    assert!(err.contains("pool backup"), "{err}");
}

/// `backup --copy-to`: the backup reports done only once the copy is on
/// tape too. When the back-end copying is killed mid-copy, the ABS stays
/// complete on its primary tape (its data is safe), the command fails
/// saying so, and the next pool backup makes the copy.
#[tokio::test(flavor = "multi_thread")]
async fn a_synchronous_copy_is_on_tape_before_the_backup_reports_done() {
    use dmc_tests::faults::{wait_until, Job};
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 16 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 41,
    };
    // Slow drives: the copy takes seconds, long enough to be interrupted.
    let (layout, mut cluster) = pooled(work.path(), &spec, 3, 8.0).await;
    let op = |c: &Cluster, args: &[&str]| c.operator(args);
    let args = |copy_to: &str| onsite_backup(&layout, &["--copy-to", copy_to]);
    let run = |c: &Cluster, a: &[String]| c.smapp(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // A copy pool that does not copy this pool is refused before anything.
    op(&cluster, &["pool", "define", "other", "--kind", "primary"]).unwrap();
    op(
        &cluster,
        &["pool", "define", "elsewhere", "--kind", "copy", "--copies-of", "other"],
    )
    .unwrap();
    let err = format!("{:#}", run(&cluster, &args("elsewhere")).unwrap_err());
    assert!(err.contains("does not copy pool onsite"), "{err}");

    let abs_id = result(run(&cluster, &args("vault")).unwrap())["abs_id"]
        .as_u64()
        .unwrap();
    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    let a = listed.iter().find(|a| a["abs_id"] == abs_id).unwrap();
    assert_eq!(
        a["copy_pools"],
        serde_json::json!(["vault"]),
        "the copy is there when the backup returns: {a}"
    );

    // The back-end is killed while it copies.
    let a: Vec<String> = args("vault");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let job = Job::start(&cluster, &a);
    let copies_of_newest = |c: &Cluster| -> Option<(u64, usize)> {
        let newest = c
            .smapp(&["list", "abs"])
            .ok()?
            .iter()
            .filter_map(|a| a["abs_id"].as_u64())
            .max()?;
        if newest == abs_id {
            return None;
        }
        let segs = c.smapp(&["list", "segments", "--abs", &newest.to_string()]).ok()?;
        Some((newest, segs.iter().filter(|s| s["copy"] == true).count()))
    };
    wait_until(
        &cluster,
        "the copy to begin",
        std::time::Duration::from_secs(120),
        |c| copies_of_newest(c).is_some_and(|(_, n)| n >= 1),
    );
    cluster.kill("be1").unwrap();
    let out = job.join();
    assert!(!out.status.success(), "the backup reported done without its copy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is complete on tape in pool onsite, but its copy to pool vault failed"),
        "{stderr}"
    );
    let (second, _) = copies_of_newest(&cluster).unwrap();
    cluster
        .restart_mover("be1", std::time::Duration::from_secs(60))
        .unwrap();
    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    let a = listed.iter().find(|a| a["abs_id"] == second).unwrap();
    assert_eq!(a["state"], "complete", "{a}");
    assert_eq!(a["copies"], 0, "{a}");
    // The next pool backup makes the copy: just that ABS.
    let next = result(op(&cluster, &["pool", "backup", "onsite", "--to", "vault"]).unwrap());
    assert_eq!(next["abs"], 1, "{next}");
    let listed = cluster.smapp(&["list", "abs"]).unwrap();
    let a = listed.iter().find(|a| a["abs_id"] == second).unwrap();
    assert_eq!(a["copy_pools"], serde_json::json!(["vault"]), "{a}");
    let dest = cluster.restored("after-kill.bin");
    scenario::restore_and_verify(&cluster, &layout, second, &layout.extents, &dest).unwrap();
}

/// One ABS, tape to tape (issue 14, seed 002 FIG. 16): `abs copy` puts a
/// copy of it in a copy pool now (once); `abs move` rewrites it onto
/// another primary pool's tapes with a management record naming that pool
/// and the new places, the catalog points there, the ABS restores from
/// them, and a tape left holding nothing is scratch again.
#[tokio::test(flavor = "multi_thread")]
async fn one_abs_is_copied_and_moved_tape_to_tape() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 4 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 1416,
    };
    let (layout, cluster) = pooled(work.path(), &spec, 2, 0.0).await;
    let op = |args: &[&str]| cluster.operator(args);
    op(&["pool", "define", "archive", "--kind", "primary", "--retain", "0"]).unwrap();
    let a1 = backup_onsite(&cluster, &layout, &[]);
    let a2 = backup_onsite(&cluster, &layout, &[]);
    let (s1, s2) = (a1.to_string(), a2.to_string());

    // Copy: operators only, into a copy pool of the ABS's pool, once.
    assert!(
        cluster.smapp(&["abs", "copy", &s1, "--pool", "vault"]).is_err(),
        "operators only"
    );
    let copied = result(op(&["abs", "copy", &s1, "--pool", "vault"]).unwrap());
    let segs = cluster.smapp(&["list", "segments", "--abs", &s1]).unwrap();
    let primaries = segs.iter().filter(|s| s["copy"] == false).count();
    assert_eq!(copied["segments"].as_u64(), Some(primaries as u64), "{copied}");
    let abs = cluster.smapp(&["list", "abs"]).unwrap();
    let row = |abs: &[Value], id: u64| abs.iter().find(|a| a["abs_id"] == id).unwrap().clone();
    assert_eq!(row(&abs, a1)["copy_pools"], serde_json::json!(["vault"]));
    assert_eq!(row(&abs, a2)["copies"], 0);
    cluster.operator_fails(&["abs", "copy", &s1, "--pool", "vault"], FailureCode::Conflict);
    cluster.operator_fails(&["abs", "copy", &s1, "--pool", "nowhere"], FailureCode::NotFound);

    // Move both to pool archive: the onsite tape they shared empties.
    let onsite: Vec<String> = op(&["library", "list"])
        .unwrap()
        .iter()
        .filter(|t| t["pool"] == "onsite")
        .map(|t| t["label"].as_str().unwrap().to_string())
        .collect();
    for (id, s) in [(a1, &s1), (a2, &s2)] {
        let moved = result(op(&["abs", "move", s, "--pool", "archive"]).unwrap());
        assert_eq!(moved["result"], "abs move", "{moved}");
        let segs = cluster.smapp(&["list", "segments", "--abs", s]).unwrap();
        let archive_tapes: BTreeSet<&str> = segs
            .iter()
            .filter(|x| x["copy"] == false)
            .map(|x| {
                assert_eq!(x["pool"], "archive", "{x}");
                x["tape"].as_str().unwrap()
            })
            .collect();
        // The copy in the vault stays linked.
        assert_eq!(segs.iter().any(|x| x["copy"] == true), id == a1, "{segs:?}");
        let abs = cluster.smapp(&["list", "abs"]).unwrap();
        assert_eq!(row(&abs, id)["pool"], "archive");
        // Its metadata on the new tape carries a record of the move.
        let metas = cluster.abs_metadata_on_tapes().unwrap();
        let record = metas
            .iter()
            .filter(|m| m.abs_id == id)
            .filter_map(|m| m.management.clone())
            .find(|m| m.pool == "archive")
            .expect("a management record naming pool archive");
        assert!(
            record
                .placements
                .iter()
                .all(|p| archive_tapes.contains(p.tape_label.as_str())),
            "{record:?}"
        );
        let dest = cluster.restored(&format!("moved-{id}.bin"));
        scenario::restore_and_verify(&cluster, &layout, id, &layout.extents, &dest).unwrap();
    }
    cluster.operator_fails(&["abs", "move", &s1, "--pool", "archive"], FailureCode::Conflict);
    cluster.operator_fails(&["abs", "move", &s1, "--pool", "vault"], FailureCode::Refused);
    let tapes = op(&["library", "list"]).unwrap();
    for label in &onsite {
        let t = tapes.iter().find(|t| t["label"] == label.as_str()).unwrap();
        assert_eq!(t["state"], "scratch", "{t}");
    }

    // A catalog rebuilt from the tapes (the old onsite tape not reused
    // yet) has them where they moved to, by their newest records.
    let before = op(&["list", "abs"]).unwrap();
    let mut cluster = cluster;
    cluster.lose_catalog().await.unwrap();
    let library = cluster.library.to_string_lossy().to_string();
    let url = cluster.db.url().to_string();
    let (ok, out, err) = station_cli(&["catalog", "rebuild", "--library", &library, "--database-url", &url]);
    assert!(ok, "{out}\n{err}");
    assert!(err.contains(&format!("ABS {a1} moved to pool archive")), "{out}\n{err}");
    cluster.restart(STATION).unwrap();
    cluster
        .wait_registered(&[PRIMARY, "fe1", "be1"], &[], std::time::Duration::from_secs(60))
        .unwrap();
    // (Grants are not on tape: the operator lists.)
    let after = cluster.operator(&["list", "abs"]).unwrap();
    for id in [a1, a2] {
        let (b, a) = (row(&before, id), row(&after, id));
        let show = |r: &Value| {
            (
                r["pool"].clone(),
                r["tapes"].clone(),
                r["copy_pools"].clone(),
                r["state"].clone(),
            )
        };
        assert_eq!(show(&a), show(&b), "{out}");
    }
}
