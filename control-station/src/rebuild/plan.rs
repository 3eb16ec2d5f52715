//! The catalog a set of tapes describes, worked out from what was read of
//! them (labels, directories, ABS metadata with management records) with
//! no database and no I/O: which pools of which kind, which tapes in which
//! state, and for every ABS its lineage, its segments and their copies.
//!
//! Rules (each a note when it cannot be followed):
//! - An ABS's *home pool* is the pool its newest management record names
//!   (older metadata: the pool of the first tape holding its segment 0).
//!   Its segments on tapes of its home pool are the primary copies (where
//!   the record places one, that one); on tapes of other pools, copies —
//!   except pools older records of it name: it moved away from those
//!   (`abs move`), and what is left there is not recorded.
//! - An ABS is recorded from the metadata on a home-pool tape (else any);
//!   complete when every segment it counts has a primary copy, failed
//!   (naming the missing ones) otherwise. Segments with no metadata on
//!   any tape are of a backup that never finished: not recorded.
//! - A differential or synthetic full whose base or merged chain tip is
//!   not recorded is not recorded either (its chain cannot be restored).
//! - A pool is a catalog pool if it is home to catalog backups (node
//!   `@station`), a copy pool if it holds copies (of the home pools of the
//!   ABSs it copies), else a primary pool.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proto::domain::{Level, PoolKind, TapeState, Uuid};
use proto::tape::directory::{DirectoryEntry, FileKind};
use proto::tape::management::PlacementCounts;
use proto::tape::metadata::AbsKind;
use proto::tape::metadata::AbsMetadata;
use proto::tape::volume::ContinuedAbs;
use proto::wire::STATION_NODE;

/// The node an ABS is recorded under when its metadata predates management
/// records (they name no node).
pub const UNKNOWN_NODE: &str = "unknown-node";

/// One tape image as read.
#[derive(Debug, Clone)]
pub struct TapeSeen {
    pub path: String,
    pub label: String,
    pub pool: String,
    pub media_set: u64,
    pub sequence: u32,
    pub created_unix: u64,
    /// Finished with EOV labels: its media set goes on on another tape.
    pub continues: bool,
    pub files: Vec<DirectoryEntry>,
    /// Every ABS-METADATA file of the tape: (tape file, metadata).
    pub metadata: Vec<(u32, AbsMetadata)>,
    /// The CATALOG's records of ABSs whose metadata is on another tape.
    pub continued: Vec<ContinuedAbs>,
}

/// What a segment holds, and its body CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCounts {
    pub data_bytes: u64,
    pub track_count: u32,
    pub crc32c: u32,
}

/// A tape as it will be recorded (in `Plan::tapes` order: oldest first,
/// which gives the library slots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapePlan {
    /// Index into the tapes read.
    pub tape: usize,
    pub state: TapeState,
    pub bytes: u64,
    pub files: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    pub name: String,
    pub kind: PoolKind,
    pub copies_of: Vec<String>,
}

/// Where a segment (or a copy of it) lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub tape: usize,
    pub file: u32,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPlan {
    pub seq: u32,
    pub at: Place,
    /// From the management record (None: to be read from the segment).
    pub counts: Option<SegmentCounts>,
    /// Copies in other pools.
    pub copies: Vec<Place>,
}

#[derive(Debug, Clone)]
pub struct AbsPlan {
    pub meta: AbsMetadata,
    pub primary_node: String,
    pub level: Level,
    pub home_pool: String,
    /// The metadata file recorded as the ABS's (on a home-pool tape).
    pub metadata_at: Option<(usize, u32)>,
    pub segments: Vec<SegmentPlan>,
    /// Segments counted by the metadata with no primary copy found.
    pub missing: Vec<u32>,
    /// Whole copies: (tape, metadata file) of each copy pool's copy.
    pub copies: Vec<(usize, u32)>,
}

impl AbsPlan {
    pub fn abs_id(&self) -> u64 {
        self.meta.abs_id
    }
}

/// Everything to record.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub cluster_id: Option<Uuid>,
    pub pools: Vec<PoolPlan>,
    pub tapes: Vec<TapePlan>,
    /// By ABS id.
    pub abs: Vec<AbsPlan>,
    /// What could not be recorded as found, and why.
    pub notes: Vec<String>,
}

/// The level of an ABS from its metadata.
fn level_of(m: &AbsMetadata) -> Level {
    match &m.management {
        Some(r) => r.level,
        None if m.merged_from_abs_id != 0 => Level::Synthetic,
        None if m.kind == AbsKind::Differential => Level::Incremental,
        None => Level::Full,
    }
}

