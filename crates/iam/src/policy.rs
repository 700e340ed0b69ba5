//! Policy documents: the grammar (as IAM's policy reference defines it) and its parsed form.
//! Evaluation lives in `eval.rs`, conditions in `condition.rs`.

use serde_json::{Map, Value};

use crate::condition::Condition;
use crate::glob::{self, Tok};

/// Why a document is not a policy. The text is precise (it names the statement and element) and
/// is what MalformedPolicyDocumentException carries after "This resource policy contains a
/// syntax error: ".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PolicyError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// Which grammar version: policy variables (`${aws:username}`) are only substituted under
/// "2012-10-17"; under "2008-10-17" (the default when Version is absent, as in IAM) they are
/// literal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V2008,
    V2012,
}

/// A Resource (or condition value) pattern: pre-tokenised, or holding policy variables to be
/// substituted per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pattern {
    Static(Vec<Tok>),
    Variables(String),
}

impl Pattern {
    pub(crate) fn new(text: &str, version: Version) -> Pattern {
        if version == Version::V2012 && text.contains("${") {
            Pattern::Variables(text.to_string())
        } else {
            Pattern::Static(glob::tokens(text))
        }
    }
}

/// Action/NotAction or Resource/NotResource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Names<T> {
    pub items: Vec<T>,
    /// `NotAction` / `NotResource`.
    pub negated: bool,
}

/// Principal or NotPrincipal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Principals {
    pub negated: bool,
    /// `"*"` or `{"AWS": "*"}`.
    pub everyone: bool,
    /// The `AWS` values: account ids, `arn:aws:iam::ACCOUNT:root`, user/role ARNs.
    pub aws: Vec<String>,
    /// `Service`, `Federated`, `CanonicalUser` values: accepted, never match a Coffer principal.
    pub other: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Principals>,
    /// Lower-cased action patterns.
    pub actions: Names<Vec<Tok>>,
    /// Raw action text, for findings.
    pub action_text: Vec<String>,
    /// `None`: the statement has neither Resource nor NotResource (allowed in resource and key
    /// policies, where the statement is about the resource the policy is attached to).
    pub resources: Option<Names<Pattern>>,
    pub conditions: Vec<Condition>,
}

/// A parsed policy document. Parse once, evaluate many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) version: Version,
    pub(crate) statements: Vec<Statement>,
    /// The condition keys (lower-cased) its conditions look up; `None` when it may read any
    /// key (a policy variable, whose key is chosen by the text, in a Resource or a condition
    /// value). Decided once by [`statements_keys_read`] when the policy is parsed; see
    /// [`crate::context_read_by`] and [`Policy::reads_context`].
    keys_read: Option<Vec<String>>,
}

/// What evaluating `statements` can read of the request [`crate::Context`]. Evaluation reads it
/// in exactly two places (`eval.rs`, `condition.rs`, through `Facts`):
/// - a Condition: every operator looks its key up (`Condition::holds`), and its values may
///   hold policy variables (`Facts::text`, `Facts::pattern_matches`);
/// - a policy variable (`${aws:username}`, `${aws:PrincipalTag/team}`, ...) in a Resource or
///   NotResource, substituted per request (`Facts::expand`). Such a pattern is
///   [`Pattern::Variables`], made only under Version 2012-10-17 for text containing `${`;
///   under 2008-10-17 the text is literal.
///
/// Nothing else does: Action/NotAction match the action name alone, and Principal/NotPrincipal
/// compare the caller's ARN and account literally (IAM has no policy variables there). A
/// policy for which this is an empty list decides the same whatever the context holds. A change to
/// what evaluation reads (a new element, variables in another place) must update this rule.
///
/// So: the condition keys `statements` look up (lower-cased, sorted, without repeats), or
/// `None` when a policy variable may read any key: in a Resource or NotResource
/// ([`Pattern::Variables`]), or in a condition's values (any `${`, whatever the version: the
/// safe side). An empty list: the policy reads nothing of the context.
fn statements_keys_read(statements: &[Statement]) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    for st in statements {
        if st
            .resources
            .as_ref()
            .is_some_and(|r| r.items.iter().any(|p| matches!(p, Pattern::Variables(_))))
        {
            return None;
        }
        for c in &st.conditions {
            if c.raw.iter().any(|v| v.contains("${")) {
                return None;
            }
            keys.push(c.key.to_ascii_lowercase());
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Some(keys)
}

const TOP_LEVEL: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

/// Where a statement is, for messages: `Statement 2` or `Statement 2 (Sid "ReadOnly")`.
pub(crate) fn where_is(n: usize, sid: Option<&str>) -> String {
    match sid {
        Some(sid) if !sid.is_empty() => format!("Statement {n} (Sid \"{sid}\")"),
        _ => format!("Statement {n}"),
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(message.into()))
}

/// A string or a non-empty list of strings.
fn strings(v: &Value, at: &str, element: &str) -> Result<Vec<String>, PolicyError> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if items.is_empty() {
        return err(format!("{at}: {element} must not be an empty list."));
    }
    items
        .into_iter()
        .map(|x| match x {
            Value::String(s) => Ok(s.clone()),
            _ => err(format!(
                "{at}: {element} must be a string or a list of strings."
            )),
        })
        .collect()
}

