//! The ABS map: logical byte ranges of an object → (volume, byte offset).

use std::collections::HashMap;

use rkyv::{Archive, Deserialize, Serialize};

use super::{AbsError, TrackAddr, TrackRun, TrackSet};

/// Geometry of a volume: the block (logical unit) and track (copy unit) sizes.
///
/// Invariant: `block_size > 0`, `track_size > 0`, `track_size % block_size == 0`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Size in bytes of a block, the unit extents are aligned to.
    pub block_size: u32,
    /// Size in bytes of a track, the unit a backup copies.
    pub track_size: u32,
}

impl Geometry {
    /// Whether the invariant holds.
    pub fn is_valid(&self) -> bool {
        self.track_size > 0 && self.track_size.checked_rem(self.block_size) == Some(0)
    }
}

/// A volume as the map refers to it: name, geometry and size in bytes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VolumeRef {
    /// Name of the volume on its primary node.
    pub name: String,
    /// Block and track sizes.
    pub geometry: Geometry,
    /// Size in bytes (not necessarily a multiple of the track size).
    pub size: u64,
}

impl VolumeRef {
    /// Number of tracks of the volume (the last one may be short).
    pub fn track_count(&self) -> u64 {
        match self.geometry.track_size {
            0 => 0,
            ts => self.size.div_ceil(u64::from(ts)),
        }
    }
}

/// One piece of a logical object as the host describes it: `length` bytes at
/// byte `offset` of `volume`. A list of these in logical order is the object.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ObjectExtent {
    /// Name of the volume (see [`VolumeRef::name`]).
    pub volume: String,
    /// Byte offset on the volume.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// One extent of the map: logical bytes `[logical_offset, logical_offset +
/// length)` are at byte `volume_offset` of volume `volume` (an index into
/// [`AbsMap::volumes`]).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapExtent {
    /// First logical byte of the extent.
    pub logical_offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Index into [`AbsMap::volumes`].
    pub volume: u16,
    /// Byte offset on the volume.
    pub volume_offset: u64,
}

/// ABS metadata: the volumes involved and the extents in logical order
/// (contiguous, starting at 0, coalesced where adjacent on the same volume).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AbsMap {
    /// The volumes the object uses, in order of first use.
    pub volumes: Vec<VolumeRef>,
    /// The extents in logical order.
    pub extents: Vec<MapExtent>,
    /// Total size of the object in bytes (sum of the extent lengths).
    pub object_size: u64,
}

/// A byte range of the logical object: bytes `[offset, offset + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogicalRange {
    /// First logical byte of the range.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// Most volumes a map or remap table may list (indices are `u16`).
pub(super) const MAX_VOLUMES: usize = u16::MAX as usize + 1;

/// Checks a volume's geometry.
pub(super) fn check_geometry(v: &VolumeRef) -> Result<(), AbsError> {
    if v.geometry.is_valid() {
        Ok(())
    } else {
        Err(AbsError::Geometry {
            volume: v.name.clone(),
            block_size: v.geometry.block_size,
            track_size: v.geometry.track_size,
        })
    }
}

/// Checks a volume list received from elsewhere: at most [`MAX_VOLUMES`],
/// valid geometries, distinct names.
pub(super) fn check_volumes(volumes: &[VolumeRef]) -> Result<(), AbsError> {
    if volumes.len() > MAX_VOLUMES {
        return Err(AbsError::Malformed(format!(
            "{} volumes, at most {MAX_VOLUMES} allowed",
            volumes.len()
        )));
    }
    let mut names = HashMap::with_capacity(volumes.len());
    for v in volumes {
        check_geometry(v)?;
        if names.insert(v.name.as_str(), ()).is_some() {
            return Err(AbsError::Malformed(format!("volume {:?} listed twice", v.name)));
        }
    }
    Ok(())
}

/// Checks that `[offset, offset + length)` lies inside `v` (no overflow).
pub(super) fn check_bounds(index: usize, v: &VolumeRef, offset: u64, length: u64) -> Result<(), AbsError> {
    match offset.checked_add(length) {
        Some(end) if end <= v.size => Ok(()),
        _ => Err(AbsError::OutOfBounds {
            index,
            volume: v.name.clone(),
            offset,
            length,
            size: v.size,
        }),
    }
}

