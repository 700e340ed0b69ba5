//! Shape constraints the server must enforce itself (botocore checks only `min`, JS and Rust
//! nothing), reported in the Coral format AWS uses (spec §1.3):
//! `1 validation error detected: Value 'x' at 'name' failed to satisfy constraint: Member must ...`.

use crate::error::{Error, Result};

#[derive(Default)]
pub struct Violations(Vec<String>);

/// How a value is echoed: sensitive members (SecretString, SecretBinary, ...) are never echoed.
fn value_part(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("Value '{v}' at"),
        None => "Value at".to_string(),
    }
}

impl Violations {
    pub fn new() -> Violations {
        Violations::default()
    }

    fn push(&mut self, value: Option<&str>, path: &str, constraint: &str) {
        self.0.push(format!(
            "{} '{path}' failed to satisfy constraint: {constraint}",
            value_part(value)
        ));
    }

    /// `Value null at 'secretId' failed to satisfy constraint: Member must not be null`.
    pub fn required<T>(&mut self, value: &Option<T>, path: &str) -> bool {
        if value.is_none() {
            self.0.push(format!(
                "Value null at '{path}' failed to satisfy constraint: Member must not be null"
            ));
            return false;
        }
        true
    }

    pub fn length(&mut self, value: Option<&str>, path: &str, min: usize, max: usize) {
        self.length_inner(value, path, min, max, false);
    }

    /// Same as [`Violations::length`] but never echoes the value.
    pub fn length_sensitive(&mut self, value: Option<&str>, path: &str, min: usize, max: usize) {
        self.length_inner(value, path, min, max, true);
    }

    fn length_inner(
        &mut self,
        value: Option<&str>,
        path: &str,
        min: usize,
        max: usize,
        sensitive: bool,
    ) {
        let Some(v) = value else { return };
        let n = v.chars().count();
        let shown = if sensitive { None } else { Some(v) };
        if n < min {
            self.push(
                shown,
                path,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if n > max {
            self.push(
                shown,
                path,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// A sensitive string's size in UTF-8 bytes (AWS's secret value quota is 65,536 bytes,
    /// while the model's `max` counts characters). Coffer's choice, as AWS's reply to a value
    /// within the character bound but over the byte bound is not recorded: the same message as
    /// for a value too long, the bound now counted in bytes (docs/status.md).
    pub fn bytes_sensitive(&mut self, value: Option<&str>, path: &str, max: usize) {
        let Some(v) = value else { return };
        if v.len() > max && v.chars().count() <= max {
            self.push(
                None,
                path,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    pub fn count(&mut self, len: Option<usize>, path: &str, min: usize, max: usize) {
        let Some(n) = len else { return };
        if n < min {
            self.0.push(format!(
                "Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}"
            ));
        } else if n > max {
            self.0.push(format!(
                "Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"
            ));
        }
    }

    /// Count of a list of strings; the value is echoed as Java renders a list: `[a, b]`.
    pub fn count_strings(&mut self, values: Option<&[String]>, path: &str, min: usize, max: usize) {
        let Some(values) = values else { return };
        let shown = format!("[{}]", values.join(", "));
        let n = values.len();
        if n < min {
            self.push(
                Some(&shown),
                path,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if n > max {
            self.push(
                Some(&shown),
                path,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    pub fn range(&mut self, value: Option<i64>, path: &str, min: i64, max: i64) {
        let Some(v) = value else { return };
        let shown = v.to_string();
        if v < min {
            self.push(
                Some(&shown),
                path,
                &format!("Member must have value greater than or equal to {min}"),
            );
        } else if v > max {
            self.push(
                Some(&shown),
                path,
                &format!("Member must have value less than or equal to {max}"),
            );
        }
    }

    pub fn pattern(
        &mut self,
        value: Option<&str>,
        path: &str,
        ok: impl Fn(&str) -> bool,
        pattern: &str,
    ) {
        let Some(v) = value else { return };
        if !ok(v) {
            self.push(
                Some(v),
                path,
                &format!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
    }

    pub fn one_of(&mut self, value: Option<&str>, path: &str, allowed: &[&str]) {
        let Some(v) = value else { return };
        if !allowed.contains(&v) {
            self.push(
                Some(v),
                path,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub fn finish(self) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(Error::validation(format!(
                "1 validation error detected: {}",
                self.0[0]
            ))),
            n => Err(Error::validation(format!(
                "{n} validation errors detected: {}",
                self.0.join("; ")
            ))),
        }
    }
}

/// Characters AWS accepts in a secret name (spec §2.1); `!` for AWS-managed names like `rds!cluster-...`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@!-".contains(c))
}

/// [S] recorded for names with spaces, `*`, `?`, `]`, `\` on every operation that takes a name.
pub fn invalid_name() -> Error {
    Error::validation(
        "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_violations_are_counted_and_joined() {
        let mut v = Violations::new();
        v.length(Some(""), "name", 1, 512);
        v.range(Some(0), "maxResults", 1, 100);
        let err = v.finish().unwrap_err();
        assert_eq!(
            err.message,
            "2 validation errors detected: Value '' at 'name' failed to satisfy constraint: Member must have length greater than or equal to 1; Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
    }

    #[test]
    fn sensitive_values_are_not_echoed() {
        let mut v = Violations::new();
        v.length_sensitive(Some("hunter2"), "secretString", 10, 20);
        let err = v.finish().unwrap_err();
        assert!(!err.message.contains("hunter2"));
        assert!(err.message.contains("Value at 'secretString'"));
    }

    #[test]
    fn names_allow_the_documented_characters_only() {
        assert!(is_valid_name("Valid/_+=.@-Name"));
        assert!(is_valid_name("rds!cluster-1"));
        assert!(!is_valid_name("Inv Name"));
        assert!(!is_valid_name(" Inv*Name? "));
        assert!(!is_valid_name(""));
    }
}
