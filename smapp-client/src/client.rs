//! Talking to the control station.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use proto::wire::{
    BackupLevel, ChannelEvent, ObjectSpec, RestoreTarget, StationReply, StationRequest, MAX_CONTROL_FRAME,
};
use transport::{Identity, Role};

/// A connection to the control station as a client or operator.
pub struct Client {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
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
            _endpoint: endpoint,
            conn,
        })
    }

    /// One request, one reply.
    pub async fn request(&self, req: &StationRequest) -> Result<StationReply> {
        let (mut send, mut recv) = transport::open_bi(&self.conn, MAX_CONTROL_FRAME).await?;
        send.send(req).await?;
        send.finish().await?;
        match recv.recv::<StationReply>().await? {
            Some(StationReply::Error { message }) => bail!("{message}"),
            Some(r) => Ok(r),
            None => bail!("the station closed the stream without a reply"),
        }
    }

    /// A backup or restore: `on_event` sees every event; returns the last.
    async fn channel(&self, req: &StationRequest, mut on_event: impl FnMut(&ChannelEvent)) -> Result<ChannelEvent> {
        let (mut send, mut recv) = transport::open_bi(&self.conn, MAX_CONTROL_FRAME).await?;
        send.send(req).await?;
        send.finish().await?;
        loop {
            match recv.recv::<StationReply>().await? {
                Some(StationReply::Event(ev)) => {
                    on_event(&ev);
                    match ev {
                        ChannelEvent::Finished { .. } => return Ok(ev),
                        ChannelEvent::Failed { reason } => return Err(anyhow!("{reason}")),
                        _ => {}
                    }
                }
                Some(StationReply::Error { message }) => bail!("{message}"),
                Some(other) => bail!("unexpected reply {other:?}"),
                None => bail!("the station closed the channel's stream before it ended"),
            }
        }
    }

    pub async fn backup(
        &self,
        object_name: &str,
        primary: &str,
        object: ObjectSpec,
        drives: u32,
        level: BackupLevel,
        on_event: impl FnMut(&ChannelEvent),
    ) -> Result<ChannelEvent> {
        let req = StationRequest::Backup {
            object_name: object_name.into(),
            primary: primary.into(),
            object,
            drives,
            level,
        };
        self.channel(&req, on_event).await
    }

    pub async fn restore(
        &self,
        abs_id: u64,
        target: RestoreTarget,
        drives: u32,
        on_event: impl FnMut(&ChannelEvent),
    ) -> Result<ChannelEvent> {
        self.channel(&StationRequest::Restore { abs_id, target, drives }, on_event)
            .await
    }

    /// Any streamed request (a restore to a point in time, a merge).
    pub async fn stream(&self, req: &StationRequest, on_event: impl FnMut(&ChannelEvent)) -> Result<ChannelEvent> {
        self.channel(req, on_event).await
    }
}
