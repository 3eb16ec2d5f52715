//! `smapp tape`: tape images, with no database and no cluster.

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::args::TapeCmd;

pub fn tape(cmd: &TapeCmd, as_json: bool) -> Result<()> {
    use proto::tape::block::SimhTape;
    match cmd {
        TapeCmd::Inspect { image } => {
            let dev = SimhTape::open(image).with_context(|| format!("opening {}", image.display()))?;
            let report =
                proto::tape::inspect::inspect(dev).with_context(|| format!("inspecting {}", image.display()))?;
            if as_json {
                for f in &report.files {
                    println!(
                        "{}",
                        json!({"file": f.file, "records": f.records, "bytes": f.bytes, "kind": f.kind.name(), "abs_id": f.abs_id, "seq": f.seq, "tracks": f.tracks, "detail": f.detail, "problem": f.problem})
                    );
                }
            } else {
                print!("{report}");
            }
            Ok(())
        }
        TapeCmd::Verify { image } => {
            let dev = SimhTape::open(image).with_context(|| format!("opening {}", image.display()))?;
            let report = proto::tape::inspect::verify(dev).with_context(|| format!("verifying {}", image.display()))?;
            print!("{report}");
            if !report.is_ok() {
                bail!("{} is damaged", image.display());
            }
            Ok(())
        }
        TapeCmd::Audit { .. } | TapeCmd::Recover { .. } => {
            bail!("internal: tape audit and recover go through the station")
        }
    }
}
