//! Generating the cluster CA and component certificates in memory (rcgen,
//! ECDSA P-256 keys).

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::{Component, PkiError};

/// How long the cluster CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a component certificate is valid; rotate with
/// [`reissue`](super::reissue).
pub const LEAF_VALIDITY_DAYS: i64 = 825;
/// Organization written in every subject of this cluster's certificates.
const ORGANIZATION: &str = "data mover cluster";
/// Certificates start being valid a little in the past to tolerate clock skew
/// between cluster hosts.
const BACKDATE: Duration = Duration::hours(1);

/// A freshly generated CA: its certificate and the issuer that signs leaves.
pub(crate) struct NewCa {
    pub cert: Certificate,
    pub issuer: Issuer<'static, KeyPair>,
}

/// A freshly generated component certificate and its key.
pub(crate) struct NewLeaf {
    pub cert: Certificate,
    pub key: KeyPair,
}

fn generr(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Generate { what, source }
}

/// Generate a new cluster CA: self-signed, may sign leaf certificates only
/// (path length 0), key usage certificate and CRL signing, 10 years.
pub(crate) fn new_ca() -> Result<NewCa, PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!(
            "dmc cluster CA {:04}-{:02}-{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        ),
    );
    dn.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    let key = KeyPair::generate().map_err(generr("the CA key"))?;
    let cert = params.self_signed(&key).map_err(generr("the CA certificate"))?;
    Ok(NewCa {
        cert,
        issuer: Issuer::new(params, key),
    })
}

/// Rebuild the issuer of an existing CA from its PEM certificate and key.
pub(crate) fn load_issuer(cert_pem: &str, key_pem: &str) -> Result<Issuer<'static, KeyPair>, String> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| format!("CA key cannot be read: {e}"))?;
    Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| format!("CA certificate cannot be used to issue: {e}"))
}

/// A revocation list signed by `issuer` revoking `serials` (PEM), number
/// `number`, valid a year (webpki does not enforce its expiry by default).
pub(crate) fn new_crl(issuer: &Issuer<'_, KeyPair>, serials: &[Vec<u8>], number: u64) -> Result<String, PkiError> {
    let now = OffsetDateTime::now_utc();
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - BACKDATE,
        next_update: now + Duration::days(365),
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(s),
                revocation_time: now - BACKDATE,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer).map_err(generr("the revocation list"))?;
    crl.pem().map_err(generr("the revocation list's PEM"))
}

/// Generate a key and a certificate for `component`, signed by `issuer`:
/// subject `CN=<name>, OU=<role>, O=data mover cluster`, SANs the name and
/// every host, client and server authentication.
pub(crate) fn new_leaf(issuer: &Issuer<'_, KeyPair>, component: &Component) -> Result<NewLeaf, PkiError> {
    let now = OffsetDateTime::now_utc();
    let what = |thing: &str| format!("the {thing} of component {:?}", component.name);
    let mut params = CertificateParams::new(component.alt_names()).map_err(generr(what("names")))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, component.name.as_str());
    dn.push(DnType::OrganizationalUnitName, component.role.as_str());
    dn.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(LEAF_VALIDITY_DAYS);
    let key = KeyPair::generate().map_err(generr(what("key")))?;
    let cert = params.signed_by(&key, issuer).map_err(generr(what("certificate")))?;
    Ok(NewLeaf { cert, key })
}
