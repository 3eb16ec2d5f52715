//! `transport`: how the cluster's processes reach each other.
//!
//! - [`pki`]: the cluster CA and one certificate per component; the
//!   certificate's subject carries the component's [`Role`].
//! - [`bind`], [`connect`], [`accept`]: QUIC endpoints with mutual TLS 1.3
//!   (rustls, ring provider), trusting only the cluster CA, ALPN `dmc/1`;
//!   every connection yields the authenticated [`Peer`] (name and role), and
//!   [`require_role`] refuses requests a role may not make.
//! - [`FramedSend`] / [`FramedRecv`]: typed rkyv messages over QUIC
//!   bidirectional streams with a frame size limit, and raw payloads after
//!   a frame without copies; bad frames are errors and stop the stream
//!   with a code from [`codes`].
//! - [`Dialer`]: one reused connection per peer; [`BufPool`]: reused
//!   buffers for bulk bytes handed to quinn without copying.
//! - [`raw_loopback_throughput`]: the reference number for benchmarks.

pub mod codes;
pub mod crl;
pub mod https;
pub mod link;
pub mod pki;
pub mod telemetry;

mod bench;
mod dialer;
mod endpoint;
mod error;
mod framed;
mod malloc;
mod peer;
mod pool;
mod role;
mod tls;

pub use bench::raw_loopback_throughput;
pub use dialer::Dialer;
pub use endpoint::{accept, bind, connect};
pub use error::{failure_in, failure_of, Result, TransportError};
pub use framed::{accept_bi, framed, open_bi, FramedRecv, FramedSend, Message, LENGTH_PREFIX};
pub use malloc::{runtime, tune_allocator};
pub use peer::{peer, require_role, Peer};
pub use pki::{Component, Identity, PkiError};
pub use pool::{BufPool, PooledBuf};
pub use role::{Role, UnknownRole};
pub use tls::{
    bidi_streams_for, client_config, server_config, transport_config, ALPN, CLUSTER_BIDI_STREAMS, KEEP_ALIVE,
    MAX_BIDI_STREAMS, MAX_IDLE, MAX_UDP_PAYLOAD, RECEIVE_WINDOW, SEND_WINDOW, STREAM_RECEIVE_WINDOW,
};
