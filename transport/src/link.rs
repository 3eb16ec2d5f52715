//! The link every cluster process keeps to the control station: one QUIC
//! connection, dialled by the process; requests go out on bi streams the
//! process opens, commands come in on bi streams the station opens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::wire::{Command, CommandReply, StationReply, StationRequest, MAX_CONTROL_FRAME};
use tokio::sync::Mutex;

use crate::{accept_bi, open_bi, FramedSend};
use crate::{connect, Role, TransportError};

/// Connection to the control station, re-dialled when it drops.
#[derive(Clone)]
pub struct StationLink {
    endpoint: quinn::Endpoint,
    station_addr: SocketAddr,
    station_name: String,
    conn: Arc<Mutex<Option<quinn::Connection>>>,
}

impl StationLink {
    /// Dial the station (retrying for `patience`).
    pub async fn connect(
        endpoint: quinn::Endpoint,
        station_addr: SocketAddr,
        station_name: &str,
        patience: Duration,
    ) -> Result<Self, TransportError> {
        let link = StationLink {
            endpoint,
            station_addr,
            station_name: station_name.to_string(),
            conn: Arc::new(Mutex::new(None)),
        };
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match link.connection().await {
                Ok(_) => return Ok(link),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(error = %e, station = %station_addr, "station not reachable yet, retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The current connection, dialling again if it was closed.
    pub async fn connection(&self) -> Result<quinn::Connection, TransportError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let (conn, _peer) = connect(&self.endpoint, self.station_addr, &self.station_name, Role::Station).await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// One request, one reply.
    pub async fn request(&self, req: &StationRequest) -> Result<StationReply, TransportError> {
        let conn = self.connection().await?;
        let (mut send, mut recv) = open_bi(&conn, MAX_CONTROL_FRAME).await?;
        send.send(req).await?;
        send.finish().await?;
        match recv.recv::<StationReply>().await? {
            Some(reply) => Ok(reply),
            None => Err(TransportError::Closed {
                reason: "the station closed the stream without a reply".into(),
            }),
        }
    }

    /// A request whose reply must be `Ok` (or `Registered`).
    pub async fn request_ok(&self, req: &StationRequest) -> Result<(), TransportError> {
        match self.request(req).await? {
            StationReply::Ok | StationReply::Registered { .. } => Ok(()),
            StationReply::Error { message } => Err(TransportError::Refused { reason: message }),
            other => Err(TransportError::Closed {
                reason: format!("unexpected reply from the station: {other:?}"),
            }),
        }
    }

    /// Send a heartbeat for `name` every `every`, forever (a background task).
    pub fn spawn_heartbeats(&self, name: String, every: Duration) -> tokio::task::JoinHandle<()> {
        let link = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = link.request_ok(&StationRequest::Heartbeat { name: name.clone() }).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        })
    }

    /// Serve the station's commands on the current connection until it
    /// closes; `handle` answers each one.
    pub async fn serve_commands<F, Fut>(&self, handle: F) -> Result<(), TransportError>
    where
        F: Fn(Command) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = CommandReply> + Send + 'static,
    {
        let conn = self.connection().await?;
        loop {
            let (send, mut recv) = match accept_bi(&conn, MAX_CONTROL_FRAME).await {
                Ok(s) => s,
                Err(e) => return Err(e),
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let reply = match recv.recv::<Command>().await {
                    Ok(Some(cmd)) => handle(cmd).await,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "bad command frame from the station");
                        CommandReply::Error { message: e.to_string() }
                    }
                };
                reply_and_finish(send, &reply).await;
            });
        }
    }
}

async fn reply_and_finish(mut send: FramedSend, reply: &CommandReply) {
    if let Err(e) = send.send(reply).await {
        tracing::warn!(error = %e, "could not answer the station");
        return;
    }
    let _ = send.finish().await;
}
