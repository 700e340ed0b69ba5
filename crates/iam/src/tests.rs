//! Table-driven tests of the grammar, the condition operators and the evaluation logic.

use crate::condition::parse_date;
use crate::*;

const ACCOUNT: &str = "111122223333";
const OTHER: &str = "444455556666";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf";

fn user(account: &str, name: &str) -> Principal {
    Principal {
        arn: format!("arn:aws:iam::{account}:user/{name}"),
        account_id: account.to_string(),
        user_name: Some(name.to_string()),
    }
}

fn root(account: &str) -> Principal {
    Principal {
        arn: format!("arn:aws:iam::{account}:root"),
        account_id: account.to_string(),
        user_name: None,
    }
}

fn identity(statement: &str) -> Policy {
    Policy::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#
    ))
    .unwrap_or_else(|e| panic!("{statement}: {e}"))
}

fn context(pairs: &[(&str, &[&str])]) -> Context {
    let mut c = Context::new();
    for (k, v) in pairs {
        c.set_all(k, v.iter().map(|s| s.to_string()).collect());
    }
    c
}

fn decide(
    principal: &Principal,
    action: &str,
    resource: &str,
    identities: &[Policy],
    resource_policy: Option<&Policy>,
    ctx: &Context,
) -> Decision {
    let account = resource
        .split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .unwrap_or(ACCOUNT);
    let request = Request {
        principal,
        action,
        resource,
        resource_account: account,
        context: ctx,
    };
    evaluate(&request, identities, resource_policy)
}

/// (name, principal, identity policies, resource policy, expected)
type EvalCase<'a> = (
    &'a str,
    &'a Principal,
    Vec<Policy>,
    Option<&'a Policy>,
    Decision,
);
/// (name, principal, identity policies, key policy, expected)
type KeyCase<'a> = (&'a str, &'a Principal, Vec<Policy>, &'a Policy, Decision);

