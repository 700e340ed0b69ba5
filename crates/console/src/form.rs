//! `application/x-www-form-urlencoded` bodies and query strings, with repeated names (the rows
//! of key/value pairs, tags and replica Regions). Values may be secret values: they live in
//! memory that is zeroized on drop and are never shown by `Debug`.

use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Form {
    fields: Vec<(String, Zeroizing<String>)>,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Form")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl Form {
    pub fn parse(bytes: &[u8]) -> Form {
        Form {
            fields: form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
                .collect(),
        }
    }

    pub fn from_query(query: Option<&str>) -> Form {
        Form::parse(query.unwrap_or_default().as_bytes())
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or "" when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }

    /// A trimmed value, `None` when absent or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|s| !s.is_empty())
    }

    /// A value kept exactly as typed (a secret value), in zeroizing memory.
    pub fn secret(&self, name: &str) -> Zeroizing<String> {
        Zeroizing::new(self.get(name).unwrap_or_default().to_string())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), Some("on" | "true" | "1" | "yes"))
    }
}

/// Percent-encodes one query-string value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `path?k=v&k=v` with every value encoded.
pub fn url(path: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::from(path);
    for (i, (k, v)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_keep_their_order() {
        let f = Form::parse(b"key=a&value=1&key=b&value=2+3&name=x%2Fy");
        assert_eq!(f.all("key").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.all("value").collect::<Vec<_>>(), ["1", "2 3"]);
        assert_eq!(f.get("name"), Some("x/y"));
        assert_eq!(f.get("missing"), None);
        assert_eq!(f.optional("missing"), None);
    }

    #[test]
    fn secret_values_are_kept_exactly_and_never_debug_printed() {
        let f = Form::parse(b"value=+hunter2%0A");
        assert_eq!(f.secret("value").as_str(), " hunter2\n");
        assert_eq!(f.text("value"), "hunter2");
        assert!(!format!("{f:?}").contains("hunter2"));
    }

    #[test]
    fn urls_encode_names_with_slashes_and_plus() {
        assert_eq!(
            url(
                "/console/secret",
                &[("region", "us-east-1"), ("name", "a/b+c")]
            ),
            "/console/secret?region=us-east-1&name=a%2Fb%2Bc"
        );
        let back = Form::from_query(Some("name=a%2Fb%2Bc"));
        assert_eq!(back.get("name"), Some("a/b+c"));
    }
}
