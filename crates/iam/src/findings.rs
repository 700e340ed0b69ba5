//! Policy checks behind PutResourcePolicy's BlockPublicPolicy and ValidateResourcePolicy.
//!
//! "Public" (broad access) follows the definition AWS documents for resource policies (the
//! S3 / Access Analyzer "public" definition, which Secrets Manager's BlockPublicPolicy uses):
//! an Allow statement whose Principal is `*` (or `{"AWS": "*"}`, or an Allow with NotPrincipal,
//! which allows everyone it does not name) is public unless one of its conditions pins the
//! request to fixed values of a key that identifies who or where the caller is. Coffer's
//! choice of "pins": an operator among StringEquals, StringEqualsIgnoreCase, StringLike,
//! ArnEquals, ArnLike, IpAddress — not negated, without `...IfExists` and without
//! `ForAllValues:` (both hold when the key is missing) — on aws:PrincipalAccount,
//! aws:PrincipalArn, aws:PrincipalOrgID, aws:PrincipalOrgPaths, aws:SourceAccount,
//! aws:SourceArn, aws:SourceOwner, aws:SourceVpc, aws:SourceVpce, aws:userid or aws:SourceIp,
//! with values free of wildcards and policy variables, and for aws:SourceIp a range no wider
//! than /8 (IPv4) or /32 (IPv6).

use crate::condition::{Base, Condition, SetOp, Values};
use crate::policy::{Effect, Policy, PolicyError, Statement, json_error, where_is};

/// One finding of ValidateResourcePolicy. Check names are Coffer's own: AWS documents the
/// field, not its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub message: String,
}

/// The document is not a well-formed resource policy.
pub const SYNTAX_CHECK: &str = "SYNTAX_CHECK";
/// A Condition uses an operator IAM does not have.
pub const CONDITION_OPERATOR_CHECK: &str = "CONDITION_OPERATOR_CHECK";
/// A statement grants access to everyone (see the module documentation).
pub const BROAD_ACCESS_CHECK: &str = "BROAD_ACCESS_CHECK";
/// A statement names an action or resource of another service, which a policy attached to a
/// resource of this service can never grant.
pub const SERVICE_CHECK: &str = "SERVICE_CHECK";

const PINNING_KEYS: [&str; 11] = [
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:SourceOwner",
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:userid",
    "aws:SourceIp",
];

fn pins(c: &Condition) -> bool {
    if c.negated || c.if_exists || c.set == Some(SetOp::ForAllValues) {
        return false;
    }
    if !PINNING_KEYS.iter().any(|k| k.eq_ignore_ascii_case(&c.key)) {
        return false;
    }
    let fixed = || {
        c.raw
            .iter()
            .all(|v| !v.contains(['*', '?']) && !v.contains("${"))
    };
    match (&c.base, &c.values) {
        (Base::IpAddress, Values::Cidrs(cidrs)) => {
            c.key.eq_ignore_ascii_case("aws:SourceIp")
                && cidrs
                    .iter()
                    .all(|cidr| cidr.prefix() >= if cidr.is_v4() { 8 } else { 32 })
        }
        (Base::StringEquals | Base::StringEqualsIgnoreCase | Base::StringLike | Base::Arn, _) => {
            !c.key.eq_ignore_ascii_case("aws:SourceIp") && fixed()
        }
        _ => false,
    }
}

fn is_public(st: &Statement) -> bool {
    let Some(p) = &st.principal else {
        return false;
    };
    st.effect == Effect::Allow && p.everyone != p.negated && !st.conditions.iter().any(pins)
}

impl Policy {
    /// Whether some Allow statement grants access to everyone (BlockPublicPolicy refuses it).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(is_public)
    }

    /// One BROAD_ACCESS_CHECK finding per public statement.
    pub fn broad_access_findings(&self) -> Vec<Finding> {
        self.statements
            .iter()
            .enumerate()
            .filter(|(_, st)| is_public(st))
            .map(|(i, st)| Finding {
                check: BROAD_ACCESS_CHECK,
                message: format!(
                    "{} allows access to every principal (\"*\") without a condition that restricts it to specific accounts, principals or networks.",
                    where_is(i + 1, st.sid.as_deref())
                ),
            })
            .collect()
    }

    /// SERVICE_CHECK findings: actions or resources that belong to a service other than
    /// `service` (such as `s3:GetObject` in a secret's policy).
    pub fn service_findings(&self, service: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, st) in self.statements.iter().enumerate() {
            let at = where_is(i + 1, st.sid.as_deref());
            if !st.actions.negated {
                for action in &st.action_text {
                    if let Some((vendor, _)) = action.split_once(':')
                        && !vendor.contains(['*', '?'])
                        && !vendor.eq_ignore_ascii_case(service)
                    {
                        out.push(Finding {
                            check: SERVICE_CHECK,
                            message: format!(
                                "{at}: the action \"{action}\" belongs to another service; this policy only governs {service} actions."
                            ),
                        });
                    }
                }
            }
            if let Some(resources) = &st.resources
                && !resources.negated
            {
                for raw in st_resource_text(st) {
                    if let Some(svc) = raw.split(':').nth(2)
                        && !svc.contains(['*', '?'])
                        && !svc.contains("${")
                        && svc != service
                    {
                        out.push(Finding {
                            check: SERVICE_CHECK,
                            message: format!(
                                "{at}: the resource \"{raw}\" belongs to another service; this policy only governs {service} resources."
                            ),
                        });
                    }
                }
            }
        }
        out
    }
}

fn st_resource_text(st: &Statement) -> Vec<String> {
    use crate::glob::Tok;
    use crate::policy::Pattern;
    st.resources
        .iter()
        .flat_map(|r| &r.items)
        .map(|p| match p {
            Pattern::Variables(raw) => raw.clone(),
            Pattern::Static(tokens) => tokens
                .iter()
                .map(|t| match t {
                    Tok::Lit(c) => *c,
                    Tok::Star => '*',
                    Tok::One => '?',
                })
                .collect(),
        })
        .collect()
}

fn syntax_finding(error: PolicyError) -> Finding {
    let check = if error.0.contains("unknown condition operator") {
        CONDITION_OPERATOR_CHECK
    } else {
        SYNTAX_CHECK
    };
    Finding {
        check,
        message: error.0,
    }
}

/// Everything ValidateResourcePolicy reports for a resource policy of `service`
/// (`secretsmanager`): a syntax finding (with the JSON line and column, or the statement and
/// element at fault), else broad-access and service findings. Empty = the policy passes.
pub fn validate_resource_policy(document: &str, service: &str) -> Vec<Finding> {
    if let Some(message) = json_error(document) {
        return vec![Finding {
            check: SYNTAX_CHECK,
            message,
        }];
    }
    match Policy::parse_resource_policy(document) {
        Err(e) => vec![syntax_finding(e)],
        Ok(policy) => {
            let mut out = policy.broad_access_findings();
            out.extend(policy.service_findings(service));
            out
        }
    }
}
