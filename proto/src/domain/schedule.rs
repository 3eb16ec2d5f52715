//! When a backup definition runs: `daily HH:MM`, `weekly DAY HH:MM` or
//! `every N{s,m,h,d}`, in UTC. Pure arithmetic over Unix milliseconds; the
//! station's scheduler asks [`Schedule::due`] what to do at each tick.
//!
//! Missed runs (the station was down over one or more slots) run once, not
//! once per slot: [`Schedule::due`] answers one run and the first slot after
//! now.

use std::fmt;
use std::str::FromStr;

const SECOND_MS: i64 = 1000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;

/// Shortest period of `every`: a definition runs no more often.
pub const MIN_PERIOD_MS: i64 = 5 * SECOND_MS;
/// Longest period of `every` (a year).
pub const MAX_PERIOD_MS: i64 = 366 * DAY_MS;

/// Day names as written in schedules, Monday first.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A definition's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this many milliseconds after midnight UTC.
    Daily { at_ms: i64 },
    /// Every week on `weekday` (0 = Monday) at `at_ms` after midnight UTC.
    Weekly { weekday: u8, at_ms: i64 },
    /// Every `period_ms`, counted from when the definition was made.
    Every { period_ms: i64 },
}

/// A schedule that does not parse: what was expected, what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {found:?}: {problem} (expected \"daily HH:MM\", \"weekly DAY HH:MM\" with DAY mon..sun, or \"every N\" with N like 30s, 15m, 6h, 1d; times in UTC)")]
pub struct BadSchedule {
    pub found: String,
    pub problem: String,
}

/// What the scheduler does at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Start one run now (however many slots were missed).
    pub run: bool,
    /// The next slot: stored as the definition's next due time.
    pub next_due_ms: i64,
}

impl Schedule {
    /// The first slot strictly after `now_ms`. For `every`, slots are
    /// `anchor_ms + k·period` (the anchor is a past or present slot: when
    /// the definition was made, or its last due time).
    pub fn next_after(&self, anchor_ms: i64, now_ms: i64) -> i64 {
        match *self {
            Schedule::Daily { at_ms } => next_in_cycle(now_ms, 0, DAY_MS, at_ms),
            // 1970-01-01 was a Thursday: Monday 1970-01-05 starts the cycle.
            Schedule::Weekly { weekday, at_ms } => {
                next_in_cycle(now_ms, 4 * DAY_MS, WEEK_MS, i64::from(weekday) * DAY_MS + at_ms)
            }
            Schedule::Every { period_ms } => {
                if now_ms < anchor_ms {
                    return anchor_ms;
                }
                let k = (now_ms - anchor_ms).div_euclid(period_ms) + 1;
                anchor_ms.saturating_add(k.saturating_mul(period_ms))
            }
        }
    }

    /// The first slot of a definition made at `now_ms` (never `now_ms`
    /// itself: a new definition waits for its first slot).
    pub fn first_due(&self, now_ms: i64) -> i64 {
        self.next_after(now_ms, now_ms)
    }

    /// At `now_ms`, with the stored next due time `next_due_ms`: run once
    /// if it has come (missed slots included), and the next slot after now.
    pub fn due(&self, next_due_ms: i64, now_ms: i64) -> Due {
        if now_ms < next_due_ms {
            return Due {
                run: false,
                next_due_ms,
            };
        }
        Due {
            run: true,
            next_due_ms: self.next_after(next_due_ms, now_ms),
        }
    }
}

/// The first `base + k·cycle + offset` strictly after `now`.
fn next_in_cycle(now: i64, base: i64, cycle: i64, offset: i64) -> i64 {
    let start = base + (now - base).div_euclid(cycle) * cycle;
    let slot = start + offset;
    if slot > now {
        slot
    } else {
        slot + cycle
    }
}

fn bad(found: &str, problem: impl Into<String>) -> BadSchedule {
    BadSchedule {
        found: found.to_string(),
        problem: problem.into(),
    }
}

/// `HH:MM` as milliseconds after midnight.
fn parse_time(found: &str, t: &str) -> Result<i64, BadSchedule> {
    let (h, m) = t
        .split_once(':')
        .ok_or_else(|| bad(found, format!("time {t:?} is not HH:MM")))?;
    let h: i64 = h
        .parse()
        .map_err(|_| bad(found, format!("hour {h:?} is not a number")))?;
    let m: i64 = m
        .parse()
        .map_err(|_| bad(found, format!("minute {m:?} is not a number")))?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad(found, format!("time {t:?} is not between 00:00 and 23:59")));
    }
    Ok(h * HOUR_MS + m * MINUTE_MS)
}

/// `30s`, `15m`, `6h`, `1d` as milliseconds.
fn parse_period(found: &str, p: &str) -> Result<i64, BadSchedule> {
    let unit = match p.chars().last() {
        Some('s') => SECOND_MS,
        Some('m') => MINUTE_MS,
        Some('h') => HOUR_MS,
        Some('d') => DAY_MS,
        _ => return Err(bad(found, format!("period {p:?} has no unit s, m, h or d"))),
    };
    let n: i64 = p[..p.len() - 1]
        .parse()
        .map_err(|_| bad(found, format!("period {p:?} is not a number and a unit")))?;
    let ms = n
        .checked_mul(unit)
        .filter(|ms| (MIN_PERIOD_MS..=MAX_PERIOD_MS).contains(ms))
        .ok_or_else(|| bad(found, format!("period {p:?} is not between 5s and 366d")))?;
    Ok(ms)
}

