//! A back-end killed (SIGKILL) in the middle of a backup: the channel ends
//! in `Error` with a reason, the drive is freed, a backup running at the
//! same time through the other pair is not harmed, and once the back-end is
//! back the same backup succeeds, appending to the tape the dead back-end
//! never finished, and restores byte-identical.

use std::time::{Duration, Instant};

use dmc_tests::cluster::{Cluster, PRIMARY};
use dmc_tests::fixture;
use dmc_tests::scenario::{self, ScenarioSpec};

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_back_end_fails_its_channel_and_the_rerun_succeeds() {
    let work = tempfile::tempdir().unwrap();
    let spec = ScenarioSpec {
        object_size: 256 << 20,
        block_size: 4096,
        track_size: 65536,
        segment_size: 4 << 20,
        seed: 9,
    };
    let layout = scenario::make_layout(&work.path().join("volumes"), &spec).unwrap();
    let mut cspec = scenario::cluster_spec(&layout, &spec);
    cspec.drives_per_pair = vec![1, 1];
    let mut cluster = Cluster::start(work.path(), &cspec).await.unwrap();
    let bystander = scenario::scatter_objects(&layout, work.path(), 96 << 20, 1, 77)
        .unwrap()
        .remove(0);
    let bystander_file = bystander.file.to_string_lossy().to_string();
    let extents = layout.extents_file.to_string_lossy().to_string();
    let args = [
        "backup",
        "--primary",
        PRIMARY,
        "--object",
        "victim",
        "--extents",
        extents.as_str(),
    ];

    // Start the backup; once it has a back-end, start the bystander (it
    // gets the other pair's free drive); once the victim has segments on
    // tape, kill its back-end.
    let (failed, survived, victim_be) = std::thread::scope(|s| {
        let backup = s.spawn(|| cluster.smapp_as("client", &args).unwrap());
        let start = Instant::now();
        let victim_be = loop {
            let chans = cluster.smapp(&["channels"]).unwrap_or_default();
            if let Some(be) = chans
                .first()
                .and_then(|c| c["back_end"].as_str())
                .filter(|b| !b.is_empty())
            {
                break be.to_string();
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the backup got no back-end");
            std::thread::sleep(Duration::from_millis(20));
        };
        let other = s.spawn(|| {
            cluster.smapp(&[
                "backup",
                "--primary",
                PRIMARY,
                "--object",
                "bystander",
                "--extents",
                &bystander_file,
            ])
        });
        loop {
            let segs = cluster.smapp(&["list", "segments", "--abs", "1"]).unwrap_or_default();
            if segs.len() >= 2 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no segment reached tape");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = cluster.procs.iter().find(|p| p.name == victim_be).unwrap().child.id();
        let st = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        (backup.join().unwrap(), other.join().unwrap(), victim_be)
    });
    // The bystander on the other pair finished and restores.
    let survived = survived.expect("the backup through the other pair is not harmed");
    let bystander_abs = survived.last().unwrap()["abs_id"].as_u64().unwrap();
    let dest = cluster.restored("bystander.bin");
    scenario::restore_and_verify(&cluster, &layout, bystander_abs, &bystander.extents, &dest).unwrap();
    assert!(
        !failed.status.success(),
        "the backup cannot succeed without its back-end"
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    // The message is what the person reads to find the failed process:
    // it names the back-end (that the backup failed is its exit status,
    // checked above).
    assert!(err.contains(victim_be.as_str()), "the error names the back-end: {err}");

    let chans = cluster.smapp(&["channels"]).unwrap();
    let ch = chans.iter().find(|c| c["channel_id"] == 1).unwrap();
    assert_eq!(ch["state"], "error", "{ch}");
    assert!(!ch["reason"].as_str().unwrap().is_empty());
    let abs = cluster.smapp(&["list", "abs"]).unwrap();
    let victim = abs.iter().find(|a| a["abs_id"] == 1).unwrap();
    assert_eq!(victim["state"], "failed", "{abs:?}");
    let tapes = cluster.operator(&["list", "tapes"]).unwrap();
    assert!(
        tapes.iter().all(|t| t["mounted_in"].is_null()),
        "the drives were freed: {tapes:?}"
    );
    assert!(
        tapes.iter().all(|t| t["state"] != "scratch"),
        "a written tape never goes back to scratch: {tapes:?}"
    );

    // The failed ABS's spool is discarded on its front-end.
    let start = std::time::Instant::now();
    loop {
        let left: Vec<_> = std::fs::read_dir(work.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("spool-"))
            .map(|e| e.path().join("abs-1"))
            .filter(|p| p.exists())
            .collect();
        if left.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let logs: Vec<String> = ["fe1", "fe2"]
                .iter()
                .map(|f| dmc_tests::cluster::tail(&work.path().join("logs").join(format!("{f}.log"))))
                .collect();
            panic!("spool left behind: {left:?}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The back-end comes back; the same backup runs again and restores.
    cluster.restart_mover(&victim_be, Duration::from_secs(30)).unwrap();
    let out = cluster.smapp(&args).unwrap();
    let abs_id = out.last().unwrap()["abs_id"].as_u64().unwrap();
    let restored = cluster.restored("restored.bin");
    cluster
        .smapp(&["restore", &abs_id.to_string(), "--to-file", &cluster.to_file(&restored)])
        .unwrap();
    let source = fixture::ObjectReader::new(|v| layout.path_of(v), &layout.extents);
    fixture::compare(source, std::fs::File::open(&restored).unwrap(), "rerun restore").unwrap();
    cluster.stop();
}
