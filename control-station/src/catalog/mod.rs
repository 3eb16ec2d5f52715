//! The control station's Postgres catalog.
//!
//! Everything the station must remember across restarts lives here: the
//! registry (primary nodes and their volumes, movers, FE/BE pairs, drives),
//! tapes, logical objects and their ABSs with their maps (one row per extent,
//! never per block), segment placements, and channels with every state
//! transition (who, when, why).
//!
//! Queries are checked at compile time by sqlx's macros against the schema in
//! `control-station/migrations/`; the offline cache in `control-station/.sqlx`
//! lets the crate build with no database (`SQLX_OFFLINE=true`). After changing
//! a query or a migration run `deploy/sqlx-prepare.sh` to refresh the cache.
//!
//! Multi-row changes happen in one transaction: a failed or illegal operation
//! leaves the catalog as it was.

mod abs;
mod abs_end;
mod chains;
mod channels;
mod console;
mod copies;
mod definitions;
mod deletion;
mod error;
mod grants;
mod management;
mod notifications;
mod pools;
mod rebuild;
mod recovery;
mod registry;
mod segments;
mod tapes;
mod versions;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

pub use abs::{Abs, AbsSummaryRow};
pub use chains::{CapturedEpoch, ChainRow};
pub use channels::{ChannelRow, Recovered, TransitionRow, STATION_ACTOR};
pub use console::ConsoleChannelRow;
pub use copies::{CopyCandidate, MetadataSource, NewSegmentCopy};
pub use definitions::{ChannelNoteRow, DefinitionRow, RunRow};
pub use deletion::Deleted;
pub use error::{CatalogError, Result};
pub use grants::GrantRow;
pub use notifications::{LiveTransition, NotificationRow, LIVE_CHANNEL};
pub use pools::{check_pool_name, PoolRow, PoolSummary, MAX_POOL_NAME};
pub use recovery::MetadataCopy;
pub use registry::{DriveRow, MoverRow, PairRow};
pub use segments::{NewSegment, Segment};
pub use tapes::{TapeClaim, TapeRow};
pub use versions::{Holding, NewVersionRecord, RecordPair, VersionRecordRow, VersionSetRow, VpoolRow, VpoolVolumeRow};

/// How long a statement waits for an unreachable database by default.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// The catalog's migrations, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the catalog. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: PgPool,
}

impl Catalog {
    /// Connect to `url`, then apply any pending migrations (concurrent
    /// stations serialize on Postgres advisory locks).
    pub async fn connect(url: &str) -> Result<Catalog> {
        Self::connect_with_patience(url, DEFAULT_PATIENCE).await
    }

    /// [`Catalog::connect`], where every statement waits up to `patience`
    /// for the database while it is unreachable (a restart, a failover):
    /// the pool dials again with back-off, and the job that asked simply
    /// pauses; after `patience` the statement fails with the reason.
    pub async fn connect_with_patience(url: &str, patience: Duration) -> Result<Catalog> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(patience)
            // A connection the database dropped is found out before use.
            .test_before_acquire(true)
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Catalog { pool })
    }

    /// Use an existing pool as is (no migrations run).
    pub fn from_pool(pool: PgPool) -> Catalog {
        Catalog { pool }
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A u64 the catalog stores as BIGINT.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| CatalogError::invalid(format!("{what} {value} exceeds the catalog's range")))
}

/// A BIGINT the catalog reads back as u64.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| CatalogError::corrupt(format!("{what} {value} is negative")))
}

/// A BIGINT the catalog reads back as u32.
pub(crate) fn to_u32(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| CatalogError::corrupt(format!("{what} {value} is out of the u32 range")))
}
