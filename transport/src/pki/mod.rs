//! The cluster PKI: one CA per cluster and a certificate per component.
//!
//! Layout of a PKI directory:
//!
//! | file | content |
//! |---|---|
//! | `ca.crt` | the cluster CA certificate (PEM), the only trust anchor |
//! | `ca.key` | the CA's private key (PEM PKCS#8, mode 0600) |
//! | `<name>.crt` | a component's certificate (PEM) |
//! | `<name>.key` | that component's private key (PEM PKCS#8, mode 0600) |
//!
//! A component certificate has subject `CN=<name>, OU=<role>, O=data mover
//! cluster` (the role is what the control station authorizes on), subject
//! alternative names for the component name and each of its hosts (DNS
//! names or IP addresses), and both client and server authentication, so
//! every component can dial and be dialled.
//!
//! Nothing here overwrites the CA unless told to: [`init`] reuses an
//! existing CA, [`create_ca`] replaces one only with [`Overwrite::Replace`].
//! Component files are likewise only replaced by [`reissue`].

mod error;
mod files;
mod generate;
mod identity;
pub(crate) mod inspect;
mod operator;
mod p12;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair, PublicKeyData};
use rustls_pki_types::{CertificateDer, ServerName};

pub use error::PkiError;
pub use generate::{CA_VALIDITY_DAYS, LEAF_VALIDITY_DAYS};
pub use identity::Identity;
pub use operator::{init_ca, init_cluster, issue_into, issued, publish_crl, renew, revoke};
pub use p12::{to_p12, write_p12};

use crate::role::Role;

/// File name of the cluster CA certificate.
pub const CA_CERT: &str = "ca.crt";
/// File name of the cluster CA private key.
pub const CA_KEY: &str = "ca.key";
/// File name of the certificate revocation list (PEM), in the CA's
/// directory and in every directory it is published to.
pub const CRL: &str = "crl.pem";

/// A component to issue a certificate for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Unique name in the cluster: the certificate's common name, a DNS
    /// subject alternative name, and the stem of its file names. Letters,
    /// digits, `-` and `.`; starts and ends with a letter or digit.
    pub name: String,
    /// What the component is allowed to be.
    pub role: Role,
    /// Extra names it is reachable under: DNS names (`localhost`,
    /// `mover1.example.net`) or IP addresses (`127.0.0.1`, `::1`).
    pub hosts: Vec<String>,
}

impl Component {
    /// A component with the given name, role, and hosts.
    pub fn new<H: Into<String>>(name: impl Into<String>, role: Role, hosts: impl IntoIterator<Item = H>) -> Self {
        Component {
            name: name.into(),
            role,
            hosts: hosts.into_iter().map(Into::into).collect(),
        }
    }

