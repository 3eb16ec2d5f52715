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

/// Heartbeats in a row that may fail before the station connection is
/// dropped and dialled again.
const HEARTBEATS_LOST: u32 = 3;

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
            StationReply::Error(failure) => Err(TransportError::Failed(failure)),
            StationReply::NotRegistered => Err(TransportError::Refused {
                reason: "the station does not count this process as registered".into(),
            }),
            other => Err(TransportError::Closed {
                reason: format!("unexpected reply from the station: {other:?}"),
            }),
        }
    }

    /// Send a heartbeat for `name` every `every`, forever (a background
    /// task). When the station answers that it does not count this process
    /// as registered (it restarted, or declared the process dead), or no
    /// heartbeat got through for a while, `register` is notified: the
    /// process registers again. A heartbeat that gets no answer within
    /// `every` counts as failed, and after a few in a row the connection is
    /// dropped and dialled again.
    pub fn spawn_heartbeats(
        &self,
        name: String,
        every: Duration,
        register: Arc<tokio::sync::Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let link = self.clone();
        tokio::spawn(async move {
            let mut failed = 0u32;
            loop {
                tokio::time::sleep(every).await;
                let beat = StationRequest::Heartbeat { name: name.clone() };
                match tokio::time::timeout(every.max(Duration::from_secs(1)), link.request(&beat)).await {
                    Ok(Ok(StationReply::Ok)) => {
                        if failed >= HEARTBEATS_LOST {
                            tracing::info!("station heard again");
                        }
                        failed = 0;
                    }
                    Ok(Ok(StationReply::NotRegistered)) => {
                        tracing::warn!("the station does not count this process as registered; registering again");
                        register.notify_one();
                    }
                    Ok(Ok(other)) => tracing::warn!(reply = ?other, "unexpected heartbeat reply"),
                    Ok(Err(e)) => {
                        failed += 1;
                        tracing::warn!(error = %e, failed, "heartbeat failed");
                    }
                    Err(_) => {
                        failed += 1;
                        tracing::warn!(failed, "heartbeat not answered in time");
                    }
                }
                if failed == HEARTBEATS_LOST {
                    tracing::warn!("no heartbeat got through {HEARTBEATS_LOST} times: dropping the station connection");
                    link.drop_connection(b"no answer to heartbeats").await;
                    register.notify_one();
                }
            }
        })
    }

    /// Close the current connection (the next request dials again).
    pub async fn drop_connection(&self, why: &'static [u8]) {
        if let Some(c) = self.conn.lock().await.take() {
            c.close(crate::codes::DONE, why);
        }
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
                        CommandReply::Error(proto::domain::Failure::invalid(e.to_string()))
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
