//! Rebuilding the canonical request and the string to sign from what the
//! client actually sent.
//!
//! Everything works on bytes: header values may carry obs-text and a query may
//! percent-decode to invalid UTF-8, and neither must be "repaired" before
//! hashing.

use http::{HeaderMap, Method, Uri};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use sha2::{Digest, Sha256};

use crate::authorization::{ALGORITHM, TERMINATOR};

/// The payload-hash marker S3-style clients send when they do not hash the
/// body (`x-amz-content-sha256: UNSIGNED-PAYLOAD`).
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// `x-amz-content-sha256` header name.
pub(crate) const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// The canonical request:
///
/// ```text
/// METHOD \n canonical URI \n canonical query \n
/// name:value \n ... (one line per signed header, sorted) \n
/// signed;header;names \n payload hash
/// ```
pub(crate) fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &[String],
    service: &str,
    payload_hash: &str,
) -> Vec<u8> {
    let mut names: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();

    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(uri.path(), service).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(uri.query().unwrap_or("")).as_bytes());
    out.push(b'\n');
    for name in &names {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        push_header_value(&mut out, name, uri, headers);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(names.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// `AWS4-HMAC-SHA256 \n amz-date \n scope \n hex(sha256(canonical request))`.
pub(crate) fn string_to_sign(
    amz_date: &str,
    scope_date: &str,
    region: &str,
    service: &str,
    canonical_request: &[u8],
) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope_date}/{region}/{service}/{TERMINATOR}\n{}",
        sha256_hex(canonical_request)
    )
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The payload hash line.
///
/// The body is always hashed here, raw: the `x-amz-content-sha256` header is
/// never trusted as the hash of the body. An honest client (JS SDK, Rust SDK
/// with the header enabled) sends exactly that hash, so nothing changes for it;
/// a header that lies about the body simply yields a signature mismatch,
/// instead of letting a body be swapped under an unchanged signature. The
/// literal `UNSIGNED-PAYLOAD` is honoured for `s3` only, as AWS does: it is an
/// S3 convenience for streaming uploads over TLS. For every other service
/// (Secrets Manager, KMS, IAM, STS) the body's own hash is what was to be
/// signed, so a request signed over `UNSIGNED-PAYLOAD` fails as a signature
/// mismatch (`InvalidSignatureException`), and a body cannot be swapped under a
/// signature that does not cover it.
pub(crate) fn payload_hash(headers: &HeaderMap, body: &[u8], service: &str) -> String {
    match headers.get(X_AMZ_CONTENT_SHA256) {
        Some(value) if service == "s3" && value.as_bytes() == UNSIGNED_PAYLOAD.as_bytes() => {
            UNSIGNED_PAYLOAD.to_owned()
        }
        _ => sha256_hex(body),
    }
}

/// All values of one signed header, each trimmed and with inner runs of spaces
/// collapsed, joined with `,` in the order they were received.
///
/// `host` falls back to the URI authority: HTTP/2 carries it as `:authority`,
/// which `http::HeaderMap` does not hold. A signed header that is absent
/// contributes an empty value, and so fails the comparison.
fn push_header_value(out: &mut Vec<u8>, name: &str, uri: &Uri, headers: &HeaderMap) {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        if name == "host"
            && let Some(authority) = uri.authority()
        {
            push_trimmed(out, authority.as_str().as_bytes());
        }
        return;
    }
    for (index, value) in values.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_trimmed(out, value.as_bytes());
    }
}

/// Trims spaces and collapses runs of spaces into one. Only U+0020: tabs and
/// other whitespace are kept, like the reference signer in aws-sdk-rust and the
/// AWS documentation ("convert sequential spaces to a single space"). botocore
/// collapses every kind of whitespace; no SDK sends a tab inside a value.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut started = false;
    for &byte in value {
        if byte == b' ' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(byte);
            started = true;
        }
    }
}

/// The canonical URI.
///
/// For every service but S3 — what all SDKs do when signing — the path is
/// normalised (RFC 3986 dot segments removed, empty segments dropped, a
/// trailing slash kept) and then URI-encoded *again*, byte by byte: the path on
/// the wire is already percent-encoded, so `%3D` becomes `%253D` ("double
/// encoding"). S3 is the exception on both counts: its path is used as sent.
/// Secrets Manager only ever sees `POST /`, so this matters for the AWS test
/// suite and for completeness, not for real clients.
pub(crate) fn canonical_uri(path: &str, service: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    if service == "s3" {
        return path.to_owned();
    }
    uri_encode(normalize_path(path).as_bytes(), true)
}

/// RFC 3986 §5.2.4 remove_dot_segments, plus dropping empty segments (`//`),
/// as the AWS SDKs do for non-S3 services.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    // "/a/b/", "/a/b/." and "/a/b/.." all keep a trailing slash.
    let ends_in_directory = ["/", "/.", "/.."].iter().any(|end| path.ends_with(end));
    if segments.is_empty() || ends_in_directory {
        normalized.push('/');
    }
    normalized
}

