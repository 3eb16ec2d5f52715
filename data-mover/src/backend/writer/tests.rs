//! Unit tests: each transition of the [`WriterCore`], then the shell end to
//! end (in-memory tapes, a fake station, real segments from a spool).

use super::core::*;
use crate::backend::schedule::{Policy, ReadySegment, ScheduleError};
use proto::wire::NewTape;

type P = &'static str;
type Fx = Vec<Effect<P>>;

fn seg(abs_id: u64, seq: u32) -> ReadySegment {
    ReadySegment {
        channel_id: 1,
        abs_id,
        seq,
        bytes: 100,
        ready_at: 0,
    }
}

fn step(c: &mut WriterCore, ev: Event<P>) -> Fx {
    c.apply(ev).expect("the event fits the state")
}

fn submit(c: &mut WriterCore, id: u64, abs: u64, seq: u32) -> Fx {
    step(
        c,
        Event::Segment {
            id: JobId(id),
            ready: seg(abs, seq),
        },
    )
}

fn written(c: &mut WriterCore, id: u64, outcome: WriteOutcome<P>) -> Fx {
    step(c, Event::Written { id: JobId(id), outcome })
}

fn write(id: u64, abs: u64, seq: u32) -> Effect<P> {
    Effect::Write {
        id: JobId(id),
        work: Work::Segment(seg(abs, seq)),
    }
}

fn ok(id: u64, p: P) -> Effect<P> {
    Effect::Reply {
        id: JobId(id),
        result: Ok(p),
    }
}

fn failed(fx: &Fx) -> Vec<(u64, JobFailure)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Reply { id, result: Err(f) } => Some((id.0, f.clone())),
            _ => None,
        })
        .collect()
}

fn full(empty_tape: bool) -> WriteOutcome<P> {
    WriteOutcome::Full {
        empty_tape,
        reason: "tape T1 reached its early warning".into(),
    }
}

fn full_tape() -> FullTape {
    FullTape {
        label: "T1".into(),
        files: 3,
        bytes: 300,
    }
}

fn next_tape(label: &str) -> NextTape {
    NextTape {
        label: label.into(),
        new: NewTape {
            pool: "default".into(),
            media_set: proto::domain::MediaSetId::new(1),
            sequence: 2,
            block_size: 4096,
        },
    }
}

/// A core writing segment (7, 0) as job 0 that the tape refused: now at
/// the end of the tape, finished, waiting for the station.
fn at_end_of_tape() -> WriterCore {
    let mut c = WriterCore::new(Policy::Fifo);
    submit(&mut c, 0, 7, 0);
    assert_eq!(
        written(&mut c, 0, full(false)),
        vec![Effect::FinishTape {
            reason: "tape T1 reached its early warning".into()
        }]
    );
    assert_eq!(c.state().name(), "Finishing");
    assert_eq!(
        step(&mut c, Event::TapeFinished(Ok(full_tape()))),
        vec![Effect::AskNextTape(full_tape())]
    );
    assert_eq!(c.state().name(), "EndOfTape");
    c
}

#[test]
fn idle_work_is_written_then_answered_placed() {
    let mut c = WriterCore::new(Policy::Fifo);
    assert_eq!(submit(&mut c, 0, 7, 0), vec![write(0, 7, 0)]);
    assert_eq!(c.state().name(), "Writing");
    assert_eq!(written(&mut c, 0, WriteOutcome::Placed("T1/1")), vec![ok(0, "T1/1")]);
    assert_eq!(*c.state(), State::Idle);
    assert_eq!(c.waiting(), 0);
}

#[test]
fn metadata_goes_before_queued_segments_and_an_abs_in_seq_order() {
    let mut c = WriterCore::new(Policy::Fifo);
    submit(&mut c, 0, 7, 0);
    assert!(submit(&mut c, 1, 7, 2).is_empty());
    assert!(submit(&mut c, 2, 7, 1).is_empty());
    assert!(step(
        &mut c,
        Event::Metadata {
            id: JobId(3),
            abs_id: 9
        }
    )
    .is_empty());
    assert_eq!(c.queued_segments(), 2);
    let fx = written(&mut c, 0, WriteOutcome::Placed("a"));
    assert_eq!(
        fx[1],
        Effect::Write {
            id: JobId(3),
            work: Work::Metadata { abs_id: 9 }
        }
    );
    assert_eq!(written(&mut c, 3, WriteOutcome::Placed("m"))[1], write(2, 7, 1));
    assert_eq!(written(&mut c, 2, WriteOutcome::Placed("b"))[1], write(1, 7, 2));
}

