//! The AWS Query protocol, as the IAM and STS clients send it: a form-encoded `POST /` body
//! (`Action=CreateUser&Version=2010-05-08&UserName=bob`), answered with XML in the service's
//! namespace, errors as `<ErrorResponse>` with `Type`, `Code`, `Message` and `RequestId`.
//!
//! Only what the IAM subset needs: flat parameters (no `member.N` lists), text elements.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_core::query::Params;
use percent_encoding::{percent_decode, utf8_percent_encode};
use quick_xml::Writer;
use quick_xml::events::{BytesStart, BytesText, Event};

pub const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
pub const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The members of a form-encoded body (a repeated name keeps its last value); `None` when the
/// body is not valid form encoding (bad `%` escape, not UTF-8).
pub fn parse_form(body: &[u8]) -> Option<Params> {
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
    Some(Params::new(out))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte. Stricter
/// than the crate's decoder, which keeps a malformed escape as it is: `None` for one (`%zz`,
/// a `%` near the end) and for bytes that are not UTF-8.
fn decode(input: &[u8]) -> Option<String> {
    let well_formed = input.split(|b| *b == b'%').skip(1).all(|rest| {
        rest.get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    // `+` first, so that an escaped `%2B` stays a plus.
    let spaced: Vec<u8> = input
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(decoded).ok()
}

// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`): SigV4's set.
use coffer_sigv4::RESERVED;

/// RFC 3986 percent-encoding of everything but the unreserved characters, as IAM returns
/// policy documents (`%7B%22Version%22...`).
pub fn url_encode(input: &str) -> String {
    utf8_percent_encode(input, RESERVED).to_string()
}

/// Writing into memory cannot fail; quick-xml's `io::Result` is for other sinks.
const IN_MEMORY: &str = "writing XML into a Vec cannot fail";

/// A piece of a Query-protocol answer, written with quick-xml, which escapes the text.
/// No declaration and no indentation: the bytes are what IAM sends.
pub struct Xml(Writer<Vec<u8>>);

impl Default for Xml {
    fn default() -> Xml {
        Xml(Writer::new(Vec::new()))
    }
}

impl Xml {
    pub fn new() -> Xml {
        Xml::default()
    }

    /// `<name>text</name>`, the text escaped (also when empty: never `<name/>`).
    ///
    /// A carriage return is written as `&#13;` (quick-xml escapes it): an XML parser turns a
    /// raw one into a line feed, so a tag value stored with `\r` would come back changed.
    /// What IAM itself sends is not recorded; giving back what was stored is the choice here.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Xml {
        self.0
            .create_element(name)
            .write_text_content(BytesText::new(text))
            .expect(IN_MEMORY);
        self
    }

    /// `<name>...</name>` around what `content` writes.
    pub fn element(&mut self, name: &str, content: impl FnOnce(&mut Xml)) -> &mut Xml {
        self.wrap(BytesStart::new(name), content)
    }

    /// Another piece, as it was written.
    pub fn append(&mut self, piece: Xml) -> &mut Xml {
        self.0.get_mut().extend_from_slice(&piece.0.into_inner());
        self
    }

    fn wrap(&mut self, start: BytesStart, content: impl FnOnce(&mut Xml)) -> &mut Xml {
        let end = start.to_end().into_owned();
        self.0.write_event(Event::Start(start)).expect(IN_MEMORY);
        content(self);
        self.0.write_event(Event::End(end)).expect(IN_MEMORY);
        self
    }

    /// The document element of an answer, `<name xmlns="namespace">...</name>`.
    fn document(name: &str, namespace: &str, content: impl FnOnce(&mut Xml)) -> Vec<u8> {
        let mut xml = Xml::new();
        xml.wrap(
            BytesStart::new(name).with_attributes([("xmlns", namespace)]),
            content,
        );
        xml.0.into_inner()
    }
}

fn xml_response(status: StatusCode, request_id: &str, body: Vec<u8>) -> Response {
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
pub fn success(namespace: &str, action: &str, result: Option<Xml>, request_id: &str) -> Response {
    let body = Xml::document(&format!("{action}Response"), namespace, |xml| {
        if let Some(result) = result {
            xml.element(&format!("{action}Result"), |xml| {
                xml.append(result);
            });
        }
        xml.element("ResponseMetadata", |xml| {
            xml.text("RequestId", request_id);
        });
    });
    xml_response(StatusCode::OK, request_id, body)
}

/// An error of the Query protocol: the code AWS uses, its HTTP status and message, and the
/// cause of a server failure (logged by `iam::handle`, never sent). The operations' errors
/// (`coffer_core::query::QueryError`) become one here, once.
#[derive(Debug, Clone)]
pub struct QueryError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl QueryError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    pub fn invalid_client_token() -> QueryError {
        QueryError::new(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    }

    /// The `<ErrorResponse>` document: `Type` is `Receiver` for server faults, else `Sender`.
    pub fn into_response(self, namespace: &str, request_id: &str) -> Response {
        let kind = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let body = Xml::document("ErrorResponse", namespace, |xml| {
            xml.element("Error", |xml| {
                xml.text("Type", kind)
                    .text("Code", self.code)
                    .text("Message", &self.message);
            })
            .text("RequestId", request_id);
        });
        xml_response(self.status, request_id, body)
    }
}

impl From<coffer_core::query::QueryError> for QueryError {
    fn from(e: coffer_core::query::QueryError) -> QueryError {
        let (status, code, message, cause) = e.into_parts();
        QueryError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message,
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode_as_botocore_encodes_them() {
        let p = parse_form(b"Action=PutUserPolicy&PolicyDocument=%7B%22a%22%3A+1%7D&Empty=&Flag")
            .unwrap();
        assert_eq!(p.get("Action"), Some("PutUserPolicy"));
        assert_eq!(p.get("PolicyDocument"), Some("{\"a\": 1}"));
        assert_eq!(p.get("Empty"), Some(""));
        assert_eq!(p.get("Flag"), Some(""));
        assert_eq!(p.get("Missing"), None);
        assert!(parse_form(b"A=%zz").is_none());
        assert!(parse_form(b"A=%4").is_none());
        assert!(parse_form(b"A=%FF").is_none(), "not UTF-8");
        assert_eq!(
            parse_form("N=%C3%A9".as_bytes()).unwrap().get("N"),
            Some("é")
        );
    }

    #[test]
    fn text_is_escaped_and_a_carriage_return_survives_parsing() {
        let mut xml = Xml::new();
        xml.text("Value", "a<b & 'c'\r\nd");
        let bytes = xml.0.into_inner();
        let out = String::from_utf8(bytes).unwrap();
        assert_eq!(out, "<Value>a&lt;b &amp; &apos;c&apos;&#13;\nd</Value>");
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
    fn plus_and_escaped_plus_decode_apart() {
        let p = parse_form(b"A=a+b%2Bc&B=%2b").unwrap();
        assert_eq!(p.get("A"), Some("a b+c"));
        assert_eq!(p.get("B"), Some("+"));
        assert!(parse_form(b"A=%").is_none());
        assert!(parse_form(b"A=%%41").is_none());
    }

    fn text(xml: Xml) -> String {
        String::from_utf8(xml.0.into_inner()).unwrap()
    }

    #[test]
    fn xml_text_is_escaped() {
        let mut xml = Xml::new();
        xml.text("M", "a<b>&\"'").text("Empty", "");
        assert_eq!(
            text(xml),
            "<M>a&lt;b&gt;&amp;&quot;&apos;</M><Empty></Empty>"
        );
    }

    async fn body_of(response: Response) -> String {
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/xml");
        assert_eq!(response.headers()["x-amzn-RequestId"], "req-1");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn answers_are_written_as_iam_writes_them() {
        let mut result = Xml::new();
        result.element("User", |xml| {
            xml.text("UserName", "a&b");
        });
        assert_eq!(
            body_of(success(IAM_NAMESPACE, "GetUser", Some(result), "req-1")).await,
            "<GetUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><GetUserResult><User><UserName>a&amp;b</UserName></User></GetUserResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></GetUserResponse>"
        );
        assert_eq!(
            body_of(success(STS_NAMESPACE, "DeleteUser", None, "req-1")).await,
            "<DeleteUserResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></DeleteUserResponse>"
        );
        let error = QueryError::from(coffer_core::query::QueryError::validation(
            "Value 'x' at 'userName'",
        ));
        assert_eq!(
            body_of(error.into_response(IAM_NAMESPACE, "req-1")).await,
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Value &apos;x&apos; at &apos;userName&apos;</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"
        );
        let failure = QueryError::from(coffer_core::query::QueryError::service_failure())
            .into_response(STS_NAMESPACE, "req-1");
        assert!(
            body_of(failure)
                .await
                .starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Receiver</Type><Code>ServiceFailure</Code>")
        );
    }
}
