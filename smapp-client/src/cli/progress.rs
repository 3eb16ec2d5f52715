//! Following a job: the progress bar, the lines about its steps, and the
//! result line.

use indicatif::{ProgressBar, ProgressStyle};
use proto::domain::{AbsId, ChannelId};
use proto::wire::ChannelEvent;
use serde_json::json;

pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1048575 => format!("{:.1} KiB", b / 1024.0),
        1048576..=1073741823 => format!("{:.1} MiB", b / 1048576.0),
        _ => format!("{:.2} GiB", b / 1073741824.0),
    }
}

pub fn progress_bar(json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

pub fn on_event(pb: &ProgressBar, json: bool) -> impl FnMut(&ChannelEvent) + '_ {
    move |ev| match ev {
        ChannelEvent::Started {
            channel_id,
            abs_id,
            track_bytes,
            tracks,
            ..
        } => {
            pb.set_length(*track_bytes);
            pb.set_message(format!("channel {channel_id}, ABS {abs_id}, {tracks} tracks"));
        }
        ChannelEvent::Accepted { channel_id, abs_id } => {
            pb.set_message(format!("channel {channel_id}, ABS {abs_id}"));
            line(
                pb,
                json,
                json!({"event": "accepted", "channel_id": channel_id.get(), "abs_id": abs_id.get()}),
                || format!("  accepted: channel {channel_id}, ABS {abs_id}"),
            );
        }
        ChannelEvent::State { state, reason } => state_line(pb, json, state.as_str(), reason, None),
        // Steps that are not channel states print as state lines too.
        ChannelEvent::Snapshot { detail } => state_line(pb, json, "snapshot", detail, None),
        ChannelEvent::Planned { detail } => state_line(pb, json, "planned", detail, None),
        ChannelEvent::Chain { members, detail } => state_line(pb, json, "chain", detail, Some(members)),
        ChannelEvent::Waiting { what, seconds } => line(
            pb,
            json,
            json!({"event": "waiting", "for": what, "seconds": seconds}),
            || format!("  still waiting for {what} ({seconds}s)"),
        ),
        ChannelEvent::Resumed {
            front_end,
            segments_on_tape,
        } => line(
            pb,
            json,
            json!({"event": "resumed", "front_end": front_end, "segments_on_tape": segments_on_tape}),
            || format!("  resumed: front-end {front_end} came back; {segments_on_tape} segments were already on tape"),
        ),
        ChannelEvent::Progress { bytes } => pb.set_position(*bytes),
        ChannelEvent::Hook {
            phase,
            host,
            status,
            output,
        } => line(
            pb,
            json,
            json!({"event": "hook", "phase": phase.as_str(), "host": host, "status": status, "output": output}),
            || {
                let how = status.map_or("was killed or could not run".to_string(), |s| format!("exited {s}"));
                let out = output.trim_end();
                if out.is_empty() {
                    format!("  {phase} command on {host} {how}")
                } else {
                    format!(
                        "  {phase} command on {host} {how}:\n    {}",
                        out.replace('\n', "\n    ")
                    )
                }
            },
        ),
        _ => {}
    }
}

/// A `state` line: a channel state, or another step of the job (`chain`
/// with the ABSs of the chain, `snapshot`, `planned`).
fn state_line(pb: &ProgressBar, json: bool, state: &str, reason: &str, members: Option<&[AbsId]>) {
    let mut obj = json!({"event": "state", "state": state, "reason": reason});
    if let Some(m) = members {
        obj["members"] = json!(m.iter().map(|a| a.get()).collect::<Vec<_>>());
    }
    line(pb, json, obj, || format!("  {state}: {reason}"));
}

/// A line about a job while it runs: above the progress bar, or (with
/// --json) a JSON object on stderr, so that stdout holds only results.
fn line(pb: &ProgressBar, json: bool, obj: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        eprintln!("{obj}");
    } else {
        pb.println(text());
    }
}

