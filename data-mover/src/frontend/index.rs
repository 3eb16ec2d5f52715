//! Which tracks of a track set have arrived: one bit per track, found by
//! binary search over the set's runs (memory: one bit per track, none per block).

use proto::abs::{TrackAddr, TrackSet};
use proto::num::to_usize;

pub struct TrackIndex {
    /// (volume, first, count, ordinal of first)
    runs: Vec<(u16, u64, u64, u64)>,
    seen: Vec<u64>,
    count: u64,
}

impl TrackIndex {
    pub fn new(set: &TrackSet) -> TrackIndex {
        let mut ord = 0;
        let runs = set
            .runs()
            .iter()
            .map(|r| {
                let e = (r.volume, r.first, r.count, ord);
                ord += r.count;
                e
            })
            .collect();
        TrackIndex {
            runs,
            seen: vec![0; to_usize(ord.div_ceil(64))],
            count: ord,
        }
    }

    fn ordinal(&self, t: TrackAddr) -> Option<u64> {
        let i = self
            .runs
            .partition_point(|&(v, first, _, _)| (v, first) <= (t.volume, t.track));
        let &(v, first, count, ord) = self.runs.get(i.checked_sub(1)?)?;
        (v == t.volume && t.track < first + count).then(|| ord + (t.track - first))
    }

    /// Mark a track as arrived. Err if not in the set; Ok(false) if already seen.
    pub fn mark(&mut self, t: TrackAddr) -> Result<bool, String> {
        let o = self
            .ordinal(t)
            .ok_or_else(|| format!("track {t:?} is not in the ABS's track set"))?;
        let (w, b) = ((o / 64) as usize, o % 64);
        let word = self.seen.get_mut(w).ok_or("index")?;
        let fresh = *word & (1 << b) == 0;
        *word |= 1 << b;
        Ok(fresh)
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::abs::TrackRun;

    #[test]
    fn marks_only_members_once() {
        let set = TrackSet::from_runs([
            TrackRun {
                volume: 0,
                first: 10,
                count: 5,
            },
            TrackRun {
                volume: 1,
                first: 0,
                count: 70,
            },
        ]);
        let mut idx = TrackIndex::new(&set);
        assert_eq!(idx.len(), 75);
        assert_eq!(idx.mark(TrackAddr { volume: 0, track: 12 }), Ok(true));
        assert_eq!(idx.mark(TrackAddr { volume: 0, track: 12 }), Ok(false));
        assert!(idx.mark(TrackAddr { volume: 0, track: 15 }).is_err());
        assert!(idx.mark(TrackAddr { volume: 0, track: 9 }).is_err());
        assert!(idx.mark(TrackAddr { volume: 2, track: 0 }).is_err());
        assert_eq!(idx.mark(TrackAddr { volume: 1, track: 69 }), Ok(true));
    }
}
