//! A component's key and certificate as a PKCS#12 file, for browsers: an
//! operator imports it to use the web console with its certificate. The
//! file holds the key, the certificate and the cluster CA certificate,
//! encrypted with PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC) and MAC'd with
//! HMAC-SHA-256 under one password, as current browsers and OpenSSL 3
//! read them.

use std::path::{Path, PathBuf};

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, LocalKeyId, PrivateKey, PrivateKeyChain};

use super::{Identity, PkiError};

fn err(reason: impl std::fmt::Display) -> PkiError {
    PkiError::Identity {
        reason: format!("PKCS#12: {reason}"),
    }
}

/// The PKCS#12 bytes of `identity` under `password`.
pub fn to_p12(identity: &Identity, password: &str) -> Result<Vec<u8>, PkiError> {
    let key = PrivateKey::from_der(identity.key().secret_der()).map_err(err)?;
    let mut certs = Vec::new();
    for c in identity.cert_chain().iter().chain(identity.ca_certs()) {
        certs.push(Certificate::from_der(c.as_ref()).map_err(err)?);
    }
    let key_id = LocalKeyId(identity.name().as_bytes().to_vec());
    let mut store = KeyStore::new();
    store.add_entry(
        identity.name(),
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id, key, certs)),
    );
    store.writer(password).write().map_err(err)
}

/// Write `dir/NAME.p12` (mode 0600) for the component whose key and
/// certificate are in `dir`. Returns its path.
pub fn write_p12(dir: &Path, name: &str, password: &str) -> Result<PathBuf, PkiError> {
    let identity = Identity::load(dir, name)?;
    let bytes = to_p12(&identity, password)?;
    let path = dir.join(format!("{name}.p12"));
    super::files::write(&path, &bytes, super::files::KEY_MODE)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{ephemeral, Component};
    use crate::Role;
    use p12_keystore::Pkcs12ImportPolicy;

    #[test]
    fn the_p12_holds_key_certificate_and_ca_under_its_password() {
        let ids = ephemeral(&[Component::new("alice", Role::Operator, ["localhost"])]).expect("pki");
        let bytes = to_p12(&ids[0], "s3cret").expect("p12");
        let store = KeyStore::from_pkcs12(&bytes, "s3cret", Pkcs12ImportPolicy::Strict).expect("read back");
        let (_, chain) = store.private_key_chain().expect("key chain");
        assert_eq!(chain.key().as_der(), ids[0].key().secret_der());
        assert_eq!(chain.certs().len(), 2);
        assert_eq!(chain.certs()[0].as_der(), ids[0].cert_chain()[0].as_ref());
        assert_eq!(chain.certs()[1].as_der(), ids[0].ca_certs()[0].as_ref());
        assert!(KeyStore::from_pkcs12(&bytes, "wrong", Pkcs12ImportPolicy::Strict).is_err());
    }
}
