//! Conditions are enforced on GetSecretValue whichever policy holds them: the caller's identity
//! policy, the secret's resource policy, or the key policy of the KMS key that decrypts the
//! value. Authorisation builds the request context only when a policy it evaluates reads it
//! (`coffer_iam::Policy::reads_context`); these requests are made by callers whose other
//! policies read nothing, so a policy left out of that question would let them through.

use std::collections::HashMap;
use std::sync::Arc;

use coffer_core::{Caller, ErrorCode, RegionService, SystemClock, kms, ops};
use coffer_kms::RootKey;
use coffer_store::{SqliteStore, Store};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
/// CreateSecret's ClientRequestToken (the SDKs make one; here each test creates one secret).
const TOKEN: &str = "5b9bd0b6-7d0a-4c2e-9f0e-6f1a2b3c4d5e";

struct Fixture {
    region: RegionService,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
    let region = RegionService::new(
        "us-east-1".into(),
        "aws",
        store,
        RootKey::from_hex(&"42".repeat(32)).unwrap(),
        Arc::new(SystemClock),
    );
    Fixture { region, _dir: dir }
}

fn admin() -> Caller {
    Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/admin"))
}

/// An IAM user of the account with `statements` as its one identity policy.
fn user(name: &str, statements: Value) -> Caller {
    let document = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    Caller {
        policies: Arc::from(vec![
            coffer_iam::Policy::parse_identity_policy(&document).unwrap(),
        ]),
        ..Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/{name}"))
    }
}

/// Allows everything, with no condition: reads no context.
fn everything() -> Value {
    json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}])
}

async fn secrets(region: &RegionService, caller: &Caller, op: &str, body: Value) -> Value {
    let out = ops::dispatch(region, caller, op, body.to_string().as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{op}: {e:?}"));
    serde_json::from_slice(&out).unwrap()
}

async fn get(region: &RegionService, caller: &Caller, name: &str) -> coffer_core::Result<String> {
    let body = json!({"SecretId": name}).to_string();
    let out = ops::dispatch(region, caller, "GetSecretValue", body.as_bytes()).await?;
    let out: Value = serde_json::from_slice(&out).unwrap();
    Ok(out["SecretString"].as_str().unwrap().to_string())
}

fn denied(result: coffer_core::Result<String>) -> String {
    let e = result.expect_err("denied");
    assert_eq!(e.code, ErrorCode::AccessDenied, "{e:?}");
    e.message
}

/// A customer key with `policy`, and a secret `name` encrypted under it.
async fn secret_under_key(region: &RegionService, name: &str, policy: Option<Value>) {
    let mut body = json!({});
    if let Some(policy) = policy {
        body["Policy"] = json!(policy.to_string());
    }
    let out = kms::dispatch(
        region,
        &admin(),
        "CreateKey",
        body.to_string().as_bytes(),
        &HashMap::new(),
    )
    .await
    .unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    let key_id = out["KeyMetadata"]["KeyId"].as_str().unwrap();
    secrets(
        region,
        &admin(),
        "CreateSecret",
        json!({
            "Name": name,
            "SecretString": "s3cret",
            "KmsKeyId": key_id,
            "ClientRequestToken": TOKEN
        }),
    )
    .await;
}

#[tokio::test]
async fn an_identity_policy_condition_is_enforced_on_get_secret_value() {
    let f = fixture().await;
    secrets(
        &f.region,
        &admin(),
        "CreateSecret",
        json!({"Name": "db", "SecretString": "s3cret", "ClientRequestToken": TOKEN}),
    )
    .await;
    let mut alice = user(
        "alice",
        json!([{
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
        }]),
    );
    alice.source_ip = Some("10.1.2.3".parse().unwrap());
    assert_eq!(get(&f.region, &alice, "db").await.unwrap(), "s3cret");
    alice.source_ip = Some("192.0.2.1".parse().unwrap());
    let message = denied(get(&f.region, &alice, "db").await);
    assert!(
        message.contains("no identity-based policy allows the secretsmanager:GetSecretValue"),
        "{message}"
    );
}

#[tokio::test]
async fn a_resource_policy_condition_is_enforced_on_get_secret_value() {
    let f = fixture().await;
    secrets(
        &f.region,
        &admin(),
        "CreateSecret",
        json!({"Name": "db", "SecretString": "s3cret", "ClientRequestToken": TOKEN}),
    )
    .await;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny",
            "Principal": "*",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
        }]
    });
    secrets(
        &f.region,
        &admin(),
        "PutResourcePolicy",
        json!({"SecretId": "db", "ResourcePolicy": policy.to_string()}),
    )
    .await;
    // Bob's identity policy reads no context: only the resource policy does.
    let mut bob = user("bob", everything());
    bob.source_ip = Some("10.1.2.3".parse().unwrap());
    assert_eq!(get(&f.region, &bob, "db").await.unwrap(), "s3cret");
    bob.source_ip = Some("192.0.2.1".parse().unwrap());
    let message = denied(get(&f.region, &bob, "db").await);
    assert!(
        message.ends_with("with an explicit deny in a resource-based policy"),
        "{message}"
    );
}

