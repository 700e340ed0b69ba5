//! The audit hook of `POST /`: every call — Secrets Manager, KMS (`TrentService.*`), the
//! IAM/STS Query API, and requests that fail before dispatch (bad signature, unknown access
//! key, unknown target) — becomes one record of the [`coffer_audit`] log.
//!
//! [`handle`](crate::handle) wraps the whole request: [`Facts::new`] reads what the request
//! says before it is served (source IP, user agent, target, the SigV4 scope), the handler
//! adds the body and the *verified* caller as it learns them, and [`finish`] builds the record
//! from the final response, whichever dispatch branch produced it. So a new service's branch
//! is covered without touching this file.
//!
//! Fail closed: the response leaves only after its record is in the file. If the record cannot
//! be written, the client gets a 500 `InternalServiceError` (Secrets Manager's code for a
//! server-side failure; `KMSInternalException` for KMS, `ServiceFailure` for the Query API)
//! instead of the real answer. The call itself may have taken effect (the record is written
//! after the operation, so that it holds the outcome); once the log is known to be unwritable
//! ([`coffer_audit::AuditLog::is_poisoned`]), [`refuse`] turns requests away before they run.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coffer_audit::{Record, UserIdentity};
use coffer_core::Caller;
use serde_json::Value;

use crate::Deployment;

/// What the audit record needs from a request, filled in as the handler learns it.
#[derive(Default)]
pub(crate) struct Facts {
    source_ip: String,
    user_agent: String,
    /// `X-Amz-Target`, as sent.
    target: Option<String>,
    form: bool,
    /// From the SigV4 credential scope, when the Authorization header parses.
    access_key_id: Option<String>,
    region: Option<String>,
    scope_service: Option<String>,
    /// The request body (set once read).
    pub body: Bytes,
    /// The caller, set only once the signature verified.
    caller: Option<(String, String, Option<String>)>,
    /// The parsed `Authorization` header, handed to the handler by [`Facts::take_auth`] so
    /// that the header is parsed once per request.
    auth: Option<Result<coffer_sigv4::Authorization, coffer_sigv4::SigV4Error>>,
}

impl Facts {
    pub(crate) fn new(request: &Request) -> Facts {
        let headers = request.headers();
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let parsed = coffer_sigv4::parse(headers);
        let auth = parsed.as_ref().ok();
        Facts {
            source_ip: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default(),
            user_agent: text(header::USER_AGENT).unwrap_or_default(),
            target: headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            form: text(header::CONTENT_TYPE)
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
            access_key_id: auth.as_ref().map(|a| a.access_key_id.clone()),
            region: auth.as_ref().map(|a| a.region.clone()),
            scope_service: auth.map(|a| a.service.clone()),
            body: Bytes::new(),
            caller: None,
            auth: Some(parsed),
        }
    }

    /// The request's parsed `Authorization` header (parsed again if already taken).
    pub(crate) fn take_auth(
        &mut self,
        headers: &axum::http::HeaderMap,
    ) -> Result<coffer_sigv4::Authorization, coffer_sigv4::SigV4Error> {
        self.auth
            .take()
            .unwrap_or_else(|| coffer_sigv4::parse(headers))
    }

    /// The signature verified: the record names this caller.
    pub(crate) fn authenticated(&mut self, caller: &Caller) {
        self.caller = Some((
            caller.principal_arn.clone(),
            caller.account_id.clone(),
            caller.user_name.clone(),
        ));
    }

    /// (eventSource, eventName) — from `X-Amz-Target`, else from a Query API form's `Action`
    /// and the SigV4 scope's service.
    fn event(&self, form: Option<&serde_json::Map<String, Value>>) -> (String, String) {
        if let Some(target) = &self.target {
            let (prefix, op) = target.split_once('.').unwrap_or(("", target.as_str()));
            let service = match prefix {
                "secretsmanager" => "secretsmanager",
                "TrentService" => "kms",
                _ => self.scope_service.as_deref().unwrap_or("unknown"),
            };
            return (format!("{service}.amazonaws.com"), op.to_string());
        }
        let service = self.scope_service.as_deref().unwrap_or("unknown");
        let action = form
            .and_then(|f| f.get("Action"))
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        (format!("{service}.amazonaws.com"), action.to_string())
    }
}

/// A request refused before it runs because the audit log is known to be unwritable.
pub(crate) fn refuse(deployment: &Deployment, request_id: &str, facts: &Facts) -> Option<Response> {
    let log = deployment.audit.as_ref()?;
    log.is_poisoned().then(|| failure(request_id, facts))
}

