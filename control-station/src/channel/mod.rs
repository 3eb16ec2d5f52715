//! Channel state machines (seed FIG. 28 backup, FIG. 29 restore).
//!
//! A channel is one backup or restore stream through a front-end/back-end
//! mover pair and a drive. Its life is a small state machine with an explicit
//! transition table per [`ChannelKind`]:
//!
//! ```text
//! backup:  Requested → Opened → BeginningOfTape → Writing
//!          Writing → EndOfTape → BeginningOfTape      (next tape of the media set)
//!          Writing → Closed
//! restore: Requested → Opened → BeginningOfTape → Reading
//!          Reading → EndOfTape → BeginningOfTape      (next tape)
//!          Reading → Closed
//! both:    every non-terminal state → Error; Closed and Error are terminal
//! ```
//!
//! Like NDMP v4's MOVER service, every transition carries a *reason* (why the
//! channel paused at end of tape, why it halted, ...), and the control station
//! persists each one (who, when, why) so an operator can replay the history.
//!
//! This module is pure: no database, no I/O. [`Channel`] is the machine the
//! service drives (`apply(input) → effects`); the catalog checks every
//! persisted transition against [`transition`].

mod machine;

use thiserror::Error;

pub use machine::{Channel, ChannelInput, Effect};

/// The kinds and states are the domain's (the wire and the catalog speak
/// them); their transition tables are here.
pub use proto::domain::{ChannelKind, ChannelState};

use ChannelState as S;

/// Backup transitions other than `→ Error` (seed FIG. 28).
const BACKUP_TABLE: &[(ChannelState, ChannelState)] = &[
    (S::Requested, S::Opened),
    (S::Opened, S::BeginningOfTape),
    (S::BeginningOfTape, S::Writing),
    (S::Writing, S::EndOfTape),
    (S::EndOfTape, S::BeginningOfTape),
    (S::Writing, S::Closed),
];

/// Restore transitions other than `→ Error` (seed FIG. 29).
const RESTORE_TABLE: &[(ChannelState, ChannelState)] = &[
    (S::Requested, S::Opened),
    (S::Opened, S::BeginningOfTape),
    (S::BeginningOfTape, S::Reading),
    (S::Reading, S::EndOfTape),
    (S::EndOfTape, S::BeginningOfTape),
    (S::Reading, S::Closed),
];

/// The explicit transition table of `kind`, without the `→ Error` edges that
/// every non-terminal state has (see [`is_legal`]).
pub fn transition_table(kind: ChannelKind) -> &'static [(ChannelState, ChannelState)] {
    match kind {
        ChannelKind::Backup => BACKUP_TABLE,
        ChannelKind::Restore => RESTORE_TABLE,
    }
}

/// Whether a channel of `kind` may move from `from` to `to`: the edges of
/// [`transition_table`], plus `→ Error` from every non-terminal state of the
/// kind's machine.
pub fn is_legal(kind: ChannelKind, from: ChannelState, to: ChannelState) -> bool {
    if from.is_terminal() || !from.belongs_to(kind) {
        return false;
    }
    if to == ChannelState::Error {
        return true;
    }
    transition_table(kind).contains(&(from, to))
}

/// A transition the state machine of the channel's kind does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("illegal {kind} channel transition {from} → {to}")]
pub struct IllegalTransition {
    pub kind: ChannelKind,
    pub from: ChannelState,
    pub to: ChannelState,
}

/// Check one transition against the table of `kind`.
pub fn transition(kind: ChannelKind, from: ChannelState, to: ChannelState) -> Result<(), IllegalTransition> {
    if is_legal(kind, from, to) {
        Ok(())
    } else {
        Err(IllegalTransition { kind, from, to })
    }
}

/// One applied transition: what changed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: ChannelState,
    pub to: ChannelState,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legal transitions written out by hand, independent of the tables
    /// above: (kind, from, to).
    fn expected_legal() -> Vec<(ChannelKind, ChannelState, ChannelState)> {
        use ChannelKind::*;
        let mut legal = vec![
            (Backup, S::Requested, S::Opened),
            (Backup, S::Opened, S::BeginningOfTape),
            (Backup, S::BeginningOfTape, S::Writing),
            (Backup, S::Writing, S::EndOfTape),
            (Backup, S::EndOfTape, S::BeginningOfTape),
            (Backup, S::Writing, S::Closed),
            (Restore, S::Requested, S::Opened),
            (Restore, S::Opened, S::BeginningOfTape),
            (Restore, S::BeginningOfTape, S::Reading),
            (Restore, S::Reading, S::EndOfTape),
            (Restore, S::EndOfTape, S::BeginningOfTape),
            (Restore, S::Reading, S::Closed),
        ];
        for kind in [Backup, Restore] {
            for from in [S::Requested, S::Opened, S::BeginningOfTape, S::EndOfTape] {
                legal.push((kind, from, S::Error));
            }
        }
        legal.push((Backup, S::Writing, S::Error));
        legal.push((Restore, S::Reading, S::Error));
        legal
    }

    #[test]
    fn every_triple_matches_the_table() {
        let legal = expected_legal();
        let mut checked = 0;
        let mut legal_count = 0;
        for &kind in ChannelKind::ALL {
            for &from in ChannelState::ALL {
                for &to in ChannelState::ALL {
                    let expect = legal.contains(&(kind, from, to));
                    let got = transition(kind, from, to);
                    assert_eq!(got.is_ok(), expect, "{kind} {from} → {to}");
                    assert_eq!(is_legal(kind, from, to), expect, "{kind} {from} → {to}");
                    if let Err(e) = got {
                        assert_eq!(e, IllegalTransition { kind, from, to });
                    } else {
                        legal_count += 1;
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * 8 * 8);
        assert_eq!(legal_count, legal.len());
    }

    #[test]
    fn terminal_states_have_no_exit() {
        for &kind in ChannelKind::ALL {
            for from in [S::Closed, S::Error] {
                for &to in ChannelState::ALL {
                    assert!(transition(kind, from, to).is_err(), "{kind} {from} → {to}");
                }
            }
        }
    }

    #[test]
    fn no_self_loops_and_error_from_every_live_state() {
        for &kind in ChannelKind::ALL {
            for &s in ChannelState::ALL {
                assert!(!is_legal(kind, s, s), "{kind} {s} → {s}");
                assert_eq!(is_legal(kind, s, S::Error), !s.is_terminal() && s.belongs_to(kind));
            }
        }
    }

    #[test]
    fn backup_never_reads_and_restore_never_writes() {
        for &s in ChannelState::ALL {
            assert!(!is_legal(ChannelKind::Backup, s, S::Reading));
            assert!(!is_legal(ChannelKind::Backup, S::Reading, s));
            assert!(!is_legal(ChannelKind::Restore, s, S::Writing));
            assert!(!is_legal(ChannelKind::Restore, S::Writing, s));
        }
    }

    #[test]
    fn strings_round_trip() {
        for &s in ChannelState::ALL {
            assert_eq!(s.as_str().parse::<ChannelState>().unwrap(), s);
            assert_eq!(s.to_string(), s.as_str());
        }
        for &k in ChannelKind::ALL {
            assert_eq!(k.as_str().parse::<ChannelKind>().unwrap(), k);
        }
        assert_eq!(ChannelState::BeginningOfTape.as_str(), "beginning_of_tape");
        assert_eq!(ChannelState::EndOfTape.as_str(), "end_of_tape");
        assert!("Writing".parse::<ChannelState>().is_err());
        assert!("".parse::<ChannelKind>().is_err());
    }
}