impl FromStr for Schedule {
    type Err = BadSchedule;

    fn from_str(s: &str) -> Result<Schedule, BadSchedule> {
        let words: Vec<String> = s.split_whitespace().map(str::to_ascii_lowercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["daily", t] => Ok(Schedule::Daily {
                at_ms: parse_time(s, t)?,
            }),
            ["weekly", day, t] => {
                let weekday = DAYS
                    .iter()
                    .position(|d| day.starts_with(d))
                    .and_then(|i| u8::try_from(i).ok())
                    .ok_or_else(|| bad(s, format!("day {day:?} is not one of mon..sun")))?;
                Ok(Schedule::Weekly {
                    weekday,
                    at_ms: parse_time(s, t)?,
                })
            }
            ["every", p] => Ok(Schedule::Every {
                period_ms: parse_period(s, p)?,
            }),
            _ => Err(bad(s, "not a schedule")),
        }
    }
}

/// The canonical spelling (what the catalog stores and listings show).
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |at: i64| format!("{:02}:{:02}", at / HOUR_MS, (at % HOUR_MS) / MINUTE_MS);
        match *self {
            Schedule::Daily { at_ms } => write!(f, "daily {}", hm(at_ms)),
            Schedule::Weekly { weekday, at_ms } => {
                let day = DAYS.get(usize::from(weekday)).copied().unwrap_or("?");
                write!(f, "weekly {day} {}", hm(at_ms))
            }
            Schedule::Every { period_ms } => {
                let (n, unit) = [(DAY_MS, "d"), (HOUR_MS, "h"), (MINUTE_MS, "m")]
                    .into_iter()
                    .find(|(u, _)| period_ms % u == 0)
                    .map(|(u, s)| (period_ms / u, s))
                    .unwrap_or((period_ms / SECOND_MS, "s"));
                write!(f, "every {n}{unit}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04 00:00:00 UTC, a Friday.
    const FRI: i64 = 1_796_342_400_000;

    #[test]
    fn parses_and_spells_the_three_forms() {
        for (text, canonical) in [
            ("daily 02:00", "daily 02:00"),
            ("weekly sun 03:00", "weekly sun 03:00"),
            ("Weekly Sunday 3:05", "weekly sun 03:05"),
            ("every 6h", "every 6h"),
            ("every 10s", "every 10s"),
            ("every 90m", "every 90m"),
            ("every 120m", "every 2h"),
        ] {
            let s: Schedule = text.parse().unwrap();
            assert_eq!(s.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse::<Schedule>().unwrap(), s);
        }
    }

    #[test]
    fn refuses_what_is_not_a_schedule_and_says_why() {
        for (text, why) in [
            ("hourly", "not a schedule"),
            ("daily 25:00", "between 00:00 and 23:59"),
            ("daily 2pm", "not HH:MM"),
            ("weekly funday 03:00", "mon..sun"),
            ("every 1s", "between 5s and 366d"),
            ("every 6", "no unit"),
            ("every xh", "not a number"),
        ] {
            let e = text.parse::<Schedule>().unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn daily_and_weekly_slots_fall_on_their_wall_clock_time() {
        assert_eq!(FRI % DAY_MS, 0);
        let daily: Schedule = "daily 02:00".parse().unwrap();
        assert_eq!(daily.next_after(0, FRI), FRI + 2 * HOUR_MS);
        assert_eq!(daily.next_after(0, FRI + 2 * HOUR_MS), FRI + DAY_MS + 2 * HOUR_MS);
        let weekly: Schedule = "weekly sun 03:00".parse().unwrap();
        assert_eq!(weekly.next_after(0, FRI), FRI + 2 * DAY_MS + 3 * HOUR_MS);
        let friday: Schedule = "weekly fri 01:00".parse().unwrap();
        assert_eq!(friday.next_after(0, FRI + 2 * HOUR_MS), FRI + WEEK_MS + HOUR_MS);
    }

    #[test]
    fn missed_slots_run_once_and_the_next_is_after_now() {
        let every: Schedule = "every 10s".parse().unwrap();
        let made = FRI;
        let first = every.first_due(made);
        assert_eq!(first, made + 10 * SECOND_MS);
        assert!(!every.due(first, made + 5 * SECOND_MS).run);
        // Down for a minute and a half: one run, then the slot after now,
        // still on the definition's 10-second grid.
        let now = made + 95 * SECOND_MS;
        let d = every.due(first, now);
        assert!(d.run);
        assert_eq!(d.next_due_ms, made + 100 * SECOND_MS);
        let daily: Schedule = "daily 02:00".parse().unwrap();
        let d = daily.due(FRI + 2 * HOUR_MS, FRI + 3 * DAY_MS);
        assert_eq!(
            d,
            Due {
                run: true,
                next_due_ms: FRI + 3 * DAY_MS + 2 * HOUR_MS
            }
        );
    }
}
