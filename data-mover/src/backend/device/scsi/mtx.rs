//! A SCSI medium changer through the `mtx` command (`mtx -f /dev/sgN
//! status | load | unload | transfer`): [`MtxChanger`] runs it through a
//! [`CommandRunner`] (tests use a fake) and [`parse_status`] reads its
//! `status` output into an [`Inventory`].

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::backend::device::{ChangerError, DriveBay, Inventory, MediaChanger, Slot};

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    pub success: bool,
    /// "exit status 1", "signal 9".
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs external commands.
pub trait CommandRunner: Send {
    fn run(&mut self, program: &str, args: &[String]) -> io::Result<CommandOutput>;
}

/// Runs them for real.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&mut self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
        let out = Command::new(program).args(args).output()?;
        Ok(CommandOutput {
            success: out.status.success(),
            status: out.status.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A changer driven by `mtx` (element numbers as `mtx` prints them: drives
/// from 0, slots from 1).
pub struct MtxChanger<R: CommandRunner> {
    device: PathBuf,
    runner: R,
    program: String,
}

impl<R: CommandRunner> MtxChanger<R> {
    /// The changer at `device` (`/dev/sgN`), through `mtx` on the PATH.
    pub fn new(device: &Path, runner: R) -> Self {
        MtxChanger {
            device: device.to_path_buf(),
            runner,
            program: "mtx".to_string(),
        }
    }

    fn mtx(&mut self, args: &[String]) -> Result<String, ChangerError> {
        let mut all = vec!["-f".to_string(), self.device.display().to_string()];
        all.extend_from_slice(args);
        let command = format!("{} {}", self.program, all.join(" "));
        tracing::debug!(%command, "running");
        let out = self
            .runner
            .run(&self.program, &all)
            .map_err(|source| ChangerError::Io {
                changer: self.name(),
                action: format!("running `{command}`"),
                source,
            })?;
        if !out.success {
            return Err(ChangerError::Command {
                changer: self.name(),
                command,
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(out.stdout)
    }
}

impl<R: CommandRunner> MediaChanger for MtxChanger<R> {
    fn name(&self) -> String {
        format!("SCSI changer {}", self.device.display())
    }

    fn inventory(&mut self) -> Result<Inventory, ChangerError> {
        let text = self.mtx(&["status".to_string()])?;
        parse_status(&text, &self.name())
    }

    fn load(&mut self, slot: u32, drive: u32) -> Result<(), ChangerError> {
        self.mtx(&["load".into(), slot.to_string(), drive.to_string()])
            .map(drop)
    }

    fn unload(&mut self, drive: u32, slot: u32) -> Result<(), ChangerError> {
        self.mtx(&["unload".into(), slot.to_string(), drive.to_string()])
            .map(drop)
    }

    fn import(&mut self, from: u32, to: u32) -> Result<(), ChangerError> {
        self.mtx(&["transfer".into(), from.to_string(), to.to_string()])
            .map(drop)
    }

    fn export(&mut self, from: u32, to: u32) -> Result<(), ChangerError> {
        self.mtx(&["transfer".into(), from.to_string(), to.to_string()])
            .map(drop)
    }
}

/// Parse `mtx status` output:
///
/// ```text
///   Storage Changer /dev/sg3:2 Drives, 24 Slots ( 1 Import/Export )
/// Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = DM0003L8
/// Data Transfer Element 1:Empty
///       Storage Element 1:Full :VolumeTag=DM0001L8
///       Storage Element 24 IMPORT/EXPORT:Empty
/// ```
pub fn parse_status(text: &str, changer: &str) -> Result<Inventory, ChangerError> {
    let mut inv = Inventory::default();
    let mut header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let bad = |expected: &str| ChangerError::Parse {
            changer: changer.to_string(),
            line: i + 1,
            expected: expected.to_string(),
            found: line.to_string(),
        };
        if line.starts_with("Storage Changer") {
            header = true;
        } else if let Some(rest) = line.strip_prefix("Data Transfer Element ") {
            let (num, state) = rest
                .split_once(':')
                .ok_or_else(|| bad("`Data Transfer Element N:Full|Empty`"))?;
            let number = num.trim().parse().map_err(|_| bad("a drive number"))?;
            let (full, tag) = full_and_tag(state).ok_or_else(|| bad("`:Full` or `:Empty` after the drive number"))?;
            let source_slot = match state.split_once("(Storage Element ") {
                Some((_, s)) => Some(
                    s.split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| bad("`(Storage Element N Loaded)`"))?,
                ),
                None => None,
            };
            inv.drives.push(DriveBay {
                number,
                full,
                volume: tag,
                source_slot,
            });
        } else if let Some(rest) = line.strip_prefix("Storage Element ") {
            let (head, state) = rest
                .split_once(':')
                .ok_or_else(|| bad("`Storage Element N[ IMPORT/EXPORT]:Full|Empty`"))?;
            let mut words = head.split_whitespace();
            let number = words
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| bad("a slot number"))?;
            let import_export = match words.next() {
                None => false,
                Some("IMPORT/EXPORT") => true,
                Some(_) => return Err(bad("nothing or IMPORT/EXPORT after the slot number")),
            };
            let (full, volume) = full_and_tag(state).ok_or_else(|| bad("`:Full` or `:Empty` after the slot number"))?;
            inv.slots.push(Slot {
                number,
                import_export,
                full,
                volume,
            });
        } else if !line.is_empty() {
            tracing::debug!(%changer, line = i + 1, %line, "mtx status line ignored");
        }
    }
    if !header {
        return Err(ChangerError::Parse {
            changer: changer.to_string(),
            line: 1,
            expected: "a `Storage Changer` header".into(),
            found: text.lines().next().unwrap_or("").trim().to_string(),
        });
    }
    Ok(inv)
}

/// "Full (...):VolumeTag = X" → (true, Some(X)); "Empty" → (false, None).
fn full_and_tag(state: &str) -> Option<(bool, Option<String>)> {
    let state = state.trim();
    if state.starts_with("Empty") {
        return Some((false, None));
    }
    if !state.starts_with("Full") {
        return None;
    }
    let tag = state.split_once("VolumeTag").and_then(|(before, after)| {
        // Not "AlternateVolumeTag".
        if before.ends_with("Alternate") {
            return None;
        }
        let v = after.trim_start().strip_prefix('=')?;
        let v = v.split(':').next().unwrap_or("").trim();
        (!v.is_empty()).then(|| v.to_string())
    });
    Some((true, tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::device::load_volume;

    /// An IBM TS4300 with two LTO-8 drives, one loaded (format of mtx 1.3.12).
    const TS4300: &str = "  Storage Changer /dev/sg5:2 Drives, 24 Slots ( 3 Import/Export )
Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = DM0003L8                        
Data Transfer Element 1:Empty
      Storage Element 1:Full :VolumeTag=DM0001L8                        
      Storage Element 2:Full :VolumeTag=DM0002L8                        
      Storage Element 3:Empty
      Storage Element 4:Full 
      Storage Element 5:Full :VolumeTag=CLN001L1                        
      Storage Element 6:Empty
      Storage Element 22 IMPORT/EXPORT:Full :VolumeTag=DM0009L8                        
      Storage Element 23 IMPORT/EXPORT:Empty
      Storage Element 24 IMPORT/EXPORT:Empty
";

    /// A drive loaded from an unknown slot, with an alternate tag (mtx -f … status on a Quantum).
    const UNKNOWN_SOURCE: &str = "  Storage Changer /dev/sg2:1 Drives, 2 Slots ( 0 Import/Export )
Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = A00001L7:AlternateVolumeTag = X
      Storage Element 1:Empty
      Storage Element 2:Full :AlternateVolumeTag=ALT
";

    #[test]
    fn parses_drives_slots_tags_and_mail_slots() {
        let inv = parse_status(TS4300, "c").unwrap();
        assert_eq!(inv.drives.len(), 2);
        assert_eq!(
            inv.drives[0],
            DriveBay {
                number: 0,
                full: true,
                volume: Some("DM0003L8".into()),
                source_slot: Some(3)
            }
        );
        assert!(!inv.drives[1].full && inv.drives[1].volume.is_none());
        assert_eq!(inv.slots.len(), 9);
        assert_eq!(
            inv.slots[3],
            Slot {
                number: 4,
                import_export: false,
                full: true,
                volume: None
            }
        );
        assert!(inv.slots[6].import_export && inv.slots[6].number == 22);
        assert_eq!(inv.slot_of("DM0002"), Some(2));
        assert_eq!(inv.slot_of("DM0009"), None, "in a mail slot, not in storage");
        assert_eq!(inv.free_slot(), Some(3));

        let inv = parse_status(UNKNOWN_SOURCE, "c").unwrap();
        assert_eq!(inv.drives[0].source_slot, None);
        assert_eq!(inv.drives[0].volume.as_deref(), Some("A00001L7"));
        assert_eq!(inv.slots[1].volume, None, "an alternate tag is not the volume tag");
        assert!(inv.slots[1].full);
    }

    #[test]
    fn malformed_output_names_the_line() {
        let e = parse_status("mtx: cannot open SCSI device '/dev/sg9'", "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("Storage Changer"), "{e}");
        let bad = "  Storage Changer /dev/sg5:1 Drives, 1 Slots ( 0 Import/Export )\n      Storage Element x:Full\n";
        let e = parse_status(bad, "c").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("expected a slot number"), "{e}");
        let bad = "  Storage Changer /dev/sg5:1 Drives, 1 Slots\nData Transfer Element 0:Broken\n";
        assert!(parse_status(bad, "c").unwrap_err().to_string().contains("line 2"));
    }

    /// Answers `status` from a script and records every command.
    struct FakeRunner {
        status: String,
        calls: Vec<String>,
        fail: bool,
    }

    impl CommandRunner for FakeRunner {
        fn run(&mut self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
            self.calls.push(format!("{program} {}", args.join(" ")));
            if self.fail {
                return Ok(CommandOutput {
                    success: false,
                    status: "exit status 1".into(),
                    stderr: "MOVE MEDIUM from Element Address 1025 to 256 Failed\n".into(),
                    ..CommandOutput::default()
                });
            }
            let stdout = if args.last().map(String::as_str) == Some("status") {
                self.status.clone()
            } else {
                String::new()
            };
            Ok(CommandOutput {
                success: true,
                status: "exit status 0".into(),
                stdout,
                stderr: String::new(),
            })
        }
    }

    #[test]
    fn loading_a_volume_runs_unload_then_load() {
        let runner = FakeRunner {
            status: TS4300.into(),
            calls: Vec::new(),
            fail: false,
        };
        let mut ch = MtxChanger::new(Path::new("/dev/sg5"), runner);
        load_volume(&mut ch, "DM0001", 0).unwrap();
        load_volume(&mut ch, "DM0003", 0).unwrap(); // already there
        ch.import(22, 6).unwrap();
        ch.export(1, 23).unwrap();
        assert_eq!(
            ch.runner.calls,
            vec![
                "mtx -f /dev/sg5 status",
                "mtx -f /dev/sg5 unload 3 0",
                "mtx -f /dev/sg5 load 1 0",
                "mtx -f /dev/sg5 status",
                "mtx -f /dev/sg5 transfer 22 6",
                "mtx -f /dev/sg5 transfer 1 23",
            ]
        );
        let e = load_volume(&mut ch, "NOPE01", 1).unwrap_err().to_string();
        assert!(e.contains("NOPE01") && e.contains("DM0001L8"), "{e}");
    }

    #[test]
    fn a_failing_mtx_is_an_error_with_its_stderr() {
        let runner = FakeRunner {
            status: TS4300.into(),
            calls: Vec::new(),
            fail: true,
        };
        let mut ch = MtxChanger::new(Path::new("/dev/sg5"), runner);
        let e = ch.load(1, 1).unwrap_err().to_string();
        assert!(
            e.contains("`mtx -f /dev/sg5 load 1 1` exited with exit status 1: MOVE MEDIUM"),
            "{e}"
        );
    }
}
