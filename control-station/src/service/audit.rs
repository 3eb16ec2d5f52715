//! Tape audit (seed 000, issue 13): read every segment the catalog places
//! on a tape, primary copies and copies alike, check each on the back-end
//! against its checksums and the catalog's CRC32C, and mark what fails
//! `damaged`. A restore then reads those segments from another copy, and
//! the next pool backup copies again what lost its healthy copy.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use proto::domain::{Failure, FailureCode, TapeLocation};
use proto::wire::{AuditFinding, AuditReport, Command, SegmentRef};

use super::{failure_of, library, registry, Station};

pub(crate) async fn audit(st: &Arc<Station>, label: &str) -> Result<AuditReport> {
    let tape = st
        .catalog
        .tape_by_label(label)
        .await?
        .ok_or_else(|| anyhow!(Failure::not_found(format!("there is no tape {label}"))))?;
    if tape.location != TapeLocation::Library {
        bail!(Failure::refused(format!(
            "tape {label} is {}: import it into the library first (smapp library import)",
            tape.location
        )));
    }
    let segments = st.catalog.segments_on_tape(tape.id).await?;
    let mut report = AuditReport {
        tape_label: tape.label.clone(),
        checked: 0,
        bytes: 0,
        damaged: Vec::new(),
    };
    if segments.is_empty() {
        return Ok(report);
    }
    let assigned = registry::assign(st, Duration::from_secs(600), registry::Purpose::Restore).await?;
    let (pair, drive) = (assigned.pair, assigned.drive);
    let result = async {
        library::mount_for_read(st, "a tape verify", &pair.be_name, &drive, &tape).await?;
        let checked = async {
            for s in &segments {
                let cmd = Command::VerifySegment {
                    drive: drive.name.clone(),
                    abs_id: st.catalog.tape_abs_id(s.abs_id).await?,
                    source: SegmentRef {
                        tape_label: tape.label.clone(),
                        tape_file: s.tape_file,
                        seq: s.seq,
                        crc32c: s.crc32c,
                    },
                };
                match st.command_ok(&pair.be_name, &cmd).await {
                    Ok(_) => {}
                    Err(e) if failure_of(&e).code == FailureCode::Corrupt => {
                        st.catalog.mark_segment_damaged(s.id, s.copy_id).await?;
                        tracing::warn!(tape = %tape.label, file = s.tape_file, abs_id = %s.abs_id, seq = %s.seq, "audit: segment damaged");
                        report.damaged.push(AuditFinding {
                            abs_id: s.abs_id,
                            seq: s.seq,
                            tape_file: s.tape_file,
                            copy: s.copy_id.is_some(),
                            reason: failure_of(&e).message,
                        });
                    }
                    Err(e) => return Err(e),
                }
                report.checked += 1;
                report.bytes += s.bytes;
            }
            Ok(())
        }
        .await;
        let dismounted = library::dismount(st, &pair.be_name, &drive, &tape, false).await;
        checked?;
        dismounted.map(|_| ())
    }
    .await;
    registry::release(st, Some(&pair), &drive).await;
    result?;
    tracing::info!(tape = %tape.label, checked = report.checked, damaged = report.damaged.len(), "tape audited");
    Ok(report)
}
