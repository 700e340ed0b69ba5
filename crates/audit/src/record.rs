//! One audit record: a CloudTrail event record (`eventVersion` 1.08 field names), and the
//! redaction that keeps secret values out of it.

use serde::Serialize;
use serde_json::Value;

/// What a redacted member's value becomes (CloudTrail's own placeholder).
pub const REDACTED: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// The CloudTrail record version whose field names the records use.
pub const EVENT_VERSION: &str = "1.08";

/// Who made the call, as CloudTrail's `userIdentity` block. Fields that are unknown (an
/// unsigned request has no access key; a bad signature proves no principal) are left out.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `Root`, `IAMUser`, `AssumedRole`, or `Unknown` when the request did not authenticate.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

impl UserIdentity {
    /// An authenticated principal. `principalId` follows CloudTrail where Coffer has the same
    /// fact (the account id for the root user); for IAM users and roles, which have no
    /// separate unique id in Coffer, it is the principal's name (least surprising stand-in).
    pub fn authenticated(
        principal_arn: &str,
        account_id: &str,
        user_name: Option<&str>,
        access_key_id: &str,
    ) -> UserIdentity {
        let (kind, principal_id) = if principal_arn.ends_with(":root") {
            ("Root", account_id.to_string())
        } else if principal_arn.contains(":assumed-role/") {
            (
                "AssumedRole",
                principal_arn
                    .split_once(":assumed-role/")
                    .map(|(_, rest)| rest.to_string())
                    .unwrap_or_default(),
            )
        } else {
            (
                "IAMUser",
                user_name
                    .map(str::to_string)
                    .unwrap_or_else(|| principal_arn.rsplit('/').next().unwrap_or("").into()),
            )
        };
        UserIdentity {
            kind: kind.into(),
            principal_id: Some(principal_id),
            arn: Some(principal_arn.into()),
            account_id: Some(account_id.into()),
            access_key_id: Some(access_key_id.into()),
            user_name: user_name.map(str::to_string),
        }
    }

    /// A request whose signature did not prove a principal: only the access key id it named.
    pub fn unauthenticated(access_key_id: Option<&str>) -> UserIdentity {
        UserIdentity {
            kind: "Unknown".into(),
            access_key_id: access_key_id.map(str::to_string),
            ..UserIdentity::default()
        }
    }
}

/// One API call. Serialised as one JSON object (without the chain fields, which the log
/// appends); `errorCode`/`errorMessage` only on failures, as in CloudTrail.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub event_version: &'static str,
    pub user_identity: UserIdentity,
    /// `2026-11-28T08:49:41Z` (CloudTrail's format: UTC, whole seconds).
    pub event_time: String,
    /// `secretsmanager.amazonaws.com`, `kms.amazonaws.com`, `iam.amazonaws.com`, ...
    pub event_source: String,
    /// The operation (`GetSecretValue`), or `Unknown` when the request named none.
    pub event_name: String,
    pub aws_region: String,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    /// The request's members after [`redact`]; `null` when the body was not JSON/form data.
    pub request_parameters: Value,
    /// The response's members after [`redact`] for calls that change something; `null` for
    /// read-only calls and failures (CloudTrail logs response elements only for changes).
    pub response_elements: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    pub event_type: &'static str,
    pub management_event: bool,
    pub event_category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_account_id: Option<String>,
    /// `"true"` on records of actions taken in the web console (CloudTrail's field for calls
    /// made from an AWS Management Console session, a string as there); absent otherwise, so
    /// API records are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_credential_from_console: Option<&'static str>,
}

impl Record {
    /// A record with the fixed fields set; `event_time` is now. `read_only` is CloudTrail's
    /// `readOnly`, which the caller knows from the operation (core's tables of operations).
    pub fn new(
        event_source: String,
        event_name: String,
        read_only: bool,
        request_id: String,
    ) -> Record {
        Record {
            event_version: EVENT_VERSION,
            user_identity: UserIdentity::unauthenticated(None),
            event_time: event_time_now(),
            event_source,
            event_name,
            aws_region: String::new(),
            source_ip_address: String::new(),
            user_agent: String::new(),
            request_parameters: Value::Null,
            response_elements: Value::Null,
            error_code: None,
            error_message: None,
            request_id,
            event_id: random_uuid(),
            read_only,
            event_type: "AwsApiCall",
            management_event: true,
            event_category: "Management",
            recipient_account_id: None,
            session_credential_from_console: None,
        }
    }

