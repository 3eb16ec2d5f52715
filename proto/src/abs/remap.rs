//! Remap tables (FIG. 15/16): logical ranges → destination addresses, and the
//! [`Placer`] that tells where the bytes of each restored track go.

use std::ops::Range;

use rkyv::{Archive, Deserialize, Serialize};

use super::map::{check_bounds, check_overlaps, check_volumes, Span};
use super::{AbsError, AbsMap, ObjectExtent, TrackAddr, VolumeRef};
use crate::num::to_usize;

/// Where a remapped range goes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestTarget {
    /// A destination volume: index into [`RemapTable::volumes`].
    Volume(u16),
    /// The plain file the restore writes (logical order).
    File,
}

/// Logical bytes `[logical_offset, logical_offset + length)` go to byte
/// `offset` of `target`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemapExtent {
    /// First logical byte of the range.
    pub logical_offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Destination volume or file.
    pub target: DestTarget,
    /// Byte offset in the destination.
    pub offset: u64,
}

/// The remap table of one restore: destination volumes and extents sorted by
/// logical offset, covering `[0, object_size)` exactly once.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RemapTable {
    /// Destination volumes ([`DestTarget::Volume`] indexes this list).
    pub volumes: Vec<VolumeRef>,
    /// Extents in logical order.
    pub extents: Vec<RemapExtent>,
    /// Size of the object in bytes.
    pub object_size: u64,
}

/// Overlap-check key of the file target (volume keys are `0..=u16::MAX`).
const FILE_KEY: u32 = u16::MAX as u32 + 1;

impl RemapTable {
    /// (a) Back to the original addresses of the map.
    ///
    /// One remap extent per map extent, same volumes and indices.
    pub fn original(map: &AbsMap) -> RemapTable {
        RemapTable {
            volumes: map.volumes.clone(),
            extents: map
                .extents
                .iter()
                .map(|e| RemapExtent {
                    logical_offset: e.logical_offset,
                    length: e.length,
                    target: DestTarget::Volume(e.volume),
                    offset: e.volume_offset,
                })
                .collect(),
            object_size: map.object_size,
        }
    }

    /// (b) Onto other volumes whose allocation for the object is given as
    /// extents in logical order (may differ completely from the source
    /// layout; must hold at least `object_size` bytes; block-aligned like
    /// [`AbsMap::from_extents`]). Extra allocated bytes are left untouched.
    ///
    /// The table merges the two layouts (FIG. 16): each remap extent lies
    /// within one source map extent and one allocation extent, so extents
    /// are split wherever either side has a boundary (at most n + m extents).
    /// Only the destination volumes that receive bytes are kept, in order of
    /// first use. Errors: those of [`AbsMap::validate`] for `map`, of
    /// [`AbsMap::from_extents`] for the allocation, and
    /// [`AbsError::AllocationTooSmall`].
    pub fn to_volumes(
        map: &AbsMap,
        volumes: &[VolumeRef],
        allocation: &[ObjectExtent],
    ) -> Result<RemapTable, AbsError> {
        map.validate()?;
        let needed = map.object_size;
        if allocation.is_empty() {
            return Err(AbsError::AllocationTooSmall { allocated: 0, needed });
        }
        let alloc = AbsMap::from_extents(volumes, allocation)?;
        if alloc.object_size < needed {
            return Err(AbsError::AllocationTooSmall {
                allocated: alloc.object_size,
                needed,
            });
        }
        let mut extents = Vec::with_capacity(map.extents.len() + alloc.extents.len());
        let (mut i, mut j, mut pos) = (0, 0, 0u64);
        let mut last_volume = 0u16;
        while pos < needed {
            let (s, d) = (&map.extents[i], &alloc.extents[j]);
            let s_end = s.logical_offset + s.length;
            let d_end = d.logical_offset + d.length;
            let end = s_end.min(d_end).min(needed);
            extents.push(RemapExtent {
                logical_offset: pos,
                length: end - pos,
                target: DestTarget::Volume(d.volume),
                offset: d.volume_offset + (pos - d.logical_offset),
            });
            last_volume = last_volume.max(d.volume);
            pos = end;
            if pos == s_end {
                i += 1;
            }
            if pos == d_end {
                j += 1;
            }
        }
        // Volumes are numbered in order of first use, so the used ones are a prefix.
        let mut dest_volumes = alloc.volumes;
        dest_volumes.truncate(usize::from(last_volume) + 1);
        Ok(RemapTable {
            volumes: dest_volumes,
            extents,
            object_size: needed,
        })
    }