#[tokio::test]
async fn a_key_policy_condition_is_enforced_on_get_secret_value() {
    let f = fixture().await;
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let key_policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Account",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }
        ]
    });
    secret_under_key(&f.region, "db", Some(key_policy)).await;
    // Carol's identity policy reads no context and the secret has no resource policy: only
    // the key policy does.
    let mut carol = user("carol", everything());
    carol.secure_transport = true;
    assert_eq!(get(&f.region, &carol, "db").await.unwrap(), "s3cret");
    carol.secure_transport = false;
    let message = denied(get(&f.region, &carol, "db").await);
    assert_eq!(message, "Access to KMS is not allowed");
}

#[tokio::test]
async fn an_identity_condition_on_kms_decrypt_is_enforced_on_get_secret_value() {
    let f = fixture().await;
    // The default key policy of a customer key reads no context.
    secret_under_key(&f.region, "db", None).await;
    let mut dave = user(
        "dave",
        json!([
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalTag/team": "blue"}}
            }
        ]),
    );
    dave.principal_tags = Arc::from(vec![("team".to_string(), "blue".to_string())]);
    assert_eq!(get(&f.region, &dave, "db").await.unwrap(), "s3cret");
    dave.principal_tags = Arc::from(vec![("team".to_string(), "red".to_string())]);
    let message = denied(get(&f.region, &dave, "db").await);
    assert_eq!(message, "Access to KMS is not allowed");
}

#[tokio::test]
async fn a_key_policy_condition_is_enforced_on_kms_operations() {
    let f = fixture().await;
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let key_policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:DescribeKey",
                "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
            }
        ]
    });
    let body = json!({"Policy": key_policy.to_string()}).to_string();
    let out = kms::dispatch(
        &f.region,
        &admin(),
        "CreateKey",
        body.as_bytes(),
        &HashMap::new(),
    )
    .await
    .unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap();
    let describe = json!({"KeyId": out["KeyMetadata"]["KeyId"]}).to_string();
    let mut erin = user("erin", everything());
    erin.source_ip = Some("10.1.2.3".parse().unwrap());
    kms::dispatch(
        &f.region,
        &erin,
        "DescribeKey",
        describe.as_bytes(),
        &HashMap::new(),
    )
    .await
    .unwrap();
    erin.source_ip = Some("192.0.2.1".parse().unwrap());
    let e = kms::dispatch(
        &f.region,
        &erin,
        "DescribeKey",
        describe.as_bytes(),
        &HashMap::new(),
    )
    .await
    .expect_err("denied");
    assert_eq!(e.code, ErrorCode::AccessDenied, "{e:?}");
}
