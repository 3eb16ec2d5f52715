//! A component's loaded identity: its certificate chain, private key, and
//! the cluster CA it trusts.

use std::fmt;
use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::{files, inspect, PkiError};
use crate::role::Role;

/// Everything a component needs to speak mutual TLS in the cluster.
pub struct Identity {
    name: String,
    role: Role,
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_certs: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

impl Identity {
    /// Load `<dir>/<name>.crt`, `<dir>/<name>.key`, `<dir>/ca.crt`, and the
    /// revocation list `<dir>/crl.pem` if there is one.
    ///
    /// Errors name the missing or invalid file: a certificate file without a
    /// `CERTIFICATE` block, a key file without a private key, a certificate
    /// without a role, or one whose common name is not `name`.
    pub fn load(dir: &Path, name: &str) -> Result<Identity, PkiError> {
        let paths = super::Paths::new(dir, name);
        let cert_chain = files::certs(&paths.cert, &files::read(&paths.cert, "component certificate")?)?;
        let key = files::key(&paths.key, &files::read(&paths.key, "component private key")?)?;
        files::check_key_mode(&paths.key);
        let ca_path = dir.join(super::CA_CERT);
        let ca_certs = files::certs(&ca_path, &files::read(&ca_path, "cluster CA certificate")?)?;
        let crl_path = dir.join(super::CRL);
        let crls = if crl_path.exists() {
            files::crls(&crl_path, &files::read(&crl_path, "revocation list")?)?
        } else {
            Vec::new()
        };
        let subject = inspect::subject(&cert_chain[0]).map_err(|reason| files::invalid(&paths.cert, reason))?;
        if subject.name != name {
            return Err(files::invalid(
                &paths.cert,
                format!(
                    "expected a certificate for component {name:?}, found one for {:?}",
                    subject.name
                ),
            ));
        }
        Ok(Identity {
            name: subject.name,
            role: subject.role,
            cert_chain,
            key,
            ca_certs,
            crls,
        })
    }

    /// Build an identity from material already in memory. The name and role
    /// are read from the first certificate of `cert_chain`.
    pub fn new(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca_certs: Vec<CertificateDer<'static>>,
    ) -> Result<Identity, PkiError> {
        let leaf = cert_chain.first().ok_or_else(|| PkiError::Identity {
            reason: "expected a certificate chain, found none".into(),
        })?;
        if ca_certs.is_empty() {
            return Err(PkiError::Identity {
                reason: "expected at least one CA certificate, found none".into(),
            });
        }
        let subject = inspect::subject(leaf).map_err(|reason| PkiError::Identity { reason })?;
        Ok(Identity {
            name: subject.name,
            role: subject.role,
            cert_chain,
            key,
            ca_certs,
            crls: Vec::new(),
        })
    }

    /// The component name (the certificate's common name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role the certificate grants.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The certificate chain presented to peers, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The private key of the leaf certificate.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// Revocation lists of the cluster CA this identity checks peers
    /// against (`crl.pem` in its directory; none: nothing is revoked).
    pub fn crls(&self) -> &[CertificateRevocationListDer<'static>] {
        &self.crls
    }

    /// The CA certificates this identity trusts (and nothing else).
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.ca_certs
    }

    /// A root store holding only the trusted CA certificates.
    pub(crate) fn roots(&self) -> Result<RootCertStore, rustls::Error> {
        let mut roots = RootCertStore::empty();
        for ca in &self.ca_certs {
            roots.add(ca.clone())?;
        }
        Ok(roots)
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            name: self.name.clone(),
            role: self.role,
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            ca_certs: self.ca_certs.clone(),
            crls: self.crls.clone(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("certificates", &self.cert_chain.len())
            .field("ca_certificates", &self.ca_certs.len())
            .finish_non_exhaustive()
    }
}
