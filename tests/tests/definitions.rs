//! Backup definitions (issue 14, seed 002 FIG. 5 and 10): the station runs
//! a definition on its schedule, each run an ordinary backup whose ABS
//! records the definition; the host's `smapp agent` runs the pre command
//! before it (the backup starts only if that succeeded) and the post
//! command after it, whatever happened; a failed pre command fails the run
//! with its output in the channel's history; who may define what.
#![allow(clippy::cast_possible_truncation)]

use std::path::Path;
use std::time::{Duration, Instant};

use dmc_tests::cluster::{Cluster, CLIENT, CLIENT2, PRIMARY};
use dmc_tests::scenario::{self, ScenarioSpec};
use proto::domain::FailureCode;
use serde_json::Value;

const OBJECT: &str = "/db/orders";

fn spec() -> ScenarioSpec {
    ScenarioSpec {
        object_size: 2 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 1 << 20,
        seed: 505,
    }
}

/// A cluster with the client's agent running (hooks in `work/agent`).
async fn cluster_with_agent(work: &Path) -> (scenario::Layout, Cluster) {
    let layout = scenario::make_layout(&work.join("volumes"), &spec()).unwrap();
    let mut cluster = Cluster::start(work, &scenario::cluster_spec(&layout, &spec()))
        .await
        .unwrap();
    cluster.start_agent(CLIENT, &work.join("agent")).unwrap();
    (layout, cluster)
}

/// The client's definition `name` as `definitions --json` shows it.
fn definition(cluster: &Cluster, name: &str) -> Value {
    cluster
        .smapp(&["definitions"])
        .unwrap()
        .into_iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no definition {name}"))
}

