//! AWS-shaped errors, as aws-sdk-rust parses them.

use crate::server::{Server, error_of, unique};

#[tokio::test]
async fn missing_secret_gets_resource_not_found() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let (code, message) = error_of(
        sm.get_secret_value()
            .secret_id("nope")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, "Secrets Manager can't find the specified secret.");
}

#[tokio::test]
async fn invalid_names_get_validation_exception() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    for bad in ["Inv Name", " Inv*Name? "] {
        let (code, message) = error_of(
            sm.create_secret()
                .name(bad)
                .secret_string("x")
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!(code, "ValidationException");
        assert_eq!(
            message,
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
        );
    }
}

#[tokio::test]
async fn existing_name_gets_resource_exists() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("dup");
    sm.create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let (code, message) = error_of(
        sm.create_secret()
            .name(&name)
            .secret_string("y")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ResourceExistsException");
    assert_eq!(
        message,
        format!("The operation failed because the secret {name} already exists.")
    );
}

#[tokio::test]
async fn constraint_violations_use_the_coral_format() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let (code, message) = error_of(
        sm.create_secret()
            .name("x".repeat(513))
            .secret_string("x")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ValidationException");
    assert!(
        message.starts_with("1 validation error detected: Value '"),
        "{message}"
    );
    assert!(message.ends_with(
        "at 'name' failed to satisfy constraint: Member must have length less than or equal to 512"
    ));
}

#[tokio::test]
async fn wrong_secret_key_gets_invalid_signature() {
    let server = Server::start();
    let sm = server.client_with(
        "us-east-1",
        &server.access_key,
        "not-the-secret-key-0000000000000000000000",
    );
    let err = sm.list_secrets().send().await.unwrap_err();
    let (code, message) = error_of(err);
    assert_eq!(code, "InvalidSignatureException");
    assert!(
        message.starts_with("The request signature we calculated does not match"),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_access_key_gets_unrecognized_client() {
    let server = Server::start();
    let sm = server.client_with(
        "us-east-1",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    );
    let (code, message) = error_of(sm.list_secrets().send().await.unwrap_err());
    assert_eq!(code, "UnrecognizedClientException");
    assert_eq!(
        message,
        "The security token included in the request is invalid."
    );
}

#[tokio::test]
async fn region_not_hosted_gets_invalid_signature() {
    let server = Server::start();
    let sm = server.client("ap-south-1");
    let (code, message) = error_of(sm.list_secrets().send().await.unwrap_err());
    assert_eq!(code, "InvalidSignatureException");
    assert_eq!(
        message,
        "Credential should be scoped to a valid region, not 'ap-south-1'. "
    );
}

/// AWS's value quota is 65,536 bytes: 50,000 two-byte characters (100,000 bytes) are refused,
/// though within the model's 65,536-character bound.
#[tokio::test]
async fn secret_values_are_limited_in_bytes_and_secrets_to_50_tags() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("bytes");
    let (code, message) = error_of(
        sm.create_secret()
            .name(&name)
            .secret_string("é".repeat(50_000))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to 65536"
    );
    let tag = |i: usize| {
        aws_sdk_secretsmanager::types::Tag::builder()
            .key(format!("k{i}"))
            .value("v")
            .build()
    };
    let mut create = sm.create_secret().name(&name).secret_string("v");
    for i in 0..50 {
        create = create.tags(tag(i));
    }
    create.send().await.unwrap();
    let (code, message) = error_of(
        sm.tag_resource()
            .secret_id(&name)
            .tags(tag(50))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterException");
    assert_eq!(
        message,
        "A secret can have at most 50 tags; this request would leave it with 51."
    );
}
