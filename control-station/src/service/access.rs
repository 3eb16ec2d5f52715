//! Who may do what to which object: every client request is checked
//! against the grants in the catalog (a client certificate alone grants
//! nothing); operators administer and may do everything.
//!
//! - back up (or merge) `primary`/`object`: a backup grant on that object
//!   or on the whole node;
//! - restore an ABS: a restore grant on its object (or its whole node), and
//!   where it writes: its own node's volumes (`--original`) need nothing
//!   more; a file on node D needs a restore grant on the object at D (or D
//!   whole); other volumes of node D need a restore grant on the whole of D
//!   (they may hold other objects);
//! - see an ABS, its segments and channels: any grant on its object.

use std::sync::Arc;

use anyhow::{bail, Result};
use proto::domain::Failure;
use proto::wire::RestoreTarget;
use transport::{Peer, Role};

use super::Station;
use crate::catalog::GrantRow;

/// One right of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Right {
    Backup,
    Restore,
}

impl Right {
    fn verb(self) -> &'static str {
        match self {
            Right::Backup => "back up",
            Right::Restore => "restore",
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Right::Backup => "--backup",
            Right::Restore => "--restore",
        }
    }
}

/// What one peer may touch.
pub(crate) enum Access {
    /// An operator.
    All,
    /// A client with these grants.
    Grants { client: String, grants: Vec<GrantRow> },
}

impl Access {
    /// Load the peer's grants (operators: everything).
    pub async fn of(st: &Arc<Station>, peer: &Peer) -> Result<Access> {
        Ok(match peer.role {
            Role::Operator => Access::All,
            _ => Access::Grants {
                client: peer.name.clone(),
                grants: st.catalog.grants(Some(&peer.name)).await?,
            },
        })
    }

    /// May do `right` on `object` of `primary` (None: on the whole node).
    pub fn may(&self, right: Right, primary: &str, object: Option<&str>) -> bool {
        match self {
            Access::All => true,
            Access::Grants { grants, .. } => grants.iter().any(|g| {
                g.primary_node == primary
                    && match (&g.object_name, object) {
                        (None, _) => true,
                        (Some(granted), Some(wanted)) => granted == wanted,
                        (Some(_), None) => false,
                    }
                    && match right {
                        Right::Backup => g.may_backup,
                        Right::Restore => g.may_restore,
                    }
            }),
        }
    }

    /// May see `object` of `primary` (any right on it).
    pub fn may_see(&self, primary: &str, object: &str) -> bool {
        self.may(Right::Backup, primary, Some(object)) || self.may(Right::Restore, primary, Some(object))
    }

    /// An operator.
    pub fn is_operator(&self) -> bool {
        matches!(self, Access::All)
    }

    /// Fail unless the peer may do `right` on `object` of `primary` (None:
    /// the whole node), with a reason that says which grant is missing.
    pub fn require(&self, right: Right, primary: &str, object: Option<&str>) -> Result<()> {
        if self.may(right, primary, object) {
            return Ok(());
        }
        let client = match self {
            Access::All => "operator",
            Access::Grants { client, .. } => client,
        };
        let (what, option) = match object {
            Some(o) => (format!("object {o} of {primary}"), format!(" [--object {o}]")),
            None => (format!("the volumes of {primary}"), String::new()),
        };
        bail!(Failure::refused(format!(
            "not authorized: client {client} may not {} {what} (an operator grants it: smapp grant {client} --primary {primary}{option} {})",
            right.verb(),
            right.flag()
        )))
    }

    /// Fail unless the peer may restore `object` of `primary` into `target`.
    pub fn require_restore(&self, primary: &str, object: &str, target: &RestoreTarget) -> Result<()> {
        self.require(Right::Restore, primary, Some(object))?;
        match target {
            RestoreTarget::Original => Ok(()),
            RestoreTarget::File { primary: dest, .. } => self.require(Right::Restore, dest, Some(object)),
            RestoreTarget::Volumes { primary: dest, .. } => self.require(Right::Restore, dest, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(primary: &str, object: Option<&str>, backup: bool, restore: bool) -> GrantRow {
        GrantRow {
            client: "c".into(),
            primary_node: primary.into(),
            object_name: object.map(str::to_string),
            may_backup: backup,
            may_restore: restore,
            granted_by: "operator".into(),
            granted_at: chrono::Utc::now(),
        }
    }

    fn client(grants: Vec<GrantRow>) -> Access {
        Access::Grants {
            client: "c".into(),
            grants,
        }
    }

    #[test]
    fn no_grant_no_right() {
        let a = client(vec![]);
        assert!(!a.may(Right::Backup, "pn1", Some("db1")));
        assert!(!a.may_see("pn1", "db1"));
        let err = a.require(Right::Restore, "pn1", Some("db1")).unwrap_err();
        assert_eq!(super::super::failure_of(&err).code, proto::domain::FailureCode::Refused);
        let err = err.to_string();
        assert!(
            err.contains("smapp grant c --primary pn1 [--object db1] --restore"),
            "{err}"
        );
    }

    #[test]
    fn an_object_grant_covers_that_object_on_that_node_only() {
        let a = client(vec![grant("pn1", Some("db1"), false, true)]);
        assert!(a.may(Right::Restore, "pn1", Some("db1")));
        assert!(!a.may(Right::Backup, "pn1", Some("db1")));
        assert!(!a.may(Right::Restore, "pn1", Some("db2")));
        assert!(!a.may(Right::Restore, "pn2", Some("db1")));
        assert!(
            !a.may(Right::Restore, "pn1", None),
            "an object grant is not the node's volumes"
        );
    }

    #[test]
    fn restore_targets_need_rights_where_they_write() {
        let own = client(vec![grant("pn1", Some("db1"), false, true)]);
        let file = |p: &str| RestoreTarget::File {
            primary: p.into(),
            name: "x".into(),
            replace: false,
        };
        let vols = |p: &str| RestoreTarget::Volumes {
            primary: p.into(),
            allocation: vec![],
        };
        assert!(own.require_restore("pn1", "db1", &RestoreTarget::Original).is_ok());
        assert!(own.require_restore("pn1", "db1", &file("pn1")).is_ok());
        assert!(own.require_restore("pn1", "db1", &file("pn2")).is_err());
        assert!(own.require_restore("pn1", "db1", &vols("pn1")).is_err());
        let wide = client(vec![
            grant("pn1", Some("db1"), false, true),
            grant("pn2", None, false, true),
        ]);
        assert!(wide.require_restore("pn1", "db1", &file("pn2")).is_ok());
        assert!(wide.require_restore("pn1", "db1", &vols("pn2")).is_ok());
        assert!(Access::All.require_restore("pn9", "any", &vols("pn3")).is_ok());
    }
}