/// Checks a non-empty, block-aligned extent inside `v` (geometry already valid).
pub(super) fn check_extent(index: usize, v: &VolumeRef, offset: u64, length: u64) -> Result<(), AbsError> {
    if length == 0 {
        return Err(AbsError::EmptyExtent { index });
    }
    let bs = u64::from(v.geometry.block_size);
    if offset.checked_rem(bs) != Some(0) || length.checked_rem(bs) != Some(0) {
        return Err(AbsError::Unaligned {
            index,
            volume: v.name.clone(),
            offset,
            length,
            block_size: v.geometry.block_size,
        });
    }
    check_bounds(index, v, offset, length)
}

/// One extent for the overlap check: ordering key of its volume (or
/// target), offset, length (end known not to overflow) and its index in the
/// list as given.
pub(super) struct Span {
    pub key: u32,
    pub offset: u64,
    pub length: u64,
    pub index: usize,
}

/// Finds two spans of the same key sharing bytes (O(n log n)); `name` turns
/// a key into the volume name for the error.
pub(super) fn check_overlaps(mut spans: Vec<Span>, name: impl Fn(u32) -> String) -> Result<(), AbsError> {
    spans.sort_unstable_by_key(|s| (s.key, s.offset));
    for w in spans.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        // If any two spans of a key overlap, two neighbours in this order do.
        if a.key == b.key && a.offset + a.length > b.offset {
            return Err(AbsError::Overlap {
                first: a.index.min(b.index),
                second: a.index.max(b.index),
                volume: name(a.key),
            });
        }
    }
    Ok(())
}

impl AbsMap {
    /// Build the map of an object given as extents in logical order on the
    /// given volumes. Validates: every volume is known and has a valid
    /// geometry, every extent is non-empty, block-aligned (offset and length
    /// multiples of its volume's block size), inside its volume, and no two
    /// extents overlap. Adjacent extents on the same volume are coalesced.
    /// Only the volumes actually used are kept, in order of first use.
    ///
    /// Volume names in `volumes` must be distinct. Errors name extents by
    /// their index in `extents`. Cost: O(n log n) time, O(n) memory for n
    /// extents.
    pub fn from_extents(volumes: &[VolumeRef], extents: &[ObjectExtent]) -> Result<AbsMap, AbsError> {
        if extents.is_empty() {
            return Err(AbsError::EmptyObject);
        }
        let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(volumes.len());
        for (i, v) in volumes.iter().enumerate() {
            if by_name.insert(v.name.as_str(), i).is_some() {
                return Err(AbsError::Malformed(format!("volume {:?} listed twice", v.name)));
            }
        }
        // Index in `volumes` → index in the map, for the volumes used so far.
        let mut slot: HashMap<usize, u16> = HashMap::new();
        let mut used: Vec<VolumeRef> = Vec::new();
        let mut out: Vec<MapExtent> = Vec::new();
        let mut spans = Vec::with_capacity(extents.len());
        let mut logical = 0u64;
        for (i, e) in extents.iter().enumerate() {
            let vi = *by_name
                .get(e.volume.as_str())
                .ok_or_else(|| AbsError::UnknownVolume(e.volume.clone()))?;
            let v = &volumes[vi];
            check_geometry(v)?;
            check_extent(i, v, e.offset, e.length)?;
            let idx = match slot.get(&vi) {
                Some(&idx) => idx,
                None => {
                    let idx = u16::try_from(used.len())
                        .map_err(|_| AbsError::Malformed(format!("more than {MAX_VOLUMES} volumes used")))?;
                    slot.insert(vi, idx);
                    used.push(v.clone());
                    idx
                }
            };
            spans.push(Span {
                key: u32::from(idx),
                offset: e.offset,
                length: e.length,
                index: i,
            });
            match out.last_mut() {
                Some(last) if last.volume == idx && last.volume_offset + last.length == e.offset => {
                    last.length += e.length;
                }
                _ => out.push(MapExtent {
                    logical_offset: logical,
                    length: e.length,
                    volume: idx,
                    volume_offset: e.offset,
                }),
            }
            logical = logical
                .checked_add(e.length)
                .ok_or_else(|| AbsError::Malformed("object size overflows 64 bits".into()))?;
        }
        check_overlaps(spans, |k| used[k as usize].name.clone())?;
        out.shrink_to_fit();
        Ok(AbsMap {
            volumes: used,
            extents: out,
            object_size: logical,
        })
    }

