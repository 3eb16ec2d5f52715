//! Errors of the cluster PKI: every one names the file or component at fault.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// A certificate or key could not be created, read, or used.
#[derive(Debug, Error)]
pub enum PkiError {
    /// A file the identity needs does not exist.
    #[error("{path}: file is missing ({what})", path = path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// What the file should have held.
        what: &'static str,
    },
    /// A file exists but does not hold what it should.
    #[error("{path}: {reason}", path = path.display())]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}", path = path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file would have been overwritten without being asked to.
    #[error("{path} already exists; {hint}", path = path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
        /// What to do instead.
        hint: &'static str,
    },
    /// A component description cannot become a certificate.
    #[error("component {name:?}: {reason}")]
    Component {
        /// The component's name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// In-memory certificate material is unusable.
    #[error("identity: {reason}")]
    Identity {
        /// What is wrong with it.
        reason: String,
    },
    /// rcgen failed to generate a key or certificate.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
}
