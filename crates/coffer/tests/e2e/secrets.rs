//! Secret operations as an aws-sdk-rust user performs them.

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use crate::server::{Server, error_of, unique};

#[tokio::test]
async fn create_then_get_returns_the_value_with_awscurrent() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("db");
    let created = sm
        .create_secret()
        .name(&name)
        .secret_string(r#"{"user":"app","password":"s3cr3t"}"#)
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();
    assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:"));
    let suffix = arn.rsplit('-').next().unwrap();
    assert_eq!(suffix.len(), 6, "ARN ends with a 6-character suffix: {arn}");
    let got = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(
        got.secret_string(),
        Some(r#"{"user":"app","password":"s3cr3t"}"#)
    );
    assert_eq!(got.version_stages(), ["AWSCURRENT"]);
    assert_eq!(got.version_id(), created.version_id());
    assert!(got.created_date().is_some());
    // By full ARN and by partial ARN (no suffix) too.
    let by_arn = sm.get_secret_value().secret_id(arn).send().await.unwrap();
    assert_eq!(by_arn.name(), Some(name.as_str()));
    let partial = &arn[..arn.len() - 7];
    let by_partial = sm
        .get_secret_value()
        .secret_id(partial)
        .send()
        .await
        .unwrap();
    assert_eq!(by_partial.arn(), Some(arn));
}

#[tokio::test]
async fn binary_secrets_round_trip_every_byte() {
    let server = Server::start();
    let sm = server.client("us-west-2");
    let name = unique("bin");
    let bytes: Vec<u8> = (0..=255u8).collect();
    sm.create_secret()
        .name(&name)
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .unwrap();
    let got = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(got.secret_binary().unwrap().as_ref(), bytes.as_slice());
    assert!(got.secret_string().is_none());
}

#[tokio::test]
async fn put_secret_value_moves_current_and_previous() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("rotating");
    let v1 = sm
        .create_secret()
        .name(&name)
        .secret_string("one")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let v2 = sm
        .put_secret_value()
        .secret_id(&name)
        .secret_string("two")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version_stages(), ["AWSCURRENT"]);
    let v2 = v2.version_id.unwrap();
    let v3 = sm
        .put_secret_value()
        .secret_id(&name)
        .secret_string("three")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    let described = sm.describe_secret().secret_id(&name).send().await.unwrap();
    let map = described.version_ids_to_stages().unwrap();
    assert_eq!(map.get(&v3).unwrap(), &["AWSCURRENT"]);
    assert_eq!(map.get(&v2).unwrap(), &["AWSPREVIOUS"]);
    assert!(
        !map.contains_key(&v1),
        "v1 lost its last label and is deprecated"
    );
    let previous = sm
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(previous.secret_string(), Some("two"));
    let all = sm
        .list_secret_version_ids()
        .secret_id(&name)
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.versions().len(), 3);
    let deprecated = all
        .versions()
        .iter()
        .find(|v| v.version_id() == Some(v1.as_str()))
        .unwrap();
    assert!(deprecated.version_stages.is_none());
    assert_eq!(deprecated.kms_key_ids(), ["DefaultEncryptionKey"]);

    // Move AWSCURRENT back to v2 by hand.
    sm.update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .remove_from_version_id(&v3)
        .send()
        .await
        .unwrap();
    let now = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(now.secret_string(), Some("two"));
    let described = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert_eq!(
        described.version_ids_to_stages().unwrap().get(&v3).unwrap(),
        &["AWSPREVIOUS"]
    );
}

#[tokio::test]
async fn same_token_and_value_is_an_idempotent_replay() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("idem");
    let token = "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1";
    let first = sm
        .create_secret()
        .name(&name)
        .client_request_token(token)
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let again = sm
        .create_secret()
        .name(&name)
        .client_request_token(token)
        .secret_string("v")
        .send()
        .await
        .unwrap();
    assert_eq!(first.arn(), again.arn());
    assert_eq!(again.version_id(), Some(token));
    let (code, message) = error_of(
        sm.create_secret()
            .name(&name)
            .client_request_token(token)
            .secret_string("different")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ResourceExistsException");
    assert_eq!(
        message,
        format!(
            "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {}.",
            first.arn().unwrap()
        )
    );
}

