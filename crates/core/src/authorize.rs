//! Authorisation of every Secrets Manager operation: builds the policy-evaluation [`Request`]
//! and request context for an operation, and checks it with the caller's identity policies and
//! the secret's resource policy (coffer-iam implements AWS's evaluation logic).
//!
//! - The action is `secretsmanager:<Operation>`; the resource is the secret's ARN, or `*` for
//!   ListSecrets, GetRandomPassword, BatchGetSecretValue (which then checks GetSecretValue per
//!   secret) and ValidateResourcePolicy without a SecretId.
//! - Context keys: the global ones ([`global_context`]: aws:PrincipalArn, aws:PrincipalAccount,
//!   aws:PrincipalType, aws:username, aws:PrincipalTag/*, aws:SourceIp, aws:SecureTransport, aws:CurrentTime,
//!   aws:EpochTime, aws:RequestedRegion), the secret's (aws:ResourceTag/*,
//!   secretsmanager:ResourceTag/*, secretsmanager:SecretId = the secret's full ARN), and those
//!   an operation takes from its request ([`Access::with`]: secretsmanager:Name,
//!   secretsmanager:VersionStage, aws:RequestTag/*, aws:TagKeys, ...), following the Service
//!   Authorization Reference's table of which action supports which key. A key is absent when
//!   the request does not carry it (AWS: the condition keys "filter by the value in the
//!   request"), so GetSecretValue without VersionStage has no secretsmanager:VersionStage.
//! - Order: authorisation comes before existence. A caller that may not act on a name learns
//!   nothing about whether the secret exists: for a SecretId that names no secret the check
//!   runs against the ARN the caller named (or `arn:...:secret:NAME` for a name), without a
//!   resource policy or tags, and only an allowed caller gets ResourceNotFoundException.
//!   Input validation (ValidationException) still comes first, as on AWS.
//! - Denial: AccessDeniedException (HTTP 400) with AWS's message.
//! - Tag changes (TagResource, UntagResource, CreateSecret's Tags) are also refused when they
//!   would take away one of the caller's own permissions on the secret
//!   ([`ensure_tags_keep_access`]); CreateSecret with tags also needs TagResource.
//!
//! Resource policies are parsed once per distinct document (a small cache), so reads of a
//! secret with a policy do not re-parse it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use coffer_iam::{Context, Decision, Policy, Request};
use coffer_store::{Secret, Tag};

use crate::error::{Error, ErrorCode, Result};
use crate::model::Arn;
use crate::region::{Caller, RegionService};

/// What an operation asks to do: its action and the context keys taken from its request.
#[derive(Debug, Clone)]
pub struct Access {
    pub action: &'static str,
    pub context: Context,
}

impl Access {
    /// `action` is the full action name, `secretsmanager:GetSecretValue`.
    pub fn new(action: &'static str) -> Access {
        Access {
            action,
            context: Context::new(),
        }
    }

    /// Adds a request key when the request carries it.
    pub fn with(mut self, key: &str, value: Option<impl Into<String>>) -> Access {
        if let Some(value) = value {
            self.context.set(key, value);
        }
        self
    }

    /// Adds a multi-valued request key (`aws:TagKeys`, `secretsmanager:AddReplicaRegions`)
    /// when the request carries it.
    pub fn with_all(mut self, key: &str, values: Option<Vec<String>>) -> Access {
        if let Some(values) = values {
            self.context.set_all(key, values);
        }
        self
    }

    /// `aws:RequestTag/<key>` for each tag and `aws:TagKeys`.
    pub fn with_request_tags<'a>(
        mut self,
        tags: Option<impl IntoIterator<Item = (&'a str, &'a str)>>,
    ) -> Access {
        if let Some(tags) = tags {
            let mut keys = Vec::new();
            for (key, value) in tags {
                self.context.set(&format!("aws:RequestTag/{key}"), value);
                keys.push(key.to_string());
            }
            self.context.set_all("aws:TagKeys", keys);
        }
        self
    }
}

