//! Delivering notifications to the operators' webhook (`--notify-url`).
//!
//! A notification is a catalog row (see `catalog::notifications`); raising
//! one never waits on the webhook. This task POSTs each undelivered one as
//! JSON, in order, and records every attempt: accepted (a 2xx answer) or
//! failed with why. A failed one is tried again after 1, 2, 4 … seconds (at
//! most [`MAX_BACKOFF`] apart) until it is accepted, also across restarts
//! of the station; the console shows the attempts and the last error. The
//! body carries the notification's `id`, so a receiver that got one twice
//! (its answer lost) can tell.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use proto::domain::{Failure, FailureCode};

use super::live::NotificationView;
use super::Station;
use crate::catalog::NotificationRow;

/// Longest wait between two attempts of one notification.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long one attempt may take (connect, TLS, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Notifications read per pass.
const BATCH: i64 = 100;

/// Where notifications go.
#[derive(Debug, Clone)]
pub struct Webhook {
    uri: Uri,
    host: String,
    port: u16,
    /// TLS for `https://` URLs: the CAs trusted for the receiver.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Webhook {
    /// `url`: `http://HOST[:PORT]/PATH` or `https://…`; for https the
    /// receiver's certificate must chain to a CA of `ca_file` (PEM), or of
    /// the system's bundle when None.
    pub fn new(url: &str, ca_file: Option<&std::path::Path>) -> Result<Webhook> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--notify-url {url:?}: expected http://HOST[:PORT]/PATH or https://…"))?;
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("--notify-url {url:?}: no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let (tls, default_port) = match uri.scheme_str() {
            Some("http") => (None, 80),
            Some("https") => (Some(tls_config(ca_file)?), 443),
            other => bail!("--notify-url {url:?}: scheme {other:?} is not http or https"),
        };
        let port = uri.port_u16().unwrap_or(default_port);
        Ok(Webhook { uri, host, port, tls })
    }

    /// The URL, for messages.
    pub fn url(&self) -> String {
        self.uri.to_string()
    }
}

fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let path = ca_file.unwrap_or(std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(path).with_context(|| format!("reading CA certificates {}", path.display()))?
    {
        let cert = cert.with_context(|| format!("a certificate of {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate of {}", path.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The station's side of notifications: the webhook, if any, and what
/// wakes its sender.
#[derive(Default)]
pub struct Notifier {
    webhook: Option<Webhook>,
    wake: Notify,
}

impl Notifier {
    pub fn new(webhook: Option<Webhook>) -> Notifier {
        Notifier {
            webhook,
            wake: Notify::new(),
        }
    }

    /// Something may be waiting to be delivered.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Raise a notification for the operators (once while one with `key` is
/// open). Never fails its caller: a job goes on whether or not the catalog
/// took it (a failure is logged).
pub(crate) async fn raise(
    st: &Station,
    kind: proto::domain::NotificationKind,
    key: &str,
    subject: &str,
    message: &str,
    channel_id: Option<proto::domain::ChannelId>,
) {
    match st
        .catalog
        .raise_notification(key, kind, subject, message, channel_id)
        .await
    {
        Ok(Some(n)) => tracing::debug!(notification = n.id, %key, "notification raised"),
        Ok(None) => tracing::debug!(%key, "notification already open"),
        Err(e) => tracing::error!(%key, %message, error = %e, "notification not recorded"),
    }
}

/// How many acknowledged notifications a listing shows beside the open
/// ones.
pub const ACKNOWLEDGED_SHOWN: i64 = 50;

/// Operator `by` acknowledges notification `id`: the notification as it
/// is now. Not found when there is none; a conflict, naming who did, when
/// it was acknowledged already.
pub(crate) async fn acknowledge(st: &Station, id: i64, by: &str) -> Result<NotificationRow> {
    let done = st.catalog.acknowledge_notification(id, by).await?;
    let row = st
        .catalog
        .notification(id)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no notification {id}"))))?;
    if !done {
        bail!(Failure::new(
            FailureCode::Conflict,
            format!(
                "notification {id} was acknowledged already by {}",
                row.acknowledged_by.as_deref().unwrap_or("?")
            ),
        ));
    }
    tracing::info!(notification = id, operator = %by, "notification acknowledged");
    Ok(row)
}

/// The JSON a webhook receives.
#[derive(Serialize)]
struct Payload<'a> {
    /// The station that notifies (its certificate name).
    station: &'a str,
    #[serde(flatten)]
    notification: &'a NotificationView,
}

/// Deliver notifications for as long as the station runs (returns at once
/// without a webhook).
pub(crate) async fn deliver(st: Arc<Station>, station_name: String) {
    let Some(hook) = st.notifier.webhook.clone() else {
        return;
    };
    tracing::info!(url = %hook.url(), "notifications go to the webhook");
    let mut next_try: HashMap<i64, Instant> = HashMap::new();
    loop {
        let mut wait = Duration::from_secs(30);
        match st.catalog.undelivered_notifications(BATCH).await {
            Ok(rows) => {
                for row in rows {
                    let now = Instant::now();
                    if let Some(at) = next_try.get(&row.id).copied().filter(|at| *at > now) {
                        wait = wait.min(at - now);
                        continue;
                    }
                    let (id, attempts) = (row.id, row.attempts);
                    let view = NotificationView::from(row);
                    let body = match serde_json::to_vec(&Payload {
                        station: &station_name,
                        notification: &view,
                    }) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(notification = id, error = %e, "notification not serialized");
                            continue;
                        }
                    };
                    let sent = tokio::time::timeout(ATTEMPT_TIMEOUT, post(&hook, body))
                        .await
                        .unwrap_or_else(|_| Err(anyhow!("no answer within {ATTEMPT_TIMEOUT:?}")));
                    let error = sent.as_ref().err().map(|e| format!("{e:#}"));
                    let result = if error.is_none() { "accepted" } else { "failed" };
                    metrics::counter!("dmc_station_webhook_attempts_total", "result" => result).increment(1);
                    match &error {
                        None => {
                            next_try.remove(&id);
                            tracing::info!(notification = id, "notification delivered to the webhook");
                        }
                        Some(e) => {
                            let backoff = backoff(attempts);
                            next_try.insert(id, Instant::now() + backoff);
                            wait = wait.min(backoff);
                            tracing::warn!(notification = id, url = %hook.url(), error = %e, retry_in = ?backoff,
                                "webhook did not accept the notification");
                        }
                    }
                    if let Err(e) = st.catalog.record_delivery(id, error.as_deref()).await {
                        tracing::warn!(notification = id, error = %e, "delivery not recorded");
                        wait = wait.min(Duration::from_secs(2));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "undelivered notifications not read");
                wait = Duration::from_secs(2);
            }
        }
        tokio::select! {
            _ = st.notifier.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The wait before the next attempt of a notification already tried
/// `attempts` times (this one failing too): 1, 2, 4 … s, at most
/// [`MAX_BACKOFF`].
pub fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// POST `body` to the webhook; Ok on a 2xx answer.
async fn post(hook: &Webhook, body: Vec<u8>) -> Result<()> {
    let tcp = TcpStream::connect((hook.host.as_str(), hook.port))
        .await
        .with_context(|| format!("connecting to {}:{}", hook.host, hook.port))?;
    let io: Box<dyn Io> = match &hook.tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = rustls_pki_types::ServerName::try_from(hook.host.clone())
                .with_context(|| format!("{} is not a server name", hook.host))?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .context("TLS handshake with the webhook")?;
            Box::new(tls)
        }
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .context("HTTP handshake with the webhook")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = hook.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = hook.uri.authority().map_or(hook.host.as_str(), |a| a.as_str());
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "dmc-control-station")
        .body(Full::new(Bytes::from(body)))
        .context("building the request")?;
    let resp = sender.send_request(req).await.context("sending the notification")?;
    if !resp.status().is_success() {
        bail!("the webhook answered HTTP {}", resp.status());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(i32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(-3), Duration::from_secs(1));
    }

    #[test]
    fn webhook_urls_are_checked() {
        let h = Webhook::new("http://127.0.0.1:9000/hook?x=1", None).expect("http");
        assert_eq!((h.host.as_str(), h.port), ("127.0.0.1", 9000));
        assert!(h.tls.is_none());
        let h = Webhook::new("http://example.test/", None).expect("default port");
        assert_eq!(h.port, 80);
        assert!(Webhook::new("ftp://x/", None).is_err());
        assert!(Webhook::new("/just/a/path", None).is_err());
        assert!(Webhook::new("https://x/", Some(std::path::Path::new("/nonexistent/ca.pem"))).is_err());
    }
}
