//! What each role may ask the station, and what a registration may say.

use anyhow::{bail, Result};
use proto::domain::Failure;
use proto::wire::StationRequest;
use transport::{Peer, Role};

/// What each role may ask.
pub(super) fn authorize(peer: &Peer, req: &StationRequest) -> Result<()> {
    use StationRequest as R;
    let (allowed, action): (&[Role], &str) = match req {
        R::RegisterPrimary { .. } => (&[Role::PrimaryNode], "register a primary node"),
        R::RegisterMover { .. } => (&[Role::Mover], "register a mover"),
        R::RegisterAgent { .. } => (&[Role::Client], "register a host's agent"),
        R::Heartbeat { .. } => (&[Role::Mover, Role::PrimaryNode, Role::Client], "send heartbeats"),
        R::SegmentPlaced(_) | R::MetadataPlaced { .. } | R::TapeFull { .. } => {
            (&[Role::Mover], "report tape placements")
        }
        R::ChannelProgress { .. } | R::ChannelFinished { .. } | R::ChannelFailed { .. } => {
            (&[Role::Mover, Role::PrimaryNode], "report channel progress")
        }
        R::ChannelDataPath { .. } => (&[Role::Mover], "report a channel's data path"),
        R::SegmentUnreadable { .. } => (&[Role::Mover], "report an unreadable segment"),
        R::CheckPair { .. } => (&[Role::Mover], "check a pairing"),
        R::Backup { .. } | R::Restore { .. } | R::RestoreAt { .. } | R::Merge { .. } => {
            (&[Role::Client, Role::Operator], "start backups and restores")
        }
        R::LibraryLabel { .. } | R::LibraryExport { .. } | R::LibraryImport { .. } => {
            (&[Role::Operator], "manage the tape library")
        }
        R::PoolDefine { .. } | R::PoolBackup { .. } => (&[Role::Operator], "manage storage pools"),
        R::DeleteAbs { .. } => (&[Role::Client, Role::Operator], "delete backups"),
        R::TapeAudit { .. } => (&[Role::Operator], "audit tapes"),
        R::TapeRecover { .. } => (&[Role::Operator], "recover tapes"),
        R::AbsCopy { .. } | R::AbsMove { .. } => (&[Role::Operator], "copy and move backups"),
        R::CatalogBackup { .. } => (&[Role::Operator], "back up the catalog"),
        R::FetchDump { .. } => (&[Role::Mover], "fetch a catalog dump"),
        R::ManagementRecord { .. } | R::TapeRecords { .. } => (&[Role::Mover], "ask for management records"),
        R::PoolList => (&[Role::Client, Role::Operator], "list the storage pools"),
        R::VpoolDefine { .. }
        | R::VpoolAdd { .. }
        | R::VpoolRemove { .. }
        | R::VersionsDefine { .. }
        | R::VersionsPrepare { .. }
        | R::VersionsRun { .. }
        | R::VersionsRestore { .. } => (&[Role::Operator], "manage copy versions"),
        R::VpoolList | R::VersionsList { .. } => (&[Role::Client, Role::Operator], "list copy versions"),
        R::Define(_) | R::Undefine { .. } | R::ListDefinitions | R::RunDefinition { .. } => {
            (&[Role::Client, Role::Operator], "manage backup definitions")
        }
        R::ListAbs | R::ListSegments { .. } | R::Channels { .. } | R::ListGrants => {
            (&[Role::Client, Role::Operator], "read the catalog")
        }
        R::ListTapes | R::ListMovers => (&[Role::Operator], "list the tapes and movers"),
        R::Notifications { .. } | R::AcknowledgeNotification { .. } => {
            (&[Role::Operator], "read or acknowledge notifications")
        }
        R::Health => (&[Role::Client, Role::Operator], "ask the station's health"),
        R::Grant { .. } | R::Revoke { .. } => (&[Role::Operator], "grant or revoke rights"),
    };
    transport::require_role(peer, allowed, action)?;
    let claimed = match req {
        R::RegisterPrimary { name, .. }
        | R::RegisterMover { name, .. }
        | R::RegisterAgent { name, .. }
        | R::Heartbeat { name } => Some(name),
        _ => None,
    };
    if let Some(name) = claimed {
        if name != &peer.name {
            bail!(Failure::refused(format!("peer {} may not speak for {name}", peer.name)));
        }
    }
    Ok(())
}

/// A registered program version: printable, at most
/// [`proto::wire::MAX_VERSION_TEXT`] bytes.
pub(super) fn check_version(version: &str) -> Result<()> {
    if version.len() > proto::wire::MAX_VERSION_TEXT || version.chars().any(char::is_control) {
        bail!(Failure::invalid(format!(
            "program version of {} bytes (at most {}, printable)",
            version.len(),
            proto::wire::MAX_VERSION_TEXT
        )));
    }
    Ok(())
}
