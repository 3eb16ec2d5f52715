//! The domain's vocabulary as types: ids, states, levels and failure codes.
//!
//! Every process, the wire, the catalog and the command line speak these
//! types; none of them passes an id as a bare integer or a state as a
//! string. Ids are `u64` (or `u32`) newtypes: the wire and the tape carry
//! them as they are, and the catalog stores them in `BIGINT` columns through
//! checked conversions (feature `sqlx`: a value the column cannot hold is an
//! error, never a wrapped number). States and levels are enums stored as
//! checked text (`CHECK (state IN (...))` in the migrations) whose spelling
//! is [`as_str`](Level::as_str); parsing anything else is an error naming
//! what was expected.
//!
//! | module | what |
//! |---|---|
//! | [`ids`] | [`AbsId`], [`ChannelId`], [`TapeId`], [`ObjectId`], [`SegmentSeq`], … |
//! | [`states`] | [`Level`], [`AbsKind`], [`AbsState`], [`TapeState`], [`ChannelState`], … |
//! | [`schedule`] | [`Schedule`]: when a backup definition runs |
//! | [`volume`] | [`VolumeKey`]: one volume of one primary node (`pn1:vol0`) |
//! | [`failure`] | [`FailureCode`], [`Failure`]: what went wrong, for programs |

pub mod failure;
pub mod ids;
pub mod schedule;
#[cfg(feature = "sqlx")]
mod sql;
pub mod states;
mod text_enum;
pub mod uuid;
pub mod volume;

pub use failure::{Failure, FailureCode};
pub use ids::{
    AbsId, ChannelId, DefinitionId, DriveId, IdOutOfRange, JobId, MapId, MediaSetId, MoverId, NodeId, ObjectId, PairId,
    RunId, SegmentSeq, TapeId,
};
pub use schedule::{BadSchedule, Due, Schedule};
pub use states::{
    AbsKind, AbsState, CatalogHealth, ChannelKind, ChannelState, HookPhase, Level, MoverRole, MoverState,
    NotificationKind, ParseDomainError, PoolKind, RunState, SegmentStatus, TapeLocation, TapeState, VersionRecordKind,
    VersionState, VpoolKind,
};
pub use uuid::{BadUuid, Uuid};
pub use volume::{BadVolumeKey, VolumeKey};
