//! `smapp console`: the station's web console on a local address, with the
//! operator's own certificate (like `kubectl proxy`).
//!
//! Browsers can use the console directly once they imported the PKCS#12
//! of an operator certificate; this is the way without importing anything.
//! It listens on a loopback address and forwards each connection over TLS
//! to the console, presenting the certificate of `--name`. So that no
//! other local user or web page rides on that certificate, the local
//! address serves only browsers that hold a token: the printed address
//! `http://127.0.0.1:PORT/login?token=T` sets it as a cookie
//! (`HttpOnly`, `SameSite=Strict`) and every connection's first request
//! must carry it. The bytes of the console itself are forwarded untouched.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use transport::Identity;

/// The cookie the token travels in.
const COOKIE: &str = "dmc_console_token";
/// Largest request head read before the token is checked.
const MAX_HEAD: usize = 16 << 10;
/// How long a browser has to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ConsoleForward {
    pub pki: PathBuf,
    pub name: String,
    /// The station's console (`--http` of `control-station serve`).
    pub console: SocketAddr,
    /// The name in the station's certificate.
    pub station_name: String,
    /// The local address to listen on (loopback).
    pub listen: SocketAddr,
}

/// What to do with a connection's first request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// `GET /login?token=T` with the right token: set the cookie.
    Login,
    /// The cookie holds the token: forward.
    Forward,
    /// Neither: refuse.
    Refuse,
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decide from a request head (bytes up to and including the blank line).
pub fn admit(head: &str, token: &str) -> Admit {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if method == "GET" {
        if let Some(query) = target.strip_prefix("/login?") {
            let given = query.split('&').find_map(|kv| kv.strip_prefix("token="));
            if given.is_some_and(|g| same(g, token)) {
                return Admit::Login;
            }
            return Admit::Refuse;
        }
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("cookie") {
            continue;
        }
        for c in value.split(';') {
            if let Some(v) = c.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')) {
                if same(v, token) {
                    return Admit::Forward;
                }
            }
        }
    }
    Admit::Refuse
}

/// Forward until interrupted. Prints the address to open.
pub async fn run(f: ConsoleForward) -> Result<()> {
    if !f.listen.ip().is_loopback() {
        bail!(
            "--listen {}: the console forwarder listens on a loopback address only (it presents your certificate)",
            f.listen
        );
    }
    let identity = Identity::load(&f.pki, &f.name)
        .with_context(|| format!("loading certificate {} from {}", f.name, f.pki.display()))?;
    let tls = transport::https::client_config(identity.ca_certs(), Some(&identity))?;
    let server_name = rustls_pki_types::ServerName::try_from(f.station_name.clone())
        .with_context(|| format!("--station-name {:?} is not a server name", f.station_name))?;
    // The console must answer before anyone is told where to go.
    check_console(&tls, &server_name, f.console)
        .await
        .with_context(|| format!("reaching the station's web console at {}", f.console))?;
    let listener = TcpListener::bind(f.listen)
        .await
        .with_context(|| format!("listening on {}", f.listen))?;
    let local = listener.local_addr()?;
    let token = new_token();
    println!("http://{local}/login?token={token}");
    eprintln!(
        "the web console of {} as {} is forwarded to the address above (open it in a browser; stop with Ctrl-C)",
        f.console, f.name
    );
    let connector = tokio_rustls::TlsConnector::from(tls);
    let token = Arc::new(token);
    loop {
        let (browser, _) = listener.accept().await.context("accepting a browser connection")?;
        let (connector, token, server_name) = (connector.clone(), token.clone(), server_name.clone());
        let console = f.console;
        tokio::spawn(async move {
            if let Err(e) = serve(browser, &token, connector, server_name, console).await {
                tracing::debug!(error = %format!("{e:#}"), "console connection ended");
            }
        });
    }
}

fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}

async fn check_console(
    tls: &Arc<rustls::ClientConfig>,
    name: &rustls_pki_types::ServerName<'static>,
    console: SocketAddr,
) -> Result<()> {
    let tcp = TcpStream::connect(console).await?;
    let mut s = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    s.write_all(b"GET /api/machines HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.ok();
    let status = String::from_utf8_lossy(answer.get(..12).unwrap_or_default()).into_owned();
    if status.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        let body = String::from_utf8_lossy(&answer);
        let why = body.split("\r\n\r\n").nth(1).unwrap_or_default();
        bail!("the console answered {status:?}: {why}")
    }
}

async fn serve(
    mut browser: TcpStream,
    token: &str,
    connector: tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
    console: SocketAddr,
) -> Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let end = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            let n = browser.read(&mut buf).await?;
            if n == 0 {
                bail!("the browser closed before its request");
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(i + 4);
            }
            if head.len() > MAX_HEAD {
                bail!("request head over {MAX_HEAD} bytes");
            }
        }
    })
    .await
    .context("no request in time")??;
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    match admit(&text, token) {
        Admit::Login => {
            let reply = format!(
                "HTTP/1.1 303 See Other\r\nLocation: /\r\nSet-Cookie: {COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            browser.write_all(reply.as_bytes()).await?;
            Ok(())
        }
        Admit::Refuse => {
            let body = "This address serves the data mover console to the browser that opened the address `smapp console` printed (with its token).\n";
            let reply = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            browser.write_all(reply.as_bytes()).await?;
            Ok(())
        }
        Admit::Forward => {
            let tcp = TcpStream::connect(console).await?;
            let mut station = connector
                .connect(name, tcp)
                .await
                .context("TLS handshake with the console")?;
            station.write_all(&head).await?;
            tokio::io::copy_bidirectional(&mut browser, &mut station).await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_holder_is_forwarded() {
        let t = "abc123";
        assert_eq!(
            admit("GET /login?token=abc123 HTTP/1.1\r\nHost: x\r\n\r\n", t),
            Admit::Login
        );
        assert_eq!(
            admit("GET /login?token=abc124 HTTP/1.1\r\nHost: x\r\n\r\n", t),
            Admit::Refuse
        );
        assert_eq!(admit("POST /login?token=abc123 HTTP/1.1\r\n\r\n", t), Admit::Refuse);
        assert_eq!(
            admit(
                "GET /api/channels HTTP/1.1\r\nCookie: a=b; dmc_console_token=abc123\r\n\r\n",
                t
            ),
            Admit::Forward
        );
        assert_eq!(
            admit("GET / HTTP/1.1\r\ncookie: dmc_console_token=abc12\r\n\r\n", t),
            Admit::Refuse
        );
        assert_eq!(admit("GET / HTTP/1.1\r\nHost: x\r\n\r\n", t), Admit::Refuse);
        assert_eq!(admit("", t), Admit::Refuse);
    }
}
