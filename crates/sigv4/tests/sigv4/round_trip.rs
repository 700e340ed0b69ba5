//! Requests signed by aws-sigv4 — the signer aws-sdk-rust uses — in the header
//! shapes of the real SDKs, verified; then tampered with.

use http::header::DATE;
use http::{HeaderValue, Uri};

use crate::common::{
    SECRET, SESSION_TOKEN, Signer, WireRequest, at, expect_mismatch, rust_sdk, signed_headers,
};

const GET_SECRET_VALUE: &[u8] = br#"{"SecretId":"MySecret"}"#;
/// botocore's json.dumps puts a space after `:` and `,`.
const BOTO3_BODY: &[u8] = br#"{"SecretId": "MySecret", "VersionStage": "AWSCURRENT"}"#;

fn boto3(time: chrono::DateTime<chrono::Utc>) -> WireRequest {
    // botocore signs what it has when the signer runs; Content-Length,
    // Accept-Encoding and amz-sdk-* come later and travel unsigned.
    let signer = Signer {
        headers: vec![
            ("x-amz-target", "secretsmanager.GetSecretValue".to_owned()),
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            (
                "user-agent",
                "Boto3/1.40.0 md/Botocore#1.40.0 ua/2.1 os/linux lang/python#3.12.3".to_owned(),
            ),
        ],
        ..rust_sdk(time, BOTO3_BODY)
    };
    signer
        .sign()
        .with_header("content-length", &BOTO3_BODY.len().to_string())
        .with_header("accept-encoding", "identity")
        .with_header(
            "amz-sdk-invocation-id",
            "8c2b3ad4-3f1a-4f5e-9a3c-0c7d1f0e2b6a",
        )
        .with_header("amz-sdk-request", "attempt=1")
}

fn js_sdk(time: chrono::DateTime<chrono::Utc>) -> WireRequest {
    let body = GET_SECRET_VALUE;
    let signer = Signer {
        headers: vec![
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("x-amz-target", "secretsmanager.GetSecretValue".to_owned()),
            ("content-length", body.len().to_string()),
            (
                "x-amz-user-agent",
                "aws-sdk-js/3.600.0 ua/2.1 os/linux#6.1 lang/js md/nodejs#20.11.1 api/secrets-manager#3.600.0".to_owned(),
            ),
            ("amz-sdk-invocation-id", "6f1c0d2e-1b4a-4c1e-8f59-2f0f4c0a9d11".to_owned()),
            ("amz-sdk-request", "attempt=1; max=3".to_owned()),
            ("user-agent", "aws-sdk-js/3.600.0".to_owned()),
        ],
        content_sha256_header: true,
        ..rust_sdk(time, body)
    };
    signer.sign()
}

#[test]
fn rust_sdk_shaped_request_verifies() {
    let time = at("2025-11-06T13:26:08Z");
    let request = rust_sdk(time, GET_SECRET_VALUE).sign();
    assert_eq!(
        signed_headers(&request),
        "content-length;content-type;host;x-amz-date;x-amz-target;x-amz-user-agent"
    );
    request.verify(SECRET, time).expect("verifies");
}

#[test]
fn boto3_shaped_request_with_spaced_json_body_verifies() {
    let time = at("2025-11-06T13:26:08Z");
    let request = boto3(time);
    assert_eq!(
        signed_headers(&request),
        "content-type;host;x-amz-date;x-amz-target"
    );
    request.verify(SECRET, time).expect("verifies");
}

#[test]
fn boto3_body_is_hashed_raw_so_reserializing_it_breaks_the_signature() {
    let time = at("2025-11-06T13:26:08Z");
    let mut request = boto3(time);
    request.body = br#"{"SecretId":"MySecret","VersionStage":"AWSCURRENT"}"#.to_vec();
    expect_mismatch(request.verify(SECRET, time));
}

