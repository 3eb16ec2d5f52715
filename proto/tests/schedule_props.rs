//! Properties of backup definition schedules: the next slot is after now,
//! no slot is skipped between now and it, and a tick after any outage runs
//! once and lands on the schedule's grid.

use proptest::prelude::*;
use proto::domain::Schedule;

const DAY_MS: i64 = 86_400_000;
/// 2000-01-01 .. 2100-01-01, in Unix milliseconds.
const TIMES: std::ops::Range<i64> = 946_684_800_000..4_102_444_800_000;

fn schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![
        (0..DAY_MS / 60_000).prop_map(|m| Schedule::Daily { at_ms: m * 60_000 }),
        (0u8..7, 0..DAY_MS / 60_000).prop_map(|(d, m)| Schedule::Weekly {
            weekday: d,
            at_ms: m * 60_000
        }),
        (5i64..40 * 86_400).prop_map(|s| Schedule::Every { period_ms: s * 1000 }),
    ]
}

/// The longest gap between two slots.
fn cycle(s: &Schedule) -> i64 {
    match *s {
        Schedule::Daily { .. } => DAY_MS,
        Schedule::Weekly { .. } => 7 * DAY_MS,
        Schedule::Every { period_ms } => period_ms,
    }
}

proptest! {
    #[test]
    fn the_next_slot_is_after_now_and_within_one_cycle(s in schedule(), anchor in TIMES, ahead in 0i64..400 * DAY_MS) {
        let now = anchor + ahead;
        let next = s.next_after(anchor, now);
        prop_assert!(next > now);
        prop_assert!(next - now <= cycle(&s));
        // Nothing in between: the slot after (next - 1) is next itself.
        prop_assert_eq!(s.next_after(anchor, next - 1), next);
        // The slot after is one cycle on at most.
        prop_assert!(s.next_after(anchor, next) - next <= cycle(&s));
    }

    #[test]
    fn any_outage_runs_once_and_keeps_the_grid(s in schedule(), made in TIMES, down in 0i64..1000 * DAY_MS) {
        let first = s.first_due(made);
        prop_assert!(first > made);
        let now = first + down;
        let d = s.due(first, now);
        prop_assert!(d.run);
        prop_assert!(d.next_due_ms > now);
        prop_assert!(d.next_due_ms - now <= cycle(&s));
        // The new due time is a slot of the same grid as the first.
        prop_assert_eq!((d.next_due_ms - first).rem_euclid(cycle(&s)), 0);
        // Before it comes, nothing runs.
        prop_assert!(!s.due(d.next_due_ms, d.next_due_ms - 1).run);
    }

    #[test]
    fn the_spelling_parses_back(s in schedule()) {
        prop_assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
    }
}
