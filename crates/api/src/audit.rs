//! The audit hook of `POST /`: every call — Secrets Manager, KMS (`TrentService.*`), the
//! IAM/STS Query API, and requests that fail before dispatch (bad signature, unknown access
//! key, unknown target) — becomes one record of the [`coffer_audit`] log.
//!
//! [`handle`](crate::handle) wraps the whole request: [`Facts::new`] reads what the request
//! says before it is served (source IP, user agent, target, the SigV4 scope), the handler
//! adds the body and the *verified* caller as it learns them, and [`finish`] builds the record
//! from the final response, whichever dispatch branch produced it. So a new service's branch
//! is covered without touching this file, except to name its table of operations in
//! `Facts::event` (its `readOnly`; without it every call is recorded as a change).
//!
//! Fail closed: the response leaves only after its record is in the file. If the record cannot
//! be written, the client gets a 500 `InternalServiceError` (Secrets Manager's code for a
//! server-side failure; `KMSInternalException` for KMS, `ServiceFailure` for the Query API)
//! instead of the real answer. The call itself may have taken effect (the record is written
//! after the operation, so that it holds the outcome); once the log is known to be unwritable
//! ([`coffer_audit::AuditLog::is_poisoned`]), [`refuse`] turns requests away before they run.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use coffer_audit::{Record, UserIdentity};
use coffer_core::Caller;
use coffer_core::failover::Operation as Coffer;
use coffer_core::iam::Operation as Iam;
use coffer_core::kms::Operation as Kms;
use coffer_core::operation::read_only;
use coffer_core::ops::Operation as SecretsManager;
use coffer_core::sts::Operation as Sts;
use quick_xml::Reader;
use quick_xml::escape::unescape;
use quick_xml::events::Event;
use serde_json::Value;

use crate::Deployment;
use crate::query::{IAM_NAMESPACE, QueryError};

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

    /// (eventSource, eventName, readOnly) — from `X-Amz-Target`, else from a Query API form's
    /// `Action` and the SigV4 scope's service. `readOnly` comes from the service's table of
    /// operations (`coffer_core::operation`); a name no table has is recorded as a change.
    fn event(&self, form: Option<&serde_json::Map<String, Value>>) -> (String, String, bool) {
        if let Some(target) = &self.target {
            let (prefix, op) = target.split_once('.').unwrap_or(("", target.as_str()));
            let (service, read_only) = match prefix {
                "secretsmanager" => ("secretsmanager", read_only::<SecretsManager>(op)),
                "TrentService" => ("kms", read_only::<Kms>(op)),
                "Coffer" => (
                    self.scope_service.as_deref().unwrap_or("unknown"),
                    read_only::<Coffer>(op),
                ),
                _ => (self.scope_service.as_deref().unwrap_or("unknown"), false),
            };
            return (
                format!("{service}.amazonaws.com"),
                op.to_string(),
                read_only,
            );
        }
        let service = self.scope_service.as_deref().unwrap_or("unknown");
        let action = form
            .and_then(|f| f.get("Action"))
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        let read_only = match service {
            "iam" => read_only::<Iam>(action),
            "sts" => read_only::<Sts>(action),
            _ => false,
        };
        (
            format!("{service}.amazonaws.com"),
            action.to_string(),
            read_only,
        )
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
    mut facts: Facts,
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
    let (source, name, read_only) = facts.event(form.as_ref());
    let mut record = Record::new(source, name, read_only, request_id.to_string());
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
    // Moved, not copied: only `form` and `target` are read again (by `failure`).
    record.aws_region = facts.region.take().unwrap_or_default();
    record.source_ip_address = std::mem::take(&mut facts.source_ip);
    record.user_agent = std::mem::take(&mut facts.user_agent);
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
    query_error_of(&String::from_utf8_lossy(body))
}

/// `Code` and `Message` of a Query API `<ErrorResponse>`, unescaped.
fn query_error_of(xml: &str) -> (Option<String>, Option<String>) {
    let (mut code, mut message) = (None, None);
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                let slot = match start.name().as_ref() {
                    "Code" => &mut code,
                    "Message" => &mut message,
                    _ => continue,
                };
                *slot = reader
                    .read_text(start.name())
                    .ok()
                    .and_then(|text| unescape(&text).ok().map(Cow::into_owned));
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    (code, message)
}

/// A form body's members as a JSON object (`Policies.member.1=...` stays one flat member).
/// Lenient, unlike [`Params`](crate::query::Params): a malformed escape stays as sent and
/// bytes that are not UTF-8 become U+FFFD, so even a refused request is recorded.
fn form_members(body: &[u8]) -> serde_json::Map<String, Value> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// The fail-closed answer, in the protocol of the request.
fn failure(request_id: &str, facts: &Facts) -> Response {
    const MESSAGE: &str = "The request could not be recorded in the audit log, so it was refused. Contact the administrator of this Coffer deployment.";
    if facts.form {
        return QueryError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailure", MESSAGE)
            .into_response(IAM_NAMESPACE, request_id);
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
        let (_, message) = error_of(
            b"<ErrorResponse><Error><Code>ValidationError</Code><Message>Value &apos;a&lt;b&apos;</Message></Error></ErrorResponse>",
        );
        assert_eq!(message.as_deref(), Some("Value 'a<b'"));
        let (code, message) = error_of(br#"{"__type":"ResourceNotFoundException","Message":"no"}"#);
        assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(message.as_deref(), Some("no"));
        let f = form_members(b"A=a%2&B=%zz&C=%2B+");
        assert_eq!(
            (&f["A"], &f["B"], &f["C"]),
            (&"a%2".into(), &"%zz".into(), &"+ ".into())
        );
    }
}