#[test]
fn js_sdk_shaped_request_with_content_sha256_verifies() {
    let time = at("2025-11-06T13:26:08Z");
    let request = js_sdk(time);
    assert_eq!(
        signed_headers(&request),
        "amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-target;x-amz-user-agent"
    );
    request.verify(SECRET, time).expect("verifies");
}

#[test]
fn content_sha256_header_that_lies_about_the_body_is_a_mismatch() {
    // The header and the signature still agree with each other, only the body
    // changed: trusting the header would let the new body through.
    let time = at("2025-11-06T13:26:08Z");
    let mut request = js_sdk(time);
    request.body = br#"{"SecretId":"Other!!!"}"#.to_vec();
    expect_mismatch(request.verify(SECRET, time));
}

#[test]
fn unsigned_payload_marker_is_a_mismatch_outside_s3() {
    // AWS honours UNSIGNED-PAYLOAD for S3 only; a Secrets Manager body must be signed.
    let time = at("2025-11-06T13:26:08Z");
    let request = Signer {
        content_sha256_header: true,
        unsigned_payload: true,
        ..rust_sdk(time, GET_SECRET_VALUE)
    }
    .sign();
    assert_eq!(request.header("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
    let error = expect_mismatch(request.verify(SECRET, time));
    // The canonical request the server computed ends with the body's hash.
    use sha2::Digest;
    let body_hash = hex::encode(sha2::Sha256::digest(GET_SECRET_VALUE));
    assert!(
        error.message().contains(&format!("\n{body_hash}'")),
        "{}",
        error.message()
    );
}

#[test]
fn unsigned_payload_marker_is_accepted_for_s3() {
    let time = at("2025-11-06T13:26:08Z");
    let request = Signer {
        content_sha256_header: true,
        unsigned_payload: true,
        service: "s3",
        ..rust_sdk(time, GET_SECRET_VALUE)
    }
    .sign();
    request.verify(SECRET, time).expect("verifies");
}

#[test]
fn session_token_signed_by_the_sdk_is_part_of_the_canonical_headers() {
    let time = at("2025-11-06T13:26:08Z");
    let request = Signer {
        session_token: Some(SESSION_TOKEN),
        ..rust_sdk(time, GET_SECRET_VALUE)
    }
    .sign();
    assert!(signed_headers(&request).contains("x-amz-security-token"));
    request.verify(SECRET, time).expect("verifies");

    let mut swapped = request.clone();
    swapped.set_header("x-amz-security-token", "another-token");
    expect_mismatch(swapped.verify(SECRET, time));
}

#[test]
fn unsigned_extra_headers_do_not_affect_verification() {
    let time = at("2025-11-06T13:26:08Z");
    rust_sdk(time, GET_SECRET_VALUE)
        .sign()
        .with_header(
            "amz-sdk-invocation-id",
            "a6d5c3c2-0d2b-4d8a-9d8e-1b0b2f7c8e11",
        )
        .with_header("x-forwarded-for", "203.0.113.7")
        .with_header("x-amz-security-token", "unsigned-token-is-not-our-business")
        .verify(SECRET, time)
        .expect("verifies");
}

#[test]
fn flipped_body_byte_is_a_signature_mismatch() {
    let time = at("2025-11-06T13:26:08Z");
    let mut request = rust_sdk(time, GET_SECRET_VALUE).sign();
    request.body[3] ^= 0x01;
    expect_mismatch(request.verify(SECRET, time));
}

#[test]
fn changed_signed_header_value_is_a_signature_mismatch() {
    let time = at("2025-11-06T13:26:08Z");
    let mut request = rust_sdk(time, GET_SECRET_VALUE).sign();
    request.set_header("x-amz-target", "secretsmanager.DeleteSecret");
    expect_mismatch(request.verify(SECRET, time));
}

#[test]
fn removed_signed_header_is_a_signature_mismatch() {
    let time = at("2025-11-06T13:26:08Z");
    let mut request = rust_sdk(time, GET_SECRET_VALUE).sign();
    request.headers.remove("x-amz-user-agent");
    expect_mismatch(request.verify(SECRET, time));
}

#[test]
fn changed_host_is_a_signature_mismatch() {
    let time = at("2025-11-06T13:26:08Z");
    let mut request = rust_sdk(time, GET_SECRET_VALUE).sign();
    assert_eq!(request.header("host"), "localhost:4566");
    request.set_header("host", "localhost");
    expect_mismatch(request.verify(SECRET, time));
}

#[test]
fn wrong_secret_is_a_signature_mismatch() {
    let time = at("2025-11-06T13:26:08Z");
    let request = rust_sdk(time, GET_SECRET_VALUE).sign();
    expect_mismatch(request.verify("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ", time));
}

#[test]
fn upper_case_signature_hex_is_a_signature_mismatch() {
    // AWS compares the hex strings; SigV4 signatures are lower-case hex.
    let time = at("2025-11-06T13:26:08Z");
    let mut request = rust_sdk(time, GET_SECRET_VALUE).sign();
    let authorization = request.header("authorization").to_owned();
    let (head, signature) = authorization.split_once("Signature=").expect("Signature");
    request.set_header(
        "authorization",
        &format!("{head}Signature={}", signature.to_ascii_uppercase()),
    );
    expect_mismatch(request.verify(SECRET, time));
}

#[test]
fn empty_body_verifies() {
    let time = at("2025-11-06T13:26:08Z");
    rust_sdk(time, b"")
        .sign()
        .verify(SECRET, time)
        .expect("verifies");
}

#[test]
fn non_default_region_and_custom_endpoint_verify() {
    let time = at("2025-11-06T13:26:08Z");
    let request = Signer {
        url: "https://coffer.internal.example:8443/",
        region: "eu-central-1",
        ..rust_sdk(time, GET_SECRET_VALUE)
    }
    .sign();
    assert_eq!(request.header("host"), "coffer.internal.example:8443");
    request.verify(SECRET, time).expect("verifies");
}

#[test]
fn http2_request_without_host_header_uses_the_uri_authority() {
    // HTTP/2 carries the host as :authority; hyper exposes it in the URI and
    // adds no Host header.
    let time = at("2025-11-06T13:26:08Z");
    let mut request = rust_sdk(time, GET_SECRET_VALUE).sign();
    request.headers.remove("host");
    request.uri = Uri::from_static("http://localhost:4566/");
    request.verify(SECRET, time).expect("verifies");
}

#[test]
fn query_string_request_verifies() {
    let time = at("2025-11-06T13:26:08Z");
    let request = Signer {
        method: "GET",
        url: "http://localhost:4566/some/path?b=2&a=x%20y&a=1&empty=",
        headers: vec![],
        ..rust_sdk(time, b"")
    }
    .sign();
    request.verify(SECRET, time).expect("verifies");
}

#[test]
fn date_header_fallback_verifies_without_x_amz_date() {
    // aws-sigv4 always dates with X-Amz-Date: have it leave that header out of
    // SignedHeaders, then send the same instant as an HTTP Date header. The
    // string to sign still carries 20150830T123600Z, as AWS expects.
    let time = at("2015-08-30T12:36:00Z");
    let mut request = Signer {
        unsigned_headers: vec!["x-amz-date"],
        ..rust_sdk(time, GET_SECRET_VALUE)
    }
    .sign();
    assert!(!signed_headers(&request).contains("x-amz-date"));
    request.headers.remove("x-amz-date");
    request.headers.insert(
        DATE,
        HeaderValue::from_static("Sun, 30 Aug 2015 12:36:00 GMT"),
    );
    request.verify(SECRET, time).expect("verifies");

    request.headers.insert(
        DATE,
        HeaderValue::from_static("Sun, 30 Aug 2015 12:36:01 GMT"),
    );
    expect_mismatch(request.verify(SECRET, time));
}