#[tokio::test]
async fn list_secrets_filters_and_pages() {
    let server = Server::start();
    let sm = server.client("eu-west-1");
    let prefix = unique("team");
    for i in 0..5 {
        sm.create_secret()
            .name(format!("{prefix}/app{i}"))
            .secret_string("x")
            .description(if i % 2 == 0 {
                "even secret"
            } else {
                "odd secret"
            })
            .tags(
                Tag::builder()
                    .key("env")
                    .value(if i < 3 { "prod" } else { "dev" })
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    sm.create_secret()
        .name(unique("other"))
        .secret_string("x")
        .send()
        .await
        .unwrap();

    let by_name = Filter::builder()
        .key(FilterNameStringType::Name)
        .values(&prefix)
        .build();
    let mut pages = sm
        .list_secrets()
        .filters(by_name.clone())
        .max_results(2)
        .into_paginator()
        .send();
    let mut names = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        page_count += 1;
        names.extend(
            page.unwrap()
                .secret_list()
                .iter()
                .map(|s| s.name().unwrap().to_string()),
        );
    }
    assert_eq!(page_count, 3);
    assert_eq!(
        names,
        (0..5)
            .map(|i| format!("{prefix}/app{i}"))
            .collect::<Vec<_>>()
    );

    let prod_even = sm
        .list_secrets()
        .filters(by_name.clone())
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagValue)
                .values("prod")
                .build(),
        )
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Description)
                .values("even")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got: Vec<_> = prod_even
        .secret_list()
        .iter()
        .map(|s| s.name().unwrap())
        .collect();
    assert_eq!(got, [format!("{prefix}/app0"), format!("{prefix}/app2")]);

    let not_prod = sm
        .list_secrets()
        .filters(by_name)
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagValue)
                .values("!prod")
                .build(),
        )
        .sort_order(aws_sdk_secretsmanager::types::SortOrderType::Desc)
        .send()
        .await
        .unwrap();
    let got: Vec<_> = not_prod
        .secret_list()
        .iter()
        .map(|s| s.name().unwrap())
        .collect();
    assert_eq!(got, [format!("{prefix}/app4"), format!("{prefix}/app3")]);
}

