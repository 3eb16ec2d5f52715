//! The channel machine: one channel's state, driven by what happens to it.
//!
//! Every step is `apply(input) → effects`: the machine checks the input
//! against the transition table of its kind, moves, and answers what the
//! shell must do about it (persist the transition with its reason, tell the
//! client). It performs nothing itself. The shell applies an input to a copy
//! and keeps the copy only once the effects are performed, so the machine
//! never runs ahead of the catalog.

use proto::wire::ChannelEvent;

use super::{transition, ChannelKind, ChannelState, IllegalTransition, Transition};

/// What happened to a channel, each with the reason the catalog records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelInput {
    /// The channel has its front-end, back-end and drive(s): `Opened`.
    Assigned(String),
    /// A tape is in the drive, at its beginning: `BeginningOfTape`.
    TapeMounted(String),
    /// The front-end's data path is open: `Writing` (a backup) or
    /// `Reading` (a restore).
    StreamOpened(String),
    /// The tape in the drive is full (a backup), or read (a restore whose
    /// ABS continues on another tape): `EndOfTape`.
    TapeDone(String),
    /// Every byte is on tape, or restored: `Closed`.
    Finished(String),
    /// The channel failed: `Error`. A channel that already ended stays as
    /// it is (the failure came too late to matter).
    Failed(String),
    /// A writing backup's front-end died; it waits for the front-end to
    /// come back and resume from its spool. No state change: the client
    /// is told the channel still writes, and why it waits.
    FrontEndLost(String),
}

impl ChannelInput {
    /// The state the input moves a channel of `kind` to (None: it stays).
    pub fn target(&self, kind: ChannelKind) -> Option<ChannelState> {
        Some(match self {
            ChannelInput::Assigned(_) => ChannelState::Opened,
            ChannelInput::TapeMounted(_) => ChannelState::BeginningOfTape,
            ChannelInput::StreamOpened(_) => match kind {
                ChannelKind::Backup => ChannelState::Writing,
                ChannelKind::Restore => ChannelState::Reading,
            },
            ChannelInput::TapeDone(_) => ChannelState::EndOfTape,
            ChannelInput::Finished(_) => ChannelState::Closed,
            ChannelInput::Failed(_) => ChannelState::Error,
            ChannelInput::FrontEndLost(_) => return None,
        })
    }

    pub fn reason(&self) -> &str {
        match self {
            ChannelInput::Assigned(r)
            | ChannelInput::TapeMounted(r)
            | ChannelInput::StreamOpened(r)
            | ChannelInput::TapeDone(r)
            | ChannelInput::Finished(r)
            | ChannelInput::Failed(r)
            | ChannelInput::FrontEndLost(r) => r,
        }
    }
}

/// What the shell does about one step, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Record the transition (who: the station; when: now; why: its reason).
    Persist(Transition),
    /// Send the event to the channel's client.
    Emit(ChannelEvent),
}

/// A channel's state in memory: its kind, current state, the reason it is
/// in it, and the tapes it has had mounted. Every change goes through
/// [`Channel::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    kind: ChannelKind,
    state: ChannelState,
    reason: String,
    tapes_mounted: u32,
}

impl Channel {
    /// A new channel in `Requested`.
    pub fn new(kind: ChannelKind, reason: impl Into<String>) -> Channel {
        Channel::from_parts(kind, ChannelState::Requested, reason)
    }

    /// A channel restored from storage (state not checked: it was checked
    /// when it was persisted).
    pub fn from_parts(kind: ChannelKind, state: ChannelState, reason: impl Into<String>) -> Channel {
        Channel {
            kind,
            state,
            reason: reason.into(),
            tapes_mounted: 0,
        }
    }

    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    pub fn state(&self) -> ChannelState {
        self.state
    }

    /// Why the channel is in its current state (the reason of the last
    /// transition).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// How many times a tape was mounted for the channel.
    pub fn tapes_mounted(&self) -> u32 {
        self.tapes_mounted
    }

    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// One step. An illegal input leaves the channel unchanged. A state
    /// change yields exactly one [`Effect::Persist`]; every change but one
    /// to `Error` is also told to the client (a failure reaches it as the
    /// job's final event instead).
    pub fn apply(&mut self, input: ChannelInput) -> Result<Vec<Effect>, IllegalTransition> {
        let Some(to) = input.target(self.kind) else {
            return self.front_end_lost(input.reason());
        };
        if to == ChannelState::Error && self.is_terminal() {
            return Ok(Vec::new());
        }
        transition(self.kind, self.state, to)?;
        let reason = input.reason().to_string();
        let applied = Transition {
            from: self.state,
            to,
            reason: reason.clone(),
        };
        self.state = to;
        self.reason = reason.clone();
        if to == ChannelState::BeginningOfTape {
            self.tapes_mounted = self.tapes_mounted.saturating_add(1);
        }
        let mut effects = vec![Effect::Persist(applied)];
        if to != ChannelState::Error {
            effects.push(Effect::Emit(ChannelEvent::State { state: to, reason }));
        }
        Ok(effects)
    }

