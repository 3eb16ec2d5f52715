//! Property tests of the abstract-block-set core through its public API:
//! a simulated backup (whole tracks, any order) and restore (original
//! addresses, other volumes, a plain file), memory proportional to extents,
//! and validation of corrupted maps and remap tables.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

use std::collections::BTreeSet;

use proptest::prelude::*;
use proto::abs::{
    AbsError, AbsMap, DestTarget, Geometry, LogicalRange, MapExtent, ObjectExtent, Placer, RemapExtent, RemapTable,
    TrackAddr, TrackRun, TrackSet, VolumeRef,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Shape of a random volume.
#[derive(Debug, Clone)]
struct VolSpec {
    /// Block size = 1 << block_shift (512..4096).
    block_shift: u32,
    /// Track size = block size × track_mult (1..16).
    track_mult: u32,
    /// Whole tracks.
    full_tracks: u64,
    /// Blocks of a short last track (< track_mult, so possibly 0).
    tail_blocks: u32,
    /// Bytes of a trailing partial block.
    tail_bytes: u32,
}

fn vol_spec() -> impl Strategy<Value = VolSpec> {
    (
        9u32..=12,
        1u32..=16,
        1u64..=12,
        0u32..16,
        prop_oneof![Just(0u32), 0u32..512],
    )
        .prop_map(|(block_shift, track_mult, full_tracks, tail, tail_bytes)| VolSpec {
            block_shift,
            track_mult,
            full_tracks,
            tail_blocks: tail % track_mult,
            tail_bytes,
        })
}

fn make_volume(name: &str, s: &VolSpec) -> VolumeRef {
    let block = 1u32 << s.block_shift;
    let track = block * s.track_mult;
    let size = s.full_tracks * u64::from(track) + u64::from(s.tail_blocks) * u64::from(block) + u64::from(s.tail_bytes);
    VolumeRef {
        name: name.into(),
        geometry: Geometry {
            block_size: block,
            track_size: track,
        },
        size,
    }
}

/// Random non-overlapping block-aligned extents on `volumes`, with gaps
/// (bytes of other objects on the same tracks) and physically adjacent
/// pieces, in random logical order (or, sometimes, physical order so that
/// adjacent pieces coalesce). At least one extent.
fn scatter(rng: &mut StdRng, volumes: &[VolumeRef], max_gap: u64, max_len: u64) -> Vec<ObjectExtent> {
    let mut out = Vec::new();
    for v in volumes {
        let block = u64::from(v.geometry.block_size);
        let blocks = v.size / block;
        let mut pos = 0u64;
        loop {
            let gap = rng.random_range(0..=max_gap);
            let len = rng.random_range(1..=max_len).min(blocks.saturating_sub(pos + gap));
            if len == 0 {
                break;
            }
            // Some pieces are left to "other objects".
            if rng.random_bool(0.75) {
                out.push(ObjectExtent {
                    volume: v.name.clone(),
                    offset: (pos + gap) * block,
                    length: len * block,
                });
            }
            pos += gap + len;
        }
    }
    if out.is_empty() {
        let v = &volumes[0];
        out.push(ObjectExtent {
            volume: v.name.clone(),
            offset: 0,
            length: u64::from(v.geometry.block_size),
        });
    }
    if rng.random_bool(0.8) {
        out.shuffle(rng);
    }
    out
}

fn vol_index(volumes: &[VolumeRef], name: &str) -> usize {
    volumes.iter().position(|v| v.name == name).expect("known volume")
}

/// The first `limit` logical bytes of `extents` read from `data` (parallel to `volumes`).
fn read_logical(volumes: &[VolumeRef], data: &[Vec<u8>], extents: &[ObjectExtent], limit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for e in extents {
        let left = limit - out.len() as u64;
        if left == 0 {
            break;
        }
        let d = &data[vol_index(volumes, &e.volume)];
        let start = e.offset as usize;
        out.extend_from_slice(&d[start..start + e.length.min(left) as usize]);
    }
    out
}

/// Destination of a simulated restore, with a record of every byte written.
struct Dest {
    vols: Vec<Vec<u8>>,
    vol_written: Vec<Vec<bool>>,
    file: Vec<u8>,
    file_written: Vec<bool>,
}

impl Dest {
    fn new(sizes: &[u64]) -> Dest {
        Dest {
            vols: sizes.iter().map(|&s| vec![0u8; s as usize]).collect(),
            vol_written: sizes.iter().map(|&s| vec![false; s as usize]).collect(),
            file: Vec::new(),
            file_written: Vec::new(),
        }
    }

    /// Applies every placement of every track; returns the bytes placed.
    /// `slot` maps a remap-table volume index to a destination volume.
    fn restore(&mut self, placer: &Placer, tracks: &[(TrackAddr, Vec<u8>)], slot: &[usize]) -> u64 {
        let mut placed = 0u64;
        for (addr, data) in tracks {
            for p in placer.place(*addr, data.len()) {
                let bytes = &data[p.data.clone()];
                let off = p.offset as usize;
                let (buf, written) = match p.target {
                    DestTarget::Volume(i) => {
                        let s = slot[usize::from(i)];
                        (&mut self.vols[s], &mut self.vol_written[s])
                    }
                    DestTarget::File => {
                        if self.file.len() < off + bytes.len() {
                            self.file.resize(off + bytes.len(), 0);
                            self.file_written.resize(off + bytes.len(), false);
                        }
                        (&mut self.file, &mut self.file_written)
                    }
                };
                assert!(
                    !written[off..off + bytes.len()].iter().any(|&w| w),
                    "byte placed twice: {p:?}"
                );
                written[off..off + bytes.len()].iter_mut().for_each(|w| *w = true);
                buf[off..off + bytes.len()].copy_from_slice(bytes);
                placed += bytes.len() as u64;
            }
        }
        placed
    }

    /// Bytes written inside the first `limit` logical bytes of `extents`.
    fn written_within(&self, volumes: &[VolumeRef], extents: &[ObjectExtent], limit: u64) -> u64 {
        let mut n = 0u64;
        let mut left = limit;
        for e in extents {
            let len = e.length.min(left);
            let w = &self.vol_written[vol_index(volumes, &e.volume)];
            n += w[e.offset as usize..(e.offset + len) as usize]
                .iter()
                .filter(|&&b| b)
                .count() as u64;
            left -= len;
        }
        n
    }
}

fn check_backup_restore(specs: &[VolSpec], dest_specs: &[VolSpec], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let names = ["vol-a", "vol-b", "vol-c"];
    let volumes: Vec<VolumeRef> = specs.iter().zip(names).map(|(s, n)| make_volume(n, s)).collect();
    let max_len = rng.random_range(1..=40);
    let object = scatter(&mut rng, &volumes, 3, max_len);

    // The source volumes, random bytes.
    let source: Vec<Vec<u8>> = volumes
        .iter()
        .map(|v| {
            let mut d = vec![0u8; v.size as usize];
            rng.fill(&mut d[..]);
            d
        })
        .collect();
    let expected = read_logical(&volumes, &source, &object, u64::MAX);

    let map = AbsMap::from_extents(&volumes, &object).expect("valid object");
    map.validate().expect("built maps validate");
    assert_eq!(map.object_size, expected.len() as u64);
    assert!(map.extents.len() <= object.len());
    // Coalesced: no two logically consecutive extents are physically adjacent.
    for w in map.extents.windows(2) {
        assert!(!(w[0].volume == w[1].volume && w[0].volume_offset + w[0].length == w[1].volume_offset));
    }
    // Only used volumes, in order of first use.
    let mut first_use = Vec::new();
    for e in &object {
        if !first_use.contains(&e.volume) {
            first_use.push(e.volume.clone());
        }
    }
    assert_eq!(
        map.volumes.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        first_use
    );
    let src_of = |i: u16| vol_index(&volumes, &map.volumes[usize::from(i)].name);

    // The track set is exactly the tracks holding a block of the object.
    let ts = map.track_set();
    let mut want = BTreeSet::new();
    for e in &object {
        let i = map.volumes.iter().position(|v| v.name == e.volume).unwrap() as u16;
        let g = map.volumes[usize::from(i)].geometry;
        let mut b = e.offset;
        while b < e.offset + e.length {
            want.insert(TrackAddr {
                volume: i,
                track: b / u64::from(g.track_size),
            });
            b += u64::from(g.block_size);
        }
    }
    assert_eq!(ts.iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(ts.len(), want.len() as u64);
    for w in ts.runs().windows(2) {
        assert!(
            (w[0].volume, w[0].first + w[0].count) < (w[1].volume, w[1].first),
            "runs not normalised"
        );
    }
    for (vi, v) in map.volumes.iter().enumerate() {
        for t in 0..v.track_count() + 2 {
            let a = TrackAddr {
                volume: vi as u16,
                track: t,
            };
            assert_eq!(ts.contains(a), want.contains(&a));
        }
    }

    // Backup: read whole tracks, in any order.
    let mut tracks: Vec<(TrackAddr, Vec<u8>)> = ts
        .iter()
        .map(|t| {
            let (off, len) = map.track_extent(t).expect("track in range");
            let ts = u64::from(map.volumes[usize::from(t.volume)].geometry.track_size);
            assert_eq!(off, t.track * ts);
            assert!(len > 0 && len <= ts);
            let d = &source[src_of(t.volume)];
            (t, d[off as usize..(off + len) as usize].to_vec())
        })
        .collect();
    tracks.shuffle(&mut rng);

    // (a) Back to the original addresses, on zeroed copies of the volumes.
    {
        let remap = RemapTable::original(&map);
        remap.validate().unwrap();
        let placer = Placer::new(&map, &remap).unwrap();
        assert_eq!(placer.object_size(), map.object_size);
        // Tracks not in the track set place nothing.
        for (vi, v) in map.volumes.iter().enumerate() {
            for t in 0..v.track_count() + 1 {
                let a = TrackAddr {
                    volume: vi as u16,
                    track: t,
                };
                if !ts.contains(a) {
                    assert!(placer.place(a, v.geometry.track_size as usize).is_empty());
                }
            }
        }
        let mut dest = Dest::new(&volumes.iter().map(|v| v.size).collect::<Vec<_>>());
        let slot: Vec<usize> = (0..map.volumes.len() as u16).map(src_of).collect();
        assert_eq!(dest.restore(&placer, &tracks, &slot), map.object_size);
        assert_eq!(read_logical(&volumes, &dest.vols, &object, u64::MAX), expected);
        assert_eq!(dest.written_within(&volumes, &object, u64::MAX), map.object_size);
    }

    // (b) Onto other volumes, allocated differently.
    {
        let dnames = ["dst-x", "dst-y", "dst-z"];
        let n = dest_specs.len() as u64;
        let mut dvols: Vec<VolumeRef> = dest_specs
            .iter()
            .zip(dnames)
            .map(|(s, name)| {
                let mut v = make_volume(name, s);
                // Room for the object even with gaps of up to 2 blocks per block used.
                let block = u64::from(v.geometry.block_size);
                v.size = v
                    .size
                    .max((3 * map.object_size / n).div_ceil(block) * block + 4 * block);
                v
            })
            .collect();
        let mut alloc = scatter(&mut rng, &dvols, 2, 8);
        let total: u64 = alloc.iter().map(|e| e.length).sum();
        if total < map.object_size {
            let size = map.object_size.div_ceil(4096) * 4096;
            dvols.push(VolumeRef {
                name: "dst-spill".into(),
                geometry: Geometry {
                    block_size: 4096,
                    track_size: 4096,
                },
                size,
            });
            alloc.push(ObjectExtent {
                volume: "dst-spill".into(),
                offset: 0,
                length: size,
            });
        }
        // Too small by one block.
        let mut short = Vec::new();
        let mut have = 0u64;
        for e in &alloc {
            if have + e.length >= map.object_size {
                break;
            }
            have += e.length;
            short.push(e.clone());
        }
        assert_eq!(
            RemapTable::to_volumes(&map, &dvols, &short),
            Err(AbsError::AllocationTooSmall {
                allocated: have,
                needed: map.object_size
            })
        );

        let remap = RemapTable::to_volumes(&map, &dvols, &alloc).expect("allocation is large enough");
        remap.validate().unwrap();
        assert!(remap.extents.len() <= map.extents.len() + alloc.len());
        let placer = Placer::new(&map, &remap).unwrap();
        let mut dest = Dest::new(&dvols.iter().map(|v| v.size).collect::<Vec<_>>());
        let slot: Vec<usize> = remap.volumes.iter().map(|v| vol_index(&dvols, &v.name)).collect();
        assert_eq!(dest.restore(&placer, &tracks, &slot), map.object_size);
        assert_eq!(read_logical(&dvols, &dest.vols, &alloc, map.object_size), expected);
        assert_eq!(dest.written_within(&dvols, &alloc, map.object_size), map.object_size);
    }

    // (c) Into a plain file.
    {
        let remap = RemapTable::to_file(&map);
        remap.validate().unwrap();
        let placer = Placer::new(&map, &remap).unwrap();
        let mut dest = Dest::new(&[]);
        assert_eq!(dest.restore(&placer, &tracks, &[]), map.object_size);
        assert_eq!(dest.file, expected);
        assert!(dest.file_written.iter().all(|&w| w));
    }
}

/// A random track set for `map`: `mode` 0 is empty, 1 is the map's own
/// track set, 2 is every track of every volume, otherwise random runs,
/// some past the end of their volume or on a volume the map does not have.
fn random_tracks(rng: &mut StdRng, map: &AbsMap, mode: usize) -> TrackSet {
    match mode {
        0 => TrackSet::default(),
        1 => map.track_set(),
        2 => TrackSet::from_runs((0..map.volumes.len()).map(|i| TrackRun {
            volume: i as u16,
            first: 0,
            count: u64::MAX,
        })),
        _ => {
            let nv = map.volumes.len() as u16;
            let n = rng.random_range(0..=24);
            TrackSet::from_runs((0..n).map(|_| {
                let volume = rng.random_range(0..=nv);
                let tracks = map.volumes.get(usize::from(volume)).map_or(4, |v| v.track_count());
                TrackRun {
                    volume,
                    first: rng.random_range(0..tracks + 2),
                    count: rng.random_range(1..=4),
                }
            }))
        }
    }
}

/// The track holding logical byte `o` of a valid map, from its extents.
fn track_of(map: &AbsMap, o: u64) -> TrackAddr {
    let i = map.extents.partition_point(|e| e.logical_offset <= o) - 1;
    let e = &map.extents[i];
    assert!(o - e.logical_offset < e.length);
    let v = &map.volumes[usize::from(e.volume)];
    TrackAddr {
        volume: e.volume,
        track: (e.volume_offset + (o - e.logical_offset)) / u64::from(v.geometry.track_size),
    }
}

/// Whether logical byte `o` is inside one of the sorted `ranges`.
fn in_ranges(ranges: &[LogicalRange], o: u64) -> bool {
    let i = ranges.partition_point(|r| r.offset <= o);
    i > 0 && o - ranges[i - 1].offset < ranges[i - 1].length
}

fn check_logical_ranges(specs: &[VolSpec], seed: u64, mode: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let volumes: Vec<VolumeRef> = specs
        .iter()
        .zip(["a", "b", "c"])
        .map(|(s, n)| make_volume(n, s))
        .collect();
    let max_len = rng.random_range(1..=40);
    let object = scatter(&mut rng, &volumes, 3, max_len);
    let map = AbsMap::from_extents(&volumes, &object).expect("valid object");
    let tracks = random_tracks(&mut rng, &map, mode);
    let ranges = map.logical_ranges(&tracks);

    // (a) Sorted, non-overlapping, non-empty, not adjacent, inside the object.
    for r in &ranges {
        assert!(r.length > 0, "empty range in {ranges:?}");
        assert!(r.offset + r.length <= map.object_size, "{r:?} past {}", map.object_size);
    }
    for w in ranges.windows(2) {
        assert!(
            w[0].offset + w[0].length < w[1].offset,
            "unsorted, overlapping or adjacent: {ranges:?}"
        );
    }

    // (b) A 512-byte unit (the smallest block size: extents of every volume
    // are aligned to it in both logical and volume offsets, so a unit never
    // straddles a track) is in the ranges iff its track is in the set.
    const UNIT: u64 = 512;
    let units = map.object_size / UNIT;
    assert_eq!(map.object_size % UNIT, 0);
    let sample: Vec<u64> = if units <= 2000 {
        (0..units).collect()
    } else {
        (0..2000).map(|_| rng.random_range(0..units)).collect()
    };
    let mut inside = 0u64;
    for &u in &sample {
        let o = u * UNIT;
        let want = tracks.contains(track_of(&map, o));
        assert_eq!(in_ranges(&ranges, o), want, "logical {o}, ranges {ranges:?}");
        assert_eq!(in_ranges(&ranges, o + UNIT - 1), want, "end of unit at {o}");
        inside += u64::from(want);
    }

    // (c) logical_bytes is the sum of the lengths, at most the object.
    let total: u64 = ranges.iter().map(|r| r.length).sum();
    assert_eq!(map.logical_bytes(&tracks), total);
    assert!(total <= map.object_size);
    if units <= 2000 {
        assert_eq!(total, inside * UNIT);
    }
    // (d) The ranges lead back to the tracks: those of the set that hold
    // any byte of the object (a catalog rebuilt from tape relies on it).
    let own = map.track_set();
    let held = TrackSet::from_runs(own.runs().iter().flat_map(|r| {
        tracks
            .runs()
            .iter()
            .filter(move |t| t.volume == r.volume)
            .filter_map(move |t| {
                let first = t.first.max(r.first);
                let end = t.first.saturating_add(t.count).min(r.first + r.count);
                (first < end).then_some(TrackRun {
                    volume: r.volume,
                    first,
                    count: end - first,
                })
            })
    }));
    assert_eq!(map.tracks_of_ranges(&ranges), held, "ranges {ranges:?}");
    match mode {
        0 => assert!(ranges.is_empty()),
        1 | 2 => assert_eq!(
            ranges,
            [LogicalRange {
                offset: 0,
                length: map.object_size
            }]
        ),
        _ => {}
    }
}

/// Field values around the edges: 0, 1, block-ish sizes, near u64::MAX, random.
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(512u64),
        Just(4096u64),
        Just(65536u64),
        Just(u64::MAX),
        Just(u64::MAX - 511),
        (0u64..16).prop_map(|k| k * 512),
        any::<u64>(),
    ]
}

fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1u32),
        Just(512u32),
        Just(4096u32),
        Just(65536u32),
        Just(u32::MAX),
        any::<u32>()
    ]
}

/// Named `abs::…` so that `cargo test -p proto abs` selects them.
mod abs {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// (1) Backup of a scattered object as whole tracks in random order,
        /// restored three ways: the logical content comes back exactly, each
        /// byte placed once, object_size bytes in all.
        #[test]
        fn backup_then_restore_reproduces_the_object(
            specs in prop::collection::vec(vol_spec(), 2..=3),
            dest_specs in prop::collection::vec(vol_spec(), 1..=3),
            seed in any::<u64>(),
        ) {
            check_backup_restore(&specs, &dest_specs, seed);
        }

        /// Tracks → logical ranges (FIG. 22): normalised output, exactly the
        /// bytes whose track is in the set, logical_bytes their total.
        #[test]
        fn logical_ranges_are_the_bytes_of_the_tracks(
            specs in prop::collection::vec(vol_spec(), 1..=3),
            seed in any::<u64>(),
            mode in 0usize..8,
        ) {
            check_logical_ranges(&specs, seed, mode);
        }

        /// (2) Memory is proportional to extents: a whole 1 TiB (or so) volume,
        /// however finely the host describes it, is one extent and one run.
        #[test]
        fn whole_large_volume_is_one_extent_and_one_run(
            block_shift in 9u32..=12,
            track_mult in 1u32..=16,
            extra_blocks in 0u64..64,
            pieces in 1usize..2000,
            seed in any::<u64>(),
        ) {
            let block = 1u64 << block_shift;
            let track = block * u64::from(track_mult);
            let size = (1u64 << 40) + extra_blocks * block;
            let v = VolumeRef {
                name: "big".into(),
                geometry: Geometry { block_size: block as u32, track_size: track as u32 },
                size,
            };
            let mut rng = StdRng::seed_from_u64(seed);
            // Random cut points (block-aligned) split the volume into pieces.
            let mut cuts: BTreeSet<u64> = (1..pieces).map(|_| rng.random_range(1..size / block) * block).collect();
            cuts.insert(0);
            cuts.insert(size);
            let cuts: Vec<u64> = cuts.into_iter().collect();
            let object: Vec<ObjectExtent> = cuts
                .windows(2)
                .map(|w| ObjectExtent { volume: "big".into(), offset: w[0], length: w[1] - w[0] })
                .collect();
            let map = AbsMap::from_extents(std::slice::from_ref(&v), &object).unwrap();
            prop_assert_eq!(&map.extents, &vec![MapExtent { logical_offset: 0, length: size, volume: 0, volume_offset: 0 }]);
            prop_assert_eq!(map.object_size, size);
            let ts = map.track_set();
            prop_assert_eq!(ts.runs().len(), 1);
            prop_assert_eq!(ts.len(), size.div_ceil(track));
            let last = TrackAddr { volume: 0, track: size.div_ceil(track) - 1 };
            prop_assert!(ts.contains(last));
            let past = TrackAddr { volume: 0, track: last.track + 1 };
            prop_assert!(!ts.contains(past));
            let (off, len) = map.track_extent(last).unwrap();
            prop_assert_eq!(off + len, size);

            // Restore tables stay small too, and placing a track is one write.
            let placer = Placer::new(&map, &RemapTable::to_file(&map)).unwrap();
            let t = TrackAddr { volume: 0, track: rng.random_range(0..=last.track) };
            let (off, len) = map.track_extent(t).unwrap();
            let p = placer.place(t, len as usize);
            prop_assert_eq!(p.len(), 1);
            prop_assert_eq!(p[0].offset, off);
            prop_assert_eq!(p[0].data.clone(), 0..len as usize);

            let halves = [
                VolumeRef { name: "h0".into(), geometry: Geometry { block_size: 4096, track_size: 65536 }, size: 1 << 39 },
                VolumeRef { name: "h1".into(), geometry: Geometry { block_size: 4096, track_size: 65536 }, size: 1 << 40 },
            ];
            let alloc = [
                ObjectExtent { volume: "h0".into(), offset: 0, length: 1 << 39 },
                ObjectExtent { volume: "h1".into(), offset: 0, length: 1 << 40 },
            ];
            let remap = RemapTable::to_volumes(&map, &halves, &alloc).unwrap();
            prop_assert_eq!(remap.extents.len(), 2);
            prop_assert_eq!(remap.extents[1].length, size - (1 << 39));
        }