#[test]
fn a_full_tape_moves_the_same_job_to_the_next_tape() {
    let mut c = at_end_of_tape();
    let fx = step(&mut c, Event::Answered(Ok(next_tape("T2"))));
    assert_eq!(
        fx,
        vec![Effect::Mount {
            next: next_tape("T2"),
            full: "T1".into()
        }]
    );
    assert_eq!(c.state().name(), "Mounting");
    assert_eq!(step(&mut c, Event::Mounted(Ok(()))), vec![write(0, 7, 0)]);
    assert_eq!(c.state().job().and_then(|j| j.moved_to.as_deref()), Some("T2"));
    assert_eq!(written(&mut c, 0, WriteOutcome::Placed("T2/1")), vec![ok(0, "T2/1")]);
}

#[test]
fn nothing_else_is_written_at_the_end_of_a_tape() {
    let mut c = at_end_of_tape();
    // Later work, and even an earlier segment of the same ABS, waits.
    assert!(submit(&mut c, 1, 8, 0).is_empty());
    assert!(step(
        &mut c,
        Event::Metadata {
            id: JobId(2),
            abs_id: 8
        }
    )
    .is_empty());
    assert!(step(&mut c, Event::Answered(Ok(next_tape("T2"))))
        .iter()
        .all(|e| !matches!(e, Effect::Write { .. })));
    assert_eq!(step(&mut c, Event::Mounted(Ok(()))), vec![write(0, 7, 0)]);
    // Then the rest, metadata first.
    let fx = written(&mut c, 0, WriteOutcome::Placed("T2/1"));
    assert_eq!(
        fx[1],
        Effect::Write {
            id: JobId(2),
            work: Work::Metadata { abs_id: 8 }
        }
    );
}

#[test]
fn a_segment_too_big_for_an_empty_tape_is_refused_and_the_next_goes_on() {
    let mut c = WriterCore::new(Policy::Fifo);
    submit(&mut c, 0, 7, 0);
    submit(&mut c, 1, 7, 1);
    let fx = written(&mut c, 0, full(true));
    assert!(matches!(&failed(&fx)[..], [(0, JobFailure::DoesNotFit { .. })]));
    assert!(failed(&fx)[0]
        .1
        .to_string()
        .ends_with("it does not fit even on an empty tape"));
    assert_eq!(fx[1], write(1, 7, 1));
}

#[test]
fn full_again_right_after_a_switch_fails_the_job_without_another_switch() {
    let mut c = at_end_of_tape();
    step(&mut c, Event::Answered(Ok(next_tape("T2"))));
    step(&mut c, Event::Mounted(Ok(())));
    let fx = written(&mut c, 0, full(false));
    assert!(matches!(&failed(&fx)[..], [(0, JobFailure::FullTwice { tape, .. })] if tape == "T2"));
    assert_eq!(*c.state(), State::Idle);
}

#[test]
fn a_refusal_fails_the_job_and_everything_waiting_with_the_reason() {
    let mut c = at_end_of_tape();
    submit(&mut c, 1, 8, 0);
    submit(&mut c, 2, 7, 0); // the job at the end of the tape, asked again
    let reason = "no tape continues T1: no scratch tape in pool default".to_string();
    let fx = step(&mut c, Event::Answered(Err(reason.clone())));
    let mut ids: Vec<u64> = failed(&fx).iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![0, 1, 2]);
    for (_, f) in failed(&fx) {
        assert!(matches!(f, JobFailure::MediaSet { .. }), "{f:?}");
        assert!(f.to_string().ends_with(&reason), "{f}");
    }
    assert_eq!(c.state(), &State::Failed { reason: reason.clone() });
    // Until the station mounts a tape, new work fails the same way.
    let fx = submit(&mut c, 3, 9, 0);
    assert!(matches!(&failed(&fx)[..], [(3, JobFailure::MediaSet { reason: r, .. })] if *r == reason));
    assert!(step(&mut c, Event::StationMounted { label: "T9".into() }).is_empty());
    assert_eq!(*c.state(), State::Idle);
    assert_eq!(submit(&mut c, 4, 9, 0), vec![write(4, 9, 0)]);
}