    /// Only a writing backup waits for its front-end.
    fn front_end_lost(&self, reason: &str) -> Result<Vec<Effect>, IllegalTransition> {
        if self.kind != ChannelKind::Backup || self.state != ChannelState::Writing {
            return Err(IllegalTransition {
                kind: self.kind,
                from: self.state,
                to: self.state,
            });
        }
        Ok(vec![Effect::Emit(ChannelEvent::State {
            state: ChannelState::Writing,
            reason: format!("{reason}; waiting for it to come back and resume from its spool"),
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ChannelState as S;

    fn input(tag: u8, reason: &str) -> ChannelInput {
        let r = reason.to_string();
        match tag % 7 {
            0 => ChannelInput::Assigned(r),
            1 => ChannelInput::TapeMounted(r),
            2 => ChannelInput::StreamOpened(r),
            3 => ChannelInput::TapeDone(r),
            4 => ChannelInput::Finished(r),
            5 => ChannelInput::Failed(r),
            _ => ChannelInput::FrontEndLost(r),
        }
    }

    fn kind_of(b: bool) -> ChannelKind {
        if b {
            ChannelKind::Backup
        } else {
            ChannelKind::Restore
        }
    }

    /// The model: the expected state after an input, written out by hand
    /// from FIG. 28/29 (None: the input is refused).
    fn model(kind: ChannelKind, s: ChannelState, i: &ChannelInput) -> Option<ChannelState> {
        use ChannelInput as I;
        let data = match kind {
            ChannelKind::Backup => S::Writing,
            ChannelKind::Restore => S::Reading,
        };
        match (s, i) {
            (S::Closed | S::Error, I::Failed(_)) => Some(s),
            (S::Closed | S::Error, _) => None,
            (_, I::Failed(_)) => Some(S::Error),
            (S::Requested, I::Assigned(_)) => Some(S::Opened),
            (S::Opened | S::EndOfTape, I::TapeMounted(_)) => Some(S::BeginningOfTape),
            (S::BeginningOfTape, I::StreamOpened(_)) => Some(data),
            (x, I::TapeDone(_)) if x == data => Some(S::EndOfTape),
            (x, I::Finished(_)) if x == data => Some(S::Closed),
            (S::Writing, I::FrontEndLost(_)) if kind == ChannelKind::Backup => Some(S::Writing),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn random_inputs_follow_the_model(backup in any::<bool>(), steps in proptest::collection::vec((any::<u8>(), "[a-z ]{0,12}"), 0..40)) {
            let kind = kind_of(backup);
            let mut ch = Channel::new(kind, "requested");
            let mut mounted = 0u32;
            for (tag, reason) in steps {
                let i = input(tag, &reason);
                let before = ch.clone();
                let expected = model(kind, before.state(), &i);
                match ch.apply(i.clone()) {
                    Err(e) => {
                        prop_assert_eq!(expected, None, "{:?} refused in {}", i, before.state());
                        prop_assert_eq!(&ch, &before);
                        prop_assert_eq!(e.from, before.state());
                    }
                    Ok(effects) => {
                        prop_assert_eq!(expected, Some(ch.state()));
                        let persisted: Vec<&Transition> = effects.iter().filter_map(|e| match e {
                            Effect::Persist(t) => Some(t),
                            Effect::Emit(_) => None,
                        }).collect();
                        // Exactly one persist per change, none without.
                        let changed = ch.state() != before.state();
                        prop_assert_eq!(persisted.len(), usize::from(changed));
                        for t in &persisted {
                            // Never an illegal transition.
                            prop_assert!(crate::channel::is_legal(kind, t.from, t.to));
                            prop_assert_eq!(t.from, before.state());
                            prop_assert_eq!(t.to, ch.state());
                            prop_assert_eq!(t.reason.as_str(), reason.as_str());
                            prop_assert_eq!(ch.reason(), reason.as_str());
                        }
                        // The persist comes first; the client hears the
                        // new state unless it is Error.
                        if changed {
                            prop_assert!(matches!(effects[0], Effect::Persist(_)));
                            let told = effects.iter().any(|e| matches!(e, Effect::Emit(ChannelEvent::State { state, .. }) if *state == ch.state()));
                            prop_assert_eq!(told, ch.state() != S::Error);
                        } else {
                            prop_assert_eq!(&ch.reason(), &before.reason());
                        }
                        if ch.state() == S::BeginningOfTape && changed {
                            mounted += 1;
                        }
                    }
                }
                // Terminal states are sticky.
                if before.is_terminal() {
                    prop_assert_eq!(ch.state(), before.state());
                }
                prop_assert!(ch.state().belongs_to(kind));
                prop_assert_eq!(ch.tapes_mounted(), mounted);
            }
        }

        #[test]
        fn error_is_reachable_from_every_live_state(backup in any::<bool>(), steps in proptest::collection::vec(any::<u8>(), 0..30)) {
            let kind = kind_of(backup);
            let mut ch = Channel::new(kind, "requested");
            for tag in steps {
                let _ = ch.apply(input(tag, "step"));
            }
            let before = ch.state();
            let effects = ch.apply(ChannelInput::Failed("lost".into())).unwrap();
            if before.is_terminal() {
                prop_assert!(effects.is_empty());
                prop_assert_eq!(ch.state(), before);
            } else {
                prop_assert_eq!(ch.state(), S::Error);
                prop_assert_eq!(effects, vec![Effect::Persist(Transition { from: before, to: S::Error, reason: "lost".into() })]);
            }
        }
    }

    #[test]
    fn backup_over_two_tapes() {
        let mut ch = Channel::new(ChannelKind::Backup, "requested by smapp");
        for (i, to) in [
            (ChannelInput::Assigned("pair fe1/be1, drive d1".into()), S::Opened),
            (
                ChannelInput::TapeMounted("tape DM0001 mounted".into()),
                S::BeginningOfTape,
            ),
            (ChannelInput::StreamOpened("labels written".into()), S::Writing),
            (ChannelInput::TapeDone("end of medium".into()), S::EndOfTape),
            (
                ChannelInput::TapeMounted("tape DM0002 mounted".into()),
                S::BeginningOfTape,
            ),
            (ChannelInput::StreamOpened("labels written".into()), S::Writing),
            (ChannelInput::Finished("ABS complete".into()), S::Closed),
        ] {
            let why = i.reason().to_string();
            let effects = ch.apply(i).unwrap();
            assert_eq!(ch.state(), to);
            assert_eq!(ch.reason(), why);
            assert_eq!(
                effects[1],
                Effect::Emit(ChannelEvent::State {
                    state: to,
                    reason: why.clone()
                })
            );
        }
        assert_eq!(ch.tapes_mounted(), 2);
        assert!(ch.is_terminal());
        assert!(ch.apply(ChannelInput::Failed("late".into())).unwrap().is_empty());
        let before = ch.clone();
        assert!(ch.apply(ChannelInput::StreamOpened("again".into())).is_err());
        assert_eq!(ch, before);
    }

    #[test]
    fn front_end_loss_is_told_not_persisted() {
        let mut ch = Channel::from_parts(ChannelKind::Backup, S::Writing, "writing to tape T1");
        let effects = ch
            .apply(ChannelInput::FrontEndLost("fe1 stopped answering".into()))
            .unwrap();
        assert_eq!(
            effects,
            vec![Effect::Emit(ChannelEvent::State {
                state: S::Writing,
                reason: "fe1 stopped answering; waiting for it to come back and resume from its spool".into()
            })]
        );
        assert_eq!(ch.reason(), "writing to tape T1");
        let mut restore = Channel::from_parts(ChannelKind::Restore, S::Reading, "reading");
        assert!(restore.apply(ChannelInput::FrontEndLost("gone".into())).is_err());
    }

    #[test]
    fn illegal_apply_leaves_channel_unchanged() {
        let mut ch = Channel::new(ChannelKind::Restore, "restore requested");
        let before = ch.clone();
        let err = ch.apply(ChannelInput::StreamOpened("skip ahead".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal restore channel transition requested → reading"
        );
        assert_eq!(ch, before);
        let effects = ch.apply(ChannelInput::Failed("front-end lost".into())).unwrap();
        assert_eq!(
            effects,
            vec![Effect::Persist(Transition {
                from: S::Requested,
                to: S::Error,
                reason: "front-end lost".into()
            })]
        );
        assert_eq!(ch.reason(), "front-end lost");
    }
}
