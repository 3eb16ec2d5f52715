//! A writing channel's tape is full and its media set continues on the
//! next tape: Writing → EndOfTape → BeginningOfTape → Writing.

use std::sync::Arc;

use crate::service::events::EventSink;
use anyhow::Result;

use crate::catalog::{DriveRow, TapeRow};
use crate::channel::ChannelInput;
use crate::service::events::LiveChannel;
use crate::service::Station;

/// The tape in one of the channel's drives was full and the media set
/// continues on `next`; on the channel's first drive the catalog's
/// assignment follows the tape.
pub(crate) async fn tape_switched(
    st: &Arc<Station>,
    channel: &mut LiveChannel,
    drive: &DriveRow,
    first_drive: bool,
    full: &str,
    next: &TapeRow,
    send: &mut impl EventSink,
) -> Result<()> {
    let channel_id = channel.id();
    let why = format!("tape {full} full in drive {}", drive.name);
    channel.step(st, ChannelInput::TapeDone(why), send).await?;
    if first_drive {
        let pair = st.catalog.channel(channel_id).await?;
        if let Some(c) = pair {
            if let (Some(fe), Some(be)) = (c.fe_id, c.be_id) {
                st.catalog
                    .assign_channel(channel_id, fe, be, drive.id, Some(next.id))
                    .await?;
            }
        }
    }
    let mounted = format!(
        "tape {} mounted in drive {}: volume {} of media set {}",
        next.label,
        drive.name,
        next.media_set_seq.unwrap_or(0),
        next.media_set.unwrap_or_default()
    );
    channel.step(st, ChannelInput::TapeMounted(mounted), send).await?;
    let writing = format!("writing to tape {}", next.label);
    channel.step(st, ChannelInput::StreamOpened(writing), send).await
}
