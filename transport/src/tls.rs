//! rustls and quinn configuration: mutual TLS 1.3 trusting only the cluster
//! CA, with the ring provider passed explicitly (no process-wide default).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;

use crate::error::{Result, TransportError};
use crate::pki::Identity;

/// The ALPN protocol every cluster connection negotiates.
pub const ALPN: &[u8] = b"dmc/1";

/// Per-stream flow-control window (receive side). Bounds what quinn
/// buffers for a stream its reader has not consumed; measured on loopback,
/// one stream runs as fast with 4 MiB as with 16 MiB (a 10 Gb/s link with
/// 1 ms of round trip needs 1.25 MB).
pub const STREAM_RECEIVE_WINDOW: u32 = 4 << 20;
/// Per-connection flow-control window (receive side): what all streams of
/// one connection may buffer together.
pub const RECEIVE_WINDOW: u32 = 16 << 20;
/// How much unacknowledged data a connection may have in flight.
pub const SEND_WINDOW: u64 = 16 << 20;
/// Largest UDP payload a connection grows its packets to, when the path
/// allows (MTU discovery probes up to it and falls back on a smaller path,
/// e.g. 1452 on plain Ethernet). quinn sends up to 10 packets at once with
/// GSO, which must fit one 64 KiB UDP datagram: so at most 6550 bytes. On
/// loopback, 5000-byte packets halve the CPU a gigabyte costs (measured:
/// raw stream 0.9 → 2.2 GB/s, 2.4 → 1.1 CPU-s/GiB) against 1452.
pub const MAX_UDP_PAYLOAD: u16 = 5000;
/// Keep-alive interval, well below [`MAX_IDLE`].
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A connection silent for this long is dead.
pub const MAX_IDLE: Duration = Duration::from_secs(20);
/// Concurrent bidirectional streams any peer may open before it is known
/// (one per conversation). QUIC can raise the limit later but never lower
/// it, so it starts at what a client or operator needs; see
/// [`bidi_streams_for`].
pub const MAX_BIDI_STREAMS: u32 = 8;
/// Concurrent bidirectional streams a cluster process (station, mover,
/// primary node) may open once authenticated: one per channel, command or
/// segment conversation.
pub const CLUSTER_BIDI_STREAMS: u32 = 256;

/// How many concurrent streams a peer of `role` may open. Each stream may
/// hold a partly received frame (up to the frame limit of its conversation)
/// in memory, so this bounds what one connection can make us hold.
pub fn bidi_streams_for(role: crate::Role) -> u32 {
    match role {
        crate::Role::Station | crate::Role::Mover | crate::Role::PrimaryNode => CLUSTER_BIDI_STREAMS,
        crate::Role::Client | crate::Role::Operator => MAX_BIDI_STREAMS,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(identity: &Identity) -> impl Fn(String) -> TransportError + '_ {
    move |reason| TransportError::Tls {
        name: identity.name().to_owned(),
        reason,
    }
}

/// Transport parameters tuned for bulk data between cluster hosts:
/// flow-control windows that let one stream fill a fast link, packets as
/// large as the path allows (up to [`MAX_UDP_PAYLOAD`]), keep-alives so
/// idle control connections survive, many concurrent conversations.
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(RECEIVE_WINDOW))
        .send_window(SEND_WINDOW)
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(
            IdleTimeout::try_from(MAX_IDLE).expect("20 s fits a QUIC idle timeout"),
        ))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    t
}

/// Server side: present `identity`, require a client certificate that
/// chains to the cluster CA (and nothing else) and is not on its
/// revocation list, TLS 1.3, ALPN `dmc/1`.
pub fn server_config(identity: &Identity) -> Result<quinn::ServerConfig> {
    let err = tls_err(identity);
    let roots = identity
        .roots()
        .map_err(|e| err(format!("CA certificate rejected: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(identity.crls().iter().cloned())
        .build()
        .map_err(|e| err(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain().to_vec(), identity.key().clone_key())
        .map_err(|e| err(format!("certificate and key rejected: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| err(format!("QUIC server: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// Client side: present `identity`, trust only the cluster CA, TLS 1.3,
/// ALPN `dmc/1`.
pub fn client_config(identity: &Identity) -> Result<quinn::ClientConfig> {
    let err = tls_err(identity);
    let roots = identity
        .roots()
        .map_err(|e| err(format!("CA certificate rejected: {e}")))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(identity.crls().iter().cloned())
        .build()
        .map_err(|e| err(format!("server verifier: {e}")))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(format!("protocol versions: {e}")))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(identity.cert_chain().to_vec(), identity.key().clone_key())
        .map_err(|e| err(format!("certificate and key rejected: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| err(format!("QUIC client: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}