#[test]
fn a_failed_mount_or_eov_fails_like_a_refusal() {
    let mut c = at_end_of_tape();
    step(&mut c, Event::Answered(Ok(next_tape("T2"))));
    let fx = step(
        &mut c,
        Event::Mounted(Err("mounting tape T2, which continues T1: no such slot".into())),
    );
    assert!(matches!(&failed(&fx)[..], [(0, JobFailure::MediaSet { .. })]));
    assert_eq!(c.state().name(), "Failed");

    let mut c = WriterCore::new(Policy::Fifo);
    submit(&mut c, 0, 7, 0);
    written(&mut c, 0, full(false));
    let fx = step(
        &mut c,
        Event::TapeFinished(Err("finishing the full tape: I/O error".into())),
    );
    assert!(matches!(&failed(&fx)[..], [(0, JobFailure::MediaSet { .. })]));
    assert_eq!(c.state().name(), "Failed");
}

#[test]
fn a_write_error_or_an_abandoned_segment_fails_only_that_job() {
    let mut c = WriterCore::new(Policy::Fifo);
    submit(&mut c, 0, 7, 0);
    submit(&mut c, 1, 7, 1);
    submit(&mut c, 2, 7, 2);
    let fx = written(&mut c, 0, WriteOutcome::Failed("bad CRC".into()));
    assert_eq!(failed(&fx)[0].1.to_string(), "segment 0 of ABS 7: bad CRC");
    assert_eq!(fx[1], write(1, 7, 1));
    let fx = written(&mut c, 1, WriteOutcome::Abandoned);
    assert_eq!(
        failed(&fx)[0].1.to_string(),
        "segment 1 of ABS 7 was not written: its front-end went away"
    );
    assert_eq!(fx[1], write(2, 7, 2));
}

#[test]
fn a_segment_asked_again_replaces_a_queued_one_or_waits_for_the_write() {
    let mut c = WriterCore::new(Policy::Fifo);
    submit(&mut c, 0, 7, 0);
    submit(&mut c, 1, 7, 1);
    let fx = submit(&mut c, 2, 7, 1);
    assert!(matches!(&failed(&fx)[..], [(1, JobFailure::Replaced { .. })]));
    // Asked again while being written: written again after.
    assert!(submit(&mut c, 3, 7, 0).is_empty());
    let fx = submit(&mut c, 4, 7, 0);
    assert!(matches!(&failed(&fx)[..], [(3, JobFailure::Replaced { .. })]));
    let fx = written(&mut c, 0, WriteOutcome::Placed("a"));
    assert_eq!(fx, vec![ok(0, "a"), write(4, 7, 0)]);
    assert_eq!(
        written(&mut c, 4, WriteOutcome::Placed("b")),
        vec![ok(4, "b"), write(2, 7, 1)]
    );
}

#[test]
fn a_segment_the_spool_cannot_count_is_refused() {
    let mut c = WriterCore::new(Policy::Fifo);
    let big = |seq| ReadySegment {
        bytes: u64::MAX,
        ..seg(7, seq)
    };
    step(
        &mut c,
        Event::Segment {
            id: JobId(0),
            ready: big(0),
        },
    );
    let fx = step(
        &mut c,
        Event::Segment {
            id: JobId(1),
            ready: big(1),
        },
    );
    assert!(matches!(
        &failed(&fx)[..],
        [(
            1,
            JobFailure::Queue {
                source: ScheduleError::SpoolOverflow { .. },
                ..
            }
        )]
    ));
}

#[test]
fn an_event_out_of_place_is_an_error_and_changes_nothing() {
    let mut c = WriterCore::new(Policy::Fifo);
    let e = c.apply(Event::<P>::Mounted(Ok(()))).unwrap_err();
    assert_eq!((e.state, e.expected), ("Idle", "Mounting"));
    submit(&mut c, 0, 7, 0);
    let e = c.apply(Event::<P>::Written {
        id: JobId(5),
        outcome: WriteOutcome::Placed("x"),
    });
    assert!(e.unwrap_err().to_string().contains("found event Written(5)"));
    assert_eq!(c.state().job().map(|j| j.id), Some(JobId(0)));
    let e = c.apply(Event::<P>::Answered(Ok(next_tape("T2")))).unwrap_err();
    assert_eq!((e.state, e.expected), ("Writing", "EndOfTape"));
}