        /// (3) Corrupted maps are refused by validate() (and Placer::new),
        /// without panicking.
        #[test]
        fn validate_rejects_corrupted_maps(
            specs in prop::collection::vec(vol_spec(), 2..=3),
            seed in any::<u64>(),
            kind in 0usize..12,
            pick in any::<prop::sample::Index>(),
            delta in 1u64..=u64::MAX,
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let volumes: Vec<VolumeRef> = specs.iter().zip(["a", "b", "c"]).map(|(s, n)| make_volume(n, s)).collect();
            let object = scatter(&mut rng, &volumes, 3, 20);
            let good = AbsMap::from_extents(&volumes, &object).unwrap();
            let mut m = good.clone();
            let i = pick.index(m.extents.len());
            let nv = m.volumes.len();
            match kind {
                0 => m.extents[i].volume = (nv as u64 + delta % (65536 - nv as u64)) as u16,
                1 => m.extents[i].logical_offset = m.extents[i].logical_offset.wrapping_add(delta),
                2 => m.object_size = m.object_size.wrapping_add(delta),
                3 => m.extents[i].length = 0,
                4 => m.extents[i].length = m.extents[i].length.wrapping_add(delta),
                5 => m.extents[i].volume_offset = u64::MAX - delta % 4096,
                6 => { m.extents.remove(i); }
                7 => m.volumes[i % nv].geometry.track_size = m.volumes[i % nv].geometry.block_size / 2 + 1,
                8 => m.volumes.clear(),
                9 => {
                    // Logical overflow with every extent inside a huge volume.
                    for v in &mut m.volumes { v.size = u64::MAX; }
                    m.extents[i].length = u64::MAX - 4095;
                    m.extents[i].volume_offset = 0;
                }
                10 => {
                    // An extent copied over another one's bytes.
                    let e = m.extents[i];
                    m.extents.push(MapExtent { logical_offset: m.object_size, ..e });
                    m.object_size += e.length;
                }
                _ => {
                    // The same volume listed twice.
                    let v = m.volumes[i % nv].clone();
                    m.volumes.push(v);
                }
            }
            prop_assert!(m.validate().is_err(), "kind {} accepted: {:?}", kind, m);
            prop_assert!(Placer::new(&m, &RemapTable::to_file(&good)).is_err());
            prop_assert!(Placer::new(&m, &RemapTable::original(&good)).is_err());
            // Nothing else panics on it either.
            let ts = m.track_set();
            for t in ts.iter().take(64) {
                let _ = m.track_extent(t);
            }
        }

