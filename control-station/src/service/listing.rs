//! Catalog listings for clients and operators.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use proto::domain::{AbsId, ChannelId, Failure};
use proto::wire::{
    AbsInfo, ChannelInfo, GrantInfo, HistoryNote, MoverInfo, NotificationInfo, PoolInfo, SegmentInfo, StationReply,
    TapeInfo, TransitionInfo,
};

use super::Station;
use crate::catalog::ChannelRow;

pub(crate) fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

pub(crate) async fn abs(st: &Arc<Station>) -> Result<Vec<AbsInfo>> {
    let rows = st.catalog.list_abs().await?;
    let mut copies: std::collections::HashMap<AbsId, Vec<String>> = std::collections::HashMap::new();
    for (id, pool) in st.catalog.abs_copy_pools().await? {
        copies.entry(id).or_default().push(pool);
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(AbsInfo {
            abs_id: r.id,
            object_name: r.object_name,
            primary: r.primary_node,
            kind: r.kind,
            level: r.level,
            base_abs_id: r.base_abs_id,
            merged_from_abs_id: r.merged_from_abs_id,
            point_in_time: ts(r.point_in_time),
            state: r.state,
            object_size: r.object_size,
            data_bytes: r.data_bytes,
            track_count: r.track_count,
            segment_count: r.segment_count,
            extents: r.extents,
            created: ts(r.created),
            tapes: r.tapes,
            copies: copies.remove(&r.id).unwrap_or_default(),
            pool: r.pool,
            uuid: r.uuid,
            label: r.label,
            origin_cluster: r.origin_cluster.unwrap_or_default(),
            definition: r.definition.unwrap_or_default(),
            from_version: r.from_version.unwrap_or_default(),
        });
    }
    Ok(out)
}

pub(crate) async fn movers(st: &Arc<Station>) -> Result<Vec<MoverInfo>> {
    Ok(st
        .catalog
        .list_movers()
        .await?
        .into_iter()
        .map(|m| MoverInfo {
            name: m.name,
            role: m.role,
            address: m.address,
            state: m.state,
            registered: ts(m.registered_at),
            last_seen: ts(m.last_seen),
        })
        .collect())
}

/// Open notifications (and, with `acknowledged`, the recent acknowledged
/// ones), newest first.
pub(crate) async fn notifications(st: &Arc<Station>, acknowledged: bool) -> Result<Vec<NotificationInfo>> {
    let recent = if acknowledged {
        super::notify::ACKNOWLEDGED_SHOWN
    } else {
        0
    };
    Ok(st
        .catalog
        .notifications(recent)
        .await?
        .into_iter()
        .map(notification)
        .collect())
}

/// A notification as listings show it.
pub(crate) fn notification(n: crate::catalog::NotificationRow) -> NotificationInfo {
    NotificationInfo {
        id: u64::try_from(n.id).unwrap_or_default(),
        kind: n.kind,
        subject: n.subject,
        message: n.message,
        channel_id: n.channel_id,
        raised: ts(n.raised),
        acknowledged_by: n.acknowledged_by.unwrap_or_default(),
        acknowledged: n.acknowledged.map(ts).unwrap_or_default(),
        delivered: n.delivered.is_some(),
        attempts: u32::try_from(n.attempts).unwrap_or_default(),
        last_error: n.last_error.unwrap_or_default(),
    }
}

/// The tapes with these labels.
pub(crate) async fn tapes_named(st: &Arc<Station>, labels: &[String]) -> Result<Vec<TapeInfo>> {
    Ok(tapes(st)
        .await?
        .into_iter()
        .filter(|t| labels.contains(&t.label))
        .collect())
}

pub(crate) async fn tapes(st: &Arc<Station>) -> Result<Vec<TapeInfo>> {
    Ok(st
        .catalog
        .list_tapes()
        .await?
        .into_iter()
        .map(|t| TapeInfo {
            label: t.label,
            pool: t.pool,
            state: t.state,
            path: t.path,
            bytes_written: t.bytes_written,
            files_written: t.files_written,
            mounted_in: t.mounted_in,
            media_set: t.media_set,
            sequence: t.media_set_seq,
            location: t.location,
            slot: t.slot,
            emptied: t.emptied.map(ts).unwrap_or_default(),
            reuses: t.reuses,
        })
        .collect())
}

pub(crate) async fn segments(st: &Arc<Station>, abs_id: Option<AbsId>) -> Result<Vec<SegmentInfo>> {
    Ok(st
        .catalog
        .list_segments(abs_id)
        .await?
        .into_iter()
        .map(|s| SegmentInfo {
            abs_id: s.abs_id,
            seq: s.seq,
            copy: s.copy_id.is_some(),
            pool: s.pool,
            status: s.status,
            tape_label: s.tape_label,
            tape_file: s.tape_file,
            bytes: s.bytes,
            data_bytes: s.data_bytes,
            track_count: u32::try_from(s.track_count).unwrap_or(u32::MAX),
            crc32c: s.crc32c,
        })
        .collect())
}

pub(crate) async fn pools(st: &Arc<Station>) -> Result<Vec<PoolInfo>> {
    Ok(st
        .catalog
        .list_pools()
        .await?
        .into_iter()
        .map(|p| PoolInfo {
            name: p.pool.name,
            kind: p.pool.kind,
            copies_of: p.pool.copies_of,
            tapes: p.tapes,
            bytes_written: p.bytes_written,
            abs: p.abs,
            retain_days: p.pool.retain_days,
        })
        .collect())
}

fn channel_info(c: ChannelRow) -> ChannelInfo {
    ChannelInfo {
        channel_id: c.id,
        kind: c.kind,
        abs_id: c.abs_id,
        state: c.state,
        reason: c.reason,
        front_end: c.fe_name.unwrap_or_default(),
        back_end: c.be_name.unwrap_or_default(),
        drive: c.drive_name.unwrap_or_default(),
        tape: c.tape_label.unwrap_or_default(),
        bytes: c.bytes,
        updated: ts(c.updated),
    }
}

pub(crate) async fn channels(st: &Arc<Station>) -> Result<Vec<ChannelInfo>> {
    Ok(st
        .catalog
        .list_channels()
        .await?
        .into_iter()
        .map(channel_info)
        .collect())
}

pub(crate) async fn history(st: &Arc<Station>, id: ChannelId) -> Result<StationReply> {
    let channel = st
        .catalog
        .channel(id)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no channel {id}"))))?;
    let transitions = st
        .catalog
        .channel_history(id)
        .await?
        .into_iter()
        .map(|t| TransitionInfo {
            from: t.from_state,
            to: t.to_state,
            reason: t.reason,
            actor: t.actor,
            at: ts(t.at),
        })
        .collect();
    let notes = st
        .catalog
        .channel_notes(id)
        .await?
        .into_iter()
        .map(|n| HistoryNote {
            actor: n.actor,
            text: n.text,
            at: ts(n.at),
        })
        .collect();
    Ok(StationReply::History {
        channel: channel_info(channel),
        transitions,
        notes,
    })
}

/// Grants of `client` (None: all).
pub(crate) async fn grants(st: &Arc<Station>, client: Option<&str>) -> Result<Vec<GrantInfo>> {
    Ok(st
        .catalog
        .grants(client)
        .await?
        .into_iter()
        .map(|g| GrantInfo {
            client: g.client,
            primary: g.primary_node,
            object: g.object_name.unwrap_or_default(),
            backup: g.may_backup,
            restore: g.may_restore,
            granted_by: g.granted_by,
            granted_at: ts(g.granted_at),
        })
        .collect())
}
