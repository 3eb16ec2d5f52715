//! The operators' web console (issue 16): `control-station serve --http
//! ADDR` serves it over HTTPS with the cluster's certificates.
//!
//! - **Who**: the holder of an operator certificate of this cluster
//!   ([`auth`]): browsers import the PKCS#12 that `pki issue
//!   NAME:operator --p12` writes, or `smapp console` forwards a local port
//!   with the operator's certificate ([`smapp-client`]).
//! - **What**: one page (embedded in the binary: no internet, no build
//!   step) with four views — channels live, drives and library, catalog,
//!   movers and nodes — over the JSON API of [`api`], kept live by the
//!   Server-Sent Events of [`events`].

pub mod api;
mod assets;
pub mod auth;
mod events;
pub mod listener;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;
use transport::crl::Revoked;
use transport::Identity;

use crate::service::Station;
use listener::{Client, TlsListener};

/// What every handler reaches.
#[derive(Clone)]
pub struct ConsoleState {
    pub st: Arc<Station>,
    /// Serials revoked now (the station's revocation list, reloaded as it
    /// changes).
    pub revoked: watch::Receiver<Revoked>,
}

/// The console's routes, every one behind [`auth::require_operator`].
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/app.css", get(assets::style))
        .route("/api/channels", get(api::channels))
        .route("/api/channels/{id}", get(api::channel))
        .route("/api/machines", get(api::machines))
        .route("/api/library", get(api::library))
        .route("/api/abs", get(api::abs_search))
        .route("/api/abs/{id}", get(api::abs_detail))
        .route("/api/peers", get(api::peers))
        .route("/api/notifications", get(api::notifications))
        .route("/api/notifications/{id}/ack", post(api::acknowledge))
        .route("/api/library/label", post(api::label))
        .route("/api/library/export", post(api::export))
        .route("/api/library/import", post(api::import))
        .route("/api/events", get(events::events))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_operator,
        ))
        .with_state(state)
}

/// Bind the console on `addr` (fails at once if it cannot), then serve it
/// in the background. Returns the address bound.
pub async fn start(
    st: Arc<Station>,
    identity: &Identity,
    addr: SocketAddr,
    revoked: watch::Receiver<Revoked>,
) -> Result<SocketAddr> {
    let config = transport::https::server_config(identity)?;
    let listener = TlsListener::bind(addr, config).await?;
    let local = listener.local_addr();
    let app = router(ConsoleState { st, revoked });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<Client>()).await {
            tracing::error!(error = %e, "the web console stopped");
        }
    });
    tracing::info!(address = %local, "web console listening (HTTPS, operator certificates)");
    Ok(local)
}
