//! The console's TLS listener: TCP accepted here, each TLS handshake done in
//! its own task (a slow or silent client holds up nobody), the connection
//! handed to the HTTP server with who presented which certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use transport::https::{cert_holder, CertHolder};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the kernel's
/// backlog.
const MAX_HANDSHAKES: usize = 64;

/// Who is on the other end of a console connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: SocketAddr,
    /// The certificate it presented (verified against the cluster CA), or
    /// why it has none that counts.
    pub cert: Result<CertHolder, String>,
}

pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, Client)>,
}

impl TlsListener {
    /// Listen on `addr`; connections come out of [`axum::serve::Listener::accept`]
    /// once their handshake is done.
    pub async fn bind(addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Result<TlsListener> {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the web console on {addr}"))?;
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, remote) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "web console: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "web console: TLS handshake refused");
                            metrics::counter!("dmc_console_handshakes_refused_total").increment(1);
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%remote, "web console: TLS handshake not finished in time");
                            metrics::counter!("dmc_console_handshakes_refused_total").increment(1);
                            return;
                        }
                    };
                    let cert = match tls.get_ref().1.peer_certificates() {
                        Some(chain) => cert_holder(chain),
                        None => Err("no client certificate".to_string()),
                    };
                    let _ = tx.send((tls, Client { addr: remote, cert })).await;
                });
            }
        });
        Ok(TlsListener { local, rx })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Client;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Client {
            addr: self.local,
            cert: Err("this is the listener itself".to_string()),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Client {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Client {
        stream.remote_addr().clone()
    }
}
