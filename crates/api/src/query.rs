//! The AWS Query protocol, as the IAM and STS clients send it: a form-encoded `POST /` body
//! (`Action=CreateUser&Version=2010-05-08&UserName=bob`), answered with XML in the service's
//! namespace, errors as `<ErrorResponse>` with `Type`, `Code`, `Message` and `RequestId`.
//!
//! Only what the IAM subset needs: flat parameters (no `member.N` lists), text elements.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
pub const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The parameters of a form-encoded body. A repeated name keeps its last value.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// `None` when the body is not valid form encoding (bad `%` escape, not UTF-8).
    pub fn parse(body: &[u8]) -> Option<Params> {
        let mut out = HashMap::new();
        for pair in body.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            out.insert(decode(name)?, decode(value)?);
        }
        Some(Params(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn decode(input: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*input.get(i + 1)?)?;
                let lo = hex(*input.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as IAM returns
/// policy documents (`%7B%22Version%22...`).
pub fn url_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text for an XML element or attribute.
pub fn escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<name>text</name>` with the text escaped.
pub fn element(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", escape(text))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as IAM writes dates.
pub fn iso_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn xml_response(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", v);
    }
    response
}

/// `<ActionResponse xmlns=...><ActionResult>result</ActionResult><ResponseMetadata>...`;
/// operations without a result (DeleteUser, ...) pass `None` and have no `...Result` element.
pub fn success(namespace: &str, action: &str, result: Option<&str>, request_id: &str) -> Response {
    let result = result
        .map(|r| format!("<{action}Result>{r}</{action}Result>"))
        .unwrap_or_default();
    let body = format!(
        "<{action}Response xmlns=\"{namespace}\">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    );
    xml_response(StatusCode::OK, request_id, body)
}

/// An error of the Query protocol: the code AWS uses, its HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl QueryError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn no_such_entity(message: impl Into<String>) -> QueryError {
        QueryError::new(StatusCode::NOT_FOUND, "NoSuchEntity", message)
    }

    pub fn validation(message: impl Into<String>) -> QueryError {
        QueryError::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    pub fn invalid_client_token() -> QueryError {
        QueryError::new(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    }

    pub fn service_failure() -> QueryError {
        QueryError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// The `<ErrorResponse>` document: `Type` is `Receiver` for server faults, else `Sender`.
    pub fn into_response(self, namespace: &str, request_id: &str) -> Response {
        let kind = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let body = format!(
            "<ErrorResponse xmlns=\"{namespace}\"><Error><Type>{kind}</Type>{}{}</Error>{}</ErrorResponse>",
            element("Code", self.code),
            element("Message", &self.message),
            element("RequestId", request_id),
        );
        xml_response(self.status, request_id, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode_as_botocore_encodes_them() {
        let p =
            Params::parse(b"Action=PutUserPolicy&PolicyDocument=%7B%22a%22%3A+1%7D&Empty=&Flag")
                .unwrap();
        assert_eq!(p.get("Action"), Some("PutUserPolicy"));
        assert_eq!(p.get("PolicyDocument"), Some("{\"a\": 1}"));
        assert_eq!(p.get("Empty"), Some(""));
        assert_eq!(p.get("Flag"), Some(""));
        assert_eq!(p.get("Missing"), None);
        assert!(Params::parse(b"A=%zz").is_none());
        assert!(Params::parse(b"A=%4").is_none());
        assert!(Params::parse(b"A=%FF").is_none(), "not UTF-8");
        assert_eq!(
            Params::parse("N=%C3%A9".as_bytes()).unwrap().get("N"),
            Some("é")
        );
    }

    #[test]
    fn url_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            url_encode("{\"a\": \"b/c~\"}"),
            "%7B%22a%22%3A%20%22b%2Fc~%22%7D"
        );
        assert_eq!(url_encode("é"), "%C3%A9");
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(
            element("M", "a<b>&\"'"),
            "<M>a&lt;b&gt;&amp;&quot;&apos;</M>"
        );
    }
}
