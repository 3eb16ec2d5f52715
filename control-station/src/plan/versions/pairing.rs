//! Choosing target volumes (seed 004 FIG. 4, 5) and a version's copy
//! record from its pre-copy record (FIG. 7, 8).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proto::abs::Geometry;
use proto::domain::VolumeKey;

/// What the station knows of a volume: what its node reports, and whether
/// the node is online to take part in a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFacts {
    pub key: VolumeKey,
    pub size: u64,
    pub geometry: Geometry,
    pub online: bool,
    /// A target volume: served with a management region (only those take
    /// a version).
    pub target: bool,
}

/// A source volume and the target volume it is copied to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pair {
    pub source: VolumeKey,
    pub target: VolumeKey,
}

/// Why a target volume cannot take a source volume (FIG. 5 steps 506–512).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// Another pair holds it (506).
    Reserved { by: VolumeKey },
    /// Smaller than the source (510).
    TooSmall { size: u64, needed: u64 },
    /// Another block or track size (510).
    Geometry { found: Geometry, needed: Geometry },
    /// Its node, or the source's, is not online to do the copy (512).
    Offline { node: String },
    /// It is the source itself.
    Itself,
    /// It left the target pool.
    NotInPool,
    /// Not a target volume (FIG. 5 step 508: no management region).
    NotTarget,
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::Reserved { by } => write!(f, "reserved by the pair of {by}"),
            Ineligible::TooSmall { size, needed } => {
                write!(f, "{size} bytes, smaller than the source's {needed}")
            }
            Ineligible::Geometry { found, needed } => write!(
                f,
                "block/track size {}/{}, the source's is {}/{}",
                found.block_size, found.track_size, needed.block_size, needed.track_size
            ),
            Ineligible::Offline { node } => write!(f, "node {node} is not online"),
            Ineligible::Itself => write!(f, "it is the source volume"),
            Ineligible::NotInPool => write!(f, "it is no longer in the target pool"),
            Ineligible::NotTarget => write!(
                f,
                "not a target volume (no management region: its node serves it with --target-volume)"
            ),
        }
    }
}

/// No volume of a target pool can take a source volume (FIG. 5 step 518).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTarget {
    pub source: VolumeKey,
    pub pool: String,
    /// Every volume of the pool and why it cannot.
    pub rejected: Vec<(VolumeKey, Ineligible)>,
}

impl fmt::Display for NoTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no eligible target in pool {} for source {}", self.pool, self.source)?;
        if self.rejected.is_empty() {
            return write!(f, ": the pool has no volumes");
        }
        let why: Vec<String> = self.rejected.iter().map(|(k, w)| format!("{k}: {w}")).collect();
        write!(f, " ({})", why.join("; "))
    }
}

impl std::error::Error for NoTarget {}

/// Whether `target` can take `source` (FIG. 5 steps 506–512); `reserved_by`
/// is the source of the pair that holds `target`, if any.
pub fn eligibility(
    source: &VolumeFacts,
    target: &VolumeFacts,
    reserved_by: Option<&VolumeKey>,
) -> Result<(), Ineligible> {
    if target.key == source.key {
        return Err(Ineligible::Itself);
    }
    if !target.target {
        return Err(Ineligible::NotTarget);
    }
    if let Some(by) = reserved_by.filter(|by| **by != source.key) {
        return Err(Ineligible::Reserved { by: by.clone() });
    }
    if target.geometry != source.geometry {
        return Err(Ineligible::Geometry {
            found: target.geometry,
            needed: source.geometry,
        });
    }
    if target.size < source.size {
        return Err(Ineligible::TooSmall {
            size: target.size,
            needed: source.size,
        });
    }
    for v in [source, target] {
        if !v.online {
            return Err(Ineligible::Offline {
                node: v.key.node.clone(),
            });
        }
    }
    Ok(())
}

