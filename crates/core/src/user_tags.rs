//! Tags of IAM users: CreateUser's `Tags`, TagUser, UntagUser, ListUserTags (and GetUser's
//! `Tags`). Kept in the user's row as a JSON array, sorted by key without regard to case.
//!
//! IAM's rules: at most 50 tags per user; keys of 1–128 and values of 0–256 characters of
//! `[\p{L}\p{Z}\p{N}_.:/=+\-@]`; keys beginning with `aws:` are reserved; keys are unique
//! without regard to case (a tag whose key differs only in case replaces the old one).

use serde::{Deserialize, Serialize};

use crate::query::{Node, Params, QueryError};

/// AWS's quota of tags per IAM user.
pub(crate) const TAGS_PER_USER: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

const PATTERN: &str =
    "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+";

/// `Tags.member.N.Key` / `.Value` of a request, checked.
pub(crate) fn tags_param(params: &Params) -> Result<Vec<Tag>, QueryError> {
    let mut tags = Vec::new();
    for n in 1.. {
        let key = params.get(&format!("Tags.member.{n}.Key"));
        let value = params.get(&format!("Tags.member.{n}.Value"));
        let (key, value) = match (key, value) {
            (None, None) => break,
            (Some(k), Some(v)) => (k, v),
            (None, _) => {
                return Err(QueryError::validation(format!(
                    "1 validation error detected: Value null at 'tags.{n}.member.key' failed to satisfy constraint: Member must not be null"
                )));
            }
            (Some(_), None) => {
                return Err(QueryError::validation(format!(
                    "1 validation error detected: Value null at 'tags.{n}.member.value' failed to satisfy constraint: Member must not be null"
                )));
            }
        };
        let key_member = format!("tags.{n}.member.key");
        let value_member = format!("tags.{n}.member.value");
        if key.is_empty() {
            return Err(QueryError::constraint(
                key,
                &key_member,
                "Member must have length greater than or equal to 1",
            ));
        }
        if key.chars().count() > 128 {
            return Err(QueryError::constraint(
                key,
                &key_member,
                "Member must have length less than or equal to 128",
            ));
        }
        if !key.chars().all(allowed) {
            return Err(QueryError::constraint(key, &key_member, PATTERN));
        }
        if value.chars().count() > 256 {
            return Err(QueryError::constraint(
                value,
                &value_member,
                "Member must have length less than or equal to 256",
            ));
        }
        if !value.chars().all(allowed) {
            return Err(QueryError::constraint(
                value,
                &value_member,
                "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
            ));
        }
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(invalid_input(
                "The tag key is reserved: tag keys beginning with aws: are reserved for AWS use.",
            ));
        }
        tags.push(Tag {
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    if !tags.iter().all(|t| seen.insert(t.key.to_lowercase())) {
        return Err(invalid_input(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        ));
    }
    Ok(tags)
}

/// `TagKeys.member.N` of UntagUser (1–50 keys).
pub(crate) fn tag_keys_param(params: &Params) -> Result<Vec<String>, QueryError> {
    let keys: Vec<String> = (1..)
        .map_while(|n| {
            params
                .get(&format!("TagKeys.member.{n}"))
                .map(str::to_string)
        })
        .collect();
    if keys.is_empty() {
        return Err(QueryError::validation(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null",
        ));
    }
    if keys.len() > TAGS_PER_USER {
        return Err(QueryError::constraint(
            &format!("[{}]", keys.join(", ")),
            "tagKeys",
            "Member must have length less than or equal to 50",
        ));
    }
    Ok(keys)
}

fn invalid_input(message: &str) -> QueryError {
    QueryError::new(400, "InvalidInput", message)
}

/// `existing` with `new` added (a key equal without regard to case is replaced), sorted; the
/// quota error when more than 50 would result.
pub(crate) fn merged(mut existing: Vec<Tag>, new: Vec<Tag>) -> Result<Vec<Tag>, QueryError> {
    for tag in new {
        existing.retain(|t| !t.key.eq_ignore_ascii_case(&tag.key));
        existing.push(tag);
    }
    if existing.len() > TAGS_PER_USER {
        return Err(QueryError::conflict(
            "LimitExceeded",
            format!("Cannot exceed quota for TagsPerUser: {TAGS_PER_USER}"),
        ));
    }
    existing.sort_by_key(|t| t.key.to_lowercase());
    Ok(existing)
}

/// `existing` without the tags named in `keys` (without regard to case).
pub(crate) fn without(mut existing: Vec<Tag>, keys: &[String]) -> Vec<Tag> {
    existing.retain(|t| !keys.iter().any(|k| k.eq_ignore_ascii_case(&t.key)));
    existing
}

/// The tags stored in a user's row.
pub fn parse(stored: &str) -> Vec<Tag> {
    serde_json::from_str(stored).unwrap_or_default()
}

pub(crate) fn to_json(tags: &[Tag]) -> String {
    serde_json::to_string(tags).expect("tags serialize")
}

/// `<member><Key>..</Key><Value>..</Value></member>`
pub(crate) fn member(tag: &Tag) -> Node {
    Node::Element(
        "member",
        vec![Node::text("Key", &tag.key), Node::text("Value", &tag.value)],
    )
}

/// One `<member>` per tag.
pub(crate) fn members(tags: &[Tag]) -> Vec<Node> {
    tags.iter().map(member).collect()
}