    /// (c) Into a plain file, in logical order: logical offset = file offset.
    ///
    /// A single extent (none for an empty map).
    pub fn to_file(map: &AbsMap) -> RemapTable {
        let extents = if map.object_size == 0 {
            Vec::new()
        } else {
            vec![RemapExtent {
                logical_offset: 0,
                length: map.object_size,
                target: DestTarget::File,
                offset: 0,
            }]
        };
        RemapTable {
            volumes: Vec::new(),
            extents,
            object_size: map.object_size,
        }
    }

    /// Check a table received from the network: indices in range, extents
    /// sorted, contiguous from 0 and covering `object_size`.
    ///
    /// Also refused: invalid or duplicate destination volumes, empty
    /// extents, extents past the end of their volume (or overflowing), two
    /// extents writing the same destination bytes, an empty object. Never
    /// panics, whatever the field values. Destination offsets need not be
    /// block-aligned: [`RemapTable::to_volumes`] splits at source boundaries.
    pub fn validate(&self) -> Result<(), AbsError> {
        check_volumes(&self.volumes)?;
        if self.extents.is_empty() {
            return Err(AbsError::EmptyObject);
        }
        let mut logical = 0u64;
        let mut spans = Vec::with_capacity(self.extents.len());
        for (i, e) in self.extents.iter().enumerate() {
            if e.length == 0 {
                return Err(AbsError::EmptyExtent { index: i });
            }
            if e.logical_offset != logical {
                return Err(AbsError::Malformed(format!(
                    "remap extent {i} starts at logical offset {} but the extents before it end at {logical}",
                    e.logical_offset
                )));
            }
            let key = match e.target {
                DestTarget::Volume(index) => {
                    let v = self.volumes.get(usize::from(index)).ok_or(AbsError::VolumeIndex {
                        index,
                        count: self.volumes.len(),
                    })?;
                    check_bounds(i, v, e.offset, e.length)?;
                    u32::from(index)
                }
                DestTarget::File => {
                    if e.offset.checked_add(e.length).is_none() {
                        return Err(AbsError::Malformed(format!(
                            "remap extent {i} runs past the largest file offset"
                        )));
                    }
                    FILE_KEY
                }
            };
            spans.push(Span {
                key,
                offset: e.offset,
                length: e.length,
                index: i,
            });
            logical = logical
                .checked_add(e.length)
                .ok_or_else(|| AbsError::Malformed("object size overflows 64 bits".into()))?;
        }
        if logical != self.object_size {
            return Err(AbsError::Malformed(format!(
                "remap extents add up to {logical} bytes but object_size is {}",
                self.object_size
            )));
        }
        check_overlaps(spans, |k| match k {
            FILE_KEY => "<file>".to_string(),
            k => self.volumes[k as usize].name.clone(),
        })
    }
}

/// One write a restore performs: `data` (a range of the track's bytes) goes
/// to byte `offset` of `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Destination volume or file.
    pub target: DestTarget,
    /// Byte offset in the destination.
    pub offset: u64,
    /// Range of the track's bytes to write there.
    pub data: Range<usize>,
}

/// A map extent in the source-address index.
#[derive(Debug, Clone, Copy)]
struct Source {
    volume: u16,
    volume_offset: u64,
    length: u64,
    logical_offset: u64,
    /// Index of the remap extent holding `logical_offset`.
    remap_first: usize,
}

/// Track geometry of a source volume.
#[derive(Debug, Clone, Copy)]
struct SourceVolume {
    track_size: u64,
    size: u64,
}

/// Precomputed lookup from a source track to its destination writes.
/// Memory is proportional to the number of extents, not blocks.
#[derive(Debug, Clone)]
pub struct Placer {
    /// The map's extents sorted by (volume, volume_offset); they do not
    /// overlap, so their ends are sorted too.
    sources: Vec<Source>,
    /// The remap extents, in logical order.
    remap: Vec<RemapExtent>,
    /// Per map volume.
    volumes: Vec<SourceVolume>,
    object_size: u64,
}

