//! Backup chains (seed FIG. 23–26): which ABS a new differential is
//! relative to, and which ABSs restore an object as it was at a time.
//!
//! A chain is a full (or synthetic full) followed by differentials, each
//! relative to the one before it. A cumulative differential's base is the
//! last full; an incremental's base is the last backup of any level. A
//! synthetic full has the point in time of the chain tip it was merged
//! from and, at equal points in time, is preferred: one ABS to read instead
//! of a chain.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

pub use proto::domain::Level;
use proto::domain::{AbsId, FailureCode};

/// One complete ABS of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMember {
    pub id: AbsId,
    pub level: Level,
    /// The base of a differential.
    pub base: Option<AbsId>,
    pub point_in_time: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("{object} has no complete full backup yet: take a full backup first")]
    NoFull { object: String },
    #[error("{object} has no complete backup at or before {at}")]
    NothingAt { object: String, at: DateTime<Utc> },
    #[error("ABS {abs} is a differential whose base ABS {base} is not a complete backup of the same object")]
    Broken { abs: AbsId, base: AbsId },
    #[error("ABS {abs} is a differential without a base")]
    NoBase { abs: AbsId },
    #[error("ABS {abs} is not a complete backup of the object")]
    NotComplete { abs: AbsId },
    #[error("the chain of ABS {abs} loops")]
    Cycle { abs: AbsId },
}

impl ChainError {
    /// The kind of this failure: no backup to build on or to restore is
    /// `NotFound`, an ABS that is not a complete member `Refused`, a chain
    /// the catalog holds broken `Corrupt`.
    pub fn code(&self) -> FailureCode {
        match self {
            ChainError::NoFull { .. } | ChainError::NothingAt { .. } => FailureCode::NotFound,
            ChainError::NotComplete { .. } => FailureCode::Refused,
            ChainError::Broken { .. } | ChainError::NoBase { .. } | ChainError::Cycle { .. } => FailureCode::Corrupt,
        }
    }
}

/// Order of preference among backups: later point in time first; at
/// equal times a synthetic full, then a full, then the newest ABS.
fn newer(a: &ChainMember, b: &ChainMember) -> bool {
    let rank = |m: &ChainMember| match m.level {
        Level::Synthetic => 2,
        Level::Full => 1,
        _ => 0,
    };
    (a.point_in_time, rank(a), a.id) > (b.point_in_time, rank(b), b.id)
}

fn latest<'a>(members: impl Iterator<Item = &'a ChainMember>) -> Option<&'a ChainMember> {
    members.fold(None, |best: Option<&ChainMember>, m| match best {
        Some(b) if !newer(m, b) => Some(b),
        _ => Some(m),
    })
}

/// The base of a new backup of `level` (None for a full).
pub fn base_for(object: &str, members: &[ChainMember], level: Level) -> Result<Option<AbsId>, ChainError> {
    let pick = match level {
        Level::Full | Level::Synthetic => return Ok(None),
        Level::Cumulative => latest(members.iter().filter(|m| m.level.is_full())),
        Level::Incremental => {
            if !members.iter().any(|m| m.level.is_full()) {
                None
            } else {
                latest(members.iter())
            }
        }
    };
    pick.map(|m| Some(m.id)).ok_or_else(|| ChainError::NoFull {
        object: object.to_string(),
    })
}

/// The ABSs to restore, oldest first, to get the object as it was at `at`
/// (None: the latest backup): the latest backup taken at or before `at`
/// and its bases back to a full.
pub fn chain_at(object: &str, members: &[ChainMember], at: Option<DateTime<Utc>>) -> Result<Vec<AbsId>, ChainError> {
    let tip = latest(members.iter().filter(|m| at.is_none_or(|t| m.point_in_time <= t)));
    let Some(tip) = tip else {
        return Err(match at {
            Some(at) => ChainError::NothingAt {
                object: object.to_string(),
                at,
            },
            None => ChainError::NoFull {
                object: object.to_string(),
            },
        });
    };
    chain_of(members, tip.id)
}

