//! The SCSI drive and mounter over the fake `st` driver ([`super::fake`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use proto::abs::TrackAddr;
use proto::tape::block::{Block, BlockDevice, MemTape, Position};
use proto::tape::segment::{SegmentHeader, SegmentWriter};
use proto::tape::volume::{TapeEnd, TapeParams, TapeReader, TapeWriter};
use proto::tape::TapeError;

use super::fake::{Entry, FakeSt};
use super::{ChangerSlot, ScsiDrive, ScsiMounter};
use crate::backend::device::{ChangerError, DriveBay, Inventory, MediaChanger, MountMode, Mounter, Slot, TapeDrive};

const DEV: &str = "/dev/nst0";

fn drive(fake: &FakeSt) -> ScsiDrive<FakeSt> {
    ScsiDrive::open(fake.clone(), Path::new(DEV), true).unwrap()
}

/// Files of 1, 2 and 3 records, on any drive.
fn three_files(d: &mut dyn TapeDrive) {
    for f in 0..3u8 {
        for r in 0..=f {
            d.write_record(&[f, r, 0xee]).unwrap();
        }
        d.write_filemark().unwrap();
    }
}

#[test]
fn opening_sets_variable_blocks_rewinds_and_refuses_an_empty_drive() {
    let fake = FakeSt::new(DEV, 1 << 20, 2 << 20);
    let d = drive(&fake);
    assert_eq!(fake.tape().block_size, Some(0));
    assert_eq!(
        fake.tape().calls,
        ["open /dev/nst0", "MTIOCGET", "MTSETBLK 0", "MTREW 1"]
    );
    assert!(matches!(
        ScsiDrive::open(fake.clone(), Path::new(DEV), true),
        Err(TapeError::Io { .. })
    ));
    drop(d);
    assert_eq!(fake.tape().calls.last().map(String::as_str), Some("close"));
    fake.tape().loaded = false;
    let e = ScsiDrive::open(fake.clone(), Path::new(DEV), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected a loaded tape in /dev/nst0") && e.contains("no medium ready"),
        "{e}"
    );
    let e = ScsiDrive::open(fake, Path::new("/dev/nst7"), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("opening tape drive /dev/nst7"), "{e}");
}

