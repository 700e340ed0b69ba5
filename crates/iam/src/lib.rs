//! Who may do what: IAM-style policy documents and their evaluation, as AWS evaluates
//! identity-based policies, resource-based policies (secret resource policies) and KMS key
//! policies. Pure: no I/O, no clock (the request context carries `aws:CurrentTime`).
//!
//! The public API (used by `coffer-core`, `coffer-api` and the KMS operations):
//! - [`Policy::parse`] a JSON document once; keep the parsed form (callers hold
//!   `Arc<[Policy]>`), evaluation never re-parses.
//! - [`evaluate`] an action on a resource by a principal, given the principal's identity
//!   policies and the resource's policy; [`evaluate_key_policy`] for KMS keys.
//! - [`access_denied_message`] the text of AWS's AccessDeniedException for a [`Denial`].
//! - [`Policy::reads_context`] whether a policy can look at the request context at all, and
//!   [`context_read_by`] to build only the part of a context that policies read.
//! - [`Policy::parse_resource_policy`], [`Policy::is_public`] and [`validate_resource_policy`]
//!   for PutResourcePolicy / ValidateResourcePolicy; [`Policy::parse_identity_policy`] for
//!   users' inline policies.
//!
//! Modules: `policy` (grammar), `condition` (operators, set qualifiers, policy variables),
//! `eval` (AWS's evaluation logic), `findings` (public-access and validation checks), `glob`
//! (IAM wildcards). The table-driven tests are in `tests.rs`.

mod condition;
mod eval;
mod findings;
mod glob;
mod policy;

pub use findings::{
    BROAD_ACCESS_CHECK, CONDITION_OPERATOR_CHECK, Finding, SERVICE_CHECK, SYNTAX_CHECK,
    validate_resource_policy,
};
pub use policy::{Policy, PolicyError};

use std::collections::BTreeMap;

/// The caller as evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `arn:aws:iam::111122223333:user/alice`, or `arn:aws:iam::111122223333:root`.
    pub arn: String,
    pub account_id: String,
    /// `aws:username` (IAM users only).
    pub user_name: Option<String>,
}

/// Condition keys and their values for one request (`aws:SourceIp`, `secretsmanager:Name`,
/// `aws:ResourceTag/env`, ...). Keys compare case-insensitively, as in IAM; a key may carry
/// several values (`aws:TagKeys`, `secretsmanager:AddReplicaRegions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: BTreeMap<String, Vec<String>>,
    /// The keys kept (lower-cased; see [`context_read_by`]); `None`: every key set is kept.
    only: Option<Vec<String>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Whether a key set now would be kept (every key, unless the context was made by
    /// [`context_read_by`] for policies that read only some).
    pub fn wants(&self, key: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| k.eq_ignore_ascii_case(key)))
    }

    /// Sets a single-valued key (replacing any earlier values).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        if self.wants(key) {
            self.values
                .insert(key.to_ascii_lowercase(), vec![value.into()]);
        }
    }

    /// [`set`](Self::set) with the value computed only if the key is kept.
    pub fn set_with(&mut self, key: &str, value: impl FnOnce() -> String) {
        if self.wants(key) {
            self.values.insert(key.to_ascii_lowercase(), vec![value()]);
        }
    }

    /// Sets a multi-valued key (`ForAnyValue:` / `ForAllValues:` operate on these).
    pub fn set_all(&mut self, key: &str, values: Vec<String>) {
        if self.wants(key) {
            self.values.insert(key.to_ascii_lowercase(), values);
        }
    }

    /// Sets every key of `other` (as [`set_all`](Self::set_all) does: only those kept).
    pub fn extend_from(&mut self, other: &Context) {
        for (key, values) in &other.values {
            if self.wants(key) {
                self.values.insert(key.clone(), values.clone());
            }
        }
    }

    /// The values of `key`, or `None` when the request does not have it (`Null`, `...IfExists`).
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
    }
}

/// The context for a request that `policies` decide, filled by `fill` but holding only the
/// keys their conditions look up (values are computed only for those, with
/// [`Context::set_with`]): evaluation cannot tell it from the full context, since no other key
/// is ever read. A policy with a policy variable may read any key: then every key is kept.
/// Pass every policy the evaluation consults (the caller's identity policies and the key or
/// resource policy): a key read only by a policy left out would be missing.
pub fn context_read_by<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    fill: impl FnOnce(&mut Context),
) -> Context {
    let mut keys: Vec<String> = Vec::new();
    let mut context = Context::new();
    for policy in policies {
        match policy.keys_read() {
            Some(read) => keys.extend(read.iter().cloned()),
            None => {
                fill(&mut context);
                return context;
            }
        }
    }
    if keys.is_empty() {
        return context;
    }
    context.only = Some(keys);
    fill(&mut context);
    context
}

/// One authorisation question.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// `secretsmanager:GetSecretValue`, `kms:Decrypt`, `iam:CreateUser`, ...
    pub action: &'a str,
    /// The resource ARN (`*` for actions without a resource, such as ListSecrets).
    pub resource: &'a str,
    /// The account owning the resource; differs from the principal's for cross-account access.
    pub resource_account: &'a str,
    pub context: &'a Context,
}

/// Why a request was denied; worded by [`access_denied_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// A Deny statement of an identity-based policy matched.
    ExplicitIdentity,
    /// A Deny statement of the resource-based (or key) policy matched.
    ExplicitResource,
    /// Nothing allowed it (same account: neither identity nor resource policy).
    NoIdentityAllow,
    /// Cross-account: the identity policy allows but the resource policy does not.
    NoResourceAllow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Denial),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// AWS's evaluation logic for one account or across accounts: an explicit Deny anywhere wins;
/// within the resource's account an Allow in either the identity policies or the resource
/// policy suffices; across accounts both must allow.
pub fn evaluate(request: &Request, identity: &[Policy], resource: Option<&Policy>) -> Decision {
    eval::evaluate(request, identity, resource)
}

/// KMS key-policy evaluation: the key policy must allow the principal itself, or allow the
/// key's account (its root / account id), in which case the principal's identity policies must
/// allow too (within that account; across accounts both always must). An explicit Deny wins.
pub fn evaluate_key_policy(
    request: &Request,
    identity: &[Policy],
    key_policy: &Policy,
) -> Decision {
    eval::evaluate_key_policy(request, identity, key_policy)
}

/// `User: ARN is not authorized to perform: ACTION on resource: ARN because ...`, the message
/// of AWS's AccessDeniedException.
pub fn access_denied_message(request: &Request, denial: Denial) -> String {
    let because = match denial {
        Denial::ExplicitIdentity => "with an explicit deny in an identity-based policy".to_string(),
        Denial::ExplicitResource => "with an explicit deny in a resource-based policy".to_string(),
        Denial::NoIdentityAllow => format!(
            "because no identity-based policy allows the {} action",
            request.action
        ),
        Denial::NoResourceAllow => format!(
            "because no resource-based policy allows the {} action",
            request.action
        ),
    };
    format!(
        "User: {} is not authorized to perform: {} on resource: {} {because}",
        request.principal.arn, request.action, request.resource
    )
}

#[cfg(test)]
mod tests;