/// Poll `definitions` (a status query) until `done` holds for `name`'s runs.
fn wait_runs(cluster: &Cluster, name: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let d = definition(cluster, name);
        let runs = d["runs"].as_array().cloned().unwrap_or_default();
        if done(&runs) {
            return runs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{name}: {what} did not happen; runs: {runs:#?}\n{}",
            cluster.log_tails()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The notes of channel `id`'s history, and the reason of its last transition.
fn history(cluster: &Cluster, id: u64) -> (Vec<Value>, String) {
    let h = cluster.smapp(&["channels", &id.to_string()]).unwrap().remove(0);
    let last = h["transitions"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    (h["notes"].as_array().cloned().unwrap_or_default(), last)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_definition_every_10s_runs_twice_with_its_hooks_in_order() {
    let work = tempfile::tempdir().unwrap();
    let (layout, cluster) = cluster_with_agent(work.path()).await;
    let log = work.path().join("hooks.log");
    let extents = layout.extents_file.to_string_lossy().to_string();
    let pre = format!("echo pre $DMC_ABS_ID >> {}; echo database frozen", log.display());
    let post = format!("echo post $DMC_ABS_ID $DMC_RESULT >> {}", log.display());
    let defined = cluster
        .smapp(&[
            "define",
            "orders",
            "--primary",
            PRIMARY,
            "--object",
            OBJECT,
            "--extents",
            &extents,
            "--schedule",
            "every 10s",
            "--level",
            "incremental",
            "--pre",
            &pre,
            "--post",
            &post,
            "--label",
            "scheduled orders",
        ])
        .unwrap();
    assert_eq!(defined[0]["host"], CLIENT, "{defined:?}");
    assert_eq!(defined[0]["schedule"], "every 10s");
    let runs = wait_runs(&cluster, "orders", "two succeeded runs", |runs| {
        runs.iter().filter(|r| r["state"] == "succeeded").count() >= 2
    });
    // Newest first.
    let mut ok: Vec<&Value> = runs.iter().filter(|r| r["state"] == "succeeded").collect();
    ok.reverse();
    let (a1, a2) = (ok[0]["abs_id"].as_u64().unwrap(), ok[1]["abs_id"].as_u64().unwrap());
    assert!(a1 < a2, "{runs:#?}");
    assert!(ok[1]["due"].as_str() > ok[0]["due"].as_str(), "{runs:#?}");
    for r in &ok[..2] {
        assert_eq!(r["pre_status"], 0, "{r}");
        assert_eq!(r["post_status"], 0, "{r}");
        assert!(r["pre_output"].as_str().unwrap().contains("database frozen"), "{r}");
    }
    // Each run: pre, then the backup, then post, on the agent, in order.
    let hooks = lines(&log);
    assert_eq!(
        &hooks[..4],
        [
            format!("pre {a1}"),
            format!("post {a1} succeeded"),
            format!("pre {a2}"),
            format!("post {a2} succeeded")
        ],
        "{hooks:?}"
    );
    // The ABSs are ordinary backups that name their definition: the first
    // incremental had no full to build on and was taken as one; the
    // second builds on it.
    let abs = cluster.smapp(&["list", "abs"]).unwrap();
    let row = |id: u64| abs.iter().find(|a| a["abs_id"] == id).unwrap().clone();
    for id in [a1, a2] {
        let a = row(id);
        assert_eq!(a["state"], "complete", "{a}");
        assert_eq!(a["definition"], "orders", "{a}");
        assert_eq!(a["label"], "scheduled orders", "{a}");
    }
    assert_eq!(row(a1)["level"], "full");
    assert_eq!(
        row(a2)["level"],
        "incremental",
        "{abs:#?}\n{runs:#?}\n{}",
        cluster.log_tails()
    );
    assert_eq!(row(a2)["base_abs_id"], a1);
    // The pre command's output is in the channel's history.
    let (notes, _) = history(&cluster, ok[1]["channel_id"].as_u64().unwrap());
    assert!(
        notes
            .iter()
            .any(|n| n["actor"] == CLIENT && n["text"].as_str().unwrap().contains("database frozen")),
        "{notes:#?}"
    );
    let restored = cluster.restored("orders.img");
    scenario::restore_to_file(&cluster, a2, &restored).unwrap();
    scenario::verify_file(&layout, &restored).unwrap();
    // Gone once undefined; its ABSs stay.
    cluster.smapp(&["undefine", "orders"]).unwrap();
    assert!(cluster.smapp(&["definitions"]).unwrap().is_empty());
    let abs = cluster.smapp(&["list", "abs"]).unwrap();
    assert!(abs.iter().any(|a| a["abs_id"] == a2));
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pre_command_fails_the_run_and_post_runs_after_any_failure() {
    let work = tempfile::tempdir().unwrap();
    let (layout, mut cluster) = cluster_with_agent(work.path()).await;
    let log = work.path().join("hooks.log");
    let extents = layout.extents_file.to_string_lossy().to_string();
    let post = format!("echo post $DMC_DEFINITION $DMC_RESULT >> {}", log.display());
    let define = |name: &str, pre: &str| {
        cluster
            .smapp(&[
                "define",
                name,
                "--primary",
                PRIMARY,
                "--object",
                OBJECT,
                "--extents",
                &extents,
                "--schedule",
                "weekly sun 03:00",
                "--pre",
                pre,
                "--post",
                &post,
            ])
            .unwrap()
    };

    // A pre command that fails: no backup; the run fails with its output.
    define("frozen", "echo cannot quiesce the database >&2; exit 3");
    let out = cluster.smapp_as(CLIENT, &["definitions", "run", "frozen"]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(FailureCode::Refused.exit_status())),
        "{err}"
    );
    assert!(err.contains("cannot quiesce the database"), "{err}");
    let run = &definition(&cluster, "frozen")["runs"][0];
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["pre_status"], 3, "{run}");
    assert!(run["reason"].as_str().unwrap().contains("cannot quiesce"), "{run}");
    let (notes, reason) = history(&cluster, run["channel_id"].as_u64().unwrap());
    assert!(reason.contains("cannot quiesce the database"), "{reason}");
    assert!(
        notes
            .iter()
            .any(|n| n["text"].as_str().unwrap().contains("cannot quiesce the database")),
        "{notes:#?}"
    );
    let abs_id = run["abs_id"].as_u64().unwrap();
    let abs = cluster.smapp(&["list", "abs"]).unwrap();
    let a = abs.iter().find(|a| a["abs_id"] == abs_id).unwrap();
    assert_eq!(a["state"], "failed", "{a}");
    assert_eq!(lines(&log), ["post frozen failed"]);

    // A pre command that succeeds but takes the primary node down: the
    // backup fails, and post still runs, told so.
    let pn = cluster.pids().into_iter().find(|(n, _)| n == PRIMARY).unwrap().1;
    define("doomed", &format!("kill -9 {pn}"));
    let out = cluster.smapp_as(CLIENT, &["definitions", "run", "doomed"]).unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let run = &definition(&cluster, "doomed")["runs"][0];
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["pre_status"], 0, "{run}");
    assert_eq!(run["post_status"], 0, "{run}");
    assert_eq!(lines(&log), ["post frozen failed", "post doomed failed"]);
    cluster.kill(PRIMARY).unwrap();
    cluster.restart(PRIMARY).unwrap();
    cluster
        .wait_registered(&[PRIMARY], &[], Duration::from_secs(60))
        .unwrap();

    // Who may define what: a client's hooks run on its own host; a client
    // without a grant defines nothing; an operator's hooks name their host.
    let base = [
        "--primary",
        PRIMARY,
        "--object",
        OBJECT,
        "--extents",
        &extents,
        "--schedule",
        "daily 02:00",
        "--pre",
        "true",
    ];
    let run_as = |who: &str, name: &str, extra: &[&str]| {
        let mut args = vec!["define", name];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        cluster.smapp_as(who, &args).unwrap()
    };
    let code = |o: &std::process::Output| o.status.code();
    let refused = Some(i32::from(FailureCode::Refused.exit_status()));
    let o = run_as(CLIENT, "elsewhere", &["--host", CLIENT2]);
    assert_eq!(code(&o), refused, "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_as(CLIENT2, "ungranted", &[]);
    assert_eq!(code(&o), refused, "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_as("operator", "hostless", &[]);
    assert_eq!(
        code(&o),
        Some(i32::from(FailureCode::Invalid.exit_status())),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run_as(CLIENT, "bad-schedule", &["--schedule", "hourly"]);
    assert_eq!(code(&o), Some(i32::from(FailureCode::Invalid.exit_status())));
    // The same name twice is a conflict; another client's definitions are
    // not its to see, run or remove.
    let o = run_as(CLIENT, "frozen", &[]);
    assert_eq!(code(&o), Some(i32::from(FailureCode::Conflict.exit_status())));
    let o = cluster.smapp_as(CLIENT2, &["undefine", "frozen"]).unwrap();
    assert_eq!(code(&o), Some(i32::from(FailureCode::NotFound.exit_status())));
    assert!(cluster.smapp_json_as(CLIENT2, &["definitions"]).unwrap().is_empty());
    let all = cluster.operator(&["definitions"]).unwrap();
    assert_eq!(all.len(), 2, "{all:#?}");
}
