//! Errors of the catalog.

use proto::domain::{ChannelId, ChannelState, FailureCode, IdOutOfRange, ParseDomainError};
use thiserror::Error;

use crate::channel::IllegalTransition;

/// Why a catalog operation failed.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The database failed or refused the statement.
    #[error("catalog database error: {0}")]
    Db(#[from] sqlx::Error),

    /// Migrations could not be applied.
    #[error("catalog migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A row the operation needs does not exist.
    #[error("{what} {id} not found in the catalog")]
    NotFound { what: &'static str, id: String },

    /// The channel's state machine has no such transition; nothing changed.
    #[error("channel {channel}: illegal transition {from} → {to}")]
    IllegalTransition {
        channel: ChannelId,
        from: ChannelState,
        to: ChannelState,
    },

    /// The operation contradicts what the catalog already holds (a different
    /// segment at the same place, a tape in another drive, a wrong role, ...).
    #[error("catalog conflict: {what}")]
    Conflict { what: String },

    /// An argument cannot be stored (out of range, malformed).
    #[error("invalid catalog input: {what}")]
    Invalid { what: String },
}

impl CatalogError {
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        CatalogError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn conflict(what: impl Into<String>) -> Self {
        CatalogError::Conflict { what: what.into() }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        CatalogError::Invalid { what: what.into() }
    }

    pub(crate) fn illegal(channel: ChannelId, e: IllegalTransition) -> Self {
        CatalogError::IllegalTransition {
            channel,
            from: e.from,
            to: e.to,
        }
    }

    /// The database holds a value this code cannot read (a bad enum string,
    /// a number out of range): reported as a decode error.
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        CatalogError::Db(sqlx::Error::Decode(what.into().into()))
    }

    /// The SQLSTATE of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            CatalogError::Db(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// Whether this is a Postgres unique violation (23505).
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate().as_deref() == Some("23505")
    }

    /// The kind of this failure, for the station's replies: a missing row
    /// is `NotFound`, a contradiction `Conflict` (an illegal transition
    /// `Refused`), bad input `Invalid`, a value the catalog cannot read
    /// `Corrupt`, an unreachable database `Retryable`.
    pub fn code(&self) -> FailureCode {
        match self {
            CatalogError::NotFound { .. } => FailureCode::NotFound,
            CatalogError::Conflict { .. } => FailureCode::Conflict,
            CatalogError::Invalid { .. } => FailureCode::Invalid,
            CatalogError::IllegalTransition { .. } => FailureCode::Refused,
            CatalogError::Migrate(_) => FailureCode::Internal,
            CatalogError::Db(e) => db_code(e),
        }
    }
}

/// The kind of a database failure.
fn db_code(e: &sqlx::Error) -> FailureCode {
    use sqlx::Error as E;
    match e {
        E::Decode(_) | E::ColumnDecode { .. } => FailureCode::Corrupt,
        E::RowNotFound => FailureCode::NotFound,
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed | E::Protocol(_) => {
            FailureCode::Retryable
        }
        E::Database(d) => match d.code().as_deref() {
            // A unique or exclusion violation: it exists already.
            Some("23505" | "23P01") => FailureCode::Conflict,
            // A check, not-null or foreign-key violation: bad input.
            Some(c) if c.starts_with("23") => FailureCode::Invalid,
            // Connection trouble, shutdown, serialization: try again.
            Some(c) if c.starts_with("08") || c.starts_with("57") || c.starts_with("40") || c.starts_with("53") => {
                FailureCode::Retryable
            }
            _ => FailureCode::Internal,
        },
        _ => FailureCode::Internal,
    }
}

impl From<ParseDomainError> for CatalogError {
    fn from(e: ParseDomainError) -> Self {
        CatalogError::corrupt(e.to_string())
    }
}

impl From<IdOutOfRange> for CatalogError {
    fn from(e: IdOutOfRange) -> Self {
        CatalogError::invalid(e.to_string())
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
