//! The station's endpoint: accept connections, read each request within
//! its time, authorize it and hand it to [`super::dispatch`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use proto::domain::Failure;
use proto::wire::{StationReply, StationRequest, MAX_CONTROL_FRAME};
use transport::{Identity, Peer};

use super::authorize::authorize;
use super::dispatch::dispatch;
use super::{definitions, failure_of, recovery, watchdog, Station};

/// How long a peer has to send a whole request once it opened a stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve until the endpoint closes.
/// `pki`: the station's certificate directory, whose `crl.pem` is reloaded
/// when it changes (a revoked peer's connections are dropped).
pub async fn serve(station: Arc<Station>, identity: Identity, pki: PathBuf) -> Result<()> {
    let endpoint = transport::bind(station.cfg.listen, &identity).context("binding the station's QUIC endpoint")?;
    let revoked = transport::crl::watch(endpoint.clone(), pki, identity.name().to_string(), &identity);
    // Live announcements are followed before anything can change.
    tokio::spawn(super::live::follow(station.clone()));
    tokio::spawn(super::notify::deliver(station.clone(), identity.name().to_string()));
    recovery::at_start(&station).await?;
    definitions::at_start(&station).await?;
    if let Some(addr) = station.cfg.http {
        crate::console::start(station.clone(), &identity, addr, revoked.clone())
            .await
            .context("starting the web console (--http)")?;
    }
    tracing::info!(address = %endpoint.local_addr()?, "control station listening");
    tokio::spawn(watchdog(station.clone()));
    tokio::spawn(recovery::sweeper(station.clone()));
    tokio::spawn(definitions::scheduler(station.clone()));
    while let Some(incoming) = endpoint.accept().await {
        let st = station.clone();
        let revoked = revoked.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let (conn, peer) = match transport::accept(incoming).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "refused a connection");
                    metrics::counter!("dmc_station_connections_refused_total").increment(1);
                    return;
                }
            };
            tracing::info!(peer = %peer.name, role = peer.role.as_str(), %remote, "peer connected");
            serve_connection(st, conn, peer, revoked).await;
        });
    }
    Ok(())
}

async fn serve_connection(
    st: Arc<Station>,
    conn: quinn::Connection,
    peer: Peer,
    mut revoked: tokio::sync::watch::Receiver<transport::crl::Revoked>,
) {
    let serial = transport::crl::peer_serial(&conn);
    // A revoked connection is closed (and counted) once, however often the
    // CRL reloads before the close takes effect.
    let mut closed = false;
    loop {
        let is_revoked = serial.as_ref().is_some_and(|s| revoked.borrow_and_update().contains(s));
        if is_revoked && !closed {
            closed = true;
            tracing::warn!(peer = %peer.name, "certificate revoked: connection closed");
            metrics::counter!("dmc_station_revoked_connections_closed_total").increment(1);
            conn.close(transport::codes::REFUSED, b"certificate revoked");
        }
        let accepted = tokio::select! {
            a = transport::accept_bi(&conn, MAX_CONTROL_FRAME) => a,
            _ = revoked.changed() => continue,
        };
        let (send, mut recv) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(peer = %peer.name, reason = %e, "peer disconnected");
                st.peer_lost(&peer.name, conn.stable_id(), &format!("disconnected ({e})"))
                    .await;
                return;
            }
        };
        let st = st.clone();
        let peer = peer.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            let mut send = send;
            // A request arrives whole within REQUEST_TIMEOUT, or its stream
            // (and the buffer its frame was filling) is dropped.
            let req = match tokio::time::timeout(REQUEST_TIMEOUT, recv.recv::<StationRequest>()).await {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => return,
                Err(_) => {
                    tracing::warn!(peer = %peer.name, timeout = ?REQUEST_TIMEOUT, "request not received in time; stream dropped");
                    let _ = recv.stop(transport::codes::REFUSED);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer.name, error = %e, "malformed request");
                    metrics::counter!("dmc_station_requests_malformed_total").increment(1);
                    let _ = send.send(&StationReply::Error(Failure::invalid(e.to_string()))).await;
                    return;
                }
            };
            if let Err(e) = authorize(&peer, &req) {
                tracing::warn!(peer = %peer.name, role = peer.role.as_str(), "refused: {e}");
                metrics::counter!("dmc_station_requests_refused_total").increment(1);
                let _ = send.send(&StationReply::Error(failure_of(&e))).await;
                let _ = send.finish().await;
                return;
            }
            dispatch(st, conn, peer, req, &mut send).await;
            let _ = send.finish().await;
        });
    }
}
