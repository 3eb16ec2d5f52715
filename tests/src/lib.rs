//! Harness for the integration tests, the demo and the benchmark: a private
//! Postgres, a local cluster of real processes, test data and the main
//! backup-and-restore scenario.

pub mod bacula;
pub mod browser;
pub mod cluster;
pub mod console;
pub mod cpu;
pub mod faults;
pub mod fixture;
pub mod hop;
pub mod metrics;
pub mod pg;
pub mod records;
pub mod scenario;
pub mod smapp;
