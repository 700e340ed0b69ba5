//! Context keys per operation and the decisions they lead to, with Callers built in place.

use std::sync::Arc;

use coffer_iam::Policy;
use coffer_store::{Secret, SecretRecord, Tag};

use super::*;

const A: &str = "111122223333";
const B: &str = "444455556666";
const REGION: &str = "us-east-1";
/// 2026-11-28T08:00:00Z.
const NOW: i64 = 1_795_852_800_000;
const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf";

fn user(account: &str, name: &str, policies: &[&str]) -> Caller {
    let policies: Vec<Policy> = policies
        .iter()
        .map(|p| Policy::parse_identity_policy(p).unwrap())
        .collect();
    Caller {
        account_id: account.into(),
        principal_arn: format!("arn:aws:iam::{account}:user/{name}"),
        user_name: Some(name.into()),
        policies: Arc::from(policies),
        source_ip: None,
        secure_transport: false,
        principal_tags: Arc::from(Vec::new()),
    }
}

fn secret(tags: &[(&str, &str)], policy: Option<&str>) -> Secret {
    Secret {
        record: SecretRecord {
            arn: ARN.into(),
            account_id: A.into(),
            name: "prod/db".into(),
            description: None,
            kms_key_id: None,
            tags: (!tags.is_empty()).then(|| {
                tags.iter()
                    .map(|(k, v)| Tag {
                        key: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect()
            }),
            resource_policy: policy.map(str::to_string),
            created_ms: 0,
            last_changed_ms: 0,
            last_accessed_day: None,
            deleted_ms: None,
            purge_at_ms: None,
            rotation: None,
            replication: None,
            row_version: 1,
        },
        versions: Vec::new(),
    }
}

fn allow(action: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
    )
}

fn check(caller: &Caller, access: &Access, target: Target) -> Result<()> {
    authorize_at(REGION, NOW, caller, access, target)
}

fn denied(result: Result<()>) -> String {
    let e = result.expect_err("denied");
    assert_eq!(e.code, ErrorCode::AccessDenied);
    e.message
}

#[test]
fn global_and_secret_keys() {
    let mut caller = user(A, "alice", &[]);
    caller.source_ip = Some("::ffff:203.0.113.9".parse().unwrap());
    caller.secure_transport = true;
    let s = secret(&[("env", "prod")], None);
    let access = Access::new("secretsmanager:GetSecretValue")
        .with("secretsmanager:VersionStage", Some("AWSPREVIOUS"))
        .with("secretsmanager:VersionId", None::<String>);
    let ctx = context_for(REGION, NOW, &caller, &access, &Target::Secret(&s));
    let one = |k: &str| ctx.get(k).map(|v| v.join(","));
    assert_eq!(
        one("aws:PrincipalArn").as_deref(),
        Some("arn:aws:iam::111122223333:user/alice")
    );
    assert_eq!(one("aws:PrincipalAccount").as_deref(), Some(A));
    assert_eq!(one("aws:PrincipalType").as_deref(), Some("User"));
    assert_eq!(one("aws:username").as_deref(), Some("alice"));
    assert_eq!(one("aws:SourceIp").as_deref(), Some("203.0.113.9"));
    assert_eq!(one("aws:SecureTransport").as_deref(), Some("true"));
    assert_eq!(
        one("aws:CurrentTime").as_deref(),
        Some("2026-11-28T08:00:00Z")
    );
    assert_eq!(one("aws:EpochTime").as_deref(), Some("1795852800"));
    assert_eq!(one("aws:RequestedRegion").as_deref(), Some(REGION));
    assert_eq!(one("aws:ResourceTag/env").as_deref(), Some("prod"));
    assert_eq!(
        one("secretsmanager:ResourceTag/env").as_deref(),
        Some("prod")
    );
    assert_eq!(one("secretsmanager:SecretId").as_deref(), Some(ARN));
    assert_eq!(
        one("secretsmanager:VersionStage").as_deref(),
        Some("AWSPREVIOUS")
    );
    assert_eq!(
        one("secretsmanager:VersionId"),
        None,
        "absent from the request, absent here"
    );
    assert_eq!(one("secretsmanager:Name"), None, "only CreateSecret has it");
}

#[test]
fn request_tags_and_multi_valued_keys() {
    let tags = [("env", "prod"), ("team", "db")];
    let access = Access::new("secretsmanager:TagResource")
        .with_request_tags(Some(tags.iter().copied()))
        .with_all(
            "secretsmanager:AddReplicaRegions",
            Some(vec!["eu-west-1".into(), "us-east-2".into()]),
        );
    let caller = user(A, "alice", &[]);
    let ctx = context_for(REGION, NOW, &caller, &access, &Target::Everything);
    assert_eq!(ctx.get("aws:RequestTag/env").unwrap(), ["prod"]);
    assert_eq!(ctx.get("aws:TagKeys").unwrap(), ["env", "team"]);
    assert_eq!(
        ctx.get("secretsmanager:AddReplicaRegions").unwrap(),
        ["eu-west-1", "us-east-2"]
    );
    assert_eq!(ctx.get("secretsmanager:SecretId"), None);
    let root = Caller::administrator(A, "arn:aws:iam::111122223333:root");
    let ctx = context_for(REGION, NOW, &root, &access, &Target::Everything);
    assert_eq!(ctx.get("aws:PrincipalType").unwrap(), ["Account"]);
    assert_eq!(ctx.get("aws:username"), None);
    assert_eq!(
        ctx.get("aws:SourceIp"),
        None,
        "internal callers have no address"
    );
    assert_eq!(ctx.get("aws:SecureTransport").unwrap(), ["false"]);
}

#[test]
fn the_administrator_may_do_everything_in_its_account() {
    let admin = Caller::administrator(A, "arn:aws:iam::111122223333:root");
    let s = secret(&[], None);
    for action in [
        "secretsmanager:GetSecretValue",
        "secretsmanager:DeleteSecret",
    ] {
        check(&admin, &Access::new(action), Target::Secret(&s)).unwrap();
    }
    check(
        &admin,
        &Access::new("secretsmanager:ListSecrets"),
        Target::Everything,
    )
    .unwrap();
}

#[test]
fn a_user_without_policies_is_denied_with_aws_message() {
    let alice = user(A, "alice", &[]);
    let s = secret(&[], None);
    let message = denied(check(
        &alice,
        &Access::new("secretsmanager:GetSecretValue"),
        Target::Secret(&s),
    ));
    assert_eq!(
        message,
        format!(
            "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: {ARN} because no identity-based policy allows the secretsmanager:GetSecretValue action"
        )
    );
    let message = denied(check(
        &alice,
        &Access::new("secretsmanager:ListSecrets"),
        Target::Everything,
    ));
    assert!(message.contains("on resource: * because"), "{message}");
}

#[test]
fn decisions() {
    let s_prod = secret(&[("env", "prod")], None);
    let s_dev = secret(&[("env", "dev")], None);
    let s_untagged = secret(&[], None);
    let get = Access::new("secretsmanager:GetSecretValue");
    let tag_condition = |key: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*","Condition":{{"StringEquals":{{"{key}":"dev"}}}}}}]}}"#
        )
    };
    let not_delete = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"secretsmanager:DeleteSecret","Resource":"*"}]}"#;
    let deny_prod = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"secretsmanager:ResourceTag/env":"prod"}}}]}"#;
    let stage = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*","Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}]}"#;
    let ip = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}"#;
    let by_arn = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:prod/*"}]}"#;
    let aws_tag = tag_condition("aws:ResourceTag/env");
    let sm_tag = tag_condition("secretsmanager:ResourceTag/env");

    let aws_tag_user = user(A, "t1", &[&aws_tag]);
    assert!(check(&aws_tag_user, &get, Target::Secret(&s_dev)).is_ok());
    assert!(check(&aws_tag_user, &get, Target::Secret(&s_prod)).is_err());
    assert!(check(&aws_tag_user, &get, Target::Secret(&s_untagged)).is_err());
    let sm_tag_user = user(A, "t2", &[&sm_tag]);
    assert!(check(&sm_tag_user, &get, Target::Secret(&s_dev)).is_ok());
    assert!(check(&sm_tag_user, &get, Target::Secret(&s_prod)).is_err());

    let not_delete_user = user(A, "nd", &[not_delete]);
    assert!(check(&not_delete_user, &get, Target::Secret(&s_prod)).is_ok());
    assert!(
        check(
            &not_delete_user,
            &Access::new("secretsmanager:DeleteSecret"),
            Target::Secret(&s_prod)
        )
        .is_err()
    );

    let deny_user = user(A, "dp", &[deny_prod]);
    assert!(check(&deny_user, &get, Target::Secret(&s_dev)).is_ok());
    let message = denied(check(&deny_user, &get, Target::Secret(&s_prod)));
    assert!(
        message.ends_with("with an explicit deny in an identity-based policy"),
        "{message}"
    );

    let stage_user = user(A, "st", &[stage]);
    let current = get
        .clone()
        .with("secretsmanager:VersionStage", Some("AWSCURRENT"));
    let previous = get
        .clone()
        .with("secretsmanager:VersionStage", Some("AWSPREVIOUS"));
    assert!(check(&stage_user, &current, Target::Secret(&s_prod)).is_ok());
    assert!(check(&stage_user, &previous, Target::Secret(&s_prod)).is_err());
    assert!(
        check(&stage_user, &get, Target::Secret(&s_prod)).is_err(),
        "no stage in the request"
    );

    let mut ip_user = user(A, "ip", &[ip]);
    assert!(
        check(&ip_user, &get, Target::Secret(&s_prod)).is_err(),
        "no address: no match"
    );
    ip_user.source_ip = Some("127.0.0.1".parse().unwrap());
    assert!(check(&ip_user, &get, Target::Secret(&s_prod)).is_ok());
    ip_user.source_ip = Some("198.51.100.1".parse().unwrap());
    assert!(check(&ip_user, &get, Target::Secret(&s_prod)).is_err());

    let arn_user = user(A, "arn", &[by_arn]);
    assert!(check(&arn_user, &get, Target::Secret(&s_prod)).is_ok());
    assert!(
        check(
            &arn_user,
            &Access::new("secretsmanager:ListSecrets"),
            Target::Everything
        )
        .is_err()
    );
}

#[test]
fn resource_policies_grant_and_deny() {
    let grant_bob = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let deny_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let grant_b = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let get = Access::new("secretsmanager:GetSecretValue");
    let bob = user(A, "bob", &[]);
    let carol = user(A, "carol", &[]);
    let granted = secret(&[], Some(grant_bob));
    assert!(check(&bob, &get, Target::Secret(&granted)).is_ok());
    assert!(check(&carol, &get, Target::Secret(&granted)).is_err());
    assert!(
        check(
            &bob,
            &Access::new("secretsmanager:PutSecretValue"),
            Target::Secret(&granted)
        )
        .is_err()
    );

    let admin = Caller::administrator(A, "arn:aws:iam::111122223333:root");
    let denying = secret(&[], Some(deny_all));
    let message = denied(check(&admin, &get, Target::Secret(&denying)));
    assert!(
        message.ends_with("with an explicit deny in a resource-based policy"),
        "{message}"
    );

    // Cross-account: B's administrator needs A's resource policy too.
    let b_admin = Caller::administrator(B, "arn:aws:iam::444455556666:root");
    let message = denied(check(&b_admin, &get, Target::Secret(&secret(&[], None))));
    assert!(
        message.contains("because no resource-based policy allows"),
        "{message}"
    );
    assert!(check(&b_admin, &get, Target::Secret(&secret(&[], Some(grant_b)))).is_ok());
    let b_user = user(B, "dave", &[]);
    let message = denied(check(
        &b_user,
        &get,
        Target::Secret(&secret(&[], Some(grant_b))),
    ));
    assert!(
        message.contains("because no identity-based policy allows"),
        "{message}"
    );
    let b_reader = user(B, "erin", &[&allow("secretsmanager:GetSecretValue")]);
    assert!(check(&b_reader, &get, Target::Secret(&secret(&[], Some(grant_b)))).is_ok());

    // A stored policy that no longer parses grants nothing and fails closed (it may have held
    // Denies), even for the administrator, except the resource policy operations, which the
    // identity policies decide so the owner can repair it.
    let broken = secret(
        &[],
        Some(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"GetSecretValue"}}"#),
    );
    assert!(check(&carol, &get, Target::Secret(&broken)).is_err());
    let denied = check(&admin, &get, Target::Secret(&broken)).unwrap_err();
    assert!(
        denied
            .message
            .contains("with an explicit deny in a resource-based policy"),
        "{}",
        denied.message
    );
    for repair in [
        "secretsmanager:GetResourcePolicy",
        "secretsmanager:DeleteResourcePolicy",
        "secretsmanager:PutResourcePolicy",
    ] {
        assert!(check(&admin, &Access::new(repair), Target::Secret(&broken)).is_ok());
        assert!(check(&carol, &Access::new(repair), Target::Secret(&broken)).is_err());
    }
}

#[test]
fn missing_secrets_are_checked_against_the_named_arn() {
    let alice = user(
        A,
        "alice",
        &[
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:dev/*"}]}"#,
        ],
    );
    let get = Access::new("secretsmanager:GetSecretValue");
    let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/nothing";
    let message = denied(check(&alice, &get, Target::Named { arn, account: A }));
    assert!(
        message.contains(&format!("on resource: {arn} because")),
        "{message}"
    );
    let dev = "arn:aws:secretsmanager:us-east-1:111122223333:secret:dev/nothing";
    assert!(
        check(
            &alice,
            &get,
            Target::Named {
                arn: dev,
                account: A
            }
        )
        .is_ok()
    );
    let ctx = context_for(
        REGION,
        NOW,
        &alice,
        &get,
        &Target::Named {
            arn: dev,
            account: A,
        },
    );
    assert_eq!(ctx.get("secretsmanager:SecretId").unwrap(), [dev]);
    // Another account's ARN is a cross-account request even when nothing is there.
    let b_admin = Caller::administrator(B, "arn:aws:iam::444455556666:root");
    assert!(
        check(
            &b_admin,
            &get,
            Target::Named {
                arn: dev,
                account: A
            }
        )
        .is_err()
    );
}

#[test]
fn create_secret_checks_the_name_and_request_tags() {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:CreateSecret","Resource":"*","Condition":{"StringLike":{"secretsmanager:Name":"team-a/*"},"ForAllValues:StringEquals":{"aws:TagKeys":["env","owner"]}}}]}"#;
    let alice = user(A, "alice", &[policy]);
    let create = |name: &str, tags: &[(&'static str, &'static str)]| {
        Access::new("secretsmanager:CreateSecret")
            .with("secretsmanager:Name", Some(name))
            .with_request_tags((!tags.is_empty()).then(|| tags.to_vec()))
    };
    let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:x-AbCdEf";
    let target = || Target::Named { arn, account: A };
    assert!(check(&alice, &create("team-a/db", &[]), target()).is_ok());
    assert!(check(&alice, &create("team-a/db", &[("env", "x")]), target()).is_ok());
    assert!(check(&alice, &create("team-a/db", &[("cost", "x")]), target()).is_err());
    assert!(check(&alice, &create("team-b/db", &[]), target()).is_err());
    let ctx = context_for(REGION, NOW, &alice, &create("team-a/db", &[]), &target());
    assert_eq!(
        ctx.get("secretsmanager:SecretId"),
        None,
        "CreateSecret names no existing secret"
    );
}

#[test]
fn timestamps_are_iso_8601() {
    assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso(NOW + 999), "2026-11-28T08:00:00Z");
}