pub fn report(what: &str, abs: AbsId, channel: ChannelId, ev: &ChannelEvent, as_json: bool) {
    if let ChannelEvent::Finished {
        bytes,
        tracks,
        segments,
        tapes,
        seconds,
    } = ev
    {
        let mbs = *bytes as f64 / 1e6 / seconds.max(1e-9);
        if as_json {
            println!(
                "{}",
                json!({"result": what, "abs_id": abs.get(), "channel_id": channel.get(), "bytes": bytes, "tracks": tracks,
                       "segments": segments, "tapes": tapes, "seconds": seconds, "mb_per_s": mbs})
            );
        } else {
            println!(
                "{what} done: ABS {abs}, channel {channel}: {} in {tracks} tracks, {segments} segments on {}, {seconds:.1} s, {mbs:.1} MB/s",
                human(*bytes),
                tapes.join(", ")
            );
        }
    }
}

/// The result line of a pool backup.
pub fn report_copied(primary: &str, copy_pool: &str, ev: &ChannelEvent, as_json: bool) {
    if let ChannelEvent::Copied {
        abs,
        segments,
        bytes,
        tapes_read,
        tapes_written,
        seconds,
    } = ev
    {
        let mbs = *bytes as f64 / 1e6 / seconds.max(1e-9);
        if as_json {
            println!(
                "{}",
                json!({"result": "pool backup", "primary": primary, "copy_pool": copy_pool, "abs": abs,
                       "segments": segments, "bytes": bytes, "tapes_read": tapes_read,
                       "tapes_written": tapes_written, "seconds": seconds, "mb_per_s": mbs})
            );
        } else if *abs == 0 {
            println!("pool backup done: nothing to copy from {primary} to {copy_pool} (0 bytes)");
        } else {
            println!(
                "pool backup done: {abs} ABS, {segments} segments, {} copied from {primary} to {copy_pool}: read {}, wrote {}, {seconds:.1} s, {mbs:.1} MB/s",
                human(*bytes),
                tapes_read.join(", "),
                tapes_written.join(", ")
            );
        }
    }
}

/// The outcome of `abs copy` or `abs move` (`what`).
pub fn report_relocated(what: &str, abs_id: AbsId, pool: &str, ev: &ChannelEvent, as_json: bool) {
    if let ChannelEvent::Copied {
        segments,
        bytes,
        tapes_read,
        tapes_written,
        seconds,
        ..
    } = ev
    {
        if as_json {
            println!(
                "{}",
                json!({"result": what, "abs_id": abs_id.get(), "pool": pool, "segments": segments, "bytes": bytes,
                       "tapes_read": tapes_read, "tapes_written": tapes_written, "seconds": seconds})
            );
        } else {
            println!(
                "{what} done: ABS {abs_id} to pool {pool}: {segments} segments, {} read from {}, written to {}, {seconds:.1} s",
                human(*bytes),
                tapes_read.join(", "),
                tapes_written.join(", ")
            );
        }
    }
}

/// The outcome of `tape recover`.
pub fn report_recovered(label: &str, ev: &ChannelEvent, as_json: bool) {
    if let ChannelEvent::Copied {
        abs,
        segments,
        bytes,
        tapes_read,
        tapes_written,
        seconds,
    } = ev
    {
        let mbs = *bytes as f64 / 1e6 / seconds.max(1e-9);
        if as_json {
            println!(
                "{}",
                json!({"result": "tape recover", "tape": label, "abs": abs, "segments": segments, "bytes": bytes,
                       "tapes_read": tapes_read, "tapes_written": tapes_written, "seconds": seconds, "mb_per_s": mbs})
            );
        } else {
            println!(
                "tape {label} recovered: {segments} segments of {abs} ABS, {} read from {} and written to {}, {seconds:.1} s, {mbs:.1} MB/s",
                human(*bytes),
                tapes_read.join(", "),
                tapes_written.join(", ")
            );
        }
    }
}
