//! `transport`: how the cluster's processes reach each other.
//!
//! - [`pki`]: the cluster CA and one certificate per component; the
//!   certificate's subject carries the component's [`Role`].
//! - [`bind`], [`connect`], [`accept`]: QUIC endpoints with mutual TLS 1.3
//!   (rustls, ring provider), trusting only the cluster CA, ALPN `dmc/1`;
//!   every connection yields the authenticated [`Peer`] (name and role), and
//!   [`require_role`] refuses requests a role may not make.
//! - [`FramedSend`] / [`FramedRecv`]: typed rkyv messages over QUIC
//!   bidirectional streams with a frame size limit; bad frames are errors
//!   and stop the stream with a code from [`codes`].
//! - [`raw_loopback_throughput`]: the reference number for benchmarks.

pub mod codes;
pub mod link;
pub mod pki;

mod bench;
mod endpoint;
mod error;
mod frame_codec;
mod framed;
mod peer;
mod role;
mod tls;

pub use bench::raw_loopback_throughput;
pub use endpoint::{accept, bind, connect};
pub use error::{Result, TransportError};
pub use frame_codec::LENGTH_PREFIX;
pub use framed::{accept_bi, framed, open_bi, FramedRecv, FramedSend};
pub use peer::{peer, require_role, Peer};
pub use pki::{Component, Identity, PkiError};
pub use role::{Role, UnknownRole};
pub use tls::{
    client_config, server_config, transport_config, ALPN, KEEP_ALIVE, MAX_BIDI_STREAMS, MAX_IDLE, RECEIVE_WINDOW,
    SEND_WINDOW, STREAM_RECEIVE_WINDOW,
};