    /// The record's canonical bytes: compact JSON, members in declaration order. This is
    /// what the chain hashes.
    ///
    /// Written member by member, byte for byte what the derived `Serialize` writes with
    /// `serde_json::to_vec` (a test holds the two equal): this runs for every request, and the
    /// derived code spent about 9k instructions per record on its generic machinery. Sized
    /// for a typical record, so the buffer is not grown on the way.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"eventVersion\":");
        json_str(&mut out, self.event_version);
        out.extend_from_slice(b",\"userIdentity\":");
        self.user_identity.write_json(&mut out);
        member(&mut out, "eventTime", &self.event_time);
        member(&mut out, "eventSource", &self.event_source);
        member(&mut out, "eventName", &self.event_name);
        member(&mut out, "awsRegion", &self.aws_region);
        member(&mut out, "sourceIPAddress", &self.source_ip_address);
        member(&mut out, "userAgent", &self.user_agent);
        key(&mut out, "requestParameters");
        json_value(&mut out, &self.request_parameters);
        key(&mut out, "responseElements");
        json_value(&mut out, &self.response_elements);
        if let Some(code) = &self.error_code {
            member(&mut out, "errorCode", code);
        }
        if let Some(message) = &self.error_message {
            member(&mut out, "errorMessage", message);
        }
        member(&mut out, "requestID", &self.request_id);
        member(&mut out, "eventID", &self.event_id);
        key(&mut out, "readOnly");
        json_bool(&mut out, self.read_only);
        member(&mut out, "eventType", self.event_type);
        key(&mut out, "managementEvent");
        json_bool(&mut out, self.management_event);
        member(&mut out, "eventCategory", self.event_category);
        if let Some(account) = &self.recipient_account_id {
            member(&mut out, "recipientAccountId", account);
        }
        if let Some(flag) = self.session_credential_from_console {
            member(&mut out, "sessionCredentialFromConsole", flag);
        }
        out.push(b'}');
        out
    }
}

impl UserIdentity {
    /// [`Record::to_canonical_json`]'s `userIdentity` object.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":");
        json_str(out, &self.kind);
        let optional = [
            ("principalId", &self.principal_id),
            ("arn", &self.arn),
            ("accountId", &self.account_id),
            ("accessKeyId", &self.access_key_id),
            ("userName", &self.user_name),
        ];
        for (name, value) in optional
            .iter()
            .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        {
            member(out, name, value);
        }
        out.push(b'}');
    }
}

/// `,"name":` (every member but the first of an object).
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn member(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    json_str(out, value);
}

/// A JSON string, escaped by serde_json (so exactly as the derived serialiser escapes it).
fn json_str(out: &mut Vec<u8>, value: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn json_value(out: &mut Vec<u8>, value: &Value) {
    // A Value's keys are strings: writing it into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn json_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// A random (v4) UUID from the thread-local CSPRNG: no system call per record.
fn random_uuid() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Now in CloudTrail's format (`2026-11-28T08:49:41Z`), formatted once per second per
/// thread: records of the same second share the text.
fn event_time_now() -> String {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    let secs = now.timestamp();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        last.1.clone()
    })
}

/// Whether a member name carries a secret value, by a **deny-list of name patterns** applied
/// to every member at every depth (case-insensitive substring match).
///
/// Why a deny-list and not an allow-list: the log covers three APIs (Secrets Manager, KMS,
/// IAM/STS), two of them growing while this is written; a per-operation allow-list would have
/// to be kept in step with every new member of every operation, and a forgotten entry loses
/// audit detail silently. The patterns below are the *kinds* of secret the AWS APIs carry
/// (`SecretString`, `SecretBinary`, `RandomPassword`, KMS `Plaintext`, IAM `SecretAccessKey`,
/// `Password`/`NewPassword`/`OldPassword`, STS `SessionToken`, `PrivateKey`, imported
/// `KeyMaterial`), matched as substrings so that variants (`PlaintextBlob`, `ServicePassword`,
/// `EncryptedKeyMaterial`) are caught too: the match errs towards hiding too much. A new
/// member carrying a secret under a name matching none of them would leak; the unit tests list
/// every secret-carrying member of the three APIs to keep that visible.
pub fn is_sensitive(member: &str) -> bool {
    const PATTERNS: &[&str] = &[
        "secretstring",
        "secretbinary",
        "password",
        "plaintext",
        "secretaccesskey",
        "sessiontoken",
        "privatekey",
        "keymaterial",
    ];
    let lower = member.to_ascii_lowercase();
    PATTERNS.iter().any(|p| lower.contains(p))
}

