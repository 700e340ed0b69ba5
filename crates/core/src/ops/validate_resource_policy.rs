//! ValidateResourcePolicy (spec §4.13).

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::{Access, Target, authorize};
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::load;
use crate::validate::Violations;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub resource_policy: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationError {
    pub check_name: String,
    pub error_message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationError>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    v.length(input.secret_id.as_deref(), "secretId", 1, 2048);
    if v.required(&input.resource_policy, "resourcePolicy") {
        v.length(input.resource_policy.as_deref(), "resourcePolicy", 1, 20480);
    }
    v.finish()?;
    let access = Access::new(Operation::ValidateResourcePolicy.action());
    match &input.secret_id {
        // [S] the SecretId is resolved (and its name validated) when given.
        Some(id) => {
            load(region, caller, id, &access).await?;
        }
        None => authorize(region, caller, &access, Target::Everything)?,
    }
    let policy = input.resource_policy.unwrap_or_default();
    // Syntax (with line/column or statement and element), unknown condition operators, broad
    // access, and actions or resources of other services: coffer-iam's findings module.
    let findings = coffer_iam::validate_resource_policy(&policy, "secretsmanager");
    let mut errors: Vec<ValidationError> = findings
        .into_iter()
        .map(|f| ValidationError {
            check_name: f.check.to_string(),
            error_message: f.message,
        })
        .collect();
    // Coffer's own check (AWS serves only TLS, so it has none): a deny on plaintext, validated
    // by a caller whose request came without TLS, would lock every caller of this node out of
    // the secret, DeleteResourcePolicy included. Reported as a failed check, so a tool that
    // validates before PutResourcePolicy stops (docs/access-control.md).
    if !caller.secure_transport && denies_plaintext(&policy) {
        errors.push(ValidationError {
            check_name: SECURE_TRANSPORT_CHECK.into(),
            error_message: PLAINTEXT_LOCKOUT.into(),
        });
    }
    Ok(Output {
        policy_validation_passed: errors.is_empty(),
        validation_errors: errors,
    })
}

pub const SECURE_TRANSPORT_CHECK: &str = "SECURE_TRANSPORT_CHECK";

pub const PLAINTEXT_LOCKOUT: &str = "This policy denies requests made without TLS (aws:SecureTransport false), and this request reached Coffer without TLS: once attached, every call on the secret through this endpoint is denied, DeleteResourcePolicy included. Serve TLS first (--tls-cert/--tls-key, or --tls auto), or list your TLS proxy in trusted_proxies. With local access, `coffer resource-policy remove` takes such a policy off.";

/// Whether a statement of `policy` denies when `aws:SecureTransport` is false
/// (`"Bool"` or `"BoolIfExists"`, the key in any case, the value `"false"`, `false` or a list
/// holding it).
fn denies_plaintext(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        one @ serde_json::Value::Object(_) => vec![one.clone()],
        _ => return false,
    };
    let is_false = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.eq_ignore_ascii_case("false"),
        serde_json::Value::Bool(b) => !b,
        _ => false,
    };
    statements.iter().any(|st| {
        st["Effect"].as_str() == Some("Deny")
            && st["Condition"].as_object().is_some_and(|conditions| {
                conditions.iter().any(|(op, keys)| {
                    (op == "Bool" || op == "BoolIfExists")
                        && keys.as_object().is_some_and(|keys| {
                            keys.iter().any(|(k, v)| {
                                k.eq_ignore_ascii_case("aws:SecureTransport")
                                    && match v {
                                        serde_json::Value::Array(vs) => vs.iter().any(is_false),
                                        other => is_false(other),
                                    }
                            })
                        })
                })
            })
    })
}
