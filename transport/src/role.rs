//! The role a certificate grants its holder in the cluster.
//!
//! The role travels in the subject of every component certificate as the
//! organizational unit (`OU=<role>`), so any peer can learn it from the TLS
//! handshake alone; the control station then decides what each role may ask.

use std::fmt;
use std::str::FromStr;

/// What a component is allowed to be in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The control station (catalog, assignments, channel state machines).
    Station,
    /// A data mover (front-end, back-end or both).
    Mover,
    /// A primary storage node.
    PrimaryNode,
    /// A host's SMAPP client.
    Client,
    /// A human operator's tool.
    Operator,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 5] = [
        Role::Station,
        Role::Mover,
        Role::PrimaryNode,
        Role::Client,
        Role::Operator,
    ];

    /// The role's name as written in certificates and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Mover => "mover",
            Role::PrimaryNode => "primary-node",
            Role::Client => "client",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {found:?}; expected one of station, mover, primary-node, client, operator")]
pub struct UnknownRole {
    /// The text that was given.
    pub found: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole { found: s.to_owned() })
    }
}

/// Render a list of roles as `a, b, c` for messages.
pub(crate) fn list(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(role.to_string(), role.as_str());
        }
    }

    #[test]
    fn unknown_name_is_an_error() {
        let err = "Mover".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("\"Mover\""), "{err}");
        assert!("".parse::<Role>().is_err());
    }
}