#[test]
fn shutdown_fails_what_waits_and_lets_the_write_under_way_end() {
    let mut c = WriterCore::new(Policy::Fifo);
    submit(&mut c, 0, 7, 0);
    submit(&mut c, 1, 7, 1);
    let fx = step(&mut c, Event::Shutdown);
    assert!(matches!(&failed(&fx)[..], [(1, JobFailure::Stopped { .. })]));
    assert_eq!(c.state().name(), "Writing");
    assert!(matches!(
        &failed(&submit(&mut c, 2, 7, 2))[..],
        [(2, JobFailure::Stopped { .. })]
    ));
    assert_eq!(written(&mut c, 0, WriteOutcome::Placed("a")), vec![ok(0, "a")]);
    assert_eq!(*c.state(), State::Stopped);

    // At the end of a tape: the job does not move on to another tape.
    let mut c = at_end_of_tape();
    assert!(step(&mut c, Event::Shutdown).is_empty());
    let fx = step(&mut c, Event::Answered(Ok(next_tape("T2"))));
    assert!(matches!(&failed(&fx)[..], [(0, JobFailure::Stopped { .. })]));
    assert_eq!(*c.state(), State::Stopped);
}

mod shell {
    //! The shell with a real drive (in-memory tapes) and a fake station.

    use std::collections::VecDeque;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use proto::abs::TrackAddr;
    use proto::tape::block::Capacity;
    use proto::tape::segment::{SegmentHeader, SegmentWriter};
    use proto::wire::{NewTape, StationReply, StationRequest};

    use crate::backend::device::memory::MemoryMounter;
    use crate::backend::drive::{Drive, DriveSpec};
    use crate::backend::schedule::Policy;
    use crate::backend::writer::shell::{AskStation, BoxFuture};
    use crate::backend::writer::{DriveWriter, SegmentSource};

    /// Answers each full tape from a script and records the questions.
    #[derive(Default)]
    struct FakeStation {
        answers: Mutex<VecDeque<StationReply>>,
        asked: Mutex<Vec<StationRequest>>,
        /// (tape, ABSs) of each question for CATALOG records.
        records: Mutex<Vec<(String, Vec<u64>)>>,
    }

    impl AskStation for Arc<FakeStation> {
        fn ask(&self, req: StationRequest) -> BoxFuture<Result<StationReply, String>> {
            if let StationRequest::TapeRecords {
                tape_label, abs_ids, ..
            } = &req
            {
                let ids: Vec<u64> = abs_ids.iter().map(|a| a.get()).collect();
                self.records
                    .lock()
                    .expect("lock")
                    .push((tape_label.clone(), ids.clone()));
                let records = ids
                    .into_iter()
                    .map(|id| proto::wire::AbsRecord {
                        abs_id: proto::domain::AbsId::new(id),
                        record: record(id),
                    })
                    .collect();
                return Box::pin(async move { Ok(StationReply::Records(records)) });
            }
            self.asked.lock().expect("lock").push(req);
            let answer = self.answers.lock().expect("lock").pop_front();
            Box::pin(async move { answer.ok_or_else(|| "the station went away".to_string()) })
        }
    }

    fn record(abs_id: u64) -> proto::tape::management::Management {
        proto::tape::management::Management {
            cluster_id: proto::domain::Uuid::from_random_bytes([1; 16]),
            abs_uuid: proto::domain::Uuid::from_random_bytes([2; 16]),
            client: "host".into(),
            primary_node: "pn1".into(),
            level: proto::domain::Level::Full,
            base_uuid: proto::domain::Uuid::NIL,
            chain: vec![abs_id],
            point_in_time_ms: 1,
            epochs: Vec::new(),
            pool: "default".into(),
            copy_number: 0,
            label: String::new(),
            created_ms: 1,
            placements: Vec::new(),
            written_ms: Some(2),
        }
    }

    fn new_tape(sequence: u32) -> NewTape {
        NewTape {
            pool: "default".into(),
            media_set: proto::domain::MediaSetId::new(1),
            sequence,
            block_size: 4096,
        }
    }

