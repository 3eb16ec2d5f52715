//! A primary storage node: serves volumes, streams track sets to front-end
//! movers for backup, and writes restored tracks where the remap table says.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))] // test data: byte patterns wrap on purpose

pub mod change_map;
pub mod copy;
pub mod core;
pub mod host;
pub mod nbd;
pub mod node;
pub mod restore;
pub mod restore_dir;
pub mod send;
pub mod volume;
