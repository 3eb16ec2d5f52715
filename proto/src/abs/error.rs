use thiserror::Error;

/// Why an object description, map or remap table was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AbsError {
    /// An extent names a volume that is not in the volume list.
    #[error("unknown volume {0:?}")]
    UnknownVolume(String),
    /// A volume index (in a map, remap table or track address) is out of range.
    #[error("volume index {index} out of range: the map has {count} volumes")]
    VolumeIndex { index: u16, count: usize },
    /// A volume's geometry is invalid.
    #[error("invalid geometry for volume {volume:?}: block size {block_size}, track size {track_size} (both > 0, track size a multiple of block size)")]
    Geometry {
        volume: String,
        block_size: u32,
        track_size: u32,
    },
    /// An extent's offset or length is not a multiple of its volume's block size.
    #[error("extent {index} on volume {volume:?} (offset {offset}, length {length}) is not aligned to the block size {block_size}")]
    Unaligned {
        index: usize,
        volume: String,
        offset: u64,
        length: u64,
        block_size: u32,
    },
    /// An extent runs past the end of its volume (or its end overflows).
    #[error("extent {index} on volume {volume:?} (offset {offset}, length {length}) runs past the end of the volume ({size} bytes)")]
    OutOfBounds {
        index: usize,
        volume: String,
        offset: u64,
        length: u64,
        size: u64,
    },
    /// An extent has length 0.
    #[error("extent {index} has length 0")]
    EmptyExtent { index: usize },
    /// Two extents (indices into the list as given) share bytes of a volume.
    #[error("extents {first} and {second} overlap on volume {volume:?}")]
    Overlap {
        first: usize,
        second: usize,
        volume: String,
    },
    /// A restore destination's allocation is smaller than the object.
    #[error("the destination allocation holds {allocated} bytes but the object needs {needed}")]
    AllocationTooSmall { allocated: u64, needed: u64 },
    /// The object has no bytes.
    #[error("the object is empty")]
    EmptyObject,
    /// A structural defect (gap, overflow, wrong total, duplicate volume name, ...).
    #[error("malformed map: {0}")]
    Malformed(String),
    /// A track number lies past the end of its volume.
    #[error("track {track} out of range on volume {volume}: it has {tracks} tracks")]
    TrackOutOfRange { volume: u16, track: u64, tracks: u64 },
    /// A map and a remap table describe objects of different sizes.
    #[error("the map describes {map} bytes but the remap table {remap}")]
    SizeMismatch { map: u64, remap: u64 },
}
