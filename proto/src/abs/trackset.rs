//! Track sets: the tracks an ABS copies, as runs.

use rkyv::{Archive, Deserialize, Serialize};

/// Address of one track: volume index (into the map's volumes) and track number.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackAddr {
    /// Index into [`AbsMap::volumes`](super::AbsMap::volumes).
    pub volume: u16,
    /// Track number on that volume (byte offset / track size).
    pub track: u64,
}

/// `count` consecutive tracks starting at `first` on one volume.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRun {
    /// Index into [`AbsMap::volumes`](super::AbsMap::volumes).
    pub volume: u16,
    /// First track of the run.
    pub first: u64,
    /// Number of tracks in the run.
    pub count: u64,
}

impl TrackRun {
    /// One past the last track of the run (saturating).
    fn end(&self) -> u64 {
        self.first.saturating_add(self.count)
    }
}

/// A set of tracks as sorted, non-overlapping, coalesced runs.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackSet {
    runs: Vec<TrackRun>,
}

impl TrackSet {
    /// Build from any runs (any order, overlaps allowed); normalises: runs
    /// are sorted by (volume, first), overlapping or adjacent runs of a
    /// volume are merged and empty runs dropped. A run reaching past
    /// `u64::MAX` is clipped there.
    pub fn from_runs(runs: impl IntoIterator<Item = TrackRun>) -> TrackSet {
        let mut input: Vec<TrackRun> = runs
            .into_iter()
            .map(|r| TrackRun {
                count: r.end() - r.first,
                ..r
            })
            .filter(|r| r.count > 0)
            .collect();
        input.sort_unstable_by_key(|r| (r.volume, r.first));
        let mut out: Vec<TrackRun> = Vec::with_capacity(input.len());
        for r in input {
            match out.last_mut() {
                Some(last) if last.volume == r.volume && r.first <= last.end() => {
                    let end = last.end().max(r.end());
                    last.count = end - last.first;
                }
                _ => out.push(r),
            }
        }
        out.shrink_to_fit();
        TrackSet { runs: out }
    }
    /// The normalised runs, sorted by (volume, first).
    pub fn runs(&self) -> &[TrackRun] {
        &self.runs
    }
    /// Number of tracks (saturating).
    pub fn len(&self) -> u64 {
        self.runs.iter().fold(0u64, |n, r| n.saturating_add(r.count))
    }
    /// Whether the set holds no track.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
    /// Whether `track` is in the set (binary search, O(log runs)).
    pub fn contains(&self, track: TrackAddr) -> bool {
        let key = (track.volume, track.track);
        let i = self.runs.partition_point(|r| (r.volume, r.first) <= key);
        i > 0 && {
            let r = &self.runs[i - 1];
            r.volume == track.volume && track.track - r.first < r.count
        }
    }
    /// Every track, in (volume, track) order.
    pub fn iter(&self) -> impl Iterator<Item = TrackAddr> + '_ {
        self.runs.iter().flat_map(|r| {
            (r.first..r.end()).map(move |t| TrackAddr {
                volume: r.volume,
                track: t,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(volume: u16, first: u64, count: u64) -> TrackRun {
        TrackRun { volume, first, count }
    }

    #[test]
    fn from_runs_normalises() {
        let s = TrackSet::from_runs([
            run(1, 10, 2),
            run(0, 5, 0),
            run(0, 3, 2),
            run(0, 0, 2),
            run(0, 2, 1), // adjacent to 0..2 and 3..5 → 0..5
            run(1, 11, 5),
            run(1, 20, 1),
            run(0, 4, 1), // inside
        ]);
        assert_eq!(s.runs(), &[run(0, 0, 5), run(1, 10, 6), run(1, 20, 1)]);
        assert_eq!(s.len(), 12);
        assert!(!s.is_empty());
        let all: Vec<_> = s.iter().map(|t| (t.volume, t.track)).collect();
        assert_eq!(all.len(), 12);
        assert_eq!(all[0], (0, 0));
        assert_eq!(all[11], (1, 20));
    }

    #[test]
    fn from_runs_empty_and_zero_counts() {
        let s = TrackSet::from_runs([run(0, 1, 0), run(3, 9, 0)]);
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
        assert!(!s.contains(TrackAddr { volume: 0, track: 1 }));
        assert_eq!(TrackSet::from_runs([]), TrackSet::default());
    }

    #[test]
    fn volumes_are_not_merged_across() {
        let s = TrackSet::from_runs([run(0, 0, 5), run(1, 5, 5)]);
        assert_eq!(s.runs().len(), 2);
    }

    #[test]
    fn huge_runs_are_clipped() {
        let s = TrackSet::from_runs([run(0, u64::MAX - 2, 10), run(0, u64::MAX - 5, 3)]);
        assert_eq!(s.runs(), &[run(0, u64::MAX - 5, 5)]);
        assert!(s.contains(TrackAddr {
            volume: 0,
            track: u64::MAX - 1
        }));
        assert!(!s.contains(TrackAddr {
            volume: 0,
            track: u64::MAX
        }));
        assert_eq!(s.iter().count(), 5);
    }

    #[test]
    fn contains_matches_brute_force() {
        let s = TrackSet::from_runs([run(0, 2, 3), run(0, 9, 1), run(2, 0, 4), run(5, 100, 1)]);
        for v in 0..7u16 {
            for t in 0..120u64 {
                let want = s
                    .runs()
                    .iter()
                    .any(|r| r.volume == v && t >= r.first && t < r.first + r.count);
                assert_eq!(s.contains(TrackAddr { volume: v, track: t }), want, "{v}/{t}");
            }
        }
    }
}