/// Why ABS `id`, with segments on `tapes` but its metadata on none of
/// them, is not recorded: with a CATALOG record of it, which tapes its
/// record places it on that were not read.
fn unfinished_note(id: u64, tapes: &[TapeSeen]) -> String {
    let found = tapes
        .iter()
        .find_map(|t| t.continued.iter().find(|c| c.abs_id == id).map(|c| (t, c)));
    let Some((t, c)) = found else {
        return format!(
            "ABS {id}: segments on tape but no metadata on any tape (a backup that never finished): not recorded"
        );
    };
    let r = &c.record;
    let mut placed: Vec<&str> = r.placements.iter().map(|p| p.tape_label.as_str()).collect();
    placed.sort_unstable();
    placed.dedup();
    let unread: Vec<&str> = placed
        .iter()
        .copied()
        .filter(|l| !tapes.iter().any(|t| t.label == *l))
        .collect();
    let what = format!(
        "ABS {id} ({} of {:?} from {}, pool {}{})",
        r.level,
        c.object_name,
        r.client,
        r.pool,
        if r.label.is_empty() {
            String::new()
        } else {
            format!(", label {:?}", r.label)
        }
    );
    if unread.is_empty() {
        format!(
            "{what}: its metadata is on no tape read (the CATALOG of {} describes it; its media set goes on on a later tape, or the backup never finished): not recorded",
            t.label
        )
    } else {
        format!(
            "{what}: its metadata is on no tape read; the CATALOG of {} places its segments on {} too: add {} and rebuild again. Not recorded",
            t.label,
            unread.join(", "),
            if unread.len() == 1 { "that tape" } else { "those tapes" }
        )
    }
}

/// Work out the catalog `tapes` describe.
pub fn plan(tapes: &[TapeSeen]) -> Plan {
    plan_with(tapes, &BTreeSet::new())
}