#[test]
fn records_marks_and_the_end_of_data_read_back_as_written() {
    let fake = FakeSt::new(DEV, 1 << 20, 2 << 20);
    let mut d = drive(&fake);
    three_files(&mut d);
    assert_eq!(d.position(), Position { file: 3, record: 0 });
    assert_eq!(fake.tape().entries.len(), 9);
    d.rewind().unwrap();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    loop {
        match d.read_block(&mut buf, 100).unwrap() {
            Block::Record(n) => seen.push(buf[..n].iter().map(|b| b.to_string()).collect::<Vec<_>>().join(".")),
            Block::FileMark => seen.push("|".into()),
            Block::EndOfData => break,
        }
    }
    assert_eq!(
        seen,
        ["0.0.238", "|", "1.0.238", "1.1.238", "|", "2.0.238", "2.1.238", "2.2.238", "|"]
    );
    assert_eq!(
        d.read_block(&mut buf, 100).unwrap(),
        Block::EndOfData,
        "stays at the end"
    );
    d.rewind().unwrap();
    d.to_end_of_data().unwrap();
    assert_eq!(d.position(), Position { file: 3, record: 0 });
    assert_eq!(d.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
    assert_eq!(d.records_read(), 6);
    assert_eq!(d.position(), Position { file: 3, record: 0 });
    let s = d.status().unwrap();
    assert!(s.end_of_data && s.online && !s.early_warning && s.block_size.is_none());
    // One read(2) per record, one write(2) per record.
    let calls = fake.tape().calls.clone();
    assert_eq!(calls.iter().filter(|c| c.starts_with("write")).count(), 6);
    assert_eq!(calls.iter().filter(|c| *c == "read 101").count(), 6 + 3 + 1);
}

#[test]
fn a_record_longer_than_asked_is_refused_and_the_drive_stays_before_it() {
    let fake = FakeSt::new(DEV, 1 << 20, 2 << 20);
    let mut d = drive(&fake);
    d.write_record(&[7; 50]).unwrap();
    d.write_record(&[8; 10]).unwrap();
    d.rewind().unwrap();
    let mut buf = Vec::new();
    for max in [49, 10] {
        // 49: the read gets 50 bytes of the 50; 10: st answers ENOMEM.
        let e = d.read_block(&mut buf, max).unwrap_err().to_string();
        assert!(e.contains(&format!("a record of at most {max} bytes")), "{e}");
        assert_eq!(d.position(), Position { file: 0, record: 0 });
    }
    assert!(fake.tape().calls.iter().filter(|c| *c == "MTBSR 1").count() == 2);
    assert_eq!(d.read_block(&mut buf, 50).unwrap(), Block::Record(50));
    assert_eq!(d.skip_block().unwrap(), Block::Record(10));
    assert_eq!(d.records_read(), 1);
}

#[test]
fn locating_and_spacing_land_where_the_simh_drive_does() {
    let fake = FakeSt::new(DEV, 1 << 20, 2 << 20);
    let mut scsi = drive(&fake);
    let mut simh = MemTape::memory();
    three_files(&mut scsi);
    three_files(&mut simh);
    let steps: [(&str, u32); 9] = [
        ("locate", 1),
        ("read", 0),
        ("locate", 2),
        ("back", 1),
        ("back", 1),
        ("fwd", 2),
        ("locate", 0),
        ("fwd", 1),
        ("locate", 3),
    ];
    let mut buf = Vec::new();
    for (what, n) in steps {
        for d in [&mut scsi as &mut dyn TapeDrive, &mut simh] {
            match what {
                "locate" => d.locate_file(n).unwrap(),
                "back" => d.space_files_back(n).unwrap(),
                "fwd" => d.space_files_forward(n).unwrap(),
                _ => {
                    d.read_block(&mut buf, 100).unwrap();
                }
            }
        }
        assert_eq!(scsi.position(), simh.position(), "after {what} {n}");
    }
    // From the end of file 0 (its last record read), the next block is its mark.
    scsi.locate_file(1).unwrap();
    scsi.space_files_back(1).unwrap();
    assert_eq!(scsi.position(), Position { file: 0, record: 1 });
    assert_eq!(scsi.read_block(&mut buf, 100).unwrap(), Block::FileMark);
    // Past either end: NotFound, at the end of data / the beginning.
    scsi.locate_file(1).unwrap();
    let e = scsi.space_files_forward(5).unwrap_err();
    assert!(matches!(e, TapeError::NotFound { .. }), "{e}");
    assert!(scsi.status().unwrap().end_of_data);
    assert_eq!(scsi.read_block(&mut buf, 100).unwrap(), Block::EndOfData);
    scsi.locate_file(1).unwrap();
    let e = scsi.space_files_back(3).unwrap_err().to_string();
    assert!(e.contains("3 tape marks before tape file 1"), "{e}");
    assert!(scsi.status().unwrap().beginning_of_tape);
}

#[test]
fn the_early_warning_is_remembered_and_the_physical_end_refuses_writes() {
    // Early warning after 100 record bytes, physical end at 160.
    let fake = FakeSt::new(DEV, 100, 160);
    let mut d = drive(&fake);
    for _ in 0..5 {
        d.write_record(&[1; 20]).unwrap(); // 100 bytes: not past the point yet
    }
    assert!(!d.early_warning() && d.early_warning_left().is_none());
    d.write_record(&[2; 20]).unwrap(); // crosses it: succeeds, st says nothing yet
    d.write_record(&[3; 20]).unwrap(); // refused with ENOSPC, retried, written
    assert!(d.early_warning());
    assert_eq!(d.early_warning_left(), Some(0));
    d.write_filemark().unwrap();
    assert!(d.status().unwrap().early_warning);
    d.write_record(&[4; 20]).unwrap(); // 160: the physical end exactly
    let e = d.write_record(&[5; 1]).unwrap_err();
    assert!(e.is_end_of_medium(), "{e}");
    assert!(d.status().unwrap().end_of_medium);
    let records: Vec<u8> = fake
        .tape()
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) => Some(r[0]),
            Entry::Mark => None,
        })
        .collect();
    assert_eq!(records, [1, 1, 1, 1, 1, 2, 3, 4], "nothing written twice, nothing lost");
    let calls = fake.tape().calls.clone();
    // 8 records, 2 of them refused once (after the crossing, and after the
    // tape mark written in the zone) and written by the retry.
    assert_eq!(calls.iter().filter(|c| *c == "write 20").count(), 10);
}