/// The first volume of target pool `pool` (its volumes `targets`, in pool
/// order) that can take `source`; `reserved` maps each target held by a
/// pair to that pair's source (FIG. 4 steps 408–414, FIG. 5).
pub fn select_target(
    source: &VolumeFacts,
    pool: &str,
    targets: &[VolumeFacts],
    reserved: &BTreeMap<VolumeKey, VolumeKey>,
) -> Result<VolumeKey, NoTarget> {
    let mut rejected = Vec::new();
    for t in targets {
        match eligibility(source, t, reserved.get(&t.key)) {
            Ok(()) => return Ok(t.key.clone()),
            Err(why) => rejected.push((t.key.clone(), why)),
        }
    }
    Err(NoTarget {
        source: source.key.clone(),
        pool: pool.to_string(),
        rejected,
    })
}

/// A version's copy record, worked out (FIG. 7, 8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyPlan {
    /// One pair per source volume, in source pool order.
    pub pairs: Vec<Pair>,
    /// Sources of the pre-copy record kept with their target.
    pub kept: Vec<VolumeKey>,
    /// Sources given a new pair: added since the pre-copy record, or
    /// whose target there is no longer eligible (with the reason).
    pub paired: Vec<(VolumeKey, Option<Ineligible>)>,
    /// Pairs of the pre-copy record whose source left the source pool:
    /// broken, their targets freed (FIG. 6 step 614).
    pub broken: Vec<Pair>,
}

/// The copy record of a version: `sources` (the source pool now, in
/// order) paired onto target pool `pool` (`targets`, in order), starting
/// from the pre-copy record `pre_copy` (None: every pair is new, FIG. 7
/// step 712). `reserved` maps targets held by other records (other
/// versions, other sets) to their sources; the pre-copy record's own pairs
/// are not in it. Refused with the first source that has no eligible
/// target: nothing is copied then.
pub fn copy_record(
    sources: &[VolumeFacts],
    pre_copy: Option<&[Pair]>,
    pool: &str,
    targets: &[VolumeFacts],
    reserved: &BTreeMap<VolumeKey, VolumeKey>,
) -> Result<CopyPlan, NoTarget> {
    let now: BTreeSet<&VolumeKey> = sources.iter().map(|s| &s.key).collect();
    let mut plan = CopyPlan::default();
    let mut held = reserved.clone();
    let mut before: BTreeMap<&VolumeKey, &VolumeKey> = BTreeMap::new();
    for p in pre_copy.unwrap_or_default() {
        if now.contains(&p.source) {
            before.insert(&p.source, &p.target);
        } else {
            plan.broken.push(p.clone());
        }
    }
    // The kept pairs hold their targets first, so a new pair never takes one.
    for s in sources {
        if let Some(t) = before.get(&s.key) {
            held.entry((*t).clone()).or_insert_with(|| s.key.clone());
        }
    }
    for s in sources {
        let old = before.get(&s.key).map(|t| {
            let facts = targets.iter().find(|v| v.key == **t);
            match facts {
                Some(f) => eligibility(s, f, held.get(&f.key)).map(|()| (*t).clone()),
                None => Err(Ineligible::NotInPool),
            }
        });
        match old {
            Some(Ok(t)) => {
                plan.kept.push(s.key.clone());
                plan.pairs.push(Pair {
                    source: s.key.clone(),
                    target: t,
                });
            }
            other => {
                let why = other.and_then(Result::err);
                if why.is_some() {
                    // Its old target is not its any more.
                    if let Some(t) = before.get(&s.key) {
                        if held.get(*t) == Some(&s.key) {
                            held.remove(*t);
                        }
                    }
                }
                let t = select_target(s, pool, targets, &held)?;
                held.insert(t.clone(), s.key.clone());
                plan.paired.push((s.key.clone(), why));
                plan.pairs.push(Pair {
                    source: s.key.clone(),
                    target: t,
                });
            }
        }
    }
    Ok(plan)
}