/// [`plan`] for tapes added to a catalog that holds the ABSs `known` (by
/// the ids they carry on tape): differentials and synthetic fulls may
/// build on those.
pub fn plan_with(tapes: &[TapeSeen], known: &BTreeSet<u64>) -> Plan {
    let mut notes = Vec::new();
    // Every segment tape file, by (ABS, seq).
    let mut places: BTreeMap<(u64, u32), Vec<Place>> = BTreeMap::new();
    for (i, t) in tapes.iter().enumerate() {
        for e in t.files.iter().filter(|e| e.kind == FileKind::Segment) {
            places.entry((e.abs_id, e.seq)).or_default().push(Place {
                tape: i,
                file: e.file_number,
                bytes: e.bytes,
            });
        }
    }
    // Every metadata file, by ABS: (tape, index in its metadata).
    let mut metadata: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, t) in tapes.iter().enumerate() {
        for (k, (_, m)) in t.metadata.iter().enumerate() {
            metadata.entry(m.abs_id).or_default().push((i, k));
        }
    }
    let meta_at = |(t, k): (usize, usize)| -> &AbsMetadata { &tapes[t].metadata[k].1 };
    let file_of = |(t, k): (usize, usize)| -> (usize, u32) { (t, tapes[t].metadata[k].0) };
    let unfinished: BTreeSet<u64> = places
        .keys()
        .map(|(a, _)| *a)
        .filter(|a| !metadata.contains_key(a))
        .collect();
    for a in &unfinished {
        notes.push(unfinished_note(*a, tapes));
    }

    let mut recorded: BTreeSet<u64> = known.clone();
    let mut abs = Vec::new();
    let mut clusters: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (&id, files) in &metadata {
        // The newest primary record (copy number 0) says where the ABS is
        // (an `abs move` wrote a new one); records of the same age agree. A
        // copy's record (copy number 1…) names its copy pool: it never
        // makes that pool the ABS's home.
        let written = |f: &(usize, usize)| meta_at(*f).management.as_ref().and_then(|r| r.written_ms).unwrap_or(0);
        let primary = |f: &&(usize, usize)| meta_at(**f).management.as_ref().is_none_or(|r| r.copy_number == 0);
        let newest = files
            .iter()
            .filter(primary)
            .max_by_key(|f| written(f))
            .or_else(|| files.iter().max_by_key(|f| written(f)))
            .copied()
            .unwrap_or(files[0]);
        let home_pool = match &meta_at(newest).management {
            Some(r) if r.copy_number > 0 => {
                notes.push(format!(
                    "ABS {id}: only its copy number {} in pool {} is on the tapes read; recorded from that copy",
                    r.copy_number, r.pool
                ));
                r.pool.clone()
            }
            Some(r) => r.pool.clone(),
            None => places
                .get(&(id, 0))
                .and_then(|p| p.iter().min_by_key(|p| (tapes[p.tape].created_unix, p.tape)))
                .map_or_else(|| tapes[files[0].0].pool.clone(), |p| tapes[p.tape].pool.clone()),
        };
        // Pools older records name: the ABS moved away from them, and what
        // is left of it on their tapes is not wanted.
        let left: BTreeSet<String> = files
            .iter()
            .filter_map(|f| {
                meta_at(*f)
                    .management
                    .as_ref()
                    .filter(|r| r.copy_number == 0)
                    .map(|r| r.pool.clone())
            })
            .filter(|p| *p != home_pool)
            .collect();
        if !left.is_empty() {
            notes.push(format!(
                "ABS {id} moved to pool {home_pool}: what is left of it on tapes of pool {} is not recorded",
                left.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let stale = |p: &Place| left.contains(&tapes[p.tape].pool);
        // The home copy of the metadata (the newest, the latest written),
        // else any.
        let home_meta = files
            .iter()
            .rev()
            .filter(|(t, _)| tapes[*t].pool == home_pool)
            .max_by_key(|f| written(f))
            .copied();
        let meta = meta_at(home_meta.unwrap_or(newest)).clone();
        let home_meta = home_meta.map(file_of);
        let level = level_of(&meta);
        let needs = [meta.base_abs_id, meta.merged_from_abs_id];
        if let Some(gone) = needs.iter().find(|&&b| b != 0 && !recorded.contains(&b)) {
            notes.push(format!(
                "ABS {id} ({level} of {:?}): it builds on ABS {gone}, which is on no tape read: not recorded",
                meta.object_name
            ));
            continue;
        }
        let placed: HashMap<u32, (&str, u32, Option<PlacementCounts>, u32)> = meta
            .management
            .iter()
            .flat_map(|r| &r.placements)
            .map(|p| (p.seq, (p.tape_label.as_str(), p.tape_file, p.counts, p.crc32c)))
            .collect();
        let mut segments = Vec::new();
        let mut missing = Vec::new();
        for seq in 0..meta.segment_count {
            let all = places.get(&(id, seq)).map(Vec::as_slice).unwrap_or(&[]);
            let (home, other): (Vec<Place>, Vec<Place>) = all
                .iter()
                .filter(|p| !stale(p))
                .partition(|p| tapes[p.tape].pool == home_pool);
            let hint = placed.get(&seq);
            let chosen = home
                .iter()
                .find(|p| hint.is_some_and(|h| h.0 == tapes[p.tape].label && h.1 == p.file))
                .or(home.first())
                .copied();
            let Some(at) = chosen else {
                missing.push(seq);
                continue;
            };
            let extra = home.iter().filter(|p| **p != at).count();
            if extra > 0 {
                notes.push(format!(
                    "ABS {id} segment {seq}: {extra} more copies in its own pool {home_pool} (left out; the one on {} file {} is recorded)",
                    tapes[at.tape].label, at.file
                ));
            }
            let counts = hint.and_then(|h| {
                h.2.map(|c| SegmentCounts {
                    data_bytes: c.data_bytes,
                    track_count: c.track_count,
                    crc32c: h.3,
                })
            });
            segments.push(SegmentPlan {
                seq,
                at,
                counts,
                copies: other,
            });
        }
        // A copy pool's copy is whole when it holds every segment and the
        // metadata after them.
        let mut copies = Vec::new();
        let copy_pools: BTreeSet<&str> = files
            .iter()
            .map(|(t, _)| tapes[*t].pool.as_str())
            .filter(|p| *p != home_pool && !left.contains(*p))
            .collect();
        for pool in copy_pools {
            let whole = missing.is_empty()
                && segments
                    .iter()
                    .all(|s| s.copies.iter().any(|c| tapes[c.tape].pool == pool));
            let last = files
                .iter()
                .rev()
                .find(|(t, _)| tapes[*t].pool == pool)
                .copied()
                .map(file_of);
            match (whole, last) {
                (true, Some(at)) => copies.push(at),
                _ => notes.push(format!(
                    "ABS {id}: its copy in pool {pool} is not whole on the tapes read"
                )),
            }
        }
        if let Some(r) = &meta.management {
            *clusters.entry(r.cluster_id).or_default() += 1;
        }
        if missing.is_empty() {
            recorded.insert(id);
        } else {
            notes.push(format!(
                "ABS {id} of {:?}: segments {missing:?} of {} are on no tape of pool {home_pool} read: recorded as failed",
                meta.object_name, meta.segment_count
            ));
        }
        abs.push(AbsPlan {
            primary_node: meta
                .management
                .as_ref()
                .map_or_else(|| UNKNOWN_NODE.to_string(), |r| r.primary_node.clone()),
            level,
            home_pool,
            metadata_at: home_meta,
            segments,
            missing,
            copies,
            meta,
        });
    }
    let cluster_id = clusters.iter().max_by_key(|(_, n)| **n).map(|(id, _)| *id);
    if clusters.len() > 1 {
        notes.push(format!(
            "the tapes were written by {} clusters ({}); the catalog takes the most frequent, {}",
            clusters.len(),
            clusters.keys().map(Uuid::to_string).collect::<Vec<_>>().join(", "),
            cluster_id.map(|u| u.to_string()).unwrap_or_default()
        ));
    }
    Plan {
        cluster_id,
        pools: pools(tapes, &abs, &mut notes),
        tapes: tape_plans(tapes),
        abs,
        notes,
    }
}

/// Each pool with its kind (see the module docs); primary pools first,
/// then the pools that copy them, then catalog pools.
fn pools(tapes: &[TapeSeen], abs: &[AbsPlan], notes: &mut Vec<String>) -> Vec<PoolPlan> {
    let mut homes: BTreeMap<&str, bool> = BTreeMap::new();
    let mut copies_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in abs {
        let catalog = a.primary_node == STATION_NODE;
        *homes.entry(a.home_pool.as_str()).or_default() |= catalog;
        for c in a.segments.iter().flat_map(|s| &s.copies) {
            copies_of
                .entry(tapes[c.tape].pool.as_str())
                .or_default()
                .insert(a.home_pool.as_str());
        }
    }
    let mut names: BTreeSet<&str> = tapes.iter().map(|t| t.pool.as_str()).collect();
    names.extend(homes.keys());
    let mut out: Vec<PoolPlan> = Vec::new();
    for name in names {
        let (kind, of) = match (homes.get(name), copies_of.get(name)) {
            (Some(true), _) => (PoolKind::Catalog, Vec::new()),
            (Some(false), Some(_)) => {
                notes.push(format!(
                    "pool {name} holds backups and copies of other pools' backups: recorded as a primary pool"
                ));
                (PoolKind::Primary, Vec::new())
            }
            (None, Some(of)) => (PoolKind::Copy, of.iter().map(|s| s.to_string()).collect()),
            _ => (PoolKind::Primary, Vec::new()),
        };
        out.push(PoolPlan {
            name: name.to_string(),
            kind,
            copies_of: of,
        });
    }
    // A copy pool copies primary pools only: drop the others it seemed to.
    let primary: BTreeSet<String> = out
        .iter()
        .filter(|p| p.kind == PoolKind::Primary)
        .map(|p| p.name.clone())
        .collect();
    for p in &mut out {
        p.copies_of.retain(|o| primary.contains(o));
        if p.kind == PoolKind::Copy && p.copies_of.is_empty() {
            p.kind = PoolKind::Primary;
        }
    }
    out.sort_by_key(|p| {
        (
            match p.kind {
                PoolKind::Primary => 0,
                PoolKind::Copy => 1,
                PoolKind::Catalog => 2,
            },
            p.name.clone(),
        )
    });
    out
}

/// The tapes, oldest first, with their state and counters.
fn tape_plans(tapes: &[TapeSeen]) -> Vec<TapePlan> {
    let mut order: Vec<usize> = (0..tapes.len()).collect();
    order.sort_by(|&a, &b| (tapes[a].created_unix, &tapes[a].label).cmp(&(tapes[b].created_unix, &tapes[b].label)));
    order
        .into_iter()
        .map(|i| {
            let t = &tapes[i];
            let state = if t.continues {
                TapeState::Full
            } else if t.files.is_empty() {
                TapeState::Scratch
            } else {
                TapeState::Filling
            };
            TapePlan {
                tape: i,
                state,
                bytes: t.files.iter().map(|e| e.bytes).sum(),
                files: u32::try_from(t.files.len()).unwrap_or(u32::MAX),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