impl Placer {
    /// Validates both and builds the source-address index.
    ///
    /// Errors: those of [`AbsMap::validate`] and [`RemapTable::validate`],
    /// and [`AbsError::SizeMismatch`] if they describe different sizes.
    pub fn new(map: &AbsMap, remap: &RemapTable) -> Result<Placer, AbsError> {
        map.validate()?;
        remap.validate()?;
        if map.object_size != remap.object_size {
            return Err(AbsError::SizeMismatch {
                map: map.object_size,
                remap: remap.object_size,
            });
        }
        let mut sources: Vec<Source> = map
            .extents
            .iter()
            .map(|e| Source {
                volume: e.volume,
                volume_offset: e.volume_offset,
                length: e.length,
                logical_offset: e.logical_offset,
                remap_first: remap
                    .extents
                    .partition_point(|r| r.logical_offset + r.length <= e.logical_offset),
            })
            .collect();
        sources.sort_unstable_by_key(|s| (s.volume, s.volume_offset));
        let volumes = map
            .volumes
            .iter()
            .map(|v| SourceVolume {
                track_size: u64::from(v.geometry.track_size),
                size: v.size,
            })
            .collect();
        Ok(Placer {
            sources,
            remap: remap.extents.clone(),
            volumes,
            object_size: map.object_size,
        })
    }

    /// Where the bytes of `track` (its data is `track_len` bytes long, as
    /// read from the volume at backup) go. Bytes of the track that belong to
    /// other objects produce no placement. A track outside the map gives an
    /// empty list.
    ///
    /// Placements come in source-address order; they never overlap, and
    /// over all tracks of the track set they cover each logical byte once.
    /// Bytes past `track_len` (a short read) are not placed; bytes past the
    /// track's own extent are ignored. Cost: O(log n + pieces) for n extents
    /// in the map and remap table.
    pub fn place(&self, track: TrackAddr, track_len: usize) -> Vec<Placement> {
        let mut out = Vec::new();
        self.place_into(track, track_len, &mut out);
        out
    }

    /// Like [`Placer::place`], appending to `out` (reuses its allocation).
    pub fn place_into(&self, track: TrackAddr, track_len: usize, out: &mut Vec<Placement>) {
        let Some(vol) = self.volumes.get(usize::from(track.volume)) else {
            return;
        };
        let Some(start) = track.track.checked_mul(vol.track_size) else {
            return;
        };
        if start >= vol.size {
            return;
        }
        let track_end = start.saturating_add(vol.track_size).min(vol.size);
        let end = start.saturating_add(track_len as u64).min(track_end);
        let v = track.volume;
        // First extent of the volume that ends after the track starts.
        let mut k = self
            .sources
            .partition_point(|s| (s.volume, s.volume_offset + s.length) <= (v, start));
        while let Some(s) = self.sources.get(k) {
            if s.volume != v || s.volume_offset >= end {
                break;
            }
            let lo = s.volume_offset.max(start);
            let hi = (s.volume_offset + s.length).min(end);
            let mut logical = s.logical_offset + (lo - s.volume_offset);
            let logical_end = logical + (hi - lo);
            let mut r = s.remap_first;
            if lo > s.volume_offset {
                // Only the first extent can start before the track.
                r += self
                    .remap
                    .get(r..)
                    .unwrap_or(&[])
                    .partition_point(|x| x.logical_offset + x.length <= logical);
            }
            let mut src = lo - start;
            while logical < logical_end {
                let Some(x) = self.remap.get(r) else { break };
                let piece_end = (x.logical_offset + x.length).min(logical_end);
                let len = piece_end - logical;
                // src + len <= end - start <= track_len: fits in usize.
                out.push(Placement {
                    target: x.target,
                    offset: x.offset + (logical - x.logical_offset),
                    data: to_usize(src)..to_usize(src + len),
                });
                logical = piece_end;
                src += len;
                r += 1;
            }
            k += 1;
        }
    }

    /// Total bytes all placements of all tracks of the track set add up to
    /// (= object size).
    pub fn object_size(&self) -> u64 {
        self.object_size
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Geometry, MapExtent};
    use super::*;

    fn vol(name: &str, block: u32, track: u32, size: u64) -> VolumeRef {
        VolumeRef {
            name: name.into(),
            geometry: Geometry {
                block_size: block,
                track_size: track,
            },
            size,
        }
    }
    fn ext(volume: &str, offset: u64, length: u64) -> ObjectExtent {
        ObjectExtent {
            volume: volume.into(),
            offset,
            length,
        }
    }
    fn ta(volume: u16, track: u64) -> TrackAddr {
        TrackAddr { volume, track }
    }
    fn pl(target: DestTarget, offset: u64, data: Range<usize>) -> Placement {
        Placement { target, offset, data }
    }

