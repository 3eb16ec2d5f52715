//! CPU time of processes, read from `/proc`, for the benchmarks: how many
//! CPU-seconds each process (and a whole process tree, e.g. Postgres with
//! its backends) spent during a phase.

use std::collections::BTreeMap;
use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ; 100 on Linux).
const TICKS: f64 = 100.0;

/// (utime + stime, cutime + cstime) of a process in ticks.
fn times(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let n = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    Some((n(11)? + n(12)?, n(13)? + n(14)?))
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU-seconds a process has used so far (itself only).
pub fn process_seconds(pid: u32) -> Option<f64> {
    times(pid).map(|(own, _)| own as f64 / TICKS)
}

/// CPU-seconds of a process tree so far: the root, the children it has
/// already waited for, and every live descendant.
pub fn tree_seconds(root: u32) -> Option<f64> {
    let (own, reaped) = times(root)?;
    let mut ticks = own + reaped;
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some(pp) = parent(pid) {
                    children.entry(pp).or_default().push(pid);
                }
            }
        }
    }
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some((own, reaped)) = times(c) {
                ticks += own + reaped;
            }
            stack.push(c);
        }
    }
    Some(ticks as f64 / TICKS)
}

/// CPU-seconds of the children this process has waited for (e.g. each
/// `smapp` run).
pub fn reaped_children_seconds() -> f64 {
    times(std::process::id()).map_or(0.0, |(_, r)| r as f64 / TICKS)
}

/// The postmaster's pid of a cluster whose data directory is `data`.
pub fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_this_process_and_a_waited_child() {
        let me = std::process::id();
        let before = process_seconds(me).unwrap();
        // Burn CPU here until the count says 0.2 s more (however busy the
        // machine; a count that never moves fails after 60 s), and in a child.
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while process_seconds(me).unwrap() - before < 0.2 {
            assert!(
                t.elapsed().as_secs() < 60,
                "60 s of spinning counted less than 0.2 s of CPU"
            );
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        assert!(x != 42);
        let reaped = reaped_children_seconds();
        let st = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(process_seconds(me).unwrap() - before >= 0.2);
        assert!(reaped_children_seconds() > reaped);
        assert!(tree_seconds(me).unwrap() >= process_seconds(me).unwrap());
    }
}
