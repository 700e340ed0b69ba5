//! AWS's policy evaluation logic (IAM User Guide, "Policy evaluation logic" and "Cross-account
//! policy evaluation logic"), for identity, resource and key policies.

use crate::condition::Facts;
use crate::glob;
use crate::policy::{Effect, Policy, Principals, Statement, is_account_id};
use crate::{Decision, Denial, Principal, Request};

/// How a resource-policy statement's Principal names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    No,
    /// The caller itself: its ARN, or `*`.
    Directly,
    /// The caller's account (account id or `arn:aws:iam::ACCOUNT:root`): a delegation to the
    /// account, whose identity policies must then allow too.
    ByAccount,
}

/// The account a Principal value names as a whole: an account id, or the account's root ARN
/// (`arn:aws:iam::ACCOUNT:root`).
fn named_account(p: &str) -> Option<&str> {
    if is_account_id(p) {
        Some(p)
    } else {
        p.strip_prefix("arn:")
            .and_then(|rest| rest.split_once(":iam::"))
            .and_then(|(_, rest)| rest.strip_suffix(":root"))
    }
}

fn names(principals: &Principals, caller: &Principal) -> Named {
    if principals.negated {
        return if not_principal_spares(principals, caller) {
            Named::No
        } else {
            Named::Directly
        };
    }
    if principals.everyone {
        return Named::Directly;
    }
    let mut named = Named::No;
    for p in &principals.aws {
        if *p == caller.arn {
            return Named::Directly;
        }
        if named_account(p) == Some(caller.account_id.as_str()) {
            named = Named::ByAccount;
        }
    }
    named
}

/// Whether a NotPrincipal leaves the caller out. AWS validates a principal link by link —
/// "AWS might validate the account first and then the user" — and documents that a
/// NotPrincipal must name the account (its root ARN or id) *and* the user for that user to be
/// spared: naming the account alone spares only the account's root, naming the user alone
/// spares no one of that account ("Otherwise, the policy might deny access to the entire
/// account containing the principal"). Coffer follows that strict reading, so a policy that
/// works here works on AWS. `*` spares everyone.
fn not_principal_spares(principals: &Principals, caller: &Principal) -> bool {
    if principals.everyone {
        return true;
    }
    let account = principals
        .aws
        .iter()
        .any(|p| named_account(p) == Some(caller.account_id.as_str()));
    let is_root = named_account(&caller.arn) == Some(caller.account_id.as_str());
    account && (is_root || principals.aws.contains(&caller.arn))
}

fn action_matches(st: &Statement, action: &str) -> bool {
    let any = st
        .actions
        .items
        .iter()
        .any(|p| glob::matches(p, action, true));
    any != st.actions.negated
}

fn resource_matches(st: &Statement, facts: &Facts, resource: &str) -> bool {
    let Some(resources) = &st.resources else {
        return true;
    };
    let any = resources
        .items
        .iter()
        .any(|p| facts.pattern_matches(p, resource, false));
    any != resources.negated
}

/// Whether a statement covers the request, Principal aside.
fn covers(st: &Statement, facts: &Facts) -> bool {
    action_matches(st, facts.request.action)
        && resource_matches(st, facts, facts.request.resource)
        && st.conditions.iter().all(|c| c.holds(facts))
}

#[derive(Default)]
struct Outcome {
    deny: bool,
    allow_direct: bool,
    allow_by_account: bool,
}

/// Identity policies: the Principal element is not consulted (they belong to the caller).
fn identity_outcome(facts: &Facts, identity: &[Policy]) -> Outcome {
    let mut out = Outcome::default();
    for st in identity.iter().flat_map(|p| &p.statements) {
        if covers(st, facts) {
            match st.effect {
                Effect::Deny => {
                    out.deny = true;
                    return out;
                }
                Effect::Allow => out.allow_direct = true,
            }
        }
    }
    out
}

/// Resource and key policies: a statement applies only to the principals it names.
fn resource_outcome(facts: &Facts, policy: &Policy) -> Outcome {
    let mut out = Outcome::default();
    for st in &policy.statements {
        let named = st
            .principal
            .as_ref()
            .map_or(Named::No, |p| names(p, facts.request.principal));
        if named == Named::No || !covers(st, facts) {
            continue;
        }
        match (st.effect, named) {
            (Effect::Deny, _) => {
                out.deny = true;
                return out;
            }
            (Effect::Allow, Named::Directly) => out.allow_direct = true,
            (Effect::Allow, _) => out.allow_by_account = true,
        }
    }
    out
}

/// Within the resource's account an identity Allow suffices, and so does a resource-policy
/// Allow naming the caller itself; one naming only the caller's account delegates to the
/// account's identity policies (AWS: granting the account means the account's administrators
/// decide). Across accounts both sides must allow.
pub(crate) fn evaluate(
    request: &Request,
    identity: &[Policy],
    resource: Option<&Policy>,
) -> Decision {
    let facts = Facts { request };
    let id = identity_outcome(&facts, identity);
    if id.deny {
        return Decision::Deny(Denial::ExplicitIdentity);
    }
    let res = resource.map_or_else(Outcome::default, |p| resource_outcome(&facts, p));
    if res.deny {
        return Decision::Deny(Denial::ExplicitResource);
    }
    let same_account = request.principal.account_id == request.resource_account;
    if same_account {
        if id.allow_direct || res.allow_direct {
            Decision::Allow
        } else {
            Decision::Deny(Denial::NoIdentityAllow)
        }
    } else if !id.allow_direct {
        Decision::Deny(Denial::NoIdentityAllow)
    } else if res.allow_direct || res.allow_by_account {
        Decision::Allow
    } else {
        Decision::Deny(Denial::NoResourceAllow)
    }
}

/// KMS: the key policy is the root of trust. It allows the caller directly, or allows the
/// caller's account, in which case the identity policies must allow too; across accounts the
/// identity policies must always allow.
pub(crate) fn evaluate_key_policy(
    request: &Request,
    identity: &[Policy],
    key_policy: &Policy,
) -> Decision {
    let facts = Facts { request };
    let id = identity_outcome(&facts, identity);
    if id.deny {
        return Decision::Deny(Denial::ExplicitIdentity);
    }
    let key = resource_outcome(&facts, key_policy);
    if key.deny {
        return Decision::Deny(Denial::ExplicitResource);
    }
    let same_account = request.principal.account_id == request.resource_account;
    let key_allows = key.allow_direct || key.allow_by_account;
    if !key_allows {
        return Decision::Deny(Denial::NoResourceAllow);
    }
    if (same_account && key.allow_direct) || id.allow_direct {
        Decision::Allow
    } else {
        Decision::Deny(Denial::NoIdentityAllow)
    }
}
