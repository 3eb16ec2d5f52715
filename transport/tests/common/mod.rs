//! Shared helpers for the transport integration tests: a PKI in a temporary
//! directory and endpoints on 127.0.0.1.

#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use transport::pki::{self, Component};
use transport::{Identity, Role};

/// Generous bound on any single network step in these tests.
pub const STEP: Duration = Duration::from_secs(10);

/// Await `fut`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {STEP:?}"))
}

/// 127.0.0.1 with an ephemeral port.
pub fn local() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A component reachable as localhost / 127.0.0.1.
pub fn component(name: &str, role: Role) -> Component {
    Component::new(name, role, ["localhost", "127.0.0.1"])
}

/// A fresh PKI directory holding the given components.
pub fn cluster(components: &[(&str, Role)]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let list: Vec<Component> = components.iter().map(|(n, r)| component(n, *r)).collect();
    pki::init(dir.path(), &list).expect("pki init");
    dir
}

pub fn load(dir: &Path, name: &str) -> Identity {
    Identity::load(dir, name).unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// A raw quinn client config trusting `identity`'s CA and presenting no
/// certificate at all.
pub fn client_without_certificate(identity: &Identity) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in identity.ca_certs() {
        roots.add(ca.clone()).expect("CA");
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![transport::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic client");
    quinn::ClientConfig::new(Arc::new(quic))
}
