//! Ids of the catalog's rows, as newtypes: an [`AbsId`] cannot be passed
//! where a [`ChannelId`] is expected, and no id is ever cast between signed
//! and unsigned.
//!
//! Ids are made by the catalog (`BIGSERIAL`, so never negative) and travel
//! as `u64` on the wire and on tape. With feature `sqlx` each id is a
//! `BIGINT` column type whose conversions are checked both ways.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A number that does not fit the id type it was meant to be (a negative
/// `BIGINT`, a `u64` above `i64::MAX`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} {value} is out of range: expected 0..={max}")]
pub struct IdOutOfRange {
    pub what: &'static str,
    pub value: i128,
    pub max: i128,
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident($inner:ty) as $what:literal $(, stored $col:ident)?) => {
        $(#[$meta])*
        #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[rkyv(derive(Debug, PartialEq, Eq))]
        pub struct $name($inner);

        impl $name {
            /// What this id names, for messages (`"ABS"`, `"channel"`…).
            pub const WHAT: &'static str = $what;

            pub const fn new(value: $inner) -> $name {
                $name(value)
            }

            pub const fn get(self) -> $inner {
                self.0
            }

            /// The id from a `BIGINT` column value: negative or too large is
            /// an error.
            pub fn from_i64(value: i64) -> Result<$name, IdOutOfRange> {
                <$inner>::try_from(value).map($name).map_err(|_| IdOutOfRange {
                    what: $what,
                    value: i128::from(value),
                    max: i128::from(<$inner>::MAX.min(<$inner>::try_from(i64::MAX).unwrap_or(<$inner>::MAX))),
                })
            }

            /// The `BIGINT` column value of this id: above `i64::MAX` is an
            /// error.
            pub fn to_i64(self) -> Result<i64, IdOutOfRange> {
                i64::try_from(self.0).map_err(|_| IdOutOfRange {
                    what: $what,
                    value: i128::from(self.0),
                    max: i128::from(i64::MAX),
                })
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> $name {
                $name(value)
            }
        }

        impl From<$name> for $inner {
            fn from(id: $name) -> $inner {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<$name, Self::Err> {
                s.parse().map($name)
            }
        }

        #[cfg(feature = "sqlx")]
        $crate::domain::sql::id_column!($name($inner) $($col)?);

        /// JSON: the number.
        #[cfg(feature = "serde")]
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&self.0, s)
            }
        }
    };
}

id_type!(
    /// A logical object (a volume or extents of a primary node, by name).
    ObjectId(u64) as "object"
);
id_type!(
    /// An abstract block set: one backup of a logical object.
    AbsId(u64) as "ABS"
);
id_type!(
    /// A channel: one backup, restore or merge stream through a mover pair.
    ChannelId(u64) as "channel"
);
id_type!(
    /// A tape cartridge (its image).
    TapeId(u64) as "tape"
);
id_type!(
    /// A media set: the tapes one drive filled in sequence.
    MediaSetId(u64) as "media set"
);
id_type!(
    /// A change map of a volume on a primary node (its epochs are counted
    /// within it). Not made by the catalog: a random `u64`, kept bit for bit
    /// in its `BIGINT` column (see [`MapId::to_bits`]).
    MapId(u64) as "change map", stored bits
);

impl MapId {
    /// The `BIGINT` a map id is stored as: its 64 bits as they are (a map
    /// id above `i64::MAX` is a negative number in the catalog).
    pub const fn to_bits(self) -> i64 {
        i64::from_ne_bytes(self.0.to_ne_bytes())
    }

    /// The map id stored as `bits` (see [`MapId::to_bits`]).
    pub const fn from_bits(bits: i64) -> MapId {
        MapId(u64::from_ne_bytes(bits.to_ne_bytes()))
    }
}
id_type!(
    /// A restore job on a primary node (its staged output until commit).
    JobId(u64) as "restore job"
);
id_type!(
    /// A registered primary node.
    NodeId(u64) as "primary node"
);
id_type!(
    /// A registered data mover.
    MoverId(u64) as "mover"
);
id_type!(
    /// A front-end/back-end mover pair.
    PairId(u64) as "pair"
);
id_type!(
    /// A tape drive of a back-end.
    DriveId(u64) as "drive"
);
id_type!(
    /// A backup definition (`smapp define`).
    DefinitionId(u64) as "definition"
);
id_type!(
    /// One run of a backup definition.
    RunId(u64) as "definition run"
);
id_type!(
    /// The position of a segment in its ABS (0, 1, 2, …).
    SegmentSeq(u32) as "segment"
);

impl SegmentSeq {
    /// The next segment's number, or `None` after `u32::MAX`.
    pub fn next(self) -> Option<SegmentSeq> {
        self.0.checked_add(1).map(SegmentSeq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_values_convert_only_when_they_fit() {
        assert_eq!(AbsId::from_i64(7), Ok(AbsId::new(7)));
        let e = AbsId::from_i64(-1).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("ABS -1 is out of range: expected 0..={}", i64::MAX)
        );
        assert_eq!(AbsId::new(u64::MAX).to_i64().unwrap_err().what, "ABS");
        assert_eq!(AbsId::new(i64::MAX.unsigned_abs()).to_i64(), Ok(i64::MAX));
        assert_eq!(SegmentSeq::from_i64(4_294_967_295), Ok(SegmentSeq::new(u32::MAX)));
        let e = SegmentSeq::from_i64(4_294_967_296).unwrap_err();
        assert_eq!(e.max, i128::from(u32::MAX));
        assert_eq!(SegmentSeq::new(u32::MAX).next(), None);
    }

    #[test]
    fn map_ids_keep_every_bit() {
        for v in [0, 42, i64::MAX.unsigned_abs(), u64::MAX - 5, u64::MAX] {
            assert_eq!(MapId::from_bits(MapId::new(v).to_bits()), MapId::new(v));
        }
        assert_eq!(MapId::new(u64::MAX).to_bits(), -1);
    }

    #[test]
    fn ids_print_and_parse_as_numbers() {
        assert_eq!(ChannelId::new(42).to_string(), "42");
        assert_eq!("42".parse::<ChannelId>(), Ok(ChannelId::new(42)));
        assert!("-1".parse::<ChannelId>().is_err());
    }
}
