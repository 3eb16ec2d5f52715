//! Reading and writing the PEM files of the cluster PKI.
//!
//! Writes go to a temporary file in the same directory that is then renamed
//! over the target, so a crash never leaves half a key behind. Private keys
//! are created with mode `0600`, certificates with `0644`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::PkiError;

/// Permissions of a private key file.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Permissions of a certificate file.
pub(crate) const CERT_MODE: u32 = 0o644;

/// Atomically replace `path` with `contents`, created with `mode`.
pub(crate) fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let werr = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        let mut file = opts.open(&tmp)?;
        // The mode given to open() is filtered by the umask and ignored if
        // the file already existed; set it explicitly.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(werr)
}

/// Read a whole text file; a missing file is [`PkiError::Missing`].
pub(crate) fn read(path: &Path, what: &'static str) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => PkiError::Missing {
            path: path.to_owned(),
            what,
        },
        _ => PkiError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
pub(crate) fn certs(path: &Path, pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, format!("expected PEM certificates, found unreadable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, "expected a PEM CERTIFICATE block, found none".into()));
    }
    Ok(certs)
}

/// Every `X509 CRL` block of a PEM file; at least one.
pub(crate) fn crls(path: &Path, pem: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, PkiError> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                path,
                format!("expected a PEM revocation list, found unreadable PEM: {e}"),
            )
        })?;
    if crls.is_empty() {
        return Err(invalid(path, "expected a PEM X509 CRL block, found none".into()));
    }
    Ok(crls)
}

/// The private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn key(path: &Path, pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| invalid(path, format!("expected a PEM private key, found none usable: {e}")))
}

/// Warn when a private key file can be read by others than its owner.
pub(crate) fn check_key_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "private key is readable by group or others; expected mode 600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

pub(crate) fn invalid(path: &Path, reason: String) -> PkiError {
    PkiError::Invalid {
        path: PathBuf::from(path),
        reason,
    }
}