/// What the operation acts on.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// `*`: actions without a resource (ListSecrets, GetRandomPassword, ...).
    Everything,
    /// An existing secret: its ARN, account, tags and resource policy.
    Secret(&'a Secret),
    /// A secret that does not exist (yet): CreateSecret's new ARN, or the ARN a SecretId names
    /// when nothing is there.
    Named { arn: &'a str, account: &'a str },
    /// A secret as it is or would be with `tags` (the lockout check of a tag change,
    /// [`ensure_tags_keep_access`]): its ARN, account, tags and resource policy.
    Tagged {
        arn: &'a str,
        account: &'a str,
        tags: &'a [Tag],
        policy: Option<&'a str>,
    },
}

impl<'a> Target<'a> {
    /// `secret` with `tags` in place of its own.
    pub fn retagged(secret: &'a Secret, tags: &'a [Tag]) -> Target<'a> {
        Target::Tagged {
            arn: &secret.record.arn,
            account: &secret.record.account_id,
            tags,
            policy: secret.record.resource_policy.as_deref(),
        }
    }

    /// The resource policy document, if any.
    fn policy(&self) -> Option<&'a str> {
        match *self {
            Target::Secret(secret) => secret.record.resource_policy.as_deref(),
            Target::Tagged { policy, .. } => policy,
            Target::Everything | Target::Named { .. } => None,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The global condition keys of a request by `caller` now (also for the KMS key-policy checks).
pub fn global_context(region: &RegionService, caller: &Caller, context: &mut Context) {
    global_context_at(&region.region, region.now_ms(), caller, context);
}

/// [`global_context`] for a Region name and a time (milliseconds since the epoch).
pub fn global_context_at(region: &str, now_ms: i64, caller: &Caller, context: &mut Context) {
    context.set("aws:PrincipalArn", caller.principal_arn.as_str());
    context.set("aws:PrincipalAccount", caller.account_id.as_str());
    let kind = if caller.principal_arn.ends_with(":root") {
        "Account"
    } else {
        "User"
    };
    context.set("aws:PrincipalType", kind);
    if let Some(user) = &caller.user_name {
        context.set("aws:username", user.as_str());
    }
    caller.set_principal_tags(context);
    if let Some(ip) = caller.source_ip {
        // An IPv4 peer of a dual-stack socket is reported as IPv4.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        context.set("aws:SourceIp", ip.to_string());
    }
    context.set(
        "aws:SecureTransport",
        if caller.secure_transport {
            "true"
        } else {
            "false"
        },
    );
    context.set("aws:CurrentTime", iso(now_ms));
    context.set("aws:EpochTime", now_ms.div_euclid(1000).to_string());
    context.set("aws:RequestedRegion", region);
}

const POLICY_CACHE_LIMIT: usize = 1024;

/// A stored resource policy, parsed once per distinct document.
fn parsed_policy(document: &str) -> Option<Arc<Policy>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<Policy>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache.lock().expect("policy cache").get(document) {
        return hit.clone();
    }
    // Policies are checked by PutResourcePolicy; one stored before the grammar got stricter
    // (or restored from an old backup) may not parse. `authorize_at` then fails closed; said
    // so in the log without the policy's content.
    let parsed = Policy::parse(document).ok().map(Arc::new);
    if parsed.is_none() {
        tracing::warn!(
            "a stored resource policy no longer parses; every action on its secret is denied except the resource policy operations, until it is replaced or deleted"
        );
    }
    let mut cache = cache.lock().expect("policy cache");
    if cache.len() >= POLICY_CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(document.to_string(), parsed.clone());
    parsed
}

/// The full context of `access` on `target` in `region` at `now_ms`.
pub fn context_for(
    region: &str,
    now_ms: i64,
    caller: &Caller,
    access: &Access,
    target: &Target,
) -> Context {
    let mut context = Context::new();
    fill_context(region, now_ms, caller, access, target, &mut context);
    context
}

