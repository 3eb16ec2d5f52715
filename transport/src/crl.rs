//! Revocation at run time: a process reloads its `crl.pem` when it
//! changes, so new handshakes of a revoked certificate fail, and tells its
//! connection handlers which serials are revoked, so they can drop the
//! connections such peers already have.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use crate::pki::{inspect, Identity, CRL};
use crate::tls;

/// Serials of revoked certificates.
pub type Revoked = Arc<HashSet<Vec<u8>>>;

/// How often the revocation list's file is looked at.
const POLL: Duration = Duration::from_secs(1);

/// Serials the identity's revocation lists revoke.
pub fn revoked_serials(identity: &Identity) -> HashSet<Vec<u8>> {
    identity
        .crls()
        .iter()
        .filter_map(|c| inspect::crl_serials(c.as_ref()).ok())
        .flatten()
        .collect()
}

/// The serial of the certificate `conn`'s peer presented.
pub fn peer_serial(conn: &quinn::Connection) -> Option<Vec<u8>> {
    let chain = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    inspect::serial(chain.first()?.as_ref()).ok()
}

/// Watch `dir/crl.pem` of component `name`: when it appears or changes,
/// reload the identity, give `endpoint` a server configuration that checks
/// the new list, and publish the revoked serials.
pub fn watch(endpoint: quinn::Endpoint, dir: PathBuf, name: String, initial: &Identity) -> watch::Receiver<Revoked> {
    let (tx, rx) = watch::channel(Arc::new(revoked_serials(initial)));
    let path = dir.join(CRL);
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = modified(&path);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            if tx.is_closed() {
                return;
            }
            let now = modified(&path);
            if now == seen {
                continue;
            }
            seen = now;
            let reloaded = Identity::load(&dir, &name).and_then(|id| {
                let server =
                    tls::server_config(&id).map_err(|e| crate::pki::PkiError::Identity { reason: e.to_string() })?;
                Ok((id, server))
            });
            match reloaded {
                Ok((id, server)) => {
                    // Incoming handshakes: every connection is mutual, so
                    // the side that accepts refuses a revoked peer. (Dialled
                    // connections keep the list loaded at start: quinn keeps
                    // the default client configuration per endpoint handle.)
                    endpoint.set_server_config(Some(server));
                    let revoked = revoked_serials(&id);
                    tracing::info!(path = %path.display(), revoked = revoked.len(), "revocation list reloaded");
                    let _ = tx.send(Arc::new(revoked));
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "revocation list not reloaded; keeping the last one")
                }
            }
        }
    });
    rx
}
