//! Importing tapes this catalog never wrote (seed 002 FIG. 15): another
//! cluster's, or this cluster's written before the catalog knew them.
//!
//! A back-end describes each image (labels, data files from its DIRECTORY
//! and CATALOG or a scan, the bytes of its ABS metadata files); the station
//! decodes and checks the metadata (an unknown format version is refused
//! naming the tape and the file), works out what the tapes hold with the
//! rebuild's planner, has the back-end move the images into its library,
//! and records them: tapes full (never written here), media sets
//! renumbered, every ABS with its UUID, client, label, times, lineage and
//! the cluster that wrote it, under its own id when that is free here and
//! a new one otherwise (then the id it carries on tape is kept beside, for
//! the back-ends' checks when they read it). An ABS already in the
//! catalog (same UUID) is not recorded again. Images of a media set go in
//! one import: an ABS is recorded only when its metadata and all its
//! segments are on the images given.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use proto::domain::{AbsId, Failure};
use proto::tape::volume::TapeDescription;
use proto::wire::{Command, CommandReply};

use super::Station;
use crate::rebuild::plan::{self, TapeSeen};
use crate::rebuild::read;
use crate::rebuild::record::{self, Ids};

/// What an import recorded.
#[derive(Debug, Clone)]
pub(crate) struct Imported {
    pub tapes: Vec<String>,
    /// (id on tape, id here) of each ABS recorded.
    pub abs: Vec<(u64, AbsId)>,
    pub notes: Vec<String>,
}

/// Import the labelled images at `paths` (outside the library), none of
/// whose labels the catalog knows, through back-end `be`.
pub(crate) async fn import_foreign(st: &Arc<Station>, be: &str, paths: &[String]) -> Result<Imported> {
    let mut notes = Vec::new();
    let mut tapes: Vec<TapeSeen> = Vec::with_capacity(paths.len());
    for path in paths {
        let described = match st
            .command_ok(be, &Command::DescribeImage { path: path.clone() })
            .await?
        {
            CommandReply::ImageDescribed(d) => *d,
            other => bail!(Failure::internal(format!(
                "back-end {be} answered a description with {other:?}"
            ))),
        };
        let d = TapeDescription::try_from(described).map_err(|e| anyhow!(Failure::corrupt(e)))?;
        let t = read::seen(d, path, &mut notes).map_err(|e| anyhow!(Failure::corrupt(format!("{e:#}"))))?;
        if let Some(known) = st.catalog.tape_by_label(&t.label).await? {
            bail!(Failure::conflict(format!(
                "{path} holds tape {}, but this catalog has a tape {} already ({}, {}): tape labels are unique in a library (give each cluster its own --label-prefix)",
                t.label, known.label, known.pool, known.path
            )));
        }
        if tapes.iter().any(|o| o.label == t.label) {
            bail!(Failure::invalid(format!("tape {} is given twice", t.label)));
        }
        tapes.push(t);
    }
    // ABSs already here (by UUID), and bases found here by UUID.
    let mut known: HashMap<u64, AbsId> = HashMap::new();
    let mut skip: BTreeSet<u64> = BTreeSet::new();
    for t in &tapes {
        for (_, m) in &t.metadata {
            let Some(r) = &m.management else { continue };
            if let Some(id) = st.catalog.abs_by_uuid(r.abs_uuid).await? {
                known.insert(m.abs_id, id);
                skip.insert(m.abs_id);
            }
            if m.base_abs_id != 0 && !r.base_uuid.is_nil() {
                if let Some(id) = st.catalog.abs_by_uuid(r.base_uuid).await? {
                    known.insert(m.base_abs_id, id);
                }
            }
        }
    }
    let known_ids: BTreeSet<u64> = known.keys().copied().collect();
    let mut p = plan::plan_with(&tapes, &known_ids);
    p.abs.retain(|a| {
        let again = skip.contains(&a.abs_id());
        if again {
            notes.push(format!(
                "ABS {} ({}) is in this catalog already: not recorded again",
                a.abs_id(),
                a.meta.object_name
            ));
        }
        !again
    });
    let unread = p.abs.iter().flat_map(|a| &a.segments).any(|s| s.counts.is_none());
    if unread {
        bail!(Failure::refused(
            "these tapes' management records do not give their segments' sizes (written before version 2): rebuild the catalog from them with control-station catalog rebuild, which reads the segments"
        ));
    }
    // Into the library, then into the catalog.
    for t in &mut tapes {
        let cmd = Command::ImportImage {
            from: t.path.clone(),
            label: t.label.clone(),
            blank: false,
        };
        match st.command_ok(be, &cmd).await? {
            CommandReply::ImageImported { path } => t.path = path,
            other => bail!(Failure::internal(format!(
                "back-end {be} answered an import with {other:?}"
            ))),
        }
    }
    let mut ids = Ids::Import {
        known,
        ours: st.catalog.cluster_id().await?,
    };
    let done = record::record(&st.catalog, &tapes, &p, &mut ids, &st.cfg.label_prefix).await?;
    notes.extend(p.notes);
    for n in &notes {
        tracing::warn!(note = %n, "import");
    }
    tracing::info!(tapes = ?done.tapes, abs = done.abs.len(), "foreign tapes imported");
    Ok(Imported {
        tapes: done.tapes,
        abs: done.abs,
        notes,
    })
}