    /// The subject alternative names: the name, then each distinct host.
    fn alt_names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        std::iter::once(&self.name)
            .chain(&self.hosts)
            .filter(|n| seen.insert(n.as_str()))
            .cloned()
            .collect()
    }

    fn validate(&self) -> Result<(), PkiError> {
        let bad = |reason: String| PkiError::Component {
            name: self.name.clone(),
            reason,
        };
        let n = &self.name;
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if n.is_empty() || n.len() > 63 {
            return Err(bad(format!("expected a name of 1 to 63 characters, found {}", n.len())));
        }
        if let Some(c) = n
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            return Err(bad(format!("expected letters, digits, '-' or '.', found {c:?}")));
        }
        if !edge_ok(n.chars().next()) || !edge_ok(n.chars().last()) {
            return Err(bad("expected the name to start and end with a letter or digit".into()));
        }
        if n.eq_ignore_ascii_case("ca") {
            return Err(bad("the name \"ca\" is reserved for the cluster CA files".into()));
        }
        for host in &self.hosts {
            if ServerName::try_from(host.as_str()).is_err() {
                return Err(bad(format!("host {host:?} is neither a DNS name nor an IP address")));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// Whether an existing file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail with [`PkiError::Exists`] if the file exists.
    Refuse,
    /// Replace the existing file.
    Replace,
}

/// The two files of one component.
pub(crate) struct Paths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Paths {
    pub(crate) fn new(dir: &Path, name: &str) -> Paths {
        Paths {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        }
    }

    fn ca(dir: &Path) -> Paths {
        Paths {
            cert: dir.join(CA_CERT),
            key: dir.join(CA_KEY),
        }
    }

    /// `true` if both exist, `false` if neither, an error naming
    /// the missing one if only one does.
    fn state(&self) -> Result<bool, PkiError> {
        match (self.cert.exists(), self.key.exists()) {
            (true, true) => Ok(true),
            (false, false) => Ok(false),
            (true, false) => Err(PkiError::Missing {
                path: self.key.clone(),
                what: "private key of an existing certificate",
            }),
            (false, true) => Err(PkiError::Missing {
                path: self.cert.clone(),
                what: "certificate of an existing private key",
            }),
        }
    }
}

/// Create the cluster CA in `dir` if it does not exist yet (an existing CA
/// is reused, never overwritten), then a certificate and key for each
/// component.
///
/// Re-running `init` is safe: a component whose files already exist is kept
/// when its certificate was issued by this CA, is still valid, matches its
/// key, and names the same component, role and hosts; otherwise `init` fails
/// naming the file, and [`reissue`] replaces it.
pub fn init(dir: &Path, components: &[Component]) -> Result<(), PkiError> {
    let mut names = HashSet::new();
    for c in components {
        c.validate()?;
        if !names.insert(c.name.to_ascii_lowercase()) {
            return Err(PkiError::Component {
                name: c.name.clone(),
                reason: "listed twice".into(),
            });
        }
    }
    create_dir(dir)?;
    let ca = Paths::ca(dir);
    if !ca.state()? {
        create_ca(dir, Overwrite::Refuse)?;
    }
    let (issuer, ca_der) = load_ca(dir)?;
    for c in components {
        let paths = Paths::new(dir, &c.name);
        if paths.state()? {
            check_existing(&paths, c, &ca_der)?;
            tracing::info!(component = %c, path = %paths.cert.display(), "kept existing certificate");
        } else {
            write_leaf(&paths, c, &issuer)?;
        }
    }
    Ok(())
}

/// Create a new cluster CA (`ca.crt`, `ca.key`) in `dir`.
///
/// With [`Overwrite::Refuse`] an existing `ca.crt` or `ca.key` is an error.
/// With [`Overwrite::Replace`] the old CA is replaced, and every component
/// certificate it issued stops being trusted: reissue them all.
pub fn create_ca(dir: &Path, overwrite: Overwrite) -> Result<(), PkiError> {
    create_dir(dir)?;
    let ca = Paths::ca(dir);
    if overwrite == Overwrite::Refuse {
        for path in [&ca.cert, &ca.key] {
            if path.exists() {
                return Err(PkiError::Exists {
                    path: path.clone(),
                    hint: "refusing to replace the cluster CA (every certificate it issued would stop being trusted); use Overwrite::Replace to do it anyway",
                });
            }
        }
    }
    let new = generate::new_ca()?;
    files::write(&ca.key, new.issuer.key().serialize_pem().as_bytes(), files::KEY_MODE)?;
    files::write(&ca.cert, new.cert.pem().as_bytes(), files::CERT_MODE)?;
    tracing::info!(path = %ca.cert.display(), "created cluster CA");
    Ok(())
}

/// Issue a certificate for one more component with the existing CA in
/// `dir`. Refuses to replace existing files of that component (see
/// [`reissue`]).
pub fn issue(dir: &Path, component: &Component) -> Result<(), PkiError> {
    issue_with(dir, component, Overwrite::Refuse)
}

/// Issue a fresh key and certificate for `component` with the existing CA
/// in `dir`, replacing its files if they exist (key rotation, changed role
/// or hosts, renewal).
pub fn reissue(dir: &Path, component: &Component) -> Result<(), PkiError> {
    issue_with(dir, component, Overwrite::Replace)
}

fn issue_with(dir: &Path, component: &Component, overwrite: Overwrite) -> Result<(), PkiError> {
    component.validate()?;
    let paths = Paths::new(dir, &component.name);
    if overwrite == Overwrite::Refuse {
        for path in [&paths.cert, &paths.key] {
            if path.exists() {
                return Err(PkiError::Exists {
                    path: path.clone(),
                    hint: "use reissue to replace this component's certificate",
                });
            }
        }
    }
    let (issuer, _) = load_ca(dir)?;
    write_leaf(&paths, component, &issuer)
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// The existing CA's issuer and certificate.
fn load_ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, CertificateDer<'static>), PkiError> {
    let ca = Paths::ca(dir);
    let cert_pem = files::read(&ca.cert, "cluster CA certificate")?;
    let key_pem = files::read(&ca.key, "cluster CA private key")?;
    let der = files::certs(&ca.cert, &cert_pem)?.remove(0);
    let issuer = generate::load_issuer(&cert_pem, &key_pem).map_err(|reason| files::invalid(&ca.cert, reason))?;
    if issuer.key().subject_public_key_info()
        != inspect::public_key_info(&der).map_err(|r| files::invalid(&ca.cert, r))?
    {
        return Err(files::invalid(
            &ca.key,
            format!(
                "expected the private key of {}, found a different key",
                ca.cert.display()
            ),
        ));
    }
    Ok((issuer, der))
}

fn write_leaf(paths: &Paths, component: &Component, issuer: &Issuer<'_, KeyPair>) -> Result<(), PkiError> {
    let leaf = generate::new_leaf(issuer, component)?;
    files::write(&paths.key, leaf.key.serialize_pem().as_bytes(), files::KEY_MODE)?;
    files::write(&paths.cert, leaf.cert.pem().as_bytes(), files::CERT_MODE)?;
    tracing::info!(component = %component, path = %paths.cert.display(), "issued certificate");
    Ok(())
}

/// Check that existing component files are what `component` asks for.
fn check_existing(paths: &Paths, component: &Component, ca_der: &[u8]) -> Result<(), PkiError> {
    let stale = |reason: String| files::invalid(&paths.cert, format!("{reason}; use reissue to replace it"));
    let der = files::certs(&paths.cert, &files::read(&paths.cert, "component certificate")?)?.remove(0);
    inspect::issued_by(&der, ca_der).map_err(stale)?;
    let subject = inspect::subject(&der).map_err(stale)?;
    if subject.name != component.name || subject.role != component.role {
        return Err(stale(format!(
            "expected a certificate for {component}, found one for {} ({})",
            subject.name, subject.role
        )));
    }
    let found = inspect::alt_names(&der).map_err(stale)?;
    let expected: BTreeSet<String> = component
        .alt_names()
        .into_iter()
        .map(|n| n.parse::<std::net::IpAddr>().map(|ip| ip.to_string()).unwrap_or(n))
        .collect();
    if found != expected {
        return Err(stale(format!("expected names {expected:?}, found {found:?}")));
    }
    let key_pem = files::read(&paths.key, "component private key")?;
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| files::invalid(&paths.key, format!("expected a PEM private key: {e}")))?;
    if key.subject_public_key_info() != inspect::public_key_info(&der).map_err(stale)? {
        return Err(files::invalid(
            &paths.key,
            format!(
                "expected the private key of {}, found a different key",
                paths.cert.display()
            ),
        ));
    }
    Ok(())
}

/// Generate an in-memory CA and one identity per `(name, role)`, all
/// trusting only that CA. Nothing touches the disk; meant for benchmarks and
/// tests that do not care about files.
pub fn ephemeral(components: &[Component]) -> Result<Vec<Identity>, PkiError> {
    let ca = generate::new_ca()?;
    let ca_der = ca.cert.der().clone();
    components
        .iter()
        .map(|c| {
            c.validate()?;
            let leaf = generate::new_leaf(&ca.issuer, c)?;
            let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf.key.serialize_der().into());
            Identity::new(vec![leaf.cert.der().clone()], key, vec![ca_der.clone()])
        })
        .collect()
}