    /// FIG. 17-like: 1 KiB blocks, 3 blocks (3 KiB) per track.
    fn fig17() -> AbsMap {
        let v = [vol("n", 1024, 3072, 7 * 3072), vol("o", 1024, 3072, 6 * 3072 + 1024)];
        AbsMap::from_extents(
            &v,
            &[
                ext("n", 3072, 3072),            // all of track 1
                ext("n", 3 * 3072, 1024),        // first block of track 3
                ext("o", 6 * 3072, 1024),        // the short last track of o
                ext("n", 4 * 3072 + 2048, 3072), // last block of track 4, first two of track 5
                ext("o", 1024, 1024),            // middle block of o's track 0
            ],
        )
        .unwrap()
    }

    #[test]
    fn original_and_file_tables() {
        let m = fig17();
        let o = RemapTable::original(&m);
        o.validate().unwrap();
        assert_eq!(o.volumes, m.volumes);
        assert_eq!(o.extents.len(), m.extents.len());
        assert_eq!(
            o.extents[1],
            RemapExtent {
                logical_offset: 3072,
                length: 1024,
                target: DestTarget::Volume(0),
                offset: 9216
            }
        );
        let f = RemapTable::to_file(&m);
        f.validate().unwrap();
        assert!(f.volumes.is_empty());
        assert_eq!(
            f.extents,
            [RemapExtent {
                logical_offset: 0,
                length: m.object_size,
                target: DestTarget::File,
                offset: 0
            }]
        );
    }