/// Records the call and returns the response to send: `response` itself once its record is
/// written, or the fail-closed error.
pub(crate) async fn finish(
    deployment: &Deployment,
    request_id: &str,
    facts: Facts,
    response: Response,
) -> Response {
    let Some(log) = deployment.audit.as_ref() else {
        return response;
    };
    let status = response.status();
    let form = if facts.form {
        Some(form_members(&facts.body))
    } else {
        None
    };
    let (source, name) = facts.event(form.as_ref());
    let mut record = Record::new(source, name, request_id.to_string());
    // The response body is needed for errors (their code and message) and for the response
    // elements of calls that change something; a read's body is left alone.
    let need_body = !status.is_success() || !record.read_only;
    let (response, body) = if need_body {
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => (
                Response::from_parts(parts, Body::from(bytes.clone())),
                bytes,
            ),
            Err(_) => return failure(request_id, &facts),
        }
    } else {
        (response, Bytes::new())
    };
    record.aws_region = facts.region.clone().unwrap_or_default();
    record.source_ip_address = facts.source_ip.clone();
    record.user_agent = facts.user_agent.clone();
    record.user_identity = match &facts.caller {
        Some((arn, account, user)) => UserIdentity::authenticated(
            arn,
            account,
            user.as_deref(),
            facts.access_key_id.as_deref().unwrap_or_default(),
        ),
        None => UserIdentity::unauthenticated(facts.access_key_id.as_deref()),
    };
    record.recipient_account_id = facts.caller.as_ref().map(|(_, a, _)| a.clone());
    record.request_parameters = match form {
        Some(mut members) => {
            members.remove("Action");
            members.remove("Version");
            Value::Object(members)
        }
        None => serde_json::from_slice(&facts.body).unwrap_or(Value::Null),
    };
    coffer_audit::redact(&mut record.request_parameters);
    if status.is_success() {
        if !record.read_only {
            // JSON answers only: a Query API answer is XML and is not parsed (left null).
            record.response_elements = serde_json::from_slice(&body).unwrap_or(Value::Null);
            coffer_audit::redact(&mut record.response_elements);
        }
    } else {
        let (code, message) = error_of(&body);
        record.error_code = Some(code.unwrap_or_else(|| status.as_u16().to_string()));
        record.error_message = message;
    }
    match log.append(&record).await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(request_id, error = %e, "Request refused: its audit record cannot be written");
            failure(request_id, &facts)
        }
    }
}

/// The code and message of an error answer: JSON `__type`/`Message` or Query API XML.
fn error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let code = v.get("__type").and_then(Value::as_str).map(|t| {
            // `__type` may be namespaced (`com.amazonaws...#Code`).
            t.rsplit('#').next().unwrap_or(t).to_string()
        });
        let message = v
            .get("Message")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string);
        return (code, message);
    }
    let text = String::from_utf8_lossy(body);
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_string())
    };
    (element("Code"), element("Message"))
}

/// A form body's members as a JSON object (`Policies.member.1=...` stays one flat member).
fn form_members(body: &[u8]) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        out.insert(url_decode(k), Value::String(url_decode(v)));
    }
    out
}

fn url_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                match std::str::from_utf8(&raw[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fail-closed answer, in the protocol of the request.
fn failure(request_id: &str, facts: &Facts) -> Response {
    const MESSAGE: &str = "The request could not be recorded in the audit log, so it was refused. Contact the administrator of this Coffer deployment.";
    if facts.form {
        let body = format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Receiver</Type><Code>ServiceFailure</Code><Message>{MESSAGE}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        );
        let mut response = (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            response.headers_mut().insert("x-amzn-RequestId", v);
        }
        return response;
    }
    let code = match facts.target.as_deref() {
        Some(t) if t.starts_with("TrentService.") => "KMSInternalException",
        _ => "InternalServiceError",
    };
    crate::error_response(request_id, StatusCode::INTERNAL_SERVER_ERROR, code, MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_forms_and_errors_are_read() {
        let f =
            form_members(b"Action=CreateUser&UserName=bob&Password=p%40ss+word&Version=2010-05-08");
        assert_eq!(f["Action"], "CreateUser");
        assert_eq!(f["Password"], "p@ss word");
        let (code, message) = error_of(
            b"<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>gone</Message></Error></ErrorResponse>",
        );
        assert_eq!(code.as_deref(), Some("NoSuchEntity"));
        assert_eq!(message.as_deref(), Some("gone"));
        let (code, message) = error_of(br#"{"__type":"ResourceNotFoundException","Message":"no"}"#);
        assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(message.as_deref(), Some("no"));
        assert_eq!(url_decode(b"a%2"), "a%2");
        assert_eq!(url_decode(b"%zz"), "%zz");
    }
}