    /// Check a map received from the network or read from tape: volume
    /// indices in range, geometries valid, extents contiguous from 0 in
    /// logical order and summing to `object_size`, inside their volumes.
    ///
    /// Also refused: duplicate volume names, more than 65536 volumes, empty
    /// or unaligned extents, extents sharing bytes of a volume, an empty
    /// object. Never panics, whatever the field values.
    pub fn validate(&self) -> Result<(), AbsError> {
        check_volumes(&self.volumes)?;
        if self.extents.is_empty() {
            return Err(AbsError::EmptyObject);
        }
        let mut logical = 0u64;
        let mut spans = Vec::with_capacity(self.extents.len());
        for (i, e) in self.extents.iter().enumerate() {
            let v = self.volumes.get(usize::from(e.volume)).ok_or(AbsError::VolumeIndex {
                index: e.volume,
                count: self.volumes.len(),
            })?;
            if e.logical_offset != logical {
                return Err(AbsError::Malformed(format!(
                    "extent {i} starts at logical offset {} but the extents before it end at {logical}",
                    e.logical_offset
                )));
            }
            check_extent(i, v, e.volume_offset, e.length)?;
            logical = logical
                .checked_add(e.length)
                .ok_or_else(|| AbsError::Malformed("object size overflows 64 bits".into()))?;
            spans.push(Span {
                key: u32::from(e.volume),
                offset: e.volume_offset,
                length: e.length,
                index: i,
            });
        }
        if logical != self.object_size {
            return Err(AbsError::Malformed(format!(
                "extents add up to {logical} bytes but object_size is {}",
                self.object_size
            )));
        }
        check_overlaps(spans, |k| self.volumes[k as usize].name.clone())
    }

    /// The tracks holding any byte of the object, at track granularity
    /// (a track may also hold bytes of other objects, FIG. 17/18).
    ///
    /// One run per extent before normalisation, so O(n log n) for n extents
    /// whatever the object size. Extents of an invalid map that cannot be
    /// placed on a track (bad volume index or geometry, empty) are skipped.
    pub fn track_set(&self) -> TrackSet {
        TrackSet::from_runs(self.extents.iter().filter_map(|e| {
            let v = self.volumes.get(usize::from(e.volume))?;
            let ts = u64::from(v.geometry.track_size);
            if ts == 0 || e.length == 0 {
                return None;
            }
            let first = e.volume_offset / ts;
            let last = e.volume_offset.saturating_add(e.length - 1) / ts;
            Some(TrackRun {
                volume: e.volume,
                first,
                count: last - first + 1,
            })
        }))
    }

    /// The object's logical bytes that lie in `tracks` (FIG. 22: physical
    /// changes translated to logical blocks), sorted by offset,
    /// non-overlapping and coalesced (no two ranges adjacent). Tracks outside
    /// the map, and the bytes of a track that belong to other objects, are
    /// ignored.
    ///
    /// For each extent, a binary search finds the first run of its volume
    /// that reaches its tracks; the runs overlapping the extent are
    /// intersected with its volume bytes and translated back to logical
    /// offsets. Cost: O(E × log R + output) for E extents and R runs, never
    /// per block or byte (plus a sort of the output if the extents of an
    /// invalid map are out of logical order).
    ///
    /// Never panics: extents of an invalid map whose volume index has no
    /// volume, whose track size is 0 or that are empty are skipped, the
    /// arithmetic saturates, and ranges are clipped to `[0, object_size)`.
    pub fn logical_ranges(&self, tracks: &TrackSet) -> Vec<LogicalRange> {
        let runs = tracks.runs();
        let mut out: Vec<LogicalRange> = Vec::new();
        for e in &self.extents {
            let Some(v) = self.volumes.get(usize::from(e.volume)) else {
                continue;
            };
            let ts = u64::from(v.geometry.track_size);
            if ts == 0 || e.length == 0 {
                continue;
            }
            let start = e.volume_offset;
            let end = start.saturating_add(e.length);
            if end == start {
                continue;
            }
            let first = start / ts;
            let last = (end - 1) / ts;
            // First run of this volume ending after `first` (runs are sorted
            // by volume then track and do not overlap, so their ends are too).
            let i = runs.partition_point(|r| (r.volume, r.first.saturating_add(r.count)) <= (e.volume, first));
            for r in runs.get(i..).unwrap_or(&[]) {
                if r.volume != e.volume || r.first > last {
                    break;
                }
                let a = r.first.max(first).saturating_mul(ts).max(start);
                let b = r.first.saturating_add(r.count).saturating_mul(ts).min(end);
                if a >= b {
                    continue;
                }
                let lo = e.logical_offset.saturating_add(a - start).min(self.object_size);
                let hi = e.logical_offset.saturating_add(b - start).min(self.object_size);
                if lo < hi {
                    out.push(LogicalRange {
                        offset: lo,
                        length: hi - lo,
                    });
                }
            }
        }
        // A valid map's extents are in logical order, so this is already sorted.
        if !out.is_sorted_by_key(|r| r.offset) {
            out.sort_unstable_by_key(|r| r.offset);
        }
        let mut merged: Vec<LogicalRange> = Vec::with_capacity(out.len());
        for r in out {
            match merged.last_mut() {
                // Ends cannot overflow: every range is clipped to object_size.
                Some(last) if r.offset <= last.offset + last.length => {
                    let end = (last.offset + last.length).max(r.offset + r.length);
                    last.length = end - last.offset;
                }
                _ => merged.push(r),
            }
        }
        merged
    }

