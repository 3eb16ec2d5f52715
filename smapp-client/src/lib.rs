//! The SMAPP client library: a host's and an operator's way into the
//! cluster. Hosts never carry backup data: they describe the logical object
//! (its extents) and ask the control station; the data goes from the primary
//! node to tape through the movers.

pub mod agent;
pub mod client;
pub mod console;
pub mod extents;
pub mod watch;
