//! Every failure: its AWS error code and its exact message.

use chrono::TimeDelta;
use coffer_sigv4::{SigV4Error, parse};
use http::{HeaderMap, HeaderValue};

use crate::common::{ACCESS_KEY_ID, SECRET, SESSION_TOKEN, Signer, at, expect_mismatch, rust_sdk};

const BODY: &[u8] = br#"{"SecretId":"MySecret"}"#;

/// Headers with an `Authorization` value and an `X-Amz-Date`.
fn headers(authorization: Option<&str>, amz_date: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost:4566"));
    if let Some(value) = authorization {
        headers.insert(
            "authorization",
            HeaderValue::from_str(value).expect("value"),
        );
    }
    if let Some(value) = amz_date {
        headers.insert("x-amz-date", HeaderValue::from_str(value).expect("value"));
    }
    headers
}

const GOOD: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b";

fn incomplete(authorization: Option<&str>, amz_date: Option<&str>) -> String {
    match parse(&headers(authorization, amz_date)) {
        Err(error @ SigV4Error::IncompleteSignature { .. }) => {
            assert_eq!(error.code(), "IncompleteSignatureException");
            assert_eq!(error.to_string(), error.message());
            error.message()
        }
        other => panic!("expected IncompleteSignature, got {other:?}"),
    }
}

#[test]
fn well_formed_header_parses_into_its_parts() {
    let auth = parse(&headers(Some(GOOD), Some("20251106T132608Z"))).expect("parses");
    assert_eq!(auth.access_key_id, ACCESS_KEY_ID);
    assert_eq!(auth.scope_date, "20251106");
    assert_eq!(auth.region, "us-east-1");
    assert_eq!(auth.service, "secretsmanager");
    assert_eq!(
        auth.signed_headers,
        ["content-type", "host", "x-amz-date", "x-amz-target"]
    );
    assert!(auth.is_signed("x-amz-target"));
    assert!(!auth.is_signed("x-amz-security-token"));
    assert_eq!(auth.request_time, at("2025-11-06T13:26:08Z"));
    assert_eq!(auth.amz_date, "20251106T132608Z");
}

#[test]
fn parameters_without_spaces_and_with_upper_case_header_names_parse() {
    let auth = parse(&headers(
        Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request,SignedHeaders=Host;X-Amz-Date,Signature=00"),
        Some("20251106T132608Z"),
    ))
    .expect("parses");
    assert_eq!(auth.signed_headers, ["host", "x-amz-date"]);
}

#[test]
fn missing_authorization_header_is_missing_authentication_token() {
    let error = parse(&headers(None, Some("20251106T132608Z"))).unwrap_err();
    assert!(matches!(error, SigV4Error::MissingAuthenticationToken));
    assert_eq!(error.code(), "MissingAuthenticationTokenException");
    assert_eq!(error.message(), "Missing Authentication Token");
}

#[test]
fn blank_authorization_header_is_missing_authentication_token() {
    let error = parse(&headers(Some("   "), Some("20251106T132608Z"))).unwrap_err();
    assert_eq!(error.code(), "MissingAuthenticationTokenException");
}

#[test]
fn sigv2_style_authorization_lists_every_missing_parameter_like_aws() {
    assert_eq!(
        incomplete(
            Some("AWS AKIDEXAMPLE:c2lnbmF0dXJl"),
            Some("20251106T132608Z")
        ),
        "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=AWS AKIDEXAMPLE:c2lnbmF0dXJl"
    );
}

#[test]
fn bearer_token_without_any_date_lists_the_date_too() {
    assert_eq!(
        incomplete(Some("Bearer eyJhbGciOiJIUzI1NiJ9"), None),
        "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=Bearer eyJhbGciOiJIUzI1NiJ9"
    );
}

#[test]
fn missing_signature_parameter_is_named() {
    let authorization = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date";
    assert_eq!(
        incomplete(Some(authorization), Some("20251106T132608Z")),
        format!(
            "Authorization header requires 'Signature' parameter. Authorization={authorization}"
        )
    );
}

#[test]
fn missing_date_headers_are_reported() {
    assert_eq!(
        incomplete(Some(GOOD), None),
        format!(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={GOOD}"
        )
    );
}

#[test]
fn parameter_without_equal_sign_is_reported_like_aws() {
    // A stray space after `Credential=` (a pasted key with a leading blank).
    let authorization = "AWS4-HMAC-SHA256 Credential= AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
    assert_eq!(
        incomplete(Some(authorization), Some("20251106T132608Z")),
        format!(
            "'AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request' not a valid key=value pair (missing equal-sign) in Authorization header: '{authorization}'."
        )
    );
}

