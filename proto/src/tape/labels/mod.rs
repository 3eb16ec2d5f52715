//! Layer 3: ANSI X3.27 / ECMA-13 (4th edition) tape labels: 80-byte ASCII
//! records. Positions in the layouts are 1-based and inclusive, as in the
//! standards.
//!
//! Each label's layout is documented beside its type: [`Vol1`] (VOL1),
//! [`FileLabel1`] (HDR1 / EOF1 / EOV1) and [`FileLabel2`] (HDR2 / EOF2 /
//! EOV2). [`VolumeLabels`] is the group at the start of a tape,
//! [`EndLabels`] the group at its end.
//!
//! Parsing is strict: every position is checked, and an error names the
//! label, the positions and the field, what was expected and what was found.
//!
//! One job per file: `field` reads and writes the fields of one 80-byte
//! record (a-characters, digits, dates), `vol1` and `file_label` the
//! labels, `group` the label groups.

mod field;
mod file_label;
mod group;
mod vol1;

#[cfg(test)]
mod tests;

pub use field::{is_a_char, LabelDate};
pub use file_label::{FileLabel1, FileLabel2, LabelKind};
pub use group::{EndLabels, VolumeLabels};
pub use vol1::Vol1;

/// Length of every label record.
pub const LABEL_LEN: usize = 80;
/// Implementation identifier written in VOL1 and HDR1/EOF1/EOV1.
pub const IMPLEMENTATION_ID: &str = "DMCLUSTER";
/// The label standard version written in VOL1 position 80.
pub const LABEL_STANDARD_VERSION: u8 = b'4';
