//! Resource-policy documents: syntax checks and the broad-access check behind
//! BlockPublicPolicy and ValidateResourcePolicy. Enforcement of policies belongs to the
//! access-control feature; here they are stored and checked.

use serde_json::Value;

/// A finding of ValidateResourcePolicy. Check names are Coffer's own [E]: AWS documents the
/// field but not its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub message: String,
}

pub const SYNTAX_CHECK: &str = "SYNTAX_CHECK";
pub const BROAD_ACCESS_CHECK: &str = "BROAD_ACCESS_CHECK";

fn syntax(message: impl Into<String>) -> Finding {
    Finding {
        check: SYNTAX_CHECK,
        message: message.into(),
    }
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Syntax findings (empty when the document is a well-formed resource policy).
pub fn syntax_findings(document: &str) -> Vec<Finding> {
    let Ok(doc) = serde_json::from_str::<Value>(document) else {
        return vec![syntax("The policy is not valid JSON.")];
    };
    let Some(obj) = doc.as_object() else {
        return vec![syntax("The policy must be a JSON object.")];
    };
    let mut out = Vec::new();
    if let Some(version) = obj.get("Version")
        && !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17"))
    {
        out.push(syntax("Version must be \"2012-10-17\" or \"2008-10-17\"."));
    }
    let Some(statements) = obj.get("Statement") else {
        out.push(syntax("The policy has no Statement."));
        return out;
    };
    for (i, st) in as_list(statements).into_iter().enumerate() {
        let n = i + 1;
        let Some(st) = st.as_object() else {
            out.push(syntax(format!("Statement {n} must be a JSON object.")));
            continue;
        };
        if !matches!(
            st.get("Effect").and_then(Value::as_str),
            Some("Allow" | "Deny")
        ) {
            out.push(syntax(format!(
                "Statement {n} needs an Effect of \"Allow\" or \"Deny\"."
            )));
        }
        if st.contains_key("Action") == st.contains_key("NotAction") {
            out.push(syntax(format!(
                "Statement {n} needs exactly one of Action or NotAction."
            )));
        }
        if st.contains_key("Principal") == st.contains_key("NotPrincipal") {
            out.push(syntax(format!(
                "Statement {n} needs exactly one of Principal or NotPrincipal: a resource policy names who it applies to."
            )));
        }
        for key in ["Action", "NotAction", "Resource", "NotResource"] {
            if let Some(v) = st.get(key)
                && !as_list(v).iter().all(|x| x.is_string())
            {
                out.push(syntax(format!(
                    "Statement {n}: {key} must be a string or a list of strings."
                )));
            }
        }
        if let Some(c) = st.get("Condition")
            && !c.is_object()
        {
            out.push(syntax(format!(
                "Statement {n}: Condition must be a JSON object."
            )));
        }
    }
    out
}

fn is_everyone(principal: &Value) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(map) => map
            .get("AWS")
            .is_some_and(|aws| as_list(aws).iter().any(|p| p.as_str() == Some("*"))),
        _ => false,
    }
}

/// Statements that allow everyone (`"*"`) without a condition grant broad access.
pub fn broad_access_findings(document: &str) -> Vec<Finding> {
    let Ok(doc) = serde_json::from_str::<Value>(document) else {
        return Vec::new();
    };
    let Some(statements) = doc.get("Statement") else {
        return Vec::new();
    };
    as_list(statements)
        .into_iter()
        .enumerate()
        .filter(|(_, st)| {
            st.get("Effect").and_then(Value::as_str) == Some("Allow")
                && st.get("Principal").is_some_and(is_everyone)
                && st
                    .get("Condition")
                    .is_none_or(|c| c.as_object().is_none_or(|m| m.is_empty()))
        })
        .map(|(i, _)| Finding {
            check: BROAD_ACCESS_CHECK,
            message: format!(
                "Statement {} allows access to every principal (\"*\") without a condition.",
                i + 1
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;

    #[test]
    fn a_well_formed_policy_has_no_findings() {
        assert!(syntax_findings(ALLOW_ACCOUNT).is_empty());
        assert!(broad_access_findings(ALLOW_ACCOUNT).is_empty());
    }

    #[test]
    fn broken_policies_are_reported() {
        assert_eq!(syntax_findings("{not json").len(), 1);
        assert!(
            !syntax_findings(r#"{"Statement":[{"Effect":"Maybe","Action":"x","Principal":"*"}]}"#)
                .is_empty()
        );
    }

    #[test]
    fn public_principal_without_condition_is_broad_access() {
        let public = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"}}"#;
        assert_eq!(broad_access_findings(public).len(), 1);
        let conditioned = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"secretsmanager:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}}}"#;
        assert!(broad_access_findings(conditioned).is_empty());
    }
}
