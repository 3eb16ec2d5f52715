//! control-station
pub mod catalog;
pub mod catalog_restore;
pub mod channel;
pub mod console;
pub mod pg_tools;
pub mod plan;
pub mod rebuild;
pub mod service;