/// Sets the keys of [`context_for`] in `context` (those it keeps).
fn fill_context(
    region: &str,
    now_ms: i64,
    caller: &Caller,
    access: &Access,
    target: &Target,
    context: &mut Context,
) {
    context.extend_from(&access.context);
    global_context_at(region, now_ms, caller, context);
    match target {
        Target::Everything => {}
        Target::Secret(secret) => {
            secret_keys(
                context,
                &secret.record.arn,
                secret.record.tags.as_deref().unwrap_or_default(),
            );
        }
        Target::Tagged { arn, tags, .. } => secret_keys(context, arn, tags),
        Target::Named { arn, .. } => {
            if access.action != "secretsmanager:CreateSecret" {
                context.set("secretsmanager:SecretId", *arn);
            }
        }
    }
}

/// The keys of an existing secret: `secretsmanager:SecretId` and its tags.
fn secret_keys(context: &mut Context, arn: &str, tags: &[Tag]) {
    context.set("secretsmanager:SecretId", arn);
    for tag in tags {
        context.set(&format!("aws:ResourceTag/{}", tag.key), tag.value.as_str());
        context.set(
            &format!("secretsmanager:ResourceTag/{}", tag.key),
            tag.value.as_str(),
        );
    }
}

/// Checks `access` on `target`; AccessDeniedException when the policies do not allow it.
pub fn authorize(
    region: &RegionService,
    caller: &Caller,
    access: &Access,
    target: Target,
) -> Result<()> {
    authorize_at(&region.region, region.now_ms(), caller, access, target)
}

/// [`authorize`] for a Region name and a time (milliseconds since the epoch).
pub fn authorize_at(
    region: &str,
    now_ms: i64,
    caller: &Caller,
    access: &Access,
    target: Target,
) -> Result<()> {
    let (resource, account) = match &target {
        Target::Everything => ("*", caller.account_id.as_str()),
        Target::Secret(secret) => (
            secret.record.arn.as_str(),
            secret.record.account_id.as_str(),
        ),
        Target::Named { arn, account } => (*arn, *account),
        Target::Tagged { arn, account, .. } => (*arn, *account),
    };
    let policy = match target.policy() {
        None => None,
        Some(document) => match parsed_policy(document) {
            Some(policy) => Some(policy),
            None => return unreadable_policy(region, now_ms, caller, access, &target),
        },
    };
    // The context is built only when a policy evaluated here can look at it (conditions,
    // policy variables): GetSecretValue by an administrator then costs no context at all.
    let context =
        coffer_iam::context_read_by(caller.policies.iter().chain(policy.as_deref()), |context| {
            fill_context(region, now_ms, caller, access, &target, context)
        });
    let principal = caller.principal();
    let request = Request {
        principal: &principal,
        action: access.action,
        resource,
        resource_account: account,
        context: &context,
    };
    match coffer_iam::evaluate(&request, &caller.policies, policy.as_deref()) {
        Decision::Allow => Ok(()),
        Decision::Deny(denial) => Err(Error::new(
            ErrorCode::AccessDenied,
            coffer_iam::access_denied_message(&request, denial),
        )),
    }
}

