//! HTTPS with the cluster CA: the station's web console (server side), and
//! the operator's console forwarder and tests (client side).
//!
//! The server asks every browser for a certificate but lets a handshake
//! without one through, so that the console can answer it with a page
//! saying what is missing (HTTP 401) instead of a bare TLS alert. A
//! certificate that is presented must chain to the cluster CA and not be on
//! its revocation list; what its holder may do is decided per request from
//! the [`CertHolder`] read here.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::error::{Result, TransportError};
use crate::pki::{inspect, Identity};
use crate::role::Role;

/// The ALPN protocol the console speaks.
pub const HTTP1: &[u8] = b"http/1.1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(name: &str) -> impl Fn(String) -> TransportError + '_ {
    move |reason| TransportError::Tls {
        name: name.to_owned(),
        reason,
    }
}

/// Server side of the console: present `identity`; ask for a client
/// certificate chaining to the cluster CA (checked against its revocation
/// list), allow none; TLS 1.2 or 1.3; HTTP/1.1.
pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>> {
    let err = tls_err(identity.name());
    let roots = identity
        .roots()
        .map_err(|e| err(format!("CA certificate rejected: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(identity.crls().iter().cloned())
        .allow_unauthenticated()
        .build()
        .map_err(|e| err(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain().to_vec(), identity.key().clone_key())
        .map_err(|e| err(format!("certificate and key rejected: {e}")))?;
    tls.alpn_protocols = vec![HTTP1.to_vec()];
    Ok(Arc::new(tls))
}

/// Client side: trust only the CA certificates `ca`; present `identity`
/// when given (None: connect without a certificate, as a browser that has
/// none would).
pub fn client_config(ca: &[CertificateDer<'static>], identity: Option<&Identity>) -> Result<Arc<rustls::ClientConfig>> {
    let name = identity.map_or("console client", |i| i.name());
    let err = tls_err(name);
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots
            .add(c.clone())
            .map_err(|e| err(format!("CA certificate rejected: {e}")))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| err(format!("server verifier: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("protocol versions: {e}")))?
        .with_webpki_verifier(verifier);
    let mut tls = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.cert_chain().to_vec(), id.key().clone_key())
            .map_err(|e| err(format!("certificate and key rejected: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![HTTP1.to_vec()];
    Ok(Arc::new(tls))
}

/// Who presented a (verified) certificate: its component name, role and
/// serial number (checked against the revocation list at each request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertHolder {
    pub name: String,
    pub role: Role,
    pub serial: Vec<u8>,
}

/// The holder of the leaf of a verified chain; an error says why the
/// certificate is unusable (no role, not X.509).
pub fn cert_holder(chain: &[CertificateDer<'_>]) -> std::result::Result<CertHolder, String> {
    let leaf = chain.first().ok_or_else(|| "an empty certificate chain".to_string())?;
    let subject = inspect::subject(leaf.as_ref())?;
    Ok(CertHolder {
        name: subject.name,
        role: subject.role,
        serial: inspect::serial(leaf.as_ref())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{ephemeral, Component};

    #[test]
    fn a_component_certificate_names_its_holder_and_role() {
        let ids = ephemeral(&[Component::new("alice", Role::Operator, ["localhost"])]).expect("pki");
        let holder = cert_holder(ids[0].cert_chain()).expect("holder");
        assert_eq!(holder.name, "alice");
        assert_eq!(holder.role, Role::Operator);
        assert!(!holder.serial.is_empty());
        assert!(cert_holder(&[]).is_err());
        assert!(cert_holder(&[CertificateDer::from(vec![1u8, 2, 3])]).is_err());
    }

    #[test]
    fn configs_build_with_and_without_a_client_certificate() {
        let ids = ephemeral(&[
            Component::new("station", Role::Station, ["localhost"]),
            Component::new("alice", Role::Operator, ["localhost"]),
        ])
        .expect("pki");
        let server = server_config(&ids[0]).expect("server");
        assert_eq!(server.alpn_protocols, vec![HTTP1.to_vec()]);
        client_config(ids[1].ca_certs(), Some(&ids[1])).expect("client with certificate");
        client_config(ids[1].ca_certs(), None).expect("client without certificate");
    }
}
