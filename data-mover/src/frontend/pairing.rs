//! Does this front-end share its spool directory with its back-end?
//!
//! Seed FIG. 27: the pair shares the secondary node's internal storage, so
//! a sealed segment is only announced to the back-end, which copies it to
//! tape itself; the bytes cross the network once. A pair split over two
//! machines sends segments over QUIC instead. Which one applies is proved,
//! not configured: the front-end writes a random token into its spool and
//! asks the back-end to read it from its own ([`BackEndRequest::Pair`]).
//! The answer holds for one connection to the back-end (a back-end that
//! restarted may have moved), and is asked again on the next one.

use proto::domain::ChannelId;
use std::collections::HashMap;

use anyhow::{Context, Result};
use proto::wire::{BackEndReply, BackEndRequest, PeerAddr, StationRequest, MAX_CONTROL_FRAME};

use transport::link::StationLink;

use crate::spool::{new_token, SpoolDir};

/// How a front-end and its back-end exchange segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPath {
    /// Through the spool directory both use.
    SharedSpool,
    /// Over QUIC (the reason the spool is not shared).
    Quic { reason: String },
}

impl DataPath {
    pub fn shared(&self) -> bool {
        matches!(self, DataPath::SharedSpool)
    }

    /// For logs and the channel's history.
    pub fn describe(&self) -> String {
        match self {
            DataPath::SharedSpool => "shared spool: segments go to tape from the spool both movers use".into(),
            DataPath::Quic { reason } => format!("QUIC: segments cross the network to the back-end ({reason})"),
        }
    }
}

/// What pairing found, per back-end and connection.
pub struct Pairings {
    /// The front-end's spool, where pairing tokens are written.
    spool: SpoolDir,
    /// False: always send segments over QUIC (`--no-shared-spool`).
    shared_spool: bool,
    found: tokio::sync::Mutex<HashMap<String, (usize, DataPath)>>,
}

impl Pairings {
    /// Pairing from `spool`; `shared_spool` false: never share it.
    pub fn new(spool: SpoolDir, shared_spool: bool) -> Pairings {
        Pairings {
            spool,
            shared_spool,
            found: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The data path to back-end `be` over `conn` (asked once per connection).
    pub async fn data_path(&self, be: &PeerAddr, conn: &quinn::Connection) -> Result<DataPath> {
        if !self.shared_spool {
            return Ok(DataPath::Quic {
                reason: "this front-end was started with --no-shared-spool".into(),
            });
        }
        let mut found = self.found.lock().await;
        if let Some((id, path)) = found.get(&be.name) {
            if *id == conn.stable_id() {
                return Ok(path.clone());
            }
        }
        let path = pair(&self.spool, be, conn).await?;
        tracing::info!(back_end = %be.name, path = %path.describe(), "data path to the back-end");
        found.insert(be.name.clone(), (conn.stable_id(), path.clone()));
        Ok(path)
    }
}

async fn pair(spool: &SpoolDir, be: &PeerAddr, conn: &quinn::Connection) -> Result<DataPath> {
    let (token_name, token) = new_token();
    let file = spool.dir().join(&token_name);
    std::fs::write(&file, &token).with_context(|| format!("writing the pairing token {}", file.display()))?;
    let asked = async {
        let (mut bs, mut br) = transport::open_bi(conn, MAX_CONTROL_FRAME).await?;
        bs.send(&BackEndRequest::Pair { token_name, token }).await?;
        bs.finish().await?;
        Ok::<_, anyhow::Error>(br.recv::<BackEndReply>().await?)
    }
    .await;
    let _ = std::fs::remove_file(&file);
    Ok(
        match asked.with_context(|| format!("pairing with back-end {}", be.name))? {
            Some(BackEndReply::Paired { shared: true, .. }) => DataPath::SharedSpool,
            Some(BackEndReply::Paired { shared: false, reason }) => DataPath::Quic { reason },
            Some(BackEndReply::Error(failure)) => DataPath::Quic {
                reason: format!("the back-end could not pair: {failure}"),
            },
            Some(other) => DataPath::Quic {
                reason: format!("unexpected answer to pairing: {other:?}"),
            },
            None => DataPath::Quic {
                reason: "the back-end closed the pairing stream".into(),
            },
        },
    )
}

/// Tell the station which data path a channel uses (it goes into the
/// channel's history); never holds up the channel.
pub fn report_data_path(link: &StationLink, channel_id: ChannelId, path: &DataPath) {
    let link = link.clone();
    let req = StationRequest::ChannelDataPath {
        channel_id,
        shared: path.shared(),
        detail: path.describe(),
    };
    tokio::spawn(async move {
        if let Err(e) = link.request_ok(&req).await {
            tracing::warn!(%channel_id, error = %e, "could not record the channel's data path");
        }
    });
}