#[tokio::test]
async fn deleted_secret_is_hidden_refused_and_restorable() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("gone");
    sm.create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let deleted = sm
        .delete_secret()
        .secret_id(&name)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let when = deleted.deletion_date().unwrap().secs();
    let in_7_days = chrono::Utc::now().timestamp() + 7 * 86400;
    assert!(
        (when - in_7_days).abs() < 60,
        "deletion date is 7 days ahead"
    );
    let (code, message) = error_of(
        sm.get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidRequestException");
    assert_eq!(
        message,
        "You can't perform this operation on the secret because it was marked for deletion."
    );
    let listed = sm.list_secrets().send().await.unwrap();
    assert!(
        listed
            .secret_list()
            .iter()
            .all(|s| s.name() != Some(name.as_str()))
    );
    let planned = sm
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .unwrap();
    assert!(
        planned
            .secret_list()
            .iter()
            .any(|s| s.name() == Some(name.as_str()) && s.deleted_date().is_some())
    );
    assert!(
        sm.describe_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap()
            .deleted_date()
            .is_some()
    );
    sm.restore_secret().secret_id(&name).send().await.unwrap();
    let got = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(got.secret_string(), Some("x"));

    sm.delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(
        sm.describe_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ResourceNotFoundException");
    // The name is free again at once, with a new ARN suffix.
    sm.create_secret()
        .name(&name)
        .secret_string("y")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn tags_merge_and_untag_leaves_an_empty_list() {
    let server = Server::start();
    let sm = server.client("us-east-2");
    let name = unique("tagged");
    sm.create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    sm.tag_resource()
        .secret_id(&name)
        .tags(Tag::builder().key("a").value("1").build())
        .tags(Tag::builder().key("b").value("2").build())
        .send()
        .await
        .unwrap();
    sm.tag_resource()
        .secret_id(&name)
        .tags(Tag::builder().key("a").value("3").build())
        .send()
        .await
        .unwrap();
    let tags = sm
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    let pairs: Vec<_> = tags
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(pairs, [("a", "3"), ("b", "2")]);
    sm.untag_resource()
        .secret_id(&name)
        .tag_keys("a")
        .tag_keys("b")
        .tag_keys("zzz")
        .send()
        .await
        .unwrap();
    let described = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert_eq!(described.tags(), &[] as &[Tag]);
    assert!(
        described.tags.is_some(),
        "Tags: [] stays after removing every tag"
    );
}

#[tokio::test]
async fn resource_policies_are_stored_and_public_ones_blocked() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("policy");
    sm.create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let none = sm
        .get_resource_policy()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert!(none.resource_policy().is_none());
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    let (code, message) = error_of(
        sm.put_resource_policy()
            .secret_id(&name)
            .resource_policy(public)
            .block_public_policy(true)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "PublicPolicyException");
    assert_eq!(
        message,
        "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret."
    );
    sm.put_resource_policy()
        .secret_id(&name)
        .resource_policy(public)
        .send()
        .await
        .unwrap();
    let got = sm
        .get_resource_policy()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(got.resource_policy().unwrap()).unwrap();
    assert_eq!(
        stored,
        serde_json::from_str::<serde_json::Value>(public).unwrap()
    );
    let validated = sm
        .validate_resource_policy()
        .resource_policy(public)
        .send()
        .await
        .unwrap();
    assert!(!validated.policy_validation_passed());
    assert!(!validated.validation_errors().is_empty());
    sm.delete_resource_policy()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert!(
        sm.get_resource_policy()
            .secret_id(&name)
            .send()
            .await
            .unwrap()
            .resource_policy()
            .is_none()
    );
}

#[tokio::test]
async fn random_passwords_follow_the_rules() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let pw = sm
        .get_random_password()
        .password_length(120)
        .exclude_characters("xyzDje@?!.")
        .send()
        .await
        .unwrap();
    let pw = pw.random_password().unwrap();
    assert_eq!(pw.chars().count(), 120);
    assert!(!pw.chars().any(|c| "xyzDje@?!.".contains(c)));
    let default = sm.get_random_password().send().await.unwrap();
    assert_eq!(default.random_password().unwrap().len(), 32);
}

#[tokio::test]
async fn batch_get_reports_missing_secrets_as_errors() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("batch");
    sm.create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let out = sm
        .batch_get_secret_value()
        .secret_id_list(&name)
        .secret_id_list("does-not-exist")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_values().len(), 1);
    assert_eq!(out.secret_values()[0].secret_string(), Some("x"));
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].secret_id(), Some("does-not-exist"));
    assert_eq!(
        out.errors()[0].error_code(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn update_secret_changes_description_without_a_new_version() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("upd");
    sm.create_secret()
        .name(&name)
        .secret_string("x")
        .description("old")
        .send()
        .await
        .unwrap();
    let out = sm
        .update_secret()
        .secret_id(&name)
        .description("new")
        .send()
        .await
        .unwrap();
    assert!(out.version_id().is_none());
    let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert_eq!(d.description(), Some("new"));
    assert_eq!(d.version_ids_to_stages().unwrap().len(), 1);
    let out = sm
        .update_secret()
        .secret_id(&name)
        .secret_string("y")
        .send()
        .await
        .unwrap();
    assert!(out.version_id().is_some());
    assert_eq!(
        sm.get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("y")
    );
}