fn parse_action(action: &str, at: &str, element: &str) -> Result<Vec<Tok>, PolicyError> {
    // IAM: "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    if action != "*" {
        match action.split_once(':') {
            Some((vendor, name))
                if !vendor.is_empty()
                    && !name.is_empty()
                    && vendor
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-') => {}
            _ => {
                return err(format!(
                    "{at}: {element} \"{action}\" must be \"*\" or prefaced by a service, as in \"secretsmanager:GetSecretValue\"."
                ));
            }
        }
    }
    Ok(glob::tokens(&action.to_ascii_lowercase()))
}

fn parse_principal(v: &Value, at: &str, element: &str) -> Result<Principals, PolicyError> {
    let mut out = Principals {
        negated: element == "NotPrincipal",
        everyone: false,
        aws: Vec::new(),
        other: Vec::new(),
    };
    match v {
        Value::String(s) if s == "*" => out.everyone = true,
        Value::Object(map) if !map.is_empty() => {
            for (kind, values) in map {
                let values = strings(values, at, &format!("{element}.{kind}"))?;
                match kind.as_str() {
                    "AWS" => {
                        for p in values {
                            if p == "*" {
                                out.everyone = true;
                            } else if is_account_id(&p) || p.starts_with("arn:") {
                                if p.starts_with("arn:") && p.split(':').count() < 6 {
                                    return err(format!(
                                        "{at}: {element} \"{p}\" is not a valid ARN."
                                    ));
                                }
                                out.aws.push(p);
                            } else {
                                return err(format!(
                                    "{at}: {element} \"{p}\" is neither \"*\", an account id (12 digits) nor an ARN."
                                ));
                            }
                        }
                    }
                    "Service" | "Federated" | "CanonicalUser" => {
                        out.other
                            .extend(values.into_iter().map(|p| (kind.clone(), p)));
                    }
                    _ => {
                        return err(format!(
                            "{at}: {element} has an unknown principal type \"{kind}\" (expected AWS, Service, Federated or CanonicalUser)."
                        ));
                    }
                }
            }
        }
        _ => {
            return err(format!(
                "{at}: {element} must be \"*\" or an object such as {{\"AWS\": \"arn:aws:iam::111122223333:root\"}}."
            ));
        }
    }
    Ok(out)
}

pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_statement(st: &Value, n: usize, version: Version) -> Result<Statement, PolicyError> {
    let Some(st) = st.as_object() else {
        return err(format!("Statement {n} must be a JSON object."));
    };
    let sid = match st.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return err(format!("Statement {n}: Sid must be a string.")),
    };
    let at = where_is(n, sid.as_deref());
    if let Some(sid) = &sid
        && !sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '_')
    {
        // IAM allows letters and digits (other policy languages add spaces, hyphens, underscores).
        return err(format!(
            "{at}: Sid may contain only letters, digits, spaces, hyphens and underscores."
        ));
    }
    if let Some(unknown) = st.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return err(format!("{at} has an unknown element \"{unknown}\"."));
    }
    let effect = match st.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => {
            return err(format!("{at} needs an Effect of \"Allow\" or \"Deny\"."));
        }
    };
    let principal = match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return err(format!(
                "{at} has both Principal and NotPrincipal; use one."
            ));
        }
        (Some(p), None) => Some(parse_principal(p, &at, "Principal")?),
        (None, Some(p)) => Some(parse_principal(p, &at, "NotPrincipal")?),
        (None, None) => None,
    };
    let (action_key, action_value) = match (st.get("Action"), st.get("NotAction")) {
        (Some(_), Some(_)) => {
            return err(format!("{at} has both Action and NotAction; use one."));
        }
        (Some(a), None) => ("Action", a),
        (None, Some(a)) => ("NotAction", a),
        (None, None) => return err(format!("{at} needs an Action or NotAction.")),
    };
    let action_text = strings(action_value, &at, action_key)?;
    let actions = Names {
        items: action_text
            .iter()
            .map(|a| parse_action(a, &at, action_key))
            .collect::<Result<_, _>>()?,
        negated: action_key == "NotAction",
    };
    let resources = match (st.get("Resource"), st.get("NotResource")) {
        (Some(_), Some(_)) => {
            return err(format!("{at} has both Resource and NotResource; use one."));
        }
        (Some(r), None) | (None, Some(r)) => {
            let key = if st.contains_key("Resource") {
                "Resource"
            } else {
                "NotResource"
            };
            let items = strings(r, &at, key)?;
            for r in &items {
                if r != "*" && !(r.starts_with("arn:") && r.split(':').count() >= 6) {
                    return err(format!(
                        "{at}: {key} \"{r}\" must be \"*\" or an ARN (arn:partition:service:region:account:resource)."
                    ));
                }
            }
            Some(Names {
                items: items.iter().map(|r| Pattern::new(r, version)).collect(),
                negated: key == "NotResource",
            })
        }
        (None, None) => None,
    };
    let conditions = match st.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(map)) => crate::condition::parse(map, &at, version)?,
        Some(_) => return err(format!("{at}: Condition must be a JSON object.")),
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        actions,
        action_text,
        resources,
        conditions,
    })
}

