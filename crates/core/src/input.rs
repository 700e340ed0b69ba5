//! Input members shared by several operations, and their checks.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::model::SecretValue;
use crate::validate::Violations;

/// A base64 blob (`SecretBinary`), decoded into memory that is zeroized on drop.
pub struct Blob(pub Zeroizing<Vec<u8>>);

/// Serialised as the API sends it (base64), so an input can be shown as its request (the web
/// console's audit records, where `SecretBinary` is then redacted).
impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Blob, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(|b| Blob(Zeroizing::new(b)))
            .map_err(|_| serde::de::Error::custom("invalid base64 blob"))
    }
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct TagInput {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// Checks a `Tags` list: keys 1–128, values 0–256 (spec §3).
pub fn check_tags(v: &mut Violations, tags: &Option<Vec<TagInput>>, path: &str) {
    for (i, tag) in tags.iter().flatten().enumerate() {
        let key_path = format!("{path}.{}.member.key", i + 1);
        if v.required(&tag.key, &key_path) {
            v.length(tag.key.as_deref(), &key_path, 1, 128);
        }
        let value_path = format!("{path}.{}.member.value", i + 1);
        if v.required(&tag.value, &value_path) {
            v.length(tag.value.as_deref(), &value_path, 0, 256);
        }
    }
}

pub fn to_tags(tags: Vec<TagInput>) -> Vec<coffer_store::Tag> {
    tags.into_iter()
        .map(|t| coffer_store::Tag {
            key: t.key.unwrap_or_default(),
            value: t.value.unwrap_or_default(),
        })
        .collect()
}

/// Merges tags as TagResource does: an existing key gets the new value in place.
pub fn merge_tags(existing: &mut Vec<coffer_store::Tag>, new: Vec<coffer_store::Tag>) {
    for tag in new {
        match existing.iter_mut().find(|t| t.key == tag.key) {
            Some(old) => old.value = tag.value,
            None => existing.push(tag),
        }
    }
}

/// AWS's secret value quota (spec §8): SecretString as UTF-8 and SecretBinary decoded.
pub const MAX_VALUE_BYTES: usize = 65536;

/// Tags on one secret at most (spec §3, AWS's tagging quota).
pub const MAX_TAGS: usize = 50;

/// Refuses a secret that would carry more than [`MAX_TAGS`] tags (after merging, counted by
/// distinct key). AWS's exact reply is not recorded; Coffer's choice is the exception TagResource
/// and CreateSecret document for a bad parameter, with a message that says the bound and the
/// count (docs/status.md).
pub fn check_tag_count(tags: &[coffer_store::Tag]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid_parameter(format!(
            "A secret can have at most {MAX_TAGS} tags; this request would leave it with {}.",
            tags.len()
        )));
    }
    Ok(())
}

/// Checks `ClientRequestToken` (32–64) and the value members; returns the value, if any.
pub fn check_value(
    v: &mut Violations,
    token: &Option<String>,
    string: &Option<Zeroizing<String>>,
    binary: &Option<Blob>,
) {
    v.length(token.as_deref(), "clientRequestToken", 32, 64);
    v.length_sensitive(
        string.as_ref().map(|s| s.as_str()),
        "secretString",
        1,
        MAX_VALUE_BYTES,
    );
    v.bytes_sensitive(
        string.as_ref().map(|s| s.as_str()),
        "secretString",
        MAX_VALUE_BYTES,
    );
    if let Some(b) = binary {
        let n = b.0.len();
        if !(1..=MAX_VALUE_BYTES).contains(&n) {
            v.count(Some(n), "secretBinary", 1, MAX_VALUE_BYTES);
        }
    }
}

/// Exactly one of SecretString / SecretBinary, or none.
pub fn take_value(
    string: Option<Zeroizing<String>>,
    binary: Option<Blob>,
) -> Result<Option<SecretValue>> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(Error::invalid_parameter(
            // [F] 2018 field report (printed by the Java SDK with a typographic apostrophe).
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        )),
        (Some(s), None) => Ok(Some(SecretValue::String(s))),
        (None, Some(b)) => Ok(Some(SecretValue::Binary(b.0))),
        (None, None) => Ok(None),
    }
}