    #[test]
    fn to_volumes_splits_at_both_boundaries_and_drops_unused_volumes() {
        let m = fig17(); // 3072 | 1024 | 1024 | 3072 | 1024 = 9216 bytes
        assert_eq!(m.object_size, 9216);
        let dv = [
            vol("x", 512, 4096, 1 << 20),
            vol("y", 4096, 4096, 1 << 20),
            vol("z", 512, 512, 1 << 20),
        ];
        let t = RemapTable::to_volumes(&m, &dv, &[ext("x", 0, 4608), ext("y", 8192, 8192), ext("z", 0, 512)]).unwrap();
        t.validate().unwrap();
        assert_eq!(
            t.volumes.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        let want = [
            (0, 3072, 0, 0),
            (3072, 1024, 0, 3072),
            (4096, 512, 0, 4096), // x ends inside the third source extent
            (4608, 512, 1, 8192),
            (5120, 3072, 1, 8704),
            (8192, 1024, 1, 11776),
        ];
        let got: Vec<_> = t
            .extents
            .iter()
            .map(|e| {
                let DestTarget::Volume(v) = e.target else { panic!() };
                (e.logical_offset, e.length, v, e.offset)
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn to_volumes_errors() {
        let m = fig17();
        let dv = [vol("x", 512, 4096, 1 << 20), vol("y", 4096, 4096, 16384)];
        assert_eq!(
            RemapTable::to_volumes(&m, &dv, &[ext("x", 0, 4096), ext("y", 0, 4096)]),
            Err(AbsError::AllocationTooSmall {
                allocated: 8192,
                needed: 9216
            })
        );
        assert_eq!(
            RemapTable::to_volumes(&m, &dv, &[]),
            Err(AbsError::AllocationTooSmall {
                allocated: 0,
                needed: 9216
            })
        );
        assert_eq!(
            RemapTable::to_volumes(&m, &dv, &[ext("q", 0, 16384)]),
            Err(AbsError::UnknownVolume("q".into()))
        );
        assert!(matches!(
            RemapTable::to_volumes(&m, &dv, &[ext("y", 512, 8192)]),
            Err(AbsError::Unaligned {
                index: 0,
                block_size: 4096,
                ..
            })
        ));
        assert!(matches!(
            RemapTable::to_volumes(&m, &dv, &[ext("y", 8192, 16384)]),
            Err(AbsError::OutOfBounds { index: 0, .. })
        ));
        assert!(matches!(
            RemapTable::to_volumes(&m, &dv, &[ext("x", 0, 8192), ext("x", 4096, 8192)]),
            Err(AbsError::Overlap {
                first: 0,
                second: 1,
                ..
            })
        ));
        let bad = [vol("g", 512, 1000, 1 << 20)];
        assert!(matches!(
            RemapTable::to_volumes(&m, &bad, &[ext("g", 0, 16384)]),
            Err(AbsError::Geometry { .. })
        ));
        let mut broken = m.clone();
        broken.object_size += 1;
        assert!(matches!(
            RemapTable::to_volumes(&broken, &dv, &[ext("x", 0, 16384)]),
            Err(AbsError::Malformed(_))
        ));
    }

    #[test]
    fn validate_rejects_each_defect() {
        let m = fig17();
        let dv = [vol("x", 512, 4096, 1 << 20), vol("y", 4096, 4096, 1 << 20)];
        let good = RemapTable::to_volumes(&m, &dv, &[ext("x", 0, 4608), ext("y", 8192, 8192)]).unwrap();
        good.validate().unwrap();
        let check = |f: &dyn Fn(&mut RemapTable), want: &dyn Fn(&AbsError) -> bool| {
            let mut t = good.clone();
            f(&mut t);
            let r = t.validate();
            assert!(matches!(&r, Err(e) if want(e)), "{r:?}");
        };
        check(&|t| t.extents[0].target = DestTarget::Volume(2), &|e| {
            matches!(e, AbsError::VolumeIndex { index: 2, count: 2 })
        });
        check(&|t| t.extents[2].logical_offset += 1, &|e| {
            matches!(e, AbsError::Malformed(_))
        });
        check(&|t| t.extents.swap(1, 2), &|e| matches!(e, AbsError::Malformed(_)));
        check(&|t| t.object_size -= 1, &|e| matches!(e, AbsError::Malformed(_)));
        check(&|t| t.extents[1].length = 0, &|e| {
            matches!(e, AbsError::EmptyExtent { index: 1 })
        });
        check(&|t| t.extents[3].offset = (1 << 20) - 256, &|e| {
            matches!(e, AbsError::OutOfBounds { index: 3, .. })
        });
        check(&|t| t.extents[3].offset = u64::MAX, &|e| {
            matches!(e, AbsError::OutOfBounds { index: 3, .. })
        });
        check(&|t| t.extents[4].offset = 8192, &|e| {
            matches!(
                e,
                AbsError::Overlap {
                    first: 3,
                    second: 4,
                    ..
                }
            )
        });
        check(&|t| t.volumes[0].geometry.block_size = 0, &|e| {
            matches!(e, AbsError::Geometry { .. })
        });
        check(&|t| t.volumes[1].name = "x".into(), &|e| {
            matches!(e, AbsError::Malformed(_))
        });
        check(&|t| t.extents.clear(), &|e| matches!(e, AbsError::EmptyObject));
        check(
            &|t| {
                t.extents[0].target = DestTarget::File;
                t.extents[0].offset = u64::MAX - 10;
            },
            &|e| matches!(e, AbsError::Malformed(_)),
        );
        check(
            &|t| {
                t.extents[0].target = DestTarget::File;
                t.extents[1].target = DestTarget::File;
                t.extents[1].offset = 100;
            },
            &|e| {
                matches!(
                    e,
                    AbsError::Overlap {
                        first: 0,
                        second: 1,
                        ..
                    }
                )
            },
        );
        check(
            &|t| {
                t.volumes[0].size = u64::MAX;
                t.extents[5].length = u64::MAX - 8192;
            },
            &|e| matches!(e, AbsError::OutOfBounds { .. }),
        );
        check(
            &|t| {
                t.volumes[1].size = u64::MAX;
                t.extents[5].length = u64::MAX - 20000;
                t.extents[5].offset = 0;
                t.extents.push(RemapExtent {
                    logical_offset: 8192u64.wrapping_add(u64::MAX - 20000),
                    length: 1 << 20,
                    target: DestTarget::File,
                    offset: 0,
                });
            },
            &|e| matches!(e, AbsError::Malformed(_)),
        );
    }

    #[test]
    fn places_only_the_object_bytes_of_a_track() {
        let m = fig17();
        let p = Placer::new(&m, &RemapTable::to_file(&m)).unwrap();
        assert_eq!(p.object_size(), 9216);
        let f = DestTarget::File;
        assert_eq!(p.place(ta(0, 1), 3072), [pl(f, 0, 0..3072)]);
        assert_eq!(p.place(ta(0, 3), 3072), [pl(f, 3072, 0..1024)]);
        assert_eq!(p.place(ta(0, 4), 3072), [pl(f, 5120, 2048..3072)]);
        assert_eq!(p.place(ta(0, 5), 3072), [pl(f, 6144, 0..2048)]);
        assert_eq!(p.place(ta(1, 0), 3072), [pl(f, 8192, 1024..2048)]);
        assert_eq!(p.place(ta(1, 6), 1024), [pl(f, 4096, 0..1024)]);
        // Tracks without object bytes, out of range, unknown volume.
        assert!(p.place(ta(0, 0), 3072).is_empty());
        assert!(p.place(ta(0, 2), 3072).is_empty());
        assert!(p.place(ta(0, 7), 3072).is_empty());
        assert!(p.place(ta(1, 7), 3072).is_empty());
        assert!(p.place(ta(2, 0), 3072).is_empty());
        assert!(p.place(ta(0, u64::MAX), 3072).is_empty());
        // A short read places only what it has; a long buffer not past the track.
        assert_eq!(p.place(ta(0, 1), 1500), [pl(f, 0, 0..1500)]);
        assert_eq!(p.place(ta(0, 5), 1 << 20), [pl(f, 6144, 0..2048)]);
        assert_eq!(p.place(ta(1, 6), 3072), [pl(f, 4096, 0..1024)]);
        assert!(p.place(ta(0, 4), 1000).is_empty());
    }

    #[test]
    fn placements_split_at_remap_boundaries() {
        let m = fig17();
        let dv = [vol("x", 512, 4096, 1 << 20), vol("y", 512, 4096, 1 << 20)];
        // Destination in 512-byte pieces alternating between x and y.
        let alloc: Vec<_> = (0..18u64)
            .map(|i| ext(if i % 2 == 0 { "x" } else { "y" }, 4096 + i * 512, 512))
            .collect();
        let t = RemapTable::to_volumes(&m, &dv, &alloc).unwrap();
        let p = Placer::new(&m, &t).unwrap();
        let got = p.place(ta(0, 1), 3072);
        assert_eq!(
            got,
            (0..6u64)
                .map(|i| pl(
                    DestTarget::Volume((i % 2) as u16),
                    4096 + i * 512,
                    (i * 512) as usize..((i + 1) * 512) as usize
                ))
                .collect::<Vec<_>>()
        );
        // Track 4 holds logical 5120..6144: the 11th and 12th pieces.
        assert_eq!(
            p.place(ta(0, 4), 3072),
            [
                pl(DestTarget::Volume(0), 4096 + 10 * 512, 2048..2560),
                pl(DestTarget::Volume(1), 4096 + 11 * 512, 2560..3072)
            ]
        );
        // A remap extent may span several source extents (original layout coalesced elsewhere).
        let one = RemapTable {
            volumes: dv[..1].to_vec(),
            extents: vec![RemapExtent {
                logical_offset: 0,
                length: 9216,
                target: DestTarget::Volume(0),
                offset: 512,
            }],
            object_size: 9216,
        };
        let p = Placer::new(&m, &one).unwrap();
        assert_eq!(
            p.place(ta(0, 5), 3072),
            [pl(DestTarget::Volume(0), 512 + 6144, 0..2048)]
        );
    }

    #[test]
    fn placer_new_validates() {
        let m = fig17();
        let mut t = RemapTable::to_file(&m);
        t.object_size += 1;
        t.extents[0].length += 1;
        assert_eq!(
            Placer::new(&m, &t).err(),
            Some(AbsError::SizeMismatch { map: 9216, remap: 9217 })
        );
        let mut bad = m.clone();
        bad.extents[0].volume = 7;
        assert!(matches!(
            Placer::new(&bad, &RemapTable::to_file(&m)),
            Err(AbsError::VolumeIndex { .. })
        ));
        t.extents.clear();
        assert_eq!(Placer::new(&m, &t).err(), Some(AbsError::EmptyObject));
    }

    #[test]
    fn uncoalesced_map_is_placed_correctly() {
        // Physically adjacent but logically reversed extents on one track.
        let v = [vol("a", 512, 2048, 8192)];
        let m = AbsMap::from_extents(&v, &[ext("a", 1024, 512), ext("a", 512, 512), ext("a", 2048, 2048)]).unwrap();
        assert_eq!(
            m.extents[..2],
            [
                MapExtent {
                    logical_offset: 0,
                    length: 512,
                    volume: 0,
                    volume_offset: 1024
                },
                MapExtent {
                    logical_offset: 512,
                    length: 512,
                    volume: 0,
                    volume_offset: 512
                },
            ]
        );
        let p = Placer::new(&m, &RemapTable::to_file(&m)).unwrap();
        let f = DestTarget::File;
        assert_eq!(p.place(ta(0, 0), 2048), [pl(f, 512, 512..1024), pl(f, 0, 1024..1536)]);
        assert_eq!(p.place(ta(0, 1), 2048), [pl(f, 1024, 0..2048)]);
    }
}