/// Line and column of a JSON syntax error, for ValidateResourcePolicy.
pub(crate) fn json_error(document: &str) -> Option<String> {
    match serde_json::from_str::<Value>(document) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "The policy is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        )),
    }
}

impl Policy {
    /// Parses a policy document of any kind (identity, resource or key policy). Statements
    /// may carry a Principal; [`Policy::parse_identity_policy`] and
    /// [`Policy::parse_resource_policy`] add the rules of those kinds.
    pub fn parse(document: &str) -> Result<Policy, PolicyError> {
        let doc: Value = serde_json::from_str(document)
            .map_err(|_| PolicyError("The policy is not valid JSON.".into()))?;
        let Value::Object(obj) = doc else {
            return err("The policy must be a JSON object.");
        };
        Policy::from_object(&obj)
    }

    fn from_object(obj: &Map<String, Value>) -> Result<Policy, PolicyError> {
        if let Some(unknown) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
            return err(format!(
                "The policy has an unknown top-level element \"{unknown}\" (expected Version, Id, Statement)."
            ));
        }
        let version = match obj.get("Version") {
            None => Version::V2008,
            Some(v) => match v.as_str() {
                Some("2012-10-17") => Version::V2012,
                Some("2008-10-17") => Version::V2008,
                _ => return err("Version must be \"2012-10-17\" or \"2008-10-17\"."),
            },
        };
        if let Some(id) = obj.get("Id")
            && !id.is_string()
        {
            return err("Id must be a string.");
        }
        let statements = match obj.get("Statement") {
            None => return err("The policy has no Statement."),
            Some(Value::Array(items)) if items.is_empty() => {
                return err("The policy has no Statement.");
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, st)| parse_statement(st, i + 1, version))
                .collect::<Result<Vec<_>, _>>()?,
            Some(st) => vec![parse_statement(st, 1, version)?],
        };
        let mut sids = std::collections::HashSet::new();
        for st in &statements {
            if let Some(sid) = &st.sid
                && !sids.insert(sid.as_str())
            {
                return err(format!(
                    "Statement ids (Sid) must be unique in a policy: \"{sid}\" appears twice."
                ));
            }
        }
        Ok(Policy {
            version,
            keys_read: statements_keys_read(&statements),
            statements,
        })
    }

    /// An identity-based policy (a user's inline policy): no Principal/NotPrincipal, and
    /// every statement names its Resource or NotResource (IAM's rules).
    pub fn parse_identity_policy(document: &str) -> Result<Policy, PolicyError> {
        let policy = Policy::parse(document)?;
        for (i, st) in policy.statements.iter().enumerate() {
            let at = where_is(i + 1, st.sid.as_deref());
            if st.principal.is_some() {
                return err(format!(
                    "{at}: an identity-based policy must not have a Principal or NotPrincipal."
                ));
            }
            if st.resources.is_none() {
                return err(format!("{at} needs a Resource or NotResource."));
            }
        }
        Ok(policy)
    }

    /// A resource-based policy (a secret's policy, a key policy): every statement names the
    /// principals it applies to.
    pub fn parse_resource_policy(document: &str) -> Result<Policy, PolicyError> {
        let policy = Policy::parse(document)?;
        for (i, st) in policy.statements.iter().enumerate() {
            if st.principal.is_none() {
                return err(format!(
                    "{} needs exactly one of Principal or NotPrincipal: a resource policy names who it applies to.",
                    where_is(i + 1, st.sid.as_deref())
                ));
            }
        }
        Ok(policy)
    }

    /// `{"Effect":"Allow","Action":"*","Resource":"*"}` — what an account's administrator has.
    pub fn administrator_access() -> Policy {
        Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .expect("the administrator policy parses")
    }

    /// Whether evaluating this policy can read the request context: some statement has a
    /// Condition, or a policy variable in its Resource or NotResource. Decided once at parse
    /// time; the rule, and why it is exact, is at `statements_keys_read` in policy.rs. When
    /// no policy of a request reads it, the caller may pass an empty [`crate::Context`] (see
    /// [`crate::context_if_read`]): the decision cannot depend on it.
    pub fn reads_context(&self) -> bool {
        self.keys_read.as_ref().is_none_or(|keys| !keys.is_empty())
    }

    /// The condition keys this policy can read (lower-cased), or `None` for any key.
    pub(crate) fn keys_read(&self) -> Option<&[String]> {
        self.keys_read.as_deref()
    }

    /// How many statements the policy has.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }
}