#[test]
fn a_warning_met_inside_a_file_is_known_when_the_file_ends() {
    let fake = FakeSt::new(DEV, 100, 1000);
    let mut d = drive(&fake);
    d.write_record(&[1; 150]).unwrap();
    assert!(!d.early_warning());
    d.write_filemark().unwrap();
    assert!(d.early_warning(), "GMT_EOT after the tape mark");
    // A rewind forgets it: the beginning is before the warning.
    d.rewind().unwrap();
    assert!(!d.early_warning());
}

fn segment(abs_id: u64, seq: u32, len: usize) -> Vec<u8> {
    let hdr = SegmentHeader {
        abs_id,
        seq,
        channel_id: 1,
        created_unix: 1_700_000_000,
    };
    let mut w = SegmentWriter::new(Vec::new(), hdr).unwrap();
    w.append_track(
        TrackAddr {
            volume: 0,
            track: u64::from(seq),
        },
        &vec![seq as u8; len],
    )
    .unwrap();
    w.finish().unwrap().0
}

fn params() -> TapeParams {
    TapeParams {
        label: "DM0001".into(),
        pool: "default".into(),
        media_set: 1,
        sequence: 1,
        block_size: 4096,
        owner: "DMC".into(),
    }
}

#[test]
fn a_labelled_tape_is_written_appended_and_read_like_an_image() {
    let fake = FakeSt::new(DEV, 1 << 30, 2 << 30);
    let mut simh = MemTape::memory();
    for dev in [&mut drive(&fake) as &mut dyn TapeDrive, &mut simh] {
        let mut w = TapeWriter::create_at(dev, params(), 1_700_000_000).unwrap();
        w.write_segment(&segment(5, 0, 10_000), "vm-a").unwrap();
        w.finish_at(false, 1_700_000_100).unwrap();
    }
    // Append on a newly opened drive: it positions over the old end.
    let mut d = drive(&fake);
    let mut w = TapeWriter::append(&mut d).unwrap();
    assert_eq!(w.directory().len(), 1);
    w.write_segment(&segment(5, 1, 5_000), "vm-a").unwrap();
    w.finish_at(false, 1_700_000_200).unwrap();
    d.rewind().unwrap();
    let mut r = TapeReader::open(&mut d).unwrap();
    assert_eq!(r.label(), "DM0001");
    let files = r.data_files().unwrap();
    assert_eq!(files.len(), 2);
    let seg = r.read_segment(files[1].file_number, 1 << 20).unwrap();
    assert_eq!(seg.tracks[0].data, vec![1u8; 5_000]);
    // Before the append, the drive held record for record what the image held.
    let mut fake_first = Vec::new();
    let mut simh_first = Vec::new();
    simh.rewind().unwrap();
    let mut buf = Vec::new();
    loop {
        match simh.read_block(&mut buf, 1 << 20).unwrap() {
            Block::Record(_) => simh_first.push(Entry::Record(buf.clone())),
            Block::FileMark => simh_first.push(Entry::Mark),
            Block::EndOfData => break,
        }
    }
    let fresh = FakeSt::new(DEV, 1 << 30, 2 << 30);
    {
        let mut w = TapeWriter::create_at(drive(&fresh), params(), 1_700_000_000).unwrap();
        w.write_segment(&segment(5, 0, 10_000), "vm-a").unwrap();
        w.finish_at(false, 1_700_000_100).unwrap();
    }
    fake_first.extend(fresh.tape().entries.iter().cloned());
    assert_eq!(fake_first, simh_first);
}