        /// (3) Corrupted remap tables are refused, without panicking.
        #[test]
        fn validate_rejects_corrupted_remap_tables(
            specs in prop::collection::vec(vol_spec(), 2..=3),
            seed in any::<u64>(),
            which in 0usize..3,
            kind in 0usize..9,
            pick in any::<prop::sample::Index>(),
            delta in 1u64..=u64::MAX,
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let volumes: Vec<VolumeRef> = specs.iter().zip(["a", "b", "c"]).map(|(s, n)| make_volume(n, s)).collect();
            let object = scatter(&mut rng, &volumes, 3, 20);
            let map = AbsMap::from_extents(&volumes, &object).unwrap();
            let good = match which {
                0 => RemapTable::original(&map),
                1 => RemapTable::to_file(&map),
                _ => {
                    let d = [VolumeRef {
                        name: "d".into(),
                        geometry: Geometry { block_size: 512, track_size: 4096 },
                        size: map.object_size * 2,
                    }];
                    let alloc = [
                        ObjectExtent { volume: "d".into(), offset: map.object_size, length: (map.object_size / 1024 + 1) * 512 },
                        ObjectExtent { volume: "d".into(), offset: 0, length: map.object_size },
                    ];
                    RemapTable::to_volumes(&map, &d, &alloc).unwrap()
                }
            };
            good.validate().unwrap();
            let mut t = good.clone();
            let i = pick.index(t.extents.len());
            let nv = t.volumes.len();
            match kind {
                0 => t.extents[i].target = DestTarget::Volume((nv as u64 + delta % (65536 - nv as u64)) as u16),
                1 => t.extents[i].logical_offset = t.extents[i].logical_offset.wrapping_add(delta),
                2 => t.object_size = t.object_size.wrapping_add(delta),
                3 => t.extents[i].length = 0,
                4 => t.extents[i].offset = u64::MAX - delta % t.extents[i].length,
                5 => { t.extents.remove(i); }
                6 => t.extents[i].length = t.extents[i].length.wrapping_add(delta),
                7 => {
                    // A second copy of a range, to the same destination bytes.
                    let e = t.extents[i];
                    t.extents.push(RemapExtent { logical_offset: t.object_size, ..e });
                    t.object_size += e.length;
                }
                _ => {
                    t.extents.push(RemapExtent { logical_offset: t.object_size, length: u64::MAX, target: DestTarget::File, offset: 0 });
                    t.object_size = t.object_size.wrapping_add(u64::MAX);
                }
            }
            prop_assert!(t.validate().is_err(), "kind {} accepted: {:?}", kind, t);
            prop_assert!(Placer::new(&map, &t).is_err());
        }

