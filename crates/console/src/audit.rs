//! The console's audit records: every operation a console page runs, and every sign-in
//! attempt, is one record of the same [`coffer_audit`] log as the API's calls (see
//! `docs/audit.md`, "The web console").
//!
//! Operations are recorded in one place, [`Ctx::call`](crate::Ctx::call), which every page
//! goes through: the record has the API's shape (`eventSource` `secretsmanager.amazonaws.com`,
//! the operation's API name, the page's Region, the session's access key), its
//! `requestParameters` are the operation's input serialised as the API's request members and
//! redacted by [`coffer_audit::redact`], and it carries `"sessionCredentialFromConsole":
//! "true"` as CloudTrail marks calls made from a console session.
//!
//! Fail closed, as the API: a log known to be unwritable refuses the operation before it runs;
//! a record that cannot be written turns the operation's result into an error the page shows
//! ([`not_recorded`]). The record is written after the operation (to carry its outcome), so
//! an operation whose record failed may have taken effect.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::header;
use axum::http::request::Parts;
use coffer_audit::{Record, UserIdentity};
use coffer_core::operation::Operation;
use coffer_core::{Caller, Error, ErrorCode};
use serde::Serialize;
use serde_json::Value;

/// When an action's record could not be written, and so what the page can say about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRecorded {
    /// The log was known to be unwritable: the action was refused before it ran.
    BeforeRunning,
    /// A read ran, but its record failed: its result is not shown.
    Read,
    /// A change ran, but its record failed: it may have taken effect.
    Change,
}

/// The error an action returns when its record cannot be written (or the log is poisoned).
pub fn not_recorded(when: NotRecorded) -> Error {
    let what = match when {
        NotRecorded::BeforeRunning => {
            "The action was refused because the audit log cannot be written; nothing was done."
        }
        NotRecorded::Read => {
            "The action could not be recorded in the audit log, so its result is not shown."
        }
        NotRecorded::Change => {
            "The action could not be recorded in the audit log, so it was refused. It may have taken effect: reload the page once the log is writable to see the secret's state."
        }
    };
    Error::new(
        ErrorCode::InternalServiceError,
        format!("{what} Contact the administrator of this Coffer deployment."),
    )
}

/// Where a console request came from: the TCP peer and the browser's `User-Agent`.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub source_ip: String,
    pub user_agent: String,
}

impl Origin {
    pub fn of(parts: &Parts) -> Origin {
        Origin {
            source_ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default(),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// An operation's input as the API's request members: `null` members (fields the page left
/// unset, which an API client would not send) are dropped, then secrets are redacted.
pub fn request_parameters(input: &impl Serialize) -> Value {
    let mut value = serde_json::to_value(input).unwrap_or(Value::Null);
    drop_nulls(&mut value);
    coffer_audit::redact(&mut value);
    value
}

fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The record of one operation run from the console, under its service's event source
/// (`kms.amazonaws.com` for the KMS keys page; Coffer's own operations are Secrets Manager's).
pub fn operation_record<Op: Operation, O: Serialize>(
    operation: Op,
    region: &str,
    caller: &Caller,
    access_key_id: &str,
    origin: &Origin,
    request_parameters: Value,
    result: &coffer_core::Result<O>,
) -> Record {
    let mut record = Record::new(
        Op::EVENT_SOURCE.into(),
        operation.name().into(),
        operation.read_only(),
        uuid::Uuid::new_v4().to_string(),
    );
    record.aws_region = region.into();
    record.source_ip_address = origin.source_ip.clone();
    record.user_agent = origin.user_agent.clone();
    record.user_identity = UserIdentity::authenticated(
        &caller.principal_arn,
        &caller.account_id,
        caller.user_name.as_deref(),
        access_key_id,
    );
    record.recipient_account_id = Some(caller.account_id.clone());
    record.request_parameters = request_parameters;
    match result {
        Ok(out) => {
            // As the API path: response elements only for changes (a read's answer, such as a
            // revealed value, is never serialised here).
            if !record.read_only {
                record.response_elements = serde_json::to_value(out).unwrap_or(Value::Null);
                coffer_audit::redact(&mut record.response_elements);
            }
        }
        Err(e) => {
            record.error_code = Some(e.code.as_str().into());
            record.error_message = Some(e.message.clone());
        }
    }
    record.session_credential_from_console = Some("true");
    record
}

/// The record of a sign-in attempt, as CloudTrail's `ConsoleLogin` event
/// (`signin.amazonaws.com`, `eventType` `AwsConsoleSignIn`, `responseElements`
/// `{"ConsoleLogin": "Success" | "Failure"}`, `errorMessage` `Failed authentication` on a
/// failure). The secret access key typed in the form is never part of it.
///
/// `known` is the caller of the access key id typed, if the deployment has that key. For an
/// id the deployment does not know, the record says `HIDDEN_DUE_TO_SECURITY_REASONS` instead
/// of what was typed (as CloudTrail does for an unknown user name): a user who pastes the
/// secret access key into the id field must not find it in the log.
pub fn sign_in_record(
    region: &str,
    access_key_id: &str,
    known: Option<&Caller>,
    success: bool,
    origin: &Origin,
) -> Record {
    let mut record = Record::new(
        "signin.amazonaws.com".into(),
        "ConsoleLogin".into(),
        false,
        uuid::Uuid::new_v4().to_string(),
    );
    record.event_type = "AwsConsoleSignIn";
    record.aws_region = region.into();
    record.source_ip_address = origin.source_ip.clone();
    record.user_agent = origin.user_agent.clone();
    record.user_identity = match known {
        Some(caller) => UserIdentity::authenticated(
            &caller.principal_arn,
            &caller.account_id,
            caller.user_name.as_deref(),
            access_key_id,
        ),
        None => UserIdentity::unauthenticated(Some(coffer_audit::REDACTED)),
    };
    record.recipient_account_id = known.map(|c| c.account_id.clone());
    record.response_elements =
        serde_json::json!({"ConsoleLogin": if success { "Success" } else { "Failure" }});
    if !success {
        record.error_message = Some("Failed authentication".into());
    }
    record.session_credential_from_console = Some("true");
    record
}
