//! Values the front-end's unit tests share.

use proto::domain::{AbsId, ChannelId};
use proto::wire::{BackupChannel, PeerAddr};

/// A backup channel of an empty object from `primary` to back-end `be1`.
pub(crate) fn backup_channel(channel_id: u64, abs_id: u64, primary: &str) -> BackupChannel {
    BackupChannel {
        channel_id: ChannelId::new(channel_id),
        abs_id: AbsId::new(abs_id),
        object_name: "obj".into(),
        back_end: PeerAddr {
            name: "be1".into(),
            address: "127.0.0.1:1".into(),
            boot: 7,
        },
        drives: vec!["drive0".into()],
        map: proto::abs::AbsMap {
            volumes: Vec::new(),
            extents: Vec::new(),
            object_size: 0,
        },
        track_set: proto::abs::TrackSet::default(),
        base_abs_id: None,
        merged_from_abs_id: None,
        created_unix: 1,
        primary: primary.into(),
        token: [3; 16],
    }
}