    fn segment_file(dir: &Path, seq: u32) -> SegmentSource {
        let hdr = SegmentHeader {
            abs_id: 7,
            seq,
            channel_id: 1,
            created_unix: 1_700_000_000,
        };
        let mut w = SegmentWriter::new(Vec::new(), hdr).expect("segment");
        w.append_track(TrackAddr { volume: 0, track: 1 }, &vec![seq as u8; 8000])
            .expect("track");
        let bytes = w.finish().expect("finish").0;
        let path = dir.join(format!("seg-{seq}"));
        std::fs::write(&path, &bytes).expect("spool file");
        SegmentSource {
            path,
            bytes: bytes.len() as u64,
            object_name: "vm".into(),
            abandoned: Arc::default(),
        }
    }

    async fn run(answers: Vec<StationReply>, count: u32) -> (Vec<anyhow::Result<(String, u32)>>, Arc<FakeStation>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let capacity = Some(Capacity::new(60_000, 30_000).expect("capacity"));
        let spec = DriveSpec { capacity, speed: None };
        let mut drive = Drive::with_mounter("d0", spec, Box::new(MemoryMounter::new(capacity)));
        drive.mount_for_write("T1", Some(&new_tape(1))).expect("mount");
        let drive = Arc::new(Mutex::new(drive));
        let station = Arc::new(FakeStation::default());
        station.answers.lock().expect("lock").extend(answers);
        let rt = tokio::runtime::Handle::current();
        let w = DriveWriter::spawn("d0", drive, Policy::Fifo, station.clone(), rt).expect("spawn");
        let mut writes = Vec::new();
        for seq in 0..count {
            let (w, src) = (w.clone(), segment_file(dir.path(), seq));
            writes.push(tokio::spawn(async move { w.write_segment(1, 7, seq, src).await }));
        }
        let mut out = Vec::new();
        for h in writes {
            let placed = h.await.expect("join");
            out.push(placed.map(|p| (p.tape_label, p.entry.seq)));
        }
        (out, station)
    }

    /// On a current-thread runtime: nothing in the shell blocks the
    /// runtime while it waits for the station.
    #[tokio::test]
    async fn a_full_tape_continues_on_the_station_s_next_tape() {
        let next = |n: u32| StationReply::NextTape {
            tape_label: format!("T{n}"),
            new: new_tape(n),
        };
        let (out, station) = run(vec![next(2), next(3), next(4)], 8).await;
        let placed: Vec<(String, u32)> = out.into_iter().map(|r| r.expect("placed")).collect();
        // Every segment once, in order, filling T1, then T2, ...
        let mut on = [0u32; 5];
        for (seq, (tape, s)) in placed.iter().enumerate() {
            assert_eq!(*s, seq as u32);
            let n: usize = tape.trim_start_matches('T').parse().expect("label");
            assert!(on[n + 1..].iter().all(|c| *c == 0), "{placed:?}");
            on[n] += 1;
        }
        assert!(on[1] > 0 && on[2] > 0, "{placed:?}");
        // The station was asked once per full tape, with what it holds.
        let asked = station.asked.lock().expect("lock").clone();
        let tapes = on.iter().filter(|c| **c > 0).count();
        assert_eq!(asked.len(), tapes - 1, "{asked:?}");
        for (i, req) in asked.iter().enumerate() {
            let label = format!("T{}", i + 1);
            assert!(
                matches!(req, StationRequest::TapeFull { drive, tape_label, files, .. }
                    if drive == "d0" && *tape_label == label && *files == on[i + 1]),
                "{asked:?}"
            );
        }
        // Before each full tape was finished, the records of ABS 7 (its
        // metadata not on the tape) were asked for its CATALOG.
        let records = station.records.lock().expect("lock").clone();
        let want: Vec<(String, Vec<u64>)> = (1..tapes).map(|i| (format!("T{i}"), vec![7])).collect();
        assert_eq!(records, want);
    }

    #[tokio::test]
    async fn a_station_refusal_fails_the_waiting_segments_with_its_reason() {
        let answers = vec![StationReply::Error(proto::domain::Failure::not_found(
            "no scratch tape in pool default",
        ))];
        let (out, _) = run(answers, 8).await;
        let first_failed = out.iter().position(|r| r.is_err()).expect("some fail");
        assert!(first_failed > 0);
        for r in &out[first_failed..] {
            let e = format!("{:#}", r.as_ref().expect_err("failed"));
            assert!(
                e.contains("no tape continues T1: no scratch tape in pool default"),
                "{e}"
            );
        }
    }
}
