//! Errors of the catalog.

use thiserror::Error;

use crate::channel::{ChannelState, IllegalTransition, ParseChannelError};

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
        channel: i64,
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

    pub(crate) fn illegal(channel: i64, e: IllegalTransition) -> Self {
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
}

impl From<ParseChannelError> for CatalogError {
    fn from(e: ParseChannelError) -> Self {
        CatalogError::corrupt(e.to_string())
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
