//! Talking to the control station.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use proto::domain::{AbsId, Failure, FailureCode};
use proto::wire::{ChannelEvent, RestoreTarget, StationReply, StationRequest, MAX_CONTROL_FRAME};
use transport::{Identity, Role};

/// A connection to the control station as a client or operator; dropping
/// it closes the connection (the station learns at once that the client
/// went away).
pub struct Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    /// How long a followed job may take before the client gives up.
    timeout: Option<Duration>,
}

impl Client {
    pub async fn connect(pki: &Path, name: &str, station: SocketAddr, station_name: &str) -> Result<Client> {
        let identity =
            Identity::load(pki, name).with_context(|| format!("loading certificate {name} from {}", pki.display()))?;
        let endpoint = transport::bind("127.0.0.1:0".parse()?, &identity)?;
        let (conn, _) = transport::connect(&endpoint, station, station_name, Role::Station)
            .await
            .with_context(|| format!("connecting to the control station at {station}"))?;
        Ok(Client {
            endpoint,
            conn,
            timeout: None,
        })
    }

    /// Give up following a job after `timeout` (None: follow it to its end).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Client {
        self.timeout = timeout;
        self
    }

    /// Close the connection and wait (briefly) until the station knows:
    /// a job still waiting for a drive is then cancelled at once.
    pub async fn close(&self) {
        self.conn.close(transport::codes::DONE, b"client done");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }

    /// One request, one reply.
    pub async fn request(&self, req: &StationRequest) -> Result<StationReply> {
        let (mut send, mut recv) = transport::open_bi(&self.conn, MAX_CONTROL_FRAME).await?;
        send.send(req).await?;
        send.finish().await?;
        match recv.recv::<StationReply>().await? {
            // The station's failure, with its code, as the cause.
            Some(StationReply::Error(failure)) => Err(failure.into()),
            Some(r) => Ok(r),
            None => bail!("the station closed the stream without a reply"),
        }
    }

    /// A backup or restore: `on_event` sees every event; returns the last.
    /// With `until_accepted`, return at [`ChannelEvent::Accepted`] (a
    /// detached job goes on without the client).
    async fn channel(
        &self,
        req: &StationRequest,
        until_accepted: bool,
        mut on_event: impl FnMut(&ChannelEvent),
    ) -> Result<ChannelEvent> {
        let (mut send, mut recv) = transport::open_bi(&self.conn, MAX_CONTROL_FRAME).await?;
        send.send(req).await?;
        send.finish().await?;
        let deadline = self.timeout.map(|t| (t, tokio::time::Instant::now() + t));
        loop {
            let next = recv.recv::<StationReply>();
            let lost = |e: transport::TransportError| {
                anyhow!(e).context(
                    "lost the control station: the job may have ended with it (`smapp channels` shows its state once the station answers)",
                )
            };
            let reply = match deadline {
                None => next.await.map_err(lost)?,
                Some((t, at)) => match tokio::time::timeout_at(at, next).await {
                    Ok(r) => r.map_err(lost)?,
                    Err(_) => bail!(Failure::new(
                        FailureCode::Cancelled,
                        format!(
                            "--timeout: no end within {}s (a job that already started goes on at the station: `smapp channels` shows it)",
                            t.as_secs()
                        )
                    )),
                },
            };
            match reply {
                Some(StationReply::Event(ev)) => {
                    on_event(&ev);
                    match ev {
                        ChannelEvent::Finished { .. } | ChannelEvent::Copied { .. } => return Ok(ev),
                        ChannelEvent::Accepted { .. } if until_accepted => return Ok(ev),
                        ChannelEvent::Failed(failure) => return Err(failure.into()),
                        _ => {}
                    }
                }
                Some(StationReply::Error(failure)) => return Err(failure.into()),
                Some(other) => bail!("unexpected reply {other:?}"),
                None => bail!("the station closed the channel's stream before it ended"),
            }
        }
    }

    /// A backup ([`StationRequest::Backup`]); a detached one returns once
    /// the station accepted it.
    pub async fn backup(&self, req: &StationRequest, on_event: impl FnMut(&ChannelEvent)) -> Result<ChannelEvent> {
        let StationRequest::Backup { detach, .. } = req else {
            bail!("not a backup request: {req:?}");
        };
        self.channel(req, *detach, on_event).await
    }

    pub async fn restore(
        &self,
        abs_id: AbsId,
        target: RestoreTarget,
        drives: u32,
        on_event: impl FnMut(&ChannelEvent),
    ) -> Result<ChannelEvent> {
        self.channel(&StationRequest::Restore { abs_id, target, drives }, false, on_event)
            .await
    }

    /// Any streamed request (a restore to a point in time, a merge).
    pub async fn stream(&self, req: &StationRequest, on_event: impl FnMut(&ChannelEvent)) -> Result<ChannelEvent> {
        self.channel(req, false, on_event).await
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.conn.close(transport::codes::DONE, b"client gone");
    }
}

/// The kind of a failed command, for its exit status: the code of the
/// first [`Failure`] among the error's causes (the station's, or one of
/// this client's), else of a broken connection to the station, else
/// `Internal`.
pub fn failure_code(e: &anyhow::Error) -> FailureCode {
    e.chain()
        .find_map(|c| {
            c.downcast_ref::<Failure>()
                .map(|f| f.code)
                .or_else(|| c.downcast_ref::<transport::TransportError>().map(|t| t.code()))
        })
        .unwrap_or(FailureCode::Internal)
}