#[test]
fn credential_without_five_elements_is_incomplete_signature() {
    // Secret and access key id swapped: the secret contains slashes.
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={SECRET}/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
    );
    assert_eq!(
        incomplete(Some(&authorization), Some("20251106T132608Z")),
        format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{SECRET}/20251106/us-east-1/secretsmanager/aws4_request'"
        )
    );
    assert_eq!(
        incomplete(
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager, SignedHeaders=host, Signature=00"
            ),
            Some("20251106T132608Z")
        ),
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKIDEXAMPLE/20251106/us-east-1/secretsmanager'"
    );
}

#[test]
fn credential_with_wrong_terminator_is_invalid_signature() {
    let error = parse(&headers(
        Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_requests, SignedHeaders=host, Signature=00"),
        Some("20251106T132608Z"),
    ))
    .unwrap_err();
    assert_eq!(error.code(), "InvalidSignatureException");
    assert_eq!(
        error.message(),
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_requests'. "
    );
}

#[test]
fn host_not_signed_is_incomplete_signature() {
    assert_eq!(
        incomplete(
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;x-amz-date, Signature=00"
            ),
            Some("20251106T132608Z")
        ),
        "'Host' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn malformed_x_amz_date_is_incomplete_signature() {
    assert_eq!(
        incomplete(Some(GOOD), Some("2025-11-06T13:26:08Z")),
        "Date must be in ISO-8601 'basic format'. Got '2025-11-06T13:26:08Z'. See http://en.wikipedia.org/wiki/ISO_8601"
    );
}

#[test]
fn x_amz_date_wins_over_date_header() {
    let mut with_both = headers(Some(GOOD), Some("20251106T132608Z"));
    with_both.insert(
        "date",
        HeaderValue::from_static("Wed, 05 Nov 2025 10:00:00 GMT"),
    );
    let auth = parse(&with_both).expect("parses");
    assert_eq!(auth.amz_date, "20251106T132608Z");

    let mut date_only = headers(Some(GOOD), None);
    date_only.insert(
        "date",
        HeaderValue::from_static("Thu, 06 Nov 2025 13:26:08 GMT"),
    );
    let auth = parse(&date_only).expect("parses");
    assert_eq!(auth.amz_date, "20251106T132608Z");
    assert_eq!(auth.request_time, at("2025-11-06T13:26:08Z"));
}

#[test]
fn expired_request_gets_aws_expired_message() {
    // The exact case recorded from Secrets Manager (spec §1.6, [F]).
    let signed_at = at("2025-11-05T22:08:58Z");
    let request = rust_sdk(signed_at, BODY).sign();
    let error = request
        .verify(SECRET, at("2025-11-06T13:26:08Z"))
        .unwrap_err();
    assert!(matches!(error, SigV4Error::SignatureExpired { .. }));
    assert_eq!(error.code(), "InvalidSignatureException");
    assert_eq!(
        error.message(),
        "Signature expired: 20251105T220858Z is now earlier than 20251106T132108Z (20251106T132608Z - 5 min.)"
    );
}

#[test]
fn request_six_minutes_old_is_expired() {
    let signed_at = at("2025-11-06T13:20:08Z");
    let error = rust_sdk(signed_at, BODY)
        .sign()
        .verify(SECRET, signed_at + TimeDelta::minutes(6))
        .unwrap_err();
    assert_eq!(
        error.message(),
        "Signature expired: 20251106T132008Z is now earlier than 20251106T132108Z (20251106T132608Z - 5 min.)"
    );
}

#[test]
fn request_six_minutes_ahead_is_not_yet_current() {
    let signed_at = at("2025-11-06T13:32:08Z");
    let error = rust_sdk(signed_at, BODY)
        .sign()
        .verify(SECRET, signed_at - TimeDelta::minutes(6))
        .unwrap_err();
    assert!(matches!(error, SigV4Error::SignatureNotYetCurrent { .. }));
    assert_eq!(error.code(), "InvalidSignatureException");
    assert_eq!(
        error.message(),
        "Signature not yet current: 20251106T133208Z is still later than 20251106T133108Z (20251106T132608Z + 5 min.)"
    );
}

#[test]
fn clock_skew_of_exactly_five_minutes_is_accepted_either_way() {
    let signed_at = at("2025-11-06T13:26:08Z");
    let request = rust_sdk(signed_at, BODY).sign();
    let five = TimeDelta::minutes(5);
    request.verify(SECRET, signed_at + five).expect("5 min old");
    request
        .verify(SECRET, signed_at - five)
        .expect("5 min ahead");
    request
        .verify(SECRET, signed_at + five + TimeDelta::milliseconds(999))
        .expect("sub-second part of now is ignored");
    assert!(matches!(
        request.verify(SECRET, signed_at + five + TimeDelta::seconds(1)),
        Err(SigV4Error::SignatureExpired { .. })
    ));
    assert!(matches!(
        request.verify(SECRET, signed_at - five - TimeDelta::seconds(1)),
        Err(SigV4Error::SignatureNotYetCurrent { .. })
    ));
}

