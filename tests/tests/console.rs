//! Issue 16: the operators' web console, as an operator uses it.
//!
//! A cluster whose station serves the console (`--http`) and notifies a
//! webhook (`--notify-url`). Only operator certificates get in. A headless
//! Chromium opens the console through `smapp console` and watches a backup
//! live: the channel's state advances on the page without a reload
//! (… → Writing → Closed), its bytes grow, and the page's history lists
//! every transition the catalog recorded. Then a primary node dies
//! mid-backup: the page shows the error with its reason until it is
//! acknowledged there, and the webhook gets exactly one notification (the
//! first delivery refused, retried, accepted once).
//!
//! With `DMC_SCREENSHOTS=DIR` it also saves a PNG of each of the four
//! views in DIR (the README's pictures).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dmc_tests::browser::Browser;
use dmc_tests::cluster::{bin, Cluster, ClusterSpec, CLIENT, PRIMARY};
use dmc_tests::console::{https, identity, smapp_console, Webhook};
use dmc_tests::{fixture, metrics};
use serde_json::Value;

const STATES: [&str; 5] = ["requested", "opened", "beginning_of_tape", "writing", "closed"];

// The child is handed to the caller, which waits for it.
#[allow(clippy::zombie_processes)]
fn start_backup(cluster: &Cluster, object: &str) -> Child {
    Command::new(bin("smapp").unwrap())
        .args(["--station", &cluster.station.to_string(), "--name", CLIENT, "--json"])
        .arg("--pki")
        .arg(cluster.pki_of(CLIENT))
        .args(["backup", "--primary", PRIMARY, "--object", object, "--volume", "vol0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The newest channel card on the page: id, state, bytes.
const NEWEST_CARD: &str = "(() => { const cs = [...document.querySelectorAll('.channel')]; \
     if (!cs.length) return null; \
     const c = cs.reduce((a, b) => (+b.dataset.channel > +a.dataset.channel ? b : a)); \
     return { id: +c.dataset.channel, state: c.dataset.state, bytes: +c.dataset.bytes }; })()";

#[tokio::test(flavor = "multi_thread")]
async fn operators_watch_a_backup_live_and_each_error_notifies_once() {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("vol0.img");
    fixture::make_volume(&vol, 24 << 20, 16).unwrap();
    let hook = Webhook::start().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", metrics::free_tcp_port().unwrap())
        .parse()
        .unwrap();
    let mut spec = ClusterSpec::new(vec![("vol0".into(), vol.clone())], 4096, 65536, 1 << 20);
    // 24 MiB at 4 MB/s: about six seconds of writing to watch.
    spec.pn_args = vec!["--stream-rate".into(), "4".into()];
    spec.mount_seconds = 1.0;
    spec.station_metrics = true;
    spec.station_args = vec!["--http".into(), http.to_string(), "--notify-url".into(), hook.url()];
    let mut cluster = Cluster::start(work.path(), &spec).await.unwrap();

    // Only operators get in; actions need the console's header.
    let op = identity(&cluster.pki_of("operator"), "operator").unwrap();
    let client = identity(&cluster.pki_of(CLIENT), CLIENT).unwrap();
    let anonymous = https(http, &op, None, "GET", "/api/channels", None).await.unwrap();
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert!(
        anonymous.json().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("operator certificate"),
        "{anonymous:?}"
    );
    let page = https(http, &op, None, "GET", "/", None).await.unwrap();
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Not authorized"), "{page:?}");
    let as_client = https(http, &op, Some(&client), "GET", "/api/channels", None)
        .await
        .unwrap();
    assert_eq!(as_client.status, 403, "{as_client:?}");
    assert!(as_client.body.contains("client certificate"), "{as_client:?}");
    let machines = https(http, &op, Some(&op), "GET", "/api/machines", None).await.unwrap();
    assert_eq!(machines.status, 200, "{machines:?}");
    assert_eq!(machines.json().unwrap().as_array().unwrap().len(), 2);
    // Every process registered with its program's version.
    let peers = https(http, &op, Some(&op), "GET", "/api/peers", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let versions: Vec<&str> = peers["health"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec![env!("CARGO_PKG_VERSION"); 3], "{peers}");
    assert_eq!(peers["station_version"], env!("CARGO_PKG_VERSION"));
    let forged = https(
        http,
        &op,
        Some(&op),
        "POST",
        "/api/library/label",
        Some((r#"{"count":1}"#, false)),
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 403, "an action without the console's header: {forged:?}");
    let labelled = https(
        http,
        &op,
        Some(&op),
        "POST",
        "/api/library/label",
        Some((r#"{"count":1}"#, true)),
    )
    .await
    .unwrap();
    assert_eq!(labelled.status, 200, "{labelled:?}");
    let refused = metrics::value_in(
        &metrics::scrape(cluster.station_metrics.unwrap()).unwrap(),
        "dmc_console_requests_refused_total",
    );
    assert_eq!(refused, 4.0, "each refusal is counted");

    // The browser, through `smapp console`: the page goes live.
    let (mut forward, url) = smapp_console(&cluster, "operator", http).unwrap();
    let mut b = Browser::open(&url, 1400, 1000).unwrap();
    b.wait_for("document.querySelector('#live.on') !== null", Duration::from_secs(60))
        .unwrap();
    b.eval("window.__probe = 'the same page'; true").unwrap();

    // A backup, watched on the page.
    let backup = start_backup(&cluster, "db1");
    let mut states: Vec<String> = Vec::new();
    let mut growing: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let channel = loop {
        let card = b.eval(NEWEST_CARD).unwrap();
        if let Value::Object(c) = &card {
            let state = c["state"].as_str().unwrap().to_string();
            let bytes = c["bytes"].as_u64().unwrap();
            if states.last() != Some(&state) {
                states.push(state.clone());
            }
            if state != "closed" && bytes > 0 && growing.last() != Some(&bytes) {
                growing.push(bytes);
            }
            if state == "closed" || state == "error" {
                break c["id"].as_u64().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the backup end: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(states.last().map(String::as_str), Some("closed"), "{states:?}");
    assert!(states.len() >= 3, "the state advanced live on the page: {states:?}");
    assert!(states.contains(&"writing".to_string()), "{states:?}");
    let order: Vec<usize> = states
        .iter()
        .map(|s| STATES.iter().position(|x| x == s).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "in the machine's order: {states:?}"
    );
    assert!(
        growing.len() >= 3,
        "the bytes grew on the page while it wrote: {growing:?}"
    );
    assert!(growing.windows(2).all(|w| w[0] < w[1]), "{growing:?}");
    assert_eq!(
        b.eval("window.__probe").unwrap(),
        Value::from("the same page"),
        "the page was never reloaded"
    );
    // Every transition the catalog recorded is on the page, once.
    let recorded = https(http, &op, Some(&op), "GET", &format!("/api/channels/{channel}"), None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let recorded = recorded["transitions"].as_array().unwrap().len();
    let rows = b
        .eval(&format!(
            "document.querySelectorAll('#ch-{channel} table.history tr').length - 1"
        ))
        .unwrap();
    assert_eq!(rows.as_u64(), Some(u64::try_from(recorded).unwrap()));
    let lit = b
        .eval(&format!(
            "document.querySelector('#ch-{channel} svg .current').dataset.state"
        ))
        .unwrap();
    assert_eq!(lit, Value::from("closed"), "the diagram lights the current state");

    // The drive worked for this backup: its busy share shows it.
    let library = https(http, &op, Some(&op), "GET", "/api/library", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let share = library["drives"][0]["busy_share"].as_f64().unwrap();
    assert!(share > 0.0 && share <= 1.0, "{library}");
    assert_eq!(library["drives"][0]["activity"], "idle", "{library}");

    // A primary node dies mid-backup: the error shows with its reason.
    let mut failing = start_backup(&cluster, "db2");
    let deadline = Instant::now() + Duration::from_secs(120);
    let failed_channel = loop {
        let card = b.eval(NEWEST_CARD).unwrap();
        if card["id"].as_u64().is_some_and(|id| id > channel)
            && card["state"] == "writing"
            && card["bytes"].as_u64() > Some(0)
        {
            break card["id"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the second backup never showed writing: {card}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    cluster.kill(PRIMARY).unwrap();
    let reason = b
        .wait_for(
            &format!(
                "(() => {{ const c = document.querySelector('#ch-{failed_channel}'); \
                  return c && c.dataset.state === 'error' && c.querySelector('.error-reason .reason').textContent; }})()"
            ),
            Duration::from_secs(60),
        )
        .unwrap();
    let reason = reason.as_str().unwrap().to_string();
    assert!(!reason.is_empty());
    assert!(!failing.wait().unwrap().success(), "the backup whose node died failed");
    let banner = b
        .wait_for(
            "(() => { const a = document.querySelector('#alerts [data-notification]'); return a && a.textContent; })()",
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(
        banner.as_str().unwrap().contains(&format!("channel {failed_channel}")),
        "{banner}"
    );

    // The webhook: exactly one notification accepted, after one retry.
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let notes = https(http, &op, Some(&op), "GET", "/api/notifications", None)
            .await
            .unwrap()
            .json()
            .unwrap();
        let notes = notes.as_array().unwrap().clone();
        if notes.iter().any(|n| n["delivered"] == true) {
            break notes;
        }
        assert!(Instant::now() < deadline, "never delivered: {notes:?} {:?}", hook.all());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(delivered.len(), 1, "one error, one notification: {delivered:?}");
    let n = &delivered[0];
    assert_eq!(n["kind"], "channel_error");
    assert_eq!(n["channel_id"], failed_channel);
    assert_eq!(n["message"], Value::from(reason.clone()));
    assert_eq!(n["attempts"], 2, "refused once, then accepted");
    let accepted = hook.accepted();
    assert_eq!(accepted.len(), 1, "{:?}", hook.all());
    assert_eq!(hook.all().len(), 2, "{:?}", hook.all());
    assert_eq!(accepted[0]["id"], n["id"]);
    assert_eq!(accepted[0]["station"], "station");
    assert_eq!(accepted[0]["message"], Value::from(reason));

    // Acknowledged on the page: the banner goes, the catalog says who.
    b.eval("document.querySelector('#alerts [data-ack]').click(); true")
        .unwrap();
    b.wait_for(
        "document.querySelector('#alerts [data-notification]') === null",
        Duration::from_secs(30),
    )
    .unwrap();
    let notes = https(http, &op, Some(&op), "GET", "/api/notifications", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(notes[0]["acknowledged_by"], "operator", "{notes}");

    if let Some(dir) = std::env::var_os("DMC_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (view, ready) in [
            ("channels", "document.querySelector('.channel svg') !== null"),
            ("library", "document.querySelector('#library table') !== null"),
            ("catalog", "document.querySelector('#abs-list table') !== null"),
            ("peers", "document.querySelector('#peers table') !== null"),
        ] {
            b.eval(&format!("location.hash = '#{view}'; true")).unwrap();
            b.wait_for(ready, Duration::from_secs(20)).unwrap();
            if view == "catalog" {
                b.eval("[...document.querySelectorAll('tr[data-abs]')].pop().click(); true")
                    .unwrap();
                b.wait_for("document.querySelector('.tape-row') !== null", Duration::from_secs(20))
                    .unwrap();
            }
            b.screenshot(&dir.join(format!("console-{view}.png"))).unwrap();
        }
    }
    let _ = forward.kill();
    let _ = forward.wait();
}
