//! Pure protocol cores of the primary node (after quinn-proto under quinn):
//! state machines with no I/O, no locks, no async and no files. The shells
//! ([`crate::host`], [`crate::send`]) keep the volume and side-file reads
//! and writes, the sockets and the mutexes, and ask a core what to do.
//!
//! - [`side_file::SideFile`]: one backup's side-file slots within the
//!   node's side-file budget.
//! - [`protection::ProtectionMap`]: the protection bits and side copies of
//!   one volume's running backups; says whether a host write must copy a
//!   track aside first and where a backup reads a track from.
//! - [`request_queue::RequestQueue`]: a backup stream's tracks sent but not
//!   yet on tape, bounded by the window.

pub mod protection;
pub mod request_queue;
pub mod side_file;

#[cfg(test)]
mod proptests;
