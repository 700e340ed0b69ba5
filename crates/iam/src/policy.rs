//! Policy documents: parsing and statement matching. SKELETON — the full grammar (NotAction,
//! NotResource, Principal/NotPrincipal forms, every condition operator) is being written.

use serde_json::Value;

use crate::{Decision, Denial, Request};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    document: Value,
}

impl Policy {
    pub fn parse(document: &str) -> Result<Policy, PolicyError> {
        let document: Value = serde_json::from_str(document)
            .map_err(|_| PolicyError("The policy is not valid JSON.".into()))?;
        Ok(Policy { document })
    }

    /// `{"Effect":"Allow","Action":"*","Resource":"*"}` — what an account's administrator has.
    pub fn administrator_access() -> Policy {
        Policy {
            document: serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
            }),
        }
    }
}

pub(crate) fn evaluate(
    _request: &Request,
    _identity: &[Policy],
    _resource: Option<&Policy>,
) -> Decision {
    Decision::Deny(Denial::NoIdentityAllow)
}

pub(crate) fn evaluate_key_policy(
    _request: &Request,
    _identity: &[Policy],
    _key_policy: &Policy,
) -> Decision {
    Decision::Deny(Denial::NoIdentityAllow)
}
