//! What the station answers when a request fails: the error with its
//! context as the message, and a [`FailureCode`] from the first cause in
//! the error's chain that knows its kind (a [`Failure`] raised here or
//! passed on from a mover or primary node, a catalog error, a broken
//! connection, a chain that cannot be built); anything else is `Internal`.

use proto::domain::{Failure, FailureCode, IdOutOfRange};
use transport::TransportError;

use crate::catalog::CatalogError;
use crate::plan::{ChainError, PlanError};

/// The kind of one error, if it knows it.
fn code_of(e: &(dyn std::error::Error + 'static)) -> Option<FailureCode> {
    if let Some(f) = e.downcast_ref::<Failure>() {
        return Some(f.code);
    }
    if let Some(c) = e.downcast_ref::<CatalogError>() {
        return Some(c.code());
    }
    if let Some(t) = e.downcast_ref::<TransportError>() {
        return Some(t.code());
    }
    if let Some(c) = e.downcast_ref::<ChainError>() {
        return Some(c.code());
    }
    if e.downcast_ref::<PlanError>().is_some() {
        return Some(FailureCode::Corrupt);
    }
    if e.downcast_ref::<IdOutOfRange>().is_some() {
        return Some(FailureCode::Invalid);
    }
    None
}

/// The failure to answer for `e`.
pub(crate) fn failure_of(e: &anyhow::Error) -> Failure {
    let code = e.chain().find_map(code_of).unwrap_or(FailureCode::Internal);
    Failure::new(code, format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn the_code_of_the_cause_survives_context() {
        let e = anyhow::Error::new(CatalogError::NotFound {
            what: "ABS",
            id: "7".into(),
        })
        .context("restoring");
        let f = failure_of(&e);
        assert_eq!(f.code, FailureCode::NotFound);
        assert_eq!(f.message, "restoring: ABS 7 not found in the catalog");
        let e = Err::<(), _>(Failure::refused("not authorized"))
            .context("backing up")
            .unwrap_err();
        assert_eq!(failure_of(&e).code, FailureCode::Refused);
        assert_eq!(failure_of(&anyhow::anyhow!("plain")).code, FailureCode::Internal);
    }
}
