//! What the front-end's handlers work with: its spool, the station link,
//! the pooled buffers, its back-ends, and its settings. Built once by the
//! mover ([`crate::mover`]); the handlers see nothing else of it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use proto::wire::PeerAddr;
use transport::link::StationLink;
use transport::{BufPool, Dialer, Role};

use super::pairing::Pairings;
use super::store::{FileSpool, Spool};
use crate::spool::{Slots, SpoolDir};

/// How the front-end cuts and holds segments.
#[derive(Debug, Clone, Copy)]
pub struct Sealing {
    /// Seal a segment when it reaches this many bytes.
    pub segment_size: u64,
    /// Sealed segments a channel may hold before accumulation waits.
    pub spool_segments: usize,
}

/// The front-end role's context.
pub struct FrontEnd {
    /// This mover's name (for errors and logs).
    pub name: String,
    pub link: StationLink,
    /// The spool directory (shared with the back-end on one machine).
    pub spool: SpoolDir,
    /// Free spool files of the front-end.
    pub slots: Slots,
    /// Buffers for segments moved in pieces.
    pub chunks: BufPool,
    /// What pairing found with each back-end.
    pub pairings: Pairings,
    pub sealing: Sealing,
    /// Connections to back-ends.
    pub back_ends: Dialer,
}

impl FrontEnd {
    /// The spool as the segment release protocol uses it.
    pub fn segment_spool(&self) -> Arc<dyn Spool> {
        Arc::new(FileSpool::new(self.spool.clone(), self.slots.clone()))
    }

    /// The connection to a back-end (reused; a back-end that restarted
    /// registers again, and is dialled again).
    pub async fn back_end(&self, be: &PeerAddr) -> Result<quinn::Connection> {
        let addr: SocketAddr = be
            .address
            .parse()
            .with_context(|| format!("back-end address {:?}", be.address))?;
        self.back_ends
            .connect(&be.name, addr, be.boot, Role::Mover)
            .await
            .with_context(|| format!("dialling back-end {} at {addr}", be.name))
    }
}