#[test]
fn scope_date_different_from_request_date_is_rejected() {
    // Signed one second before midnight with tomorrow's scope: AWS rejects it
    // even though the clocks agree.
    let signed_at = at("2025-11-06T23:59:59Z");
    let mut request = rust_sdk(signed_at, BODY).sign();
    let tampered = request
        .header("authorization")
        .replace("/20251106/", "/20251107/");
    request.set_header("authorization", &tampered);
    let error = request.verify(SECRET, signed_at).unwrap_err();
    assert!(matches!(error, SigV4Error::ScopeDateMismatch { .. }));
    assert_eq!(error.code(), "InvalidSignatureException");
    assert_eq!(
        error.message(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20251107' != '20251106', from '20251106T235959Z'."
    );
}

#[test]
fn skew_is_checked_before_the_scope_date_and_the_signature() {
    let signed_at = at("2025-11-06T13:26:08Z");
    let mut request = rust_sdk(signed_at, BODY).sign();
    let tampered = request
        .header("authorization")
        .replace("/20251106/", "/20251107/");
    request.set_header("authorization", &tampered);
    let error = request
        .verify("wrong secret", signed_at + TimeDelta::hours(1))
        .unwrap_err();
    assert!(matches!(error, SigV4Error::SignatureExpired { .. }));
}

#[test]
fn wrong_service_helper_uses_aws_text() {
    let error = SigV4Error::wrong_service("secretsmanager");
    assert_eq!(error.code(), "InvalidSignatureException");
    assert_eq!(
        error.message(),
        "Credential should be scoped to correct service: 'secretsmanager'. "
    );
}

#[test]
fn invalid_region_helper_uses_aws_text() {
    let error = SigV4Error::invalid_region("mars-north-1");
    assert_eq!(error.code(), "InvalidSignatureException");
    assert_eq!(
        error.message(),
        "Credential should be scoped to a valid region, not 'mars-north-1'. "
    );
}

#[test]
fn signature_mismatch_message_carries_canonical_request_and_string_to_sign_like_aws() {
    let time = at("2025-11-06T13:26:08Z");
    let request = rust_sdk(time, BODY).sign();
    let error = expect_mismatch(request.verify("not the secret", time));
    assert_eq!(error.code(), "InvalidSignatureException");
    let message = error.message();
    let expected_prefix = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'POST\n/\n\ncontent-length:23\ncontent-type:application/x-amz-json-1.1\nhost:localhost:4566\nx-amz-date:20251106T132608Z\nx-amz-target:secretsmanager.GetSecretValue\nx-amz-user-agent:aws-sdk-rust/1.3.9 api/secretsmanager/1.125.0 os/linux lang/rust/1.95.0\n\ncontent-length;content-type;host;x-amz-date;x-amz-target;x-amz-user-agent\n";
    assert!(
        message.starts_with(expected_prefix),
        "unexpected message:\n{message}"
    );
    let body_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(BODY));
    assert!(message.contains(&format!("\n{body_hash}'\n\nThe String-to-Sign")));
    assert!(message.contains(
        "'\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20251106T132608Z\n20251106/us-east-1/secretsmanager/aws4_request\n"
    ));
    assert!(message.ends_with("'\n"));
    // Display (for logs) is only the first sentence block.
    assert_eq!(
        error.to_string(),
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    );
}

#[test]
fn logged_forms_of_a_mismatch_leave_out_the_session_token() {
    let time = at("2025-11-06T13:26:08Z");
    let request = Signer {
        session_token: Some(SESSION_TOKEN),
        ..rust_sdk(time, BODY)
    }
    .sign();
    let error = expect_mismatch(request.verify("not the secret", time));
    assert!(
        error.message().contains(SESSION_TOKEN),
        "AWS echoes it to the client"
    );
    assert!(!error.to_string().contains(SESSION_TOKEN));
    assert!(!format!("{error:?}").contains(SESSION_TOKEN));
}

#[test]
fn debug_output_never_shows_the_secret_derived_key_or_signature() {
    use aws_sigv4::sign::v4::generate_signing_key;
    use coffer_sigv4::Verifier;
    use std::time::SystemTime;

    let time = at("2025-11-06T13:26:08Z");
    let request = rust_sdk(time, BODY).sign();
    let verifier = Verifier::new();
    request
        .verify_with(&verifier, SECRET, time)
        .expect("verifies");
    let wrong = expect_mismatch(request.verify_with(&verifier, "not the secret", time));
    let auth = parse(&request.headers).expect("parses");

    let signing_key = hex::encode(generate_signing_key(
        SECRET,
        SystemTime::from(time),
        "us-east-1",
        "secretsmanager",
    ));
    let authorization = request.header("authorization");
    let signature = &authorization[authorization.find("Signature=").expect("Signature") + 10..];
    for shown in [
        format!("{verifier:?}"),
        format!("{auth:?}"),
        format!("{wrong:?}"),
        wrong.to_string(),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(&signing_key), "{shown}");
        assert!(!shown.contains(signature), "{shown}");
    }
}