    /// The tracks holding any byte of the logical `ranges` (the inverse of
    /// [`AbsMap::logical_ranges`]: for tracks of the map's own
    /// [`AbsMap::track_set`], `tracks_of_ranges(logical_ranges(t)) == t`).
    /// A differential's metadata records its changed logical ranges; a
    /// catalog rebuilt from tape turns them back into the tracks it holds.
    ///
    /// For each range, a binary search finds the first extent reaching it
    /// (a valid map's extents are in logical order); cost O(R × log E +
    /// output runs). Never panics: on an invalid map, extents with no
    /// volume or a zero track size are skipped and the arithmetic saturates.
    pub fn tracks_of_ranges(&self, ranges: &[LogicalRange]) -> TrackSet {
        let mut runs = Vec::new();
        let sorted = self.extents.is_sorted_by_key(|e| e.logical_offset);
        for r in ranges {
            let end = r.offset.saturating_add(r.length);
            let start_at = if sorted {
                self.extents
                    .partition_point(|e| e.logical_offset.saturating_add(e.length) <= r.offset)
            } else {
                0
            };
            for e in self.extents.get(start_at..).unwrap_or(&[]) {
                if sorted && e.logical_offset >= end {
                    break;
                }
                let a = e.logical_offset.max(r.offset);
                let b = e.logical_offset.saturating_add(e.length).min(end);
                let Some(v) = self.volumes.get(usize::from(e.volume)) else {
                    continue;
                };
                let ts = u64::from(v.geometry.track_size);
                if a >= b || ts == 0 {
                    continue;
                }
                let first = e.volume_offset.saturating_add(a - e.logical_offset) / ts;
                let last = e.volume_offset.saturating_add(b - 1 - e.logical_offset) / ts;
                runs.push(TrackRun {
                    volume: e.volume,
                    first,
                    count: last - first + 1,
                });
            }
        }
        TrackSet::from_runs(runs)
    }

    /// Number of logical bytes in `tracks`: the sum of the lengths of
    /// [`AbsMap::logical_ranges`] (at most `object_size`), at the same cost.
    pub fn logical_bytes(&self, tracks: &TrackSet) -> u64 {
        self.logical_ranges(tracks)
            .iter()
            .fold(0u64, |n, r| n.saturating_add(r.length))
    }

    /// The largest track size of the map's volumes, in bytes (0: none).
    pub fn largest_track(&self) -> usize {
        self.volumes
            .iter()
            .map(|v| crate::num::to_usize(u64::from(v.geometry.track_size)))
            .max()
            .unwrap_or(0)
    }

    /// Byte offset and length of a track on its volume (the last track of a
    /// volume may be short).
    ///
    /// Errors: [`AbsError::VolumeIndex`], [`AbsError::Geometry`],
    /// [`AbsError::TrackOutOfRange`].
    pub fn track_extent(&self, track: TrackAddr) -> Result<(u64, u64), AbsError> {
        let v = self
            .volumes
            .get(usize::from(track.volume))
            .ok_or(AbsError::VolumeIndex {
                index: track.volume,
                count: self.volumes.len(),
            })?;
        check_geometry(v)?;
        let tracks = v.track_count();
        if track.track >= tracks {
            return Err(AbsError::TrackOutOfRange {
                volume: track.volume,
                track: track.track,
                tracks,
            });
        }
        let ts = u64::from(v.geometry.track_size);
        // track < ceil(size / ts), so track * ts < size: no overflow.
        let offset = track.track * ts;
        Ok((offset, ts.min(v.size - offset)))
    }
}

#[cfg(test)]
mod tests {
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
    fn vols() -> Vec<VolumeRef> {
        vec![
            vol("a", 512, 4096, 1 << 20),
            vol("b", 4096, 65536, 10 * 65536 + 4096),
            vol("c", 512, 1024, 1 << 20),
        ]
    }

