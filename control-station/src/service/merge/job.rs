//! The plan of a synthetic full: which chain to merge, read in which order.
//! Pure: a function of the object's chain members the shell fetched.

use proto::domain::{AbsId, Failure};

use crate::plan::{chain_at, chain_of, ChainError, ChainMember};

/// A planned merge of a chain into a synthetic full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergeJob {
    /// The chain's newest ABS: the synthetic full has its point in time.
    pub tip: AbsId,
    /// The chain, full first.
    pub chain: Vec<AbsId>,
}

fn chain_failure(e: ChainError) -> Failure {
    Failure::new(e.code(), e.to_string())
}

impl MergeJob {
    /// Merge the chain of `abs_id` (None: the object's latest backup).
    pub(crate) fn plan(object_name: &str, members: &[ChainMember], abs_id: Option<AbsId>) -> Result<MergeJob, Failure> {
        let tip = match abs_id {
            None => *chain_at(object_name, members, None)
                .map_err(chain_failure)?
                .last()
                .ok_or_else(|| Failure::not_found(format!("{object_name} has no backup")))?,
            Some(id) => id,
        };
        let chain = chain_of(members, tip).map_err(chain_failure)?;
        if chain.len() < 2 {
            return Err(Failure::refused(format!(
                "ABS {tip} is a full backup already: there is no chain to merge"
            )));
        }
        Ok(MergeJob { tip, chain })
    }

    /// The order the chain is read in: newest first, so the first version
    /// of a track the front-end gets is the latest.
    pub(crate) fn read_order(&self) -> impl Iterator<Item = AbsId> + '_ {
        self.chain.iter().rev().copied()
    }

    /// What the merge does, for the client.
    pub(crate) fn detail(&self, new_abs: AbsId) -> String {
        let ids: Vec<String> = self.chain.iter().map(|i| format!("ABS {i}")).collect();
        format!("merging {} into synthetic full ABS {new_abs}", ids.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use proto::domain::{FailureCode, Level};

    use super::*;

    fn member(id: u64, level: Level, base: Option<u64>, t: i64) -> ChainMember {
        ChainMember {
            id: AbsId::new(id),
            level,
            base: base.map(AbsId::new),
            point_in_time: DateTime::<Utc>::from_timestamp(t, 0).unwrap(),
        }
    }

    fn chain() -> Vec<ChainMember> {
        vec![
            member(1, Level::Full, None, 10),
            member(2, Level::Incremental, Some(1), 20),
            member(3, Level::Incremental, Some(2), 30),
        ]
    }

    #[test]
    fn the_latest_chain_read_newest_first() {
        let job = MergeJob::plan("db", &chain(), None).unwrap();
        assert_eq!(job.tip, AbsId::new(3));
        assert_eq!(job.chain, [1, 2, 3].map(AbsId::new));
        let order: Vec<AbsId> = job.read_order().collect();
        assert_eq!(order, [3, 2, 1].map(AbsId::new));
        assert_eq!(
            job.detail(AbsId::new(4)),
            "merging ABS 1, ABS 2, ABS 3 into synthetic full ABS 4"
        );
        let mid = MergeJob::plan("db", &chain(), Some(AbsId::new(2))).unwrap();
        assert_eq!(mid.chain, [1, 2].map(AbsId::new));
    }

    #[test]
    fn a_full_or_nothing_cannot_be_merged() {
        let err = MergeJob::plan("db", &chain(), Some(AbsId::new(1))).unwrap_err();
        assert_eq!(err.code, FailureCode::Refused);
        assert_eq!(
            err.message,
            "ABS 1 is a full backup already: there is no chain to merge"
        );
        let err = MergeJob::plan("db", &[], None).unwrap_err();
        assert_eq!(err.code, FailureCode::NotFound);
        let err = MergeJob::plan("db", &chain(), Some(AbsId::new(9))).unwrap_err();
        assert_eq!(err.code, FailureCode::Refused);
    }
}
