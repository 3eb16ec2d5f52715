use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proto::abs::Geometry;
use proto::domain::VolumeKey;

use super::*;

const G: Geometry = Geometry {
    block_size: 4096,
    track_size: 65536,
};

fn vol(node: &str, name: &str, size: u64) -> VolumeFacts {
    VolumeFacts {
        key: VolumeKey::new(node, name),
        size,
        geometry: G,
        online: true,
        target: true,
    }
}

fn pair(s: &VolumeFacts, t: &VolumeFacts) -> Pair {
    Pair {
        source: s.key.clone(),
        target: t.key.clone(),
    }
}

#[test]
fn a_target_must_be_free_large_enough_of_the_same_geometry_and_online() {
    let src = vol("pn1", "a", 100);
    let ok = vol("pn2", "t", 100);
    assert_eq!(eligibility(&src, &ok, None), Ok(()));
    assert_eq!(eligibility(&src, &ok, Some(&src.key)), Ok(()), "held by its own pair");
    let other = VolumeKey::new("pn1", "b");
    assert_eq!(
        eligibility(&src, &ok, Some(&other)),
        Err(Ineligible::Reserved { by: other.clone() })
    );
    assert!(matches!(
        eligibility(&src, &vol("pn2", "t", 99), None),
        Err(Ineligible::TooSmall { size: 99, needed: 100 })
    ));
    let mut odd = vol("pn2", "t", 200);
    odd.geometry.track_size = 32768;
    assert!(matches!(
        eligibility(&src, &odd, None),
        Err(Ineligible::Geometry { .. })
    ));
    let mut down = vol("pn3", "t", 200);
    down.online = false;
    assert_eq!(
        eligibility(&src, &down, None),
        Err(Ineligible::Offline { node: "pn3".into() })
    );
    assert_eq!(eligibility(&src, &src, None), Err(Ineligible::Itself));
    let mut data = vol("pn2", "d", 200);
    data.target = false;
    assert_eq!(eligibility(&src, &data, None), Err(Ineligible::NotTarget));
}

#[test]
fn the_first_eligible_target_is_chosen_and_a_refusal_says_why_for_each() {
    let src = vol("pn1", "a", 100);
    let small = vol("pn2", "s", 50);
    let taken = vol("pn2", "t", 100);
    let free = vol("pn2", "u", 100);
    let mut reserved = BTreeMap::new();
    reserved.insert(taken.key.clone(), VolumeKey::new("pn1", "b"));
    let targets = [small.clone(), taken.clone(), free.clone()];
    assert_eq!(select_target(&src, "T1", &targets, &reserved), Ok(free.key.clone()));
    let e = select_target(&src, "T1", &targets[..2], &reserved).unwrap_err();
    assert_eq!(e.rejected.len(), 2);
    let text = e.to_string();
    assert!(
        text.starts_with("no eligible target in pool T1 for source pn1:a"),
        "{text}"
    );
    assert!(
        text.contains("pn2:s: 50 bytes, smaller than the source's 100"),
        "{text}"
    );
    assert!(text.contains("pn2:t: reserved by the pair of pn1:b"), "{text}");
    let e = select_target(&src, "T9", &[], &reserved).unwrap_err();
    assert!(e.to_string().ends_with("the pool has no volumes"), "{e}");
}

#[test]
fn a_copy_record_keeps_pairs_breaks_those_of_removed_sources_and_pairs_added_ones() {
    // Seed FIG. 8: sources A B C before; B removed, D added since.
    let (a, b, c, d) = (
        vol("pn1", "A", 10),
        vol("pn1", "B", 10),
        vol("pn2", "C", 10),
        vol("pn2", "D", 10),
    );
    let (ta, tb, tc, td) = (
        vol("pn3", "a", 10),
        vol("pn3", "b", 10),
        vol("pn3", "c", 10),
        vol("pn3", "d", 10),
    );
    let before = vec![pair(&a, &ta), pair(&b, &tb), pair(&c, &tc)];
    let targets = [ta.clone(), tb.clone(), tc.clone(), td.clone()];
    let now = [a.clone(), c.clone(), d.clone()];
    let plan = copy_record(&now, Some(&before), "T1", &targets, &BTreeMap::new()).unwrap();
    assert_eq!(plan.kept, [a.key.clone(), c.key.clone()]);
    assert_eq!(plan.broken, [pair(&b, &tb)]);
    // D takes B's freed target, the first free one in pool order.
    assert_eq!(plan.paired, [(d.key.clone(), None)]);
    assert_eq!(plan.pairs, [pair(&a, &ta), pair(&c, &tc), pair(&d, &tb)]);

    // A kept pair whose target shrank is made again, saying why.
    let mut shrunk = targets.clone();
    shrunk[0].size = 5;
    let plan = copy_record(&now, Some(&before), "T1", &shrunk, &BTreeMap::new()).unwrap();
    assert!(matches!(plan.paired[0], (ref k, Some(Ineligible::TooSmall { .. })) if *k == a.key));
    assert_eq!(plan.pairs[0], pair(&a, &tb));
    // A target that left the pool too.
    let plan = copy_record(&now, Some(&before), "T1", &targets[1..], &BTreeMap::new()).unwrap();
    assert_eq!(plan.paired[0], (a.key.clone(), Some(Ineligible::NotInPool)));

    // Not enough targets: refused, naming the source.
    let e = copy_record(&now, None, "T1", &targets[..2], &BTreeMap::new()).unwrap_err();
    assert_eq!(e.source, d.key);
}