    #[test]
    fn builds_keeps_used_volumes_in_first_use_order() {
        let m = AbsMap::from_extents(&vols(), &[ext("c", 0, 512), ext("a", 1024, 512), ext("c", 4096, 1024)]).unwrap();
        assert_eq!(
            m.volumes.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["c", "a"]
        );
        assert_eq!(
            m.extents,
            [
                MapExtent {
                    logical_offset: 0,
                    length: 512,
                    volume: 0,
                    volume_offset: 0
                },
                MapExtent {
                    logical_offset: 512,
                    length: 512,
                    volume: 1,
                    volume_offset: 1024
                },
                MapExtent {
                    logical_offset: 1024,
                    length: 1024,
                    volume: 0,
                    volume_offset: 4096
                },
            ]
        );
        assert_eq!(m.object_size, 2048);
        m.validate().unwrap();
    }

    #[test]
    fn coalesces_adjacent_extents() {
        let pieces: Vec<_> = (0..1000).map(|i| ext("a", 8192 + i * 512, 512)).collect();
        let m = AbsMap::from_extents(&vols(), &pieces).unwrap();
        assert_eq!(
            m.extents,
            [MapExtent {
                logical_offset: 0,
                length: 512_000,
                volume: 0,
                volume_offset: 8192
            }]
        );
        assert_eq!(m.object_size, 512_000);
        m.validate().unwrap();
    }

    #[test]
    fn does_not_coalesce_across_volumes_or_out_of_order() {
        // Physically adjacent but logically reversed: two extents.
        let m = AbsMap::from_extents(&vols(), &[ext("a", 512, 512), ext("a", 0, 512)]).unwrap();
        assert_eq!(m.extents.len(), 2);
        // Same offsets on different volumes: not adjacent.
        let m = AbsMap::from_extents(&vols(), &[ext("a", 0, 512), ext("c", 512, 512)]).unwrap();
        assert_eq!(m.extents.len(), 2);
        // Physically adjacent with another volume in between: three extents.
        let m = AbsMap::from_extents(&vols(), &[ext("a", 0, 512), ext("c", 0, 512), ext("a", 512, 512)]).unwrap();
        assert_eq!(m.extents.len(), 3);
        // A gap on the same volume: not adjacent.
        let m = AbsMap::from_extents(&vols(), &[ext("a", 0, 512), ext("a", 1024, 512)]).unwrap();
        assert_eq!(m.extents.len(), 2);
    }

    #[test]
    fn rejects_unknown_volume() {
        assert_eq!(
            AbsMap::from_extents(&vols(), &[ext("a", 0, 512), ext("zz", 0, 512)]),
            Err(AbsError::UnknownVolume("zz".into()))
        );
    }

    #[test]
    fn rejects_bad_geometry() {
        for (b, t) in [(0, 4096), (512, 0), (512, 1000), (4096, 512), (0, 0)] {
            let v = [vol("x", b, t, 1 << 20)];
            let r = AbsMap::from_extents(&v, &[ext("x", 0, 4096)]);
            assert_eq!(
                r,
                Err(AbsError::Geometry {
                    volume: "x".into(),
                    block_size: b,
                    track_size: t
                }),
                "{b}/{t}"
            );
        }
        // An unused volume with a bad geometry is not looked at.
        let mut v = vols();
        v.push(vol("bad", 0, 0, 0));
        AbsMap::from_extents(&v, &[ext("a", 0, 512)]).unwrap();
    }

    #[test]
    fn rejects_empty_extent_and_empty_object() {
        assert_eq!(
            AbsMap::from_extents(&vols(), &[ext("a", 0, 512), ext("a", 4096, 0)]),
            Err(AbsError::EmptyExtent { index: 1 })
        );
        assert_eq!(AbsMap::from_extents(&vols(), &[]), Err(AbsError::EmptyObject));
    }

    #[test]
    fn rejects_unaligned() {
        assert!(matches!(
            AbsMap::from_extents(&vols(), &[ext("a", 100, 512)]),
            Err(AbsError::Unaligned {
                index: 0,
                offset: 100,
                length: 512,
                block_size: 512,
                ..
            })
        ));
        assert!(matches!(
            AbsMap::from_extents(&vols(), &[ext("a", 0, 512), ext("b", 512, 4096)]),
            Err(AbsError::Unaligned {
                index: 1,
                block_size: 4096,
                ..
            })
        ));
        assert!(matches!(
            AbsMap::from_extents(&vols(), &[ext("b", 4096, 4097)]),
            Err(AbsError::Unaligned { index: 0, .. })
        ));
    }

