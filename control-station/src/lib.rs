//! control-station
pub mod catalog;
pub mod channel;
pub mod plan;
pub mod service;