#[test]
fn versions_rotate_through_the_target_pools() {
    assert_eq!(check_shape(2, 2), Ok(()));
    assert!(check_shape(2, 3).is_err());
    assert!(check_shape(0, 1).is_err());
    assert!(check_shape(3, 0).is_err());
    let pools: Vec<usize> = (1..=5).map(|v| target_pool_of(v, 2).unwrap()).collect();
    assert_eq!(pools, [0, 1, 0, 1, 0]);
    assert_eq!(target_pool_of(0, 2), Err(RotationError::Zero));
    // V3 into pool 0 retires V1; with three pools and keep 2, V3 retires V1
    // (too old) and leaves V2.
    assert_eq!(retire_after(&[1, 2, 3], 3, 2, 2), [1]);
    assert_eq!(retire_after(&[1, 2, 3], 3, 2, 3), [1]);
    assert_eq!(retire_after(&[2, 3, 4], 4, 1, 3), [2, 3]);
}

fn facts() -> impl Strategy<Value = (u64, bool, bool)> {
    // size, odd geometry, offline
    (1u64..6, prop::bool::weighted(0.1), prop::bool::weighted(0.1))
}

fn make(node: &str, i: usize, f: (u64, bool, bool)) -> VolumeFacts {
    let mut v = vol(node, &format!("v{i}"), f.0);
    if f.1 {
        v.geometry.track_size = 8192;
    }
    v.online = !f.2;
    // Now and then a data volume (no management region).
    v.target = !(f.0 == 1 && f.1);
    v
}

proptest! {
    /// Whatever the pools and the pre-copy record: a copy record pairs
    /// every source once, onto distinct eligible targets not held by other
    /// records; keeps every old pair it can; breaks exactly the pairs of
    /// removed sources. A refusal names a source none of whose targets is
    /// eligible.
    #[test]
    fn copy_records_pair_every_source_once_onto_eligible_free_targets(
        srcs in prop::collection::vec(facts(), 0..6),
        tgts in prop::collection::vec(facts(), 0..9),
        removed in prop::collection::vec(any::<bool>(), 6),
        old in prop::collection::vec(prop::option::of(0usize..9), 6),
        others in prop::collection::vec(any::<bool>(), 9),
    ) {
        let sources: Vec<VolumeFacts> = srcs.iter().enumerate().map(|(i, f)| make("pn1", i, *f)).collect();
        let targets: Vec<VolumeFacts> = tgts.iter().enumerate().map(|(i, f)| make("pn2", i, *f)).collect();
        // The pre-copy record: some sources (some since removed) with old targets.
        let mut pre = Vec::new();
        let mut used = BTreeSet::new();
        for (i, o) in old.iter().enumerate() {
            if let Some(t) = o {
                if used.insert(*t) {
                    pre.push(Pair { source: VolumeKey::new("pn1", &format!("v{i}")), target: VolumeKey::new("pn2", &format!("v{t}")) });
                }
            }
        }
        let now: Vec<VolumeFacts> = sources.iter().enumerate().filter(|(i, _)| !removed[*i]).map(|(_, s)| s.clone()).collect();
        // Targets held by other records (not the pre-copy record's).
        let mut reserved = BTreeMap::new();
        for (i, t) in targets.iter().enumerate() {
            if others[i] && !pre.iter().any(|p| p.target == t.key) {
                reserved.insert(t.key.clone(), VolumeKey::new("pn9", "other"));
            }
        }
        match copy_record(&now, Some(&pre), "T", &targets, &reserved) {
            Ok(plan) => {
                let srcs_paired: Vec<&VolumeKey> = plan.pairs.iter().map(|p| &p.source).collect();
                let want: Vec<&VolumeKey> = now.iter().map(|s| &s.key).collect();
                prop_assert_eq!(srcs_paired, want);
                let distinct: BTreeSet<&VolumeKey> = plan.pairs.iter().map(|p| &p.target).collect();
                prop_assert_eq!(distinct.len(), plan.pairs.len());
                for p in &plan.pairs {
                    let s = now.iter().find(|s| s.key == p.source).unwrap();
                    let t = targets.iter().find(|t| t.key == p.target).unwrap();
                    prop_assert_eq!(eligibility(s, t, None), Ok(()));
                    prop_assert!(!reserved.contains_key(&p.target));
                }
                for p in &pre {
                    let gone = !now.iter().any(|s| s.key == p.source);
                    prop_assert_eq!(plan.broken.contains(p), gone);
                    let t = targets.iter().find(|t| t.key == p.target);
                    let s = now.iter().find(|s| s.key == p.source);
                    if let (Some(s), Some(t)) = (s, t) {
                        if eligibility(s, t, reserved.get(&t.key)).is_ok() {
                            prop_assert!(plan.pairs.contains(p), "an eligible old pair is kept");
                        }
                    }
                }
            }
            Err(e) => {
                let s = now.iter().find(|s| s.key == e.source);
                prop_assert!(s.is_some());
                prop_assert_eq!(e.rejected.len(), targets.len());
            }
        }
    }

    /// Versions made one after another: the newest `keep` stay, each in
    /// its own target pool, the rest are retired.
    #[test]
    fn rotation_keeps_the_newest_versions_in_distinct_pools(targets in 1usize..5, keep in 1u32..5, n in 1u64..20) {
        prop_assume!(check_shape(targets, keep).is_ok());
        let mut live: Vec<u64> = Vec::new();
        for v in 1..=n {
            live.push(v);
            let gone = retire_after(&live, v, keep, targets);
            live.retain(|x| !gone.contains(x));
            let want: Vec<u64> = (v.saturating_sub(u64::from(keep)) + 1..=v).collect();
            prop_assert_eq!(&live, &want);
            let pools: BTreeSet<usize> = live.iter().map(|x| target_pool_of(*x, targets).unwrap()).collect();
            prop_assert_eq!(pools.len(), live.len());
        }
    }
}
