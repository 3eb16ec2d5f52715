//! Who answers each request (what each role may ask is [`super::authorize`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use proto::domain::{AbsId, ChannelId, ChannelKind, Failure};
use proto::wire::{StationReply, StationRequest};
use transport::FramedSend;
use transport::{Peer, Role};

use super::access::{Access, Right};
use super::authorize::check_version;
use super::{
    audit, backup, catalog_backup, copy, definitions, failure_of, library, library_admin, listing, merge, recovery,
    registry, restore, versions, ChannelNote, PeerConn, Station,
};

/// Fail unless channel `channel_id` writes or reads ABS `abs_id` (a
/// placement names both; a participant of one channel may not place
/// segments of another's ABS).
async fn require_channel_of(st: &Arc<Station>, channel_id: ChannelId, abs_id: AbsId) -> Result<()> {
    let row = st
        .catalog
        .channel(channel_id)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("no channel {channel_id}"))))?;
    if row.abs_id != abs_id {
        bail!(Failure::refused(format!(
            "not authorized: channel {channel_id} writes ABS {}, not ABS {abs_id}",
            row.abs_id
        )));
    }
    Ok(())
}

/// Fail unless `access` may see ABS `id`.
async fn require_visible_abs(st: &Arc<Station>, access: &Access, id: AbsId) -> Result<()> {
    let row = st.catalog.load_abs(id).await?;
    match row {
        Some(a) if access.may_see(&a.primary_node, &a.object_name) => Ok(()),
        _ if access.is_operator() => Ok(()),
        // The same answer whether the ABS exists or not.
        _ => bail!(Failure::refused(format!(
            "not authorized: no ABS {id} this client has a grant on"
        ))),
    }
}

pub(super) async fn dispatch(
    st: Arc<Station>,
    conn: quinn::Connection,
    peer: Peer,
    req: StationRequest,
    send: &mut FramedSend,
) {
    use StationRequest as R;
    let reply = match req {
        R::Backup {
            object_name,
            primary,
            object,
            drives,
            level,
            detach,
            pool,
            copy_to,
            label,
            from_version,
        } => {
            let req = backup::BackupRequest {
                object_name,
                primary,
                object,
                drives,
                level,
                detach,
                pool,
                copy_to,
                label,
                definition: None,
                from_version,
            };
            backup::run(st, &peer, req, &conn, send).await;
            return;
        }
        R::Restore { abs_id, target, drives } => {
            let wanted = restore::Wanted::Abs(abs_id);
            restore::run(st, &peer, restore::RestoreRequest { wanted, target, drives }, send).await;
            return;
        }
        R::RestoreAt {
            primary,
            object_name,
            at_unix_ms,
            target,
            drives,
        } => {
            let wanted = restore::Wanted::At {
                primary,
                object_name,
                at_unix_ms,
            };
            restore::run(st, &peer, restore::RestoreRequest { wanted, target, drives }, send).await;
            return;
        }
        R::Merge {
            primary,
            object_name,
            abs_id,
        } => {
            let req = merge::MergeRequest {
                primary,
                object_name,
                abs_id,
            };
            merge::run(st, &peer, req, send).await;
            return;
        }
        R::PoolBackup {
            primary,
            copy_pool,
            drives,
        } => {
            let req = copy::PoolBackupRequest {
                primary,
                copy_pool,
                drives,
            };
            copy::run(st, req, send).await;
            return;
        }
        R::TapeRecover { label, drives } => {
            copy::recover(st, copy::RecoverRequest { label, drives }, send).await;
            return;
        }
        R::AbsCopy { abs_id, pool } => {
            copy::abs_copy(st, abs_id, pool, send).await;
            return;
        }
        R::AbsMove { abs_id, pool } => {
            copy::abs_move(st, abs_id, pool, send).await;
            return;
        }
        R::CatalogBackup { pool } => {
            catalog_backup::run(st, &peer, pool, send).await;
            return;
        }
        R::FetchDump { channel_id } => {
            catalog_backup::serve_dump(&st, &peer, channel_id, send).await;
            return;
        }
        R::RunDefinition { name } => {
            definitions::run_now(st, &peer, &name, send).await;
            return;
        }
        other => match handle(&st, conn, &peer, other).await {
            Ok(r) => r,
            Err(e) => {
                let failure = failure_of(&e);
                tracing::warn!(peer = %peer.name, code = %failure.code, error = %failure.message, "request failed");
                StationReply::Error(failure)
            }
        },
    };
    let _ = send.send(&reply).await;
}