    #[test]
    fn rejects_out_of_bounds_and_overflow() {
        let size = 10 * 65536 + 4096;
        // The last (short) track is usable up to the end.
        AbsMap::from_extents(&vols(), &[ext("b", size - 4096, 4096)]).unwrap();
        assert!(matches!(
            AbsMap::from_extents(&vols(), &[ext("b", size - 4096, 8192)]),
            Err(AbsError::OutOfBounds { index: 0, size: s, .. }) if s == size
        ));
        assert!(matches!(
            AbsMap::from_extents(&vols(), &[ext("b", size, 4096)]),
            Err(AbsError::OutOfBounds { .. })
        ));
        let top = u64::MAX - 4095; // aligned to 4096
        assert!(matches!(
            AbsMap::from_extents(&vols(), &[ext("b", top, 8192)]),
            Err(AbsError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn rejects_overlap() {
        assert_eq!(
            AbsMap::from_extents(&vols(), &[ext("a", 0, 4096), ext("c", 0, 512), ext("a", 1024, 512)]),
            Err(AbsError::Overlap {
                first: 0,
                second: 2,
                volume: "a".into()
            })
        );
        // Listed in reverse physical order.
        assert_eq!(
            AbsMap::from_extents(&vols(), &[ext("a", 2048, 1024), ext("a", 0, 2560)]),
            Err(AbsError::Overlap {
                first: 0,
                second: 1,
                volume: "a".into()
            })
        );
        // Duplicate extent.
        assert!(matches!(
            AbsMap::from_extents(&vols(), &[ext("c", 512, 512), ext("c", 512, 512)]),
            Err(AbsError::Overlap {
                first: 0,
                second: 1,
                ..
            })
        ));
    }

    #[test]
    fn rejects_duplicate_volume_names() {
        let v = [vol("a", 512, 4096, 1 << 20), vol("a", 512, 4096, 1 << 20)];
        assert!(matches!(
            AbsMap::from_extents(&v, &[ext("a", 0, 512)]),
            Err(AbsError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_object_size_overflow() {
        let big = u64::MAX - 511; // aligned to 512
        let v = [vol("x", 512, 512, u64::MAX), vol("y", 512, 512, u64::MAX)];
        let r = AbsMap::from_extents(&v, &[ext("x", 0, big), ext("y", 0, big)]);
        assert!(matches!(r, Err(AbsError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn track_set_and_track_extent() {
        // Volume b: 64 KiB tracks, 10 full tracks and one short one of 4 KiB.
        let m = AbsMap::from_extents(
            &vols(),
            &[
                ext("b", 65536 + 4096, 4096),     // track 1
                ext("b", 3 * 65536 - 4096, 8192), // tracks 2 and 3
                ext("a", 0, 512),                 // a: track 0
                ext("b", 10 * 65536, 4096),       // track 10 (short)
                ext("a", 4096 * 5, 4096 * 2),     // a: tracks 5, 6
            ],
        )
        .unwrap();
        assert_eq!(m.volumes[0].name, "b");
        let ts = m.track_set();
        assert_eq!(
            ts.runs(),
            &[
                TrackRun {
                    volume: 0,
                    first: 1,
                    count: 3
                },
                TrackRun {
                    volume: 0,
                    first: 10,
                    count: 1
                },
                TrackRun {
                    volume: 1,
                    first: 0,
                    count: 1
                },
                TrackRun {
                    volume: 1,
                    first: 5,
                    count: 2
                },
            ]
        );
        assert_eq!(ts.len(), 7);
        assert_eq!(m.track_extent(TrackAddr { volume: 0, track: 1 }), Ok((65536, 65536)));
        assert_eq!(m.track_extent(TrackAddr { volume: 0, track: 10 }), Ok((655360, 4096)));
        assert_eq!(
            m.track_extent(TrackAddr { volume: 0, track: 11 }),
            Err(AbsError::TrackOutOfRange {
                volume: 0,
                track: 11,
                tracks: 11
            })
        );
        assert_eq!(
            m.track_extent(TrackAddr { volume: 1, track: 255 }),
            Ok((255 * 4096, 4096))
        );
        assert!(matches!(
            m.track_extent(TrackAddr { volume: 1, track: 256 }),
            Err(AbsError::TrackOutOfRange { .. })
        ));
        assert!(matches!(
            m.track_extent(TrackAddr {
                volume: 1,
                track: u64::MAX
            }),
            Err(AbsError::TrackOutOfRange { .. })
        ));
        assert_eq!(
            m.track_extent(TrackAddr { volume: 2, track: 0 }),
            Err(AbsError::VolumeIndex { index: 2, count: 2 })
        );
    }

    fn good() -> AbsMap {
        AbsMap::from_extents(&vols(), &[ext("a", 0, 512), ext("b", 4096, 4096), ext("a", 8192, 1024)]).unwrap()
    }

    #[test]
    fn validate_accepts_built_maps_and_uncoalesced_ones() {
        good().validate().unwrap();
        let mut m = good();
        m.extents.push(MapExtent {
            logical_offset: m.object_size,
            length: 512,
            volume: 0,
            volume_offset: 9216,
        });
        m.object_size += 512;
        m.validate().unwrap();
    }

    #[test]
    fn validate_rejects_each_defect() {
        let check = |f: &dyn Fn(&mut AbsMap), want: &dyn Fn(&AbsError) -> bool| {
            let mut m = good();
            f(&mut m);
            let r = m.validate();
            assert!(matches!(&r, Err(e) if want(e)), "{r:?}");
        };
        check(&|m| m.extents[1].volume = 2, &|e| {
            matches!(e, AbsError::VolumeIndex { index: 2, count: 2 })
        });
        check(&|m| m.volumes[1].geometry.track_size = 100, &|e| {
            matches!(e, AbsError::Geometry { .. })
        });
        check(&|m| m.volumes[1].name = "a".into(), &|e| {
            matches!(e, AbsError::Malformed(_))
        });
        check(&|m| m.extents[1].logical_offset += 512, &|e| {
            matches!(e, AbsError::Malformed(_))
        });
        check(&|m| m.extents[0].logical_offset = 1, &|e| {
            matches!(e, AbsError::Malformed(_))
        });
        check(&|m| m.object_size += 1, &|e| matches!(e, AbsError::Malformed(_)));
        check(&|m| m.extents[1].length = 0, &|e| {
            matches!(e, AbsError::EmptyExtent { index: 1 })
        });
        check(&|m| m.extents[1].volume_offset = 100, &|e| {
            matches!(e, AbsError::Unaligned { index: 1, .. })
        });
        check(&|m| m.extents[2].volume_offset = (1 << 20) - 512, &|e| {
            matches!(e, AbsError::OutOfBounds { index: 2, .. })
        });
        check(&|m| m.extents[2].volume_offset = u64::MAX - 511, &|e| {
            matches!(e, AbsError::OutOfBounds { index: 2, .. })
        });
        check(&|m| m.extents[2].volume_offset = 0, &|e| {
            matches!(
                e,
                AbsError::Overlap {
                    first: 0,
                    second: 2,
                    ..
                }
            )
        });
        check(&|m| m.extents.clear(), &|e| matches!(e, AbsError::EmptyObject));
        check(
            &|m| {
                m.extents[2].length = u64::MAX - 511;
                m.volumes[0].size = u64::MAX;
                m.extents[2].volume_offset = 0;
                m.extents[0].volume_offset = u64::MAX - 511;
                m.extents[0].length = 0;
            },
            &|e| matches!(e, AbsError::EmptyExtent { index: 0 }),
        );
        check(
            &|m| {
                // Logical offsets overflow although each extent fits its volume.
                m.volumes[0].size = u64::MAX;
                m.volumes[1].size = u64::MAX;
                m.extents[1].volume_offset = 0;
                m.extents[1].length = u64::MAX - 4095;
                m.extents[2].logical_offset = 512 + (u64::MAX - 4095);
                m.extents[2].volume_offset = 4096;
                m.extents[2].length = 8192;
            },
            &|e| matches!(e, AbsError::Malformed(_)),
        );
    }

    fn lr(offset: u64, length: u64) -> LogicalRange {
        LogicalRange { offset, length }
    }
    fn tracks(runs: &[(u16, u64, u64)]) -> TrackSet {
        TrackSet::from_runs(
            runs.iter()
                .map(|&(volume, first, count)| TrackRun { volume, first, count }),
        )
    }

    #[test]
    fn logical_ranges_hand_example() {
        // Map volume 0 is b (64 KiB tracks), 1 is a (4 KiB tracks).
        let m = AbsMap::from_extents(
            &vols(),
            &[
                ext("b", 65536 + 4096, 8192),   // L [0, 8192): b track 1
                ext("a", 0, 8192),              // L [8192, 16384): a tracks 0, 1
                ext("b", 0, 4096),              // L [16384, 20480): b track 0
                ext("a", 3 * 4096 + 512, 8192), // L [20480, 28672): a tracks 3, 4, 5
            ],
        )
        .unwrap();
        assert_eq!(m.volumes[0].name, "b");
        assert_eq!(m.object_size, 28672);
        let set = tracks(&[
            (0, 0, 1),   // b track 0 → L [16384, 20480)
            (1, 1, 1),   // a track 1 → L [12288, 16384), adjacent to the above
            (1, 4, 2),   // a tracks 4, 5 → a bytes [16384, 20992) → L [24064, 28672)
            (1, 7, 100), // a tracks the object does not use
            (2, 0, 5),   // no such volume
        ]);
        assert_eq!(m.logical_ranges(&set), [lr(12288, 8192), lr(24064, 4608)]);
        assert_eq!(m.logical_bytes(&set), 8192 + 4608);
        // Track 3 of a holds the first 3584 bytes of the last extent.
        let set = tracks(&[(1, 3, 1), (0, 1, 1)]);
        assert_eq!(m.logical_ranges(&set), [lr(0, 8192), lr(20480, 3584)]);
        assert_eq!(m.logical_bytes(&set), 8192 + 3584);
    }

    #[test]
    fn logical_ranges_of_no_tracks_and_all_tracks() {
        let m = good();
        assert_eq!(m.logical_ranges(&TrackSet::default()), []);
        assert_eq!(m.logical_bytes(&TrackSet::default()), 0);
        let all = [lr(0, m.object_size)];
        assert_eq!(m.logical_ranges(&m.track_set()), all);
        let every = TrackSet::from_runs((0..m.volumes.len()).map(|i| TrackRun {
            volume: i as u16,
            first: 0,
            count: u64::MAX,
        }));
        assert_eq!(m.logical_ranges(&every), all);
        assert_eq!(m.logical_bytes(&every), m.object_size);
    }

    #[test]
    fn logical_ranges_of_garbage_do_not_panic() {
        let every = tracks(&[(0, 0, u64::MAX), (1, 0, u64::MAX), (9, 0, u64::MAX)]);
        let m = AbsMap {
            volumes: vec![vol("x", 0, 0, 5), vol("y", 1, 1, u64::MAX)],
            extents: vec![
                MapExtent {
                    logical_offset: u64::MAX,
                    length: u64::MAX,
                    volume: 1,
                    volume_offset: u64::MAX - 1,
                },
                MapExtent {
                    logical_offset: 0,
                    length: 5,
                    volume: 0,
                    volume_offset: 0,
                },
                MapExtent {
                    logical_offset: 0,
                    length: 5,
                    volume: 9,
                    volume_offset: 0,
                },
                MapExtent {
                    logical_offset: 3,
                    length: 4,
                    volume: 1,
                    volume_offset: 0,
                },
                MapExtent {
                    logical_offset: 1,
                    length: 0,
                    volume: 1,
                    volume_offset: 0,
                },
            ],
            object_size: 6,
        };
        // Out of logical order, clipped to object_size, still normalised.
        assert_eq!(m.logical_ranges(&every), [lr(3, 3)]);
        assert_eq!(m.logical_bytes(&every), 3);
    }

    #[test]
    fn track_set_of_garbage_does_not_panic() {
        let m = AbsMap {
            volumes: vec![vol("x", 0, 0, 5)],
            extents: vec![
                MapExtent {
                    logical_offset: 0,
                    length: u64::MAX,
                    volume: 0,
                    volume_offset: u64::MAX,
                },
                MapExtent {
                    logical_offset: 0,
                    length: 5,
                    volume: 9,
                    volume_offset: 0,
                },
            ],
            object_size: 1,
        };
        assert!(m.track_set().is_empty());
        assert!(m.track_extent(TrackAddr { volume: 0, track: 0 }).is_err());
        let m = AbsMap {
            volumes: vec![vol("x", 1, 1, u64::MAX)],
            extents: vec![MapExtent {
                logical_offset: 0,
                length: u64::MAX,
                volume: 0,
                volume_offset: u64::MAX - 1,
            }],
            object_size: 1,
        };
        assert_eq!(
            m.track_set().runs(),
            &[TrackRun {
                volume: 0,
                first: u64::MAX - 1,
                count: 1
            }]
        );
    }
}