/// A stored resource policy that no longer parses could hold Denies, so ignoring it could let
/// through what its owner meant to refuse: Coffer fails closed, as it does for an unreadable
/// key policy. Every action on the secret is denied (as by an explicit deny in the resource
/// policy), except the three resource policy operations, which the owner account's identity
/// policies alone decide, so the owner can read, replace or delete the broken policy. (AWS
/// validates every policy it stores, so it has no such case; this is Coffer's choice. With only
/// local access, `coffer` can also remove the policy.)
fn unreadable_policy(
    region: &str,
    now_ms: i64,
    caller: &Caller,
    access: &Access,
    target: &Target,
) -> Result<()> {
    let (resource, account, tags): (&str, &str, &[Tag]) = match *target {
        Target::Secret(secret) => (
            &secret.record.arn,
            &secret.record.account_id,
            secret.record.tags.as_deref().unwrap_or_default(),
        ),
        Target::Tagged {
            arn, account, tags, ..
        } => (arn, account, tags),
        // Only a secret has a policy.
        Target::Everything | Target::Named { .. } => ("*", caller.account_id.as_str(), &[]),
    };
    const REPAIR: [&str; 3] = [
        "secretsmanager:GetResourcePolicy",
        "secretsmanager:PutResourcePolicy",
        "secretsmanager:DeleteResourcePolicy",
    ];
    if REPAIR.contains(&access.action) && caller.account_id == account {
        let without_policy = Target::Tagged {
            arn: resource,
            account,
            tags,
            policy: None,
        };
        return authorize_at(region, now_ms, caller, access, without_policy);
    }
    let principal = caller.principal();
    let context = Context::new();
    let request = Request {
        principal: &principal,
        action: access.action,
        resource,
        resource_account: account,
        context: &context,
    };
    Err(Error::new(
        ErrorCode::AccessDenied,
        coffer_iam::access_denied_message(&request, coffer_iam::Denial::ExplicitResource),
    ))
}

/// The actions on an existing secret: what a caller may lose by a tag change.
const SECRET_ACTIONS: [&str; 19] = [
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:ListSecretVersionIds",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:RotateSecret",
    "secretsmanager:CancelRotateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:DeleteResourcePolicy",
    "secretsmanager:ValidateResourcePolicy",
    "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:RemoveRegionsFromReplication",
    "secretsmanager:StopReplicationToReplica",
];

/// AWS (TagResource, UntagResource, CreateSecret's Tags): "If successfully completing this
/// operation would result in you losing your permissions for this secret, then the operation
/// is blocked and returns an Access Denied error."
///
/// AWS does not say which permissions count. Coffer's reading: every action on the secret
/// ([`SECRET_ACTIONS`]) the caller may take with the tags `before` (its identity policies and
/// the secret's resource policy, the request's own keys aside) must still be allowed with the
/// tags `after`; losing any one blocks the change. The error is the denial the caller would
/// get for the first lost action after the change (`action`, the tag change's own action,
/// is tried first), so it names what would be lost, in the words of every other denial.
pub fn ensure_tags_keep_access(
    region: &RegionService,
    caller: &Caller,
    action: &'static str,
    before: Target,
    after: Target,
) -> Result<()> {
    // Tags reach a decision only through conditions and policy variables.
    let reads_context = caller.policies.iter().any(Policy::reads_context)
        || [before.policy(), after.policy()]
            .into_iter()
            .flatten()
            .filter_map(parsed_policy)
            .any(|p| p.reads_context());
    if !reads_context {
        return Ok(());
    }
    let now = region.now_ms();
    let actions =
        std::iter::once(action).chain(SECRET_ACTIONS.into_iter().filter(|a| *a != action));
    for action in actions {
        let access = Access::new(action);
        if authorize_at(&region.region, now, caller, &access, before).is_ok() {
            authorize_at(&region.region, now, caller, &access, after)?;
        }
    }
    Ok(())
}

/// The ARN a `SecretId` names when no secret answers to it, and its account: a full or
/// partial ARN as given, a name as `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`
/// (the form AWS's denials show for names).
pub fn named_arn(region: &RegionService, caller: &Caller, secret_id: &str) -> (String, String) {
    if let Some(arn) = Arn::parse(secret_id)
        && secret_id.starts_with("arn:")
    {
        return (secret_id.to_string(), arn.account.to_string());
    }
    (
        format!(
            "arn:{}:secretsmanager:{}:{}:secret:{secret_id}",
            region.partition, region.region, caller.account_id
        ),
        caller.account_id.clone(),
    )
}

#[cfg(test)]
mod tests;
