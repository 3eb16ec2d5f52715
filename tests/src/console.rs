//! The web console from outside: HTTPS requests with or without a
//! certificate, a webhook receiver, and `smapp console`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transport::Identity;

use crate::cluster::{bin, Cluster};

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("HTTP {}: not JSON: {}", self.status, self.body))
    }
}

/// Split a raw HTTP/1.1 response (read to its end) into status and body,
/// undoing a chunked transfer encoding.
pub fn parse_response(raw: &[u8]) -> Result<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of head in {text:?}"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Ok(Answer { status, body })
}

/// One request to the console at `addr` over TLS (trusting the cluster CA
/// in `ca_dir`), presenting `identity` when given. `body`: a JSON POST
/// (with the console's action header unless `action_header` is false).
pub async fn https(
    addr: SocketAddr,
    ca_of: &Identity,
    identity: Option<&Identity>,
    method: &str,
    path: &str,
    body: Option<(&str, bool)>,
) -> Result<Answer> {
    let tls = transport::https::client_config(ca_of.ca_certs(), identity)?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut s = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some((b, header)) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
        if header {
            req.push_str("X-DMC-Console: 1\r\n");
        }
        req.push_str("\r\n");
        req.push_str(b);
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    // A TLS close without close_notify still ends the answer.
    let _ = s.read_to_end(&mut raw).await;
    parse_response(&raw)
}

/// What a webhook receiver got: each POST's body, and the status it
/// answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: serde_json::Value,
    pub status: u16,
}

/// A webhook on loopback. It refuses (503) the first delivery of each
/// notification id, so every notification is retried once before it is
/// accepted.
pub struct Webhook {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Webhook {
    pub fn start() -> Result<Webhook> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rec = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Ok(body) = read_post(&mut conn) else { continue };
                let body: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                let mut got = rec.lock().unwrap_or_else(|e| e.into_inner());
                let seen = got.iter().any(|r| r.body["id"] == body["id"]);
                let status = if seen { 200 } else { 503 };
                got.push(Received { body, status });
                drop(got);
                let reason = if status == 200 { "OK" } else { "Service Unavailable" };
                let _ = conn.write_all(
                    format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                );
            }
        });
        Ok(Webhook { addr, received })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The notifications it accepted (answered 200).
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.body.clone())
            .collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn read_post(conn: &mut std::net::TcpStream) -> Result<String> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut len = 0usize;
    let mut first = String::new();
    reader.read_line(&mut first)?;
    if !first.starts_with("POST /hook ") {
        bail!("unexpected request {first:?}");
    }
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse()?;
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8(body)?)
}

/// `smapp --name NAME console`: the child and the address it printed.
pub fn smapp_console(cluster: &Cluster, name: &str, console: SocketAddr) -> Result<(Child, String)> {
    let mut child = Command::new(bin("smapp")?)
        .args(["--name", name, "console", "--console", &console.to_string()])
        .arg("--pki")
        .arg(cluster.pki_of(name))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting smapp console")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("http://") {
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("smapp console printed {line:?}: {err}");
    }
    Ok((child, line.trim().to_string()))
}

/// The identity in `dir` named `name`.
pub fn identity(dir: &Path, name: &str) -> Result<Identity> {
    Identity::load(dir, name).with_context(|| format!("loading {name} from {}", dir.display()))
}
