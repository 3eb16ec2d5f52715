//! One connection per peer, reused by every conversation with it.
//!
//! Opening a QUIC connection costs a TLS handshake; a stream on an open one
//! costs nothing. A [`Dialer`] keeps the connection to each peer (by name)
//! and dials again only when it is closed or the peer registered a new
//! address (a restarted process: never reuse a connection to its previous
//! incarnation).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::endpoint::connect;
use crate::error::Result;
use crate::role::Role;

/// Cached connections to peers, by name.
pub struct Dialer {
    endpoint: quinn::Endpoint,
    peers: tokio::sync::Mutex<HashMap<String, quinn::Connection>>,
}

impl Dialer {
    pub fn new(endpoint: quinn::Endpoint) -> Dialer {
        Dialer {
            endpoint,
            peers: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint connections are made from.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// An open connection to `name` at `addr` whose certificate carries
    /// `role`: the cached one, or a new one.
    pub async fn connect(&self, name: &str, addr: SocketAddr, role: Role) -> Result<quinn::Connection> {
        let mut peers = self.peers.lock().await;
        if let Some(c) = peers.get(name) {
            if c.close_reason().is_none() && c.remote_address() == addr {
                return Ok(c.clone());
            }
        }
        let (conn, _) = connect(&self.endpoint, addr, name, role).await?;
        peers.insert(name.to_owned(), conn.clone());
        Ok(conn)
    }

    /// Forget the connection to `name` (e.g. after it failed in a way the
    /// connection does not know yet); the next [`Dialer::connect`] dials.
    pub async fn forget(&self, name: &str) {
        self.peers.lock().await.remove(name);
    }
}
