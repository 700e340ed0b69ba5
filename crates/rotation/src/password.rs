//! `coffer-password`: replaces the `password` field of a JSON secret, or the whole string, with
//! a new random password under GetRandomPassword's rules. Options come from the secret's tags:
//!
//! | tag | meaning | default |
//! |---|---|---|
//! | `coffer:password-length` | PasswordLength | 32 |
//! | `coffer:exclude-characters` | ExcludeCharacters | none |
//! | `coffer:exclude-punctuation` | `true` to leave out punctuation | false |
//! | `coffer:exclude-numbers`, `coffer:exclude-uppercase`, `coffer:exclude-lowercase` | `true` to leave the class out | false |
//! | `coffer:include-space` | `true` to allow spaces | false |
//!
//! There is nothing outside the secret to change, so `setSecret` and `testSecret` only check
//! that the pending value is there.

use async_trait::async_trait;
use coffer_core::ops::get_random_password;
use zeroize::Zeroizing;

use crate::{Error, Event, Result, Rotator, SecretsApi};

pub const FUNCTION: &str = "coffer-password";

pub struct PasswordRotator;

fn flag(tags: &[coffer_store::Tag], key: &str) -> Option<bool> {
    tags.iter()
        .find(|t| t.key == key)
        .map(|t| t.value.eq_ignore_ascii_case("true"))
}

/// The new value: `current` with its `password` field replaced, or the password itself.
pub fn next_value(current: &str, password: &str) -> Zeroizing<String> {
    if let Ok(serde_json::Value::Object(mut map)) =
        serde_json::from_str::<serde_json::Value>(current)
        && map.get("password").is_some_and(|p| p.is_string())
    {
        map.insert(
            "password".into(),
            serde_json::Value::String(password.into()),
        );
        return Zeroizing::new(serde_json::Value::Object(map).to_string());
    }
    Zeroizing::new(password.to_string())
}

#[async_trait]
impl Rotator for PasswordRotator {
    async fn invoke(&self, api: &SecretsApi<'_>, event: &Event) -> Result<()> {
        let id = event.secret_id.as_str();
        let token = event.client_request_token.as_str();
        match event.step.as_str() {
            "createSecret" => {
                if !api.check_pending(id, token).await? {
                    return Ok(());
                }
                if api
                    .value(id, Some(token), Some("AWSPENDING"))
                    .await?
                    .is_some()
                {
                    return Ok(());
                }
                let current = api.current_value(id).await?;
                let tags = api.describe(id).await?.tags.unwrap_or_default();
                let length = tags
                    .iter()
                    .find(|t| t.key == "coffer:password-length")
                    .map(|t| {
                        t.value.parse::<i64>().map_err(|_| {
                            Error::Refused("tag coffer:password-length is not a number".into())
                        })
                    })
                    .transpose()?;
                let password = api
                    .random_password(get_random_password::Input {
                        password_length: length,
                        exclude_characters: tags
                            .iter()
                            .find(|t| t.key == "coffer:exclude-characters")
                            .map(|t| t.value.clone()),
                        exclude_numbers: flag(&tags, "coffer:exclude-numbers"),
                        exclude_punctuation: flag(&tags, "coffer:exclude-punctuation"),
                        exclude_uppercase: flag(&tags, "coffer:exclude-uppercase"),
                        exclude_lowercase: flag(&tags, "coffer:exclude-lowercase"),
                        include_space: flag(&tags, "coffer:include-space"),
                        require_each_included_type: None,
                    })
                    .await?;
                api.put_pending(id, token, next_value(&current, &password))
                    .await
            }
            "setSecret" | "testSecret" => {
                if api.check_pending(id, token).await?
                    && api
                        .value(id, Some(token), Some("AWSPENDING"))
                        .await?
                        .is_none()
                {
                    return Err(Error::Refused("the pending version has no value".into()));
                }
                Ok(())
            }
            "finishSecret" => api.finish(id, token).await,
            other => Err(Error::Refused(format!("unknown step {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_secrets_keep_every_field_but_the_password() {
        let v = next_value(r#"{"username":"app","password":"old","port":5432}"#, "new");
        let parsed: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(parsed["username"], "app");
        assert_eq!(parsed["password"], "new");
        assert_eq!(parsed["port"], 5432);
    }

    #[test]
    fn plain_strings_are_replaced_whole() {
        assert_eq!(next_value("old", "new").as_str(), "new");
        assert_eq!(next_value(r#"{"user":"x"}"#, "new").as_str(), "new");
    }
}
