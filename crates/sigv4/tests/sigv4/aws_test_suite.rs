//! The official AWS SigV4 test suite (`tests/vectors/`, see its README), run
//! against the verifier: each signed request must verify with the suite's
//! credentials and time, and with a wrong signature the canonical request and
//! string to sign the verifier reports must be the suite's, byte for byte.

use chrono::{DateTime, Utc};
use coffer_sigv4::SigV4Error;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::fs;
use std::path::PathBuf;

use crate::common::{WireRequest, expect_mismatch};

struct Vector {
    request: WireRequest,
    secret: String,
    now: DateTime<Utc>,
    signature: String,
    canonical_request: String,
    string_to_sign: String,
}

fn read(name: &str, file: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "vectors",
        "v4",
        name,
        file,
    ]
    .iter()
    .collect();
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn load(name: &str) -> Vector {
    let context: serde_json::Value =
        serde_json::from_str(&read(name, "context.json")).expect("context.json is JSON");
    Vector {
        request: parse_http_request(&read(name, "header-signed-request.txt")),
        secret: context["credentials"]["secret_access_key"]
            .as_str()
            .expect("secret_access_key")
            .to_owned(),
        now: crate::common::at(context["timestamp"].as_str().expect("timestamp")),
        signature: read(name, "header-signature.txt").trim().to_owned(),
        canonical_request: read(name, "header-canonical-request.txt"),
        string_to_sign: read(name, "header-string-to-sign.txt"),
    }
}

/// A minimal HTTP/1.1 request parser for the suite's text files, doing what a
/// server's HTTP stack does before we see the request: header names folded to
/// lower case, optional whitespace around values stripped, obs-fold
/// continuation lines joined with a space, and bytes outside ASCII in the
/// request target percent-encoded (as any client puts them on the wire).
fn parse_http_request(text: &str) -> WireRequest {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    let (method, rest) = request_line.split_once(' ').expect("method");
    let (target, _version) = rest.rsplit_once(' ').expect("HTTP version");

    let mut encoded_target = String::new();
    for byte in target.bytes() {
        if byte.is_ascii() {
            encoded_target.push(char::from(byte));
        } else {
            encoded_target.push_str(&format!("%{byte:02X}"));
        }
    }

    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let (_, value) = fields.last_mut().expect("continuation after a field");
            value.push(' ');
            value.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("name:value");
            fields.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }

    WireRequest {
        method: Method::from_bytes(method.as_bytes()).expect("method"),
        uri: encoded_target.parse::<Uri>().expect("request target"),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// Replaces the `Signature=` value with 64 zeros.
fn with_wrong_signature(request: &WireRequest) -> WireRequest {
    let mut wrong = request.clone();
    let authorization = request.header("authorization");
    let start = authorization.find("Signature=").expect("Signature") + "Signature=".len();
    let tampered = format!("{}{}", &authorization[..start], "0".repeat(64));
    wrong.set_header("authorization", &tampered);
    wrong
}

fn run_vector(name: &str) {
    let vector = load(name);
    assert!(
        vector
            .request
            .header("authorization")
            .ends_with(&format!("Signature={}", vector.signature)),
        "{name}: fixture files disagree"
    );

    if let Err(error) = vector.request.verify(&vector.secret, vector.now) {
        panic!("{name}: expected to verify, got:\n{}", error.message());
    }

    let error =
        expect_mismatch(with_wrong_signature(&vector.request).verify(&vector.secret, vector.now));
    let SigV4Error::SignatureDoesNotMatch(details) = &error else {
        unreachable!("expect_mismatch returns only mismatches");
    };
    assert_eq!(
        details.canonical_request(),
        vector.canonical_request,
        "{name}: canonical request"
    );
    assert_eq!(
        details.string_to_sign(),
        vector.string_to_sign,
        "{name}: string to sign"
    );
}

macro_rules! aws_suite_vectors {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_vector($name);
            }
        )*
    };
}

aws_suite_vectors! {
    suite_get_vanilla_verifies => "get-vanilla",
    suite_post_vanilla_verifies => "post-vanilla",
    suite_post_x_www_form_urlencoded_body_verifies => "post-x-www-form-urlencoded",
    suite_post_x_www_form_urlencoded_with_parameters_verifies => "post-x-www-form-urlencoded-parameters",
    suite_header_value_trim_verifies => "get-header-value-trim",
    suite_duplicate_header_key_verifies => "get-header-key-duplicate",
    suite_multiline_header_value_verifies => "get-header-value-multiline",
    suite_header_value_order_is_kept => "get-header-value-order",
    suite_post_header_key_case_verifies => "post-header-key-case",
    suite_post_header_key_sort_verifies => "post-header-key-sort",
    suite_post_header_value_case_is_kept => "post-header-value-case",
    suite_session_token_signed_before_verifies => "post-sts-header-before",
    suite_session_token_added_after_signing_is_ignored => "post-sts-header-after",
    suite_get_with_session_token_verifies => "get-vanilla-with-session-token",
    suite_relative_path_is_normalized => "get-relative-normalized",
    suite_relative_relative_path_is_normalized => "get-relative-relative-normalized",
    suite_slash_dot_slash_is_normalized => "get-slash-dot-slash-normalized",
    suite_double_slash_is_normalized => "get-slash-normalized",
    suite_pointless_dot_is_normalized => "get-slash-pointless-dot-normalized",
    suite_repeated_slashes_are_normalized => "get-slashes-normalized",
    suite_unreserved_path_characters_verify => "get-unreserved",
    suite_query_verifies => "get-vanilla-query",
    suite_query_without_empty_key_verifies => "get-vanilla-empty-query-key",
    suite_query_is_sorted_after_encoding => "get-vanilla-query-order-encoded",
    suite_query_key_case_sorts_bytewise => "get-vanilla-query-order-key-case",
    suite_unreserved_query_characters_verify => "get-vanilla-query-unreserved",
    suite_utf8_query_verifies => "get-vanilla-utf8-query",
    suite_post_with_query_verifies => "post-vanilla-query",
    suite_post_with_query_value_verifies => "post-vanilla-empty-query-value",
}

/// These vectors were signed *without* path normalisation (what S3 clients
/// do). For any other service the verifier normalises, as AWS and every SDK
/// do, so they must fail — and differ from the suite only in the path line.
#[test]
fn unnormalized_path_vectors_fail_because_non_s3_paths_are_normalized() {
    for name in [
        "get-relative-unnormalized",
        "get-relative-relative-unnormalized",
        "get-slash-dot-slash-unnormalized",
        "get-slash-pointless-dot-unnormalized",
        "get-slash-unnormalized",
        "get-slashes-unnormalized",
    ] {
        let vector = load(name);
        let error = expect_mismatch(vector.request.verify(&vector.secret, vector.now));
        let SigV4Error::SignatureDoesNotMatch(details) = &error else {
            unreachable!("expect_mismatch returns only mismatches");
        };
        let ours: Vec<&str> = details.canonical_request().split('\n').collect();
        let suite: Vec<&str> = vector.canonical_request.split('\n').collect();
        assert_eq!(ours.len(), suite.len(), "{name}");
        for (line, (a, b)) in ours.iter().zip(&suite).enumerate() {
            if line == 1 {
                assert_ne!(a, b, "{name}: path line should differ");
            } else {
                assert_eq!(a, b, "{name}: line {line}");
            }
        }
    }
}
