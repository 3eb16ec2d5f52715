//! The writer of one drive: takes the sealed segments every channel
//! writing to the drive has announced, picks the next one with the
//! [`SegmentQueue`](crate::backend::schedule::SegmentQueue) policy (FIFO by
//! default; LIFO, the seed's suggestion, measured worse: see
//! `dmc-bench-drives`), copies it from the spool to tape (streaming through
//! one reused buffer, verifying every checksum on the way), syncs, and at
//! the end of a tape continues the media set on the next tape. It goes
//! straight on with the next segment: committing a placement to the
//! catalog and telling the front-end happen elsewhere while the drive
//! writes.
//!
//! End of tape is a state of the writer, not a wait inside it: a write
//! refused with `TapeFull` wrote nothing; the writer finishes the tape with
//! EOV labels, asks the station which tape continues the media set
//! (`StationRequest::TapeFull`, an async request whose answer comes back as
//! an event), mounts it and writes the same segment there. A segment is
//! answered exactly once, with the tape and file that hold it, so none is
//! lost or written twice across the switch. A segment that does not fit
//! even on an empty tape is refused.
//!
//! - [`core`]: the pure state machine (states, events, effects).
//! - [`shell`]: the task that performs the effects.
//! - [`DriveWriter`] (here): the handle callers queue work with.

pub mod core;
pub mod shell;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use proto::tape::directory::DirectoryEntry;
use proto::tape::metadata::AbsMetadata;
use proto::tape::segment::SegmentSummary;
use tokio::sync::{mpsc, oneshot};

use super::drive::Drive;
use super::schedule::Policy;
use shell::{AskStation, Command, Shell};

/// Where a data file landed.
#[derive(Debug, Clone)]
pub struct Placed {
    pub tape_label: String,
    pub entry: DirectoryEntry,
    /// A segment's verified summary.
    pub summary: Option<SegmentSummary>,
}

type Reply = oneshot::Sender<Result<Placed>>;

/// A sealed segment to copy to tape.
#[derive(Clone)]
pub struct SegmentSource {
    /// The spool file holding it.
    pub path: PathBuf,
    /// Its length, as announced.
    pub bytes: u64,
    pub object_name: String,
    /// Set when the front-end that asked went away: a segment not yet
    /// begun is not written (its front-end, restarted, sends it again).
    pub abandoned: Arc<std::sync::atomic::AtomicBool>,
}

/// Hands segments and metadata to one drive's writer task.
#[derive(Clone)]
pub struct DriveWriter {
    tx: mpsc::UnboundedSender<Command>,
}

impl DriveWriter {
    /// Start the writer task of `drive` on `rt`; at the end of a tape it
    /// asks `station` for the next one.
    pub fn spawn(
        name: &str,
        drive: Arc<Mutex<Drive>>,
        policy: Policy,
        station: impl AskStation,
        rt: tokio::runtime::Handle,
    ) -> Result<DriveWriter> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shell = Shell::new(name, drive, policy, Arc::new(station));
        rt.spawn(shell.run(rx));
        Ok(DriveWriter { tx })
    }

    /// Queue a sealed segment (in a spool file) and wait until it is
    /// copied to tape, verified, and synced.
    ///
    /// The same segment asked again (its front-end restarted and sends it
    /// anew) takes the place of a request not yet begun, or waits for the
    /// write under way to end and is then written again.
    pub async fn write_segment(&self, channel_id: u64, abs_id: u64, seq: u32, source: SegmentSource) -> Result<Placed> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Segment {
            channel_id,
            abs_id,
            seq,
            source,
            reply,
        })?;
        rx.await.map_err(|_| anyhow!("the drive writer stopped"))?
    }

    /// Queue ABS metadata (written before any queued segment) and wait.
    pub async fn write_metadata(&self, meta: AbsMetadata) -> Result<Placed> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Metadata {
            meta: Box::new(meta),
            reply,
        })?;
        rx.await.map_err(|_| anyhow!("the drive writer stopped"))?
    }

    /// The station had tape `label` mounted for writing in the drive: a
    /// writer whose media set could not continue writes again.
    pub fn tape_mounted(&self, label: &str) {
        let _ = self.send(Command::TapeMounted {
            label: label.to_string(),
        });
    }

    fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).map_err(|_| anyhow!("the drive writer stopped"))
    }
}
