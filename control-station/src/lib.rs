//! control-station
pub mod catalog;
pub mod channel;
pub mod service;