/// The chain ending at ABS `tip`, oldest first: its bases back to a full.
pub fn chain_of(members: &[ChainMember], tip: AbsId) -> Result<Vec<AbsId>, ChainError> {
    let by_id: HashMap<AbsId, &ChainMember> = members.iter().map(|m| (m.id, m)).collect();
    let tip = by_id.get(&tip).copied().ok_or(ChainError::NotComplete { abs: tip })?;
    let mut chain = vec![tip.id];
    let mut cur = tip;
    while !cur.level.is_full() {
        let base = cur.base.ok_or(ChainError::NoBase { abs: cur.id })?;
        let next = by_id
            .get(&base)
            .copied()
            .ok_or(ChainError::Broken { abs: cur.id, base })?;
        if chain.contains(&next.id) || chain.len() > members.len() {
            return Err(ChainError::Cycle { abs: tip.id });
        }
        chain.push(next.id);
        cur = next;
    }
    chain.reverse();
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap()
    }

    fn m(id: u64, level: Level, base: Option<u64>, at: i64) -> ChainMember {
        ChainMember {
            id: AbsId::new(id),
            level,
            base: base.map(AbsId::new),
            point_in_time: t(at),
        }
    }

    fn a(id: u64) -> AbsId {
        AbsId::new(id)
    }

    fn ids(v: &[u64]) -> Vec<AbsId> {
        v.iter().copied().map(AbsId::new).collect()
    }

    #[test]
    fn bases_follow_the_levels() {
        let mut ms = vec![m(1, Level::Full, None, 0)];
        assert_eq!(base_for("o", &ms, Level::Incremental), Ok(Some(a(1))));
        assert_eq!(base_for("o", &ms, Level::Cumulative), Ok(Some(a(1))));
        ms.push(m(2, Level::Incremental, Some(1), 10));
        ms.push(m(3, Level::Cumulative, Some(1), 20));
        ms.push(m(4, Level::Incremental, Some(3), 30));
        assert_eq!(base_for("o", &ms, Level::Incremental), Ok(Some(a(4))));
        assert_eq!(base_for("o", &ms, Level::Cumulative), Ok(Some(a(1))));
        assert_eq!(base_for("o", &ms, Level::Full), Ok(None));
        ms.push(m(5, Level::Full, None, 40));
        assert_eq!(base_for("o", &ms, Level::Cumulative), Ok(Some(a(5))));
    }

    #[test]
    fn a_differential_needs_a_full() {
        assert_eq!(
            base_for("/db", &[], Level::Incremental),
            Err(ChainError::NoFull { object: "/db".into() })
        );
        let e = base_for("/db", &[], Level::Cumulative).unwrap_err();
        assert_eq!(e.code(), FailureCode::NotFound);
        let e = e.to_string();
        assert!(e.contains("take a full backup first"), "{e}");
    }

    #[test]
    fn restore_points_pick_their_chain() {
        let ms = vec![
            m(1, Level::Full, None, 0),
            m(2, Level::Incremental, Some(1), 10),
            m(3, Level::Incremental, Some(2), 20),
            m(4, Level::Cumulative, Some(1), 30),
            m(5, Level::Incremental, Some(4), 40),
        ];
        assert_eq!(chain_at("o", &ms, Some(t(0))), Ok(ids(&[1])));
        assert_eq!(chain_at("o", &ms, Some(t(15))), Ok(ids(&[1, 2])));
        assert_eq!(chain_at("o", &ms, Some(t(20))), Ok(ids(&[1, 2, 3])));
        assert_eq!(chain_at("o", &ms, Some(t(35))), Ok(ids(&[1, 4])));
        assert_eq!(chain_at("o", &ms, None), Ok(ids(&[1, 4, 5])));
        assert_eq!(chain_of(&ms, a(3)), Ok(ids(&[1, 2, 3])));
        assert_eq!(chain_of(&ms, a(9)), Err(ChainError::NotComplete { abs: a(9) }));
        assert!(matches!(
            chain_at("o", &ms, Some(t(-1))),
            Err(ChainError::NothingAt { .. })
        ));
    }

    #[test]
    fn a_synthetic_full_replaces_its_chain() {
        let mut ms = vec![
            m(1, Level::Full, None, 0),
            m(2, Level::Incremental, Some(1), 10),
            m(3, Level::Incremental, Some(2), 20),
            m(4, Level::Synthetic, None, 20),
        ];
        assert_eq!(chain_at("o", &ms, None), Ok(ids(&[4])));
        assert_eq!(chain_at("o", &ms, Some(t(19))), Ok(ids(&[1, 2])));
        assert_eq!(base_for("o", &ms, Level::Incremental), Ok(Some(a(4))));
        assert_eq!(base_for("o", &ms, Level::Cumulative), Ok(Some(a(4))));
        ms.push(m(5, Level::Incremental, Some(4), 30));
        assert_eq!(chain_at("o", &ms, None), Ok(ids(&[4, 5])));
    }

    #[test]
    fn broken_chains_are_reported() {
        let ms = vec![m(2, Level::Incremental, Some(1), 10)];
        assert_eq!(
            chain_at("o", &ms, None),
            Err(ChainError::Broken { abs: a(2), base: a(1) })
        );
        let ms = vec![
            m(2, Level::Incremental, Some(3), 10),
            m(3, Level::Incremental, Some(2), 5),
        ];
        assert_eq!(chain_at("o", &ms, None), Err(ChainError::Cycle { abs: a(2) }));
        let ms = vec![m(2, Level::Cumulative, None, 10)];
        assert_eq!(chain_at("o", &ms, None), Err(ChainError::NoBase { abs: a(2) }));
    }
}
