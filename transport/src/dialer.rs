//! One connection per peer, reused by every conversation with it.
//!
//! Opening a QUIC connection costs a TLS handshake; a stream on an open one
//! costs nothing. A [`Dialer`] keeps the connection to each peer (by name)
//! and dials again only when it is closed or the peer registered again
//! (another address, or another `boot`: a restarted process, whose earlier
//! start's connection is never reused even at the same address).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::endpoint::connect;
use crate::error::Result;
use crate::role::Role;

/// Cached connections to peers, by name.
pub struct Dialer {
    endpoint: quinn::Endpoint,
    peers: tokio::sync::Mutex<HashMap<String, (quinn::Connection, u64)>>,
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

    /// An open connection to start `boot` of `name` at `addr` whose
    /// certificate carries `role`: the cached one, or a new one.
    pub async fn connect(&self, name: &str, addr: SocketAddr, boot: u64, role: Role) -> Result<quinn::Connection> {
        let mut peers = self.peers.lock().await;
        if let Some((c, b)) = peers.get(name) {
            if c.close_reason().is_none() && c.remote_address() == addr && *b == boot {
                return Ok(c.clone());
            }
            // An earlier start of the peer: close it rather than leave it
            // to time out.
            c.close(crate::codes::DONE, b"peer restarted");
        }
        let (conn, _) = connect(&self.endpoint, addr, name, role).await?;
        peers.insert(name.to_owned(), (conn.clone(), boot));
        Ok(conn)
    }

    /// Forget the connection to `name` (e.g. after it failed in a way the
    /// connection does not know yet); the next [`Dialer::connect`] dials.
    pub async fn forget(&self, name: &str) {
        self.peers.lock().await.remove(name);
    }
}
