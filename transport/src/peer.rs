//! Who is on the other end of a connection, and what it may do.

use std::fmt;
use std::net::SocketAddr;

use rustls_pki_types::CertificateDer;

use crate::error::{Result, TransportError};
use crate::pki::inspect;
use crate::role::{self, Role};

/// The authenticated peer of a connection, read from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Component name (the certificate's common name).
    pub name: String,
    /// Role (the certificate's organizational unit).
    pub role: Role,
    /// The peer's address.
    pub addr: SocketAddr,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) at {}", self.name, self.role, self.addr)
    }
}

/// The peer of an established connection, from the leaf certificate it
/// presented. Errors if it presented none, or one that cannot be parsed or
/// carries no known role.
pub fn peer(conn: &quinn::Connection) -> Result<Peer> {
    let addr = conn.remote_address();
    let problem = |problem: String| TransportError::PeerCertificate { addr, problem };
    let identity = conn.peer_identity().ok_or_else(|| problem("no certificate".into()))?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| problem("an identity that is not an X.509 certificate chain".into()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| problem("an empty certificate chain".into()))?;
    let subject = inspect::subject(leaf).map_err(|reason| problem(format!("an unusable certificate: {reason}")))?;
    Ok(Peer {
        name: subject.name,
        role: subject.role,
        addr,
    })
}

/// Allow `peer` to `action` only if its role is one of `allowed`; otherwise
/// log the refusal and return [`TransportError::Refused`] saying
/// "peer X with role Y may not Z". `action` is a short verb phrase such as
/// `"register as a data mover"`.
pub fn require_role(peer: &Peer, allowed: &[Role], action: &str) -> Result<(), TransportError> {
    if allowed.contains(&peer.role) {
        return Ok(());
    }
    let reason = format!(
        "peer {} with role {} may not {action} (allowed roles: {})",
        peer.name,
        peer.role,
        if allowed.is_empty() {
            "none".to_owned()
        } else {
            role::list(allowed)
        }
    );
    tracing::warn!(peer = %peer.name, role = %peer.role, addr = %peer.addr, %reason, "refused request");
    Err(TransportError::Refused { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_role_names_peer_role_and_action() {
        let p = Peer {
            name: "pn-1".into(),
            role: Role::PrimaryNode,
            addr: "127.0.0.1:9".parse().unwrap(),
        };
        assert!(require_role(&p, &[Role::Station, Role::PrimaryNode], "send tracks").is_ok());
        let err = require_role(&p, &[Role::Operator], "replace the CA")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "refused: peer pn-1 with role primary-node may not replace the CA (allowed roles: operator)"
        );
    }
}
