//! Checks of the management records in tapes' CATALOG files (issue 14).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use proto::tape::block::SimhTape;
use proto::tape::volume::TapeReader;
use serde_json::Value;

/// Read the CATALOG of every tape of `tapes` (rows of `smapp list tapes
/// --json`) in `library` and check it carries the management record of
/// each ABS whose metadata is on the tape (equal to the metadata's; on a
/// tape of one of `copy_pools`, the copy's record: that pool, copy number
/// 1…), that every record present names its ABS, its pool, and places
/// every segment of its ABS on that tape where the tape has it. Returns
/// how many records are of ABSs the tape holds only segments of (a tape
/// that filled mid-ABS: the record asked of the station at its end).
pub fn check_catalog_records(library: &Path, tapes: &[Value], copy_pools: &[&str]) -> Result<usize> {
    let mut spanning = 0;
    for t in tapes {
        let (Some(label), Some(pool)) = (t["label"].as_str(), t["pool"].as_str()) else {
            bail!("a tape row without label or pool: {t}");
        };
        let image = library.join(format!("{label}.tap"));
        let dev = SimhTape::open(&image).with_context(|| format!("opening {}", image.display()))?;
        let Ok(mut r) = TapeReader::open(dev) else {
            continue; // a blank scratch tape
        };
        let Some(catalog) = r.read_catalog().with_context(|| format!("the CATALOG of {label}"))? else {
            continue; // not finished
        };
        let copy = copy_pools.contains(&pool);
        for a in &catalog.entries {
            let id = a.abs_id;
            if let Some(file) = a.metadata_file {
                let m = r
                    .read_abs_metadata(file)
                    .with_context(|| format!("{label} file {file}"))?;
                ensure!(
                    a.record == m.management,
                    "tape {label}: the CATALOG's record of ABS {id} is not its metadata's"
                );
            }
            let Some(record) = &a.record else {
                // A copy lane that filled a tape mid-ABS is not a channel of
                // the ABS: its CATALOG may lack the record.
                ensure!(copy && a.metadata_file.is_none(), "tape {label}: no record of ABS {id}");
                continue;
            };
            ensure!(
                record.chain.last() == Some(&id),
                "tape {label}: ABS {id}'s record names {:?}",
                record.chain
            );
            ensure!(
                record.pool == pool,
                "tape {label}: ABS {id}'s record names pool {}",
                record.pool
            );
            ensure!(
                (record.copy_number > 0) == copy,
                "tape {label} of pool {pool}: ABS {id}'s record has copy number {}",
                record.copy_number
            );
            for s in &a.segments {
                ensure!(
                    record
                        .placements
                        .iter()
                        .any(|p| p.seq == s.seq && p.tape_label == label && p.tape_file == s.file_number),
                    "tape {label}: ABS {id}'s record does not place its segment {} in file {}: {:?}",
                    s.seq,
                    s.file_number,
                    record.placements
                );
            }
            if a.metadata_file.is_none() {
                spanning += 1;
            }
        }
    }
    Ok(spanning)
}
