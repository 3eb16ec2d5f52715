//! What the back-end's handlers work with: its drives and their writers,
//! its spool, the station link, the pooled buffers, and its segment limit.
//! Built once by the mover ([`crate::mover`]); the handlers see nothing
//! else of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use transport::link::StationLink;
use transport::BufPool;

use super::drive::Drive;
use super::writer::DriveWriter;
use crate::spool::{Slots, SpoolDir};

/// The back-end role's context.
pub struct BackEnd {
    /// This mover's name (for errors and logs).
    pub name: String,
    pub link: StationLink,
    /// The spool directory (shared with the front-end on one machine).
    pub spool: SpoolDir,
    /// Free spool files of the back-end.
    pub slots: Slots,
    /// Buffers for segments moved in pieces.
    pub chunks: BufPool,
    /// Largest segment accepted or read.
    pub max_segment: usize,
    pub drives: HashMap<String, Arc<Mutex<Drive>>>,
    pub writers: HashMap<String, DriveWriter>,
}

impl BackEnd {
    pub fn drive(&self, name: &str) -> Result<Arc<Mutex<Drive>>> {
        self.drives
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("back-end {} has no drive {name:?}", self.name))
    }

    /// The writer (task) of a drive.
    pub fn writer(&self, name: &str) -> Result<&DriveWriter> {
        self.writers
            .get(name)
            .ok_or_else(|| anyhow!("back-end {} has no drive {name:?}", self.name))
    }
}