/// The canonical query string: every `key=value` pair percent-decoded, then
/// re-encoded with SigV4's strict rules (only unreserved characters stay),
/// sorted by encoded key and then encoded value, joined with `&`.
///
/// `+` decodes to a space (form encoding), as in aws-sdk-rust's reference
/// signer; a parameter without `=` gets an empty value.
pub(crate) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(key), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() * 2);
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Decodes `+` to a space and `%XX` escapes to their byte; a `%` not followed by
/// two hex digits is kept literally (the crate's decoder leaves it). `+` is
/// replaced before decoding, so `%2B` still decodes to `+`.
fn percent_decode(input: &str) -> Vec<u8> {
    let spaced = input.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

/// Everything but the unreserved characters of SigV4 and RFC 3986 (`A-Z a-z 0-9 - . _ ~`) is
/// encoded; `percent_encode` writes upper-case hex, as SigV4 requires. The Query protocol's
/// encoder (`coffer-api`) uses the same set.
pub const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// [`RESERVED`] less `/`, which stays as it is in paths.
const RESERVED_IN_PATH: &AsciiSet = &RESERVED.remove(b'/');

/// SigV4 URI encoding: unreserved characters stay, everything else becomes
/// `%XX`; `/` stays only in paths.
fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let set = if keep_slash {
        RESERVED_IN_PATH
    } else {
        RESERVED
    };
    percent_encode(input, set).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn json_api_path_is_a_single_slash() {
        assert_eq!(canonical_uri("/", "secretsmanager"), "/");
        assert_eq!(canonical_uri("", "secretsmanager"), "/");
    }

    #[test]
    fn paths_are_normalized_like_the_aws_sdks() {
        // Cases from aws-sdk-rust's uri_path_normalization tests and the
        // *-normalized vectors of the AWS suite.
        for (input, expected) in [
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/../foo", "/foo"),
            ("/foo/./bar/../baz", "/foo/baz"),
            ("/foo/bar/.", "/foo/bar/"),
            ("/foo/bar/..", "/foo/"),
            ("/foo/bar/", "/foo/bar/"),
            ("/foo/bar", "/foo/bar"),
            ("/.../..../", "/.../..../"),
        ] {
            assert_eq!(normalize_path(input), expected, "normalising {input:?}");
        }
    }

    #[test]
    fn non_s3_paths_are_double_encoded() {
        // Vectors `double-encode-path` and `double-url-encode` of the suite
        // shipped with aws-sigv4 (their requests carry no usable signature).
        assert_eq!(
            canonical_uri("/test/@connections/JBDvjfGEIAMCERw%3D", "service"),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        assert_eq!(
            canonical_uri(
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A892717189312%3Afunction%3Amy-rusty-fun/invocations",
                "lambda"
            ),
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-west-2%253A892717189312%253Afunction%253Amy-rusty-fun/invocations"
        );
        assert_eq!(
            canonical_uri(
                "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "service"
            ),
            "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn s3_paths_are_used_as_sent() {
        assert_eq!(canonical_uri("//a/./b%3D", "s3"), "//a/./b%3D");
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("Param1=value1"), "Param1=value1");
        assert_eq!(
            canonical_query("Param2=value2&Param1=value1"),
            "Param1=value1&Param2=value2"
        );
        assert_eq!(
            canonical_query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1"),
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
        );
        assert_eq!(canonical_query("b=2&a=2&a=1"), "a=1&a=2&b=2");
        assert_eq!(canonical_query("flag&x="), "flag=&x=");
        assert_eq!(
            canonical_query("a=b%20c&d=e+f&g=%2F%7e"),
            "a=b%20c&d=e%20f&g=%2F~"
        );
        assert_eq!(canonical_query("bad=%zz%4"), "bad=%25zz%254");
        assert_eq!(canonical_query("&&a=1&"), "a=1");
    }

    #[test]
    fn header_values_are_trimmed_and_spaces_collapsed() {
        let mut out = Vec::new();
        push_trimmed(&mut out, b"   a   b \t c  ");
        assert_eq!(out, b"a b \t c");
        let mut out = Vec::new();
        push_trimmed(&mut out, b"    ");
        assert!(out.is_empty());
    }

    #[test]
    fn repeated_headers_are_joined_with_commas_in_arrival_order() {
        let mut headers = HeaderMap::new();
        headers.append("my-header1", HeaderValue::from_static("value4"));
        headers.append("my-header1", HeaderValue::from_static(" value1 "));
        headers.append("my-header1", HeaderValue::from_static("value3"));
        let mut out = Vec::new();
        push_header_value(&mut out, "my-header1", &Uri::from_static("/"), &headers);
        assert_eq!(out, b"value4,value1,value3");
    }

    #[test]
    fn host_falls_back_to_the_uri_authority() {
        let uri = Uri::from_static("https://localhost:4566/");
        let mut out = Vec::new();
        push_header_value(&mut out, "host", &uri, &HeaderMap::new());
        assert_eq!(out, b"localhost:4566");
    }

    #[test]
    fn payload_hash_ignores_a_claimed_hash_and_honours_unsigned_payload_for_s3_only() {
        let body = br#"{"SecretId": "x"}"#;
        let mut headers = HeaderMap::new();
        assert_eq!(
            payload_hash(&headers, body, "secretsmanager"),
            sha256_hex(body)
        );
        headers.insert(
            X_AMZ_CONTENT_SHA256,
            HeaderValue::from_static(
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        );
        assert_eq!(
            payload_hash(&headers, body, "secretsmanager"),
            sha256_hex(body)
        );
        headers.insert(
            X_AMZ_CONTENT_SHA256,
            HeaderValue::from_static(UNSIGNED_PAYLOAD),
        );
        for service in ["secretsmanager", "kms", "iam", "sts"] {
            assert_eq!(payload_hash(&headers, body, service), sha256_hex(body));
        }
        assert_eq!(payload_hash(&headers, body, "s3"), UNSIGNED_PAYLOAD);
    }
}