        /// Arbitrary field values never panic validate(), track_set(),
        /// track_extent(), Placer::new() or place(); a Placer is only built
        /// from a valid map, and its placements stay inside the track data.
        #[test]
        fn arbitrary_tables_never_panic(
            vols in prop::collection::vec((edge_u32(), edge_u32(), edge_u64()), 0..4),
            exts in prop::collection::vec((edge_u64(), edge_u64(), 0u16..5, edge_u64()), 0..5),
            rexts in prop::collection::vec((edge_u64(), edge_u64(), prop::option::of(0u16..5), edge_u64()), 0..5),
            object_size in edge_u64(),
            tracks in prop::collection::vec((0u16..5, edge_u64(), 0usize..70000), 0..8),
        ) {
            let volumes: Vec<VolumeRef> = vols
                .iter()
                .enumerate()
                .map(|(i, &(b, t, s))| VolumeRef { name: format!("v{i}"), geometry: Geometry { block_size: b, track_size: t }, size: s })
                .collect();
            let map = AbsMap {
                volumes: volumes.clone(),
                extents: exts
                    .iter()
                    .map(|&(l, n, v, o)| MapExtent { logical_offset: l, length: n, volume: v, volume_offset: o })
                    .collect(),
                object_size,
            };
            let remap = RemapTable {
                volumes,
                extents: rexts
                    .iter()
                    .map(|&(l, n, v, o)| RemapExtent {
                        logical_offset: l,
                        length: n,
                        target: v.map_or(DestTarget::File, DestTarget::Volume),
                        offset: o,
                    })
                    .collect(),
                object_size,
            };
            let map_ok = map.validate().is_ok();
            let _ = remap.validate();
            let ts = map.track_set();
            for &(v, t, _) in &tracks {
                let _ = map.track_extent(TrackAddr { volume: v, track: t });
                let _ = ts.contains(TrackAddr { volume: v, track: t });
            }
            for t in ts.iter().take(16) {
                let _ = map.track_extent(t);
            }
            let set = TrackSet::from_runs(tracks.iter().map(|&(volume, first, count)| TrackRun { volume, first, count: count as u64 }));
            for s in [&ts, &set] {
                let ranges = map.logical_ranges(s);
                for w in ranges.windows(2) {
                    prop_assert!(w[0].offset + w[0].length < w[1].offset);
                }
                prop_assert!(ranges.iter().all(|r| r.length > 0 && r.offset + r.length <= map.object_size));
                let _ = map.logical_bytes(s);
            }
            for r in [remap, RemapTable::to_file(&map), RemapTable::original(&map)] {
                if let Ok(p) = Placer::new(&map, &r) {
                    prop_assert!(map_ok);
                    for &(v, t, len) in &tracks {
                        for pl in p.place(TrackAddr { volume: v, track: t }, len) {
                            prop_assert!(pl.data.start < pl.data.end && pl.data.end <= len);
                        }
                    }
                }
            }
        }
    }

    /// A small hand-checked case of the simulation, to pin it down.
    #[test]
    fn backup_then_restore_fixed_case() {
        let s = |block_shift, track_mult, full_tracks, tail_blocks, tail_bytes| VolSpec {
            block_shift,
            track_mult,
            full_tracks,
            tail_blocks,
            tail_bytes,
        };
        check_backup_restore(&[s(9, 3, 5, 2, 100), s(12, 16, 2, 7, 0)], &[s(10, 4, 3, 1, 0)], 7);
        check_backup_restore(
            &[s(12, 1, 1, 0, 0), s(9, 1, 1, 0, 0), s(11, 2, 1, 1, 511)],
            &[s(12, 1, 1, 0, 0)],
            99,
        );
    }
}
