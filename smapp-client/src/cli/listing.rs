//! Listings the station returns (ABSs, grants, movers, tapes, segments,
//! channels, a channel's history, notifications), as text tables or JSON
//! lines.

use proto::domain::AbsId;
use proto::wire::StationReply;
use serde_json::json;

use super::progress::human;

pub fn print_listing(reply: StationReply, as_json: bool) {
    match reply {
        StationReply::Abs(rows) => {
            if !as_json {
                println!(
                    "{:>6} {:<20} {:<10} {:<11} {:>6} {:<9} {:<23} {:>12} {:>8} {:>5} {:>4} {:<10} {:>6}  tapes",
                    "abs",
                    "object",
                    "primary",
                    "level",
                    "of",
                    "state",
                    "point in time",
                    "size",
                    "tracks",
                    "segs",
                    "ext",
                    "pool",
                    "copies"
                );
            }
            for r in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"abs_id": r.abs_id.get(), "object": r.object_name, "primary": r.primary, "kind": r.kind.as_str(),
                        "level": r.level.as_str(), "base_abs_id": r.base_abs_id.map_or(0, AbsId::get),
                        "merged_from_abs_id": r.merged_from_abs_id.map_or(0, AbsId::get),
                        "point_in_time": r.point_in_time, "state": r.state.as_str(), "object_size": r.object_size, "data_bytes": r.data_bytes, "tracks": r.track_count,
                        "segments": r.segment_count, "extents": r.extents, "created": r.created, "tapes": r.tapes,
                        "pool": r.pool, "copies": r.copies.len(), "copy_pools": r.copies, "uuid": r.uuid, "label": r.label, "origin_cluster": r.origin_cluster,
                        "definition": r.definition, "from_version": r.from_version})
                    );
                } else {
                    println!(
                        "{:>6} {:<20} {:<10} {:<11} {:>6} {:<9} {:<23} {:>12} {:>8} {:>5} {:>4} {:<10} {:>6}  {}",
                        r.abs_id,
                        r.object_name,
                        r.primary,
                        r.level,
                        match (r.base_abs_id, r.merged_from_abs_id) {
                            (None, None) => "-".to_string(),
                            (Some(b), None) => b.to_string(),
                            (_, Some(m)) => format!("<{m}"),
                        },
                        r.state,
                        r.point_in_time,
                        human(r.object_size),
                        r.track_count,
                        r.segment_count,
                        r.extents,
                        r.pool,
                        r.copies.len(),
                        r.tapes.join(",")
                    );
                    if !r.from_version.is_empty() {
                        println!("       read from copy version {}", r.from_version);
                    }
                }
            }
        }
        StationReply::Grants(rows) => {
            if !as_json {
                println!(
                    "{:<12} {:<12} {:<16} {:<7} {:<8} {:<12} granted",
                    "client", "primary", "object", "backup", "restore", "by"
                );
            }
            for g in rows {
                let object = if g.object.is_empty() { "*" } else { g.object.as_str() };
                if as_json {
                    println!(
                        "{}",
                        json!({"client": g.client, "primary": g.primary, "object": object, "backup": g.backup,
                        "restore": g.restore, "granted_by": g.granted_by, "granted_at": g.granted_at})
                    );
                } else {
                    println!(
                        "{:<12} {:<12} {:<16} {:<7} {:<8} {:<12} {}",
                        g.client, g.primary, object, g.backup, g.restore, g.granted_by, g.granted_at
                    );
                }
            }
        }
        StationReply::Movers(rows) => {
            if !as_json {
                println!(
                    "{:<12} {:<10} {:<22} {:<8} {:<23} last seen",
                    "name", "role", "address", "state", "registered"
                );
            }
            for m in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"name": m.name, "role": m.role.as_str(), "address": m.address, "state": m.state.as_str(),
                        "registered": m.registered, "last_seen": m.last_seen})
                    );
                } else {
                    println!(
                        "{:<12} {:<10} {:<22} {:<8} {:<23} {}",
                        m.name, m.role, m.address, m.state, m.registered, m.last_seen
                    );
                }
            }
        }
        StationReply::Tapes(rows) => {
            if !as_json {
                println!(
                    "{:<8} {:<10} {:<8} {:>12} {:>6} {:<9} {:<8} {:>5} {:<8} path",
                    "label", "pool", "state", "bytes", "files", "media-set", "where", "slot", "drive"
                );
            }
            for t in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"label": t.label, "pool": t.pool, "state": t.state.as_str(), "path": t.path,
                        "bytes_written": t.bytes_written, "files_written": t.files_written, "mounted_in": t.mounted_in,
                        "media_set": t.media_set.map(|m| m.get()), "sequence": t.sequence, "location": t.location.as_str(),
                        "slot": t.slot, "emptied": t.emptied, "reuses": t.reuses})
                    );
                } else {
                    let set = match (t.media_set, t.sequence) {
                        (Some(m), Some(q)) => format!("{m}.{q}"),
                        _ => "-".into(),
                    };
                    println!(
                        "{:<8} {:<10} {:<8} {:>12} {:>6} {:<9} {:<8} {:>5} {:<8} {}",
                        t.label,
                        t.pool,
                        t.state,
                        human(t.bytes_written),
                        t.files_written,
                        set,
                        t.location,
                        t.slot.map(|q| q.to_string()).unwrap_or_else(|| "-".into()),
                        t.mounted_in.unwrap_or_else(|| "-".into()),
                        t.path
                    );
                }
            }
        }
        StationReply::Segments(rows) => {
            if !as_json {
                println!(
                    "{:>6} {:>5} {:<8} {:>6} {:>12} {:>7} {:<8} {:<10} {:<7} crc32c",
                    "abs", "seq", "tape", "file", "bytes", "tracks", "copy", "pool", "status"
                );
            }
            for s in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"abs_id": s.abs_id.get(), "seq": s.seq.get(), "tape": s.tape_label, "tape_file": s.tape_file,
                        "bytes": s.bytes, "data_bytes": s.data_bytes, "tracks": s.track_count, "crc32c": s.crc32c,
                        "copy": s.copy, "pool": s.pool, "status": s.status.as_str()})
                    );
                } else {
                    println!(
                        "{:>6} {:>5} {:<8} {:>6} {:>12} {:>7} {:<8} {:<10} {:<7} {:08x}",
                        s.abs_id,
                        s.seq,
                        s.tape_label,
                        s.tape_file,
                        s.bytes,
                        s.track_count,
                        if s.copy { "copy" } else { "primary" },
                        s.pool,
                        s.status,
                        s.crc32c
                    );
                }
            }
        }
        StationReply::Audit(r) => {
            if as_json {
                for d in &r.damaged {
                    println!(
                        "{}",
                        json!({"damaged": true, "abs_id": d.abs_id.get(), "seq": d.seq.get(), "tape_file": d.tape_file,
                        "copy": d.copy, "reason": d.reason})
                    );
                }
                println!(
                    "{}",
                    json!({"result": "tape audit", "tape": r.tape_label, "checked": r.checked, "bytes": r.bytes,
                    "damaged": r.damaged.len()})
                );
            } else {
                for d in &r.damaged {
                    println!(
                        "damaged: file {} segment {} of ABS {} ({}): {}",
                        d.tape_file,
                        d.seq,
                        d.abs_id,
                        if d.copy { "copy" } else { "primary" },
                        d.reason
                    );
                }
                println!(
                    "tape {}: {} segments ({}) checked, {} damaged",
                    r.tape_label,
                    r.checked,
                    human(r.bytes),
                    r.damaged.len()
                );
            }
        }
        StationReply::Imported { tapes, abs, notes } => {
            for n in &notes {
                eprintln!("note: {n}");
            }
            let ids: Vec<u64> = abs.iter().map(|a| a.get()).collect();
            let labels: Vec<String> = tapes.iter().map(|t| t.label.clone()).collect();
            // The tapes as `library list` shows them, then what was recorded.
            print_listing(StationReply::Tapes(tapes), as_json);
            if as_json {
                println!(
                    "{}",
                    json!({"result": "imported", "tapes": labels, "abs": ids, "notes": notes})
                );
            } else {
                if !ids.is_empty() {
                    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
                    println!("ABSs recorded from them: {}", list.join(", "));
                }
            }
        }
        StationReply::Deleted { abs, tapes_emptied } => {
            let ids: Vec<u64> = abs.iter().map(|a| a.get()).collect();
            if as_json {
                println!(
                    "{}",
                    json!({"result": "deleted", "abs": ids, "tapes_emptied": tapes_emptied})
                );
            } else {
                let list: Vec<String> = ids.iter().map(u64::to_string).collect();
                println!("deleted ABS {}", list.join(", "));
                for t in &tapes_emptied {
                    println!("tape {t} holds nothing wanted any more: scratch again after its pool's retention");
                }
            }
        }
        StationReply::Definitions(rows) => super::definitions::print(&rows, as_json),
        StationReply::Pools(rows) => {
            if !as_json {
                println!(
                    "{:<16} {:<8} {:<20} {:>6} {:>12} {:>6} {:>7}",
                    "pool", "kind", "copies of", "tapes", "bytes", "abs", "retain"
                );
            }
            for p in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"pool": p.name, "kind": p.kind.as_str(), "copies_of": p.copies_of, "tapes": p.tapes,
                        "bytes_written": p.bytes_written, "abs": p.abs, "retain_days": p.retain_days})
                    );
                } else {
                    println!(
                        "{:<16} {:<8} {:<20} {:>6} {:>12} {:>6} {:>6}d",
                        p.name,
                        p.kind,
                        if p.copies_of.is_empty() {
                            "-".to_string()
                        } else {
                            p.copies_of.join(",")
                        },
                        p.tapes,
                        human(p.bytes_written),
                        p.abs,
                        p.retain_days
                    );
                }
            }
        }
        StationReply::Channels(rows) => {
            if !as_json {
                println!(
                    "{:>5} {:<8} {:>5} {:<17} {:<6} {:<6} {:<6} {:<7} {:>12}  reason",
                    "chan", "kind", "abs", "state", "fe", "be", "drive", "tape", "bytes"
                );
            }
            for c in rows {
                if as_json {
                    println!(
                        "{}",
                        json!({"channel_id": c.channel_id.get(), "kind": c.kind.as_str(), "abs_id": c.abs_id.get(), "state": c.state.as_str(),
                        "reason": c.reason, "front_end": c.front_end, "back_end": c.back_end, "drive": c.drive, "tape": c.tape,
                        "bytes": c.bytes, "updated": c.updated})
                    );
                } else {
                    println!(
                        "{:>5} {:<8} {:>5} {:<17} {:<6} {:<6} {:<6} {:<7} {:>12}  {}",
                        c.channel_id,
                        c.kind,
                        c.abs_id,
                        c.state,
                        c.front_end,
                        c.back_end,
                        c.drive,
                        c.tape,
                        human(c.bytes),
                        c.reason
                    );
                }
            }
        }
        StationReply::History {
            channel,
            transitions,
            notes,
        } => {
            // A channel's creation is a transition from nothing: `-`.
            let from = |t: &proto::wire::TransitionInfo| t.from.map_or("-", |s| s.as_str());
            if as_json {
                let t: Vec<_> = transitions
                    .iter()
                    .map(|t| json!({"from": from(t), "to": t.to.as_str(), "reason": t.reason, "actor": t.actor, "at": t.at}))
                    .collect();
                let n: Vec<_> = notes
                    .iter()
                    .map(|n| json!({"actor": n.actor, "text": n.text, "at": n.at}))
                    .collect();
                println!(
                    "{}",
                    json!({"channel_id": channel.channel_id.get(), "kind": channel.kind.as_str(), "state": channel.state.as_str(), "transitions": t, "notes": n})
                );
            } else {
                println!(
                    "channel {} ({} of ABS {}): {} — {}",
                    channel.channel_id, channel.kind, channel.abs_id, channel.state, channel.reason
                );
                // State changes and notes, in time order (the times sort
                // as text).
                let mut lines: Vec<(&str, String)> = transitions
                    .iter()
                    .map(|t| {
                        let line = format!(
                            "  {}  {:<17} -> {:<17} {:<10} {}",
                            t.at,
                            from(t),
                            t.to,
                            t.actor,
                            t.reason
                        );
                        (t.at.as_str(), line)
                    })
                    .collect();
                for n in &notes {
                    let text = n.text.trim_end().replace('\n', "\n      | ");
                    lines.push((
                        n.at.as_str(),
                        format!("  {}  {:<38} {:<10} {}", n.at, "note", n.actor, text),
                    ));
                }
                lines.sort_by(|a, b| a.0.cmp(b.0));
                for (_, line) in lines {
                    println!("{line}");
                }
            }
        }
        StationReply::Notifications(rows) => {
            if !as_json {
                if rows.is_empty() {
                    println!("no open notifications");
                }
                for n in &rows {
                    let state = if n.acknowledged_by.is_empty() {
                        "OPEN".to_string()
                    } else {
                        format!("acknowledged by {} at {}", n.acknowledged_by, n.acknowledged)
                    };
                    println!("#{:<5} {}  {:<15} {:<20} {state}", n.id, n.raised, n.kind, n.subject);
                    println!("       {}", n.message);
                    if !n.last_error.is_empty() {
                        println!("       webhook: {} attempts, last: {}", n.attempts, n.last_error);
                    }
                }
            }
            for n in rows.iter().filter(|_| as_json) {
                println!(
                    "{}",
                    json!({"id": n.id, "kind": n.kind.as_str(), "subject": n.subject, "message": n.message,
                    "channel_id": n.channel_id.map(|c| c.get()), "raised": n.raised,
                    "acknowledged_by": n.acknowledged_by, "acknowledged": n.acknowledged,
                    "delivered": n.delivered, "attempts": n.attempts, "last_error": n.last_error})
                );
            }
        }
        other => println!("{other:?}"),
    }
}
