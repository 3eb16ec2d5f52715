//! Reading what a certificate says: its component name, role, and names.
//!
//! Used on peers' certificates after a handshake and on existing files
//! before `init` decides to keep them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::role::{self, Role};

/// The identity a component certificate asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subject {
    /// The subject's common name (the component name).
    pub name: String,
    /// The role from the subject's organizational unit.
    pub role: Role,
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("certificate cannot be parsed as X.509: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "certificate has {} trailing bytes after its DER encoding",
            rest.len()
        ));
    }
    Ok(cert)
}

/// The serial number of a certificate (its DER bytes).
pub(crate) fn serial(der: &[u8]) -> Result<Vec<u8>, String> {
    Ok(parse(der)?.raw_serial().to_vec())
}

/// Serial numbers of the certificates a DER revocation list revokes.
pub(crate) fn crl_serials(der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| format!("revocation list cannot be parsed: {e}"))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect())
}

/// The component name (CN) and role (OU) of a certificate.
pub(crate) fn subject(der: &[u8]) -> Result<Subject, String> {
    let cert = parse(der)?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| format!("certificate subject \"{subject}\" has no common name (CN)"))?
        .to_owned();
    let units: Vec<&str> = subject
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .collect();
    let role = units.iter().find_map(|ou| ou.parse::<Role>().ok()).ok_or_else(|| {
        format!(
            "certificate of {name:?} carries no known role: expected OU=<one of {}>, found {}",
            role::list(&Role::ALL),
            if units.is_empty() {
                "no OU".to_owned()
            } else {
                format!("OU {units:?}")
            }
        )
    })?;
    Ok(Subject { name, role })
}

/// The subject alternative names of a certificate, DNS names and IP
/// addresses rendered as text.
pub(crate) fn alt_names(der: &[u8]) -> Result<BTreeSet<String>, String> {
    let cert = parse(der)?;
    let mut out = BTreeSet::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("certificate has an invalid subject alternative name extension: {e}"))?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(d) => {
                out.insert((*d).to_owned());
            }
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("length checked")),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("length checked")),
                    n => return Err(format!("certificate has an IP address name of {n} bytes")),
                };
                out.insert(ip.to_string());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Check that `leaf` was issued by `ca` (issuer name and signature) and is
/// within its validity period now.
pub(crate) fn issued_by(leaf: &[u8], ca: &[u8]) -> Result<(), String> {
    let leaf = parse(leaf)?;
    let ca = parse(ca)?;
    if leaf.issuer().as_raw() != ca.subject().as_raw() {
        return Err(format!(
            "certificate was issued by \"{}\", expected the cluster CA \"{}\"",
            leaf.issuer(),
            ca.subject()
        ));
    }
    leaf.verify_signature(Some(ca.public_key()))
        .map_err(|e| format!("certificate signature does not verify against the cluster CA: {e}"))?;
    if !leaf.validity().is_valid() {
        return Err(format!(
            "certificate is not valid now (valid from {} to {})",
            leaf.validity().not_before,
            leaf.validity().not_after
        ));
    }
    Ok(())
}

/// The DER `SubjectPublicKeyInfo` of a certificate.
pub(crate) fn public_key_info(der: &[u8]) -> Result<Vec<u8>, String> {
    Ok(parse(der)?.public_key().raw.to_vec())
}