#[test]
fn the_writer_stops_at_the_early_warning_and_finishes_the_tape_in_the_zone() {
    let fake = FakeSt::new(DEV, 60_000, 200_000);
    let mut d = drive(&fake);
    let mut w = TapeWriter::create_at(&mut d, params(), 1_700_000_000).unwrap();
    let mut written = 0;
    let full = loop {
        match w.write_segment(&segment(9, written, 12_000), "vm-b") {
            Ok(_) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 20, "the warning never came");
    };
    assert!(full.is_tape_full(), "{full}");
    assert!(w.early_warning());
    w.finish_at(true, 1_700_000_100).unwrap();
    d.rewind().unwrap();
    let mut r = TapeReader::open(&mut d).unwrap();
    assert_eq!(r.data_files().unwrap().len(), written as usize);
    assert!(matches!(r.tape_end().unwrap(), TapeEnd::Finished { labels, .. } if labels.continues()));
}

/// A changer that "moves" a cartridge by loading or ejecting the fake drive.
struct FakeChanger {
    fake: FakeSt,
    in_drive: Option<(String, u32)>,
    calls: Vec<String>,
}

impl MediaChanger for FakeChanger {
    fn name(&self) -> String {
        "fake changer".into()
    }
    fn inventory(&mut self) -> Result<Inventory, ChangerError> {
        let slot = |n: u32, v: &str| Slot {
            number: n,
            import_export: false,
            full: self.in_drive.as_ref().is_none_or(|(l, _)| l != v),
            volume: self
                .in_drive
                .as_ref()
                .is_none_or(|(l, _)| l != v)
                .then(|| v.to_string()),
        };
        Ok(Inventory {
            drives: vec![DriveBay {
                number: 0,
                full: self.in_drive.is_some(),
                volume: self.in_drive.as_ref().map(|(l, _)| l.clone()),
                source_slot: self.in_drive.as_ref().map(|(_, s)| *s),
            }],
            slots: vec![slot(1, "DM0001L8"), slot(2, "DM0002L8")],
        })
    }
    fn load(&mut self, slot: u32, drive: u32) -> Result<(), ChangerError> {
        self.calls.push(format!("load {slot} {drive}"));
        self.in_drive = Some((format!("DM000{slot}L8"), slot));
        self.fake.tape().loaded = true;
        Ok(())
    }
    fn unload(&mut self, drive: u32, slot: u32) -> Result<(), ChangerError> {
        self.calls.push(format!("unload {drive} {slot}"));
        assert!(!self.fake.tape().loaded, "the drive ejected first");
        self.in_drive = None;
        Ok(())
    }
    fn import(&mut self, _: u32, _: u32) -> Result<(), ChangerError> {
        unreachable!()
    }
    fn export(&mut self, _: u32, _: u32) -> Result<(), ChangerError> {
        unreachable!()
    }
}

#[test]
fn the_mounter_loads_by_volume_tag_and_ejects_and_unloads_at_unmount() {
    let fake = FakeSt::new(DEV, 1 << 20, 2 << 20);
    fake.tape().loaded = false;
    let changer = Arc::new(Mutex::new(FakeChanger {
        fake: fake.clone(),
        in_drive: None,
        calls: Vec::new(),
    }));
    let slot = ChangerSlot {
        changer: changer.clone(),
        drive: 0,
    };
    let mut m = ScsiMounter::new(fake.clone(), Path::new(DEV), Some(slot));
    let mut d = m.mount("DM0002", MountMode::Create).unwrap();
    d.write_record(b"VOL1").unwrap();
    drop(d);
    m.unmount("DM0002").unwrap();
    assert_eq!(changer.lock().unwrap().calls, ["load 2 0", "unload 0 2"]);
    assert!(fake.tape().calls.iter().any(|c| c == "MTOFFL 1"));
    let e = m.mount("DM0404", MountMode::Read).err().unwrap().to_string();
    assert!(e.contains("no cartridge with volume tag \"DM0404\""), "{e}");
    // Without a changer: the drive holds what the operator loaded.
    fake.tape().loaded = true;
    let mut m = ScsiMounter::new(fake.clone(), Path::new(DEV), None);
    let d = m.mount("DM0002", MountMode::Read).unwrap();
    drop(d);
    m.unmount("DM0002").unwrap();
    assert!(fake.tape().loaded);
}
