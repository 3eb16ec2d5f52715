//! Binding endpoints and establishing authenticated connections.
//!
//! Every endpoint is both a server (it accepts connections from peers with a
//! certificate from the cluster CA) and a client (its default client config
//! presents its own certificate and trusts only the cluster CA).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::codes;
use crate::error::{Result, TransportError};
use crate::peer::{peer, Peer};
use crate::pki::Identity;
use crate::role::Role;
use crate::tls;

/// Bytes asked for each UDP socket's send and receive buffers.
const SOCKET_BUFFER: usize = 4 << 20;

/// Bind a QUIC endpoint on `addr` that accepts and dials with mutual TLS as
/// `identity`. Must be called inside a tokio runtime.
pub fn bind(addr: SocketAddr, identity: &Identity) -> Result<quinn::Endpoint> {
    let server = tls::server_config(identity)?;
    let client = tls::client_config(identity)?;
    let sock = std::net::UdpSocket::bind(addr).map_err(|source| TransportError::Bind { addr, source })?;
    // Large socket buffers: a receiver busy with a burst of work (a
    // restore writing tracks) loses fewer datagrams, and so the sender
    // retransmits and backs off less. The kernel caps them (net.core.
    // rmem_max / wmem_max); a refusal only leaves the default.
    if let Ok(state) = quinn::udp::UdpSocketState::new((&sock).into()) {
        let _ = state.set_recv_buffer_size((&sock).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&sock).into(), SOCKET_BUFFER);
    }
    let runtime = Arc::new(quinn::TokioRuntime);
    let (reset, cid_key) = restart_keys(identity);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset));
    // Connection ids a later start recognizes as its own (an earlier
    // start's ids would otherwise be dropped as invalid, unanswered).
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    // What peers may send us: as large as our own packets may grow.
    config
        .max_udp_payload_size(tls::MAX_UDP_PAYLOAD)
        .map_err(|e| TransportError::Tls {
            name: identity.name().to_owned(),
            reason: format!("UDP payload size: {e}"),
        })?;
    let mut endpoint = quinn::Endpoint::new(config, Some(server), sock, runtime)
        .map_err(|source| TransportError::Bind { addr, source })?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

/// The key stateless-reset tokens are made with, and the key connection
/// ids are checked with, both derived from the identity's private key: the
/// same for every start of a process. So when a process restarts on its
/// address, the first packet a peer sends on a connection to its earlier
/// start carries an id the new start recognizes, and is answered with a
/// reset the peer accepts: the peer drops that connection at once instead
/// of waiting for it to time out. Nobody without the private key can forge
/// one.
fn restart_keys(identity: &Identity) -> (ring::hmac::Key, u64) {
    let derive = |label: &[u8]| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(label);
        ctx.update(identity.key().secret_der());
        ctx.finish()
    };
    let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derive(b"dmc/1 stateless reset key").as_ref());
    let cid = derive(b"dmc/1 connection id key");
    let mut k = [0u8; 8];
    k.copy_from_slice(&cid.as_ref()[..8]);
    (reset, u64::from_le_bytes(k))
}

/// Dial `server_name` at `addr`, and check that the server's certificate
/// carries `expected_role`. The TLS layer has already checked that it chains
/// to the cluster CA and names `server_name`. A server with another role is
/// refused: the connection is closed with [`codes::REFUSED`].
///
/// In TLS 1.3 the client finishes its side of the handshake before the
/// server has judged the client's certificate, so a client the server
/// refuses may see this succeed and the connection close right after
/// (its streams then fail with [`TransportError::ConnectionLost`]).
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    expected_role: Role,
) -> Result<(quinn::Connection, Peer)> {
    let connect_err = |reason: String| TransportError::Connect {
        addr,
        server_name: server_name.to_owned(),
        reason,
    };
    let connecting = endpoint
        .connect(addr, server_name)
        .map_err(|e| connect_err(e.to_string()))?;
    let conn = connecting.await.map_err(|e| {
        tracing::warn!(%addr, server = server_name, error = %e, "connection failed");
        connect_err(format!("handshake failed: {e}"))
    })?;
    let server = match peer(&conn) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%addr, server = server_name, reason = %e, "refused server");
            conn.close(codes::REFUSED, b"unusable certificate");
            return Err(e);
        }
    };
    if server.name != server_name {
        // TLS checked the certificate's host names; this is the component
        // it names: the peer we meant to reach, not another of the cluster.
        let reason = format!(
            "expected {server_name} at {addr}, its certificate names {} ({})",
            server.name, server.role
        );
        tracing::warn!(peer = %server.name, %addr, %reason, "refused server");
        conn.close(codes::REFUSED, b"wrong peer");
        return Err(TransportError::Refused { reason });
    }
    if server.role != expected_role {
        let reason = format!(
            "expected server {server_name} at {addr} to have role {expected_role}, found {} with role {}",
            server.name, server.role
        );
        tracing::warn!(peer = %server.name, role = %server.role, %addr, %reason, "refused server");
        conn.close(codes::REFUSED, b"wrong role");
        return Err(TransportError::Refused { reason });
    }
    conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(tls::bidi_streams_for(server.role)));
    Ok((conn, server))
}

/// Complete an incoming connection: the handshake (the client must present
/// a certificate from the cluster CA) and reading the client's name and
/// role. Failures are logged with the remote address and returned.
pub async fn accept(incoming: quinn::Incoming) -> Result<(quinn::Connection, Peer)> {
    let addr = incoming.remote_address();
    let conn = incoming.await.map_err(|e| {
        tracing::warn!(%addr, reason = %e, "refused incoming connection: handshake failed");
        TransportError::Handshake {
            addr,
            reason: e.to_string(),
        }
    })?;
    match peer(&conn) {
        Ok(p) => {
            conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(tls::bidi_streams_for(p.role)));
            Ok((conn, p))
        }
        Err(e) => {
            tracing::warn!(%addr, reason = %e, "refused incoming connection");
            conn.close(codes::REFUSED, b"unusable certificate");
            Err(e)
        }
    }
}