/// Replaces the value of every sensitive member (see [`is_sensitive`]), at any depth, with
/// [`REDACTED`]. `null` stays `null` (nothing to hide, and it keeps "was it sent" visible).
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                if is_sensitive(key) {
                    if !member.is_null() {
                        *member = Value::String(REDACTED.into());
                    }
                } else {
                    redact(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hand-written canonical bytes are the derived serialiser's, byte for byte: with
    /// every optional member and without, and with text that needs escaping.
    #[test]
    fn canonical_bytes_are_the_derived_serialisers() {
        let mut full = Record::new(
            "secretsmanager.amazonaws.com".into(),
            "PutSecretValue".into(),
            false,
            "req-\"1\"".into(),
        );
        full.user_identity = UserIdentity::authenticated(
            "arn:aws:iam::111122223333:user/al\\ice",
            "111122223333",
            Some("al\\ice"),
            "AKIAEXAMPLE",
        );
        full.aws_region = "us-east-1".into();
        full.source_ip_address = "127.0.0.1".into();
        full.user_agent = "aws-cli/2 \u{1}\u{7f} é \u{1F600} \n\t\"".into();
        full.request_parameters =
            json!({"SecretId": "a\"b", "List": [1, 2.5, null, true, {"x": "\u{8}"}]});
        full.response_elements = json!({"ARN": "arn", "VersionId": "v"});
        full.error_code = Some("ResourceNotFoundException".into());
        full.error_message = Some("Secrets Manager can't find \"x\".".into());
        full.recipient_account_id = Some("111122223333".into());
        full.session_credential_from_console = Some("true");
        let bare = Record::new(
            "kms.amazonaws.com".into(),
            "Decrypt".into(),
            true,
            "r".into(),
        );
        for record in [&full, &bare] {
            assert_eq!(
                String::from_utf8(record.to_canonical_json()).unwrap(),
                serde_json::to_string(record).unwrap()
            );
        }
    }

    #[test]
    fn every_secret_member_of_the_three_apis_is_hidden() {
        let mut v = json!({
            "SecretId": "db", "SecretString": "s3cr3t", "SecretBinary": "AAEC",
            "RandomPassword": "pw", "Plaintext": "cGxhaW4=", "SecretAccessKey": "abc",
            "Password": "p", "NewPassword": "n", "OldPassword": "o", "SessionToken": "t",
            "KeyId": "alias/x",
            "SecretValues": [{"ARN": "a", "SecretString": "in-a-list", "SecretBinary": null}],
            "Credentials": {"AccessKeyId": "AKIA", "SecretAccessKey": "nested", "SessionToken": "x"},
            "AccessKey": {"UserName": "u", "SecretAccessKey": "k"},
            "EncryptedKeyMaterial": "m", "PrivateKeyPlaintext": "pk",
            "Tags": [{"Key": "Password", "Value": "tagvalue"}]
        });
        redact(&mut v);
        let text = v.to_string();
        for secret in [
            "s3cr3t",
            "AAEC",
            "\"pw\"",
            "cGxhaW4=",
            "\"abc\"",
            "\"p\"",
            "\"n\"",
            "\"o\"",
            "\"t\"",
            "in-a-list",
            "nested",
            "\"k\"",
            "\"m\"",
            "\"pk\"",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(v["SecretId"], "db");
        assert_eq!(v["KeyId"], "alias/x");
        assert_eq!(v["SecretValues"][0]["ARN"], "a");
        assert_eq!(v["SecretValues"][0]["SecretString"], REDACTED);
        assert!(v["SecretValues"][0]["SecretBinary"].is_null());
        assert_eq!(v["Credentials"]["AccessKeyId"], "AKIA");
        assert_eq!(v["AccessKey"]["UserName"], "u");
        // A tag is a Key/Value pair: its *key* naming a password hides nothing (tags are not
        // secret in AWS either), and the member names Key/Value are not sensitive.
        assert_eq!(v["Tags"][0]["Value"], "tagvalue");
    }

    #[test]
    fn names_that_only_look_alike_are_kept() {
        for name in [
            "SecretId",
            "SecretList",
            "Name",
            "KeyId",
            "ClientRequestToken",
            "ExcludeCharacters",
            "VersionId",
            "AccessKeyId",
            "CiphertextBlob",
        ] {
            assert!(!is_sensitive(name), "{name}");
        }
    }

    #[test]
    fn record_uses_cloudtrail_names() {
        let mut r = Record::new(
            "secretsmanager.amazonaws.com".into(),
            "GetSecretValue".into(),
            true,
            "req-1".into(),
        );
        r.user_identity = UserIdentity::authenticated(
            "arn:aws:iam::123456789012:user/alice",
            "123456789012",
            Some("alice"),
            "AKIAEXAMPLE",
        );
        r.error_code = Some("ResourceNotFoundException".into());
        let v: Value = serde_json::from_slice(&r.to_canonical_json()).unwrap();
        for field in [
            "eventVersion",
            "userIdentity",
            "eventTime",
            "eventSource",
            "eventName",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "requestParameters",
            "responseElements",
            "errorCode",
            "requestID",
            "eventID",
            "readOnly",
            "eventType",
        ] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
        assert!(v.get("errorMessage").is_none());
        assert_eq!(v["userIdentity"]["type"], "IAMUser");
        assert_eq!(v["userIdentity"]["userName"], "alice");
        assert_eq!(v["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
        assert_eq!(v["eventType"], "AwsApiCall");
        assert_eq!(v["readOnly"], true);
        assert_eq!(v["eventID"].as_str().unwrap().len(), 36);
        let root = UserIdentity::authenticated(
            "arn:aws:iam::123456789012:root",
            "123456789012",
            None,
            "AK",
        );
        assert_eq!(root.kind, "Root");
        assert_eq!(root.principal_id.as_deref(), Some("123456789012"));
    }
}