async fn handle(st: &Arc<Station>, conn: quinn::Connection, peer: &Peer, req: StationRequest) -> Result<StationReply> {
    use StationRequest as R;
    Ok(match req {
        R::RegisterPrimary {
            name,
            volumes,
            boot,
            channels,
            targets,
            version,
        } => {
            check_version(&version)?;
            st.restarted(&name, boot).await;
            let id = registry::register_primary(st, &name, volumes, &targets).await?;
            let role = peer.role;
            st.admit(
                &name,
                PeerConn {
                    conn,
                    boot,
                    role,
                    version,
                },
            )
            .await;
            tokio::spawn(recovery::reconcile(st.clone(), name, channels, Vec::new()));
            StationReply::Registered { id: id.get() }
        }
        R::RegisterMover {
            name,
            role,
            address,
            drives,
            back_end,
            boot,
            channels,
            version,
        } => {
            check_version(&version)?;
            st.restarted(&name, boot).await;
            let id = registry::register_mover(st, &name, role, &address, &drives, back_end).await?;
            let role = peer.role;
            st.admit(
                &name,
                PeerConn {
                    conn,
                    boot,
                    role,
                    version,
                },
            )
            .await;
            tokio::spawn(recovery::reconcile(st.clone(), name, channels, drives));
            StationReply::Registered { id: id.get() }
        }
        R::Heartbeat { name } => {
            if !st.registered_on(&name, &conn).await {
                return Ok(StationReply::NotRegistered);
            }
            st.seen(&name).await;
            // The catalog's `last_seen` follows in the background: liveness
            // never waits on the database.
            let st = st.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), registry::heartbeat(&st, &name)).await;
            });
            StationReply::Ok
        }
        R::Health => StationReply::Health(recovery::health(st).await),
        R::TapeFull {
            drive,
            tape_label,
            files,
            bytes,
        } => library::continue_media_set(st, &peer.name, &drive, &tape_label, files, bytes).await?,
        R::TapeRecords {
            drive,
            tape_label,
            abs_ids,
        } => library::tape_records(st, &peer.name, &drive, &tape_label, &abs_ids).await?,
        R::SegmentPlaced(p) => {
            st.require_participant(p.channel_id, &peer.name).await?;
            require_channel_of(st, p.channel_id, p.abs_id).await?;
            library::record_segment(st, &p).await?;
            StationReply::Ok
        }
        R::MetadataPlaced {
            channel_id,
            abs_id,
            tape_label,
            tape_file,
            ..
        } => {
            st.require_participant(channel_id, &peer.name).await?;
            require_channel_of(st, channel_id, abs_id).await?;
            library::record_metadata(st, abs_id, &tape_label, tape_file).await?;
            StationReply::Ok
        }
        R::ChannelProgress { channel_id, bytes, .. } => {
            st.require_participant(channel_id, &peer.name).await?;
            st.note(channel_id, ChannelNote::Progress { bytes }).await;
            StationReply::Ok
        }
        R::ChannelFinished {
            channel_id,
            data_bytes,
            tracks,
            segments,
        } => {
            st.require_participant(channel_id, &peer.name).await?;
            st.note(
                channel_id,
                ChannelNote::Finished {
                    data_bytes,
                    tracks,
                    segments,
                },
            )
            .await;
            StationReply::Ok
        }
        R::SegmentUnreadable {
            channel_id,
            seq,
            tape_label,
            tape_file,
            failure,
        } => {
            st.require_participant(channel_id, &peer.name).await?;
            tracing::warn!(%channel_id, %seq, tape = %tape_label, file = tape_file, reason = %failure.message, "segment unreadable");
            let note = ChannelNote::Unreadable {
                seq,
                tape_label,
                tape_file,
                failure,
            };
            st.note(channel_id, note).await;
            StationReply::Ok
        }
        R::ChannelFailed { channel_id, failure } => {
            st.require_participant(channel_id, &peer.name).await?;
            tracing::warn!(%channel_id, peer = %peer.name, code = %failure.code, reason = %failure.message, "channel failure reported");
            st.note(channel_id, ChannelNote::Failed { failure }).await;
            StationReply::Ok
        }
        R::ChannelDataPath {
            channel_id,
            shared,
            detail,
        } => {
            st.require_participant(channel_id, &peer.name).await?;
            let note = format!("data path: {detail}");
            let recorded = st.catalog.note_channel(channel_id, &peer.name, &note).await?;
            tracing::info!(%channel_id, peer = %peer.name, shared, recorded, "channel data path");
            StationReply::Ok
        }
        R::ManagementRecord { channel_id } => {
            let row = st
                .catalog
                .channel(channel_id)
                .await?
                .ok_or_else(|| anyhow!(Failure::not_found(format!("no channel {channel_id}"))))?;
            if row.kind != ChannelKind::Backup || row.fe_name.as_deref() != Some(peer.name.as_str()) {
                metrics::counter!("dmc_station_requests_refused_total").increment(1);
                bail!(Failure::refused(format!(
                    "not authorized: {} is not the front-end writing backup channel {channel_id}",
                    peer.name
                )));
            }
            StationReply::Management(st.catalog.management_record(row.abs_id).await?)
        }
        R::ListAbs => {
            let access = Access::of(st, peer).await?;
            let mut all = listing::abs(st).await?;
            all.retain(|a| access.may_see(&a.primary, &a.object_name));
            StationReply::Abs(all)
        }
        R::ListTapes => StationReply::Tapes(listing::tapes(st).await?),
        R::ListMovers => StationReply::Movers(listing::movers(st).await?),
        R::Notifications { acknowledged } => {
            StationReply::Notifications(listing::notifications(st, acknowledged).await?)
        }
        R::AcknowledgeNotification { id } => {
            let id = i64::try_from(id).map_err(|_| Failure::not_found(format!("no notification {id}")))?;
            let row = super::notify::acknowledge(st, id, &peer.name).await?;
            StationReply::Notifications(vec![listing::notification(row)])
        }
        R::LibraryLabel { pool, count } => {
            let pool = pool.unwrap_or_else(|| st.cfg.pool.clone());
            let labels = library_admin::label(st, &pool, count).await?;
            StationReply::Tapes(listing::tapes_named(st, &labels).await?)
        }
        R::LibraryExport { label, to_dir } => {
            library_admin::export(st, &label, &to_dir).await?;
            StationReply::Tapes(listing::tapes_named(st, &[label]).await?)
        }
        R::LibraryImport { paths, pool } => {
            let pool = pool.unwrap_or_else(|| st.cfg.pool.clone());
            let done = library_admin::import(st, &paths, &pool).await?;
            StationReply::Imported {
                tapes: listing::tapes_named(st, &done.labels).await?,
                abs: done.abs,
                notes: done.notes,
            }
        }
        R::PoolDefine {
            name,
            kind,
            copies_of,
            retain_days,
        } => {
            let p = st.catalog.define_pool(&name, kind, &copies_of, retain_days).await?;
            tracing::info!(pool = %p.name, kind = %p.kind, copies_of = ?p.copies_of, retain_days = p.retain_days, by = %peer.name, "pool defined");
            StationReply::Pools(listing::pools(st).await?)
        }
        R::VpoolDefine { name, kind, volumes } => {
            StationReply::Vpools(versions::vpool_define(st, &name, kind, &volumes).await?)
        }
        R::VpoolAdd { name, volumes } => StationReply::Vpools(versions::vpool_change(st, &name, &volumes, true).await?),
        R::VpoolRemove { name, volumes } => {
            StationReply::Vpools(versions::vpool_change(st, &name, &volumes, false).await?)
        }
        R::VpoolList => StationReply::Vpools(versions::vpools(st).await?),
        R::VersionsDefine {
            name,
            source,
            targets,
            keep,
            pre,
        } => StationReply::VersionSets(
            versions::versions_define(st, &name, &source, &targets, keep, pre.as_ref(), &peer.name).await?,
        ),
        R::VersionsPrepare { name } => {
            StationReply::VersionSets(versions::versions_prepare(st, &name, &peer.name).await?)
        }
        R::VersionsList { name } => StationReply::VersionSets(versions::version_sets(st, name.as_deref()).await?),
        R::VersionsRun { name } => StationReply::VersionSets(versions::versions_run(st, &name, &peer.name).await?),
        R::VersionsRestore {
            set,
            version,
            volume,
            to,
        } => {
            let (destination, tracks, bytes) =
                versions::versions_restore(st, &set, version, &volume, to.as_ref(), &peer.name).await?;
            StationReply::VersionRestored {
                destination,
                bytes,
                tracks,
            }
        }
        R::DeleteAbs {
            abs_id,
            with_dependents,
        } => {
            // A client deletes what it may back up: a backup grant on the
            // object (or its node); the same answer whether it exists or not.
            let access = Access::of(st, peer).await?;
            let abs = st.catalog.load_abs(abs_id).await?;
            match &abs {
                Some(a) if access.may(Right::Backup, &a.primary_node, Some(&a.object_name)) => {}
                _ if access.is_operator() => {}
                _ => bail!(Failure::refused(format!(
                    "not authorized: no ABS {abs_id} this client may delete (it needs a backup grant on the ABS's object)"
                ))),
            }
            let d = st.catalog.delete_abs(abs_id, with_dependents, &peer.name).await?;
            // Emptied tapes of a pool keeping none are scratch at once.
            st.catalog.recycle_tapes().await?;
            StationReply::Deleted {
                abs: d.abs,
                tapes_emptied: d.tapes_emptied,
            }
        }
        R::PoolList => StationReply::Pools(listing::pools(st).await?),
        R::Define(spec) => StationReply::Definitions(vec![definitions::define(st, peer, *spec).await?]),
        R::Undefine { name } => {
            definitions::undefine(st, peer, &name).await?;
            StationReply::Ok
        }
        R::ListDefinitions => StationReply::Definitions(definitions::list(st, peer).await?),
        R::RegisterAgent { name, boot, version } => {
            check_version(&version)?;
            // A client certificate never takes a mover's or node's place.
            let held = st.peers.lock().await.get(&name).map(|p| p.role);
            if held.is_some_and(|r| r != peer.role) {
                bail!(Failure::refused(format!(
                    "not authorized: {name} is registered as a {}, not an agent",
                    held.map_or("", |r| r.as_str())
                )));
            }
            st.restarted(&name, boot).await;
            let role = peer.role;
            st.admit(
                &name,
                PeerConn {
                    conn,
                    boot,
                    role,
                    version,
                },
            )
            .await;
            tracing::info!(%name, boot, "agent registered");
            StationReply::Registered { id: 0 }
        }
        R::TapeAudit { label } => StationReply::Audit(audit::audit(st, &label).await?),
        R::ListSegments { abs_id } => {
            let access = Access::of(st, peer).await?;
            match abs_id {
                None if !access.is_operator() => {
                    bail!(Failure::refused(
                        "not authorized: every segment of the catalog is for operators; name an ABS (--abs N)"
                    ))
                }
                None => {}
                Some(id) => require_visible_abs(st, &access, id).await?,
            }
            StationReply::Segments(listing::segments(st, abs_id).await?)
        }
        R::Channels { channel_id } => {
            let access = Access::of(st, peer).await?;
            let visible: Option<std::collections::HashSet<AbsId>> = if access.is_operator() {
                None
            } else {
                let all = listing::abs(st).await?;
                Some(
                    all.into_iter()
                        .filter(|a| access.may_see(&a.primary, &a.object_name))
                        .map(|a| a.abs_id)
                        .collect(),
                )
            };
            match channel_id {
                None => {
                    let mut all = listing::channels(st).await?;
                    if let Some(v) = &visible {
                        all.retain(|c| v.contains(&c.abs_id));
                    }
                    StationReply::Channels(all)
                }
                Some(id) => {
                    let reply = listing::history(st, id).await?;
                    if let (Some(v), StationReply::History { channel, .. }) = (&visible, &reply) {
                        if !v.contains(&channel.abs_id) {
                            bail!(Failure::refused(format!(
                                "not authorized: channel {id} belongs to an object {} has no grant on",
                                peer.name
                            )));
                        }
                    }
                    reply
                }
            }
        }
        R::Grant {
            client,
            primary,
            object,
            backup,
            restore,
        } => {
            st.catalog
                .grant(&client, &primary, object.as_deref(), backup, restore, &peer.name)
                .await?;
            tracing::info!(by = %peer.name, %client, %primary, ?object, backup, restore, "granted");
            StationReply::Grants(listing::grants(st, Some(&client)).await?)
        }
        R::Revoke {
            client,
            primary,
            object,
            backup,
            restore,
        } => {
            if !st
                .catalog
                .revoke(&client, &primary, object.as_deref(), backup, restore)
                .await?
            {
                let scope = object.map(|o| format!(" object {o}")).unwrap_or_default();
                bail!(Failure::not_found(format!(
                    "client {client} has no grant on {primary}{scope} to revoke"
                )));
            }
            tracing::info!(by = %peer.name, %client, %primary, backup, restore, "revoked");
            StationReply::Grants(listing::grants(st, Some(&client)).await?)
        }
        R::CheckPair { front_end } => {
            let pairs = st.catalog.list_pairs().await?;
            if !pairs.iter().any(|p| p.fe_name == front_end && p.be_name == peer.name) {
                bail!(Failure::refused(format!(
                    "not authorized: {front_end} is not a front-end of back-end {}",
                    peer.name
                )));
            }
            StationReply::Ok
        }
        R::ListGrants => {
            let own = (peer.role != Role::Operator).then_some(peer.name.as_str());
            StationReply::Grants(listing::grants(st, own).await?)
        }
        R::Backup { .. }
        | R::Restore { .. }
        | R::RestoreAt { .. }
        | R::Merge { .. }
        | R::PoolBackup { .. }
        | R::TapeRecover { .. }
        | R::AbsCopy { .. }
        | R::AbsMove { .. }
        | R::CatalogBackup { .. }
        | R::FetchDump { .. }
        | R::RunDefinition { .. } => {
            bail!(Failure::internal(
                "internal: backups, restores, merges and pool backups are streamed"
            ))
        }
    })
}