#[test]
fn actions_and_resources() {
    // (statement, action, resource, allowed)
    let cases: &[(&str, &str, &str, bool)] = &[
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"*"}"#,
            "secretsmanager:PutSecretValue",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"SecretsManager:getsecretvalue","Resource":"*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValu?","Resource":"*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValu?","Resource":"*"}"#,
            "secretsmanager:GetSecretValu",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":["kms:Decrypt","secretsmanager:DescribeSecret"],"Resource":"*"}"#,
            "secretsmanager:DescribeSecret",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#,
            "secretsmanager:DescribeSecret",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","NotAction":"secretsmanager:DeleteSecret","Resource":"*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","NotAction":"secretsmanager:DeleteSecret","Resource":"*"}"#,
            "secretsmanager:DeleteSecret",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","NotAction":["secretsmanager:Delete*","secretsmanager:Put*"],"Resource":"*"}"#,
            "secretsmanager:PutSecretValue",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:us-east-1:111122223333:secret:dev/*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:prod/db-??????"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:prod/db-?????"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            false,
        ),
        // Resource matching is case-sensitive.
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:us-east-1:111122223333:secret:PROD/*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:prod/*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:dev/*"}"#,
            "secretsmanager:GetSecretValue",
            SECRET,
            true,
        ),
        // A resource-less action (ListSecrets) needs "*", not a secret ARN pattern.
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:*"}"#,
            "secretsmanager:ListSecrets",
            "*",
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#,
            "secretsmanager:ListSecrets",
            "*",
            true,
        ),
        // Policy variables.
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}"#,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:alice/x-AbCdEf",
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}"#,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:bob/x-AbCdEf",
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:PrincipalAccount}-*"}"#,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:111122223333-x",
            true,
        ),
        // A missing variable without a default matches nothing; with a default it is used.
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*"}"#,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:/x",
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team, 'shared'}/*"}"#,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:shared/x",
            true,
        ),
        // ${*} is a literal star, not a wildcard.
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:a${*}"}"#,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:abc",
            false,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:a${*}"}"#,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:a*",
            true,
        ),
    ];
    let alice = user(ACCOUNT, "alice");
    for (statement, action, resource, allowed) in cases {
        let decision = decide(
            &alice,
            action,
            resource,
            &[identity(statement)],
            None,
            &Context::new(),
        );
        assert_eq!(
            decision.is_allowed(),
            *allowed,
            "{statement} / {action} / {resource}"
        );
    }
}

#[test]
fn variables_are_literal_under_the_2008_version() {
    let policy = Policy::parse(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}"}}"#,
    )
    .unwrap();
    let alice = user(ACCOUNT, "alice");
    let literal = "arn:aws:secretsmanager:us-east-1:111122223333:secret:${aws:username}";
    let named = "arn:aws:secretsmanager:us-east-1:111122223333:secret:alice";
    let ctx = Context::new();
    assert!(
        decide(
            &alice,
            "secretsmanager:GetSecretValue",
            literal,
            std::slice::from_ref(&policy),
            None,
            &ctx
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &alice,
            "secretsmanager:GetSecretValue",
            named,
            &[policy],
            None,
            &ctx
        )
        .is_allowed()
    );
}

#[test]
fn conditions() {
    type Ctx<'a> = &'a [(&'a str, &'a [&'a str])];
    // (Condition element, request context, statement applies)
    let cases: &[(&str, Ctx, bool)] = &[
        (
            r#"{"StringEquals":{"secretsmanager:Name":"prod/db"}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            true,
        ),
        (
            r#"{"StringEquals":{"secretsmanager:Name":"prod/db"}}"#,
            &[("secretsmanager:Name", &["Prod/db"])],
            false,
        ),
        (
            r#"{"StringEquals":{"secretsmanager:Name":"prod/db"}}"#,
            &[],
            false,
        ),
        (
            r#"{"StringEquals":{"SecretsManager:NAME":"prod/db"}}"#,
            &[("secretsmanager:name", &["prod/db"])],
            true,
        ),
        (
            r#"{"StringEquals":{"secretsmanager:Name":["a","prod/db"]}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            true,
        ),
        (
            r#"{"StringNotEquals":{"secretsmanager:Name":"prod/db"}}"#,
            &[("secretsmanager:Name", &["dev/db"])],
            true,
        ),
        (
            r#"{"StringNotEquals":{"secretsmanager:Name":"prod/db"}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            false,
        ),
        (
            r#"{"StringNotEquals":{"secretsmanager:Name":["a","b"]}}"#,
            &[("secretsmanager:Name", &["b"])],
            false,
        ),
        // A negated operator holds when the key is missing.
        (
            r#"{"StringNotEquals":{"secretsmanager:Name":"prod/db"}}"#,
            &[],
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"secretsmanager:Name":"PROD/DB"}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            true,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"secretsmanager:Name":"PROD/DB"}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            false,
        ),
        // BinaryEquals: base64 in the policy, the key's bytes in the request.
        (
            r#"{"BinaryEquals":{"aws:ResourceTag/team":"Ymx1ZQ=="}}"#,
            &[("aws:ResourceTag/team", &["blue"])],
            true,
        ),
        (
            r#"{"BinaryEquals":{"aws:ResourceTag/team":["cmVk","Ymx1ZXM="]}}"#,
            &[("aws:ResourceTag/team", &["blues"])],
            true,
        ),
        (
            r#"{"BinaryEquals":{"aws:ResourceTag/team":"Ymx1ZQ=="}}"#,
            &[("aws:ResourceTag/team", &["Ymx1ZQ=="])],
            false,
        ),
        (
            r#"{"BinaryEquals":{"aws:ResourceTag/team":"Ymx1ZQ=="}}"#,
            &[("aws:ResourceTag/team", &["BLUE"])],
            false,
        ),
        (
            r#"{"BinaryEquals":{"aws:ResourceTag/team":"Ymx1ZQ=="}}"#,
            &[],
            false,
        ),
        (
            r#"{"StringLike":{"secretsmanager:Name":"prod/*"}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            true,
        ),
        (
            r#"{"StringLike":{"secretsmanager:Name":"prod/?"}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            false,
        ),
        (
            r#"{"StringLike":{"secretsmanager:Name":"PROD/*"}}"#,
            &[("secretsmanager:Name", &["prod/db"])],
            false,
        ),
        (
            r#"{"StringNotLike":{"secretsmanager:Name":"prod/*"}}"#,
            &[("secretsmanager:Name", &["dev/db"])],
            true,
        ),
        (
            r#"{"StringNotLike":{"secretsmanager:Name":"prod/*"}}"#,
            &[],
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"secretsmanager:Name":"prod/db"}}"#,
            &[],
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"secretsmanager:Name":"prod/db"}}"#,
            &[("secretsmanager:Name", &["x"])],
            false,
        ),
        (
            r#"{"StringEquals":{"aws:ResourceTag/env":"prod"},"StringLike":{"secretsmanager:Name":"prod/*"}}"#,
            &[
                ("aws:ResourceTag/env", &["prod"]),
                ("secretsmanager:Name", &["prod/db"]),
            ],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:ResourceTag/env":"prod"},"StringLike":{"secretsmanager:Name":"prod/*"}}"#,
            &[
                ("aws:ResourceTag/env", &["dev"]),
                ("secretsmanager:Name", &["prod/db"]),
            ],
            false,
        ),
        (
            r#"{"StringEquals":{"aws:ResourceTag/env":"prod","aws:ResourceTag/team":"a"}}"#,
            &[("aws:ResourceTag/env", &["prod"])],
            false,
        ),
        // Policy variables in condition values.
        (
            r#"{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}"#,
            &[("aws:ResourceTag/owner", &["alice"])],
            true,
        ),
        (
            r#"{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}"#,
            &[("aws:ResourceTag/owner", &["bob"])],
            false,
        ),
        (
            r#"{"StringLike":{"secretsmanager:Name":"${aws:username}/*"}}"#,
            &[("secretsmanager:Name", &["alice/key"])],
            true,
        ),
        // ARNs.
        (
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}"#,
            &[],
            true,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/al*"}}"#,
            &[],
            true,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::444455556666:*"}}"#,
            &[],
            false,
        ),
        (
            r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/bob"}}"#,
            &[],
            true,
        ),
        (
            r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}"#,
            &[],
            false,
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*"}}"#,
            &[("aws:SourceArn", &["not-an-arn"])],
            false,
        ),
        // Principal keys come from the principal when the context lacks them.
        (
            r#"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
            &[],
            true,
        ),
        (r#"{"StringEquals":{"aws:username":"alice"}}"#, &[], true),
        // Bool.
        (
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
            &[("aws:SecureTransport", &["true"])],
            true,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":true}}"#,
            &[("aws:SecureTransport", &["false"])],
            false,
        ),
        (r#"{"Bool":{"aws:SecureTransport":"false"}}"#, &[], false),
        (
            r#"{"BoolIfExists":{"aws:SecureTransport":"false"}}"#,
            &[],
            true,
        ),
        // Numbers.
        (
            r#"{"NumericEquals":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["10"])],
            true,
        ),
        (
            r#"{"NumericEquals":{"s3:max-keys":10}}"#,
            &[("s3:max-keys", &["10.0"])],
            true,
        ),
        (
            r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["11"])],
            true,
        ),
        (
            r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["10"])],
            false,
        ),
        (
            r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["10"])],
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["10.5"])],
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["9"])],
            false,
        ),
        (
            r#"{"NumericEquals":{"s3:max-keys":"10"}}"#,
            &[("s3:max-keys", &["ten"])],
            false,
        ),
        // Dates: ISO 8601 and epoch seconds, compared as instants.
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}"#,
            &[("aws:CurrentTime", &["2026-11-28T08:00:00Z"])],
            true,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}"#,
            &[("aws:CurrentTime", &["2026-11-28T08:00:00Z"])],
            false,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2026-01-01"}}"#,
            &[("aws:CurrentTime", &["2025-12-31T23:59:59Z"])],
            true,
        ),
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2026-01-01T02:00:00+02:00"}}"#,
            &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])],
            true,
        ),
        (
            r#"{"DateNotEquals":{"aws:CurrentTime":"1767225600"}}"#,
            &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])],
            false,
        ),
        (
            r#"{"DateLessThanEquals":{"aws:CurrentTime":1767225600}}"#,
            &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])],
            true,
        ),
        (
            r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-01-01T00:00:00.001Z"}}"#,
            &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])],
            false,
        ),
        // IP addresses.
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &[("aws:SourceIp", &["203.0.113.7"])],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &[("aws:SourceIp", &["203.0.114.7"])],
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}"#,
            &[("aws:SourceIp", &["203.0.113.7"])],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","127.0.0.0/8"]}}"#,
            &[("aws:SourceIp", &["127.0.0.1"])],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}"#,
            &[("aws:SourceIp", &["::ffff:127.0.0.1"])],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            &[("aws:SourceIp", &["2001:db8:1::5"])],
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            &[("aws:SourceIp", &["2001:db9::5"])],
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            &[("aws:SourceIp", &["203.0.113.7"])],
            false,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &[("aws:SourceIp", &["198.51.100.1"])],
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &[("aws:SourceIp", &["203.0.113.1"])],
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#,
            &[("aws:SourceIp", &["8.8.8.8"])],
            true,
        ),
        // Null.
        (r#"{"Null":{"aws:ResourceTag/env":"true"}}"#, &[], true),
        (
            r#"{"Null":{"aws:ResourceTag/env":"true"}}"#,
            &[("aws:ResourceTag/env", &["prod"])],
            false,
        ),
        (
            r#"{"Null":{"aws:ResourceTag/env":false}}"#,
            &[("aws:ResourceTag/env", &["prod"])],
            true,
        ),
        (r#"{"Null":{"aws:ResourceTag/env":"false"}}"#, &[], false),
        // Set qualifiers on multi-valued keys.
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            &[("aws:TagKeys", &["owner", "team"])],
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            &[("aws:TagKeys", &["owner"])],
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}"#,
            &[],
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            &[("aws:TagKeys", &["env", "team"])],
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            &[("aws:TagKeys", &["env", "owner"])],
            false,
        ),
        // ForAllValues holds for a missing key (the documented pitfall).
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}"#,
            &[],
            true,
        ),
        (
            r#"{"ForAllValues:StringLike":{"secretsmanager:AddReplicaRegions":"eu-*"}}"#,
            &[(
                "secretsmanager:AddReplicaRegions",
                &["eu-west-1", "eu-central-1"],
            )],
            true,
        ),
        (
            r#"{"ForAllValues:StringLike":{"secretsmanager:AddReplicaRegions":"eu-*"}}"#,
            &[(
                "secretsmanager:AddReplicaRegions",
                &["eu-west-1", "us-east-2"],
            )],
            false,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"env"}}"#,
            &[("aws:TagKeys", &["env", "x"])],
            true,
        ),
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"env"}}"#,
            &[("aws:TagKeys", &["env", "x"])],
            false,
        ),
        (
            r#"{"StringNotEquals":{"aws:TagKeys":"env"}}"#,
            &[("aws:TagKeys", &["env", "x"])],
            false,
        ),
        (
            r#"{"StringEquals":{"aws:TagKeys":"env"}}"#,
            &[("aws:TagKeys", &["x", "env"])],
            true,
        ),
    ];
    let alice = user(ACCOUNT, "alice");
    for (condition, ctx, applies) in cases {
        let policy = identity(&format!(
            r#"{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}"#
        ));
        let ctx = context(ctx);
        let decision = decide(
            &alice,
            "secretsmanager:GetSecretValue",
            SECRET,
            &[policy],
            None,
            &ctx,
        );
        assert_eq!(decision.is_allowed(), *applies, "{condition} with {ctx:?}");
    }
}

#[test]
fn evaluation_logic() {
    let alice = user(ACCOUNT, "alice");
    let bob_b = user(OTHER, "bob");
    let allow_all = identity(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#);
    let deny_get =
        identity(r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*"}"#);
    let resource = |principal: &str, effect: &str| {
        Policy::parse_resource_policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Principal":{principal},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}]}}"#
        ))
        .unwrap()
    };
    let alice_direct = resource(r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#, "Allow");
    let account_a = resource(r#"{"AWS":"arn:aws:iam::111122223333:root"}"#, "Allow");
    let account_b_root = resource(r#"{"AWS":"arn:aws:iam::444455556666:root"}"#, "Allow");
    let account_b_id = resource(r#"{"AWS":"444455556666"}"#, "Allow");
    let bob_direct = resource(r#"{"AWS":["arn:aws:iam::444455556666:user/bob"]}"#, "Allow");
    let everyone = resource(r#""*""#, "Allow");
    let everyone_aws = resource(r#"{"AWS":"*"}"#, "Allow");
    let deny_everyone = resource(r#"{"AWS":"*"}"#, "Deny");
    let not_principal = |principals: &str| {
        Policy::parse_resource_policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","NotPrincipal":{{"AWS":{principals}}},"Action":"*","Resource":"*"}}]}}"#
        ))
        .unwrap()
    };
    // AWS's documented form: the user and its account.
    let not_alice = not_principal(
        r#"["arn:aws:iam::111122223333:user/alice","arn:aws:iam::111122223333:root"]"#,
    );
    let not_alice_by_id =
        not_principal(r#"["arn:aws:iam::111122223333:user/alice","111122223333"]"#);
    let not_alice_alone = not_principal(r#""arn:aws:iam::111122223333:user/alice""#);
    let not_account_a = not_principal(r#""arn:aws:iam::111122223333:root""#);
    let not_anyone = not_principal(r#""*""#);
    let carol = user(ACCOUNT, "carol");
    let root_a = root(ACCOUNT);
    let get = "secretsmanager:GetSecretValue";
    let cases: Vec<EvalCase> = vec![
        (
            "default deny",
            &alice,
            vec![],
            None,
            Decision::Deny(Denial::NoIdentityAllow),
        ),
        (
            "identity allow",
            &alice,
            vec![allow_all.clone()],
            None,
            Decision::Allow,
        ),
        (
            "explicit identity deny wins",
            &alice,
            vec![allow_all.clone(), deny_get.clone()],
            None,
            Decision::Deny(Denial::ExplicitIdentity),
        ),
        (
            "deny order does not matter",
            &alice,
            vec![deny_get.clone(), allow_all.clone()],
            None,
            Decision::Deny(Denial::ExplicitIdentity),
        ),
        (
            "resource policy naming the user suffices",
            &alice,
            vec![],
            Some(&alice_direct),
            Decision::Allow,
        ),
        (
            "resource policy naming the account delegates",
            &alice,
            vec![],
            Some(&account_a),
            Decision::Deny(Denial::NoIdentityAllow),
        ),
        (
            "delegation plus identity allow",
            &alice,
            vec![allow_all.clone()],
            Some(&account_a),
            Decision::Allow,
        ),
        ("everyone", &alice, vec![], Some(&everyone), Decision::Allow),
        (
            "everyone via AWS",
            &alice,
            vec![],
            Some(&everyone_aws),
            Decision::Allow,
        ),
        (
            "resource deny beats identity allow",
            &alice,
            vec![allow_all.clone()],
            Some(&deny_everyone),
            Decision::Deny(Denial::ExplicitResource),
        ),
        (
            "identity deny reported first",
            &alice,
            vec![deny_get.clone()],
            Some(&deny_everyone),
            Decision::Deny(Denial::ExplicitIdentity),
        ),
        (
            "NotPrincipal deny spares alice",
            &alice,
            vec![allow_all.clone()],
            Some(&not_alice),
            Decision::Allow,
        ),
        (
            "NotPrincipal deny hits bob",
            &bob_b,
            vec![allow_all.clone()],
            Some(&not_alice),
            Decision::Deny(Denial::ExplicitResource),
        ),
        (
            "NotPrincipal deny hits another user of alice's account",
            &carol,
            vec![allow_all.clone()],
            Some(&not_alice),
            Decision::Deny(Denial::ExplicitResource),
        ),
        (
            "NotPrincipal naming the account spares its root",
            &root_a,
            vec![allow_all.clone()],
            Some(&not_alice),
            Decision::Allow,
        ),
        (
            "NotPrincipal by account id spares alice",
            &alice,
            vec![allow_all.clone()],
            Some(&not_alice_by_id),
            Decision::Allow,
        ),
        (
            "NotPrincipal by account id hits carol",
            &carol,
            vec![allow_all.clone()],
            Some(&not_alice_by_id),
            Decision::Deny(Denial::ExplicitResource),
        ),
        (
            "NotPrincipal without the account hits the user too",
            &alice,
            vec![allow_all.clone()],
            Some(&not_alice_alone),
            Decision::Deny(Denial::ExplicitResource),
        ),
        (
            "NotPrincipal naming only the account hits its users",
            &alice,
            vec![allow_all.clone()],
            Some(&not_account_a),
            Decision::Deny(Denial::ExplicitResource),
        ),
        (
            "NotPrincipal naming only the account spares its root",
            &root_a,
            vec![allow_all.clone()],
            Some(&not_account_a),
            Decision::Allow,
        ),
        (
            "NotPrincipal star spares everyone",
            &bob_b,
            vec![allow_all.clone()],
            Some(&not_anyone),
            Decision::Deny(Denial::NoResourceAllow),
        ),
        (
            "cross-account needs the resource policy",
            &bob_b,
            vec![allow_all.clone()],
            None,
            Decision::Deny(Denial::NoResourceAllow),
        ),
        (
            "cross-account needs the identity policy",
            &bob_b,
            vec![],
            Some(&bob_direct),
            Decision::Deny(Denial::NoIdentityAllow),
        ),
        (
            "cross-account both allow (user)",
            &bob_b,
            vec![allow_all.clone()],
            Some(&bob_direct),
            Decision::Allow,
        ),
        (
            "cross-account both allow (account root)",
            &bob_b,
            vec![allow_all.clone()],
            Some(&account_b_root),
            Decision::Allow,
        ),
        (
            "cross-account both allow (account id)",
            &bob_b,
            vec![allow_all.clone()],
            Some(&account_b_id),
            Decision::Allow,
        ),
        (
            "another account's grant is not ours",
            &bob_b,
            vec![allow_all.clone()],
            Some(&account_a),
            Decision::Deny(Denial::NoResourceAllow),
        ),
        (
            "a user grant names only that user",
            &bob_b,
            vec![allow_all.clone()],
            Some(&alice_direct),
            Decision::Deny(Denial::NoResourceAllow),
        ),
        (
            "cross-account everyone",
            &bob_b,
            vec![allow_all.clone()],
            Some(&everyone),
            Decision::Allow,
        ),
    ];
    for (name, principal, identities, resource_policy, expected) in cases {
        let got = decide(
            principal,
            get,
            SECRET,
            &identities,
            resource_policy,
            &Context::new(),
        );
        assert_eq!(got, expected, "{name}");
    }
    // The resource policy's Action must match too.
    assert_eq!(
        decide(
            &alice,
            "secretsmanager:PutSecretValue",
            SECRET,
            &[],
            Some(&alice_direct),
            &Context::new()
        ),
        Decision::Deny(Denial::NoIdentityAllow)
    );
}

#[test]
fn key_policies() {
    let alice = user(ACCOUNT, "alice");
    let bob_b = user(OTHER, "bob");
    let admin = root(ACCOUNT);
    let allow_all = identity(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#);
    let key = |principal: &str, effect: &str| {
        Policy::parse_resource_policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Principal":{principal},"Action":"kms:*","Resource":"*"}}]}}"#
        ))
        .unwrap()
    };
    let default_key = key(r#"{"AWS":"arn:aws:iam::111122223333:root"}"#, "Allow");
    let alice_key = key(r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#, "Allow");
    let with_b = key(
        r#"{"AWS":["arn:aws:iam::111122223333:root","444455556666"]}"#,
        "Allow",
    );
    let deny_key = key(r#""*""#, "Deny");
    let carol_key = key(r#"{"AWS":"arn:aws:iam::111122223333:user/carol"}"#, "Allow");
    let resource = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let cases: Vec<KeyCase> = vec![
        (
            "account key, identity allows",
            &alice,
            vec![allow_all.clone()],
            &default_key,
            Decision::Allow,
        ),
        (
            "account key, no identity policy",
            &alice,
            vec![],
            &default_key,
            Decision::Deny(Denial::NoIdentityAllow),
        ),
        (
            "account root itself",
            &admin,
            vec![],
            &default_key,
            Decision::Allow,
        ),
        (
            "key names the user",
            &alice,
            vec![],
            &alice_key,
            Decision::Allow,
        ),
        (
            "key names someone else",
            &alice,
            vec![allow_all.clone()],
            &carol_key,
            Decision::Deny(Denial::NoResourceAllow),
        ),
        (
            "explicit deny in the key policy",
            &alice,
            vec![allow_all.clone()],
            &deny_key,
            Decision::Deny(Denial::ExplicitResource),
        ),
        (
            "cross-account not granted",
            &bob_b,
            vec![allow_all.clone()],
            &default_key,
            Decision::Deny(Denial::NoResourceAllow),
        ),
        (
            "cross-account granted",
            &bob_b,
            vec![allow_all.clone()],
            &with_b,
            Decision::Allow,
        ),
        (
            "cross-account granted, identity silent",
            &bob_b,
            vec![],
            &with_b,
            Decision::Deny(Denial::NoIdentityAllow),
        ),
    ];
    for (name, principal, identities, key_policy, expected) in cases {
        let ctx = Context::new();
        let request = Request {
            principal,
            action: "kms:Decrypt",
            resource,
            resource_account: ACCOUNT,
            context: &ctx,
        };
        assert_eq!(
            evaluate_key_policy(&request, &identities, key_policy),
            expected,
            "{name}"
        );
    }
}

#[test]
fn parse_errors_are_precise() {
    // (document, a fragment the message must contain)
    let cases: &[(&str, &str)] = &[
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        (
            r#"{"Version":"2012-10-17"}"#,
            "The policy has no Statement.",
        ),
        (r#"{"Statement":[]}"#, "The policy has no Statement."),
        (
            r#"{"Version":"2013-01-01","Statement":[]}"#,
            "Version must be",
        ),
        (
            r#"{"Statement":[],"Extra":1}"#,
            "unknown top-level element \"Extra\"",
        ),
        (
            r#"{"Statement":["x"]}"#,
            "Statement 1 must be a JSON object.",
        ),
        (
            r#"{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#,
            "Statement 1 needs an Effect",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"Two","Effect":"Allow","Resource":"*"}]}"#,
            "Statement 2 (Sid \"Two\") needs an Action or NotAction.",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}"#,
            "both Action and NotAction",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"GetSecretValue","Resource":"*"}}"#,
            "Action \"GetSecretValue\" must be \"*\" or prefaced by a service",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
            "Action must not be an empty list",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}"#,
            "Action must be a string or a list of strings",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"secret"}}"#,
            "Resource \"secret\" must be \"*\" or an ARN",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}}"#,
            "both Resource and NotResource",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":"me"}}"#,
            "Principal must be \"*\" or an object",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":{"AWS":"alice"}}}"#,
            "Principal \"alice\" is neither",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":{"Robot":"x"}}}"#,
            "unknown principal type \"Robot\"",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*","NotPrincipal":"*"}}"#,
            "both Principal and NotPrincipal",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualz":{"aws:username":"a"}}}}"#,
            "unknown condition operator \"StringEqualz\"",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}}"#,
            "unknown condition operator \"NullIfExists\"",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"username":"a"}}}}"#,
            "condition key \"username\" must be prefaced",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}}"#,
            "\"ten\" is not a number",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2026-02-30"}}}}"#,
            "is not a date",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}"#,
            "is not an IP address or CIDR block",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"BinaryEquals":{"aws:ResourceTag/team":"team=blue"}}}}"#,
            "\"team=blue\" is not base64-encoded",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"BinaryEquals":{"aws:ResourceTag/team":"Ymx1ZR=="}}}}"#,
            "\"Ymx1ZR==\" is not base64-encoded",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}"#,
            "\"yes\" is not \"true\" or \"false\"",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":[]}}}}"#,
            "has no values",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":"x"}}"#,
            "Condition must be a JSON object",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Actions":"*"}}"#,
            "unknown element \"Actions\"",
        ),
        (
            r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
            "\"A\" appears twice",
        ),
    ];
    for (document, fragment) in cases {
        let error = Policy::parse(document).expect_err(document).0;
        assert!(
            error.contains(fragment),
            "{document}: got {error:?}, wanted {fragment:?}"
        );
    }
    let no_principal = r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
    assert!(Policy::parse(no_principal).is_ok());
    assert!(
        Policy::parse_resource_policy(no_principal)
            .unwrap_err()
            .0
            .contains("needs exactly one of Principal or NotPrincipal")
    );
    let with_principal =
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#;
    assert!(
        Policy::parse_identity_policy(with_principal)
            .unwrap_err()
            .0
            .contains("must not have a Principal")
    );
    let no_resource = r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#;
    assert!(
        Policy::parse_identity_policy(no_resource)
            .unwrap_err()
            .0
            .contains("needs a Resource or NotResource")
    );
}

#[test]
fn public_policies() {
    let statement = |principal: &str, condition: &str| {
        let condition = if condition.is_empty() {
            String::new()
        } else {
            format!(r#","Condition":{condition}"#)
        };
        Policy::parse_resource_policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"secretsmanager:GetSecretValue","Resource":"*"{condition}}}]}}"#
        ))
        .unwrap()
    };
    // (Principal, Condition, public)
    let cases: &[(&str, &str, bool)] = &[
        (r#""*""#, "", true),
        (r#"{"AWS":"*"}"#, "", true),
        (
            r#"{"AWS":["arn:aws:iam::111122223333:root","*"]}"#,
            "",
            true,
        ),
        (r#"{"AWS":"arn:aws:iam::111122223333:root"}"#, "", false),
        (r#"{"AWS":"111122223333"}"#, "", false),
        (
            r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
            "",
            false,
        ),
        (r#"{"Service":"lambda.amazonaws.com"}"#, "", false),
        (
            r#""*""#,
            r#"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
            false,
        ),
        (
            r#""*""#,
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}"#,
            false,
        ),
        (
            r#""*""#,
            r#"{"StringEquals":{"aws:PrincipalOrgID":"o-abc123"}}"#,
            false,
        ),
        (
            r#""*""#,
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            false,
        ),
        (
            r#""*""#,
            r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#,
            true,
        ),
        (
            r#""*""#,
            r#"{"StringLike":{"aws:PrincipalAccount":"*"}}"#,
            true,
        ),
        (
            r#""*""#,
            r#"{"StringNotEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
            true,
        ),
        (
            r#""*""#,
            r#"{"StringEqualsIfExists":{"aws:PrincipalAccount":"111122223333"}}"#,
            true,
        ),
        (
            r#""*""#,
            r#"{"ForAllValues:StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
            true,
        ),
        (
            r#""*""#,
            r#"{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}"#,
            true,
        ),
        (r#""*""#, r#"{"Bool":{"aws:SecureTransport":"true"}}"#, true),
        (
            r#""*""#,
            r#"{"StringEquals":{"aws:PrincipalAccount":"${aws:username}"}}"#,
            true,
        ),
    ];
    for (principal, condition, public) in cases {
        let policy = statement(principal, condition);
        assert_eq!(policy.is_public(), *public, "{principal} {condition}");
        assert_eq!(policy.broad_access_findings().len(), usize::from(*public));
    }
    let not_principal = Policy::parse_resource_policy(
        r#"{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"*","Resource":"*"}}"#,
    )
    .unwrap();
    assert!(
        not_principal.is_public(),
        "Allow with NotPrincipal allows everyone else"
    );
    let deny = Policy::parse_resource_policy(
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}}"#,
    )
    .unwrap();
    assert!(!deny.is_public());
}

#[test]
fn validation_findings() {
    let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    assert_eq!(validate_resource_policy(ok, "secretsmanager"), vec![]);
    let json = validate_resource_policy("{\n  \"Statement\": [,]\n}", "secretsmanager");
    assert_eq!(json.len(), 1);
    assert_eq!(json[0].check, SYNTAX_CHECK);
    assert!(json[0].message.contains("line 2"), "{:?}", json[0]);
    let operator = validate_resource_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"*","Resource":"*","Condition":{"StringMatches":{"aws:username":"a"}}}}"#,
        "secretsmanager",
    );
    assert_eq!(operator[0].check, CONDITION_OPERATOR_CHECK);
    let public = validate_resource_policy(
        r#"{"Statement":{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"}}"#,
        "secretsmanager",
    );
    assert_eq!(public.len(), 1);
    assert_eq!(public[0].check, BROAD_ACCESS_CHECK);
    assert!(public[0].message.starts_with("Statement 1 (Sid \"Open\")"));
    let other_service = validate_resource_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":["s3:GetObject","secretsmanager:Get*","*"],"Resource":["arn:aws:s3:::bucket/*","*"]}}"#,
        "secretsmanager",
    );
    let checks: Vec<_> = other_service
        .iter()
        .map(|f| (f.check, f.message.contains("s3:")))
        .collect();
    assert_eq!(checks, vec![(SERVICE_CHECK, true), (SERVICE_CHECK, true)]);
    let missing_principal = validate_resource_policy(
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        "secretsmanager",
    );
    assert_eq!(missing_principal[0].check, SYNTAX_CHECK);
}

#[test]
fn dates() {
    let cases: &[(&str, Option<f64>)] = &[
        ("1970-01-01T00:00:00Z", Some(0.0)),
        ("1970-01-02", Some(86_400.0)),
        ("2000-03-01T00:00:00Z", Some(951_868_800.0)),
        ("2024-02-29T12:30:15Z", Some(1_709_209_815.0)),
        ("2024-02-29T12:30:15.5Z", Some(1_709_209_815.5)),
        ("2024-02-29T14:30:15+02:00", Some(1_709_209_815.0)),
        ("2024-02-29T07:30:15-0500", Some(1_709_209_815.0)),
        ("1709209815", Some(1_709_209_815.0)),
        ("2023-02-29", None),
        ("2024-13-01", None),
        ("2024-01-01T25:00:00Z", None),
        ("yesterday", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_date(text), *expected, "{text}");
    }
}

#[test]
fn access_denied_messages_have_aws_shape() {
    let alice = user(ACCOUNT, "alice");
    let ctx = Context::new();
    let request = Request {
        principal: &alice,
        action: "secretsmanager:GetSecretValue",
        resource: SECRET,
        resource_account: ACCOUNT,
        context: &ctx,
    };
    assert_eq!(
        access_denied_message(&request, Denial::NoIdentityAllow),
        format!(
            "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: {SECRET} because no identity-based policy allows the secretsmanager:GetSecretValue action"
        )
    );
    assert_eq!(
        access_denied_message(&request, Denial::ExplicitIdentity),
        format!(
            "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: {SECRET} with an explicit deny in an identity-based policy"
        )
    );
}

#[test]
fn administrator_access_allows_everything_in_its_account() {
    let admin = root(ACCOUNT);
    let decision = decide(
        &admin,
        "secretsmanager:DeleteSecret",
        SECRET,
        &[Policy::administrator_access()],
        None,
        &Context::new(),
    );
    assert!(decision.is_allowed());
    assert_eq!(Policy::administrator_access().statement_count(), 1);
}

#[test]
fn policies_say_whether_they_read_the_context() {
    let reads = |statement: &str| identity(statement).reads_context();
    assert!(!Policy::administrator_access().reads_context());
    assert!(!reads(
        r#"{"Effect":"Deny","NotAction":"kms:*","NotResource":"arn:aws:kms:*:*:key/*"}"#
    ));
    // A Principal never reads the context, whatever it names.
    let key_policy = Policy::parse_resource_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#,
    )
    .unwrap();
    assert!(!key_policy.reads_context());
    // A Condition, of any operator, in any statement (Deny too), with or without a Resource.
    assert!(reads(
        r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#
    ));
    assert!(reads(
        r#"{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#
    ));
    assert!(reads(
        r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:PrincipalTag/team":"false"}}}"#
    ));
    let with_principal = Policy::parse_resource_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Condition":{"StringEquals":{"kms:ViaService":"secretsmanager.us-east-1.amazonaws.com"}}}]}"#,
    )
    .unwrap();
    assert!(with_principal.reads_context());
    // Conditions read the context under 2008-10-17 too.
    let old = Policy::parse(
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":"alice"}}}}"#,
    )
    .unwrap();
    assert!(old.reads_context());
    // A policy variable in a Resource or NotResource (2012-10-17).
    assert!(reads(
        r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}"}"#
    ));
    assert!(reads(
        r#"{"Effect":"Deny","Action":"*","NotResource":["arn:aws:secretsmanager:*:*:secret:shared/*","arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*"]}"#
    ));
    // Under 2008-10-17 "${...}" is literal text.
    let literal = Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}"}}"#).unwrap();
    assert!(!literal.reads_context());
    // An empty Condition block has no condition to read with.
    assert!(!reads(
        r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}"#
    ));
}

/// The flag is what evaluation does: a policy that says it does not read the context decides
/// the same with an empty context as with a full one, and one that says it does can decide
/// differently (so [`context_read_by`] must build the context for it).
#[test]
fn a_policy_that_reads_no_context_decides_without_it() {
    let alice = user(ACCOUNT, "alice");
    let full = context(&[
        ("aws:SourceIp", &["10.1.2.3"]),
        ("aws:SecureTransport", &["false"]),
        ("aws:username", &["alice"]),
        ("aws:PrincipalTag/team", &["blue"]),
    ]);
    let blue = "arn:aws:secretsmanager:us-east-1:111122223333:secret:blue/db-AbCdEf";
    let cases = [
        (r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#, false),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#,
            true,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*"}"#,
            true,
        ),
    ];
    for (statement, expected) in cases {
        let policy = identity(statement);
        assert_eq!(policy.reads_context(), expected, "{statement}");
        let decide_with = |c: &Context| {
            decide(
                &alice,
                "secretsmanager:GetSecretValue",
                blue,
                std::slice::from_ref(&policy),
                None,
                c,
            )
        };
        let with = decide_with(&full);
        assert!(with.is_allowed(), "{statement}");
        assert_eq!(
            decide_with(&context_read_by([&policy], |c| c.extend_from(&full))),
            with,
            "{statement}"
        );
        // Without the context, only the policies that read it decide otherwise.
        assert_eq!(
            decide_with(&Context::new()) == with,
            !expected,
            "{statement}"
        );
    }
}

/// [`context_read_by`] keeps the keys the policies' conditions look up and no other, and
/// every key once a policy variable may read any; the decisions are those of the full context.
#[test]
fn a_context_read_by_policies_holds_the_keys_they_look_up() {
    let alice = user(ACCOUNT, "alice");
    let fill = |c: &mut Context| {
        c.set("aws:SourceIp", "10.1.2.3");
        c.set_with("aws:SecureTransport", || "false".into());
        c.set("aws:username", "alice");
        c.set_with("aws:PrincipalTag/team", || "blue".into());
    };
    let mut full = Context::new();
    fill(&mut full);
    let blue = "arn:aws:secretsmanager:us-east-1:111122223333:secret:blue/db-AbCdEf";
    let by_ip = identity(
        r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"AWS:SOURCEIP":"10.0.0.0/8"}}}"#,
    );
    let denied_plain_http = identity(
        r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
    );
    let by_tag_variable = identity(
        r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*"}"#,
    );
    let by_username_in_a_value = identity(
        r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"${aws:username}"}}}"#,
    );

    let only_ip = context_read_by([&by_ip], fill);
    assert_eq!(
        only_ip.get("aws:SourceIp"),
        Some(&["10.1.2.3".to_string()][..])
    );
    assert_eq!(only_ip.get("aws:SecureTransport"), None);
    assert_eq!(only_ip.get("aws:username"), None);
    let two = context_read_by([&by_ip, &denied_plain_http], fill);
    assert!(two.get("aws:SourceIp").is_some() && two.get("aws:SecureTransport").is_some());
    assert_eq!(two.get("aws:PrincipalTag/team"), None);
    for variable in [&by_tag_variable, &by_username_in_a_value] {
        let all = context_read_by([variable], fill);
        assert!(all.get("aws:username").is_some() && all.get("aws:PrincipalTag/team").is_some());
    }
    assert_eq!(
        context_read_by([&Policy::administrator_access()], fill),
        Context::new()
    );

    for policies in [
        vec![by_ip.clone()],
        vec![by_ip.clone(), denied_plain_http.clone()],
        vec![by_tag_variable.clone()],
    ] {
        let decide_with = |c: &Context| {
            decide(
                &alice,
                "secretsmanager:GetSecretValue",
                blue,
                &policies,
                None,
                c,
            )
        };
        assert_eq!(
            decide_with(&context_read_by(policies.iter(), fill)),
            decide_with(&full)
        );
    }
}
