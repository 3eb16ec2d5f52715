//! The error type of every fallible operation in this crate.

use std::io;
use std::net::SocketAddr;

use proto::domain::{Failure, FailureCode};
use proto::wire::WireError;
use thiserror::Error;

use crate::codes;
use crate::pki::PkiError;

/// `Result` with [`TransportError`] as the default error.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Something went wrong setting up or using a QUIC connection.
#[derive(Debug, Error)]
pub enum TransportError {
    /// Certificates or keys could not be created, read or used.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The TLS configuration could not be built from an identity.
    #[error("TLS configuration for {name}: {reason}")]
    Tls {
        /// The identity's component name.
        name: String,
        /// What rustls or quinn rejected.
        reason: String,
    },
    /// The UDP socket could not be bound.
    #[error("cannot bind a QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The requested local address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// A connection attempt could not even start, or its handshake failed.
    #[error("cannot connect to {server_name} at {addr}: {reason}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// The name the server's certificate was expected to carry.
        server_name: String,
        /// Why it failed.
        reason: String,
    },
    /// An incoming connection's handshake failed (bad or missing client
    /// certificate, wrong ALPN, timeout...).
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The remote address.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },
    /// The peer's certificate is missing, unparsable, or names no known role.
    #[error("peer at {addr} presented {problem}")]
    PeerCertificate {
        /// The remote address.
        addr: SocketAddr,
        /// What is wrong with the certificate.
        problem: String,
    },
    /// The peer is authenticated but not allowed to do what it asked, or
    /// does not have the role this side expected.
    #[error("refused: {reason}")]
    Refused {
        /// What was expected and what was found.
        reason: String,
    },
    /// The peer answered the request with a failure: its code says what
    /// kind, its message says what happened.
    #[error("{0}")]
    Failed(Failure),
    /// A frame could not be encoded, was malformed, or was too large.
    #[error(transparent)]
    Frame(#[from] WireError),
    /// The peer stopped reading this stream (`STOP_SENDING`).
    #[error("peer stopped the stream with code {code} ({meaning})")]
    Stopped {
        /// The application error code (see [`crate::codes`]).
        code: u64,
        /// What the code means.
        meaning: &'static str,
    },
    /// The peer abandoned the stream it was sending (`RESET_STREAM`).
    #[error("peer reset the stream with code {code} ({meaning})")]
    Reset {
        /// The application error code (see [`crate::codes`]).
        code: u64,
        /// What the code means.
        meaning: &'static str,
    },
    /// The stream can no longer be used (already finished, or it failed
    /// earlier).
    #[error("stream closed: {reason}")]
    Closed {
        /// Why the stream is unusable.
        reason: String,
    },
    /// The connection is gone.
    #[error("connection lost: {0}")]
    ConnectionLost(#[from] quinn::ConnectionError),
    /// Any other I/O error on a stream or socket.
    #[error("stream I/O: {0}")]
    Io(#[from] io::Error),
}

impl TransportError {
    /// The kind of this failure, for programs: the peer's own code when it
    /// answered with one, `Refused` for a refusal here, `Invalid` for a
    /// malformed frame, and `Retryable` for a connection or stream that
    /// broke (the same request may succeed on a new one).
    pub fn code(&self) -> FailureCode {
        match self {
            TransportError::Failed(f) => f.code,
            TransportError::Refused { .. } | TransportError::PeerCertificate { .. } => FailureCode::Refused,
            TransportError::Frame(_) => FailureCode::Invalid,
            TransportError::Pki(_) | TransportError::Tls { .. } | TransportError::Bind { .. } => FailureCode::Internal,
            TransportError::Connect { .. }
            | TransportError::Handshake { .. }
            | TransportError::Stopped { .. }
            | TransportError::Reset { .. }
            | TransportError::Closed { .. }
            | TransportError::ConnectionLost(_)
            | TransportError::Io(_) => FailureCode::Retryable,
        }
    }

    /// The peer sent `STOP_SENDING` with `code`.
    pub fn stopped(code: quinn::VarInt) -> Self {
        TransportError::Stopped {
            code: code.into_inner(),
            meaning: codes::describe(code),
        }
    }

    /// The peer sent `RESET_STREAM` with `code`.
    pub fn reset(code: quinn::VarInt) -> Self {
        TransportError::Reset {
            code: code.into_inner(),
            meaning: codes::describe(code),
        }
    }
}

impl From<quinn::WriteError> for TransportError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::Stopped(code) => TransportError::stopped(code),
            quinn::WriteError::ConnectionLost(c) => TransportError::ConnectionLost(c),
            other => TransportError::Closed {
                reason: other.to_string(),
            },
        }
    }
}

impl From<quinn::ReadError> for TransportError {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::Reset(code) => TransportError::reset(code),
            quinn::ReadError::ConnectionLost(c) => TransportError::ConnectionLost(c),
            other => TransportError::Closed {
                reason: other.to_string(),
            },
        }
    }
}

impl From<quinn::ReadToEndError> for TransportError {
    fn from(e: quinn::ReadToEndError) -> Self {
        match e {
            quinn::ReadToEndError::Read(e) => e.into(),
            quinn::ReadToEndError::TooLong => TransportError::Closed {
                reason: "peer sent more than expected".into(),
            },
        }
    }
}

impl From<quinn::ClosedStream> for TransportError {
    fn from(e: quinn::ClosedStream) -> Self {
        TransportError::Closed { reason: e.to_string() }
    }
}

/// The failure to answer for an error on the way out of a process: the
/// error with its context as the message, and the code of the first
/// [`Failure`] among its causes (code that knows what kind of failure it
/// raises raises a `Failure`), else `default`.
pub fn failure_of(e: &anyhow::Error, default: FailureCode) -> Failure {
    Failure::from_chain(e.chain(), format!("{e:#}"), default)
}

/// [`failure_of`] with `who` (the process) before the message.
pub fn failure_in(who: &str, e: &anyhow::Error, default: FailureCode) -> Failure {
    Failure::from_chain(e.chain(), format!("{who}: {e:#}"), default)
}
