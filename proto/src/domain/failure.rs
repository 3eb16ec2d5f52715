//! Why a request failed, for programs: every error that crosses the wire
//! carries a [`FailureCode`] beside its message, so a client decides what
//! to do (retry, report, give up) from the code and shows the message to
//! people. Nothing matches on message text.

use std::fmt;

use super::text_enum::text_enum;

text_enum! {
    /// The kind of a failure.
    pub enum FailureCode as "failure code" {
        /// The peer may not do this (authenticated, not authorized), or
        /// the request is not allowed in the current state.
        Refused = "refused",
        /// What the request names does not exist (object, ABS, tape, file).
        NotFound = "not-found",
        /// The request itself is malformed or contradicts itself.
        Invalid = "invalid",
        /// It already exists or is in use (a tape in the library, a file).
        Conflict = "conflict",
        /// Data failed a check (CRC, length, labels, catalog vs. tape).
        Corrupt = "corrupt",
        /// A transient condition (a peer lost or restarting, the catalog
        /// unreachable): the same request may succeed later.
        Retryable = "retryable",
        /// Cancelled by whoever asked (or their going away).
        Cancelled = "cancelled",
        /// Anything else: a fault of ours; the message says what.
        Internal = "internal",
    }
}

impl FailureCode {
    /// The exit status of a command-line client that failed this way
    /// (documented in `smapp --help`): scripts branch on it.
    pub fn exit_status(self) -> u8 {
        match self {
            FailureCode::Internal => 1,
            FailureCode::Invalid => 2,
            FailureCode::Refused => 3,
            FailureCode::NotFound => 4,
            FailureCode::Conflict => 5,
            FailureCode::Corrupt => 6,
            FailureCode::Retryable => 7,
            FailureCode::Cancelled => 8,
        }
    }
}

/// A failure as it travels: its code and the message for people.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Failure {
    pub code: FailureCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: FailureCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::Refused, message)
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::NotFound, message)
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::Invalid, message)
    }

    pub fn conflict(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::Conflict, message)
    }

    pub fn corrupt(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::Corrupt, message)
    }

    pub fn retryable(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::Retryable, message)
    }

    pub fn cancelled(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::Cancelled, message)
    }

    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(FailureCode::Internal, message)
    }
}

impl Failure {
    /// The failure to send for an error: `message` for people, and the
    /// code of the first [`Failure`] in the error's chain of causes (code
    /// that knows the kind of a failure raises a `Failure`, and any context
    /// added on the way up keeps it), else `default`.
    pub fn from_chain<'a>(
        chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
        message: String,
        default: FailureCode,
    ) -> Failure {
        let code = chain
            .into_iter()
            .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.code))
            .unwrap_or(default);
        Failure { code, message }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Context(&'static str, Failure);

    impl fmt::Display for Context {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn the_code_comes_from_the_cause_under_any_context() {
        let e = Context("restoring", Failure::conflict("file exists"));
        let chain: Vec<&(dyn std::error::Error + 'static)> = vec![&e, &e.1];
        let f = Failure::from_chain(chain, "restoring: file exists".into(), FailureCode::Internal);
        assert_eq!(f, Failure::conflict("restoring: file exists"));
        let plain = std::io::Error::other("disk");
        let f = Failure::from_chain(
            [&plain as &(dyn std::error::Error + 'static)],
            "disk".into(),
            FailureCode::Internal,
        );
        assert_eq!(f.code, FailureCode::Internal);
    }

    #[test]
    fn every_code_has_its_own_exit_status() {
        let mut seen = std::collections::HashSet::new();
        for code in FailureCode::ALL {
            let status = code.exit_status();
            assert!(status > 0, "{code}: 0 is success");
            assert!(seen.insert(status), "{code}: status {status} used twice");
        }
    }
}
